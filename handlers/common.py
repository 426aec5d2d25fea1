"""What every handler needs: the services, who and where the user is, and how to answer."""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from telegram import (
    CallbackQuery,
    ChatMemberRestricted,
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import Application, ApplicationHandlerStop, CallbackQueryHandler, ContextTypes
from telegram.helpers import mention_html

from bot.clock import Clock
from bot.config import Settings
from bot.i18n import Html, resolve_language, t
from bot.models import ChatSettings
from bot.plans.catalogue import Catalogue
from bot.services.cards import CardService
from bot.services.push import PushService
from storage.base import CardFilter

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
SERVICES_KEY = "simwatch.services"
CALLBACK_INT = "[0-9]{1,19}"  # a number in a button's data, in the handlers' patterns
_DIGITS = re.compile(CALLBACK_INT)


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    cards: CardService
    catalogue: Catalogue
    push: PushService  # the chat's push robots (/push)


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


async def with_archived_hint(context: Context, where: Here, text: str) -> Html:
    """``text`` (a "no cards yet" answer), and, when the chat's cards are all archived, that
    they are there: out of service, not gone."""
    archived = await services(context).cards.storage.count_cards(
        where.chat_id, CardFilter(archived=True)
    )
    if not archived:
        return Html(text)
    return Html(f"{text}\n\n{where.t('archive.all_archived', count=archived)}")


async def here(update: Update, context: Context) -> Here:
    chat = update.effective_chat
    assert chat is not None, "handlers are only registered for updates with a chat"
    svc = services(context)
    is_group = chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)
    user = update.effective_user
    code = user.language_code if user else None
    # the person's own language; the chat's default for digests if it has none yet
    own = resolve_language(None, code, svc.settings.language) if code else None
    settings = await svc.cards.chat(chat.id, is_group=is_group, language=own)
    lang = resolve_language(settings.language, code, svc.settings.language)
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


_IN_CHAT = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER)


async def is_member(update: Update, context: Context) -> bool:
    """Whether the person who pressed a button in a group is in that group.

    Anyone who can see a public group's messages can press their buttons, in the group or
    not; Telegram says "left" or "kicked" for outsiders (or "user not found")."""
    chat = update.effective_chat
    if chat is None or chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
        return True
    user = update.effective_user
    if user is None:
        return False
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except BadRequest:  # never seen in the chat
        return False
    if member.status in _IN_CHAT:
        return True
    return isinstance(member, ChatMemberRestricted) and member.is_member


async def _members_only(update: Update, context: Context) -> None:
    """Every button press in a group passes here first: an outsider gets a short alert in
    their own language, and no other handler sees the press."""
    if await is_member(update, context):
        return
    user = update.effective_user
    lang = resolve_language(
        None, user.language_code if user else None, services(context).settings.language
    )
    await answer(update.callback_query, t(lang, "group.members_only"), alert=True)
    raise ApplicationHandlerStop


# Register in a group of its own before every other (``bot/app.py``): it guards every button.
MEMBERS_ONLY_HANDLER = CallbackQueryHandler(_members_only)
MEMBERS_ONLY_GROUP = -2


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


async def ask(
    update: Update,
    where: Here,
    text: str,
    placeholder_key: str,
    keyboard: InlineKeyboardMarkup | None = None,
    *,
    edit: bool = True,
) -> Message | None:
    """Ask for a typed answer: in private chats exactly :func:`reply`.

    In groups Telegram's privacy mode (on for bots by default) hides members' plain messages
    from the bot; a reply to the bot's message does reach it. So the question carries a
    selective ``ForceReply``: the asker's client opens the reply box by itself, with a short
    hint (``placeholder_key``) in the input field. Selective needs to know whom it addresses,
    so the question replies to the person's message, or mentions them after a button press;
    and since edits can't add a ``ForceReply``, it is then a new message.

    A message carries one ``reply_markup``: buttons *or* ForceReply. When the question has
    buttons (choices, Skip) they stay on it, as in private, and a short line after it carries
    the ForceReply for the typed answer.
    """
    if not where.is_group:
        return await reply(update, text, keyboard, edit=edit)
    hint = html.unescape(where.t(placeholder_key))  # plain text, not HTML
    force = ForceReply(selective=True, input_field_placeholder=hint)
    if keyboard is None:
        return await _addressed(update, where, text, force)
    sent = await reply(update, text, keyboard, edit=edit)
    await _addressed(update, where, where.t("ask.or_type"), force)
    return sent


async def _addressed(update: Update, where: Here, text: str, force: ForceReply) -> Message | None:
    """A new message meant for the person who acted: a reply to their message, or, after a
    button press (nothing of theirs to reply to), one that mentions them by name."""
    if update.callback_query is None and update.effective_message is not None:
        return await update.effective_message.reply_text(
            text, parse_mode=ParseMode.HTML, reply_markup=force, do_quote=True
        )
    chat, user = update.effective_chat, update.effective_user
    if chat is None:
        return None
    if user is not None:
        name = Html(mention_html(user.id, user.full_name))
        text = where.t("ask.addressed", name=name, text=Html(text))
    return await chat.send_message(text, parse_mode=ParseMode.HTML, reply_markup=force)


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


MAX_CALLBACK_INT = 2**63 - 1  # SQLite's largest integer: ids and pages are never above it


def callback_int(text: str) -> int | None:
    """A number from a pressed button's data (None if bad): the one parser for all of them.

    Button data can be forged: only plain digits (ASCII, no sign) up to SQLite's largest
    integer count, so a forged ``cd:`` + 61 digits is a bad button, not an ``OverflowError``.
    """
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_CALLBACK_INT else None


def callback_arg(update: Update, index: int) -> int | None:
    """The index-th ':'-separated field of the pressed button's data, as by :func:`callback_int`."""
    query = update.callback_query
    data = query.data if query is not None and isinstance(query.data, str) else ""
    parts = data.split(":")
    return callback_int(parts[index]) if index < len(parts) else None


async def answer_stale(update: Update, context: Context) -> None:
    """The answer to a button whose data we never made (forged, or a number out of range):
    the same notice a finished conversation's button gets."""
    where = await here(update, context)
    await answer(update.callback_query, where.t("button.stale"), alert=True)


def command_args(context: Context) -> list[str]:
    return list(context.args or [])
