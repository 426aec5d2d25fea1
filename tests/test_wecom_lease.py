"""WeCom allows one connection per robot: exactly one process holds it, by a lease in the
database; the others stand by and take over when the holder stops or dies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import wecom_person, wecom_process, wecom_settings

from bot.channels.wecom.channel import ChannelStopped, lease_name
from bot.chatdriver import texts
from bot.clock import FixedClock
from bot.serve import Process
from bot.wecom.emulator import WeComEmulator
from storage.base import Storage
from storage.factory import stores_for
from storage.sqlite import SqliteStorage

SECRET = "lease-test-secret"
FAST = {"lease_ttl": timedelta(seconds=1), "renew_seconds": 0.2, "standby_seconds": 0.1}


async def test_a_second_process_stands_by_and_takes_over_when_the_first_stops(
    wecom_emulator: WeComEmulator, storage: Storage, clock: FixedClock, tmp_path: Path
) -> None:
    async with wecom_process(
        wecom_emulator, storage, clock, tmp_path, channel_options={**FAST, "holder": "first"}
    ) as first:
        second_started = asyncio.Event()

        async def second() -> None:
            async with wecom_process(
                wecom_emulator,
                storage,
                clock,
                tmp_path,
                channel_options={**FAST, "holder": "second"},
            ) as standby:
                second_started.set()
                alice = await wecom_person(standby, wecom_emulator, "alice")
                assert "流量卡管家" in texts(await alice.send("/start"))

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.5)  # the second process has asked for the lease a few times
        assert not second_started.is_set(), "two processes held WeCom's one connection"
        assert wecom_emulator.connections == 1
        channels = stores_for(storage).channels
        assert (
            await channels.lease_holder(lease_name(wecom_emulator.bot_id), now=datetime.now(UTC))
            == "first"
        )
        assert first.channel.link() is not None
    # the first stopped and let go: the second connects within its standby interval
    await asyncio.wait_for(waiting, timeout=5)


async def test_a_dead_holders_lease_lapses_and_is_taken_over(
    wecom_emulator: WeComEmulator, storage: Storage, clock: FixedClock, tmp_path: Path
) -> None:
    channels = stores_for(storage).channels
    name = lease_name(wecom_emulator.bot_id)
    # a process that died holding the lease (kill -9: it never let go)
    assert await channels.acquire_lease(
        name, "dead:1", now=datetime.now(UTC), ttl=timedelta(seconds=1)
    )
    started = asyncio.get_running_loop().time()
    async with wecom_process(
        wecom_emulator, storage, clock, tmp_path, channel_options={**FAST, "holder": "alive"}
    ) as process:
        waited = asyncio.get_running_loop().time() - started
        assert waited >= 0.5, "it connected while the dead process's lease still held"
        assert await channels.lease_holder(name, now=datetime.now(UTC)) == "alive"
        alice = await wecom_person(process, wecom_emulator, "alice")
        assert "流量卡管家" in texts(await alice.send("/start"))


async def test_a_takeover_by_another_connection_stops_the_channel_without_a_fight(
    wecom_emulator: WeComEmulator, storage: Storage, clock: FixedClock, tmp_path: Path
) -> None:
    process = Process(
        wecom_settings(wecom_emulator, tmp_path), storage, clock=clock, reminder_tick=False
    )
    with pytest.raises(ChannelStopped) as stopped:
        await asyncio.wait_for(process.run(asyncio.Event(), on_linked=wecom_emulator.take_over), 10)
    assert stopped.value.key == "wecom.taken_over"
    assert wecom_emulator.connections == 1, "it reconnected and fought the takeover"
    assert process.wecom.running is False


async def seeded(path: Path) -> None:
    """A WeCom shop owner with a card due, digests from midnight on."""
    from test_wecom_process import seed

    await seed(path)


async def test_remind_delivers_wecom_itself_when_no_bot_holds_the_connection(
    tmp_path: Path,
) -> None:
    import io

    from bot.reminders.cli import run_remind

    await seeded(tmp_path / "simwatch.sqlite3")
    async with WeComEmulator(secret=SECRET) as emulator:
        emulator.reachable("wang")  # Wang wrote to the robot before (WeCom's rule for pushes)
        out = io.StringIO()
        code = await run_remind(
            wecom_settings(emulator, tmp_path),
            on_date=None,
            dry_run=False,
            out=out,
            trust_clock=True,
        )
        assert code == 0, out.getvalue()
        pushed = [e for e in emulator.events if e.kind == "send" and e.chat == ("single", "wang")]
        assert any("收银台1" in (e.markdown or "") for e in pushed)
        assert emulator.connections == 1
    storage = await SqliteStorage.open(tmp_path / "simwatch.sqlite3")
    try:
        holder = await stores_for(storage).channels.lease_holder(
            lease_name(emulator.bot_id), now=datetime.now(UTC)
        )
        assert holder is None, "remind let go of the connection's lease"
    finally:
        await storage.close()


async def test_remind_leaves_wecom_to_the_running_bot(tmp_path: Path) -> None:
    import io

    from bot.reminders.cli import run_remind

    await seeded(tmp_path / "simwatch.sqlite3")
    storage = await SqliteStorage.open(tmp_path / "simwatch.sqlite3")
    name = lease_name("bot-test")
    assert await stores_for(storage).channels.acquire_lease(
        name, "bot-host:42:abcd", now=datetime.now(UTC), ttl=timedelta(minutes=5)
    )
    await storage.close()
    async with WeComEmulator(secret=SECRET) as emulator:
        out = io.StringIO()
        code = await run_remind(
            wecom_settings(emulator, tmp_path),
            on_date=None,
            dry_run=False,
            out=out,
            trust_clock=True,
        )
        assert code == 0, out.getvalue()
        assert "留给正在运行的机器人" in out.getvalue()
        assert "bot-host:42:abcd" in out.getvalue()
        assert emulator.connections == 0, "it connected while the bot holds WeCom's connection"
