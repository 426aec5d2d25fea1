"""The push store on both backends: a chat's targets (numbered by id, scoped to their chat,
at most ``MAX_TARGETS_PER_CHAT``), a robot added again, removal taking its outbox rows, and the
robot's rate budget shared by two processes claiming at once."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.robots.models import MAX_TARGETS_PER_CHAT, Robot, Service
from storage.base import Storage
from storage.factory import open_storage, stores_for
from storage.postgres.storage import PostgresStorage
from storage.push import PushStore
from storage.sqlite import SqliteStorage
from tests.db_rows import fetch, fetch_one

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
SHOP = -100500
ALICE = 1001
BOSS = 1003
WECOM = Robot(Service.WECOM, "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa")
DINGTALK = Robot(
    Service.DINGTALK, "b2f7c1d0e9a84c3b8f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
)
FEISHU = Robot(Service.FEISHU, "8c0b2a3e-4f5d-6e7f-8091-a2b3c4d5e6f7")


def push(storage: Storage) -> PushStore:
    return stores_for(storage).push


async def add(store: PushStore, chat_id: int, robot: Robot, **extra: object) -> int:
    values: dict[str, object] = {
        "secret": None,
        "source_name": "门店群",
        "added_by": ALICE,
        "at": NOW,
        "is_group": chat_id < 0,
    }
    values.update(extra)
    target = await store.add_target(chat_id, robot, **values)  # type: ignore[arg-type]
    assert target is not None
    return target.id


async def insert_outbox(storage: Storage, chat_id: int, target_id: int | None) -> None:
    """A pending digest row for the destination, as the outbox side writes one."""
    if isinstance(storage, SqliteStorage):
        await storage.execute(
            "INSERT INTO outbox (chat_id, target_id, digest_date, created_at) VALUES (?, ?, ?, ?)",
            (chat_id, target_id, "2026-11-25", NOW.isoformat()),
        )
        return
    assert isinstance(storage, PostgresStorage)
    await storage.pool.execute(
        "INSERT INTO outbox (chat_id, target_id, digest_date, created_at) VALUES ($1, $2, $3, $4)",
        chat_id,
        target_id,
        date(2026, 11, 25),
        NOW,
    )


async def pause(storage: Storage, target_id: int, *, at: datetime) -> None:
    if isinstance(storage, SqliteStorage):
        await storage.execute(
            "UPDATE push_targets SET paused_since = ?, pause_reason = 'invalid_key' WHERE id = ?",
            (at.isoformat(), target_id),
        )
        return
    assert isinstance(storage, PostgresStorage)
    await storage.pool.execute(
        "UPDATE push_targets SET paused_since = $1, pause_reason = 'invalid_key' WHERE id = $2",
        at,
        target_id,
    )


async def test_a_target_is_kept_with_its_chat_created_on_first_sight(storage: Storage) -> None:
    store = push(storage)
    target = await store.add_target(
        SHOP, WECOM, secret=None, source_name="门店群", added_by=ALICE, at=NOW, is_group=True
    )
    assert target is not None
    assert (target.chat_id, target.robot, target.source_name) == (SHOP, WECOM, "门店群")
    assert (target.added_at, target.added_by, target.paused, target.last_at) == (
        NOW,
        ALICE,
        False,
        None,
    )
    chat = await storage.get_chat(SHOP)
    assert chat is not None
    assert chat.is_group
    assert chat.timezone == "Asia/Shanghai"
    assert await store.target(target.id) == target
    assert await store.target(target.id + 1) is None
    # the token is a credential: the target's repr does not show it, nor the secret
    secret_target = await store.add_target(
        SHOP, DINGTALK, secret="SECabc123", source_name=None, added_by=None, at=NOW, is_group=True
    )
    assert secret_target is not None
    assert secret_target.secret == "SECabc123"
    assert DINGTALK.token not in repr(secret_target)
    assert "SECabc123" not in repr(secret_target)


async def test_targets_are_numbered_by_id_and_scoped_to_their_chat(storage: Storage) -> None:
    store = push(storage)
    await storage.ensure_chat(ALICE, is_group=False)
    first = await add(store, SHOP, FEISHU)
    second = await add(store, SHOP, WECOM)
    other = await add(store, ALICE, FEISHU)  # one robot shared by two chats
    assert [t.id for t in await store.targets(SHOP)] == [first, second]
    assert [t.robot for t in await store.targets(SHOP)] == [FEISHU, WECOM]
    assert [t.id for t in await store.targets(ALICE)] == [other]
    assert await store.targets(42) == []
    # another chat's id removes nothing
    assert not await store.remove_target(ALICE, first)
    assert len(await store.targets(SHOP)) == 2
    assert await store.remove_target(SHOP, first)
    assert not await store.remove_target(SHOP, first)
    assert [t.id for t in await store.targets(SHOP)] == [second]
    assert [t.id for t in await store.targets(ALICE)] == [other]


async def test_the_same_robot_again_updates_it_and_ends_a_pause(storage: Storage) -> None:
    store = push(storage)
    target_id = await add(store, SHOP, DINGTALK, secret="SECold", source_name="旧名字")
    later = NOW + timedelta(days=3)
    await pause(storage, target_id, at=later)  # the sender paused it: the key was refused
    paused = await store.target(target_id)
    assert paused is not None
    assert paused.paused
    again = await store.add_target(
        SHOP,
        DINGTALK,
        secret="SECnew",
        source_name="门店群",
        added_by=BOSS,
        at=later,
        is_group=True,
    )
    assert again is not None
    assert again.id == target_id
    assert (again.secret, again.source_name, again.paused, again.pause_reason) == (
        "SECnew",
        "门店群",
        False,
        None,
    )
    assert again.added_at == NOW  # it is the same target, added then
    assert len(await store.targets(SHOP)) == 1


async def test_a_full_chat_takes_no_more_but_its_robots_may_be_added_again(
    storage: Storage,
) -> None:
    store = push(storage)
    robots = [Robot(Service.WECOM, f"key-{n:04d}-abcdefgh") for n in range(MAX_TARGETS_PER_CHAT)]
    for robot in robots:
        await add(store, SHOP, robot)
    extra = Robot(Service.FEISHU, "one-too-many-hook")
    full = await store.add_target(
        SHOP, extra, secret=None, source_name=None, added_by=ALICE, at=NOW, is_group=True
    )
    assert full is None
    assert len(await store.targets(SHOP)) == MAX_TARGETS_PER_CHAT
    # an update of a robot it has is no new target
    again = await store.add_target(
        SHOP, robots[3], secret="s", source_name=None, added_by=ALICE, at=NOW, is_group=True
    )
    assert again is not None
    assert again.secret == "s"
    # another chat is not full
    await add(store, ALICE, extra)


async def test_concurrent_adds_to_one_chat_never_pass_the_maximum(
    storage: Storage, database_url: str | None, tmp_path: Path
) -> None:
    other = await open_storage(
        database_url=database_url, database_path=tmp_path / "simwatch.sqlite3"
    )
    try:
        stores = [push(storage), push(other)]

        async def one(n: int) -> bool:
            target = await stores[n % 2].add_target(
                SHOP,
                Robot(Service.FEISHU, f"hook-{n:03d}-0000"),
                secret=None,
                source_name=None,
                added_by=ALICE,
                at=NOW,
                is_group=True,
            )
            return target is not None

        added = await asyncio.gather(*(one(n) for n in range(MAX_TARGETS_PER_CHAT + 6)))
    finally:
        await other.close()
    assert sum(added) == MAX_TARGETS_PER_CHAT
    assert len(await push(storage).targets(SHOP)) == MAX_TARGETS_PER_CHAT


async def test_removing_a_target_takes_its_outbox_rows_not_the_chats(storage: Storage) -> None:
    store = push(storage)
    kept = await add(store, SHOP, WECOM)
    gone = await add(store, SHOP, FEISHU)
    await insert_outbox(storage, SHOP, None)  # the chat's own digest
    await insert_outbox(storage, SHOP, kept)
    await insert_outbox(storage, SHOP, gone)
    assert await store.remove_target(SHOP, gone)
    rows = await fetch(storage, "SELECT target_id FROM outbox ORDER BY id")
    assert rows == [(None,), (kept,)]


async def test_the_last_result_is_recorded(storage: Storage) -> None:
    store = push(storage)
    target_id = await add(store, SHOP, WECOM)
    at = NOW + timedelta(hours=1, microseconds=250)
    await store.record_result(target_id, "ok", at=at)
    target = await store.target(target_id)
    assert target is not None
    assert (target.last_at, target.last_result) == (at, "ok")
    await store.record_result(target_id, "rate_limited", at=at + timedelta(days=1))
    target = await store.target(target_id)
    assert target is not None
    assert (target.last_at, target.last_result) == (at + timedelta(days=1), "rate_limited")


async def test_slots_are_spaced_by_the_interval_and_never_in_the_past(storage: Storage) -> None:
    store = push(storage)
    first = await store.claim_slot(WECOM, now=NOW, interval=3.05)
    second = await store.claim_slot(WECOM, now=NOW, interval=3.05)
    third = await store.claim_slot(WECOM, now=NOW + timedelta(seconds=1), interval=3.05)
    assert first == NOW  # a robot never sent to may send at once
    assert second == NOW + timedelta(seconds=3.05)
    assert third == NOW + timedelta(seconds=6.1)
    # another robot has its own budget
    assert await store.claim_slot(FEISHU, now=NOW, interval=0.61) == NOW
    assert await store.claim_slot(FEISHU, now=NOW, interval=0.61) == NOW + timedelta(seconds=0.61)
    # after a quiet while the slot is now again, not a backlog of old slots
    later = NOW + timedelta(minutes=5)
    assert await store.claim_slot(WECOM, now=later, interval=3.05) == later
    row = await fetch_one(
        storage, "SELECT count(*) FROM robot_slots WHERE service = ?", Service.WECOM.value
    )
    assert row == (1,)
    # a "now" between milliseconds: the slot is never before it
    odd = later + timedelta(minutes=5, microseconds=1234)
    slot = await store.claim_slot(WECOM, now=odd, interval=3.05)
    assert odd <= slot < odd + timedelta(milliseconds=1)


async def test_two_processes_claiming_at_once_never_share_a_slot(
    storage: Storage, database_url: str | None, tmp_path: Path
) -> None:
    """The bot and ``remind`` (two connections to one database) claim one robot's slots side by
    side: every slot is different, and no two are closer than the interval."""
    other = await open_storage(
        database_url=database_url, database_path=tmp_path / "simwatch.sqlite3"
    )
    interval = 0.61
    try:
        stores = [push(storage), push(other)]
        claims = 60
        slots = await asyncio.gather(
            *(stores[n % 2].claim_slot(FEISHU, now=NOW, interval=interval) for n in range(claims))
        )
    finally:
        await other.close()
    ordered = sorted(slots)
    assert len(set(ordered)) == claims
    assert ordered[0] == NOW
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) >= timedelta(seconds=interval)
    assert ordered[-1] == NOW + timedelta(seconds=interval * (claims - 1))


async def test_a_paused_target_is_resumed_only_within_its_chat(storage: Storage) -> None:
    store = push(storage)
    target_id = await add(store, SHOP, FEISHU)
    await pause(storage, target_id, at=NOW)
    assert not await store.resume_target(ALICE, target_id)
    target = await store.target(target_id)
    assert target is not None
    assert target.paused
    assert await store.resume_target(SHOP, target_id)
    target = await store.target(target_id)
    assert target is not None
    assert (target.paused, target.pause_reason) == (False, None)
