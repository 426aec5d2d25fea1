"""/renew: pick a card, a period or date, the amount paid, confirm; or all of it in one line."""

from __future__ import annotations

from datetime import date
from typing import Any

from telegram import Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.errors import InputError, excerpt
from bot.i18n import Html
from bot.iccid import shown_iccid
from bot.models import Card, Period, RenewalRule
from bot.money import format_fen, parse_amount
from bot.plans.advice import cheapest_for
from bot.services.cards import RenewalPlan, parse_renewal_choice
from handlers.common import (
    CALLBACK_INT,
    Context,
    Here,
    answer,
    answer_stale,
    ask,
    callback_arg,
    callback_int,
    command_args,
    here,
    pressed,
    reply,
    services,
)
from handlers.conversation import END, conversation, drop_scratch, scratch
from handlers.digest import RENEWING_SUFFIX, renewal_done, renewal_opened
from handlers.money import plan_line
from handlers.render import (
    STANDARD_MONTHS,
    button,
    card_list,
    card_pick_text,
    label_part,
    markup,
    period_text,
)

PICK, PERIOD, AMOUNT, CONFIRM = range(4)
NAME = "renew"
TEXT = filters.TEXT & ~filters.COMMAND


def _scratch(context: Context, where: Here) -> dict[str, Any]:
    return scratch(context, NAME, where.chat_id)


async def _card_or_gone(update: Update, context: Context, where: Here, card_id: int) -> Card | None:
    card = await services(context).cards.get(where.chat_id, card_id)
    if card is None:
        drop_scratch(context, NAME, where.chat_id)
        await reply(update, where.t("card.not_found"), edit=False)
    return card


async def _scratch_card(
    update: Update, context: Context, where: Here
) -> tuple[dict[str, Any], Card | None]:
    """The renewal's draft and its card as it is now (None, said so, if it is gone)."""
    data = _scratch(context, where)
    return data, await _card_or_gone(update, context, where, int(data.get("card_id", 0)))


async def _pressed_card(update: Update, context: Context) -> tuple[Here, Card | None]:
    """The card whose id a pressed button carries, as it is now (None, said so, if gone)."""
    card_id = callback_arg(update, 1)
    if card_id is None:
        await answer_stale(update, context)
        return await here(update, context), None
    await answer(update.callback_query)
    where = await here(update, context)
    return where, await _card_or_gone(update, context, where, card_id)


# --- step 1: which card ------------------------------------------------------------------------


async def _show_pick(update: Update, context: Context, where: Here, page: int) -> int:
    result = await services(context).cards.page(where.chat_id, page)
    text, keyboard = card_list(
        where.lang,
        result,
        where.today,
        where.is_group,
        title_key="renew.pick",
        empty_key="cards.empty",
        nav_data="rpg",
        open_prefix="rp",
    )
    await reply(update, text, keyboard)
    return PICK if result.total else END


async def start(update: Update, context: Context) -> int:
    where = await here(update, context)
    drop_scratch(context, NAME, where.chat_id)
    if command_args(context):
        return await one_line(update, context, where)
    return await _show_pick(update, context, where, 0)


async def pick_page(update: Update, context: Context) -> int:
    page = callback_arg(update, 1)
    if page is None:
        await answer_stale(update, context)
        return PICK
    await answer(update.callback_query)
    return await _show_pick(update, context, await here(update, context), page)


async def picked(update: Update, context: Context) -> int:
    """rp:<id> from the list, rn:<id> from a card's detail or a reminder digest.

    From a digest the renewal opens in a new message: the digest stays, only that card's
    buttons say a renewal is in progress (and, once saved, that it is done)."""
    where, card = await _pressed_card(update, context)
    if card is None:
        return END
    drop_scratch(context, NAME, where.chat_id)
    data = _scratch(context, where)
    data["card_id"] = card.id
    opened = await renewal_opened(update, context, where, card)
    if opened is not None:
        data["digest"] = opened
    return await _ask_period(update, context, where, card, edit=opened is None)


