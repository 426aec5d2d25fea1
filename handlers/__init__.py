"""The Telegram surface: parse the update, call the domain, render the reply."""
