"""The digest's buttons (snooze 1 or 3 days, mute, unmute) and the chat-activity hook.

"✅ Renewed" (``rn:<id>``) belongs to the renew conversation, which opens in a new message:
the digest stays for everyone, only that card's buttons change (renewal in progress, then
done; see :func:`renewal_opened`). Every button re-reads the card in the chat the pressed
message is in: an old digest acts on the card as it is now.

Register ``ACTIVITY_HANDLER`` in an early group of its own (e.g. -1): on any update from a chat
it resumes reminders that a 403 had paused, pauses them when the bot is blocked or removed,
and follows a group's move to a supergroup.
"""

from __future__ import annotations

import contextlib
import re
from datetime import date
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import BadRequest
from telegram.ext import CallbackQueryHandler, TypeHandler

from bot.i18n import Html
from bot.iccid import mask_iccid, shown_iccid
from bot.models import Card
from bot.reminders.digest import (
    MUTE_PREFIX,
    RENEWED_PREFIX,
    SNOOZE_DAYS,
    SNOOZE_PREFIX,
    UNMUTE_PREFIX,
    date_text,
    label_text,
    unmute_data,
)
from bot.reminders.service import ActionStatus, CardAction, ReminderService
from handlers.common import (
    CALLBACK_INT,
    Context,
    Here,
    answer,
    answer_stale,
    callback_arg,
    here,
    services,
)
from handlers.reminder_schedule import reminders
from handlers.render import button, markup

_SNOOZE_RE = re.compile(rf"^{SNOOZE_PREFIX}([0-9]{{1,2}}):({CALLBACK_INT}):([0-9]{{1,7}})$")
RENEWING_SUFFIX = ":d"  # rn:<id>:d, the card's button while its renewal is open
RENEWED_INFO_PREFIX = "dg:i:"  # dg:i:<id>, the card's button once it was renewed
_GONE = (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED)  # BANNED is "kicked"


def _service(context: Context) -> ReminderService:
    service = reminders(context)
    if service is None:
        raise RuntimeError("install_reminders() was not called")
    return service


def _card_buttons(data: str, card_id: int) -> bool:
    """Whether a digest button belongs to ``card_id``."""
    renewed = f"{RENEWED_PREFIX}{card_id}"
    if data in (renewed, renewed + RENEWING_SUFFIX, f"{MUTE_PREFIX}{card_id}"):
        return True
    if data == f"{RENEWED_INFO_PREFIX}{card_id}":
        return True
    m = _SNOOZE_RE.match(data)
    return m is not None and m[2] == str(card_id)


Rows = list[list[list[str]]]  # a keyboard as [[[text, data], …], …], as kept in a draft


def _rows_of(markup_: InlineKeyboardMarkup) -> Rows:
    return [
        [[b.text, b.callback_data] for b in row if isinstance(b.callback_data, str)]
        for row in markup_.inline_keyboard
    ]


def _with_card_button(rows: Rows, card_id: int, text: str, data: str) -> Rows:
    """The keyboard with the card's buttons replaced by one (where its first one was)."""
    result: Rows = []
    placed = False
    for row in rows:
        kept = []
        for button_text, button_data in row:
            if not _card_buttons(button_data, card_id):
                kept.append([button_text, button_data])
            elif not placed:
                kept.append([text, data])
                placed = True
        if kept:
            result.append(kept)
    return result


def _with_renew_button(rows: Rows, card_id: int, text: str, data: str) -> Rows:
    """The keyboard with only the card's ✅ button replaced: its 💤 and 🔕 stay usable while
    the renewal is open (it may be cancelled or left to time out)."""
    renew = (f"{RENEWED_PREFIX}{card_id}", f"{RENEWED_PREFIX}{card_id}{RENEWING_SUFFIX}")
    return [
        [
            [text, data] if button_data in renew else [button_text, button_data]
            for button_text, button_data in row
        ]
        for row in rows
    ]


def _markup_of(rows: Rows) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


_KEYBOARDS_KEY = "digest.keyboards"  # chat_data: message id -> the digest's buttons, as set
_KEPT_KEYBOARDS = 30


async def _set_keyboard(context: Context, chat_id: int, message_id: int, rows: Rows) -> None:
    """Change a digest's buttons, and remember them: a renewal saved later changes its card's
    button on the digest as it is then, not as it was when the renewal was opened."""
    if context.chat_data is not None:
        kept: dict[int, Rows] = context.chat_data.setdefault(_KEYBOARDS_KEY, {})
        kept.pop(message_id, None)
        kept[message_id] = rows
        while len(kept) > _KEPT_KEYBOARDS:
            kept.pop(next(iter(kept)))
    # Too old to edit, or edited meanwhile: no matter, the buttons act on the current card.
    with contextlib.suppress(BadRequest):
        await context.bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=_markup_of(rows)
        )


