"""A renewal file: every row with a 续费 cell records a renewal of its card, as ``/renew`` does.

Agents pay the carrier for a list of cards, then send SimWatch that list with what was paid
for. Each row is a renewal, not an edit: the expiry moves by the domain's one rule
(``plan_renewal``, as of the row's 日期 when given, else today), a history entry is written
with the amount (so ``/cost`` counts it), and a snooze, a mute and an archiving end, as a
renewal by a person ends them. Other columns (标签, 运营商 …) are not applied.

The same file sent twice must not renew twice: a row whose 到期日 (the expiry the file was made
from) is no longer the card's, or, without that column, whose card was renewed by the same
period (or to the same date) today already, is reported as already renewed and left.

As for any import, everything is checked before the write transaction (the rows, the chat's
cards and their renewals today, read in one statement each), the transaction writes each card
only while it still expires on the date the check saw, and if one moved meanwhile it starts
over, this time checking inside it. All of it is applied, or none of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from zoneinfo import ZoneInfo

from bot.bulk.columns import map_columns
from bot.bulk.importer import (
    PROGRESS_EVERY,
    BeforeCommit,
    CardNote,
    ImportAuthor,
    ImportReport,
    Progress,
    RejectedRow,
    one_per_iccid,
)
from bot.bulk.models import CardRenewal
from bot.bulk.reading import Sheet, SheetRow
from bot.bulk.renewal_rows import RenewalRow, SkippedRow, parse_renewal_row
from bot.bulk.rows import CellProblem, ParseCache, RowProblems
from bot.errors import InputError
from bot.models import Card, Period, Renewal, RenewalRule
from bot.services.cards import plan_renewal, renewal_draft
from storage.bulk import BulkStore


def _key(row: RenewalRow) -> tuple[object, ...]:
    return row.choice, row.amount_fen, row.paid_on, row.file_expiry


def _same(first: RenewalRow, other: RenewalRow) -> bool:
    return _key(first) == _key(other)


def validate_renewals(
    sheet: Sheet, today: date, report: ImportReport, progress: Progress | None = None
) -> list[RenewalRow]:
    """Parse every row; bad ones go to ``report.rejected``, empty 续费 cells to ``skipped``."""
    columns = map_columns(sheet.headers)
    parsed: list[RenewalRow] = []
    cache: ParseCache = {}
    for count, row in enumerate(sheet.rows, start=1):
        result = parse_renewal_row(row, columns, today, cache)
        if isinstance(result, RowProblems):
            report.rejected.append(RejectedRow(row, result.problems))
        elif isinstance(result, SkippedRow):
            report.skipped += 1
        else:
            parsed.append(result)
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    if progress is not None:
        progress(len(sheet.rows))
    return one_per_iccid(parsed, _same, {row.number: row for row in sheet.rows}, report)


def _same_renewal(renewal: Renewal, choice: Period | date) -> bool:
    if renewal.automatic:
        return False
    if isinstance(choice, date):
        return renewal.rule is RenewalRule.SET_DATE and renewal.new_expiry == choice
    return renewal.period == choice


@dataclass
class _RenewalPlan:
    """What the file does to the chat's cards as they were read; nothing written yet."""

    renewals: list[CardRenewal] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    already: list[CardNote] = field(default_factory=list)
    unmuted: list[CardNote] = field(default_factory=list)
    restored: list[CardNote] = field(default_factory=list)


def _reject(plan: _RenewalPlan, row: SheetRow, error: InputError) -> None:
    plan.rejected.append(RejectedRow(row, (CellProblem(error),)))


