"""Fixtures: the real Application wired to a local Bot API emulator and a temporary database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import AnyApplication, build_application
from bot.chatdriver import ChatDriver
from bot.clock import FixedClock
from bot.config import Settings
from bot.emulator import BotApiEmulator
from storage.sqlite import SqliteStorage

TOKEN = "123456:TEST-TOKEN"
# 10:00 in Shanghai on 2026-11-25: "today" for a chat in the default time zone
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)

ALICE = 1001  # a shop owner, private chat
BOB = 1002  # shop staff, member of the group
BOSS = 1003  # the group's administrator
SHOP_GROUP = -100500


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator(TOKEN) as emu:
        yield emu


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    store = await SqliteStorage.open(tmp_path / "simwatch.sqlite3")
    yield store
    await store.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def app(
    emulator: BotApiEmulator, storage: SqliteStorage, clock: FixedClock, tmp_path: Path
) -> AsyncIterator[AnyApplication]:
    settings = Settings(
        bot_token=TOKEN,
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=tmp_path / "simwatch.sqlite3",
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


@pytest.fixture
def alice(app: AnyApplication, emulator: BotApiEmulator) -> ChatDriver:
    user = emulator.user(ALICE, "Alice", language_code="zh-hans")
    return ChatDriver(app, emulator, emulator.private_chat(user), user)


@pytest.fixture
def alice_en(app: AnyApplication, emulator: BotApiEmulator) -> ChatDriver:
    user = emulator.user(ALICE + 100, "Alice", language_code="en")
    return ChatDriver(app, emulator, emulator.private_chat(user), user)


@pytest.fixture
def group(app: AnyApplication, emulator: BotApiEmulator) -> dict[str, ChatDriver]:
    """The shop's group chat: ``boss`` administers it, ``bob`` is staff."""
    boss = emulator.user(BOSS, "Boss", language_code="zh-hans")
    bob = emulator.user(BOB, "Bob", language_code="zh-hans")
    chat = emulator.group_chat(SHOP_GROUP, "门店群", supergroup=True, admins=[BOSS])
    return {
        "boss": ChatDriver(app, emulator, chat, boss),
        "bob": ChatDriver(app, emulator, chat, bob),
    }


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, storage: SqliteStorage) -> AsyncIterator[AnyApplication]:
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
