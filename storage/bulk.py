"""Bulk card persistence: a whole import file in one transaction, export, search, statistics.

A sibling of ``SqliteStorage`` on the same connection (same lock, same file), through its
``transaction``/``fetchall``/``fetchone`` helpers. Set-based SQL throughout: an import is a
handful of statements (``executemany``), not a round trip per row.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, Protocol

import aiosqlite

from bot.bulk.models import CardChange, CardRenewal, CardWithRenewal, FindQuery, TrailEntry
from bot.models import Card, CardDraft, Carrier, Renewal
from storage.errors import DatabaseUnusableError as DatabaseUnusableError  # re-exported
from storage.errors import database_errors as database_errors
from storage.sqlite import _CARD_COLUMNS, _RENEWAL_COLUMNS, SqliteStorage, _card, _renewal

_LIKE_ESCAPE = "\\"
_WRITTEN = "expiry, carrier, label, plan_months, plan_days, plan_price_fen, auto_renew, note"


class ImportSession(Protocol):
    """One import file's changes to one chat, inside one transaction."""

    async def existing(self, iccids: Sequence[str]) -> dict[str, Card]:
        """The chat's cards with these ICCIDs, by ICCID."""
        ...

    async def insert(self, drafts: Sequence[CardDraft], created_at: datetime) -> int:
        """New cards, each only if the chat has no card with its ICCID yet: how many were."""
        ...

    async def update(self, changes: Sequence[CardChange]) -> int:
        """Every field a file can set, each card only while all those fields are still its
        ``before``: how many cards were changed. Snoozes are untouched; a mute ends where the
        new expiry is later (a renewal by a person)."""
        ...

    async def record_edits(self, entries: Sequence[TrailEntry]) -> None:
        """The cards' edit trail entries for the changes written in this session."""
        ...

    async def set_archived(
        self,
        iccids: Sequence[str],
        archived_at: datetime | None,
        *,
        restored_on: date | None = None,
    ) -> int:
        """Archive these cards (a card already archived keeps its date) or, with None, restore
        them: how many changed. Restored on ``restored_on`` with an expiry before it, a card's
        auto-renew goes off (see ``Storage.set_archived``)."""
        ...

    async def renewals_since(self, card_ids: Sequence[int], since: datetime) -> list[Renewal]:
        """These cards' renewals recorded at ``since`` or later."""
        ...

    async def renew(self, renewals: Sequence[CardRenewal]) -> int:
        """Record each renewal as ``Storage.renew_card`` does (the expiry, the history entry; a
        renewal by a person ends a snooze and a mute and restores an archived card), each only
        while its card still expires on ``old_expiry``: how many were recorded."""
        ...


