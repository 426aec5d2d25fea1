"""Importing a sheet into a chat: validate every row, then upsert by ICCID in one transaction.

Rows are parsed before the transaction (that needs no database); inside it, the chat's cards
with the file's ICCIDs are read in one statement, each row is merged with its card (or becomes a
new one), and the changes are written with two ``executemany`` calls. A failure anywhere inside
rolls all of it back: the chat is as it was. ``import_sheet(before_commit=…)`` is the moment in
between, every change written and nothing committed (the crash tests kill the process there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bot.bulk.columns import map_columns
from bot.bulk.reading import Sheet, SheetRow
from bot.bulk.rows import KEEP, CellProblem, ParseCache, RowProblems, RowValues, parse_row
from bot.errors import InputError
from bot.models import Card, CardDraft
from storage.bulk import BulkStore

Progress = Callable[[int], None]  # rows validated so far
BeforeCommit = Callable[[], Awaitable[None]]
PROGRESS_EVERY = 1000
_MERGED_FIELDS = (
    "expiry",
    "carrier",
    "label",
    "plan_period",
    "plan_price_fen",
    "auto_renew",
    "note",
)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    row: SheetRow
    problems: tuple[CellProblem, ...]


@dataclass
class ImportReport:
    rows: int = 0  # non-blank data rows in the file
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (row, same as row)
    luhn_rows: list[int] = field(default_factory=list)  # imported, check digit doesn't match
    unmuted: int = 0  # muted cards the file renewed (expiry moved later): reminders back on

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged


def _draft_of(card: Card) -> CardDraft:
    return CardDraft.model_construct(
        **{name: getattr(card, name) for name in CardDraft.model_fields}
    )


def _values_key(draft: CardDraft) -> tuple[Any, ...]:
    return (draft.iccid, *(getattr(draft, name) for name in _MERGED_FIELDS))


def merge(values: RowValues, existing: CardDraft | None) -> CardDraft:
    """The card after the row is applied; ``InputError`` if the result would be invalid."""
    if existing is None:
        if values.expiry is KEEP:
            raise InputError("import.reason.no_expiry")
        existing = CardDraft(iccid=values.iccid, expiry=values.expiry)
    changes = {name: getattr(values, name) for name in _MERGED_FIELDS}
    draft = existing.model_copy(update={k: v for k, v in changes.items() if v is not KEEP})
    # /addcard and /edit only offer auto-renew and a price once the card has a plan period
    if draft.auto_renew and draft.plan_period is None:
        raise InputError("import.reason.auto_needs_plan")
    if draft.plan_price_fen is not None and draft.plan_period is None:
        raise InputError("import.reason.price_needs_period")
    return draft


def _same_values(a: RowValues, b: RowValues) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in ("iccid", *_MERGED_FIELDS))


def _dedupe(
    parsed: Sequence[RowValues], rows: Mapping[int, SheetRow], report: ImportReport
) -> list[RowValues]:
    """One row per ICCID. Copies of a row are imported once; rows that give the same ICCID
    different values are all rejected: which one is right is the user's call."""
    by_iccid: dict[str, list[RowValues]] = {}
    for values in parsed:
        by_iccid.setdefault(values.iccid, []).append(values)
    kept: list[RowValues] = []
    for group in by_iccid.values():
        first = group[0]
        if all(_same_values(first, other) for other in group[1:]):
            kept.append(first)
            report.duplicates.extend((other.number, first.number) for other in group[1:])
            continue
        for values in group:
            others = ", ".join(str(v.number) for v in group if v is not values)
            problem = CellProblem(InputError("import.reason.duplicate", rows=others))
            report.rejected.append(RejectedRow(rows[values.number], (problem,)))
    return kept


def validate_rows(
    sheet: Sheet, today: date, report: ImportReport, progress: Progress | None = None
) -> list[RowValues]:
    """Parse every row; bad rows go to ``report.rejected``. One row per ICCID is returned."""
    columns = map_columns(sheet.headers)
    parsed: list[RowValues] = []
    cache: ParseCache = {}
    for count, row in enumerate(sheet.rows, start=1):
        result = parse_row(row, columns, today, cache)
        if isinstance(result, RowProblems):
            report.rejected.append(RejectedRow(row, result.problems))
        else:
            parsed.append(result)
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    if progress is not None:
        progress(len(sheet.rows))
    return _dedupe(parsed, {row.number: row for row in sheet.rows}, report)


async def import_sheet(
    store: BulkStore,
    chat_id: int,
    sheet: Sheet,
    *,
    today: date,
    now: datetime,
    progress: Progress | None = None,
    before_commit: BeforeCommit | None = None,
) -> ImportReport:
    """Validate and apply a whole sheet to the chat's cards, atomically.

    ``progress`` is called with the number of rows validated so far. ``before_commit`` is
    awaited inside the transaction once every change is written, just before it commits: what
    happens to the process until it returns (an exception, a kill) leaves the chat as it was.
    """
    report = ImportReport(rows=len(sheet.rows))
    # CPU work (Unicode, regexes): off the event loop, so the bot keeps answering meanwhile
    candidates = await asyncio.to_thread(validate_rows, sheet, today, report, progress)
    rows = {row.number: row for row in sheet.rows}
    inserts: list[CardDraft] = []
    updates: list[tuple[int, CardDraft]] = []
    async with store.import_session(chat_id) as session:
        existing = await session.existing([values.iccid for values in candidates])
        for values in candidates:
            card = existing.get(values.iccid)
            before = _draft_of(card) if card is not None else None
            try:
                after = merge(values, before)
            except InputError as exc:
                report.rejected.append(RejectedRow(rows[values.number], (CellProblem(exc),)))
                continue
            if values.luhn_ok is False:
                report.luhn_rows.append(values.number)
            if card is None:
                inserts.append(after)
            elif before is not None and _values_key(after) != _values_key(before):
                updates.append((card.id, after))
                if card.muted and after.expiry > card.expiry:
                    report.unmuted += 1
            else:
                report.unchanged += 1
        await session.update(updates)
        await session.insert(inserts, now)
        if before_commit is not None:
            await before_commit()
    report.added, report.updated = len(inserts), len(updates)
    report.rejected.sort(key=lambda rejected: rejected.row.number)
    report.luhn_rows.sort()
    return report
