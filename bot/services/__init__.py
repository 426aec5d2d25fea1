"""Use cases the chat surfaces call: no Telegram types in or out."""
