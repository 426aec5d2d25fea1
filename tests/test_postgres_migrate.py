"""PostgreSQL: the pool and the migration runner."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from storage.base import SchemaTooNewError
from storage.postgres.migrate import LATEST_VERSION, VERSION_TABLE, migrate, schema_version
from storage.postgres.pool import DatabaseUnreachableError, open_pool


async def test_a_fresh_schema_gets_every_migration_once(pg_url: str) -> None:
    pool = await open_pool(pg_url, max_size=4)
    try:
        assert await schema_version(pool) == 0
        assert await migrate(pool) == LATEST_VERSION
        assert await migrate(pool) == LATEST_VERSION  # a restart: nothing left to do
        rows = await pool.fetch(f"SELECT version FROM {VERSION_TABLE} ORDER BY version")
        assert [row["version"] for row in rows] == list(range(1, LATEST_VERSION + 1))
        tables = await pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        assert {"chats", "cards", "renewals", "card_edits"} <= {r["table_name"] for r in tables}
    finally:
        await pool.close()


async def test_two_instances_starting_at_once_migrate_once(pg_url: str) -> None:
    pools = [await open_pool(pg_url, max_size=2) for _ in range(3)]
    try:
        versions = await asyncio.gather(*(migrate(pool) for pool in pools))
        assert versions == [LATEST_VERSION] * 3
        rows = await pools[0].fetch(f"SELECT version FROM {VERSION_TABLE} ORDER BY version")
        assert [row["version"] for row in rows] == list(range(1, LATEST_VERSION + 1))
    finally:
        for pool in pools:
            await pool.close()


async def test_a_newer_schema_is_refused_and_left_alone(pg_pool: asyncpg.Pool) -> None:
    await pg_pool.execute(
        f"INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, 'from the future')",
        LATEST_VERSION + 1,
    )
    with pytest.raises(SchemaTooNewError, match=f"version {LATEST_VERSION + 1}"):
        await migrate(pg_pool)
    assert await schema_version(pg_pool) == LATEST_VERSION + 1


async def test_sessions_are_in_utc(pg_pool: asyncpg.Pool) -> None:
    assert await pg_pool.fetchval("SHOW timezone") == "UTC"


async def test_a_failed_migration_leaves_the_schema_as_it_was(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.postgres import migrate as runner

    real = runner.postgres_migrations()
    broken = [*real[:1], real[1].__class__(real[1].version, real[1].name, "CREATE TABLE x (;")]
    monkeypatch.setattr(runner, "postgres_migrations", lambda: broken + real[2:])
    pool = await open_pool(pg_url, max_size=2)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await runner.migrate(pool)
        assert await schema_version(pool) == 1
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://localhost/db", "must start with postgresql://"),
        ("postgresql://localhost:notaport/db", "not a URL"),
        (
            "postgresql://u:secret@127.0.0.1:1/db",
            "cannot connect to postgresql://u:***@127.0.0.1:1",
        ),
    ],
)
async def test_an_unusable_url_is_one_line_naming_the_setting(url: str, said: str) -> None:
    with pytest.raises(DatabaseUnreachableError) as caught:
        await open_pool(url)
    message = str(caught.value)
    assert message.startswith("DATABASE_URL")
    assert said in message
    assert "secret" not in message
    assert "\n" not in message


async def test_a_wrong_password_or_database_is_one_line(pg_database: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    missing = urlunsplit(urlsplit(pg_database)._replace(path="/simwatch_no_such_database"))
    with pytest.raises(DatabaseUnreachableError, match=r"^DATABASE_URL: .*does not exist"):
        await open_pool(missing)
    nobody = urlunsplit(
        urlsplit(pg_database)._replace(netloc="simwatch_no_such_role:pw@127.0.0.1:5432")
    )
    with pytest.raises(DatabaseUnreachableError, match=r"^DATABASE_URL: .*refused") as caught:
        await open_pool(nobody)
    assert ":pw@" not in str(caught.value)
