"""PostgreSQL ``BulkStore``: an import file in one transaction, export, search, statistics.

Set-based as SQLite's: an import's inserts and updates are one statement each over arrays
(``unnest``), not a round trip per row. Two writers at once are decided by the statements
themselves: an insert skips an ICCID the chat has by then (the unique constraint), an update
changes a card only while every field is still what the import read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, datetime
from typing import Any

import asyncpg

from bot.bulk.models import CardChange, CardRenewal, CardWithRenewal, FindQuery, TrailEntry
from bot.models import Card, CardDraft, Carrier, Renewal
from storage.bulk import ImportSession, like_pattern
from storage.postgres.pool import Connection
from storage.postgres.storage import _RENEWAL_COLUMNS, CARD_COLUMNS, _renewal, card_from_row

_BY_ICCID = f"SELECT {CARD_COLUMNS} FROM cards WHERE chat_id = $1 AND iccid = ANY($2::text[])"
# the fields a file can set, with their types for unnest()
_WRITTEN = (
    ("expiry", "date"),
    ("carrier", "text"),
    ("label", "text"),
    ("plan_months", "integer"),
    ("plan_days", "integer"),
    ("plan_price_fen", "bigint"),
    ("auto_renew", "boolean"),
    ("note", "text"),
)


_RENEWALS_SINCE = (
    f"SELECT {_RENEWAL_COLUMNS} FROM renewals r JOIN cards c ON c.id = r.card_id "
    "WHERE c.chat_id = $1 AND r.card_id = ANY($2::bigint[]) AND r.renewed_at >= $3"
)
# One statement: each card's expiry moves only while it is still the renewal's old one (as
# renew_card: a renewal by a person ends a snooze and a mute and restores an archived card),
# and a history entry is written for exactly the cards that moved.
_RENEW = (
    "WITH v AS (SELECT * FROM unnest($2::bigint[], $3::timestamptz[], $4::bigint[], "
    "$5::text[], $6::date[], $7::date[], $8::integer[], $9::integer[], $10::text[], "
    "$11::bigint[]) AS v (card_id, renewed_at, by_user_id, by_name, old_expiry, new_expiry, "
    "period_months, period_days, rule, amount_fen)), "
    "moved AS (UPDATE cards c SET expiry = v.new_expiry, snoozed_until = NULL, muted = false, "
    "auto_renew = CASE WHEN c.archived_at IS NOT NULL "
    "AND v.new_expiry < (v.renewed_at AT TIME ZONE 'UTC')::date THEN false ELSE c.auto_renew END, "
    "archived_at = NULL FROM v WHERE c.chat_id = $1 AND c.id = v.card_id "
    "AND c.expiry = v.old_expiry RETURNING c.id) "
    "INSERT INTO renewals (card_id, renewed_at, by_user_id, by_name, old_expiry, new_expiry, "
    "period_months, period_days, rule, amount_fen, automatic) "
    "SELECT v.*, false FROM v JOIN moved ON moved.id = v.card_id"
)


def _renewal_values(item: CardRenewal) -> tuple[Any, ...]:
    r = item.renewal
    return (
        item.card_id,
        r.renewed_at,
        r.by_user_id,
        r.by_name,
        r.old_expiry,
        r.new_expiry,
        r.period.months if r.period else None,
        r.period.days if r.period else None,
        r.rule.value,
        r.amount_fen,
    )


def _written(draft: CardDraft) -> tuple[Any, ...]:
    plan = draft.plan_period
    return (
        draft.expiry,
        draft.carrier.value,
        draft.label,
        plan.months if plan else None,
        plan.days if plan else None,
        draft.plan_price_fen,
        draft.auto_renew,
        draft.note,
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows of values -> one list per column (the arrays unnest() takes)."""
    return [[row[i] for row in rows] for i in range(width)]


def _count(status: str) -> int:
    """The row count of a command tag: 'INSERT 0 12' -> 12, 'UPDATE 3' -> 3."""
    return int(status.rsplit(" ", 1)[-1])


