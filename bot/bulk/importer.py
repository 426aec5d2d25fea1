"""Importing a sheet into a chat: validate every row, then upsert by ICCID in one transaction.

Everything slow happens before the transaction, so the write lock is held only for the writes
(a big import from the command line must not stall the running bot): the rows are parsed, the
chat's cards with the file's ICCIDs are read in one statement, and each row is merged with its
card (or becomes a new one). The transaction then writes the changes with two ``executemany``
calls, each row only if its card is still as it was read (an update only where every field is
unchanged, an insert only where the ICCID is still free). When someone changed one of those
cards in between, the transaction starts over and this time reads and merges inside it. A
failure anywhere inside rolls all of it back: the chat is as it was.
``import_sheet(before_commit=…)`` is the moment in between, every change written and nothing
committed (the crash tests kill the process there).

A row whose expiry is earlier than the card's (an old spreadsheet, after a renewal in
SimWatch) is never applied silently: it is left as it is and reported as older, with what
``apply_older`` needs to apply it anyway when the user says so.

Every field an import changes goes to the card's edit trail (who, when, old → new), in the same
transaction, as ``/edit`` does. A new card without a carrier takes the one the ICCID's issuer
prefix names; a carrier the file gives wins, with a note when the prefix disagrees. An ICCID
whose only letters are O, l or I (``8986OO…``) is refused when the chat or the file has the
all-digit ICCID it looks like, and imported with a note otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

from bot.bulk.columns import map_columns
from bot.bulk.models import CardChange, TrailEntry
from bot.bulk.reading import Sheet, SheetRow
from bot.bulk.renewal_rows import is_renewal_file
from bot.bulk.rows import KEEP, CellProblem, Keep, ParseCache, RowProblems, RowValues, parse_row
from bot.errors import InputError
from bot.iccid import carrier_from_iccid
from bot.models import Card, CardDraft, CardEditDraft, Carrier, Period
from bot.services.cards import changed_fields
from storage.bulk import BulkStore, ImportSession

Progress = Callable[[int], None]  # rows validated so far
BeforeCommit = Callable[[], Awaitable[None]]
PROGRESS_EVERY = 1000
MAX_OTHER_ROWS_NAMED = 5  # a duplicate's reason names this many of the other rows, then counts
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
class ImportAuthor:
    """Who the edit trail names for an import's changes: the person who sent the file in chat,
    ``IMPORTED_BY`` for the command line."""

    by_user_id: int | None
    by_name: str | None


IMPORTED_BY = ImportAuthor(None, "import")


@dataclass(frozen=True, slots=True)
class CardNote:
    """A row the report mentions, with the card it is about (as the file leaves it)."""

    number: int
    iccid: str
    label: str | None


@dataclass(frozen=True, slots=True)
class CarrierNote(CardNote):
    """The file's carrier, imported as given, contradicts the ICCID's issuer prefix."""

    given: Carrier
    inferred: Carrier


@dataclass(frozen=True, slots=True)
class LookalikeNote(CardNote):
    """A new card whose ICCID has O, l or I where 0 and 1 usually are: imported as given."""

    digits: str


@dataclass(frozen=True, slots=True)
class RejectedRow:
    row: SheetRow
    problems: tuple[CellProblem, ...]


@dataclass(frozen=True, slots=True)
class OlderRow:
    """A row that would move its card's expiry earlier: left alone unless the user insists.
    ``apply_older`` applies ``values`` only while the card still expires on ``card_expiry``."""

    values: RowValues
    card_expiry: date  # SimWatch's, when the file was imported
    file_expiry: date
    label: str | None = None  # the card's, for the report

    @property
    def iccid(self) -> str:
        return self.values.iccid

    @property
    def number(self) -> int:
        return self.values.number


# An ``OlderRow`` as plain, small values, to be kept for the "apply anyway" button (in the
# persisted user data): (ICCID, the card's expiry seen as an ordinal, row number, Luhn, then
# the file's values: expiry ordinal, carrier, label, (months, days), price, auto-renew, note),
# with ``...`` where the file says nothing (``KEEP``).
PackedOlder = tuple[Any, ...]


def pack_older(row: OlderRow) -> PackedOlder:
    v = row.values

    def kept(value: Any) -> Any:
        return ... if value is KEEP else value

    period = v.plan_period
    return (
        v.iccid,
        row.card_expiry.toordinal(),
        v.number,
        v.luhn_ok,
        ... if v.expiry is KEEP else v.expiry.toordinal(),
        ... if v.carrier is KEEP else v.carrier.value,
        kept(v.label),
        ... if period is KEEP else None if period is None else (period.months, period.days),
        kept(v.plan_price_fen),
        kept(v.auto_renew),
        kept(v.note),
    )


def _unpack_period(packed: Any) -> Period | Keep | None:
    if packed is ...:
        return KEEP
    return None if packed is None else Period(months=packed[0], days=packed[1])


def unpack_older(packed: PackedOlder) -> OlderRow:
    """The row ``pack_older`` made (``ValueError``/``TypeError`` for anything else)."""
    iccid, seen, number, luhn_ok, expiry, carrier, label, period, price, auto, note = packed

    def kept(value: Any) -> Any:
        return KEEP if value is ... else value

    values = RowValues(
        number=int(number),
        iccid=str(iccid),
        luhn_ok=luhn_ok,
        expiry=KEEP if expiry is ... else date.fromordinal(expiry),
        carrier=KEEP if carrier is ... else Carrier(carrier),
        label=kept(label),
        plan_period=_unpack_period(period),
        plan_price_fen=kept(price),
        auto_renew=kept(auto),
        note=kept(note),
    )
    card_expiry = date.fromordinal(seen)
    file_expiry = values.expiry if isinstance(values.expiry, date) else card_expiry
    return OlderRow(values, card_expiry, file_expiry)


@dataclass
class ImportReport:
    rows: int = 0  # non-blank data rows in the file
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (row, same as row)
    luhn: list[CardNote] = field(default_factory=list)  # imported, check digit doesn't match
    unmuted: list[CardNote] = field(default_factory=list)  # muted, renewed: reminders back on
    carriers: list[CarrierNote] = field(default_factory=list)  # given, prefix disagrees
    lookalikes: list[LookalikeNote] = field(default_factory=list)  # new, O/l/I for 0/1?
    older: list[OlderRow] = field(default_factory=list)  # left: earlier than SimWatch's expiry
    older_applied: int = 0  # older rows applied all the same (``apply_older=True``)
    archived: list[CardNote] = field(default_factory=list)  # 停用=是: taken out of service
    restored: list[CardNote] = field(default_factory=list)  # 停用=否 on an archived card
    still_archived: list[CardNote] = field(default_factory=list)  # archived, the file says nothing
    lock_seconds: float = 0.0  # how long the write transaction held the database
    # a renewal file (a 续费 column, ``bot.bulk.renewals``): rows renew, nothing is added
    renewal_file: bool = False
    renewed: int = 0  # renewals recorded
    already_renewed: list[CardNote] = field(default_factory=list)  # sent twice? left
    skipped: int = 0  # rows with an empty 续费 cell

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged

    @property
    def luhn_rows(self) -> list[int]:
        return [note.number for note in self.luhn]


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
        carrier = carrier_from_iccid(values.iccid) or Carrier.OTHER  # as /addcard without one
        existing = CardDraft(iccid=values.iccid, expiry=values.expiry, carrier=carrier)
    changes = {name: getattr(values, name) for name in _MERGED_FIELDS}
    draft = existing.model_copy(update={k: v for k, v in changes.items() if v is not KEEP})
    # /addcard and /edit only offer auto-renew and a price once the card has a plan period
    if draft.auto_renew and draft.plan_period is None:
        raise InputError("import.reason.auto_needs_plan")
    if draft.plan_price_fen is not None and draft.plan_period is None:
        raise InputError("import.reason.price_needs_period")
    return draft


def grouped(iccid: str) -> str:
    """``8986 0012 3456 7890 1238``: easier to compare with the card than 20 digits in a row."""
    return " ".join(iccid[i : i + 4] for i in range(0, len(iccid), 4))


def _lookalike_problem(
    values: RowValues, existing: Mapping[str, Card], file_rows: Mapping[str, int]
) -> CellProblem | None:
    """Why a row whose ICCID has O, l or I for 0 and 1 is refused: the chat (or another row of
    the file) has the all-digit ICCID it looks like. Which one is meant is the user's call; a
    card the chat already has with exactly these letters is no question."""
    digits = values.digits_suggestion
    if digits is None or values.iccid in existing:
        return None
    if digits in existing:
        return CellProblem(InputError("import.reason.lookalike_card", fixed=grouped(digits)))
    if digits in file_rows:
        return CellProblem(
            InputError("import.reason.lookalike_row", fixed=grouped(digits), row=file_rows[digits])
        )
    return None


def _carrier_note(
    values: RowValues, before: CardDraft | None, after: CardDraft
) -> CarrierNote | None:
    """A note when the file sets a carrier the issuer prefix contradicts ("other" never does)."""
    if values.carrier is KEEP or values.carrier is Carrier.OTHER:
        return None
    inferred = carrier_from_iccid(values.iccid)
    if inferred is None or inferred is values.carrier:
        return None
    if before is not None and before.carrier is values.carrier:
        return None  # the card had it already: the file changes nothing there
    return CarrierNote(values.number, after.iccid, after.label, values.carrier, inferred)


def _trail(changes: Sequence[CardChange], author: ImportAuthor, now: datetime) -> list[TrailEntry]:
    return [
        TrailEntry(
            change.card_id,
            CardEditDraft(
                edited_at=now,
                by_user_id=author.by_user_id,
                by_name=author.by_name,
                field=name,
                old_value=old,
                new_value=new,
            ),
        )
        for change in changes
        for name, old, new in changed_fields(change.before, change.after)
    ]


def _same_values(a: RowValues, b: RowValues) -> bool:
    names = ("iccid", "archived", *_MERGED_FIELDS)
    return all(getattr(a, name) == getattr(b, name) for name in names)


def other_rows_problem(numbers: Sequence[int], own: int) -> InputError:
    """The reason of one of several rows with the same ICCID and different values: a few of the
    others by number, then how many there are. Constant size whatever the file holds, so that
    20,000 copies of one ICCID cost 20,000 short reasons, not 20,000 lists of 20,000."""
    named = [n for n in numbers[: MAX_OTHER_ROWS_NAMED + 1] if n != own][:MAX_OTHER_ROWS_NAMED]
    others = len(numbers) - 1
    if others > len(named):
        return InputError(
            "import.reason.duplicate_many", rows=", ".join(map(str, named)), count=others
        )
    return InputError("import.reason.duplicate", rows=", ".join(map(str, named)))


class _Row(Protocol):
    @property
    def iccid(self) -> str: ...
    @property
    def number(self) -> int: ...


RowT = TypeVar("RowT", bound=_Row)


def one_per_iccid(
    parsed: Sequence[RowT],
    same: Callable[[RowT, RowT], bool],
    rows: Mapping[int, SheetRow],
    report: ImportReport,
) -> list[RowT]:
    """One row per ICCID. Copies of a row (``same``) count once; rows that give the same ICCID
    different values are all rejected: which one is right is the user's call. Linear in the
    number of rows."""
    by_iccid: dict[str, list[RowT]] = {}
    for values in parsed:
        by_iccid.setdefault(values.iccid, []).append(values)
    kept: list[RowT] = []
    for group in by_iccid.values():
        first = group[0]
        if all(same(first, other) for other in group[1:]):
            kept.append(first)
            report.duplicates.extend((other.number, first.number) for other in group[1:])
            continue
        numbers = [values.number for values in group]
        for values in group:
            problem = CellProblem(other_rows_problem(numbers, values.number))
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
    return one_per_iccid(parsed, _same_values, {row.number: row for row in sheet.rows}, report)


@dataclass
class _Plan:
    """What the file does to the chat's cards as they were read; nothing written yet."""

    inserts: list[CardDraft] = field(default_factory=list)
    updates: list[CardChange] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    luhn: list[CardNote] = field(default_factory=list)
    carriers: list[CarrierNote] = field(default_factory=list)
    lookalikes: list[LookalikeNote] = field(default_factory=list)
    older: list[OlderRow] = field(default_factory=list)
    older_applied: int = 0
    # muted cards whose expiry the file moves later: a renewal ends the mute
    unmuted: list[CardNote] = field(default_factory=list)
    # 停用: the rows' cards to archive, to restore, and archived ones the file leaves so
    archive: list[CardNote] = field(default_factory=list)
    restore: list[CardNote] = field(default_factory=list)
    still_archived: list[CardNote] = field(default_factory=list)

    def service_changes(self) -> tuple[list[str], list[str]]:
        """The ICCIDs to archive and to restore."""
        return [n.iccid for n in self.archive], [n.iccid for n in self.restore]


