"""Editing a card's fields from its detail view (or ``/edit <ICCID or last 4+>``)."""

from __future__ import annotations

from collections.abc import Callable
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
    MAX_NOTE_LEN,
    clean_text,
    is_clear_word,
    parse_carrier,
    parse_expiry_change,
    parse_plan,
)
from bot.errors import InputError, excerpt
from bot.i18n import Html
from bot.iccid import (
    carrier_from_iccid,
    check_iccid,
    normalize_iccid,
    shown_iccid,
    shown_lookalikes,
)
from bot.models import Card, Carrier, RenewalRule
from bot.services.cards import ExpiryEdit
from handlers.cards import delete_question, show_card
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
    is_admin,
    pressed,
    reply,
    services,
)
from handlers.conversation import END, conversation, drop_scratch, scratch
from handlers.digest import post_mute_notice
from handlers.render import (
    Keyboard,
    button,
    card_pick_text,
    carrier_name,
    label_part,
    markup,
    plan_buttons,
)
from storage.base import DuplicateCardError

VALUE, CONFIRM = range(2)
NAME = "edit"
TEXT = filters.TEXT & ~filters.COMMAND
FIELDS = ("expiry", "carrier", "label", "plan", "note", "iccid")
TOGGLES = ("auto", "mute")
# The input field's hint per field, for ForceReply in groups; the carrier's buttons cover
# every carrier, so it asks without one (typing still works as a reply).
PLACEHOLDERS = {
    "expiry": "ask.placeholder.expiry",
    "label": "ask.placeholder.label",
    "plan": "ask.placeholder.plan",
    "note": "ask.placeholder.note",
    "iccid": "ask.placeholder.iccid",
}


def _menu(where: Here, card: Card) -> tuple[Html, Keyboard]:
    rows = [
        [
            button(where.t("edit.field.expiry"), f"ef:{card.id}:expiry"),
            button(where.t("edit.field.carrier"), f"ef:{card.id}:carrier"),
        ],
        [
            button(where.t("edit.field.label"), f"ef:{card.id}:label"),
            button(where.t("edit.field.plan"), f"ef:{card.id}:plan"),
        ],
        [
            button(where.t("edit.field.note"), f"ef:{card.id}:note"),
            button(where.t("edit.field.iccid"), f"ef:{card.id}:iccid"),
        ],
        [
            button(
                where.t("edit.toggle.auto_off" if card.auto_renew else "edit.toggle.auto_on"),
                f"et:{card.id}:auto",
            ),
            button(
                where.t("edit.toggle.unmute" if card.muted else "edit.toggle.mute"),
                f"et:{card.id}:mute",
            ),
        ],
        [button(where.t("button.back"), f"cd:{card.id}")],
    ]
    text = where.t(
        "edit.menu", iccid=shown_iccid(card.iccid, where.is_group), label=label_part(card.label)
    )
    return text, rows


async def show_menu(update: Update, context: Context, where: Here, card_id: int) -> None:
    card = await services(context).cards.get(where.chat_id, card_id)
    if card is None:
        await reply(update, where.t("card.not_found"), edit=False)
        return
    text, rows = _menu(where, card)
    await reply(update, text, markup(rows))


async def menu_button(update: Update, context: Context) -> int:
    card_id = callback_arg(update, 1)
    if card_id is None:
        await answer_stale(update, context)
        return END
    await answer(update.callback_query)
    await show_menu(update, context, await here(update, context), card_id)
    return END


async def edit_command(update: Update, context: Context) -> int:
    where = await here(update, context)
    args = command_args(context)
    if not args:
        await reply(update, where.t("edit.usage"), edit=False)
        return END
    matches = await services(context).cards.resolve(where.chat_id, args[0])
    if not matches:
        await reply(update, where.t("renew.no_match", ref=excerpt(args[0])), edit=False)
    elif len(matches) > 1:
        rows = [[button(card_pick_text(c, where.is_group), f"ed:{c.id}")] for c in matches]
        await reply(update, where.t("renew.which", ref=excerpt(args[0])), markup(rows), edit=False)
    else:
        await show_menu(update, context, where, matches[0].id)
    return END


