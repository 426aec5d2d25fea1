"""Push-robot delivery: 1,000 robots each due 25 messages, so that every robot's own limit binds.

Goal: the drain within 95 % of the limits' ceiling, with zero rate-limit refusals; and the bot's
CPU per message.

The robot emulator (``bot.robots.emulator``, enforcing each service's per-robot limits: WeCom and
DingTalk 20 a minute, Feishu 5 a second and 100 a minute; DingTalk blocking a robot 10 minutes
after a refusal) runs in its own process (this script with ``--serve``), as the services would.
The bot side is this process: a database with ``--robots`` robots (40 % WeCom, 40 % DingTalk,
20 % Feishu), each shared by ``--chats-per-robot`` chats (25) that each have one due card and
have blocked the bot on Telegram (so only the robots get their digests: the Telegram side is
measured by ``bench_delivery.py``); a reminder pass fills the outbox (not timed); then one
``OutboxSender.drain()`` with the default ``SenderPolicy`` through the real ``PushGateway``
(push store, the robots' budgets in the database, ``RobotClient`` over HTTP), timed, in real
time.

The ceiling: a robot may take 20 messages a minute (WeCom, DingTalk) or 100 (Feishu), so its
25 messages need at least 24 × 3 s = 72 s (Feishu 24 × 0.6 s): the drain cannot end sooner
than 72 s after it starts. (The services count in a sliding minute, so 20 sent at once and 5
a minute later would be 60 s; the sender never bursts: DingTalk blocks a robot for 10 minutes
once it goes over, so its limit is not to be probed.)

    .venv/bin/python bench/bench_robots.py                       # 1,000 robots × 25, ~90 s
    .venv/bin/python bench/bench_robots.py --robots 100 --chats-per-robot 10
    .venv/bin/python bench/bench_robots.py --database-url postgresql:///simwatch_bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import simdata

from bot.chats import Channel
from bot.clock import SystemClock
from bot.models import CardDraft
from bot.reminders.compose import ReminderComposer
from bot.reminders.models import Keyboard
from bot.reminders.outcomes import Delivery, Sent
from bot.reminders.sender import OutboxSender, SenderPolicy
from bot.robots.client import RobotClient
from bot.robots.delivery import PushGateway
from bot.robots.emulator import RobotEmulator
from bot.robots.models import LIMITS, Robot, Service
from storage.factory import open_stores

PER_MINUTE = {Service.WECOM: 20, Service.DINGTALK: 20, Service.FEISHU: 100}


def robots(count: int) -> list[Robot]:
    mix = [Service.WECOM, Service.DINGTALK, Service.WECOM, Service.DINGTALK, Service.FEISHU]
    return [Robot(mix[n % len(mix)], f"bench{n:06d}") for n in range(count)]


async def serve(count: int) -> None:
    """``--serve``: run the emulator, print its port, answer ``stats`` lines on stdin."""
    emulator = RobotEmulator()
    await emulator.start()
    for robot in robots(count):
        emulator.register(robot.service, robot.token)
    print(f"PORT {emulator.port}", flush=True)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "stats":
                received = [emulator.received(r.service, r.token) for r in robots(count)]
                spans = [m[-1].at - m[0].at for m in received if len(m) > 1]
                stats = {
                    "received": sum(len(m) for m in received),
                    "refusals": emulator.total_refusals,
                    "longest_span": max(spans, default=0.0),
                }
                print(json.dumps(stats), flush=True)
    finally:
        await emulator.stop()


class EmulatorProcess(simdata.ServedProcess):
    def __init__(self, count: int) -> None:
        super().__init__([sys.executable, __file__, "--serve", "--robots", str(count)])


class NoTelegram:
    """The chats blocked the bot: nothing is ever sent to Telegram in this benchmark."""

    async def send(self, chat_id: int, text: str, buttons: Keyboard) -> Delivery:
        raise AssertionError("a chat that blocked the bot got a Telegram message")
        return Sent(0)  # pragma: no cover


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fill(stores: Any, count: int, per_robot: int) -> int:
    """Chats, one due card each, their robots, and the chats blocked on Telegram; then the
    pass (its digests into the outbox). The number of robot messages due."""
    now = datetime.now(UTC)
    storage, push = stores.storage, stores.push
    today = now.astimezone(ZoneInfo("Asia/Shanghai")).date()
    expiry = today + timedelta(days=3)

    chat_id = 0
    for robot in robots(count):
        for _ in range(per_robot):
            chat_id += 1
            await storage.ensure_chat(chat_id, is_group=False)
            draft = CardDraft(iccid=f"8986001234{chat_id:010d}", expiry=expiry)
            await storage.add_card(chat_id, draft, now)
            await push.add_target(
                chat_id, robot, secret=None, source_name=f"店{chat_id}", added_by=chat_id,
                at=now, is_group=False,
            )  # fmt: skip
            await stores.reminders.deactivate_chat(chat_id, "blocked (benchmark)", at=now)
    composer = ReminderComposer(stores.reminders, SystemClock(), default_language="zh_CN")
    await composer.compose_for_date(today)
    return await stores.reminders.count_pending()


async def main(options: argparse.Namespace) -> None:
    print(f"robot delivery benchmark: {simdata.machine()}")
    count, per_robot = options.robots, options.chats_per_robot
    with tempfile.TemporaryDirectory(prefix="simwatch-robots-") as folder:
        stores = await open_stores(
            database_url=options.database_url, database_path=Path(folder) / "bench.sqlite3"
        )
        started = time.monotonic()
        due = await fill(stores, count, per_robot)
        print(f"  {count} robots × {per_robot} chats: {due} messages due "
              f"(set up in {time.monotonic() - started:.0f} s, {stores.backend})")  # fmt: skip
        emulator = EmulatorProcess(count)
        client = RobotClient({service: emulator.base for service in Service})
        await client.start()
        try:
            gateway = PushGateway(stores.push, client, SystemClock())
            sender = OutboxSender(
                stores.reminders,
                {Channel.TELEGRAM: NoTelegram()},
                SystemClock(),
                SenderPolicy(),
                default_language="zh_CN",
                robots=gateway,
            )
            cpu, wall = cpu_seconds(), time.monotonic()
            stats = await sender.drain()
            wall, cpu = time.monotonic() - wall, cpu_seconds() - cpu
            seen = emulator.stats()
        finally:
            await client.close()
            emulator.close()
            await stores.close()
    ceiling = max((per_robot - 1) * 60.0 / PER_MINUTE[robot.service] for robot in robots(count))
    spacing = max((per_robot - 1) * LIMITS[robot.service].interval for robot in robots(count))
    print(f"  drained in {wall:.1f} s: {stats.robots_sent} sent, {stats.waiting} waiting, "
          f"{len(stats.robot_errors)} errors; the emulator received {seen['received']}, "
          f"refused {seen['refusals']} for rate")  # fmt: skip
    print(f"  ceiling {ceiling:.1f} s (the limits), the sender's spacing alone {spacing:.1f} s: "
          f"{100 * ceiling / wall:.1f} % of the ceiling")  # fmt: skip
    print(f"  bot CPU {cpu:.1f} s: {1000 * cpu / max(stats.robots_sent, 1):.2f} ms a message; "
          f"{stats.robots_sent / wall:.0f} messages/s")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--robots", type=int, default=1000, help="default 1000")
    parser.add_argument("--chats-per-robot", type=int, default=25, help="default 25")
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        asyncio.run(serve(options.robots))
    else:
        asyncio.run(main(options))
