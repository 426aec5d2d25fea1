"""/cards, /expiring, a card's detail view and deleting a card."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot.iccid import shown_iccid
from bot.models import Card
from bot.services.cards import CardService
from handlers.common import (
    CALLBACK_INT,
    Context,
    Here,
    answer,
    answer_stale,
    callback_arg,
    callback_int,
    command_args,
    here,
    is_admin,
    reply,
    services,
    with_archived_hint,
)
from handlers.render import (
    button,
    card_detail,
    card_list,
    detail_keyboard,
    label_part,
    markup,
)

DEFAULT_EXPIRING_DAYS = 30
MAX_EXPIRING_DAYS = 3650


async def _show_page(
    update: Update, context: Context, where: Here, filter_code: str, page: int
) -> None:
    svc = services(context)
    if filter_code == "a":
        result = await svc.cards.page(where.chat_id, page)
        text, keyboard = card_list(
            where.lang,
            result,
            where.today,
            where.is_group,
            title_key="cards.title",
            empty_key="cards.empty",
            nav_data="pg:a",
        )
        if result.total == 0:
            text = await with_archived_hint(context, where, text)
    else:
        days = int(filter_code[1:])
        until = CardService.expiring_before(where.today, days)
        result = await svc.cards.page(where.chat_id, page, expiring_before=until)
        text, keyboard = card_list(
            where.lang,
            result,
            where.today,
            where.is_group,
            title_key="expiring.title",
            empty_key="expiring.empty",
            nav_data=f"pg:{filter_code}",
            days=days,
        )
    await reply(update, text, keyboard)


async def cards_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    await _show_page(update, context, where, "a", 0)


async def expiring_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    args = command_args(context)
    days = DEFAULT_EXPIRING_DAYS
    if args:
        text = args[0].removesuffix("d").removesuffix("天")
        if not text.isdecimal() or not 0 <= int(text) <= MAX_EXPIRING_DAYS:
            await reply(update, where.t("expiring.bad_days", max=MAX_EXPIRING_DAYS))
            return
        days = int(text)
    await _show_page(update, context, where, f"e{days}", 0)


async def page_button(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    parts = query.data.split(":")
    page = callback_arg(update, 2)
    days = callback_int(parts[1][1:]) if parts[1][:1] == "e" else None
    valid_filter = parts[1] == "a" or (days is not None and days <= MAX_EXPIRING_DAYS)
    if page is None or not valid_filter:
        await answer_stale(update, context)
        return
    await answer(query)
    where = await here(update, context)
    await _show_page(update, context, where, "a" if days is None else f"e{days}", page)


async def show_card(update: Update, context: Context, where: Here, card_id: int) -> None:
    """The detail view, or a polite 'not found' if the card is gone or not this chat's."""
    svc = services(context)
    card = await svc.cards.get(where.chat_id, card_id)
    if card is None:
        await reply(update, where.t("card.not_found"), edit=False)
        return
    history = await svc.cards.history(where.chat_id, card.id)
    edits = await svc.cards.edits(where.chat_id, card.id)
    text = card_detail(where.lang, card, where.today, where.is_group, history, edits)
    await reply(update, text, detail_keyboard(where.lang, card))


async def open_card_button(update: Update, context: Context) -> None:
    card_id = callback_arg(update, 1)
    if card_id is None:
        await answer_stale(update, context)
        return
    await answer(update.callback_query)
    await show_card(update, context, await here(update, context), card_id)


def delete_question(where: Here, card: Card) -> tuple[str, InlineKeyboardMarkup]:
    """ "Delete this card?" with its two buttons (the button and /delete ask the same)."""
    keyboard = markup(
        [
            [
                button(where.t("button.confirm_delete"), f"dy:{card.id}"),
                button(where.t("button.keep"), f"dn:{card.id}"),
            ]
        ]
    )
    shown = shown_iccid(card.iccid, where.is_group)
    return where.t("delete.confirm", iccid=shown, label=label_part(card.label)), keyboard


async def card_action(
    update: Update, context: Context, *, back: str
) -> tuple[str, Here, Card] | None:
    """A button acting on a card, with a confirm step (delete, archive): its action, where,
    and the card, once the presser may act on it; None when answered here already: a stale
    button, ``back`` (changed my mind: the card again), not an administrator, a card gone."""
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    where = await here(update, context)
    action = query.data.split(":", 1)[0]
    card_id = callback_arg(update, 1)
    if card_id is None:
        await answer_stale(update, context)
        return None
    if action == back:
        await answer(query)
        await show_card(update, context, where, card_id)
        return None
    if not await is_admin(update, context):
        await answer(query, where.t("group.admins_only"), alert=True)
        return None
    card = await services(context).cards.get(where.chat_id, card_id)
    if card is None:
        await answer(query, where.t("card.not_found"), alert=True)
        return None
    await answer(query)
    return action, where, card


async def delete_button(update: Update, context: Context) -> None:
    """dl: ask, dy: delete, dn: changed my mind (back to the card)."""
    acting = await card_action(update, context, back="dn")
    if acting is None:
        return
    action, where, card = acting
    svc = services(context)
    if action == "dl":
        await reply(update, *delete_question(where, card))
        return
    await svc.cards.delete(where.chat_id, card.id)
    await reply(update, where.t("delete.done", iccid=shown_iccid(card.iccid, where.is_group)))


async def page_number_button(update: Update, context: Context) -> None:
    """The n/m counter between ◀ and ▶: say which page this is and how to move on."""
    where = await here(update, context)
    page, pages = callback_arg(update, 1), callback_arg(update, 2)
    if page is None or pages is None or not 1 <= page <= pages:
        await answer_stale(update, context)
        return
    await answer(update.callback_query, where.t("cards.page_alert", page=page, pages=pages))


async def noop_button(update: Update, context: Context) -> None:
    await answer(update.callback_query)


HANDLERS = [
    CommandHandler("cards", cards_command),
    CommandHandler("expiring", expiring_command),
    CallbackQueryHandler(page_button, pattern=rf"^pg:(a|e[0-9]{{1,4}}):{CALLBACK_INT}$"),
    CallbackQueryHandler(open_card_button, pattern=rf"^cd:{CALLBACK_INT}$"),
    CallbackQueryHandler(delete_button, pattern=rf"^d[lyn]:{CALLBACK_INT}$"),
    CallbackQueryHandler(page_number_button, pattern=rf"^pn:{CALLBACK_INT}:{CALLBACK_INT}$"),
    CallbackQueryHandler(noop_button, pattern=r"^noop$"),  # page counters sent before pn:
]
