"""One data row of a renewal file (a file with a 续费 / renew column), validated.

A renewal row names a card the chat has (its ICCID), what was paid for (续费: a period such as
``12个月`` or the new expiry date, read as ``/renew`` reads them), and optionally the amount
paid (金额: in a renewal file the money paid, not the plan's price), the day it was paid (日期)
and the expiry the file was made from (到期日: a row whose card no longer has it was renewed
already). A row with an empty 续费 cell renews nothing: it is skipped, not rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from dateutil.relativedelta import relativedelta

from bot.bulk.cells import Cell, cell_text, date_text, is_blank
from bot.bulk.columns import ColumnMap, Field
from bot.bulk.reading import SheetRow
from bot.bulk.rows import KEEP, CellProblem, Keep, ParseCache, RowProblems, _iccid, _RowReader
from bot.dates import parse_expiry
from bot.errors import InputError
from bot.models import Period
from bot.money import parse_amount
from bot.services.cards import parse_renewal_choice


@dataclass(frozen=True, slots=True)
class RenewalRow:
    number: int
    iccid: str
    choice: Period | date  # what was paid for: a period, or the new expiry
    amount_fen: int | None  # what was paid, if the file says
    paid_on: date | None  # the rule applies as of this day (None: today)
    file_expiry: date | None  # the card's expiry when the file was made, if the file says


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row whose 续费 cell is empty: the card is not renewed (the file lists it anyway)."""

    number: int


def is_renewal_file(columns: ColumnMap) -> bool:
    return Field.RENEW in columns


def _choice(today: date) -> Callable[[Cell], Period | date]:
    def parse(cell: Cell) -> Period | date:
        if isinstance(cell, date):  # an Excel date cell (a datetime is a date too)
            return parse_expiry(date_text(cell), today)
        return parse_renewal_choice(cell_text(cell), today)

    return parse


_YEAR = re.compile(r"\d{4}")  # a date written with its year


def _paid_on(today: date) -> Callable[[Cell], date]:
    def parse(cell: Cell) -> date:
        text = date_text(cell)
        paid = parse_expiry(text, today)
        if paid > today and not _YEAR.search(text):
            # "11-20" read as an expiry is the next 20 November; a payment is the last one
            paid -= relativedelta(years=1)
        if paid > today:  # a payment is made, not planned: a later day is a typo
            raise InputError("import.reason.paid_in_future", date=paid.isoformat())
        return paid

    return parse


def parse_renewal_row(
    row: SheetRow, columns: ColumnMap, today: date, cache: ParseCache | None = None
) -> RenewalRow | SkippedRow | RowProblems:
    """The row's renewal, a skipped row (its 续费 cell is empty), or everything wrong with it.
    Pass one ``cache`` for all rows of a file (and one ``today``), as to ``parse_row``."""
    if row.truncated:
        return RowProblems(row.number, (CellProblem(InputError("import.reason.truncated")),))
    reader = _RowReader(row, columns, cache)
    if is_blank(reader.cell(Field.RENEW)):
        return SkippedRow(row.number)
    iccid = reader.parsed(Field.ICCID, _iccid)
    if iccid is KEEP and not reader.problems:  # the ICCID is read first: no problem yet
        reader.problem(Field.ICCID, InputError("error.iccid.empty"))
    choice = reader.parsed(Field.RENEW, _choice(today))
    amount = reader.parsed(Field.PRICE, lambda cell: parse_amount(cell_text(cell)), clearable=True)
    paid_on = reader.parsed(Field.PAID_ON, _paid_on(today))
    file_expiry = reader.parsed(Field.EXPIRY, lambda cell: parse_expiry(date_text(cell), today))
    if reader.problems or isinstance(iccid, Keep) or iccid is None or isinstance(choice, Keep):
        return RowProblems(row.number, tuple(reader.problems))
    assert choice is not None  # not clearable
    return RenewalRow(
        number=row.number,
        iccid=iccid[0],
        choice=choice,
        amount_fen=None if isinstance(amount, Keep) else amount,
        paid_on=None if isinstance(paid_on, Keep) else paid_on,
        file_expiry=None if isinstance(file_expiry, Keep) else file_expiry,
    )
