"""Schema versioning: numbered SQL files applied in order, tracked in ``PRAGMA user_version``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import aiosqlite

from storage.base import SchemaTooNewError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(folder: str = "") -> list[Migration]:
    """The migrations shipped in ``storage/migrations`` (or its sub-folder ``folder``: PostgreSQL's
    are in ``postgres``), by version; versions must be 1, 2, 3…"""
    found = []
    root = resources.files("storage.migrations")
    for entry in (root.joinpath(folder) if folder else root).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration files are not numbered 1..n: {[m.name for m in found]}")
    return found


LATEST_VERSION = len(load_migrations())


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring the schema up to date; return the version. Each step is one transaction."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    current = int(row[0]) if row else 0
    migrations = load_migrations()
    if current > len(migrations):
        raise SchemaTooNewError(
            f"the database is at schema version {current}, but this SimWatch only knows up to "
            f"{len(migrations)}: upgrade SimWatch (or restore a backup taken before the upgrade)",
            found=current,
            known=len(migrations),
        )
    for migration in migrations[current:]:
        # executescript runs outside aiosqlite's implicit transactions, so the file and its
        # version bump are wrapped in one explicit transaction: all of it or none.
        try:
            await db.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\n"
                f"PRAGMA user_version = {migration.version};\nCOMMIT;"
            )
        except Exception:
            if db.in_transaction:
                await db.rollback()
            raise
    return len(migrations)