# --- step 2: how long --------------------------------------------------------------------------


async def _ask_period(
    update: Update, context: Context, where: Here, card: Card, *, edit: bool = True
) -> int:
    rows = [
        [button(period_text(where.lang, Period(months=m)), f"rper:{m}") for m in STANDARD_MONTHS]
    ]
    if card.plan_period is not None:
        label = where.t("renew.by_plan", period=period_text(where.lang, card.plan_period))
        rows.append([button(label, "rper:plan")])
    text = where.t(
        "renew.ask_period",
        iccid=shown_iccid(card.iccid, where.is_group),
        label=label_part(card.label),
        expiry=card.expiry.isoformat(),
    )
    catalogue = services(context).catalogue
    cheapest = cheapest_for(card, catalogue, where.today)
    if cheapest is not None:
        text = Html(f"{text}\n\n{where.t('cost.cheapest_hint', plan=plan_line(where, cheapest))}")
        label = where.t("cost.use_cheapest", name=cheapest.name)
        rows.append([button(label, f"rper:cat:{catalogue.index_of(cheapest)}")])
    await ask(update, where, text, "ask.placeholder.period", markup(rows), edit=edit)
    return PERIOD


async def period_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    data, card = await _scratch_card(update, context, where)
    if card is None:
        return END
    value = button_data.split(":", 1)[1]
    plans = services(context).catalogue.plans
    index, months = callback_arg(update, 2), callback_int(value)
    if value == "plan" and card.plan_period is not None:
        data["choice"] = card.plan_period
        data["expected_fen"] = card.plan_price_fen
    elif value.startswith("cat:") and index is not None and index < len(plans):
        data["choice"] = plans[index].period
        data["expected_fen"] = plans[index].price_fen
    elif months is not None and months in STANDARD_MONTHS:  # only the periods offered
        data["choice"] = Period(months=months)
        same_as_plan = data["choice"] == card.plan_period
        data["expected_fen"] = card.plan_price_fen if same_as_plan else None
    else:  # a stale or forged button
        await ask(update, where, where.t("renew.bad_period"), "ask.placeholder.period", edit=False)
        return PERIOD
    return await _ask_amount(update, where, data.get("expected_fen"))


async def period_typed(update: Update, context: Context) -> int:
    where = await here(update, context)
    assert update.message is not None and update.message.text is not None
    data, card = await _scratch_card(update, context, where)
    if card is None:
        return END
    try:
        data["choice"] = parse_renewal_choice(update.message.text, where.today)
    except InputError:
        await ask(update, where, where.t("renew.bad_period"), "ask.placeholder.period", edit=False)
        return PERIOD
    same_as_plan = data["choice"] == card.plan_period
    data["expected_fen"] = card.plan_price_fen if same_as_plan else None
    return await _ask_amount(update, where, data["expected_fen"])


# --- step 3: how much was paid -----------------------------------------------------------------


async def _ask_amount(update: Update, where: Here, expected_fen: int | None) -> int:
    """How much was paid; the price of the chosen plan is one tap away."""
    rows = []
    if expected_fen is not None:
        price = format_fen(expected_fen)
        rows.append([button(where.t("renew.paid_plan_price", price=price), "ramt:plan")])
    rows.append([button(where.t("button.skip"), "ramt:skip")])
    text = where.t("renew.ask_amount")
    await ask(update, where, text, "ask.placeholder.amount", markup(rows), edit=False)
    return AMOUNT


async def amount_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    data, card = await _scratch_card(update, context, where)
    if card is None:
        return END
    data["amount_fen"] = data.get("expected_fen") if button_data == "ramt:plan" else None
    return await _confirm(update, context, where, card)


async def amount_typed(update: Update, context: Context) -> int:
    where = await here(update, context)
    assert update.message is not None and update.message.text is not None
    data, card = await _scratch_card(update, context, where)
    if card is None:
        return END
    try:
        data["amount_fen"] = parse_amount(update.message.text)
    except InputError as exc:
        text = where.t(exc.key, **exc.params)
        await ask(update, where, text, "ask.placeholder.amount", edit=False)
        return AMOUNT
    return await _confirm(update, context, where, card)


