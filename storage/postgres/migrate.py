"""PostgreSQL schema versions: ``storage/migrations/postgres/NNNN_*.sql`` applied in order.

Each step is one transaction that first takes a transaction-scoped advisory lock (per database
and schema), then reads the version: two instances starting at once apply each file once, the
second waiting for the first and then finding nothing left to do. DDL is transactional in
PostgreSQL, so a step that fails leaves the schema as it was.
"""

from __future__ import annotations

import asyncpg

from storage.base import SchemaTooNewError
from storage.migrate import Migration, load_migrations
from storage.postgres.pool import Connection

# pg_advisory_xact_lock(key1, key2): SimWatch's migrations, in this schema
LOCK_CLASS = 0x51_3A_7C_01
VERSION_TABLE = "simwatch_schema_version"


def postgres_migrations() -> list[Migration]:
    return load_migrations("postgres")


LATEST_VERSION = len(postgres_migrations())


async def _locked_version(conn: Connection) -> int:
    """Inside a transaction: take the migration lock, make sure the version table exists, and
    return the version the schema is at."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", LOCK_CLASS)
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
        "version integer PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now())"
    )
    current = await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}")
    return int(current)


async def schema_version(pool: asyncpg.Pool) -> int:
    """The version the database is at (0: never migrated)."""
    async with pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", VERSION_TABLE)
        if not exists:
            return 0
        return int(await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}"))


async def migrate(pool: asyncpg.Pool) -> int:
    """Bring the schema up to date; return the version. ``SchemaTooNewError`` if the database
    was written by a newer SimWatch."""
    migrations = postgres_migrations()
    async with pool.acquire() as conn:
        while True:
            async with conn.transaction():
                current = await _locked_version(conn)
                if current > len(migrations):
                    raise SchemaTooNewError(
                        f"the database is at schema version {current}, but this SimWatch only "
                        f"knows up to {len(migrations)}: upgrade SimWatch (or restore a backup "
                        "taken before the upgrade)"
                    )
                if current == len(migrations):
                    return current
                step = migrations[current]
                await conn.execute(step.sql)
                await conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, $2)",
                    step.version,
                    step.name,
                )
