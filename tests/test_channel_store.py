"""The channel store on both backends: chats and people of other channels get ids of their own,
never a Telegram one, one per address even when asked for at once by two connections; group
administrators, menus and leases hold across connections as the channel layer needs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import NOW
from db_rows import fetch

from bot.chats import FOREIGN_ID_BASE, Channel, ChatAddress, ChatKind
from bot.clock import FixedClock
from bot.models import CardDraft
from bot.reminders.compose import ReminderComposer
from storage.base import Storage
from storage.channels import MAX_MENU_OPTIONS, UNPROMPTED, ChannelStore, Menu
from storage.factory import open_storage, stores_for
from storage.migrate import load_migrations
from storage.postgres.migrate import VERSION_TABLE, postgres_migrations
from storage.postgres.storage import PostgresStorage
from storage.sqlite import SqliteStorage

WECOM_USER = ChatAddress(Channel.WECOM, ChatKind.PRIVATE, "zhangsan")
WECOM_GROUP = ChatAddress(Channel.WECOM, ChatKind.GROUP, "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA")
TELEGRAM_GROUP = ChatAddress(Channel.TELEGRAM, ChatKind.GROUP, "-1001234567890")
MINUTE = timedelta(minutes=1)


@pytest.fixture
def channels(storage: Storage) -> ChannelStore:
    return stores_for(storage).channels


@pytest.fixture
async def other(database_url: str | None, tmp_path: Path) -> AsyncIterator[ChannelStore]:
    """A second connection (pool) to the same database: another process, as far as the
    database can tell."""
    second = await open_storage(
        database_url=database_url, database_path=tmp_path / "simwatch.sqlite3"
    )
    yield stores_for(second).channels
    await second.close()


async def test_a_wecom_chat_gets_an_id_of_its_own_and_keeps_it(
    storage: Storage, channels: ChannelStore
) -> None:
    user = await channels.chat_id_for(WECOM_USER, at=NOW)
    group = await channels.chat_id_for(WECOM_GROUP, at=NOW)
    assert min(user, group) >= FOREIGN_ID_BASE
    assert user != group
    assert await channels.chat_id_for(WECOM_USER, at=NOW + MINUTE) == user
    assert await channels.chat_address(user) == WECOM_USER
    assert await channels.chat_address(group) == WECOM_GROUP
    assert await channels.chat_address(FOREIGN_ID_BASE + 99) is None
    # the chats row the handlers then read: its channel and kind, not its id's sign
    chat = await storage.get_chat(group)
    assert chat is not None
    assert (chat.channel, chat.is_group) == (Channel.WECOM, True)
    # ensure_chat (every update asks for its chat) leaves its identity alone
    again = await storage.ensure_chat(group, is_group=True, language="zh_CN")
    assert (again.channel, again.default_language) == (Channel.WECOM, "zh_CN")
    assert await channels.chat_address(group) == WECOM_GROUP


async def test_a_telegram_chat_keeps_its_telegram_id(
    storage: Storage, channels: ChannelStore
) -> None:
    chat_id = await channels.chat_id_for(TELEGRAM_GROUP, at=NOW)
    assert chat_id == -1001234567890
    chat = await storage.get_chat(chat_id)
    assert chat is not None
    assert (chat.channel, chat.is_group) == (Channel.TELEGRAM, True)
    assert await channels.chat_address(chat_id) == TELEGRAM_GROUP
    # a chat made by ensure_chat (the Telegram handlers) has its address too
    await storage.ensure_chat(1001, is_group=False)
    private = ChatAddress(Channel.TELEGRAM, ChatKind.PRIVATE, "1001")
    assert await channels.chat_address(1001) == private
    assert await channels.chat_id_for(private, at=NOW) == 1001
    for bad in ("zhangsan", str(FOREIGN_ID_BASE), "007"):
        with pytest.raises(ValueError, match="not a Telegram chat id"):
            await channels.chat_id_for(ChatAddress(Channel.TELEGRAM, ChatKind.PRIVATE, bad), at=NOW)


async def test_the_same_text_on_two_channels_or_kinds_is_two_chats(
    storage: Storage, channels: ChannelStore
) -> None:
    await storage.ensure_chat(1001, is_group=False)
    lookalike = ChatAddress(Channel.WECOM, ChatKind.PRIVATE, "1001")
    wecom = await channels.chat_id_for(lookalike, at=NOW)
    group = await channels.chat_id_for(ChatAddress(Channel.WECOM, ChatKind.GROUP, "1001"), at=NOW)
    assert len({1001, wecom, group}) == 3
    assert await channels.chat_address(1001) == ChatAddress(
        Channel.TELEGRAM, ChatKind.PRIVATE, "1001"
    )
    rows = await fetch(storage, "SELECT chat_id, channel, is_group, address FROM chats")
    assert sorted(rows) == sorted(
        [(1001, "telegram", 0, "1001"), (wecom, "wecom", 0, "1001"), (group, "wecom", 1, "1001")]
    )


async def test_many_at_once_from_two_connections_get_one_id_per_address(
    storage: Storage, channels: ChannelStore, other: ChannelStore
) -> None:
    addresses = [ChatAddress(Channel.WECOM, ChatKind.PRIVATE, f"user{n}") for n in range(10)]
    asks = [(store, address) for address in addresses for store in (channels, other) * 3]
    ids = await asyncio.gather(*(store.chat_id_for(a, at=NOW) for store, a in asks))
    by_address: dict[ChatAddress, set[int]] = {}
    for (_, address), chat_id in zip(asks, ids, strict=True):
        by_address.setdefault(address, set()).add(chat_id)
    assert all(len(found) == 1 for found in by_address.values())
    assigned = [found.pop() for found in by_address.values()]
    assert len(set(assigned)) == len(addresses)
    assert min(assigned) >= FOREIGN_ID_BASE
    (count,) = (await fetch(storage, "SELECT count(*) FROM chats"))[0]
    assert count == len(addresses)


async def test_people_of_other_channels_get_ids_and_names(
    channels: ChannelStore, other: ChannelStore
) -> None:
    zhang = await channels.user_id_for(Channel.WECOM, "zhangsan", name="张三", at=NOW)
    assert zhang >= FOREIGN_ID_BASE
    assert await channels.user_address(zhang) == (Channel.WECOM, "zhangsan", "张三")
    # no name given: the one kept stays; a new name replaces it
    assert await channels.user_id_for(Channel.WECOM, "zhangsan", name=None, at=NOW) == zhang
    assert await channels.user_address(zhang) == (Channel.WECOM, "zhangsan", "张三")
    assert await other.user_id_for(Channel.WECOM, "zhangsan", name="张三丰", at=NOW) == zhang
    assert await channels.user_address(zhang) == (Channel.WECOM, "zhangsan", "张三丰")
    # a Telegram user's id is their Telegram id, and nothing is allocated for it
    assert await channels.user_id_for(Channel.TELEGRAM, "1001", name="Alice", at=NOW) == 1001
    assert await channels.user_address(1001) is None
    # many at once, from two connections: one id each
    names = [f"u{n}" for n in range(8)]
    asks = [(store, name) for name in names for store in (channels, other, channels)]
    ids = await asyncio.gather(
        *(store.user_id_for(Channel.WECOM, name, name=name.upper(), at=NOW) for store, name in asks)
    )
    by_name: dict[str, set[int]] = {}
    for (_, name), user_id in zip(asks, ids, strict=True):
        by_name.setdefault(name, set()).add(user_id)
    assert all(len(found) == 1 for found in by_name.values())
    assert len({found.pop() for found in by_name.values()} | {zhang}) == len(names) + 1


async def test_the_first_claim_of_a_group_makes_its_admin(
    channels: ChannelStore, other: ChannelStore
) -> None:
    group = await channels.chat_id_for(WECOM_GROUP, at=NOW)
    assert await channels.group_admin(group) is None
    racers = enumerate((channels, other) * 5)
    claims = await asyncio.gather(
        *(store.claim_group_admin(group, FOREIGN_ID_BASE + n) for n, store in racers)
    )
    admin = await channels.group_admin(group)
    assert admin is not None
    assert set(claims) == {admin}
    assert await channels.claim_group_admin(group, FOREIGN_ID_BASE + 99) == admin
    await channels.set_group_admin(group, FOREIGN_ID_BASE + 99)
    assert await other.group_admin(group) == FOREIGN_ID_BASE + 99
    with pytest.raises(LookupError):
        await channels.claim_group_admin(FOREIGN_ID_BASE + 12345, 1)
    with pytest.raises(LookupError):
        await channels.set_group_admin(FOREIGN_ID_BASE + 12345, 1)


async def test_an_answer_refers_to_the_newer_of_ones_own_and_the_unprompted_menu(
    channels: ChannelStore, other: ChannelStore
) -> None:
    group = await channels.chat_id_for(WECOM_GROUP, at=NOW)
    zhang, li = FOREIGN_ID_BASE + 1, FOREIGN_ID_BASE + 2
    assert await channels.menu(group, zhang) is None
    digest = [("续费 8986…1234", "renew:7"), ("静音", "mute:7")]
    await channels.save_menu(group, UNPROMPTED, 501, digest, at=NOW)
    assert await other.menu(group, zhang) == Menu(501, tuple(digest), NOW)
    cards = [(f"卡 {n}", f"card:{n}") for n in range(1, 4)]
    await channels.save_menu(group, zhang, 502, cards, at=NOW + MINUTE)
    assert await other.menu(group, zhang) == Menu(502, tuple(cards), NOW + MINUTE)
    assert await other.menu(group, li) == Menu(501, tuple(digest), NOW)  # not Zhang's
    # a later digest is what "1" means now, for Zhang too
    await channels.save_menu(group, UNPROMPTED, 503, digest[:1], at=NOW + 2 * MINUTE)
    assert await channels.menu(group, zhang) == Menu(503, tuple(digest[:1]), NOW + 2 * MINUTE)
    # the same instant: one's own wins
    await channels.save_menu(group, zhang, 504, cards[:1], at=NOW + 2 * MINUTE)
    assert (await channels.menu(group, zhang)) == Menu(504, tuple(cards[:1]), NOW + 2 * MINUTE)
    too_many = [(str(n), str(n)) for n in range(MAX_MENU_OPTIONS + 1)]
    with pytest.raises(ValueError, match="at most 100 options"):
        await channels.save_menu(group, zhang, 505, too_many, at=NOW + 3 * MINUTE)
    assert (await channels.menu(group, zhang)) == Menu(504, tuple(cards[:1]), NOW + 2 * MINUTE)
    await channels.save_menu(group, zhang, 506, too_many[:-1], at=NOW + 3 * MINUTE)
    saved = await channels.menu(group, zhang)
    assert saved is not None
    assert len(saved.options) == MAX_MENU_OPTIONS


async def test_a_lease_has_one_holder_until_it_expires_or_is_let_go(
    channels: ChannelStore, other: ChannelStore
) -> None:
    ttl = timedelta(seconds=30)
    assert await channels.lease_holder("wecom:bot1", now=NOW) is None
    assert await channels.acquire_lease("wecom:bot1", "host-a", now=NOW, ttl=ttl)
    assert not await other.acquire_lease("wecom:bot1", "host-b", now=NOW, ttl=ttl)
    assert await other.lease_holder("wecom:bot1", now=NOW) == "host-a"
    # the holder renews it; another's release leaves it alone
    later = NOW + timedelta(seconds=20)
    assert await channels.acquire_lease("wecom:bot1", "host-a", now=later, ttl=ttl)
    await other.release_lease("wecom:bot1", "host-b")
    assert not await other.acquire_lease("wecom:bot1", "host-b", now=NOW + ttl, ttl=ttl)
    # expired (the holder died): the next comer takes it
    expired = later + ttl
    assert await other.lease_holder("wecom:bot1", now=expired) is None
    assert await other.acquire_lease("wecom:bot1", "host-b", now=expired, ttl=ttl)
    assert not await channels.acquire_lease("wecom:bot1", "host-a", now=expired, ttl=ttl)
    await other.release_lease("wecom:bot1", "host-b")
    assert await channels.lease_holder("wecom:bot1", now=expired) is None
    # another lease is another lease
    assert await channels.acquire_lease("wecom:bot2", "host-a", now=NOW, ttl=ttl)


@pytest.mark.parametrize("held", [False, True], ids=["free", "expired"])
async def test_of_many_racing_for_a_lease_exactly_one_wins(
    channels: ChannelStore, other: ChannelStore, held: bool
) -> None:
    ttl = timedelta(seconds=30)
    now = NOW
    if held:
        assert await channels.acquire_lease("wecom:bot1", "dead", now=NOW, ttl=ttl)
        now = NOW + ttl
    racers = [(store, f"host-{n}") for n, store in enumerate((channels, other) * 8)]
    won = await asyncio.gather(
        *(store.acquire_lease("wecom:bot1", holder, now=now, ttl=ttl) for store, holder in racers)
    )
    assert won.count(True) == 1
    winner = racers[won.index(True)][1]
    assert await other.lease_holder("wecom:bot1", now=now) == winner


@pytest.fixture
def old_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A database made by SimWatch before migration 0009, with a Telegram private chat and a
    group: a SQLite file, or a PostgreSQL URL."""
    if backend == "sqlite":
        path = tmp_path / "old.sqlite3"
        with sqlite3.connect(path) as db:
            for migration in load_migrations()[:8]:
                db.executescript(migration.sql)
            db.execute("PRAGMA user_version = 8")
            db.executemany("INSERT INTO chats (chat_id, is_group, created_at) VALUES (?, ?, ?)",
                           [(chat_id, int(group), NOW.isoformat()) for chat_id, group in
                            OLD_CHATS])  # fmt: skip
        db.close()
        return path
    url: str = request.getfixturevalue("pg_url")
    asyncio.run(_postgres_at_version_8(url))
    return url