# --- step 4: confirm ---------------------------------------------------------------------------


def _rule_text(where: Here, plan: RenewalPlan) -> str:
    if plan.rule is RenewalRule.EXTEND:
        return where.t("renew.rule.extend", old=plan.old_expiry.isoformat())
    if plan.rule is RenewalRule.RESTART:
        return where.t("renew.rule.restart", today=where.today.isoformat())
    return where.t("renew.rule.set_date")


async def _confirm(update: Update, context: Context, where: Here, card: Card) -> int:
    data = _scratch(context, where)
    try:
        plan = services(context).cards.plan_renewal(card, where.today, data["choice"])
    except InputError as exc:  # an empty period, or an expiry too far off: ask again
        await ask(
            update, where, where.t(exc.key, **exc.params), "ask.placeholder.period", edit=False
        )
        return PERIOD
    data["old_expiry"] = plan.old_expiry
    amount = data.get("amount_fen")
    text = where.t(
        "renew.confirm",
        iccid=shown_iccid(card.iccid, where.is_group),
        label=label_part(card.label),
        old=plan.old_expiry.isoformat(),
        new=plan.new_expiry.isoformat(),
        rule=_rule_text(where, plan),
        amount=format_fen(amount) if amount is not None else where.t("common.none"),
        warning=where.t("renew.not_later") if plan.new_expiry <= plan.old_expiry else "",
    )
    rows = [
        [button(where.t("button.confirm_renew"), "rok"), button(where.t("button.cancel"), "rno")]
    ]
    await reply(update, text, markup(rows), edit=False)
    return CONFIRM


async def confirm_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    data = dict(_scratch(context, where))
    drop_scratch(context, NAME, where.chat_id)
    if button_data != "rok" or "choice" not in data:
        await reply(update, where.t("conversation.cancelled"))
        return END
    card = await _card_or_gone(update, context, where, int(data["card_id"]))
    if card is None:
        return END
    svc = services(context)
    try:
        plan = svc.cards.plan_renewal(card, where.today, data["choice"])
    except InputError as exc:  # the card changed since the confirmation was shown
        await reply(update, where.t(exc.key, **exc.params), edit=False)
        return END
    renewal = None
    if card.expiry == data["old_expiry"]:
        renewal = await svc.cards.renew(
            plan,
            amount_fen=data.get("amount_fen"),
            by_user_id=where.user_id,
            by_name=where.user_name,
        )
    if renewal is None:
        # Someone renewed or edited the card while this confirmation was open.
        keyboard = markup([[button(where.t("button.renew"), f"rn:{card.id}")]])
        await reply(update, where.t("renew.changed", expiry=card.expiry.isoformat()), keyboard)
        return END
    text = where.t(
        "renew.done",
        iccid=shown_iccid(card.iccid, where.is_group),
        label=label_part(card.label),
        old=renewal.old_expiry.isoformat(),
        new=renewal.new_expiry.isoformat(),
        rule=_rule_text(where, plan),
    )
    if card.muted:  # a renewal by a person ends the mute (storage renew_card)
        text = Html(text + where.t("renew.unmuted"))
    if card.archived:  # and puts an archived card back in service
        text = Html(text + where.t("renew.restored"))
    await reply(update, text, markup([[button(where.t("button.open_card"), f"cd:{card.id}")]]))
    if "digest" in data:
        await renewal_done(context, where, data["digest"], card, renewal.new_expiry)
    return END


# --- one line: /renew <card> [<period or date> [amount]] ---------------------------------------

MAX_CHOICE_WORDS = 3  # "3 months", "Dec 31 2027": a period or date may take a few words
MAX_LABEL_WORDS = 5  # a label named in the command ("收银台 1") may have spaces too