async def renewal_opened(
    update: Update, context: Context, where: Here, card: Card
) -> dict[str, Any] | None:
    """✅ Renewed was pressed. On a digest, that card's ✅ becomes a "renewal in progress"
    button (pressing it opens the renewal again: someone may give up); its 💤 and 🔕, the text
    and the other cards' buttons stay. Returns what :func:`renewal_done` needs, None elsewhere
    (a card's screen, where the renewal takes the message's place as before)."""
    query = update.callback_query
    message = query.message if query is not None else None
    if query is None or not isinstance(message, Message) or message.reply_markup is None:
        return None
    rows = _rows_of(message.reply_markup)
    mine = [data for row in rows for _, data in row if _card_buttons(data, card.id)]
    on_digest = str(query.data).endswith(RENEWING_SUFFIX) or any(
        data.startswith(SNOOZE_PREFIX) or data.startswith(MUTE_PREFIX) for data in mine
    )
    if not on_digest:
        return None
    text = where.t("digest.button.renewing", iccid=mask_iccid(card.iccid))
    data = f"{RENEWED_PREFIX}{card.id}{RENEWING_SUFFIX}"
    marked = _with_renew_button(rows, card.id, text, data)
    if marked != rows:
        await _set_keyboard(context, message.chat_id, message.message_id, marked)
    return {"chat_id": message.chat_id, "message_id": message.message_id}


async def renewal_done(
    context: Context, where: Here, opened: dict[str, Any], card: Card, new_expiry: date
) -> None:
    """The renewal opened from a digest was saved: its button on the digest says so; the
    digest's other buttons stay as they are now."""
    kept = (context.chat_data or {}).get(_KEYBOARDS_KEY, {}).get(opened["message_id"])
    if kept is None:
        return  # forgotten (many digests since): the in-progress button still works
    text = where.t(
        "digest.button.renewed_done", iccid=mask_iccid(card.iccid), expiry=new_expiry.isoformat()
    )
    rows = _with_card_button(kept, card.id, text, f"{RENEWED_INFO_PREFIX}{card.id}")
    await _set_keyboard(context, opened["chat_id"], opened["message_id"], rows)


async def renewed_info_pressed(update: Update, context: Context) -> None:
    """The ✔️ renewed button of a digest: how the card stands now."""
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    card_id = callback_arg(update, 2)
    if card_id is None:
        await answer_stale(update, context)
        return
    where = await here(update, context)
    card = await services(context).cards.get(where.chat_id, card_id)
    if card is None:
        await answer(query, where.t("digest.answer.not_found"), alert=True)
        return
    await answer(
        query,
        where.t(
            "digest.answer.renewed_info",
            iccid=shown_iccid(card.iccid, where.is_group),
            expiry=card.expiry.isoformat(),
        ),
    )


async def _drop_card_buttons(update: Update, context: Context, card_id: int) -> None:
    """Take the card's buttons off the digest: it has been dealt with."""
    query = update.callback_query
    if query is None or not isinstance(query.message, Message):
        return
    current = query.message.reply_markup
    if current is None:
        return
    rows = _rows_of(current)
    kept = [[b for b in row if not _card_buttons(b[1], card_id)] for row in rows]
    kept = [row for row in kept if row]
    if kept != rows:
        await _set_keyboard(context, query.message.chat_id, query.message.message_id, kept)


async def _refused(
    update: Update, context: Context, where: Here, result: CardAction, card_id: int
) -> bool:
    """Answer NOT_FOUND / CHANGED; True if the action did not happen."""
    query = update.callback_query
    if result.status is ActionStatus.NOT_FOUND:
        await answer(query, where.t("digest.answer.not_found"), alert=True)
    elif result.status is ActionStatus.CHANGED and result.card is not None:
        await answer(
            query,
            where.t("digest.answer.changed", expiry=result.card.expiry.isoformat()),
            alert=True,
        )
    else:
        return False
    await _drop_card_buttons(update, context, card_id)
    return True


