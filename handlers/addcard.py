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

from bot.cardinput import (
    MAX_LABEL_LEN,
    clean_text,
    is_clear_word,
    parse_carrier,
    parse_plan,
    split_trailing_plan,
)
from bot.dates import leading_expiry, parse_expiry
from bot.errors import InputError
from bot.i18n import Html
from bot.iccid import (
    carrier_from_iccid,
    check_iccid,
    normalize_iccid,
    shown_iccid,
    shown_lookalikes,
)
from bot.models import CardDraft, Carrier, Period
from bot.money import format_fen, parse_amount
from handlers.archive import restore_offer
from handlers.common import (
    CALLBACK_INT,
    Context,
    Here,
    answer,
    answer_stale,
    ask,
    callback_arg,
    command_args,
    here,
    pressed,
    reply,
    services,
)
from handlers.conversation import END, conversation, drop_scratch, scratch
from handlers.render import (
    STANDARD_MONTHS,
    button,
    carrier_name,
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
    if existing.archived:  # out of service: offer to bring it back rather than a second card
        await reply(update, *restore_offer(where, existing, "addcard.archived"), edit=False)
        return True
    keyboard = markup([[button(where.t("button.open_card"), f"cd:{existing.id}")]])
    shown = shown_iccid(existing.iccid, where.is_group)
    await reply(update, where.t("addcard.duplicate", iccid=shown), keyboard, edit=False)
    return True


def _carrier_note(where: Here, iccid: str, carrier: Carrier, *, chosen: bool, saved: bool) -> str:
    """What the ICCID's issuer prefix says about the carrier: a warning when the person's choice
    contradicts it (their choice wins), or, when they named none, that the prefix decided."""
    inferred = carrier_from_iccid(iccid)
    if inferred is None:
        return ""
    prefix = normalize_iccid(iccid)[:6]
    if not chosen:
        return where.t(
            "addcard.carrier_inferred", prefix=prefix, carrier=carrier_name(where.lang, inferred)
        )
    if carrier is inferred or carrier is Carrier.OTHER:
        return ""
    return where.t(
        "addcard.carrier_mismatch" if saved else "addcard.carrier_check",
        prefix=prefix,
        inferred=carrier_name(where.lang, inferred),
        carrier=carrier_name(where.lang, carrier),
    )


def _lookalike_keyboard(where: Here, fixed: str) -> list[list[Any]]:
    shown = shown_iccid(fixed, where.is_group)
    return [
        [button(where.t("button.use_digits", fixed=shown), "ac:digits:fix")],
        [
            button(where.t("button.letters_right"), "ac:digits:keep"),
            button(where.t("button.retype"), "ac:luhn:retype"),
        ],
    ]


async def _luhn_question(update: Update, where: Here, iccid: str) -> int:
    keyboard = markup(
        [
            [
                button(where.t("button.luhn_keep"), "ac:luhn:keep"),
                button(where.t("button.retype"), "ac:luhn:retype"),
            ]
        ]
    )
    shown = shown_iccid(iccid, where.is_group)
    # The corrected number can be typed straight away (the LUHN step takes text too).
    text = where.t("addcard.luhn_mismatch", iccid=shown)
    await ask(update, where, text, "ask.placeholder.iccid", keyboard)
    return LUHN


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
    fixed = checked.digits_suggestion
    for number in (checked.iccid, fixed):
        # "8986OO12…" for a card the chat has as "89860012…" is that card, not a new one
        if number is not None and await _existing_card_reply(update, context, where, number):
            drop_scratch(context, NAME, where.chat_id)
            return END
    draft = _draft(context, where)
    draft.update(iccid=checked.iccid, luhn_ok=checked.luhn_ok, digits=fixed)
    if fixed is not None:
        shown, shown_fixed = shown_lookalikes(checked.iccid, fixed, where.is_group)
        text = where.t("addcard.lookalike", iccid=shown, fixed=shown_fixed)
        await reply(update, text, markup(_lookalike_keyboard(where, fixed)))
        return LUHN
    if checked.luhn_ok is False:
        return await _luhn_question(update, where, checked.iccid)
    await ask(update, where, where.t("addcard.ask_expiry"), "ask.placeholder.expiry")
    return EXPIRY


async def luhn_choice(update: Update, context: Context) -> int:
    """The answer to a doubtful ICCID: a wrong check digit, or letters that look like digits."""
    button_data, where = await pressed(update, context)
    if button_data == "ac:luhn:retype":
        await ask(update, where, where.t("addcard.ask_iccid"), "ask.placeholder.iccid")
        return ICCID
    draft = _draft(context, where)
    fixed = draft.pop("digits", None)
    if button_data == "ac:digits:fix" and isinstance(fixed, str):
        draft.update(iccid=fixed, luhn_ok=check_iccid(fixed).luhn_ok)
        if draft["luhn_ok"] is False:
            return await _luhn_question(update, where, fixed)
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
    draft = _draft(context, where)
    draft["expiry"] = expiry
    # The ICCID's issuer prefix names the carrier: that button comes preselected (marked ✅).
    guess = carrier_from_iccid(str(draft.get("iccid", "")))

    def carrier_button_(carrier: Carrier) -> Any:
        name = carrier_name(where.lang, carrier)
        if carrier is guess:
            name = where.t("addcard.carrier_guess_button", carrier=name)
        return button(name, f"ac:car:{carrier.value}")

    rows = [
        [carrier_button_(Carrier.CHINA_MOBILE), carrier_button_(Carrier.CHINA_UNICOM)],
        [carrier_button_(Carrier.CHINA_TELECOM), carrier_button_(Carrier.OTHER)],
    ]
    guess_text = ""
    if guess is not None:
        prefix = normalize_iccid(str(draft["iccid"]))[:6]
        guess_text = where.t(
            "addcard.carrier_guess", prefix=prefix, carrier=carrier_name(where.lang, guess)
        )
    text = where.t(
        "addcard.ask_carrier",
        expiry=expiry.isoformat(),
        note=_expired_note(where, expiry),
        guess=Html(guess_text),
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
        [
            button(period_text(where.lang, Period(months=m)), f"ac:plan:{m}")
            for m in STANDARD_MONTHS
        ],
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
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    plans = services(context).catalogue.plans
    kind, value = query.data.split(":")[1], callback_arg(update, 2)
    if query.data != "ac:skip" and (
        value is None
        or (kind == "cat" and value >= len(plans))  # a button from an older catalogue
        or (kind == "plan" and value not in STANDARD_MONTHS)  # only the periods offered
    ):
        await answer_stale(update, context)
        return PLAN
    button_data, where = await pressed(update, context)
    draft = _draft(context, where)
    if button_data == "ac:skip" or value is None:
        draft["plan_period"] = None
        draft["plan_price_fen"] = None
        return await _summary(update, context, where)
    if kind == "cat":
        draft["plan_period"] = plans[value].period
        draft["plan_price_fen"] = plans[value].price_fen
        return await _ask_auto(update, where)
    draft["plan_period"] = Period(months=value)
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


def _card_draft(data: dict[str, Any]) -> CardDraft:
    """The draft being confirmed; without a carrier of the person's, the ICCID's prefix names it."""
    draft = CardDraft(**{k: v for k, v in data.items() if k in CardDraft.model_fields})
    if "carrier" not in data:
        draft = draft.model_copy(
            update={"carrier": carrier_from_iccid(draft.iccid) or Carrier.OTHER}
        )
    return draft


def _summary_text(where: Here, draft: CardDraft, data: dict[str, Any]) -> Html:
    plan = period_text(where.lang, draft.plan_period)
    if draft.plan_period is not None and draft.plan_price_fen is not None:
        plan = where.t("card.plan_with_price", period=plan, price=format_fen(draft.plan_price_fen))
    fixed = data.get("digits")
    digits = ""
    shown = shown_iccid(draft.iccid, where.is_group)
    if isinstance(fixed, str):
        shown, shown_fixed = shown_lookalikes(draft.iccid, fixed, where.is_group)
        digits = where.t("addcard.lookalike_warning", fixed=shown_fixed)
    return where.t(
        "addcard.summary",
        iccid=shown,
        expiry=draft.expiry.isoformat(),
        note=_expired_note(where, draft.expiry),
        carrier=carrier_name(where.lang, draft.carrier),
        carrier_note=Html(
            _carrier_note(where, draft.iccid, draft.carrier, chosen="carrier" in data, saved=False)
        ),
        label=draft.label or where.t("common.none"),
        plan=plan,
        auto=where.t("common.yes" if draft.auto_renew else "common.no"),
        luhn=where.t("addcard.luhn_warning") if data.get("luhn_ok") is False else "",
        digits=Html(digits),
    )


async def _summary(update: Update, context: Context, where: Here) -> int:
    data = _draft(context, where)
    draft = _card_draft(data)
    rows = [
        [button(where.t("button.save"), "ac:save"), button(where.t("button.cancel"), "ac:cancel")]
    ]
    if isinstance(data.get("digits"), str):
        rows.insert(0, [button(where.t("button.save_digits"), "ac:save:digits")])
    await reply(update, _summary_text(where, draft, data), markup(rows), edit=False)
    return CONFIRM


async def confirm_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    data = dict(_draft(context, where))
    drop_scratch(context, NAME, where.chat_id)
    if button_data not in ("ac:save", "ac:save:digits") or "iccid" not in data:
        await reply(update, where.t("conversation.cancelled"))
        return END
    fixed = data.pop("digits", None)
    if button_data == "ac:save:digits" and isinstance(fixed, str):
        data["iccid"] = fixed
        if check_iccid(fixed).luhn_ok is False:
            # the digits version has a wrong check digit: ask about that too, as step by step
            _draft(context, where).update(data, luhn_ok=False)
            return await _summary(update, context, where)
    await _save(update, context, where, _card_draft(data), carrier_chosen="carrier" in data)
    return END


async def _save(
    update: Update, context: Context, where: Here, draft: CardDraft, *, carrier_chosen: bool
) -> None:
    try:
        card = await services(context).cards.add(where.chat_id, draft)
    except DuplicateCardError:
        await _existing_card_reply(update, context, where, draft.iccid)
        return
    keyboard = markup([[button(where.t("button.open_card"), f"cd:{card.id}")]])
    text = where.t(
        "addcard.saved",
        iccid=shown_iccid(card.iccid, where.is_group),
        expiry=card.expiry.isoformat(),
        status=status_text(where.lang, card, where.today),
        note=_expired_note(where, card.expiry) or where.t("addcard.will_remind"),
        carrier_note=Html(
            _carrier_note(where, card.iccid, card.carrier, chosen=carrier_chosen, saved=True)
        ),
    )
    await reply(update, text, keyboard)


# --- one line: /addcard <ICCID> <expiry> [carrier] [label…] [plan] -----------------------------


async def one_line(update: Update, context: Context, where: Here) -> int:
    args = command_args(context)
    if len(args) < 2:
        await reply(update, where.t("addcard.one_line_usage"), edit=False)
        return END
    try:
        checked = check_iccid(args[0])
        # the date may be several words ("Dec 31", "31 Dec 2027", "end of month")
        expiry, used = leading_expiry(args[1:], where.today)
        rest = args[1 + used :]
        carrier = parse_carrier(rest[0]) if rest else None
        label_words = rest[1:] if carrier is not None else rest
        # "… 收银台1 3个月 30元": the plan typed after the label
        label_words, period, price = split_trailing_plan(label_words)
        label = clean_text(" ".join(label_words), max_len=MAX_LABEL_LEN, key="error.label.too_long")
    except InputError as exc:
        await reply(update, where.t(exc.key, **exc.params), edit=False)  # nothing more to ask
        return END
    fixed = checked.digits_suggestion
    for number in (checked.iccid, fixed):
        if number is not None and await _existing_card_reply(update, context, where, number):
            return END
    data: dict[str, Any] = {
        "iccid": checked.iccid,
        "expiry": expiry,
        "label": label,
        "plan_period": period,
        "plan_price_fen": price,
    }
    if carrier is not None:
        data["carrier"] = carrier
    if checked.luhn_ok is False or fixed is not None:
        # Don't guess: a mistyped digit would file the card under the wrong number.
        scratch_data = _draft(context, where)
        scratch_data.clear()
        scratch_data.update(data, luhn_ok=checked.luhn_ok, digits=fixed)
        return await _summary(update, context, where)
    await _save(update, context, where, _card_draft(data), carrier_chosen=carrier is not None)
    return END


def conversation_handler() -> ConversationHandler[Any]:
    """A fresh handler per Application: it holds the state of conversations in progress."""
    return conversation(
        NAME,
        entry_points=[CommandHandler("addcard", start)],
        states={
            ICCID: [MessageHandler(TEXT, got_iccid)],
            LUHN: [
                CallbackQueryHandler(
                    luhn_choice, pattern=r"^ac:(luhn:(keep|retype)|digits:(fix|keep))$"
                ),
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
                CallbackQueryHandler(
                    plan_button, pattern=rf"^ac:((plan|cat):{CALLBACK_INT}|skip)$"
                ),
                CallbackQueryHandler(no_price, pattern=r"^ac:noprice$"),
                MessageHandler(TEXT, got_plan),
            ],
            AUTO: [CallbackQueryHandler(auto_button, pattern=r"^ac:auto:[01]$")],
            CONFIRM: [
                CallbackQueryHandler(confirm_button, pattern=r"^ac:(save|save:digits|cancel)$")
            ],
        },
    )
