"""The error handler: whatever goes wrong while answering someone, they get a polite answer in
their language, and the log gets the error once, with its traceback (secrets redacted by the
log's filter, ``bot.logs``).

Errors while fetching updates (the network, Telegram restarting) reach here too, without an
update: they are logged in one line and python-telegram-bot retries by itself.
"""

from __future__ import annotations

import errno
import logging

from telegram import Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import NetworkError, TelegramError

from bot.i18n import resolve_language, t
from bot.models import DEFAULT_LANGUAGE
from handlers.common import SERVICES_KEY, Context, Services

log = logging.getLogger(__name__)


def is_storage_full(error: BaseException) -> bool:
    """The database (or a file next to it) could not be written: the disk or quota is full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "database or disk is full" in str(error).lower()


async def _language(update: Update, context: Context) -> str:
    """The language the user reads: their chat's, else their Telegram app's, else the default.
    The database may be what failed, so it is only read, and a failure there is no obstacle."""
    svc: Services | None = context.application.bot_data.get(SERVICES_KEY)
    default = svc.settings.language if svc is not None else DEFAULT_LANGUAGE
    user = update.effective_user
    chat_language = None
    chat = update.effective_chat
    if svc is not None and chat is not None:
        try:
            settings = await svc.cards.storage.get_chat(chat.id)
        except Exception:  # the apology must not depend on the database
            settings = None
        chat_language = settings.language if settings is not None else None
    return resolve_language(chat_language, user.language_code if user else None, default)


async def _apologise(update: Update, context: Context, key: str) -> None:
    lang = await _language(update, context)
    query = update.callback_query
    if query is not None:
        try:  # a button: a pop-up for the presser, unless the query was answered already
            await query.answer(t(lang, f"{key}_short"), show_alert=True)
            return
        except TelegramError:
            pass
    message = update.effective_message
    chat = update.effective_chat
    text = t(lang, key)
    if query is None and isinstance(message, Message):
        try:
            await message.reply_text(text, parse_mode=ParseMode.HTML)
        except TelegramError:  # the message is gone (e.g. /push deleted a pasted URL)
            await context.bot.send_message(message.chat_id, text, parse_mode=ParseMode.HTML)
    elif chat is not None and chat.type == ChatType.PRIVATE:
        await context.bot.send_message(chat.id, text, parse_mode=ParseMode.HTML)
    elif chat is not None and query is not None:  # in a group: addressed to the presser
        addressed = t(lang, "ask.addressed", name=query.from_user.full_name, text=text)
        await context.bot.send_message(chat.id, addressed, parse_mode=ParseMode.HTML)


async def on_error(update: object, context: Context) -> None:
    """``Application.add_error_handler``: log once, answer the user politely."""
    error = context.error
    if not isinstance(update, Update):
        if isinstance(error, NetworkError):  # fetching updates: PTB retries by itself
            log.warning("Telegram could not be reached: %s", error)
        else:
            log.error("error outside any update", exc_info=error)
        return
    chat = update.effective_chat
    log.error(
        "update %s (chat %s) failed", update.update_id, chat.id if chat else "-", exc_info=error
    )
    if chat is None:
        return
    key = "error.internal.storage_full" if error and is_storage_full(error) else None
    try:
        await _apologise(update, context, key or "error.internal.unexpected")
    except Exception as exc:  # telling the user is best effort
        log.warning("could not tell chat %s about the error: %s", chat.id, exc)
