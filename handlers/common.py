"""What every handler needs: the services, who and where the user is, and how to answer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import Application, ContextTypes

from bot.clock import Clock
from bot.config import Settings
from bot.i18n import Html, resolve_language, t
from bot.models import ChatSettings
from bot.plans.catalogue import Catalogue
from bot.services.cards import CardService

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
SERVICES_KEY = "simwatch.services"


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    cards: CardService
    catalogue: Catalogue


def install_services(application: Application[Any, Any, Any, Any, Any, Any], svc: Services) -> None:
    application.bot_data[SERVICES_KEY] = svc


def services(context: Context) -> Services:
    return cast(Services, context.application.bot_data[SERVICES_KEY])


@dataclass(frozen=True)
class Here:
    """The chat an update came from, in domain terms, plus the user's language."""

    chat: ChatSettings
    lang: str
    today: date
    user_id: int | None
    user_name: str | None

    @property
    def chat_id(self) -> int:
        return self.chat.chat_id

    @property
    def is_group(self) -> bool:
        return self.chat.is_group

    def t(self, key: str, /, **params: Any) -> Html:
        return t(self.lang, key, **params)


async def here(update: Update, context: Context) -> Here:
    chat = update.effective_chat
    assert chat is not None, "handlers are only registered for updates with a chat"
    svc = services(context)
    is_group = chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)
    settings = await svc.cards.chat(chat.id, is_group=is_group)
    user = update.effective_user
    lang = resolve_language(
        settings.language, user.language_code if user else None, svc.settings.language
    )
    return Here(
        chat=settings,
        lang=lang,
        today=svc.cards.today(settings),
        user_id=user.id if user else None,
        user_name=user.full_name if user else None,
    )


async def is_admin(update: Update, context: Context) -> bool:
    """In groups only administrators may delete cards or change settings; private chats own all."""
    chat = update.effective_chat
    if chat is None or chat.type == ChatType.PRIVATE:
        return True
    message = update.effective_message
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id == chat.id  # an anonymous administrator
    user = update.effective_user
    if user is None:
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


async def reply(
    update: Update,
    text: str,
    keyboard: InlineKeyboardMarkup | None = None,
    *,
    edit: bool = True,
) -> Message | None:
    """Answer in place: edit the message whose button was pressed, else send a new message."""
    query = update.callback_query
    if query is not None and edit and isinstance(query.message, Message):
        try:
            edited = await query.edit_message_text(
                text, parse_mode=ParseMode.HTML, reply_markup=keyboard
            )
        except BadRequest as exc:
            if "not modified" not in exc.message:
                raise
            return query.message
        return edited if isinstance(edited, Message) else None
    target = update.effective_message
    if target is None:
        return None
    return await target.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=keyboard)


async def answer(
    query: CallbackQuery | None, text: str | None = None, *, alert: bool = False
) -> None:
    """Stop the button's spinner, optionally with a short notice."""
    if query is not None:
        await query.answer(text, show_alert=alert)


async def pressed(update: Update, context: Context) -> tuple[str, Here]:
    """Acknowledge a pressed button; return its data and where it was pressed."""
    query = update.callback_query
    assert query is not None, "only registered for callback queries"
    await query.answer()
    return (query.data if isinstance(query.data, str) else ""), await here(update, context)


def callback_arg(update: Update, index: int) -> int | None:
    """The index-th ':'-separated field of the pressed button's data, as an int (None if bad)."""
    query = update.callback_query
    data = query.data if query is not None and isinstance(query.data, str) else ""
    parts = data.split(":")
    try:
        return int(parts[index])
    except (IndexError, ValueError):
        return None


def command_args(context: Context) -> list[str]:
    return list(context.args or [])
