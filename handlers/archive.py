"""Cards out of service (停用): archive from the card's screen or /archive, restore likewise.

Archiving asks first (ar: → ay:/an:); restoring is one tap (ur:): it only brings reminders back.
In groups both are for administrators, as deleting is: they change what everybody is reminded of.
"""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.errors import excerpt
from bot.i18n import Html
from bot.iccid import shown_iccid
from bot.models import Card
from handlers.cards import card_action
from handlers.common import (
    CALLBACK_INT,
    Context,
    Here,
    command_args,
    here,
    is_admin,
    reply,
    services,
)
from handlers.render import archived_on, button, card_pick_text, label_part, markup


def _names(where: Here, card: Card) -> dict[str, str]:
    return {"iccid": shown_iccid(card.iccid, where.is_group), "label": label_part(card.label)}


def archive_question(where: Here, card: Card) -> tuple[Html, InlineKeyboardMarkup]:
    """ "Archive this card?" with its two buttons (the card's button and /archive ask alike)."""
    keyboard = markup(
        [
            [
                button(where.t("button.confirm_archive"), f"ay:{card.id}"),
                button(where.t("button.keep"), f"an:{card.id}"),
            ]
        ]
    )
    return where.t("archive.confirm", **_names(where, card)), keyboard


def restore_offer(
    where: Here, card: Card, key: str = "archive.already"
) -> tuple[Html, InlineKeyboardMarkup]:
    """An archived card named again (/archive, /addcard): offer to restore it."""
    keyboard = markup(
        [
            [
                button(where.t("button.restore"), f"ur:{card.id}"),
                button(where.t("button.open_card"), f"cd:{card.id}"),
            ]
        ]
    )
    names = _names(where, card)
    return where.t(key, when=archived_on(card), expiry=card.expiry.isoformat(), **names), keyboard


def _auto_renew_off(where: Here, before: Card, after: Card) -> Html:
    """The note when putting the card back turned its auto-renew off (its expiry had passed)."""
    if before.auto_renew and not after.auto_renew:
        return Html("\n" + where.t("archive.auto_renew_off", expiry=after.expiry.isoformat()))
    return Html("")


async def archive_button(update: Update, context: Context) -> None:
    """ar: ask, ay: archive, an: changed my mind (back to the card), ur: restore."""
    acting = await card_action(update, context, back="an")
    if acting is None:
        return
    action, where, card = acting
    svc = services(context)
    if action == "ar":
        if card.archived:  # a stale screen: it was archived meanwhile
            await reply(update, *restore_offer(where, card))
        else:
            await reply(update, *archive_question(where, card))
        return
    saved = await svc.cards.set_archived(where.chat_id, card.id, archived=action == "ay")
    if saved is None:
        await reply(update, where.t("card.not_found"), edit=False)
        return
    key = "archive.done" if saved.archived else "archive.restored"
    keyboard = markup([[button(where.t("button.open_card"), f"cd:{saved.id}")]])
    text = Html(where.t(key, **_names(where, saved)) + _auto_renew_off(where, card, saved))
    await reply(update, text, keyboard)


async def _named(update: Update, context: Context, where: Here) -> list[Card] | None:
    """The cards ``/archive <ref>`` names; None (after saying why) when none or no ref."""
    args = command_args(context)
    if not args:
        await reply(update, where.t("archive.usage"), edit=False)
        return None
    matches = await services(context).cards.resolve(where.chat_id, args[0])
    if not matches:
        await reply(update, where.t("renew.no_match", ref=excerpt(args[0])), edit=False)
        return None
    return matches


async def archive_command(update: Update, context: Context) -> None:
    """/archive <ICCID or last 4+>: ask to archive; an archived card: offer to restore it."""
    where = await here(update, context)
    matches = await _named(update, context, where)
    if matches is None:
        return
    if len(matches) == 1:
        if not await is_admin(update, context):
            await reply(update, where.t("group.admins_only"), edit=False)
            return
        card = matches[0]
        question = restore_offer(where, card) if card.archived else archive_question(where, card)
        await reply(update, *question, edit=False)
        return
    rows = [
        [button(card_pick_text(c, where.is_group, "♻️" if c.archived else "🗄"), _pick_data(c))]
        for c in matches
    ]
    await reply(update, where.t("archive.pick"), markup(rows), edit=False)


def _pick_data(card: Card) -> str:
    return f"ur:{card.id}" if card.archived else f"ar:{card.id}"


async def unarchive_command(update: Update, context: Context) -> None:
    """/unarchive <ICCID or last 4+>: restore an archived card (one tap less than /archive)."""
    where = await here(update, context)
    matches = await _named(update, context, where)
    if matches is None:
        return
    archived = [card for card in matches if card.archived]
    if not archived:
        await reply(
            update, where.t("archive.not_archived", **_names(where, matches[0])), edit=False
        )
        return
    if not await is_admin(update, context):
        await reply(update, where.t("group.admins_only"), edit=False)
        return
    if len(archived) == 1:
        saved = await services(context).cards.set_archived(
            where.chat_id, archived[0].id, archived=False
        )
        if saved is not None:
            keyboard = markup([[button(where.t("button.open_card"), f"cd:{saved.id}")]])
            text = where.t("archive.restored", **_names(where, saved))
            text = Html(text + _auto_renew_off(where, archived[0], saved))
            await reply(update, text, keyboard, edit=False)
            return
    rows = [[button(card_pick_text(c, where.is_group, "♻️"), f"ur:{c.id}")] for c in archived]
    await reply(update, where.t("archive.pick_restore"), markup(rows), edit=False)


HANDLERS = [
    CommandHandler("archive", archive_command),
    CommandHandler("unarchive", unarchive_command),
    CallbackQueryHandler(archive_button, pattern=rf"^(ar|ay|an|ur):{CALLBACK_INT}$"),
]
