"""SQLite implementation of ``storage.base.Storage`` (aiosqlite, WAL mode)."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from bot.chats import Channel
from bot.files import create_private, only_ours, tighten
from bot.models import (
    Card,
    CardDraft,
    CardEdit,
    CardEditDraft,
    Carrier,
    ChatSettings,
    EditField,
    Period,
    Renewal,
    RenewalRule,
)
from storage.base import CardFilter, DuplicateCardError, RenewalDraft
from storage.errors import DatabaseUnusableError, database_errors
from storage.migrate import migrate

logger = logging.getLogger(__name__)

# How long a statement waits for another process's write (a big `python -m bot import`, a
# backup) before failing with "database is locked": longer than such a write takes.
BUSY_TIMEOUT_MS = 30_000
_CARD_COLUMNS = (
    "id, chat_id, iccid, expiry, carrier, label, plan_months, plan_days, plan_price_fen, "
    "auto_renew, note, muted, snoozed_until, created_at, archived_at"
)
_RENEWAL_COLUMNS = (
    "r.id, r.card_id, r.renewed_at, r.by_user_id, r.by_name, r.old_expiry, r.new_expiry, "
    "r.period_months, r.period_days, r.rule, r.amount_fen, r.automatic"
)


def _period(months: int | None, days: int | None) -> Period | None:
    if months is None and days is None:
        return None
    return Period(months=months or 0, days=days or 0)


def _card(row: aiosqlite.Row) -> Card:
    return Card(
        id=row["id"],
        chat_id=row["chat_id"],
        iccid=row["iccid"],
        expiry=date.fromisoformat(row["expiry"]),
        carrier=Carrier(row["carrier"]),
        label=row["label"],
        plan_period=_period(row["plan_months"], row["plan_days"]),
        plan_price_fen=row["plan_price_fen"],
        auto_renew=bool(row["auto_renew"]),
        note=row["note"],
        muted=bool(row["muted"]),
        snoozed_until=date.fromisoformat(row["snoozed_until"]) if row["snoozed_until"] else None,
        created_at=datetime.fromisoformat(row["created_at"]),
        archived_at=datetime.fromisoformat(row["archived_at"]) if row["archived_at"] else None,
    )


def _renewal(row: aiosqlite.Row) -> Renewal:
    return Renewal(
        id=row["id"],
        card_id=row["card_id"],
        renewed_at=datetime.fromisoformat(row["renewed_at"]),
        by_user_id=row["by_user_id"],
        by_name=row["by_name"],
        old_expiry=date.fromisoformat(row["old_expiry"]),
        new_expiry=date.fromisoformat(row["new_expiry"]),
        period=_period(row["period_months"], row["period_days"]),
        rule=RenewalRule(row["rule"]),
        amount_fen=row["amount_fen"],
        automatic=bool(row["automatic"]),
    )


def _card_edit(row: aiosqlite.Row) -> CardEdit:
    return CardEdit(
        id=row["id"],
        card_id=row["card_id"],
        edited_at=datetime.fromisoformat(row["edited_at"]),
        by_user_id=row["by_user_id"],
        by_name=row["by_name"],
        field=EditField(row["field"]),
        old_value=row["old_value"],
        new_value=row["new_value"],
    )


def _chat(row: aiosqlite.Row) -> ChatSettings:
    return ChatSettings(
        chat_id=row["chat_id"],
        channel=Channel(row["channel"]),
        is_group=bool(row["is_group"]),
        language=row["language"],
        timezone=row["timezone"],
        default_language=row["default_language"],
    )


def _card_values(draft: CardDraft) -> dict[str, Any]:
    plan = draft.plan_period
    return {
        "iccid": draft.iccid,
        "expiry": draft.expiry.isoformat(),
        "carrier": draft.carrier.value,
        "label": draft.label,
        "plan_months": plan.months if plan else None,
        "plan_days": plan.days if plan else None,
        "plan_price_fen": draft.plan_price_fen,
        "auto_renew": int(draft.auto_renew),
        "note": draft.note,
    }


def _filter_sql(card_filter: CardFilter | None) -> tuple[str, list[Any]]:
    card_filter = card_filter or CardFilter()
    where = " AND archived_at IS NOT NULL" if card_filter.archived else " AND archived_at IS NULL"
    if card_filter.expiring_before is None:
        return where, []
    return where + " AND expiry <= ?", [card_filter.expiring_before.isoformat()]


_HEADER = b"SQLite format 3\x00"


def _make_private(path: Path) -> None:
    """The database only its owner can open: a new one 0600 (SQLite gives its -wal, -shm and
    -journal files the database's mode) in a 0700 folder; an existing one, and those files,
    made 0600 if they were more open (an install from before files were private), and its
    folder 0700 if it holds nothing but this database's files (``bot.files.tighten``).
    A file that is not an SQLite database (a wrong ``DATABASE_PATH``) is left as it is."""
    made_folder = create_private(path, exist_ok=True)
    with path.open("rb") as file:
        if file.read(len(_HEADER)) not in (b"", _HEADER):
            return
    sidecars = [path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal")]
    mine = made_folder or only_ours(path.parent, (path.name, f"{path.stem}."))
    if changed := tighten([path, *sidecars], path.parent if mine else None):
        logger.warning("made the database's files private to their owner: %s", ", ".join(changed))


def _probe(path: str) -> None:
    """Open and close the file: a file SQLite can't open fails here rather than in aiosqlite's
    thread, which, when its connect fails, reports its own stop to a loop that may be closed."""
    sqlite3.connect(path).close()


class SqliteStorage:
    """One connection; an asyncio lock keeps coroutines from interleaving inside a transaction."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> SqliteStorage:
        if str(path) != ":memory:":
            try:
                await asyncio.to_thread(_make_private, Path(path))
            except OSError as exc:
                raise DatabaseUnusableError("cannot_open", exc.strerror or exc) from exc
            with database_errors():
                await asyncio.to_thread(_probe, str(path))
            if not os.access(path, os.W_OK):  # every command writes, if only its migrations
                raise DatabaseUnusableError("read_only", "no write permission")
        db = await aiosqlite.connect(str(path), isolation_level=None)
        db.row_factory = aiosqlite.Row
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")  # durable across crashes in WAL mode
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    # transaction/statements/execute/fetchall/fetchone: for this class and sibling stores in
    # ``storage`` only.

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT under the lock; rolled back on any exception."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.rollback()
                raise
            await self._db.commit()

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection under the lock, without BEGIN: each statement is its own transaction.

        Every ``await`` on aiosqlite is a round trip to its thread; a lone write costs one here
        instead of three (BEGIN, the statement, COMMIT). For statements that need no
        transaction around them."""
        async with self._lock:
            yield self._db

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One statement on its own; the number of rows it changed."""
        async with self._lock:
            cursor = await self._db.execute(sql, tuple(params))
            return cursor.rowcount

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, tuple(params)))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self._lock, self._db.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    # chats

    async def ensure_chat(
        self, chat_id: int, *, is_group: bool, language: str | None = None
    ) -> ChatSettings:
        # Every update asks for its chat: read first, write only the first time (or the first
        # time someone with a known language comes, for a chat that had nobody such yet).
        chat = await self.get_chat(chat_id)
        if chat is not None and (chat.default_language is not None or language is None):
            return chat
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO chats (chat_id, is_group, created_at, default_language, address) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id) DO UPDATE SET "
                "default_language = coalesce(default_language, excluded.default_language)",
                (chat_id, int(is_group), datetime.now(UTC).isoformat(), language, str(chat_id)),
            )
        chat = await self.get_chat(chat_id)
        assert chat is not None
        return chat

    async def get_chat(self, chat_id: int) -> ChatSettings | None:
        row = await self.fetchone("SELECT * FROM chats WHERE chat_id = ?", (chat_id,))
        return _chat(row) if row else None

    async def save_chat(self, chat: ChatSettings) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE chats SET is_group = ?, language = ?, "
                "default_language = coalesce(?, default_language), "
                "timezone_chosen = CASE WHEN timezone <> ? THEN 1 ELSE timezone_chosen END, "
                "timezone = ? WHERE chat_id = ?",
                (
                    int(chat.is_group),
                    chat.language,
                    chat.default_language,
                    chat.timezone,
                    chat.timezone,
                    chat.chat_id,
                ),
            )

    # cards

    async def add_card(self, chat_id: int, draft: CardDraft, created_at: datetime) -> Card:
        values = _card_values(draft)
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        async with self.transaction() as db:
            async with db.execute(
                f"SELECT {_CARD_COLUMNS} FROM cards WHERE chat_id = ? AND iccid = ?",
                (chat_id, draft.iccid),
            ) as cursor:
                existing = await cursor.fetchone()
            if existing is not None:
                raise DuplicateCardError(_card(existing))
            async with db.execute(
                f"INSERT INTO cards (chat_id, created_at, {names}) VALUES (?, ?, {marks}) "
                f"RETURNING {_CARD_COLUMNS}",
                (chat_id, created_at.isoformat(), *values.values()),
            ) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return _card(row)

    async def get_card(self, chat_id: int, card_id: int) -> Card | None:
        row = await self.fetchone(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE chat_id = ? AND id = ?", (chat_id, card_id)
        )
        return _card(row) if row else None

    async def get_card_by_iccid(self, chat_id: int, iccid: str) -> Card | None:
        row = await self.fetchone(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE chat_id = ? AND iccid = ?", (chat_id, iccid)
        )
        return _card(row) if row else None

    async def find_cards_by_suffix(self, chat_id: int, suffix: str, limit: int) -> list[Card]:
        # substr() rather than LIKE so '%' or '_' typed by a user match only themselves
        rows = await self.fetchall(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE chat_id = ? "
            "AND substr(iccid, -?) = ? ORDER BY expiry, id LIMIT ?",
            (chat_id, len(suffix), suffix, limit),
        )
        return [_card(row) for row in rows]

    async def find_cards_by_label(self, chat_id: int, label: str, limit: int) -> list[Card]:
        rows = await self.fetchall(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE chat_id = ? "
            "AND label = ? COLLATE NOCASE ORDER BY expiry, id LIMIT ?",
            (chat_id, label, limit),
        )
        return [_card(row) for row in rows]

    async def count_cards(self, chat_id: int, card_filter: CardFilter | None = None) -> int:
        where, params = _filter_sql(card_filter)
        row = await self.fetchone(
            f"SELECT count(*) FROM cards WHERE chat_id = ?{where}", (chat_id, *params)
        )
        return int(row[0]) if row else 0

    async def list_cards(
        self,
        chat_id: int,
        *,
        offset: int = 0,
        limit: int = 10,
        card_filter: CardFilter | None = None,
    ) -> list[Card]:
        where, params = _filter_sql(card_filter)
        rows = await self.fetchall(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE chat_id = ?{where} "
            "ORDER BY expiry, id LIMIT ? OFFSET ?",
            (chat_id, *params, limit, offset),
        )
        return [_card(row) for row in rows]

    async def update_card(
        self,
        chat_id: int,
        card: Card,
        *,
        edits: Sequence[CardEditDraft] = (),
        if_expiry: date | None = None,
    ) -> Card | None:
        values = _card_values(card)
        values["muted"] = int(card.muted)
        values["snoozed_until"] = card.snoozed_until.isoformat() if card.snoozed_until else None
        assignments = ", ".join(f"{name} = ?" for name in values)
        condition, params = "", []
        if if_expiry is not None:
            condition, params = " AND expiry = ?", [if_expiry.isoformat()]
        try:
            async with self.transaction() as db:
                async with db.execute(
                    f"UPDATE cards SET {assignments} WHERE chat_id = ? AND id = ?{condition} "
                    f"RETURNING {_CARD_COLUMNS}",
                    (*values.values(), chat_id, card.id, *params),
                ) as cursor:
                    row = await cursor.fetchone()
                if row is not None and edits:
                    await db.executemany(
                        "INSERT INTO card_edits (card_id, edited_at, by_user_id, by_name, field, "
                        "old_value, new_value) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                card.id,
                                edit.edited_at.isoformat(),
                                edit.by_user_id,
                                edit.by_name,
                                edit.field.value,
                                edit.old_value,
                                edit.new_value,
                            )
                            for edit in edits
                        ],
                    )
        except aiosqlite.IntegrityError:
            existing = await self.get_card_by_iccid(chat_id, card.iccid)
            if existing is None:
                raise
            raise DuplicateCardError(existing) from None
        return _card(row) if row else None

    async def delete_card(self, chat_id: int, card_id: int) -> bool:
        async with self.transaction() as db:
            cursor = await db.execute(
                "DELETE FROM cards WHERE chat_id = ? AND id = ?", (chat_id, card_id)
            )
            return cursor.rowcount > 0

    async def set_archived(
        self,
        chat_id: int,
        card_id: int,
        archived_at: datetime | None,
        *,
        restored_on: date | None = None,
    ) -> Card | None:
        stamp = archived_at.astimezone(UTC).isoformat() if archived_at else None
        lapsed = restored_on.isoformat() if restored_on and archived_at is None else None
        async with (
            self.transaction() as db,
            db.execute(
                "UPDATE cards SET archived_at = CASE WHEN ? IS NULL THEN NULL "
                "ELSE coalesce(archived_at, ?) END, "
                "auto_renew = CASE WHEN expiry < ? THEN 0 ELSE auto_renew END "
                f"WHERE chat_id = ? AND id = ? RETURNING {_CARD_COLUMNS}",
                (stamp, stamp, lapsed, chat_id, card_id),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        return _card(row) if row else None

    # renewals

    async def renew_card(self, chat_id: int, card_id: int, renewal: RenewalDraft) -> Renewal | None:
        period = renewal.period
        async with self.transaction() as db:
            # Only if the expiry is still what the user saw: two staff pressing "renew" on the
            # same stale message must not extend the card twice. A renewal by a person starts
            # the card's reminders afresh: it ends a mute too, and puts an archived card back in
            # service (an automatic one does neither).
            cursor = await db.execute(
                "UPDATE cards SET expiry = ?, snoozed_until = NULL, "
                "muted = CASE WHEN ? THEN muted ELSE 0 END, "
                # restored with its expiry still past (a backdated renewal): no auto-renewing
                # of every month it was out, as set_archived's restore
                "auto_renew = CASE WHEN archived_at IS NOT NULL AND NOT ? AND ? < ? "
                "THEN 0 ELSE auto_renew END, "
                "archived_at = CASE WHEN ? THEN archived_at END "
                "WHERE chat_id = ? AND id = ? AND expiry = ?",
                (
                    renewal.new_expiry.isoformat(),
                    int(renewal.automatic),
                    int(renewal.automatic),
                    renewal.new_expiry.isoformat(),
                    renewal.renewed_at.astimezone(UTC).date().isoformat(),
                    int(renewal.automatic),
                    chat_id,
                    card_id,
                    renewal.old_expiry.isoformat(),
                ),
            )
            if cursor.rowcount == 0:
                return None
            async with db.execute(
                "INSERT INTO renewals (card_id, renewed_at, by_user_id, by_name, old_expiry, "
                "new_expiry, period_months, period_days, rule, amount_fen, automatic) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    card_id,
                    renewal.renewed_at.isoformat(),
                    renewal.by_user_id,
                    renewal.by_name,
                    renewal.old_expiry.isoformat(),
                    renewal.new_expiry.isoformat(),
                    period.months if period else None,
                    period.days if period else None,
                    renewal.rule.value,
                    renewal.amount_fen,
                    int(renewal.automatic),
                ),
            ) as inserted:
                row = await inserted.fetchone()
        assert row is not None
        return Renewal(id=row[0], card_id=card_id, **renewal.model_dump())

    async def list_renewals(self, chat_id: int, card_id: int, limit: int = 10) -> list[Renewal]:
        rows = await self.fetchall(
            f"SELECT {_RENEWAL_COLUMNS} FROM renewals r JOIN cards c ON c.id = r.card_id "
            "WHERE c.chat_id = ? AND r.card_id = ? ORDER BY r.renewed_at DESC, r.id DESC LIMIT ?",
            (chat_id, card_id, limit),
        )
        return [_renewal(row) for row in rows]

    async def list_card_edits(self, chat_id: int, card_id: int, limit: int = 10) -> list[CardEdit]:
        rows = await self.fetchall(
            "SELECT e.id, e.card_id, e.edited_at, e.by_user_id, e.by_name, e.field, e.old_value, "
            "e.new_value FROM card_edits e JOIN cards c ON c.id = e.card_id "
            "WHERE c.chat_id = ? AND e.card_id = ? ORDER BY e.edited_at DESC, e.id DESC LIMIT ?",
            (chat_id, card_id, limit),
        )
        return [_card_edit(row) for row in rows]

    async def spent_by_carrier(self, chat_id: int, since: datetime) -> dict[Carrier, int]:
        rows = await self.fetchall(
            "SELECT c.carrier, sum(r.amount_fen) FROM renewals r JOIN cards c ON c.id = r.card_id "
            "WHERE c.chat_id = ? AND r.renewed_at >= ? AND r.amount_fen IS NOT NULL "
            "GROUP BY c.carrier",
            (chat_id, since.astimezone(UTC).isoformat()),
        )
        return {Carrier(row[0]): int(row[1]) for row in rows}