async def snooze_pressed(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    days, card_id, ordinal = (callback_arg(update, i) for i in (2, 3, 4))
    if (
        _SNOOZE_RE.match(query.data) is None
        or days is None
        or days not in SNOOZE_DAYS
        or card_id is None
        or ordinal is None
        or not 1 <= ordinal <= date.max.toordinal()
    ):
        await answer_stale(update, context)
        return
    expiry = date.fromordinal(ordinal)
    where = await here(update, context)
    result = await _service(context).snooze(where.chat, card_id, days, digest_expiry=expiry)
    if await _refused(update, context, where, result, card_id):
        return
    assert result.card is not None and result.until is not None
    until = date_text(where.lang, result.until)
    await answer(
        query,
        where.t(
            "digest.answer.snoozed",
            iccid=shown_iccid(result.card.iccid, where.is_group),
            until=until,
        ),
    )
    await _drop_card_buttons(update, context, card_id)


def _notice_text(where: Here, key: str, card: Card) -> Html:
    """Who changed which card, for everybody in the chat."""
    return where.t(
        key,
        who=where.user_name or "—",
        iccid=shown_iccid(card.iccid, where.is_group),
        label=label_text(where.lang, card.label),
    )


async def post_mute_notice(update: Update, where: Here, card: Card) -> None:
    """Tell the chat who muted (with an undo button) or unmuted which card, whether from a
    digest or from /edit: in a group everybody relies on the reminders."""
    message = update.effective_message
    if message is None:
        return
    key = "digest.notice.muted" if card.muted else "digest.notice.unmuted"
    undo = markup([[button(where.t("digest.button.unmute"), unmute_data(card.id))]])
    await message.reply_text(
        _notice_text(where, key, card),
        parse_mode=ParseMode.HTML,
        reply_markup=undo if card.muted else None,
    )


async def _set_muted(
    update: Update, context: Context, *, muted: bool
) -> tuple[Here, CardAction, int] | None:
    """Mute (🔕) or unmute (🔔) the pressed card and answer the press.

    None if the card is gone or changed (answered, its buttons dropped); else where, the result
    (``DONE`` or ``ALREADY``) and the card's id."""
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    card_id = callback_arg(update, 2)
    if card_id is None:
        await answer_stale(update, context)
        return None
    where = await here(update, context)
    service = _service(context)
    set_muted = service.mute if muted else service.unmute
    result = await set_muted(where.chat_id, card_id)
    if await _refused(update, context, where, result, card_id):
        return None
    assert result.card is not None
    if muted:
        done, already = "digest.answer.muted", "digest.answer.already_muted"
    else:
        done, already = "digest.answer.unmuted", "digest.answer.already_unmuted"
    key = already if result.status is ActionStatus.ALREADY else done
    await answer(query, where.t(key, iccid=shown_iccid(result.card.iccid, where.is_group)))
    return where, result, card_id


async def mute_pressed(update: Update, context: Context) -> None:
    pressed = await _set_muted(update, context, muted=True)
    if pressed is None:
        return
    where, result, card_id = pressed
    if result.status is not ActionStatus.ALREADY:
        assert result.card is not None
        await post_mute_notice(update, where, result.card)
    await _drop_card_buttons(update, context, card_id)


async def unmute_pressed(update: Update, context: Context) -> None:
    pressed = await _set_muted(update, context, muted=False)
    if pressed is None or pressed[1].status is ActionStatus.ALREADY:
        return
    where, result, _ = pressed
    assert result.card is not None
    message = update.effective_message
    if isinstance(message, Message):
        text = _notice_text(where, "digest.notice.unmuted", result.card)
        try:
            await message.edit_text(text, parse_mode=ParseMode.HTML, reply_markup=None)
        except BadRequest:
            await message.reply_text(text, parse_mode=ParseMode.HTML)


async def chat_activity(update: Update, context: Context) -> None:
    """Keep the chat's delivery state in step with what Telegram tells us about it."""
    chat = update.effective_chat
    service = reminders(context)
    if chat is None or service is None:
        return
    member = update.my_chat_member
    if member is not None:
        status = member.new_chat_member.status
        if status in _GONE:
            await service.chat_gone(chat.id, f"my_chat_member: {status}")
        else:
            await service.chat_seen(chat.id)
        return
    message = update.effective_message
    if message is not None and message.migrate_to_chat_id:
        await service.chat_migrated(chat.id, message.migrate_to_chat_id)
        return
    if message is not None and message.migrate_from_chat_id:
        await service.chat_migrated(message.migrate_from_chat_id, chat.id)
    await service.chat_seen(chat.id)


HANDLERS = [
    CallbackQueryHandler(snooze_pressed, pattern=_SNOOZE_RE),
    CallbackQueryHandler(mute_pressed, pattern=rf"^{MUTE_PREFIX}{CALLBACK_INT}$"),
    CallbackQueryHandler(unmute_pressed, pattern=rf"^{UNMUTE_PREFIX}{CALLBACK_INT}$"),
    CallbackQueryHandler(renewed_info_pressed, pattern=rf"^{RENEWED_INFO_PREFIX}{CALLBACK_INT}$"),
]
ACTIVITY_HANDLER = TypeHandler(Update, chat_activity)
ACTIVITY_GROUP = -1