def _plan(
    candidates: Sequence[RowValues],
    existing: Mapping[str, Card],
    rows: Mapping[int, SheetRow],
    *,
    apply_older: bool,
) -> _Plan:
    plan = _Plan()
    file_rows = {values.iccid: values.number for values in candidates}
    for values in candidates:
        card = existing.get(values.iccid)
        before = _draft_of(card) if card is not None else None
        lookalike = _lookalike_problem(values, existing, file_rows)
        if lookalike is not None:
            plan.rejected.append(RejectedRow(rows[values.number], (lookalike,)))
            continue
        try:
            after = merge(values, before)
        except InputError as exc:
            plan.rejected.append(RejectedRow(rows[values.number], (CellProblem(exc),)))
            continue
        note = CardNote(values.number, after.iccid, after.label)
        if card is None or before is None or not after.expiry < before.expiry or apply_older:
            _service_note(plan, values, card, note)  # an older row is left whole
        if card is None or before is None:
            plan.inserts.append(after)
            if values.digits_suggestion is not None:
                plan.lookalikes.append(
                    LookalikeNote(note.number, note.iccid, note.label, values.digits_suggestion)
                )
        elif after.expiry < before.expiry and not apply_older:
            plan.older.append(OlderRow(values, before.expiry, after.expiry, before.label))
            continue
        elif _values_key(after) != _values_key(before):
            plan.updates.append(CardChange(card.id, before, after))
            if card.muted and after.expiry > before.expiry:
                plan.unmuted.append(note)
            plan.older_applied += after.expiry < before.expiry
        else:
            plan.unchanged += 1
        if values.luhn_ok is False:
            plan.luhn.append(note)
        carrier = _carrier_note(values, before, after)
        if carrier is not None:
            plan.carriers.append(carrier)
    return plan


