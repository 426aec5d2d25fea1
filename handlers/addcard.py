"""/addcard: the step-by-step conversation and the one-line form."""

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

from bot.cardinput import MAX_LABEL_LEN, clean_text, is_clear_word, parse_carrier, parse_plan
from bot.dates import parse_expiry
from bot.errors import InputError
from bot.i18n import Html
from bot.iccid import check_iccid
from bot.models import CardDraft, Carrier, Period
from bot.money import format_fen, parse_amount
from handlers.common import (
    Context,
    Here,
    answer,
    ask,
    command_args,
    here,
    pressed,
    reply,
    services,
)
from handlers.conversation import END, conversation, drop_scratch, scratch
from handlers.render import (
    button,
    carrier_name,
    iccid_shown,
    markup,
    period_text,
    plan_buttons,
    status_text,
)
from storage.base import DuplicateCardError

ICCID, LUHN, EXPIRY, CARRIER, LABEL, PLAN, AUTO, CONFIRM = range(8)
NAME = "addcard"
TEXT = filters.TEXT & ~filters.COMMAND


def _draft(context: Context, where: Here) -> dict[str, Any]:
    return scratch(context, NAME, where.chat_id)


async def _error(update: Update, where: Here, exc: InputError, placeholder_key: str) -> None:
    """Say what was wrong and ask again (in groups with ForceReply, for the next try)."""
    await ask(update, where, where.t(exc.key, **exc.params), placeholder_key, edit=False)


async def _existing_card_reply(update: Update, context: Context, where: Here, iccid: str) -> bool:
    """Say so and offer to open it when the chat already has this ICCID."""
    existing = await services(context).cards.existing(where.chat_id, iccid)
    if existing is None:
        return False
    keyboard = markup([[button(where.t("button.open_card"), f"cd:{existing.id}")]])
    shown = iccid_shown(existing, where.is_group)
    await reply(update, where.t("addcard.duplicate", iccid=shown), keyboard, edit=False)
    return True


# --- step by step ----------------------------------------------------------------------------


async def start(update: Update, context: Context) -> int:
    where = await here(update, context)
    if command_args(context):
        return await one_line(update, context, where)
    drop_scratch(context, NAME, where.chat_id)
    await ask(update, where, where.t("addcard.ask_iccid"), "ask.placeholder.iccid", edit=False)
    return ICCID


async def got_iccid(update: Update, context: Context) -> int:
    where = await here(update, context)
    assert update.message is not None and update.message.text is not None
    try:
        checked = check_iccid(update.message.text)
    except InputError as exc:
        await _error(update, where, exc, "ask.placeholder.iccid")
        return ICCID
    if await _existing_card_reply(update, context, where, checked.iccid):
        drop_scratch(context, NAME, where.chat_id)
        return END
    _draft(context, where).update(iccid=checked.iccid, luhn_ok=checked.luhn_ok)
    if checked.luhn_ok is False:
        keyboard = markup(
            [
                [
                    button(where.t("button.luhn_keep"), "ac:luhn:keep"),
                    button(where.t("button.retype"), "ac:luhn:retype"),
                ]
            ]
        )
        # The corrected number can be typed straight away (the LUHN step takes text too).
        text = where.t("addcard.luhn_mismatch", iccid=checked.iccid)
        await ask(update, where, text, "ask.placeholder.iccid", keyboard)
        return LUHN
    await ask(update, where, where.t("addcard.ask_expiry"), "ask.placeholder.expiry")
    return EXPIRY


