"""Reading the database directly in tests, on either backend: SQLite's SQL (``?`` marks), and
rows as SQLite keeps them (dates and instants as ISO text, flags as 0/1, a time as HH:MM), so
that one assertion holds for both."""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime, time
from typing import Any

from storage.base import Storage
from storage.postgres.storage import PostgresStorage
from storage.sqlite import SqliteStorage

Row = tuple[Any, ...]


def _as_sqlite(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return value


async def fetch(storage: Storage, sql: str, *args: object) -> list[Row]:
    if isinstance(storage, SqliteStorage):
        return [tuple(row) for row in await storage.fetchall(sql, args)]
    assert isinstance(storage, PostgresStorage), type(storage)
    marks = itertools.count(1)
    sql = re.sub(r"\?", lambda _: f"${next(marks)}", sql)
    return [tuple(_as_sqlite(v) for v in row) for row in await storage.pool.fetch(sql, *args)]


async def fetch_one(storage: Storage, sql: str, *args: object) -> Row | None:
    rows = await fetch(storage, sql, *args)
    return rows[0] if rows else None


async def snapshot(storage: Storage, *tables: str) -> dict[str, list[Row]]:
    """Every row of ``tables``, to compare before and after."""
    return {table: await fetch(storage, f"SELECT * FROM {table} ORDER BY 1") for table in tables}