def _service_note(plan: _Plan, values: RowValues, card: Card | None, note: CardNote) -> None:
    """What the row's 停用 cell does: archive, restore, or (no cell) leave an archived card so."""
    archived = card is not None and card.archived
    if values.archived is True and not archived:
        plan.archive.append(note)
    elif values.archived is False and archived:
        plan.restore.append(note)
    elif values.archived is KEEP and archived:
        plan.still_archived.append(note)


async def _write_service(session: ImportSession, plan: _Plan, now: datetime) -> None:
    archive, restore = plan.service_changes()
    if archive:  # after the inserts: new cards may be archived
        await session.set_archived(archive, now)
    if restore:  # expired meanwhile: auto-renew off, no renewals for the months it was out
        await session.set_archived(restore, None, restored_on=now.astimezone(UTC).date())


def _number(note: CardNote) -> int:
    return note.number


class _Changed(Exception):
    """A card the file changes was changed by someone else between reading and writing."""


async def import_sheet(
    store: BulkStore,
    chat_id: int,
    sheet: Sheet,
    *,
    today: date,
    now: datetime,
    progress: Progress | None = None,
    before_commit: BeforeCommit | None = None,
    apply_older: bool = False,
    author: ImportAuthor = IMPORTED_BY,
    timezone: str = "UTC",
) -> ImportReport:
    """Validate and apply a whole sheet to the chat's cards, atomically.

    A sheet with a 续费 (renew) column is a renewal file: its rows record renewals instead
    (``bot.bulk.renewals``; ``timezone``, the chat's, says when its today began).

    ``progress`` is called with the number of rows validated so far. ``before_commit`` is
    awaited inside the transaction once every change is written, just before it commits: what
    happens to the process until it returns (an exception, a kill) leaves the chat as it was.
    ``apply_older``: apply rows that move an expiry earlier too (else they are left, reported).
    ``author``: whom the cards' edit trail names for the changes.
    """
    if is_renewal_file(map_columns(sheet.headers)):
        from bot.bulk.renewals import renew_sheet  # it builds on this module's report

        return await renew_sheet(
            store,
            chat_id,
            sheet,
            today=today,
            now=now,
            timezone=timezone,
            author=author,
            progress=progress,
            before_commit=before_commit,
        )
    report = ImportReport(rows=len(sheet.rows))
    # CPU work (Unicode, regexes): off the event loop, so the bot keeps answering meanwhile
    candidates = await asyncio.to_thread(validate_rows, sheet, today, report, progress)
    rows = {row.number: row for row in sheet.rows}
    # the all-digit ICCIDs that look-alike ones may mean are read too, to refuse those rows
    suggested = [v.digits_suggestion for v in candidates if v.digits_suggestion is not None]
    iccids = [values.iccid for values in candidates] + suggested
    existing = await store.cards_by_iccid(chat_id, iccids)
    plan = await asyncio.to_thread(_plan, candidates, existing, rows, apply_older=apply_older)
    trail = _trail(plan.updates, author, now)
    try:
        async with store.import_session(chat_id) as session:
            locked_at = time.perf_counter()
            written = await session.update(plan.updates)
            written += await session.insert(plan.inserts, now)
            if written != len(plan.updates) + len(plan.inserts):
                raise _Changed  # rolled back; read again, this time under the lock
            await _write_service(session, plan, now)
            await session.record_edits(trail)
            if before_commit is not None:
                await before_commit()
    except _Changed:
        async with store.import_session(chat_id) as session:
            locked_at = time.perf_counter()
            existing = await session.existing(iccids)
            plan = _plan(candidates, existing, rows, apply_older=apply_older)
            await session.update(plan.updates)
            await session.insert(plan.inserts, now)
            await _write_service(session, plan, now)
            await session.record_edits(_trail(plan.updates, author, now))
            if before_commit is not None:
                await before_commit()
    report.lock_seconds = time.perf_counter() - locked_at
    report.added, report.updated, report.unchanged = (
        len(plan.inserts),
        len(plan.updates),
        plan.unchanged,
    )
    report.rejected.extend(plan.rejected)
    report.rejected.sort(key=lambda rejected: rejected.row.number)
    report.luhn = sorted(plan.luhn, key=_number)
    report.carriers = sorted(plan.carriers, key=_number)
    report.lookalikes = sorted(plan.lookalikes, key=_number)
    report.older = plan.older
    report.older_applied = plan.older_applied
    report.unmuted = sorted(plan.unmuted, key=_number)
    report.archived = sorted(plan.archive, key=_number)
    report.restored = sorted(plan.restore, key=_number)
    report.still_archived = sorted(plan.still_archived, key=_number)
    return report


