"""Fixtures: the real Application wired to a local Bot API emulator and a temporary database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.app import AnyApplication, build_application
from bot.channels.wecom.driver import WeComChatDriver
from bot.channels.wecom.pace import NoPace
from bot.chatdriver import ChatDriver
from bot.clock import FixedClock
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.serve import Process
from bot.wecom.emulator import WeComEmulator
from storage.base import Storage
from storage.factory import open_storage
from storage.postgres.migrate import VERSION_TABLE
from storage.postgres.migrate import migrate as migrate_postgres
from storage.postgres.pool import DatabaseUnreachableError, open_pool

TOKEN = "123456:TEST-TOKEN"
# 10:00 in Shanghai on 2026-11-25: "today" for a chat in the default time zone
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)

ALICE = 1001  # a shop owner, private chat
BOB = 1002  # shop staff, member of the group
BOSS = 1003  # the group's administrator
SHOP_GROUP = -100500


# PostgreSQL for the tests: a server to use (default: the local one over its Unix socket, as the
# current user), a throw-away database on it for the run, a fresh schema in it for each test.
# Without a server the PostgreSQL cases skip and the run says so in one line at the end; with
# SIMWATCH_REQUIRE_POSTGRES=1 (``.ci/run``) they fail instead.
PG_URL_ENV = "SIMWATCH_TEST_DATABASE_URL"  # a database the tests may fill; none made then
PG_DEFAULT_SERVER = "postgresql:///postgres"
REQUIRE_POSTGRES = os.environ.get("SIMWATCH_REQUIRE_POSTGRES") == "1"
_pg_unavailable: list[str] = []  # why the PostgreSQL cases skipped (at most one reason)
_schemas = itertools.count(1)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    # not urlunsplit: it would drop the empty host of postgresql:///db (the Unix socket)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/{database}{query}"


def _with_setting(url: str, name: str, value: str) -> str:
    """The URL with a session setting (asyncpg passes unknown URL parameters to the server)."""
    return f"{url}&{name}={value}" if "?" in url else f"{url}?{name}={value}"


def _with_search_path(url: str, schema: str) -> str:
    return _with_setting(url, "search_path", schema)


async def _exec(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of a database this run may fill: ``$SIMWATCH_TEST_DATABASE_URL``, or one made
    on the local server for the run and dropped after it."""
    if _pg_unavailable:
        pytest.skip(_pg_unavailable[0])
    given = os.environ.get(PG_URL_ENV)
    server = given or PG_DEFAULT_SERVER
    name = f"simwatch_test_{os.getpid()}"
    try:
        if given:
            asyncio.run(_exec(given, "SELECT 1"))
        else:
            asyncio.run(_exec(server, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = f"no PostgreSQL at {given or 'the local Unix socket'} ({exc})"
        if REQUIRE_POSTGRES:
            pytest.fail(f"SIMWATCH_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        _pg_unavailable.append(reason)
        pytest.skip(reason)
    # Test data need not survive a crash of the server: commits don't wait for the disk.
    if given:
        yield _with_setting(given, "synchronous_commit", "off")
        return
    yield _with_setting(_with_database(server, name), "synchronous_commit", "off")
    asyncio.run(_exec(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextlib.asynccontextmanager
async def _fresh_schema(pg_database: str) -> AsyncIterator[str]:
    schema = f"t{os.getpid()}_{next(_schemas)}"
    await _exec(pg_database, f"CREATE SCHEMA {schema}")
    try:
        yield _with_search_path(pg_database, schema)
    finally:
        await _exec(pg_database, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
async def pg_url(pg_database: str) -> AsyncIterator[str]:
    """A URL whose sessions work in a new, empty schema of their own (dropped after the test):
    ``search_path`` in the URL, so a ``python -m bot`` given it as DATABASE_URL uses it too."""
    async with _fresh_schema(pg_database) as url:
        yield url


@pytest.fixture
async def pg_pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh schema, migrated to the latest version."""
    try:
        pool = await open_pool(pg_url, max_size=4)
    except DatabaseUnreachableError as exc:
        pytest.fail(str(exc), pytrace=False)
    await migrate_postgres(pool)
    yield pool
    await pool.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_unavailable:
        terminalreporter.write_line(
            f"PostgreSQL cases skipped: {_pg_unavailable[0]}; "
            f"set {PG_URL_ENV} or start the server (.ci/run requires them)"
        )


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator(TOKEN) as emu:
        yield emu


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test's ``storage`` is: every test using it runs on both."""
    name: str = request.param
    if name == "postgres":
        request.getfixturevalue("pg_database")  # skips (or fails) here without a server
    return name


async def _migrated_schema(pg_database: str, schema: str) -> str:
    await _exec(pg_database, f"DROP SCHEMA IF EXISTS {schema} CASCADE", f"CREATE SCHEMA {schema}")
    url = _with_search_path(pg_database, schema)
    pool = await open_pool(url, min_size=1, max_size=1)
    try:
        await migrate_postgres(pool)
    finally:
        await pool.close()
    return url


async def _emptied(url: str, schema: str) -> None:
    """Every table of the schema but the version table emptied, identities back at 1: as a
    fresh database, in a fraction of the time creating and migrating one takes (DELETE of a
    few rows: TRUNCATE of every table takes a third of a second)."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables "
            "WHERE schemaname = $1 AND tablename <> $2",
            schema,
            VERSION_TABLE,
        )
        try:
            async with conn.transaction():  # every foreign key cascades: any order will do
                for table in tables:
                    await conn.execute(f"DELETE FROM {table['name']}")
        except asyncpg.ForeignKeyViolationError:
            names = ", ".join(table["name"] for table in tables)
            await conn.execute(f"TRUNCATE {names} CASCADE")
        await conn.execute(
            "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, 1, false) "
            "FROM pg_sequences WHERE schemaname = $1",
            schema,
        )
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_shared(pg_database: str) -> Iterator[tuple[str, str]]:
    """One schema migrated once for the run, emptied before each test that uses it."""
    schema = f"t{os.getpid()}_shared"
    url = asyncio.run(_migrated_schema(pg_database, schema))
    yield url, schema
    asyncio.run(_exec(pg_database, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """``DATABASE_URL`` for the test's backend (None: SQLite): an empty, migrated schema of
    the run's database, which a second pool or a ``python -m bot`` process can open too.
    Tests that need a schema nobody migrated yet take ``pg_url``."""
    if backend == "sqlite":
        return None
    url, schema = request.getfixturevalue("pg_shared")
    asyncio.run(_emptied(url, schema))
    return url


@pytest.fixture
async def storage(database_url: str | None, tmp_path: Path) -> AsyncIterator[Storage]:
    """The test's database, opened as the bot opens it (migrated), closed after the test."""
    store = await open_storage(
        database_url=database_url, database_path=tmp_path / "simwatch.sqlite3"
    )
    yield store
    await store.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def app(
    emulator: BotApiEmulator,
    storage: Storage,
    clock: FixedClock,
    tmp_path: Path,
    database_url: str | None,
) -> AsyncIterator[AnyApplication]:
    settings = Settings(
        bot_token=TOKEN,
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=tmp_path / "simwatch.sqlite3",
        database_url=database_url,
    )
    application = build_application(
        settings,
        token=TOKEN,
        storage=storage,
        clock=clock,
        rate_limit=False,
        reminder_tick=False,  # tests run reminder passes themselves, at the time they choose
    )
    await application.initialize()
    assert application.post_init is not None
    await application.post_init(application)
    await application.start()  # the JobQueue, for conversation time-outs
    emulator.take_events()  # start each test with an empty record
    yield application
    await application.stop()
    await application.shutdown()
    assert application.post_shutdown is not None
    await application.post_shutdown(application)  # as run_polling does: closes robots' client


@pytest.fixture
def alice(request: pytest.FixtureRequest, storage: Storage) -> ChatDriver | WeComChatDriver:
    """A shop owner in a private chat: on Telegram, or (``BOTH_CHANNELS``) on WeCom too
    (``storage`` named here so that both run on both backends)."""
    if getattr(request, "param", "telegram") == "wecom":
        driver: WeComChatDriver = request.getfixturevalue("wecom_alice")
        return driver
    app: AnyApplication = request.getfixturevalue("app")
    telegram: BotApiEmulator = request.getfixturevalue("emulator")
    user = telegram.user(ALICE, "Alice", language_code="zh-hans")
    return ChatDriver(app, telegram, telegram.private_chat(user), user)


@pytest.fixture
def alice_en(app: AnyApplication, emulator: BotApiEmulator) -> ChatDriver:
    user = emulator.user(ALICE + 100, "Alice", language_code="en")
    return ChatDriver(app, emulator, emulator.private_chat(user), user)


@pytest.fixture
def group(request: pytest.FixtureRequest, storage: Storage) -> dict[str, Any]:
    """The shop's group chat: ``boss`` administers it, ``bob`` is staff (on WeCom too, in a
    ``BOTH_CHANNELS`` module: there the boss is who spoke to the robot first)."""
    if getattr(request, "param", "telegram") == "wecom":
        drivers: dict[str, WeComChatDriver] = request.getfixturevalue("wecom_group")
        return drivers
    app: AnyApplication = request.getfixturevalue("app")
    emulator: BotApiEmulator = request.getfixturevalue("emulator")
    boss = emulator.user(BOSS, "Boss", language_code="zh-hans")
    bob = emulator.user(BOB, "Bob", language_code="zh-hans")
    chat = emulator.group_chat(SHOP_GROUP, "门店群", supergroup=True, admins=[BOSS])
    return {
        "boss": ChatDriver(app, emulator, chat, boss),
        "bob": ChatDriver(app, emulator, chat, bob),
    }


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, storage: Storage) -> AsyncIterator[AnyApplication]:
    """The application started as ``python -m bot`` starts it (without polling or the reminder
    tick), stopped on the way out: stopping writes the conversations out, as at a restart."""
    app = build_application(
        settings,
        token=TOKEN,
        storage=storage,
        clock=FixedClock(NOW),
        rate_limit=False,
        reminder_tick=False,
    )
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        await app.shutdown()
        assert app.post_shutdown is not None
        await app.post_shutdown(app)


# --- WeCom: the same conversations on the second channel -----------------------------------------
# A test module with ``BOTH_CHANNELS = True`` runs each test that uses ``alice`` twice: as a
# Telegram user and as a WeCom user (``bot.channels.wecom.driver``), unless the test is marked
# ``telegram_only`` (it reads what only Telegram has: message edits, ForceReply, the Bot API).
WECOM_ALICE = "alice"  # WeCom userids are text


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not getattr(metafunc.module, "BOTH_CHANNELS", False):
        return
    if metafunc.definition.get_closest_marker("telegram_only") is not None:
        return
    people = [name for name in ("alice", "group") if name in metafunc.fixturenames]
    if len(people) == 1:  # a test with both is one channel's (which chat would be which?)
        metafunc.parametrize(people[0], ["telegram", "wecom"], indirect=True)


@pytest.fixture
async def wecom_emulator() -> AsyncIterator[WeComEmulator]:
    async with WeComEmulator() as emulator:
        yield emulator


def wecom_settings(emulator: WeComEmulator, tmp_path: Path, **more: object) -> Settings:
    """Settings with only WeCom set, pointed at ``emulator``."""
    return Settings(
        bot_token=None,
        wecom_bot_id=emulator.bot_id,
        wecom_bot_secret=emulator.secret,
        wecom_ws_url=emulator.url,
        database_path=tmp_path / "simwatch.sqlite3",
        **more,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def wecom_process(
    emulator: WeComEmulator,
    storage: Storage,
    clock: FixedClock,
    tmp_path: Path,
    **options: Any,
) -> AsyncIterator[Process]:
    """The bot as ``python -m bot`` runs it with only WeCom set, connected to ``emulator``
    (without the reminder tick: tests run passes themselves); stopped on the way out."""
    # WeCom's 30 a minute per chat is the emulator's to enforce and the bridge's to keep
    # (bot.channels.wecom.pace): both off here, as the Telegram tests run without limits;
    # tests of the limits turn them on.
    emulator.rate_limit(10**6, 10**6)
    options.setdefault("wecom_pace", NoPace())
    process = Process(
        wecom_settings(emulator, tmp_path),
        storage,
        clock=clock,
        rate_limit=False,
        reminder_tick=False,
        **options,
    )
    await process.start()
    serving = asyncio.create_task(process.channel.run())
    try:
        await process.channel.wait_linked(5)
        emulator.take_events()
        yield process
    finally:
        await process.stop()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


@pytest.fixture
async def wecom_bot(
    wecom_emulator: WeComEmulator, storage: Storage, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[Process]:
    """The bot on WeCom only, connected to the emulator (see ``wecom_process``)."""
    async with wecom_process(wecom_emulator, storage, clock, tmp_path) as process:
        yield process


@pytest.fixture
async def wecom_alice(wecom_bot: Process, wecom_emulator: WeComEmulator) -> WeComChatDriver:
    return await wecom_person(wecom_bot, wecom_emulator, WECOM_ALICE)


@pytest.fixture
async def wecom_group(wecom_bot: Process, wecom_emulator: WeComEmulator) -> dict[str, Any]:
    """The shop's WeCom group: the boss spoke to the robot first, so administers it."""
    boss = await wecom_person(wecom_bot, wecom_emulator, "boss", chatid="shop-group")
    await wecom_bot.updates.store.claim_group_admin(boss.chat_id, boss.user_id or 0)
    return {"boss": boss, "bob": boss.as_user("bob")}


async def wecom_person(
    process: Process, emulator: WeComEmulator, userid: str, chatid: str | None = None
) -> WeComChatDriver:
    store = process.updates.store
    return await WeComChatDriver.open(emulator, process.updates, store, userid, chatid)
