"""Copying a SQLite database into an empty PostgreSQL one (``python -m bot migrate-db``).

The original file is only read: SQLite's backup API takes a consistent snapshot of it (the bot
may be running on it) into a private temporary folder, and that copy is what gets migrated to
the latest schema and read. The target is migrated too, then filled in ONE transaction: every
table both schemas have, parents before children (PostgreSQL's foreign keys decide the order),
by COPY; ids are kept and every identity sequence is moved past the highest id; the counts are
compared before the commit, so a failure at any point leaves the target as empty as it was.

Nothing here names a table: the tables, their columns, the column types and the foreign keys
are read from the two schemas, so a migration 0008 is copied without a change here. What it
can't copy (a table or column only the SQLite side has, a PostgreSQL type it has no conversion
for, schemas at different versions) stops it before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import tempfile
import time as clock
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from bot.i18n import t
from storage.base import DatabaseUnreachableError, SchemaTooNewError
from storage.migrate import LATEST_VERSION as SQLITE_VERSION
from storage.migrate import migrate as migrate_sqlite
from storage.postgres.migrate import LATEST_VERSION as POSTGRES_VERSION
from storage.postgres.migrate import VERSION_TABLE
from storage.postgres.migrate import migrate as migrate_postgres
from storage.postgres.pool import Connection, open_pool, redacted

logger = logging.getLogger(__name__)
_HEADER = b"SQLite format 3\x00"
BATCH_ROWS = 5_000  # rows read from SQLite per step of a table's COPY
LOCK_TIMEOUT = "30s"  # a bot already writing the target: wait this long, then give up


class TransferError(Exception):
    """The copy did not happen (nothing was written). ``key`` names the catalogue text
    (``cli.migrate_db.*``), ``params`` fill it, ``status`` is the exit status; ``str()`` is the
    English text. No parameter ever holds a value of a text column (a robot's token)."""

    def __init__(self, reason: str, *, status: int = 2, **params: Any) -> None:
        self.key = f"cli.migrate_db.{reason}"
        self.status = status
        self.params = params
        super().__init__(t("en", self.key, **params))


@dataclass(frozen=True)
class TableCount:
    """One table copied: its rows in the SQLite snapshot and in PostgreSQL after the copy."""

    table: str
    source: int
    target: int


# How a SQLite value becomes the PostgreSQL column's (by the column's type); None: as it is.
Convert = Callable[[Any], Any]


def _date(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError(value)
    return date.fromisoformat(value)


def _instant(value: Any) -> datetime:
    """ISO 8601 text, UTC when it says no zone (as SQLite's own ``datetime()`` writes it)."""
    if not isinstance(value, str):
        raise ValueError(value)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _time(value: Any) -> time:
    if not isinstance(value, str):
        raise ValueError(value)
    return time.fromisoformat(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(value)


def _integer(value: Any) -> int:
    if isinstance(value, int):
        return value
    raise ValueError(value)


def _float(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(value)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(type(value).__name__)  # never the value: a text may be a secret


def _bytes(value: Any) -> bytes:
    """A BLOB; a text written by hand is kept as its UTF-8 (as storage.conversations reads it)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise ValueError(type(value).__name__)


_CONVERSIONS: dict[str, Convert] = {
    "date": _date,
    "timestamp with time zone": _instant,
    "time without time zone": _time,
    "boolean": _boolean,
    "smallint": _integer,
    "integer": _integer,
    "bigint": _integer,
    "real": _float,
    "double precision": _float,
    "text": _text,
    "bytea": _bytes,
}
# The values an error may quote: never those of text and bytes columns.
_QUOTABLE = {"date", "timestamp with time zone", "time without time zone", "boolean"}


@dataclass(frozen=True)
class _Column:
    name: str
    type: str
    sequence: str | None  # the identity (or serial) sequence feeding it


@dataclass(frozen=True)
class _Table:
    name: str
    columns: list[_Column]  # those both sides have, SQLite's order
    key: list[str]  # SQLite's primary key, to read in its order (and name a bad row)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_source(source: Path) -> None:
    if not source.exists():
        raise TransferError("no_source", path=source)
    try:
        with source.open("rb") as file:
            header = file.read(len(_HEADER))
    except IsADirectoryError:
        raise TransferError("not_a_database", path=source) from None
    except OSError as exc:
        raise TransferError("source_unreadable", path=source, error=exc.strerror) from None
    if header != _HEADER:
        raise TransferError("not_a_database", path=source)


def _snapshot(source: Path, copy: Path) -> None:
    """A consistent copy of ``source`` (opened read-only) at ``copy``, in one backup step."""
    try:
        uri = f"{source.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as src, closing(sqlite3.connect(copy)) as dst:
            src.execute("PRAGMA busy_timeout = 30000")
            src.backup(dst)
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise TransferError("not_a_database", path=source) from None
        raise TransferError("source_unreadable", path=source, error=exc) from None


async def _sqlite_tables(db: aiosqlite.Connection) -> dict[str, tuple[list[str], list[str]]]:
    """Each table of the snapshot: its stored columns, and its primary key's columns."""
    async with db.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ) as cursor:
        names = [str(row[0]) for row in await cursor.fetchall()]
    tables = {}
    for name in names:
        # table_xinfo: hidden 2 and 3 are generated columns, computed rather than copied
        async with db.execute(f"PRAGMA table_xinfo({_quote(name)})") as cursor:
            info = [row for row in await cursor.fetchall() if row[6] in (0, 1)]
        key = [str(row[1]) for row in sorted(info, key=lambda row: row[5]) if row[5] > 0]
        tables[name] = ([str(row[1]) for row in info], key)
    return tables


_PG_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS column_name,
       a.atttypid::regtype::text AS type, a.attgenerated <> '' AS generated,
       pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS sequence
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> $1
ORDER BY c.relname, a.attnum
"""
_PG_FOREIGN_KEYS = """
SELECT child.relname AS child, parent.relname AS parent
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = current_schema()
"""


async def _postgres_tables(conn: Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> $1 "
        "ORDER BY tablename",
        VERSION_TABLE,
    )
    return [str(row["tablename"]) for row in rows]


async def _filled(conn: Connection, tables: Sequence[str]) -> tuple[str, int] | None:
    """The first of ``tables`` holding rows, and how many; None when all are empty."""
    for table in tables:
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_quote(table)})"):
            return table, int(await conn.fetchval(f"SELECT count(*) FROM {_quote(table)}"))
    return None


def _refuse_filled(found: tuple[str, int] | None, target: str) -> None:
    if found is not None:
        table, rows = found
        raise TransferError("not_empty", target=target, table=table, rows=rows)


async def _plan(db: aiosqlite.Connection, conn: Connection) -> list[_Table]:
    """The tables to copy, parents first, with the columns both sides have."""
    if SQLITE_VERSION != POSTGRES_VERSION:
        raise TransferError(
            "schema_mismatch",
            detail=f"SQLite schema version {SQLITE_VERSION}, PostgreSQL {POSTGRES_VERSION}",
        )
    sqlite = await _sqlite_tables(db)
    postgres: dict[str, dict[str, _Column]] = {}
    generated: dict[str, set[str]] = {}
    for row in await conn.fetch(_PG_COLUMNS, VERSION_TABLE):
        table, name = str(row["table_name"]), str(row["column_name"])
        if row["generated"]:
            generated.setdefault(table, set()).add(name)
            continue
        postgres.setdefault(table, {})[name] = _Column(name, str(row["type"]), row["sequence"])
    missing = sorted(set(sqlite) - set(postgres))
    if missing:
        detail = f"PostgreSQL has no table {', '.join(missing)}"
        raise TransferError("schema_mismatch", detail=detail)
    plans: dict[str, _Table] = {}
    for table, (names, key) in sqlite.items():
        columns = []
        for name in names:
            if name in generated.get(table, set()):
                continue  # PostgreSQL computes it
            column = postgres[table].get(name)
            if column is None:
                raise TransferError(
                    "schema_mismatch", detail=f"PostgreSQL's {table} has no column {name}"
                )
            if column.type not in _CONVERSIONS:
                detail = f"no conversion to {column.type} ({table}.{name})"
                raise TransferError("schema_mismatch", detail=detail)
            columns.append(column)
        plans[table] = _Table(table, columns, key)
    order: TopologicalSorter[str] = TopologicalSorter({name: () for name in plans})
    for row in await conn.fetch(_PG_FOREIGN_KEYS):
        child, parent = str(row["child"]), str(row["parent"])
        if child in plans and parent in plans and child != parent:
            order.add(child, parent)
    try:
        order.prepare()
    except CycleError as exc:
        raise TransferError(
            "schema_mismatch", detail=f"foreign keys in a cycle: {exc.args[1]}"
        ) from None
    ordered: list[_Table] = []
    while order.is_active():
        ready = sorted(order.get_ready())  # a stable order, whatever the catalogue's
        ordered += [plans[name] for name in ready]
        order.done(*ready)
    return ordered


async def _records(
    db: aiosqlite.Connection, table: _Table, read: list[int]
) -> AsyncIterator[tuple[Any, ...]]:
    """The table's rows as PostgreSQL takes them, read in primary-key order; ``read[0]``
    counts them. Every value is checked, integers and texts too: SQLite keeps whatever it is
    given, and a value PostgreSQL would take differently must stop the copy, not slip in."""
    names = ", ".join(_quote(column.name) for column in table.columns)
    order = f" ORDER BY {', '.join(_quote(name) for name in table.key)}" if table.key else ""
    converts = [_CONVERSIONS[column.type] for column in table.columns]
    async with db.execute(f"SELECT {names} FROM {_quote(table.name)}{order}") as cursor:
        while rows := await cursor.fetchmany(BATCH_ROWS):
            for row in rows:
                read[0] += 1
                try:
                    yield tuple(
                        None if value is None else convert(value)
                        for convert, value in zip(converts, row, strict=True)
                    )
                except ValueError:
                    raise _bad_value(table, row, read[0]) from None


def _bad_value(table: _Table, row: Sequence[Any], number: int) -> TransferError:
    """Which value of the row could not be converted (found again: the fast path above does
    not track the column)."""
    for column, value in zip(table.columns, row, strict=True):
        try:
            if value is not None:
                _CONVERSIONS[column.type](value)
        except ValueError:
            break
    else:  # pragma: no cover - the caller saw one fail
        raise AssertionError(table.name)
    shown = repr(value) if column.type in _QUOTABLE else f"<{type(value).__name__}>"
    return TransferError(
        "bad_value",
        table=table.name,
        column=column.name,
        type=column.type,
        number=number,
        value=shown,
    )


async def _sqlite_count(db: aiosqlite.Connection, table: str) -> int:
    async with db.execute(f"SELECT count(*) FROM {_quote(table)}") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _copy(
    db: aiosqlite.Connection,
    conn: Connection,
    tables: list[_Table],
    target: str,
    progress: Callable[[str, int, float], None] | None,
) -> list[TableCount]:
    """Inside the target's transaction: fill every table, move the sequences, count."""
    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    # Writers keep off until the commit (readers may go on): no bot can fill a table between
    # the check that it is empty and the copy.
    names = ", ".join(_quote(table.name) for table in tables)
    await conn.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
    _refuse_filled(await _filled(conn, [table.name for table in tables]), target)
    for table in tables:
        started, read = clock.monotonic(), [0]
        try:
            await conn.copy_records_to_table(
                table.name,
                records=_records(db, table, read),
                columns=[column.name for column in table.columns],
            )
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
            # the server's message names the table and constraint; its detail (the row's
            # values, which may be a token) is left out
            raise TransferError("rejected", table=table.name, error=exc.args[0]) from None
        if progress is not None:
            progress(table.name, read[0], clock.monotonic() - started)
    for table in tables:
        for column in table.columns:
            if column.sequence is not None:
                # next value: one past the highest id copied (1 for an empty table)
                await conn.execute(
                    f"SELECT setval($1::regclass, greatest(coalesce(max({_quote(column.name)}), "
                    f"0), 0) + 1, false) FROM {_quote(table.name)}",
                    column.sequence,
                )
    counts = []
    for table in tables:
        copied = int(await conn.fetchval(f"SELECT count(*) FROM {_quote(table.name)}"))
        counts.append(TableCount(table.name, await _sqlite_count(db, table.name), copied))
    wrong = [c for c in counts if c.source != c.target]
    if wrong:
        first = wrong[0]
        raise TransferError(
            "counts_differ", status=1, table=first.table, source=first.source, target=first.target
        )
    return counts


async def copy_sqlite_to_postgres(
    source: Path,
    target_url: str,
    *,
    progress: Callable[[str, int, float], None] | None = None,
) -> list[TableCount]:
    """Copy the SQLite database ``source`` into the empty PostgreSQL database ``target_url``;
    the counts per table, in the order copied. ``TransferError`` (nothing written) otherwise.
    ``progress(table, rows, seconds)`` is told each table as it is copied."""
    target = redacted(target_url)
    _check_source(source)
    try:
        pool = await open_pool(target_url, min_size=1, max_size=1)
    except DatabaseUnreachableError as exc:
        error = str(exc).removeprefix("DATABASE_URL: ")
        raise TransferError("target_unreachable", target=target, error=error) from None
    try:
        # Before migrating it: a database with data is left exactly as it was.
        async with pool.acquire() as conn:
            _refuse_filled(await _filled(conn, await _postgres_tables(conn)), target)
        # The snapshot holds the robots' tokens: a folder only this user can open (0700).
        with tempfile.TemporaryDirectory(prefix="simwatch-migrate-") as folder:
            copy = Path(folder) / "snapshot.sqlite3"
            try:
                await asyncio.to_thread(_snapshot, source, copy)
            except OSError as exc:
                raise TransferError("snapshot_failed", folder=folder, error=exc) from None
            db = await aiosqlite.connect(copy, isolation_level=None)
            try:
                return await _migrate_and_copy(db, pool, source, target, progress)
            finally:
                await db.close()
    except sqlite3.Error as exc:  # reading the snapshot
        raise TransferError("source_unreadable", path=source, error=exc) from None
    except asyncpg.LockNotAvailableError:
        raise TransferError("busy", target=target) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # the message only: its DETAIL line may quote a row (a token), and is a second line
        error = exc.args[0] if exc.args else type(exc).__name__
        raise TransferError("target_failed", target=target, error=error) from None
    finally:
        await pool.close()


async def _migrate_and_copy(
    db: aiosqlite.Connection,
    pool: asyncpg.Pool,
    source: Path,
    target: str,
    progress: Callable[[str, int, float], None] | None,
) -> list[TableCount]:
    try:
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        if not row or int(row[0]) == 0:
            raise TransferError("not_simwatch", path=source)
        await migrate_sqlite(db)
    except SchemaTooNewError as exc:
        raise TransferError("source_too_new", path=source, error=exc) from None
    except sqlite3.Error as exc:
        raise TransferError("source_unreadable", path=source, error=exc) from None
    try:
        await migrate_postgres(pool)
    except SchemaTooNewError as exc:
        raise TransferError("target_too_new", target=target, error=exc) from None
    async with pool.acquire() as conn:
        tables = await _plan(db, conn)
        async with conn.transaction():
            counts = await _copy(db, conn, tables, target, progress)
        # Committed. Fresh statistics for the planner rather than whenever autovacuum gets to
        # it; not worth failing the (done) copy for.
        try:
            await conn.execute(f"ANALYZE {', '.join(_quote(table.name) for table in tables)}")
        except asyncpg.PostgresError as exc:
            reason = exc.args[0] if exc.args else type(exc).__name__  # no DETAIL: may quote rows
            logger.warning("ANALYZE after the copy failed (%s): autovacuum will do it", reason)
    return counts
