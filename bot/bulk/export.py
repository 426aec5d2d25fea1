"""A chat's cards as a table: the importable columns first, then status and last renewal.

Every importable value is written in a form the importer reads back to the same card, so
importing an export changes nothing. The informational columns (status, days left, last
renewal) have headers the importer does not know, so they are ignored on the way back.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.bulk.columns import EXPORT_HEADERS, Field
from bot.bulk.models import CardWithRenewal
from bot.bulk.writing import OutputFormat, OutValue, write_table
from bot.i18n import t
from bot.models import Card, CardStatus, Period
from bot.money import FEN_PER_YUAN

_TAG = re.compile(r"<[^>]+>")
_EXPORTED = (
    Field.ICCID,
    Field.EXPIRY,
    Field.CARRIER,
    Field.LABEL,
    Field.PERIOD,
    Field.PRICE,
    Field.AUTO_RENEW,
    Field.NOTE,
    Field.ARCHIVED,  # 停用 是/否: archived cards are exported too, and import back as they are
)
# Words the importer reads (bot.bulk.rows, bot.dates): part of the file format, per language.
_YES_NO = {"zh_CN": ("是", "否"), "en": ("yes", "no")}
_UNITS = {"zh_CN": ("{n}个月", "{n}年", "{n}天"), "en": ("{n}m", "{n}y", "{n}d")}


def plain(text: str) -> str:
    """Catalogue HTML as the plain text a spreadsheet cell holds."""
    return html.unescape(_TAG.sub("", text))


def period_cell(lang: str, period: Period | None) -> str:
    """``3个月``/``3m``, ``1年``/``1y``, ``30天``/``30d``: what ``parse_period`` reads."""
    if period is None or period.is_empty:
        return ""
    months, years, days = _UNITS.get(lang, _UNITS["en"])
    parts = []
    if period.months:
        whole_years = period.months % 12 == 0
        parts.append(
            years.format(n=period.months // 12) if whole_years else months.format(n=period.months)
        )
    if period.days:
        parts.append(days.format(n=period.days))
    return "".join(parts)  # months and days together never come from a user; not importable


def price_cell(fen: int | None) -> Decimal | None:
    return None if fen is None else Decimal(fen) / FEN_PER_YUAN


def status_cell(lang: str, card: Card, today: date) -> str:
    days = card.days_left(today)
    status = card.status(today)
    if status is CardStatus.OK:
        return plain(t(lang, "status.ok", days=days))
    if status is CardStatus.EXPIRING:
        return plain(
            t(lang, "status.today") if days == 0 else t(lang, "status.expiring", days=days)
        )
    if status is CardStatus.SUSPENDED:
        return plain(t(lang, "status.suspended", days=-days))
    return plain(t(lang, "status.expired", days=-days))


def export_headers(lang: str) -> list[str]:
    names = EXPORT_HEADERS.get(lang, EXPORT_HEADERS["en"])
    extra = ("export.header.status", "export.header.days_left", "export.header.last_renewal")
    return [names[field] for field in _EXPORTED] + [plain(t(lang, key)) for key in extra]


def export_row(lang: str, item: CardWithRenewal, today: date, zone: ZoneInfo) -> list[OutValue]:
    card = item.card
    yes, no = _YES_NO.get(lang, _YES_NO["en"])
    renewed = item.last_renewed_at.astimezone(zone).date() if item.last_renewed_at else None
    return [
        card.iccid,
        card.expiry,
        plain(t(lang, f"carrier.{card.carrier.value}")),
        card.label,
        period_cell(lang, card.plan_period),
        price_cell(card.plan_price_fen),
        yes if card.auto_renew else no,
        card.note,
        yes if card.archived else no,
        status_cell(lang, card, today),
        card.days_left(today),
        renewed,
    ]


def export_file(
    fmt: OutputFormat, lang: str, cards: Sequence[CardWithRenewal], today: date, timezone: str
) -> bytes:
    zone = ZoneInfo(timezone)
    rows = (export_row(lang, item, today, zone) for item in cards)
    return write_table(fmt, export_headers(lang), rows)