async def toggle_button(update: Update, context: Context) -> int:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    card_id = callback_arg(update, 1)
    if card_id is None:
        await answer_stale(update, context)
        return END
    where = await here(update, context)
    svc = services(context)
    card = await svc.cards.get(where.chat_id, card_id)
    if card is None:
        await answer(query, where.t("card.not_found"), alert=True)
        return END
    what = query.data.rsplit(":", 1)[1]
    if what == "auto":
        if not card.auto_renew and card.plan_period is None:
            await answer(query, where.t("edit.auto_needs_plan"), alert=True)
            return END
        card = card.model_copy(update={"auto_renew": not card.auto_renew})
    elif what == "mute":
        card = card.model_copy(update={"muted": not card.muted})
    await answer(query, where.t("edit.saved"))
    await svc.cards.update(card)
    await show_menu(update, context, where, card.id)
    if what == "mute" and where.is_group:  # as a digest's 🔕 does: the group relies on it
        await post_mute_notice(update, where, card)
    return END


async def field_button(update: Update, context: Context) -> int:
    query = update.callback_query
    assert query is not None and isinstance(query.data, str)
    parts = query.data.split(":")
    card_id = callback_arg(update, 1)
    if card_id is None or len(parts) != 3 or parts[2] not in FIELDS:
        await answer_stale(update, context)
        return END
    _, where = await pressed(update, context)
    card = await services(context).cards.get(where.chat_id, card_id)
    if card is None:
        await reply(update, where.t("card.not_found"), edit=False)
        return END
    field = parts[2]
    if field == "iccid" and not await is_admin(update, context):
        await reply(update, where.t("group.admins_only"), edit=False)
        return END
    data = scratch(context, NAME, where.chat_id)
    data.update(card_id=card.id, field=field)
    rows: Keyboard = []
    if field == "carrier":
        rows = [[button(carrier_name(where.lang, c), f"ecar:{c.value}")] for c in Carrier]
    if field == "plan":
        rows = plan_buttons(services(context).catalogue, card.carrier, where.today, "ecat")
    question = where.t(f"edit.ask.{field}", expiry=card.expiry.isoformat())
    await _ask(update, where, field, question, rows)
    return VALUE


async def _ask(update: Update, where: Here, field: str, text: str, rows: Keyboard) -> None:
    """Ask for the field's new value (again, after a mistake); see ``ask`` about groups."""
    keyboard = markup(rows) if rows else None
    placeholder = PLACEHOLDERS.get(field)
    if placeholder is None:
        await reply(update, text, keyboard, edit=False)
    else:
        await ask(update, where, text, placeholder, keyboard, edit=False)


def _apply(card: Card, field: str, text: str) -> Card:
    """The card with one field changed from what the user typed; raises InputError."""
    if field == "carrier":
        carrier = parse_carrier(text)
        if carrier is None:
            raise InputError("addcard.pick_carrier")
        return card.model_copy(update={"carrier": carrier})
    if field == "label":
        label = clean_text(text, max_len=MAX_LABEL_LEN, key="error.label.too_long")
        return card.model_copy(update={"label": label})
    if field == "note":
        note = clean_text(text, max_len=MAX_NOTE_LEN, key="error.note.too_long")
        return card.model_copy(update={"note": note})
    if field == "plan":
        if is_clear_word(text):
            return card.model_copy(
                update={"plan_period": None, "plan_price_fen": None, "auto_renew": False}
            )
        period, price = parse_plan(text)
        return card.model_copy(update={"plan_period": period, "plan_price_fen": price})
    checked = check_iccid(text)  # field == "iccid"
    return card.model_copy(update={"iccid": checked.iccid})


