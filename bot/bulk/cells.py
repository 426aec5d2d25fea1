"""Spreadsheet cells as read from a file, and turning them into the text the parsers expect."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 = 1900-01-01 (Lotus' phantom 1900-02-29 included)
# Serial numbers of 2000-01-01 … 2100-12-31, the years an expiry may have.
MIN_SERIAL = (date(2000, 1, 1) - EXCEL_EPOCH).days
MAX_SERIAL = (date(2100, 12, 31) - EXCEL_EPOCH).days
EXACT_FLOAT_LIMIT = 10**15  # past this a float cell has lost digits (an ICCID typed as a number)

_SERIAL_RE = re.compile(r"[0-9]{5}(?:\.0+)?")
_EXCEL_TEXT_RE = re.compile(r'="(.*)"', re.DOTALL)  # ="0123" keeps Excel from eating zeros
# A cell starting with one of these runs as a formula in a spreadsheet (CSV injection, as OWASP
# lists the triggers). Such text is written after a single quote, Excel's own "this is text"
# mark; text that starts with a quote followed by a trigger or a quote gets one more, so that
# stripping exactly one quote on the way back always gives the text as it was.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


@dataclass(frozen=True)
class Uncomputed:
    """A formula cell saved without its calculated value (written by a program, not Excel)."""

    formula: str


Cell = str | int | float | bool | date | datetime | time | timedelta | Uncomputed | None


def is_blank(cell: Cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _quoted(text: str) -> bool:
    """A quote followed by a trigger or a quote: what ``neutralise`` writes, never its input."""
    return text.startswith(QUOTE) and text[1:2] in (*FORMULA_TRIGGERS, QUOTE)


def is_formula_like(text: str) -> bool:
    """Would a spreadsheet run this text as a formula?"""
    return text.startswith(FORMULA_TRIGGERS)


def neutralise(text: str) -> str:
    """Text as written into a CSV file: never a formula (``=HYPERLINK(…)`` → ``'=HYPERLINK(…)``)."""
    return QUOTE + text if is_formula_like(text) or _quoted(text) else text


def unneutralise(text: str) -> str:
    """The inverse of ``neutralise``: exactly the one quote it adds is taken away again."""
    return text[1:] if _quoted(text) else text


def from_csv(text: str) -> str:
    """A CSV field as a user meant it: the quote ``neutralise`` adds taken off, and
    ``="8986…"`` (a common way to force text, and how exports write long numbers) unwrapped."""
    if _quoted(text):
        return text[1:]
    m = _EXCEL_TEXT_RE.fullmatch(text.strip())
    return m.group(1) if m else text


def number_text(value: float) -> str:
    """30.0 → "30", 30.5 → "30.5": the shortest text that reads back as the same number."""
    if value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
        return str(int(value))
    return repr(value)


def cell_text(cell: Cell) -> str:
    """Any cell as text: dates in ISO form, numbers without a spurious ``.0``."""
    if cell is None or isinstance(cell, Uncomputed):
        return ""
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, datetime):
        return cell.date().isoformat() if cell.time() == time() else cell.isoformat(" ")
    if isinstance(cell, date | time):
        return cell.isoformat()
    if isinstance(cell, float):
        return number_text(cell)
    return str(cell)


def serial_date(cell: Cell) -> date | None:
    """An Excel serial day number (a date cell that lost its format, e.g. 46387) as a date."""
    if isinstance(cell, bool):
        return None
    numeric = isinstance(cell, int | float)
    if not (numeric or (isinstance(cell, str) and _SERIAL_RE.fullmatch(cell.strip()))):
        return None
    serial = float(cell)  # type: ignore[arg-type]  # a number, or text of one (checked above)
    if not serial.is_integer() or not MIN_SERIAL <= serial <= MAX_SERIAL:
        return None
    return EXCEL_EPOCH + timedelta(days=int(serial))


def date_text(cell: Cell) -> str:
    """An expiry cell as text for ``parse_expiry``: real dates and serial numbers as ISO dates."""
    if isinstance(cell, datetime):
        return cell.date().isoformat()
    if isinstance(cell, date):
        return cell.isoformat()
    serial = serial_date(cell)
    return serial.isoformat() if serial is not None else cell_text(cell)