def split_choice(words: list[str], today: date) -> tuple[Period | date, int | None]:
    """The period or date the words start with (as many words as make one: ``3 months``,
    ``Dec 31 2027``) and the amount in the words after it, if any.

    Raises the ``InputError`` of the amount when a period was found, else that of the period.
    """
    choice_error: InputError | None = None
    amount_error: InputError | None = None
    for n in range(min(MAX_CHOICE_WORDS, len(words)), 0, -1):
        try:
            choice = parse_renewal_choice(" ".join(words[:n]), today)
        except InputError as exc:
            choice_error = exc  # the last one kept is the first word's own
            continue
        rest = words[n:]
        try:
            return choice, parse_amount(" ".join(rest)) if rest else None
        except InputError as exc:
            amount_error = amount_error or exc
    error = amount_error or choice_error
    assert error is not None, "words is never empty"
    raise error


async def _named_cards(context: Context, where: Here, args: list[str]) -> tuple[list[Card], int]:
    """The cards the command names, by ICCID (or its last 4+) or else by label, and how many
    words named them; no cards when none match."""
    cards = services(context).cards
    matches = await cards.resolve(where.chat_id, args[0])
    if matches:
        return matches, 1
    for n in range(min(MAX_LABEL_WORDS, len(args)), 0, -1):  # the longest label that matches
        matches = await cards.resolve_label(where.chat_id, " ".join(args[:n]))
        if matches:
            return matches, n
    return [], 1


async def one_line(update: Update, context: Context, where: Here) -> int:
    args = command_args(context)
    matches, used = await _named_cards(context, where, args)
    ref = " ".join(args[:used])
    if not matches:
        await reply(update, where.t("renew.no_card", ref=excerpt(ref)), edit=False)
        return END
    data = _scratch(context, where)
    rest = args[used:]
    if rest:
        try:
            choice, amount = split_choice(rest, where.today)
        except InputError as exc:
            drop_scratch(context, NAME, where.chat_id)
            await reply(update, where.t(exc.key, **exc.params), edit=False)
            return END
        data.update(choice=choice, amount_fen=amount)
    if len(matches) > 1:
        rows = [[button(card_pick_text(c, where.is_group), f"rwhich:{c.id}")] for c in matches]
        await reply(update, where.t("renew.which", ref=excerpt(ref)), markup(rows), edit=False)
        return PICK
    data["card_id"] = matches[0].id
    if not rest:  # just the card: ask for how long, as after picking it from the list
        return await _ask_period(update, context, where, matches[0])
    return await _confirm(update, context, where, matches[0])


async def which_button(update: Update, context: Context) -> int:
    """The user named several cards by their last digits and picked one."""
    where, card = await _pressed_card(update, context)
    if card is None:
        return END
    data = _scratch(context, where)
    if "choice" not in data:
        return await _ask_period(update, context, where, card)
    data["card_id"] = card.id
    return await _confirm(update, context, where, card)


def conversation_handler() -> ConversationHandler[Any]:
    """A fresh handler per Application: it holds the state of conversations in progress."""
    return conversation(
        NAME,
        entry_points=[
            CommandHandler("renew", start),
            CallbackQueryHandler(picked, pattern=rf"^rn:{CALLBACK_INT}({RENEWING_SUFFIX})?$"),
        ],
        states={
            PICK: [
                CallbackQueryHandler(picked, pattern=rf"^rp:{CALLBACK_INT}$"),
                CallbackQueryHandler(pick_page, pattern=rf"^rpg:{CALLBACK_INT}$"),
                CallbackQueryHandler(which_button, pattern=rf"^rwhich:{CALLBACK_INT}$"),
            ],
            PERIOD: [
                CallbackQueryHandler(
                    period_button, pattern=rf"^rper:({CALLBACK_INT}|plan|cat:{CALLBACK_INT})$"
                ),
                MessageHandler(TEXT, period_typed),
            ],
            AMOUNT: [
                CallbackQueryHandler(amount_button, pattern=r"^ramt:(plan|skip)$"),
                MessageHandler(TEXT, amount_typed),
            ],
            CONFIRM: [CallbackQueryHandler(confirm_button, pattern=r"^r(ok|no)$")],
        },
    )