class BulkStore(Protocol):
    async def cards_by_iccid(self, chat_id: int, iccids: Sequence[str]) -> dict[str, Card]:
        """The chat's cards with these ICCIDs, by ICCID (outside any import transaction)."""
        ...

    async def renewals_since(
        self, chat_id: int, card_ids: Sequence[int], since: datetime
    ) -> list[Renewal]:
        """The chat's cards' renewals recorded at ``since`` or later (outside any import)."""
        ...

    def import_session(self, chat_id: int) -> AbstractAsyncContextManager[ImportSession]:
        """All changes made through the session are committed together when the block ends,
        or none of them if it raises."""
        ...

    async def cards_with_last_renewal(self, chat_id: int) -> list[CardWithRenewal]: ...
    async def find_cards(
        self, chat_id: int, query: FindQuery, *, offset: int, limit: int
    ) -> tuple[int, list[Card]]:
        """The total number of matches and one page of them, by expiry."""
        ...

    async def expiry_counts(self, chat_id: int) -> dict[date, int]:
        """How many of the chat's cards in service (not archived) expire on each date."""
        ...

    async def carrier_counts(self, chat_id: int) -> dict[Carrier, int]: ...
    async def flag_counts(self, chat_id: int) -> tuple[int, int]:
        """How many cards in service are muted, and how many renew automatically."""
        ...


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE … ESCAPE '\\'``: a ``%`` or ``_`` the user typed matches itself."""
    escaped = (
        text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%"


def _written_values(draft: CardDraft) -> tuple[Any, ...]:
    plan = draft.plan_period
    return (
        draft.expiry.isoformat(),
        draft.carrier.value,
        draft.label,
        plan.months if plan else None,
        plan.days if plan else None,
        draft.plan_price_fen,
        int(draft.auto_renew),
        draft.note,
    )


# one statement for any number of ICCIDs: the list goes in as a JSON array
_BY_ICCID = (
    f"SELECT {_CARD_COLUMNS} FROM cards WHERE chat_id = ? "
    "AND iccid IN (SELECT value FROM json_each(?))"
)
_NAMES = [name.strip() for name in _WRITTEN.split(",")]
_ASSIGNMENTS = ", ".join(f"{name} = ?" for name in _NAMES)
_UNCHANGED = " AND ".join(f"{name} IS ?" for name in _NAMES)  # IS: NULL matches NULL


_RENEWALS_SINCE = (
    f"SELECT {_RENEWAL_COLUMNS} FROM renewals r JOIN cards c ON c.id = r.card_id "
    "WHERE c.chat_id = ? AND r.card_id IN (SELECT value FROM json_each(?)) AND r.renewed_at >= ?"
)


def _since_params(chat_id: int, card_ids: Sequence[int], since: datetime) -> tuple[Any, ...]:
    return chat_id, json.dumps(list(card_ids)), since.astimezone(UTC).isoformat()


def _by_iccid(rows: Sequence[aiosqlite.Row]) -> dict[str, Card]:
    cards = [_card(row) for row in rows]
    return {card.iccid: card for card in cards}


class _SqliteImportSession:
    def __init__(self, db: aiosqlite.Connection, chat_id: int) -> None:
        self._db = db
        self._chat_id = chat_id

    async def existing(self, iccids: Sequence[str]) -> dict[str, Card]:
        rows = await self._db.execute_fetchall(_BY_ICCID, (self._chat_id, json.dumps(list(iccids))))
        return _by_iccid(list(rows))

    async def insert(self, drafts: Sequence[CardDraft], created_at: datetime) -> int:
        if not drafts:
            return 0
        stamp = created_at.isoformat()
        cursor = await self._db.executemany(
            f"INSERT INTO cards (chat_id, iccid, created_at, {_WRITTEN}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, iccid) DO NOTHING",
            [(self._chat_id, d.iccid, stamp, *_written_values(d)) for d in drafts],
        )
        return cursor.rowcount

    async def update(self, changes: Sequence[CardChange]) -> int:
        if not changes:
            return 0
        cursor = await self._db.executemany(
            # A file that moves a card's expiry later is a renewal by a person: that ends a
            # mute, as /renew does (SET reads the old row, so ``expiry`` here is the old one).
            f"UPDATE cards SET muted = CASE WHEN ? > expiry THEN 0 ELSE muted END, {_ASSIGNMENTS} "
            f"WHERE chat_id = ? AND id = ? AND {_UNCHANGED}",
            [
                (
                    c.after.expiry.isoformat(),
                    *_written_values(c.after),
                    self._chat_id,
                    c.card_id,
                    *_written_values(c.before),
                )
                for c in changes
            ],
        )
        return cursor.rowcount

    async def record_edits(self, entries: Sequence[TrailEntry]) -> None:
        if not entries:
            return
        await self._db.executemany(
            "INSERT INTO card_edits (card_id, edited_at, by_user_id, by_name, field, old_value, "
            "new_value) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    entry.card_id,
                    entry.edit.edited_at.isoformat(),
                    entry.edit.by_user_id,
                    entry.edit.by_name,
                    entry.edit.field.value,
                    entry.edit.old_value,
                    entry.edit.new_value,
                )
                for entry in entries
            ],
        )

    async def set_archived(
        self,
        iccids: Sequence[str],
        archived_at: datetime | None,
        *,
        restored_on: date | None = None,
    ) -> int:
        if not iccids:
            return 0
        stamp = archived_at.astimezone(UTC).isoformat() if archived_at else None
        lapsed = restored_on.isoformat() if restored_on and archived_at is None else None
        cursor = await self._db.execute(
            "UPDATE cards SET archived_at = ?, "
            "auto_renew = CASE WHEN expiry < ? THEN 0 ELSE auto_renew END WHERE chat_id = ? "
            "AND iccid IN (SELECT value FROM json_each(?)) "
            "AND (archived_at IS NULL) = (? IS NOT NULL)",
            (stamp, lapsed, self._chat_id, json.dumps(list(iccids)), stamp),
        )
        return cursor.rowcount

    async def renewals_since(self, card_ids: Sequence[int], since: datetime) -> list[Renewal]:
        rows = await self._db.execute_fetchall(
            _RENEWALS_SINCE, _since_params(self._chat_id, card_ids, since)
        )
        return [_renewal(row) for row in rows]

    async def renew(self, renewals: Sequence[CardRenewal]) -> int:
        if not renewals:
            return 0
        # as renew_card: only while the expiry is the one the renewal counts from; a renewal by
        # a person ends a snooze and a mute and puts an archived card back in service
        # an archived card back in service with its expiry still past (a backdated payment)
        # must not auto-renew for every month it was out: as set_archived's restore
        cursor = await self._db.executemany(
            "UPDATE cards SET expiry = ?, snoozed_until = NULL, muted = 0, "
            "auto_renew = CASE WHEN archived_at IS NOT NULL AND ? < ? THEN 0 ELSE auto_renew END, "
            "archived_at = NULL "
            "WHERE chat_id = ? AND id = ? AND expiry = ?",
            [
                (
                    r.renewal.new_expiry.isoformat(),
                    r.renewal.new_expiry.isoformat(),
                    r.renewal.renewed_at.astimezone(UTC).date().isoformat(),
                    self._chat_id,
                    r.card_id,
                    r.renewal.old_expiry.isoformat(),
                )
                for r in renewals
            ],
        )
        renewed = cursor.rowcount
        if renewed != len(renewals):
            # the caller starts over (the transaction is rolled back): a card changed meanwhile
            return renewed
        await self._db.executemany(
            "INSERT INTO renewals (card_id, renewed_at, by_user_id, by_name, old_expiry, "
            "new_expiry, period_months, period_days, rule, amount_fen, automatic) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            [
                (
                    r.card_id,
                    r.renewal.renewed_at.isoformat(),
                    r.renewal.by_user_id,
                    r.renewal.by_name,
                    r.renewal.old_expiry.isoformat(),
                    r.renewal.new_expiry.isoformat(),
                    r.renewal.period.months if r.renewal.period else None,
                    r.renewal.period.days if r.renewal.period else None,
                    r.renewal.rule.value,
                    r.renewal.amount_fen,
                )
                for r in renewals
            ],
        )
        return renewed


class SqliteBulkStore:
    """``BulkStore`` on the bot's ``SqliteStorage``."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage

    @asynccontextmanager
    async def _session(self, chat_id: int) -> AsyncIterator[ImportSession]:
        async with self.storage.transaction() as db:
            yield _SqliteImportSession(db, chat_id)

    def import_session(self, chat_id: int) -> AbstractAsyncContextManager[ImportSession]:
        return self._session(chat_id)

    async def cards_by_iccid(self, chat_id: int, iccids: Sequence[str]) -> dict[str, Card]:
        rows = await self.storage.fetchall(_BY_ICCID, (chat_id, json.dumps(list(iccids))))
        return await asyncio.to_thread(_by_iccid, rows)  # thousands of models: off the loop

    async def renewals_since(
        self, chat_id: int, card_ids: Sequence[int], since: datetime
    ) -> list[Renewal]:
        rows = await self.storage.fetchall(_RENEWALS_SINCE, _since_params(chat_id, card_ids, since))
        return [_renewal(row) for row in rows]

    async def cards_with_last_renewal(self, chat_id: int) -> list[CardWithRenewal]:
        columns = ", ".join(f"c.{name.strip()}" for name in _CARD_COLUMNS.split(","))
        rows = await self.storage.fetchall(
            f"SELECT {columns}, (SELECT max(r.renewed_at) FROM renewals r "
            "WHERE r.card_id = c.id) AS last_renewed_at "
            "FROM cards c WHERE c.chat_id = ? ORDER BY c.expiry, c.id",
            (chat_id,),
        )
        return [
            CardWithRenewal(
                _card(row),
                datetime.fromisoformat(row["last_renewed_at"]) if row["last_renewed_at"] else None,
            )
            for row in rows
        ]

    async def find_cards(
        self, chat_id: int, query: FindQuery, *, offset: int, limit: int
    ) -> tuple[int, list[Card]]:
        # fetchall/fetchone take positional parameters only
        text = like_pattern(query.text)
        where = "chat_id = ? AND (label LIKE ? ESCAPE '\\' OR note LIKE ? ESCAPE '\\'"
        params: list[Any] = [chat_id, text, text]
        if query.iccid:
            where += " OR iccid LIKE ? ESCAPE '\\'"
            params.append(like_pattern(query.iccid))
        where += ")"
        count = await self.storage.fetchone(f"SELECT count(*) FROM cards WHERE {where}", params)
        rows = await self.storage.fetchall(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE {where} ORDER BY expiry, id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return (int(count[0]) if count else 0), [_card(row) for row in rows]

    async def expiry_counts(self, chat_id: int) -> dict[date, int]:
        rows = await self.storage.fetchall(
            "SELECT expiry, count(*) FROM cards WHERE chat_id = ? AND archived_at IS NULL "
            "GROUP BY expiry",
            (chat_id,),
        )
        return {date.fromisoformat(row[0]): int(row[1]) for row in rows}

    async def carrier_counts(self, chat_id: int) -> dict[Carrier, int]:
        rows = await self.storage.fetchall(
            "SELECT carrier, count(*) FROM cards WHERE chat_id = ? AND archived_at IS NULL "
            "GROUP BY carrier",
            (chat_id,),
        )
        return {Carrier(row[0]): int(row[1]) for row in rows}

    async def flag_counts(self, chat_id: int) -> tuple[int, int]:
        row = await self.storage.fetchone(
            "SELECT coalesce(sum(muted), 0), coalesce(sum(auto_renew), 0) FROM cards "
            "WHERE chat_id = ? AND archived_at IS NULL",
            (chat_id,),
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)
