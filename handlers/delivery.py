"""The Telegram side of the reminder outbox: send a digest message with python-telegram-bot and
turn PTB's exceptions into the outcomes ``bot.reminders.sender`` acts on."""

from __future__ import annotations

import datetime as dtm
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from bot.config import Settings, TelegramUnreachableError, TokenRejectedError
from bot.reminders.models import Keyboard
from bot.reminders.sender import (
    Blocked,
    Delivery,
    Migrated,
    RateLimited,
    Rejected,
    SenderPolicy,
    Sent,
    Transient,
)
from handlers.transport import AiohttpRequest

# A 400 that means the chat itself is gone (deleted group, deactivated account): stop, like 403.
_GONE = ("chat not found", "group chat was deactivated", "user is deactivated")


def retry_after_seconds(exc: RetryAfter) -> float:
    """``RetryAfter.retry_after`` without PTB's int-vs-timedelta deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)


def keyboard_markup(buttons: Keyboard) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in buttons]
    )


def outcome_of(exc: TelegramError) -> Delivery:
    """What a failed send means for the outbox. ``InvalidToken`` is not an outcome: it stops
    everything, so it is re-raised."""
    if isinstance(exc, RetryAfter):
        return RateLimited(retry_after_seconds(exc))
    if isinstance(exc, ChatMigrated):
        return Migrated(exc.new_chat_id)
    if isinstance(exc, Forbidden):
        return Blocked(exc.message)
    if isinstance(exc, BadRequest):  # before NetworkError: BadRequest is one of them
        if any(reason in exc.message.lower() for reason in _GONE):
            return Blocked(exc.message)
        return Rejected(exc.message)
    if isinstance(exc, TimedOut):
        return Transient(f"timed out: {exc.message}")
    if isinstance(exc, NetworkError):
        return Transient(exc.message)
    if isinstance(exc, InvalidToken):
        raise exc
    return Transient(f"{type(exc).__name__}: {exc.message}")


class TelegramMessenger:
    """``bot.reminders.sender.Messenger`` on a PTB ``Bot`` (or the application's ``ExtBot``)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: int, text: str, buttons: Keyboard) -> Delivery:
        try:
            message = await self.bot.send_message(
                chat_id,
                text,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard_markup(buttons),
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except TelegramError as exc:
            return outcome_of(exc)
        return Sent(message.message_id)


def make_bot(settings: Settings) -> Bot:
    return Bot(
        settings.require_token(),
        base_url=settings.telegram_base_url,
        base_file_url=settings.telegram_base_file_url,
        request=AiohttpRequest(SenderPolicy().concurrency),  # a connection per chat served
    )


@asynccontextmanager
async def _credentials_checked() -> AsyncIterator[None]:
    """PTB's ``InvalidToken`` quotes the token; commands report a rejected one as a setting."""
    try:
        yield
    except InvalidToken:
        raise TokenRejectedError from None
    except NetworkError as exc:
        raise TelegramUnreachableError(exc.message) from None


async def check_token(settings: Settings) -> None:
    """Ask Telegram who the bot is (``getMe``): ``TokenRejectedError`` or
    ``TelegramUnreachableError`` if that fails."""
    async with _credentials_checked(), make_bot(settings):
        pass


@asynccontextmanager
async def open_messenger(settings: Settings) -> AsyncIterator[TelegramMessenger]:
    """A messenger on a fresh ``Bot`` for ``python -m bot remind`` (initialised, shut down).
    A token Telegram rejects raises ``TokenRejectedError``, also in the middle of a pass."""
    async with _credentials_checked(), make_bot(settings) as bot:
        yield TelegramMessenger(bot)
