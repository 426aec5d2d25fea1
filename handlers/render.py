"""Turning domain objects into chat text and buttons (all words come from the catalogue)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Html, t
from bot.iccid import mask_iccid, shown_iccid
from bot.models import Card, CardEdit, CardStatus, Carrier, EditField, Period, Renewal
from bot.money import format_fen
from bot.plans.catalogue import Catalogue
from bot.services.cards import PAGE_SIZE, CardPage, parse_plan_value

TRAIL_TEXT_LEN = 24  # a label or note in the edit trail: this much, then "…"

Keyboard = list[list[InlineKeyboardButton]]


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


def markup(rows: Keyboard) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(rows)


def card_pick_text(card: Card, is_group: bool, prefix: str = "") -> str:
    """A button naming one of several cards (``/renew 1234``, ``/edit``, ``/delete``): the ICCID
    as the chat may see it, then the label; an archived card marked 🗄 (a returned terminal and
    its replacement often share a label and their last digits)."""
    mark = prefix or ("🗄" if card.archived else "")
    return " ".join(part for part in (mark, shown_iccid(card.iccid, is_group), card.label) if part)


def carrier_name(lang: str, carrier: Carrier) -> Html:
    return t(lang, f"carrier.{carrier.value}")


STANDARD_MONTHS = (1, 3, 6, 12)  # the periods /addcard and /renew offer as buttons


def period_text(lang: str, period: Period | None) -> Html:
    if period is None or period.is_empty:
        return t(lang, "common.none")
    parts = []
    if period.months:
        if period.months % 12 == 0:
            parts.append(t(lang, "period.years", n=period.months // 12))
        else:
            parts.append(t(lang, "period.months", n=period.months))
    if period.days:
        parts.append(t(lang, "period.days", n=period.days))
    return Html(" ".join(parts))


def plan_text(lang: str, card: Card) -> Html:
    if card.plan_period is None:
        return t(lang, "common.none")
    if card.plan_price_fen is None:
        return period_text(lang, card.plan_period)
    return t(
        lang,
        "card.plan_with_price",
        period=period_text(lang, card.plan_period),
        price=format_fen(card.plan_price_fen),
    )


def status_text(lang: str, card: Card, today: date) -> Html:
    days = card.days_left(today)
    status = card.status(today)
    if status is CardStatus.OK:
        return t(lang, "status.ok", days=days)
    if status is CardStatus.EXPIRING:
        return t(lang, "status.today") if days == 0 else t(lang, "status.expiring", days=days)
    if status is CardStatus.SUSPENDED:
        return t(lang, "status.suspended", days=-days)
    return t(lang, "status.expired", days=-days)


def label_part(label: str | None) -> str:
    """A card's label as it follows the ICCID in a sentence: " 收银台1", or nothing at all
    (no stray space before the punctuation when the card has no label)."""
    return f" {label}" if label else ""


def card_line(lang: str, card: Card, today: date, is_group: bool, number: int) -> Html:
    line = t(
        lang,
        "cards.line",
        n=number,
        status=status_text(lang, card, today),
        iccid=shown_iccid(card.iccid, is_group),
        label=label_part(card.label),
        expiry=card.expiry.isoformat(),
    )
    if card.muted:
        line = Html(line + t(lang, "cards.muted_mark"))
    if card.archived:  # only /find lists archived cards
        line = Html(line + t(lang, "cards.archived_mark"))
    return line


def card_button_text(card: Card, number: int) -> str:
    """Button labels are plain text: the last digits say which card, the label says where."""
    label = f" {card.label}" if card.label else ""
    text = f"{number}. {mask_iccid(card.iccid)}{label}"
    return text if len(text) <= 40 else text[:39] + "…"


def card_list(
    lang: str,
    page: CardPage,
    today: date,
    is_group: bool,
    *,
    title_key: str,
    empty_key: str,
    nav_data: str,
    open_prefix: str = "cd",
    **title_params: object,
) -> tuple[Html, InlineKeyboardMarkup | None]:
    """A page of cards as text plus one button per card and ◀ n/m ▶ navigation."""
    if page.total == 0:
        return t(lang, empty_key, **title_params), None
    first = page.page * PAGE_SIZE + 1
    lines = [card_line(lang, card, today, is_group, first + i) for i, card in enumerate(page.cards)]
    title = t(lang, title_key, total=page.total, **title_params)
    pager = t(lang, "cards.page", page=page.page + 1, pages=page.pages)
    text = Html("\n".join([title, pager, "", *lines]))
    rows: Keyboard = []
    pair: list[InlineKeyboardButton] = []
    for i, card in enumerate(page.cards):
        pair.append(button(card_button_text(card, first + i), f"{open_prefix}:{card.id}"))
        if len(pair) == 2:
            rows.append(pair)
            pair = []
    if pair:
        rows.append(pair)
    if page.pages > 1:
        nav = []
        if page.page > 0:
            nav.append(button("◀", f"{nav_data}:{page.page - 1}"))
        counter = f"{page.page + 1}/{page.pages}"
        nav.append(button(counter, f"pn:{page.page + 1}:{page.pages}"))  # says where you are
        if page.page < page.pages - 1:
            nav.append(button("▶", f"{nav_data}:{page.page + 1}"))
        rows.append(nav)
    return text, markup(rows)


CATALOGUE_BUTTONS = 4  # the cheapest few; any other period can still be typed


def plan_buttons(catalogue: Catalogue, carrier: Carrier, today: date, prefix: str) -> Keyboard:
    """One button per catalogue plan of ``carrier`` on sale today, cheapest per month first."""
    return [
        [
            button(
                f"{plan.name} {format_fen(plan.price_fen)}", f"{prefix}:{catalogue.index_of(plan)}"
            )
        ]
        for plan in catalogue.on_sale(carrier, today)[:CATALOGUE_BUTTONS]
    ]


def renewal_line(lang: str, renewal: Renewal) -> Html:
    who = renewal.by_name or (t(lang, "renewal.auto_by") if renewal.automatic else "—")
    extra: list[str] = []
    if renewal.period is not None:
        extra.append(period_text(lang, renewal.period))
    if renewal.amount_fen is not None:
        extra.append(format_fen(renewal.amount_fen))
    return t(
        lang,
        "renewal.line",
        when=renewal.renewed_at.date().isoformat(),
        who=who,
        old=renewal.old_expiry.isoformat(),
        new=renewal.new_expiry.isoformat(),
        extra=" · ".join(extra),
    )


def _edit_value(lang: str, field: EditField, value: str | None, is_group: bool) -> str:
    """A value of the edit trail as the chat may read it (ICCIDs masked in groups)."""
    if value is None:
        return t(lang, "common.none")
    if field is EditField.CARRIER:
        known = {carrier.value: carrier for carrier in Carrier}
        return carrier_name(lang, known[value]) if value in known else value
    if field is EditField.PLAN:
        period, price = parse_plan_value(value)
        if period is not None and price is not None:
            return t(
                lang,
                "card.plan_with_price",
                period=period_text(lang, period),
                price=format_fen(price),
            )
        return period_text(lang, period)
    if field is EditField.ICCID:
        return shown_iccid(value, is_group)
    if field in (EditField.LABEL, EditField.NOTE) and len(value) > TRAIL_TEXT_LEN:
        return value[:TRAIL_TEXT_LEN] + "…"
    return value


def edit_line(lang: str, edit: CardEdit, is_group: bool) -> Html:
    return t(
        lang,
        "card.edit_line",
        when=edit.edited_at.date().isoformat(),
        who=edit.by_name or "—",
        field=t(lang, f"edit.field.{edit.field.value}"),
        old=_edit_value(lang, edit.field, edit.old_value, is_group),
        new=_edit_value(lang, edit.field, edit.new_value, is_group),
    )


def card_detail(
    lang: str,
    card: Card,
    today: date,
    is_group: bool,
    history: list[Renewal],
    edits: Sequence[CardEdit] = (),
) -> Html:
    fields = t(
        lang,
        "card.detail",
        iccid=shown_iccid(card.iccid, is_group),
        status=status_text(lang, card, today),
        expiry=card.expiry.isoformat(),
        carrier=carrier_name(lang, card.carrier),
        label=card.label or t(lang, "common.none"),
        plan=plan_text(lang, card),
        auto=t(lang, "common.yes" if card.auto_renew else "common.no"),
        reminders=t(lang, _reminders_key(card)),
        note=card.note or t(lang, "common.none"),
    )
    if history:
        lines = [fields, "", t(lang, "card.history"), *(renewal_line(lang, r) for r in history)]
    else:
        lines = [fields, "", t(lang, "card.no_history")]
    if card.archived_at is not None:
        lines.insert(1, t(lang, "card.archived", when=archived_on(card)))
    if edits:  # next to the renewals, but apart: an edit is no renewal
        lines += ["", t(lang, "card.edits"), *(edit_line(lang, e, is_group) for e in edits)]
    return Html("\n".join(lines))


def _reminders_key(card: Card) -> str:
    if card.archived:
        return "card.reminders_archived"  # out of service: no reminders, whatever else is set
    return "card.reminders_muted" if card.muted else "card.reminders_on"


def archived_on(card: Card) -> str:
    """The day (UTC, as renewals show theirs) the card was archived; empty if it is not."""
    return card.archived_at.date().isoformat() if card.archived_at else ""


def detail_keyboard(lang: str, card: Card) -> InlineKeyboardMarkup:
    # archive asks first (ar:); restore is one tap (ur:), as it only brings reminders back
    service = (
        button(t(lang, "button.restore"), f"ur:{card.id}")
        if card.archived
        else button(t(lang, "button.archive"), f"ar:{card.id}")
    )
    return markup(
        [
            [
                button(t(lang, "button.renew"), f"rn:{card.id}"),
                button(t(lang, "button.edit"), f"ed:{card.id}"),
                button(t(lang, "button.delete"), f"dl:{card.id}"),
            ],
            [service, button(t(lang, "button.back_to_list"), "pg:a:0")],
        ]
    )
