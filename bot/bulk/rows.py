"""One data row of an import file, validated exactly as ``/addcard`` validates typed input.

A row becomes ``RowValues``: what the row says about each field, or ``KEEP`` where the cell is
empty (the card keeps its value; a new card gets the default, and its carrier from the ICCID's
issuer prefix, as ``/addcard`` does: see ``importer.merge``). Problems are collected per cell,
so the user learns everything wrong with a row at once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import TypeVar, cast

from bot.bulk.cells import EXACT_FLOAT_LIMIT, Cell, Uncomputed, cell_text, date_text, is_blank
from bot.bulk.columns import ColumnMap, Field
from bot.bulk.reading import SheetRow
from bot.cardinput import (
    MAX_LABEL_LEN,
    MAX_NOTE_LEN,
    clean_text,
    is_clear_word,
    parse_carrier,
    parse_plan,
)
from bot.dates import parse_expiry, parse_period
from bot.errors import InputError
from bot.iccid import check_iccid
from bot.models import Carrier, Period
from bot.money import parse_amount

LABEL_JOINER = " · "  # label and terminal serial in one label: "收银台1 · T550012345"

_YES = frozenset({"是", "有", "开", "开启", "自动", "y", "yes", "true", "1", "on", "√", "✓", "✔"})
_NO = frozenset(
    {"否", "不", "无", "没有", "关", "关闭", "手动", "-", "n", "no", "false", "0", "off", "×", "✗"}
)


class Keep(Enum):
    """The file says nothing about this field: leave the card's value alone."""

    KEEP = "keep"


KEEP = Keep.KEEP
T = TypeVar("T")
_MISSING = object()
_UNIQUE_FIELDS = frozenset({Field.ICCID})  # different in every row: caching would only cost


@dataclass(frozen=True, slots=True)
class CellProblem:
    """What is wrong and where: ``column`` is the header as written (None: the whole row)."""

    error: InputError
    column: str | None = None


@dataclass(frozen=True, slots=True)
class RowValues:
    number: int
    iccid: str
    luhn_ok: bool | None
    expiry: date | Keep
    carrier: Carrier | Keep
    label: str | Keep | None
    plan_period: Period | Keep | None
    plan_price_fen: int | Keep | None
    auto_renew: bool | Keep
    note: str | Keep | None
    # the all-digit ICCID meant if the letters O, l, I stand for 0 and 1 (``8986OO…``), else None
    digits_suggestion: str | None = None
    # 停用: True archives the card, False restores it, KEEP (no column, empty cell) leaves it
    archived: bool | Keep = KEEP


@dataclass(frozen=True, slots=True)
class RowProblems:
    number: int
    problems: tuple[CellProblem, ...]


def parse_yes_no(text: str) -> bool:
    word = unicodedata.normalize("NFKC", text).strip().casefold()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise InputError("import.reason.yes_no", text=text.strip()[:32])


ParseCache = dict[tuple[Field, type, Cell], object]
"""Results (or the InputError) per field and cell value. Agents' files repeat most values (a
plan, a carrier, the same few expiry dates) and the parsers do Unicode work on every call."""


class _RowReader:
    """Reads the cells of one row, noting a problem per bad cell instead of stopping."""

    def __init__(self, row: SheetRow, columns: ColumnMap, cache: ParseCache | None) -> None:
        self.row = row
        self.columns = columns
        self.cache = cache
        self.problems: list[CellProblem] = []

    def cell(self, field: Field) -> Cell:
        index = self.columns.columns.get(field)
        if index is None or index >= len(self.row.cells):
            return None
        return self.row.cells[index]

    def problem(self, field: Field, error: InputError) -> None:
        self.problems.append(CellProblem(error, self.columns.headers[self.columns.columns[field]]))

    def parsed(
        self, field: Field, parse: Callable[[Cell], T], *, clearable: bool = False
    ) -> T | Keep | None:
        """The parsed cell; KEEP when empty or bad; None for a clear word where allowed."""
        cell = self.cell(field)
        if is_blank(cell):
            return KEEP
        if isinstance(cell, Uncomputed):
            self.problem(field, InputError("import.reason.formula", formula=cell.formula[:40]))
            return KEEP
        if clearable and isinstance(cell, str) and is_clear_word(cell):
            return None
        key = (field, type(cell), cell)
        result = self.cache.get(key, _MISSING) if self.cache is not None else _MISSING
        if result is _MISSING:
            try:
                result = parse(cell)
            except InputError as exc:
                result = exc
            if self.cache is not None and field not in _UNIQUE_FIELDS:
                self.cache[key] = result
        if isinstance(result, InputError):
            self.problem(field, result)
            return KEEP
        return cast(T, result)


def _iccid(cell: Cell) -> tuple[str, bool | None, str | None]:
    if isinstance(cell, float) and (not cell.is_integer() or abs(cell) >= EXACT_FLOAT_LIMIT):
        # Excel turned the number into 8.98600E+19: the last digits are gone for good
        raise InputError("import.reason.iccid_number")
    checked = check_iccid(cell_text(cell))
    return checked.iccid, checked.luhn_ok, checked.digits_suggestion


