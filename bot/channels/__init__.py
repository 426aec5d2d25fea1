"""Channels other than Telegram, carried by the same handlers (README, "Channels").

A channel is two adapters around an unchanged python-telegram-bot ``Application``: an update
source that turns the channel's events into ``telegram.Update`` objects on the application's
update queue, and a ``BaseRequest`` that carries out the Bot API methods the handlers call
(``sendMessage``, ``editMessageText``, ``answerCallbackQuery``, ``sendDocument``, ``getFile``,
``getChatMember`` …) on the channel. The conversations are written once, in ``handlers/``.
"""