def plan_renewals(
    candidates: Sequence[RenewalRow],
    existing: Mapping[str, Card],
    today_renewals: Sequence[Renewal],
    rows: Mapping[int, SheetRow],
    *,
    today: date,
    now: datetime,
    timezone: str,
    author: ImportAuthor,
) -> _RenewalPlan:
    plan = _RenewalPlan()
    renewed_today: dict[int, list[Renewal]] = {}
    for renewal in today_renewals:
        renewed_today.setdefault(renewal.card_id, []).append(renewal)
    for row in candidates:
        card = existing.get(row.iccid)
        if card is None:
            _reject(plan, rows[row.number], InputError("import.reason.renew_no_card"))
            continue
        note = CardNote(row.number, card.iccid, card.label)
        since = row_since(row, now, timezone, today)
        recent = [r for r in renewed_today.get(card.id, ()) if r.renewed_at >= since]
        if row.file_expiry is not None and row.file_expiry != card.expiry:
            # renewed since the file was made (a renewal from the file's expiry), or the file
            # is wrong about the card: say which, never "already" for a renewal never made
            if any(r.old_expiry == row.file_expiry for r in renewed_today.get(card.id, ())):
                plan.already.append(note)
            else:
                error = InputError(
                    "import.reason.renew_expiry_mismatch",
                    file=row.file_expiry.isoformat(),
                    expiry=card.expiry.isoformat(),
                )
                _reject(plan, rows[row.number], error)
            continue
        if any(_same_renewal(r, row.choice) for r in recent):
            plan.already.append(note)
            continue
        try:
            planned = plan_renewal(card, row.paid_on or today, row.choice)
        except InputError as exc:
            _reject(plan, rows[row.number], exc)
            continue
        if planned.new_expiry <= card.expiry:  # /renew warns; a file row is more likely a slip
            error = InputError(
                "import.reason.renew_not_later",
                new=planned.new_expiry.isoformat(),
                expiry=card.expiry.isoformat(),
            )
            _reject(plan, rows[row.number], error)
            continue
        draft = renewal_draft(
            planned,
            renewed_at=now,
            amount_fen=row.amount_fen,
            by_user_id=author.by_user_id,
            by_name=author.by_name,
        )
        plan.renewals.append(CardRenewal(card.id, draft))
        if card.muted:
            plan.unmuted.append(note)
        if card.archived:
            plan.restored.append(note)
    return plan


def day_start(today: date, timezone: str) -> datetime:
    """When ``today`` began where the chat is, in UTC: "renewed today" is the chat's today."""
    return datetime.combine(today, day_time(), ZoneInfo(timezone)).astimezone(UTC)


RESEND_WINDOW = timedelta(hours=24)


def row_since(row: RenewalRow, now: datetime, timezone: str, today: date) -> datetime:
    """Since when a renewal of the card counts as this row's, sent before: since its payment
    day began (日期), or the chat's today, and in any case the last 24 hours (a file sent again
    just after midnight is the same payment)."""
    start = day_start(row.paid_on or today, timezone)
    return min(start, now - RESEND_WINDOW)


WRITE_ATTEMPTS = 3  # cards moving under the file three times running: say so, change nothing


class _Changed(Exception):
    """A card the file renews moved between reading and writing."""


def _number(note: CardNote) -> int:
    return note.number


async def renew_sheet(
    store: BulkStore,
    chat_id: int,
    sheet: Sheet,
    *,
    today: date,
    now: datetime,
    timezone: str,
    author: ImportAuthor,
    progress: Progress | None = None,
    before_commit: BeforeCommit | None = None,
) -> ImportReport:
    """Record the renewals of a renewal file, atomically (see ``import_sheet``, which calls
    this for a file with a 续费 column). ``timezone``: the chat's, for what "today" is."""
    report = ImportReport(rows=len(sheet.rows), renewal_file=True)
    candidates = await asyncio.to_thread(validate_renewals, sheet, today, report, progress)
    rows = {row.number: row for row in sheet.rows}
    iccids = [row.iccid for row in candidates]
    since = min((row_since(row, now, timezone, today) for row in candidates), default=now)

    existing = await store.cards_by_iccid(chat_id, iccids)
    card_ids = [card.id for card in existing.values()]
    recent = await store.renewals_since(chat_id, card_ids, since)

    def planned(existing: Mapping[str, Card], recent: Sequence[Renewal]) -> _RenewalPlan:
        return plan_renewals(
            candidates,
            existing,
            recent,
            rows,
            today=today,
            now=now,
            timezone=timezone,
            author=author,
        )

    plan = planned(existing, recent)
    locked_at = time.perf_counter()
    for attempt in range(WRITE_ATTEMPTS):
        try:
            async with store.import_session(chat_id) as session:
                locked_at = time.perf_counter()
                if attempt:  # checked again, this time inside the transaction
                    existing = await session.existing(iccids)
                    card_ids = [card.id for card in existing.values()]
                    recent = await session.renewals_since(card_ids, since)
                    plan = planned(existing, recent)
                if await session.renew(plan.renewals) != len(plan.renewals):
                    raise _Changed  # rolled back: a card moved meanwhile (/renew, another file)
                if before_commit is not None:
                    await before_commit()
            break
        except _Changed:
            if attempt == WRITE_ATTEMPTS - 1:  # cards kept moving: nothing renewed, say so
                raise InputError("import.reason.renew_busy") from None
    report.lock_seconds = time.perf_counter() - locked_at
    report.renewed = len(plan.renewals)
    report.rejected.extend(plan.rejected)
    report.rejected.sort(key=lambda rejected: rejected.row.number)
    report.already_renewed = sorted(plan.already, key=_number)
    report.unmuted = sorted(plan.unmuted, key=_number)
    report.restored = sorted(plan.restored, key=_number)
    return report