def _carrier(cell: Cell) -> Carrier:
    text = cell_text(cell)
    carrier = parse_carrier(text)
    if carrier is None:
        raise InputError("import.reason.carrier", text=text.strip()[:32])
    return carrier


def _text(max_len: int, key: str) -> Callable[[Cell], str | None]:
    def parse(cell: Cell) -> str | None:
        return clean_text(cell_text(cell), max_len=max_len, key=key)

    return parse


def _auto_renew(cell: Cell) -> bool:
    return cell if isinstance(cell, bool) else parse_yes_no(cell_text(cell))


_ARCHIVED_WORDS = {"停用": True, "已停用": True, "在用": False, "启用": False, "使用中": False}


def _archived(cell: Cell) -> bool:
    """是/否 as for auto-renew, and the words a 停用 column may hold instead (停用, 在用…)."""
    if isinstance(cell, bool):
        return cell
    text = unicodedata.normalize("NFKC", cell_text(cell)).strip()
    return _ARCHIVED_WORDS[text] if text in _ARCHIVED_WORDS else parse_yes_no(text)


def _plan(cell: Cell) -> tuple[Period, int | None]:
    return parse_plan(cell_text(cell))


def _joined_label(label: str | Keep | None, terminal: str | Keep | None) -> str | Keep | None:
    """The card has no terminal field: ``label · terminal``, or whichever the row has."""
    if terminal is KEEP:
        return label
    if label is KEEP or label is None:
        return terminal
    if terminal is None:
        return label
    joined = f"{label}{LABEL_JOINER}{terminal}"
    if len(joined) > MAX_LABEL_LEN:
        raise InputError("error.label.too_long", max=MAX_LABEL_LEN)
    return joined


def _either(own: T | Keep, from_plan: T | Keep) -> T | Keep:
    """A period or price column wins over the same part of a combined plan column."""
    return from_plan if own is KEEP else own


def parse_row(
    row: SheetRow, columns: ColumnMap, today: date, cache: ParseCache | None = None
) -> RowValues | RowProblems:
    """The row's values, or everything wrong with it. Pass one ``cache`` for all rows of a
    file (and one ``today``) to parse each distinct cell value once."""
    reader = _RowReader(row, columns, cache)
    if row.truncated:
        return RowProblems(row.number, (CellProblem(InputError("import.reason.truncated")),))
    iccid = reader.parsed(Field.ICCID, _iccid)
    if iccid is KEEP and not reader.problems:  # the ICCID is read first: no problem yet
        reader.problem(Field.ICCID, InputError("error.iccid.empty"))
    expiry = reader.parsed(Field.EXPIRY, lambda cell: parse_expiry(date_text(cell), today))
    carrier = reader.parsed(Field.CARRIER, _carrier)
    label = reader.parsed(Field.LABEL, _text(MAX_LABEL_LEN, "error.label.too_long"), clearable=True)
    terminal = reader.parsed(
        Field.TERMINAL, _text(MAX_LABEL_LEN, "error.label.too_long"), clearable=True
    )
    plan = reader.parsed(Field.PLAN, _plan, clearable=True)
    period = reader.parsed(Field.PERIOD, lambda cell: parse_period(cell_text(cell)), clearable=True)
    price = reader.parsed(Field.PRICE, lambda cell: parse_amount(cell_text(cell)), clearable=True)
    auto_renew = reader.parsed(Field.AUTO_RENEW, _auto_renew)
    note = reader.parsed(Field.NOTE, _text(MAX_NOTE_LEN, "error.note.too_long"), clearable=True)
    archived = reader.parsed(Field.ARCHIVED, _archived)
    try:
        joined = _joined_label(label, terminal)
    except InputError as exc:
        reader.problem(Field.TERMINAL, exc)
        joined = KEEP
    if reader.problems or iccid is KEEP or iccid is None:
        return RowProblems(row.number, tuple(reader.problems))
    plan_period: Period | Keep | None = KEEP
    plan_price: int | Keep | None = KEEP
    if plan is None:
        plan_period = plan_price = None
    elif plan is not KEEP:
        plan_period = plan[0]
        plan_price = KEEP if plan[1] is None else plan[1]  # "3个月" alone keeps the price
    return RowValues(
        number=row.number,
        iccid=iccid[0],
        luhn_ok=iccid[1],
        digits_suggestion=iccid[2],
        expiry=KEEP if expiry is None else expiry,
        carrier=KEEP if carrier is None else carrier,
        label=joined,
        plan_period=_either(period, plan_period),
        plan_price_fen=_either(price, plan_price),
        auto_renew=KEEP if auto_renew is None else auto_renew,
        note=note,
        archived=KEEP if archived is None else archived,
    )