@dataclass(frozen=True, slots=True)
class OlderApplied:
    applied: int  # cards whose expiry (and the rest of the row) now follow the file
    changed: int  # left: the card changed since the import (renewed again, edited, deleted)


async def apply_older(
    store: BulkStore,
    chat_id: int,
    older: Sequence[OlderRow],
    *,
    now: datetime,
    author: ImportAuthor = IMPORTED_BY,
) -> OlderApplied:
    """Apply rows an import left as older, after all (the user pressed "apply anyway"). A row
    is applied only while its card still expires on the date the import saw, so a late press,
    or a second one, changes nothing that was decided since. The edit trail names ``author``."""
    async with store.import_session(chat_id) as session:
        existing = await session.existing([row.values.iccid for row in older])
        changes: list[CardChange] = []
        archive: list[str] = []  # the rows' 停用 column, as the import itself applies it
        restore: list[str] = []
        touched: set[str] = set()  # ICCIDs of the rows that changed something
        for row in older:
            card = existing.get(row.values.iccid)
            if card is None or card.expiry != row.card_expiry:
                continue
            before = _draft_of(card)
            try:
                after = merge(row.values, before)
            except InputError:
                continue
            if _values_key(after) != _values_key(before):
                changes.append(CardChange(card.id, before, after))
                touched.add(card.iccid)
            if row.values.archived is True and not card.archived:
                archive.append(card.iccid)
                touched.add(card.iccid)
            elif row.values.archived is False and card.archived:
                restore.append(card.iccid)
                touched.add(card.iccid)
        await session.update(changes)
        await session.record_edits(_trail(changes, author, now))
        if archive:
            await session.set_archived(archive, now)
        if restore:
            await session.set_archived(restore, None, restored_on=now.astimezone(UTC).date())
    return OlderApplied(applied=len(touched), changed=len(older) - len(touched))