OLD_CHATS = [(1001, False), (-1001234567890, True)]


async def _postgres_at_version_8(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            f"CREATE TABLE {VERSION_TABLE} (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in postgres_migrations()[:8]:
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {VERSION_TABLE} (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        await conn.executemany(
            "INSERT INTO chats (chat_id, is_group, created_at) VALUES ($1, $2, $3)",
            [(chat_id, group, NOW) for chat_id, group in OLD_CHATS],
        )
    finally:
        await conn.close()


async def test_chats_from_before_0009_get_their_telegram_identity(
    old_database: Path | str, tmp_path: Path
) -> None:
    url = old_database if isinstance(old_database, str) else None
    path = old_database if isinstance(old_database, Path) else tmp_path / "unused.sqlite3"
    storage = await open_storage(database_url=url, database_path=path)
    try:
        channels = stores_for(storage).channels
        assert await channels.chat_address(1001) == ChatAddress(
            Channel.TELEGRAM, ChatKind.PRIVATE, "1001"
        )
        assert await channels.chat_address(-1001234567890) == TELEGRAM_GROUP
        assert await channels.chat_id_for(TELEGRAM_GROUP, at=NOW) == -1001234567890
        # a WeCom chat whose address reads like the Telegram one is another chat
        wecom = ChatAddress(Channel.WECOM, ChatKind.GROUP, "-1001234567890")
        wecom_id = await channels.chat_id_for(wecom, at=NOW)
        assert wecom_id >= FOREIGN_ID_BASE
        assert await channels.chat_address(wecom_id) == wecom
        assert await channels.chat_address(-1001234567890) == TELEGRAM_GROUP
        group = await storage.get_chat(-1001234567890)
        assert group is not None
        assert (group.channel, group.is_group) == (Channel.TELEGRAM, True)
        # the schema, not the code, keeps one chat per address
        with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
            await _insert_chat(storage, FOREIGN_ID_BASE + 7, "wecom", True, "-1001234567890")
        # and a chat without an address is refused (SQLite's column has a default it refuses)
        with pytest.raises((sqlite3.IntegrityError, asyncpg.NotNullViolationError)):
            await _insert_chat(storage, 1002, "telegram", False, None)
    finally:
        await storage.close()


async def _insert_chat(
    storage: Storage, chat_id: int, channel: str, group: bool, address: str | None
) -> None:
    columns = "chat_id, channel, is_group, created_at" + (", address" if address else "")
    values = [chat_id, channel, group, NOW] + ([address] if address else [])
    if isinstance(storage, SqliteStorage):
        marks = ", ".join("?" for _ in values)
        values[2], values[3] = int(group), NOW.isoformat()
        await storage.execute(f"INSERT INTO chats ({columns}) VALUES ({marks})", values)
        return
    assert isinstance(storage, PostgresStorage)
    marks = ", ".join(f"${n}" for n in range(1, len(values) + 1))
    await storage.pool.execute(f"INSERT INTO chats ({columns}) VALUES ({marks})", *values)


async def test_a_group_that_becomes_a_supergroup_takes_its_new_address(
    storage: Storage, channels: ChannelStore
) -> None:
    await storage.ensure_chat(-500, is_group=True)
    await stores_for(storage).reminders.migrate_chat(-500, -1001234567890)
    assert await channels.chat_address(-1001234567890) == TELEGRAM_GROUP
    assert await channels.chat_address(-500) is None


async def test_the_outbox_reads_each_chats_channel_and_kind_from_its_row(
    storage: Storage, channels: ChannelStore
) -> None:
    """A WeCom group's id is positive: pending(groups=) goes by the chat's kind, channels= by
    its channel, and each message carries both for the sender."""
    shop = await channels.chat_id_for(WECOM_GROUP, at=NOW)
    await storage.ensure_chat(1001, is_group=False)
    for n, chat_id in enumerate((shop, 1001)):
        draft = CardDraft(iccid=f"8986001234567890123{n}", expiry=NOW.date() + timedelta(days=3))
        await storage.add_card(chat_id, draft, NOW)
    reminders = stores_for(storage).reminders
    await ReminderComposer(reminders, FixedClock(NOW), default_language="zh_CN").compose_due()

    async def pending(**only: Any) -> list[tuple[int, Channel, bool]]:
        found = await reminders.pending(now=NOW, after_id=0, limit=10, **only)
        return [(m.chat_id, m.channel, m.is_group) for m in found]

    assert await pending(groups=True) == [(shop, Channel.WECOM, True)]
    assert await pending(groups=False) == [(1001, Channel.TELEGRAM, False)]
    assert await pending(channels=[Channel.TELEGRAM]) == [(1001, Channel.TELEGRAM, False)]
    assert await pending(channels={Channel.WECOM}) == [(shop, Channel.WECOM, True)]
    assert await pending(channels=()) == []
    assert len(await pending()) == 2