async def _save(
    update: Update, context: Context, where: Here, value: str | Callable[[Card], Card]
) -> int:
    """Save the field being edited: ``value`` as typed, or a change to apply to the card."""
    data = scratch(context, NAME, where.chat_id)
    svc = services(context)
    card = await svc.cards.get(where.chat_id, int(data.get("card_id", 0)))
    if card is None:
        drop_scratch(context, NAME, where.chat_id)
        await reply(update, where.t("card.not_found"), edit=False)
        return END
    field = str(data.get("field"))
    if field == "expiry" and isinstance(value, str):
        return await _ask_expiry_confirm(update, context, where, card, value)
    if field == "iccid" and isinstance(value, str):
        try:
            checked = check_iccid(value)
        except InputError as exc:
            await _ask(update, where, field, where.t(exc.key, **exc.params), [])
            return VALUE
        if checked.digits_suggestion is not None:
            # "8986OO12…": offer the digits before filing the card under letters
            data.update(typed=checked.iccid, digits=checked.digits_suggestion)
            shown, fixed = shown_lookalikes(
                checked.iccid, checked.digits_suggestion, where.is_group
            )
            text = where.t("addcard.lookalike", iccid=shown, fixed=fixed)
            rows = [
                [button(where.t("button.use_digits", fixed=fixed), "eicc:digits")],
                [button(where.t("button.letters_right"), "eicc:typed")],
            ]
            await reply(update, text, markup(rows), edit=False)
            return VALUE
    try:
        changed = _apply(card, field, value) if isinstance(value, str) else value(card)
        saved = await svc.cards.edit(
            card, changed, by_user_id=where.user_id, by_name=where.user_name
        )
    except InputError as exc:
        await _ask(update, where, field, where.t(exc.key, **exc.params), [])
        return VALUE
    except DuplicateCardError as exc:
        shown = shown_iccid(exc.existing.iccid, where.is_group)
        await _ask(update, where, field, where.t("addcard.duplicate", iccid=shown), [])
        return VALUE
    drop_scratch(context, NAME, where.chat_id)
    if saved is None:  # renewed (or deleted) while the question was open
        await _changed(update, context, where, card.id)
        return END
    note = _carrier_note(where, saved) if field in ("carrier", "iccid") else ""
    await reply(update, Html(where.t("edit.saved") + note), edit=False)
    await show_card(update, context, where, card.id)
    return END


def _carrier_note(where: Here, card: Card) -> str:
    """A note when the carrier contradicts the ICCID's issuer prefix (the person's choice wins)."""
    prefix_carrier = carrier_from_iccid(card.iccid)
    if prefix_carrier is None or prefix_carrier is card.carrier or card.carrier is Carrier.OTHER:
        return ""
    return where.t(
        "addcard.carrier_mismatch",
        prefix=normalize_iccid(card.iccid)[:6],
        inferred=carrier_name(where.lang, prefix_carrier),
        carrier=carrier_name(where.lang, card.carrier),
    )


async def _changed(update: Update, context: Context, where: Here, card_id: int) -> None:
    card = await services(context).cards.get(where.chat_id, card_id)
    if card is None:
        await reply(update, where.t("card.not_found"), edit=False)
        return
    keyboard = markup([[button(where.t("button.open_card"), f"cd:{card.id}")]])
    text = where.t("edit.changed", expiry=card.expiry.isoformat())
    await reply(update, text, keyboard, edit=False)


# --- the expiry: a length counts from the current expiry; always confirmed ---------------------


def _expiry_rule(where: Here, plan: ExpiryEdit) -> str:
    if plan.rule is RenewalRule.EXTEND:
        return where.t("renew.rule.extend", old=plan.old_expiry.isoformat())
    if plan.rule is RenewalRule.RESTART:
        return where.t("renew.rule.restart", today=where.today.isoformat())
    return where.t("renew.rule.set_date")


async def _ask_expiry_confirm(
    update: Update, context: Context, where: Here, card: Card, text: str
) -> int:
    svc = services(context)
    try:
        plan = svc.cards.plan_expiry_edit(card, where.today, parse_expiry_change(text, where.today))
    except InputError as exc:
        await _ask(update, where, "expiry", where.t(exc.key, **exc.params), [])
        return VALUE
    if plan.new_expiry == plan.old_expiry:
        await _ask(
            update, where, "expiry", where.t("edit.expiry_same", expiry=card.expiry.isoformat()), []
        )
        return VALUE
    data = scratch(context, NAME, where.chat_id)
    data.update(old_expiry=plan.old_expiry, new_expiry=plan.new_expiry)
    warnings = []
    if plan.earlier:
        warnings.append(where.t("edit.expiry_earlier", old=plan.old_expiry.isoformat()))
    if plan.new_expiry < where.today:
        warnings.append(where.t("edit.expiry_past"))
    question = where.t(
        "edit.expiry_confirm",
        iccid=shown_iccid(card.iccid, where.is_group),
        label=label_part(card.label),
        old=plan.old_expiry.isoformat(),
        new=plan.new_expiry.isoformat(),
        rule=_expiry_rule(where, plan),
        warning=Html("".join(warnings)),
    )
    rows = [
        [
            button(where.t("button.confirm_edit"), "eexp:ok"),
            button(where.t("button.cancel"), "eexp:no"),
        ]
    ]
    await reply(update, question, markup(rows), edit=False)
    return CONFIRM


