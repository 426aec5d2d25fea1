"""Shared conversation plumbing: /cancel, the idle timeout and per-chat scratch space."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ConversationHandler, TypeHandler
from telegram.warnings import PTBUserWarning

from handlers.common import Context, here, reply

IDLE_TIMEOUT_SECONDS = 10 * 60
END = ConversationHandler.END


def scratch(context: Context, name: str, chat_id: int) -> dict[str, Any]:
    """A conversation's draft, per user and chat: the same person may add cards in two chats."""
    assert context.user_data is not None
    key = f"{name}:{chat_id}"
    data: dict[str, Any] = context.user_data.setdefault(key, {})
    return data


def drop_scratch(context: Context, name: str, chat_id: int) -> None:
    if context.user_data is not None:
        context.user_data.pop(f"{name}:{chat_id}", None)


async def cancel(update: Update, context: Context) -> int:
    where = await here(update, context)
    if context.user_data is not None:
        for key in [k for k in context.user_data if str(k).endswith(f":{where.chat_id}")]:
            del context.user_data[key]
    await reply(update, where.t("conversation.cancelled"), edit=False)
    return END


async def timed_out(update: Update, context: Context) -> None:
    where = await here(update, context)
    await reply(update, where.t("conversation.timeout"), edit=False)


def conversation(
    name: str,
    entry_points: Sequence[BaseHandler[Update, Any, Any]],
    states: dict[object, list[BaseHandler[Update, Any, Any]]],
) -> ConversationHandler[Any]:
    """A ConversationHandler with /cancel at every step, a polite idle timeout, and its state
    kept by the application's persistence (drafts live in ``user_data``, persisted too)."""
    states = {**states, ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)]}
    with warnings.catch_warnings():
        # Mixing message and button steps needs per_message=False; PTB warns that buttons are
        # then tracked per chat and user rather than per message, which is what we want.
        warnings.filterwarnings("ignore", category=PTBUserWarning, message=".*per_message.*")
        return ConversationHandler(
            entry_points=list(entry_points),
            states=states,
            fallbacks=[CommandHandler("cancel", cancel)],
            conversation_timeout=IDLE_TIMEOUT_SECONDS,
            name=name,
            persistent=True,  # a half-finished /addcard survives a restart of the bot
            allow_reentry=True,
        )
