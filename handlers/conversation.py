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


def in_conversation(application: Any, chat_id: int, user_id: int) -> bool:
    """Whether ``user_id`` has a conversation in progress in the chat (a channel asks, before
    taking a typed answer for a press of choices shown to nobody in particular)."""
    for handlers in application.handlers.values():
        for handler in handlers:
            # PTB keeps the conversations in progress here, keyed (chat id, user id).
            if (
                isinstance(handler, ConversationHandler)
                and handler._conversations.get((chat_id, user_id)) is not None
            ):
                return True
    return False


def conversation_owner(update: Update, context: Context) -> int | None:
    """Whose conversation in progress a pressed button belongs to, when it is not the
    presser's: in a group everyone sees the buttons of a member's /addcard or /renew, but a
    conversation is one person's (its steps are kept per chat and user).

    The owner is a user with a conversation in this chat whose steps take this button; one
    whose current step takes it comes first. None: nobody else's (a stale button).
    """
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None or update.callback_query is None:
        return None
    fallback: int | None = None
    for group in context.application.handlers.values():
        for handler in group:
            if not isinstance(handler, ConversationHandler):
                continue
            # PTB keeps the conversations in progress here, keyed (chat id, user id).
            for key, state in handler._conversations.items():
                if len(key) != 2 or key[0] != chat.id or key[1] == user.id:
                    continue
                if any(step.check_update(update) for step in handler.states.get(state, [])):
                    return int(key[1])
                if fallback is None and any(
                    step.check_update(update)
                    for steps in handler.states.values()
                    for step in steps
                    if not isinstance(step, TypeHandler)  # the time-out step takes anything
                ):
                    fallback = int(key[1])
    return fallback


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