async def luhn_choice(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    if button_data == "ac:luhn:retype":
        await ask(update, where, where.t("addcard.ask_iccid"), "ask.placeholder.iccid")
        return ICCID
    await ask(update, where, where.t("addcard.ask_expiry"), "ask.placeholder.expiry")
    return EXPIRY


def _expired_note(where: Here, expiry: date) -> str:
    return where.t("addcard.already_expired") if expiry < where.today else ""


async def got_expiry(update: Update, context: Context) -> int:
    where = await here(update, context)
    assert update.message is not None and update.message.text is not None
    try:
        expiry = parse_expiry(update.message.text, where.today)
    except InputError as exc:
        await _error(update, where, exc, "ask.placeholder.expiry")
        return EXPIRY
    _draft(context, where)["expiry"] = expiry
    rows = [
        [
            button(carrier_name(where.lang, Carrier.CHINA_MOBILE), "ac:car:cmcc"),
            button(carrier_name(where.lang, Carrier.CHINA_UNICOM), "ac:car:cucc"),
        ],
        [
            button(carrier_name(where.lang, Carrier.CHINA_TELECOM), "ac:car:ctcc"),
            button(carrier_name(where.lang, Carrier.OTHER), "ac:car:other"),
        ],
    ]
    text = where.t(
        "addcard.ask_carrier", expiry=expiry.isoformat(), note=_expired_note(where, expiry)
    )
    # The four buttons cover every carrier, so no ForceReply here: typing one still works (in
    # a privacy-mode group as a reply to this question).
    await reply(update, text, markup(rows))
    return CARRIER


async def _ask_label(update: Update, where: Here) -> int:
    keyboard = markup([[button(where.t("button.skip"), "ac:skip")]])
    await ask(update, where, where.t("addcard.ask_label"), "ask.placeholder.label", keyboard)
    return LABEL


async def carrier_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    _draft(context, where)["carrier"] = Carrier(button_data.rsplit(":", 1)[1])
    return await _ask_label(update, where)


async def carrier_typed(update: Update, context: Context) -> int:
    where = await here(update, context)
    assert update.message is not None and update.message.text is not None
    carrier = parse_carrier(update.message.text)
    if carrier is None:
        await reply(update, where.t("addcard.pick_carrier"), edit=False)
        return CARRIER
    _draft(context, where)["carrier"] = carrier
    return await _ask_label(update, where)


async def _ask_plan(update: Update, context: Context, where: Here) -> int:
    """Plans from the catalogue for the card's carrier (cheapest first), or any period."""
    carrier = _draft(context, where).get("carrier", Carrier.OTHER)
    rows = plan_buttons(services(context).catalogue, carrier, where.today, "ac:cat")
    rows += [
        [button(period_text(where.lang, Period(months=m)), f"ac:plan:{m}") for m in (1, 3, 6, 12)],
        [button(where.t("button.skip"), "ac:skip")],
    ]
    text = where.t("addcard.ask_plan")
    await ask(update, where, text, "ask.placeholder.plan", markup(rows), edit=False)
    return PLAN


async def got_label(update: Update, context: Context) -> int:
    where = await here(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query)
        _draft(context, where)["label"] = None
        return await _ask_plan(update, context, where)
    assert update.message is not None and update.message.text is not None
    try:
        label = clean_text(update.message.text, max_len=MAX_LABEL_LEN, key="error.label.too_long")
    except InputError as exc:
        await _error(update, where, exc, "ask.placeholder.label")
        return LABEL
    _draft(context, where)["label"] = label
    return await _ask_plan(update, context, where)


async def _ask_auto(update: Update, where: Here) -> int:
    rows = [[button(where.t("common.yes"), "ac:auto:1"), button(where.t("common.no"), "ac:auto:0")]]
    await reply(update, where.t("addcard.ask_auto"), markup(rows), edit=False)
    return AUTO


async def plan_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    draft = _draft(context, where)
    if button_data == "ac:skip":
        draft["plan_period"] = None
        draft["plan_price_fen"] = None
        return await _summary(update, context, where)
    kind, value = button_data.split(":")[1:]
    if kind == "cat":
        plans = services(context).catalogue.plans
        if int(value) >= len(plans):
            return PLAN  # a button from an older catalogue
        draft["plan_period"] = plans[int(value)].period
        draft["plan_price_fen"] = plans[int(value)].price_fen
        return await _ask_auto(update, where)
    draft["plan_period"] = Period(months=int(value))
    draft["plan_price_fen"] = None
    await ask(
        update,
        where,
        where.t("addcard.ask_price"),
        "ask.placeholder.price",
        markup([[button(where.t("button.skip"), "ac:noprice")]]),
    )
    return PLAN


async def got_plan(update: Update, context: Context) -> int:
    """Typed: '3个月 30元' (period and price), or just a price after a period button."""
    where = await here(update, context)
    assert update.message is not None and update.message.text is not None
    text = update.message.text
    draft = _draft(context, where)
    if is_clear_word(text):
        draft["plan_period"] = None
        draft["plan_price_fen"] = None
        return await _summary(update, context, where)
    price_only = draft.get("plan_period") is not None and draft.get("plan_price_fen") is None
    try:
        if price_only:
            draft["plan_price_fen"] = parse_amount(text)
        else:
            draft["plan_period"], draft["plan_price_fen"] = parse_plan(text)
    except InputError as exc:
        await _error(update, where, exc, f"ask.placeholder.{'price' if price_only else 'plan'}")
        return PLAN
    return await _ask_auto(update, where)


async def no_price(update: Update, context: Context) -> int:
    await answer(update.callback_query)
    where = await here(update, context)
    return await _ask_auto(update, where)


async def auto_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    _draft(context, where)["auto_renew"] = button_data == "ac:auto:1"
    return await _summary(update, context, where)


def _summary_text(where: Here, draft: CardDraft, luhn_ok: bool | None) -> Html:
    plan = period_text(where.lang, draft.plan_period)
    if draft.plan_period is not None and draft.plan_price_fen is not None:
        plan = where.t("card.plan_with_price", period=plan, price=format_fen(draft.plan_price_fen))
    return where.t(
        "addcard.summary",
        iccid=draft.iccid,
        expiry=draft.expiry.isoformat(),
        note=_expired_note(where, draft.expiry),
        carrier=carrier_name(where.lang, draft.carrier),
        label=draft.label or where.t("common.none"),
        plan=plan,
        auto=where.t("common.yes" if draft.auto_renew else "common.no"),
        luhn=where.t("addcard.luhn_warning") if luhn_ok is False else "",
    )


async def _summary(update: Update, context: Context, where: Here) -> int:
    data = _draft(context, where)
    draft = CardDraft(**{k: v for k, v in data.items() if k in CardDraft.model_fields})
    rows = [
        [button(where.t("button.save"), "ac:save"), button(where.t("button.cancel"), "ac:cancel")]
    ]
    await reply(update, _summary_text(where, draft, data.get("luhn_ok")), markup(rows), edit=False)
    return CONFIRM


async def confirm_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    data = _draft(context, where)
    drop_scratch(context, NAME, where.chat_id)
    if button_data != "ac:save" or "iccid" not in data:
        await reply(update, where.t("conversation.cancelled"))
        return END
    await _save(
        update,
        context,
        where,
        CardDraft(**{k: v for k, v in data.items() if k in CardDraft.model_fields}),
    )
    return END


async def _save(update: Update, context: Context, where: Here, draft: CardDraft) -> None:
    try:
        card = await services(context).cards.add(where.chat_id, draft)
    except DuplicateCardError:
        await _existing_card_reply(update, context, where, draft.iccid)
        return
    keyboard = markup([[button(where.t("button.open_card"), f"cd:{card.id}")]])
    text = where.t(
        "addcard.saved",
        iccid=iccid_shown(card, where.is_group),
        expiry=card.expiry.isoformat(),
        status=status_text(where.lang, card, where.today),
        note=_expired_note(where, card.expiry) or where.t("addcard.will_remind"),
    )
    await reply(update, text, keyboard)


# --- one line: /addcard <ICCID> <expiry> [carrier] [label…] ------------------------------------


async def one_line(update: Update, context: Context, where: Here) -> int:
    args = command_args(context)
    if len(args) < 2:
        await reply(update, where.t("addcard.one_line_usage"), edit=False)
        return END
    try:
        checked = check_iccid(args[0])
        expiry = parse_expiry(args[1], where.today)
        carrier = parse_carrier(args[2]) if len(args) > 2 else None
        label_words = args[3:] if carrier is not None else args[2:]
        label = clean_text(" ".join(label_words), max_len=MAX_LABEL_LEN, key="error.label.too_long")
    except InputError as exc:
        await reply(update, where.t(exc.key, **exc.params), edit=False)  # nothing more to ask
        return END
    if await _existing_card_reply(update, context, where, checked.iccid):
        return END
    draft = CardDraft(
        iccid=checked.iccid, expiry=expiry, carrier=carrier or Carrier.OTHER, label=label
    )
    if checked.luhn_ok is False:
        # Don't guess: a mistyped digit would file the card under the wrong number.
        data = _draft(context, where)
        data.clear()
        data.update(draft.model_dump(), luhn_ok=False)
        return await _summary(update, context, where)
    await _save(update, context, where, draft)
    return END


def conversation_handler() -> ConversationHandler[Any]:
    """A fresh handler per Application: it holds the state of conversations in progress."""
    return conversation(
        NAME,
        entry_points=[CommandHandler("addcard", start)],
        states={
            ICCID: [MessageHandler(TEXT, got_iccid)],
            LUHN: [
                CallbackQueryHandler(luhn_choice, pattern=r"^ac:luhn:"),
                MessageHandler(TEXT, got_iccid),  # the corrected ICCID, typed after the warning
            ],
            EXPIRY: [MessageHandler(TEXT, got_expiry)],
            CARRIER: [
                CallbackQueryHandler(carrier_button, pattern=r"^ac:car:(cmcc|cucc|ctcc|other)$"),
                MessageHandler(TEXT, carrier_typed),
            ],
            LABEL: [
                CallbackQueryHandler(got_label, pattern=r"^ac:skip$"),
                MessageHandler(TEXT, got_label),
            ],
            PLAN: [
                CallbackQueryHandler(plan_button, pattern=r"^ac:(plan:\d+|cat:\d+|skip)$"),
                CallbackQueryHandler(no_price, pattern=r"^ac:noprice$"),
                MessageHandler(TEXT, got_plan),
            ],
            AUTO: [CallbackQueryHandler(auto_button, pattern=r"^ac:auto:[01]$")],
            CONFIRM: [CallbackQueryHandler(confirm_button, pattern=r"^ac:(save|cancel)$")],
        },
    )