async def expiry_confirm_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    data = dict(scratch(context, NAME, where.chat_id))
    drop_scratch(context, NAME, where.chat_id)
    if button_data != "eexp:ok" or "new_expiry" not in data:
        await reply(update, where.t("conversation.cancelled"))
        return END
    svc = services(context)
    card = await svc.cards.get(where.chat_id, int(data.get("card_id", 0)))
    if card is None:
        await reply(update, where.t("card.not_found"), edit=False)
        return END
    saved = None
    if card.expiry == data["old_expiry"]:
        changed = card.model_copy(update={"expiry": data["new_expiry"]})
        saved = await svc.cards.edit(
            card, changed, by_user_id=where.user_id, by_name=where.user_name
        )
    if saved is None:  # renewed or edited since the confirmation was shown
        await _changed(update, context, where, card.id)
        return END
    text = where.t(
        "edit.expiry_saved",
        old=data["old_expiry"].isoformat(),
        new=saved.expiry.isoformat(),
    )
    await reply(update, text, markup([[button(where.t("button.open_card"), f"cd:{card.id}")]]))
    return END


async def iccid_choice_button(update: Update, context: Context) -> int:
    """The answer to an ICCID with letters that look like digits: the digits, or as typed."""
    button_data, where = await pressed(update, context)
    data = scratch(context, NAME, where.chat_id)
    chosen = data.pop("digits" if button_data == "eicc:digits" else "typed", None)
    data.pop("digits", None)
    data.pop("typed", None)
    if not isinstance(chosen, str):
        return VALUE
    return await _save(
        update, context, where, lambda card: card.model_copy(update={"iccid": chosen})
    )


async def value_typed(update: Update, context: Context) -> int:
    assert update.message is not None and update.message.text is not None
    return await _save(update, context, await here(update, context), update.message.text)


async def carrier_button(update: Update, context: Context) -> int:
    button_data, where = await pressed(update, context)
    return await _save(update, context, where, button_data.split(":")[1])


async def catalogue_plan_button(update: Update, context: Context) -> int:
    """A plan picked from the catalogue: its period and price, in one tap."""
    plans = services(context).catalogue.plans
    index = callback_arg(update, 1)
    if index is None or index >= len(plans):  # a button from a catalogue changed since
        await answer_stale(update, context)
        return VALUE
    _, where = await pressed(update, context)
    plan = plans[index]
    return await _save(
        update,
        context,
        where,
        lambda card: card.model_copy(
            update={"plan_period": plan.period, "plan_price_fen": plan.price_fen}
        ),
    )


async def delete_command(update: Update, context: Context) -> None:
    """/delete <ICCID or last 4+>: find the card and ask for confirmation like the button does."""
    where = await here(update, context)
    args = command_args(context)
    if not args:
        await reply(update, where.t("delete.usage"), edit=False)
        return
    matches = await services(context).cards.resolve(where.chat_id, args[0])
    if not matches:
        await reply(update, where.t("renew.no_match", ref=excerpt(args[0])), edit=False)
        return
    if len(matches) == 1:  # one card: straight to "delete it?", as /edit and /renew open it
        if not await is_admin(update, context):
            await reply(update, where.t("group.admins_only"), edit=False)
            return
        await reply(update, *delete_question(where, matches[0]), edit=False)
        return
    rows = [[button(card_pick_text(c, where.is_group, "🗑"), f"dl:{c.id}")] for c in matches]
    await reply(update, where.t("delete.pick"), markup(rows), edit=False)


def conversation_handler() -> ConversationHandler[Any]:
    """A fresh handler per Application: it holds the state of conversations in progress."""
    return conversation(
        NAME,
        entry_points=[
            CommandHandler("edit", edit_command),
            CallbackQueryHandler(menu_button, pattern=rf"^ed:{CALLBACK_INT}$"),
            CallbackQueryHandler(toggle_button, pattern=rf"^et:{CALLBACK_INT}:(auto|mute)$"),
            CallbackQueryHandler(field_button, pattern=rf"^ef:{CALLBACK_INT}:[a-z]{{1,16}}$"),
        ],
        states={
            VALUE: [
                CallbackQueryHandler(carrier_button, pattern=r"^ecar:[a-z]{1,16}$"),
                CallbackQueryHandler(catalogue_plan_button, pattern=rf"^ecat:{CALLBACK_INT}$"),
                CallbackQueryHandler(iccid_choice_button, pattern=r"^eicc:(digits|typed)$"),
                MessageHandler(TEXT, value_typed),
            ],
            CONFIRM: [CallbackQueryHandler(expiry_confirm_button, pattern=r"^eexp:(ok|no)$")],
        },
    )


EXTRA_HANDLERS = [CommandHandler("delete", delete_command)]