def _by_iccid(rows: Sequence[asyncpg.Record]) -> dict[str, Card]:
    cards = [card_from_row(row) for row in rows]
    return {card.iccid: card for card in cards}


class _PostgresImportSession:
    def __init__(self, conn: Connection, chat_id: int) -> None:
        self._conn = conn
        self._chat_id = chat_id

    async def existing(self, iccids: Sequence[str]) -> dict[str, Card]:
        return _by_iccid(await self._conn.fetch(_BY_ICCID, self._chat_id, list(iccids)))

    async def insert(self, drafts: Sequence[CardDraft], created_at: datetime) -> int:
        if not drafts:
            return 0
        names = ", ".join(name for name, _ in _WRITTEN)
        arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(_WRITTEN, start=4))
        status = await self._conn.execute(
            f"INSERT INTO cards (chat_id, created_at, iccid, {names}) "
            f"SELECT $1, $2, v.* FROM unnest($3::text[], {arrays}) AS v "
            "ON CONFLICT (chat_id, iccid) DO NOTHING",
            self._chat_id,
            created_at,
            [d.iccid for d in drafts],
            *_columns([_written(d) for d in drafts], len(_WRITTEN)),
        )
        return _count(status)

    async def update(self, changes: Sequence[CardChange]) -> int:
        if not changes:
            return 0
        width = len(_WRITTEN)
        new = [f"a_{name}" for name, _ in _WRITTEN]
        old = [f"b_{name}" for name, _ in _WRITTEN]
        kinds = [kind for _, kind in _WRITTEN] * 2
        arrays = ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(kinds, start=3))
        assignments = ", ".join(f"{name} = v.a_{name}" for name, _ in _WRITTEN)
        # IS NOT DISTINCT FROM: NULL matches NULL
        unchanged = " AND ".join(
            f"c.{name} IS NOT DISTINCT FROM v.b_{name}" for name, _ in _WRITTEN
        )
        status = await self._conn.execute(
            # A file that moves a card's expiry later is a renewal by a person: that ends a
            # mute, as /renew does (c.expiry on the right of SET is the old value).
            "UPDATE cards c SET muted = CASE WHEN v.a_expiry > c.expiry THEN false "
            f"ELSE c.muted END, {assignments} "
            f"FROM unnest($2::bigint[], {arrays}) AS v (id, {', '.join(new + old)}) "
            f"WHERE c.chat_id = $1 AND c.id = v.id AND {unchanged}",
            self._chat_id,
            [c.card_id for c in changes],
            *_columns([_written(c.after) for c in changes], width),
            *_columns([_written(c.before) for c in changes], width),
        )
        return _count(status)

    async def record_edits(self, entries: Sequence[TrailEntry]) -> None:
        if not entries:
            return
        await self._conn.executemany(
            "INSERT INTO card_edits (card_id, edited_at, by_user_id, by_name, field, old_value, "
            "new_value) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (
                    entry.card_id,
                    entry.edit.edited_at,
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
        status = await self._conn.execute(
            "UPDATE cards SET archived_at = $1::timestamptz, "
            "auto_renew = CASE WHEN expiry < $4::date THEN false ELSE auto_renew END "
            "WHERE chat_id = $2 "
            "AND iccid = ANY($3::text[]) AND (archived_at IS NULL) = ($1::timestamptz IS NOT NULL)",
            archived_at,
            self._chat_id,
            list(iccids),
            restored_on if archived_at is None else None,
        )
        return _count(status)

    async def renewals_since(self, card_ids: Sequence[int], since: datetime) -> list[Renewal]:
        rows = await self._conn.fetch(_RENEWALS_SINCE, self._chat_id, list(card_ids), since)
        return [_renewal(row) for row in rows]

    async def renew(self, renewals: Sequence[CardRenewal]) -> int:
        if not renewals:
            return 0
        columns = _columns([_renewal_values(item) for item in renewals], 10)
        return _count(await self._conn.execute(_RENEW, self._chat_id, *columns))


class PostgresBulkStore:
    """``BulkStore`` on the pool the bot's ``PostgresStorage`` uses."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def _session(self, chat_id: int) -> AsyncIterator[ImportSession]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PostgresImportSession(conn, chat_id)

    def import_session(self, chat_id: int) -> AbstractAsyncContextManager[ImportSession]:
        return self._session(chat_id)

    async def cards_by_iccid(self, chat_id: int, iccids: Sequence[str]) -> dict[str, Card]:
        return _by_iccid(await self.pool.fetch(_BY_ICCID, chat_id, list(iccids)))

    async def renewals_since(
        self, chat_id: int, card_ids: Sequence[int], since: datetime
    ) -> list[Renewal]:
        rows = await self.pool.fetch(_RENEWALS_SINCE, chat_id, list(card_ids), since)
        return [_renewal(row) for row in rows]

    async def cards_with_last_renewal(self, chat_id: int) -> list[CardWithRenewal]:
        columns = ", ".join(f"c.{name.strip()}" for name in CARD_COLUMNS.split(","))
        rows = await self.pool.fetch(
            f"SELECT {columns}, (SELECT max(r.renewed_at) FROM renewals r "
            "WHERE r.card_id = c.id) AS last_renewed_at "
            "FROM cards c WHERE c.chat_id = $1 ORDER BY c.expiry, c.id",
            chat_id,
        )
        return [CardWithRenewal(card_from_row(row), row["last_renewed_at"]) for row in rows]

    async def find_cards(
        self, chat_id: int, query: FindQuery, *, offset: int, limit: int
    ) -> tuple[int, list[Card]]:
        # ILIKE: SQLite's LIKE ignores the case of ASCII letters, PostgreSQL's does not
        text = like_pattern(query.text)
        where = "chat_id = $1 AND (label ILIKE $2 ESCAPE '\\' OR note ILIKE $2 ESCAPE '\\'"
        params: list[Any] = [chat_id, text]
        if query.iccid:
            where += " OR iccid ILIKE $3 ESCAPE '\\'"
            params.append(like_pattern(query.iccid))
        where += ")"
        n = len(params)
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            # one snapshot: the count and the page agree
            count = await conn.fetchval(f"SELECT count(*) FROM cards WHERE {where}", *params)
            rows = await conn.fetch(
                f"SELECT {CARD_COLUMNS} FROM cards WHERE {where} "
                f"ORDER BY expiry, id LIMIT ${n + 1} OFFSET ${n + 2}",
                *params,
                limit,
                offset,
            )
        return int(count), [card_from_row(row) for row in rows]

    async def expiry_counts(self, chat_id: int) -> dict[date, int]:
        rows = await self.pool.fetch(
            "SELECT expiry, count(*) AS n FROM cards WHERE chat_id = $1 AND archived_at IS NULL "
            "GROUP BY expiry",
            chat_id,
        )
        return {row["expiry"]: int(row["n"]) for row in rows}

    async def carrier_counts(self, chat_id: int) -> dict[Carrier, int]:
        rows = await self.pool.fetch(
            "SELECT carrier, count(*) AS n FROM cards WHERE chat_id = $1 AND archived_at IS NULL "
            "GROUP BY carrier",
            chat_id,
        )
        return {Carrier(row["carrier"]): int(row["n"]) for row in rows}

    async def flag_counts(self, chat_id: int) -> tuple[int, int]:
        row = await self.pool.fetchrow(
            "SELECT count(*) FILTER (WHERE muted) AS muted, "
            "count(*) FILTER (WHERE auto_renew) AS auto FROM cards "
            "WHERE chat_id = $1 AND archived_at IS NULL",
            chat_id,
        )
        return (int(row["muted"]), int(row["auto"])) if row else (0, 0)
