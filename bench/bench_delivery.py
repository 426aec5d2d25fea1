"""Reminder delivery throughput against the local Bot API emulator, without and with flood limits.

Targets: at least 500 messages/s when nothing limits the bot; with Telegram-like limits enforced
(30 messages/s overall, 20/min per group, about 1/s per private chat; 429 with ``retry_after``
beyond them) at least 95 % of the ceiling those limits allow, and no 429 received.

The emulator runs in its own process (this script with ``--serve``), as Telegram would: on a
2-core machine the bot's process and "Telegram" each get a core. The bot side is this process:
a database whose chats each have a digest due (``--private`` chats with ``--cards`` due cards
each, ``--groups`` groups with ``--group-cards`` each; a message holds up to 20 cards, each with
4 buttons), a reminder pass to fill the outbox (not timed), then one ``OutboxSender.drain()``
through ``TelegramMessenger``, python-telegram-bot's ``Bot`` and the bot's HTTP transport
(``handlers.transport.AiohttpRequest``) to the emulator, timed.

Scenarios (``--scenario``, default both):

* ``unlimited``: no flood limits in the emulator; the sender without pacing and the bot without
  ``AIORateLimiter``: how fast the machinery itself goes (``--unlimited-chats`` private chats).
* ``breakdown`` (not in ``both``): where an unlimited drain's time goes: the same drain with a
  messenger that sends nothing (the outbox's database work and rendering alone), and
  ``TelegramMessenger.send`` alone in 8 concurrent loops (python-telegram-bot and HTTP alone),
  over the bot's transport (aiohttp) and over PTB's default ``HTTPXRequest`` for comparison.
* ``limited``: the emulator enforcing the limits; the bot exactly as production wires it:
  ``build_application`` (with its ``AIORateLimiter``) and the runner's ``OutboxSender`` with the
  default ``SenderPolicy``. ``--rate R`` replaces the policy's ``messages_per_second`` (to see
  what a different pacing would give); ``--concurrency`` likewise.

    .venv/bin/python bench/bench_delivery.py                          # both, ~1 min
    .venv/bin/python bench/bench_delivery.py --scenario limited --rate 25
    .venv/bin/python bench/bench_delivery.py --scenario limited --groups 20 --group-cards 600
    .venv/bin/python bench/bench_delivery.py --scenario limited --private 200 --cards 100

The ceiling of a mix is computed from the emulator's own token buckets (30 at once then 30/s
overall; 20 at once then 1 per 3 s per group; 3 at once then 1/s per private chat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import simdata
from simdata import TODAY
from telegram import Bot
from telegram.request import BaseRequest, HTTPXRequest

from bot.app import build_application
from bot.chats import Channel
from bot.clock import FixedClock
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.reminders.compose import ReminderComposer
from bot.reminders.digest import make_digest, render_digest
from bot.reminders.models import DigestChat, DueCard, Keyboard
from bot.reminders.sender import Delivery, DrainStats, OutboxSender, SenderPolicy, Sent
from handlers.delivery import TelegramMessenger
from handlers.reminder_schedule import RUNNER_KEY
from handlers.transport import AiohttpRequest
from storage.reminders import SqliteReminderStore
from storage.sqlite import SqliteStorage

TOKEN = "123456:BENCH-DELIVERY"
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CARDS_PER_MESSAGE = 20  # bot.reminders.digest.MAX_CARDS
FIRST_PRIVATE = 200_000
FIRST_GROUP = -1_000_000_000_100


def private_ids(count: int) -> list[int]:
    return [FIRST_PRIVATE + n for n in range(count)]


def group_ids(count: int) -> list[int]:
    return [FIRST_GROUP - n for n in range(count)]


# --- the emulator process ---------------------------------------------------------------------


async def serve(private: int, groups: int, limits: bool) -> None:
    """``--serve``: run the emulator, print its port, answer ``stats`` lines on stdin."""
    emulator = BotApiEmulator(TOKEN, max_calls=1_000_000)
    emulator.state.max_events = 1_000_000
    await emulator.start()
    for chat_id in private_ids(private):
        emulator.private_chat(emulator.user(chat_id, f"U{chat_id}"))
    for chat_id in group_ids(groups):
        emulator.group_chat(chat_id, f"门店群{chat_id}", supergroup=True)
    if limits:
        emulator.enable_rate_limits()  # Telegram's: 30/s, 20/min per group, 1/s per private
    print(f"PORT {emulator.port}", flush=True)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "stats":
                print(json.dumps(emulator_stats(emulator)), flush=True)
    finally:
        await emulator.stop()


def emulator_stats(emulator: BotApiEmulator) -> dict[str, Any]:
    sends = emulator.calls_to("sendMessage")
    ok = [call for call in sends if call.ok]
    times = sorted(call.time for call in ok)
    per_chat = Counter(int(call.params["chat_id"]) for call in ok)
    worst_group_minute = 0
    by_group: dict[int, list[float]] = {}
    for call in ok:
        chat_id = int(call.params["chat_id"])
        if chat_id < 0:
            by_group.setdefault(chat_id, []).append(call.time)
    for stamps in by_group.values():
        stamps.sort()
        start = 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] >= 60:
                start += 1
            worst_group_minute = max(worst_group_minute, end - start + 1)
    return {
        "sent": len(ok),
        "refused": len(sends) - len(ok),
        "rate_limited": emulator.rate_limited_count,
        "first": times[0] if times else None,
        "last": times[-1] if times else None,
        "chats": len(per_chat),
        "repeats": sum(
            n - 1
            for n in Counter((call.params["chat_id"], call.params["text"]) for call in ok).values()
        ),
        "worst_group_minute": worst_group_minute,
        "cpu": cpu_seconds(),
    }


def cpu_seconds() -> float:
    """CPU time of this process so far (every thread), user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class EmulatorProcess(simdata.ServedProcess):
    def __init__(self, private: int, groups: int, limits: bool) -> None:
        command = [sys.executable, __file__, "--serve", "--private", str(private)]
        command += ["--groups", str(groups)] + (["--limits"] if limits else [])
        super().__init__(command)


# --- the bot side ---------------------------------------------------------------------------


def messages_for(cards: int) -> int:
    """How many messages a digest of ``cards`` cards takes (their text always fits)."""
    return -(-cards // CARDS_PER_MESSAGE)


def fill_database(path: Path, chats: list[tuple[int, int]]) -> int:
    """Chats (id, due cards) whose cards all expire in 3 days; returns the card count."""
    rows: list[tuple[object, ...]] = []
    for chat_id, cards in chats:
        for _ in range(cards):
            n = len(rows) + 1
            expiry = (TODAY + timedelta(days=3)).isoformat()
            rows.append(
                (
                    chat_id,
                    f"8986{n:015d}{n % 10}",
                    expiry,
                    "cmcc",
                    f"收银台{n % 7}",
                    simdata.CREATED,
                )
            )
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO chats (chat_id, is_group, created_at, address) VALUES (?1, ?2, ?3, ?1)",
            [(chat_id, int(chat_id < 0), simdata.CREATED) for chat_id, _ in chats],
        )
        db.executemany(
            "INSERT INTO cards (chat_id, iccid, expiry, carrier, label, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
    finally:
        db.close()
    return len(rows)


def ceiling_seconds(chats: list[tuple[int, int]], limited: bool) -> float:
    """The shortest time the emulator's buckets allow for these messages (0 if unlimited)."""
    if not limited:
        return 0.0
    total = sum(messages_for(cards) for _, cards in chats)
    floor = max(0.0, (total - 30) / 30)
    for chat_id, cards in chats:
        parts = messages_for(cards)
        burst, every = (20, 3.0) if chat_id < 0 else (3, 1.0)  # group / private buckets
        floor = max(floor, (parts - burst) * every)
    return floor


async def drain_once(
    folder: Path,
    emulator: EmulatorProcess,
    chats: list[tuple[int, int]],
    *,
    production: bool,
    policy: SenderPolicy | None,
) -> tuple[float, float, DrainStats, int]:
    path = folder / f"delivery-{time.monotonic_ns()}.sqlite3"
    storage = await SqliteStorage.open(path)
    cards = await asyncio.to_thread(fill_database, path, chats)
    clock = FixedClock(NOW)
    store = SqliteReminderStore(storage)
    composed = await ReminderComposer(store, clock, default_language="zh_CN").compose_for_date(
        TODAY
    )
    assert composed.digests == len(chats), composed
    settings = Settings(
        bot_token=TOKEN,
        telegram_base_url=f"{emulator.base}/bot",
        telegram_base_file_url=f"{emulator.base}/file/bot",
        database_path=path,
    )
    app = build_application(
        settings,
        token=TOKEN,
        storage=storage,
        clock=clock,
        rate_limit=production,
        reminder_tick=False,
    )
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)  # install_reminders: the runner and its sender, as in production
    sender: OutboxSender = app.bot_data[RUNNER_KEY].sender
    if policy is not None:
        sender = OutboxSender(
            store,
            {Channel.TELEGRAM: TelegramMessenger(app.bot)},
            clock,
            policy,
            default_language="zh_CN",
        )
    try:
        started, cpu = time.perf_counter(), cpu_seconds()
        stats = await sender.drain()
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    finally:
        await app.shutdown()
        await storage.close()
    return seconds, cpu, stats, cards


def report(
    name: str,
    chats: list[tuple[int, int]],
    seconds: float,
    cpu: float,
    stats: DrainStats,
    seen: dict[str, Any],
    cards: int,
    limited: bool,
) -> float:
    rate = stats.sent / seconds if seconds else 0.0
    print(
        f"{name}: {len(chats):,} chats, {cards:,} due cards, "
        f"{sum(messages_for(cards) for _, cards in chats):,} messages expected"
    )
    print(
        f"  sender: sent {stats.sent:,}, failed {stats.failed}, left waiting {stats.waiting}, "
        f"in {seconds:.2f} s = {rate:,.1f} messages/s"
    )
    per = 1000 / max(stats.sent, 1)
    print(
        f"  CPU while draining: bot process {cpu:.1f} s ({cpu * per:.1f} ms a message), "
        f"emulator process {seen['cpu']:.1f} s ({seen['cpu'] * per:.1f} ms a message)"
    )
    span = (seen["last"] - seen["first"]) if seen["first"] is not None else 0.0
    print(
        f"  emulator: accepted {seen['sent']:,} in {seen['chats']:,} chats "
        f"(first to last {span:.2f} s), refused {seen['refused']}, "
        f"429 answered {seen['rate_limited']}, repeated {seen['repeats']}, "
        f"most to one group in any 60 s: {seen['worst_group_minute']}"
    )
    if limited:
        floor = ceiling_seconds(chats, limited)
        ceiling = stats.sent / floor if floor else float("inf")
        share = rate / ceiling * 100
        print(
            f"  ceiling for this mix {ceiling:.1f} messages/s (all sent in >= {floor:.1f} s); "
            f"reached {share:.1f} % (target >= 95 %, zero 429): "
            f"{'met' if share >= 95 and seen['rate_limited'] == 0 else 'MISSED'}"
        )
        return share
    print(f"  target >= 500 messages/s: {'met' if rate >= 500 else 'MISSED'}")
    return rate


async def scenario(options: argparse.Namespace, limited: bool, folder: Path) -> None:
    if limited:
        chats = [(chat_id, options.cards) for chat_id in private_ids(options.private)]
        chats += [(chat_id, options.group_cards) for chat_id in group_ids(options.groups)]
        emulator = EmulatorProcess(options.private, options.groups, limits=True)
        policy = None
        if options.rate is not None or options.concurrency is not None:
            policy = SenderPolicy()
            if options.rate is not None:
                policy = replace(policy, messages_per_second=options.rate)
            if options.concurrency is not None:
                policy = replace(policy, concurrency=options.concurrency)
        production = True
        name = "limited (production wiring: AIORateLimiter + " + (
            "default SenderPolicy)" if policy is None else f"{policy.messages_per_second}/s)"
        )
    else:
        chats = [(chat_id, options.cards) for chat_id in private_ids(options.unlimited_chats)]
        emulator = EmulatorProcess(options.unlimited_chats, 0, limits=False)
        policy = SenderPolicy(
            messages_per_second=0,
            group_messages_per_minute=10**6,
            private_messages_per_second=0,
            concurrency=options.concurrency or SenderPolicy().concurrency,
        )
        production = False
        name = f"unlimited (no pacing, concurrency {policy.concurrency})"
    try:
        cpu_before = emulator.stats()["cpu"]
        seconds, cpu, stats, cards = await drain_once(
            folder, emulator, chats, production=production, policy=policy
        )
        seen = emulator.stats()
        seen["cpu"] -= cpu_before
    finally:
        emulator.close()
    report(name, chats, seconds, cpu, stats, seen, cards, limited)


class NullMessenger:
    """Accepts every message at once: the sender's own work, without Telegram."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, chat_id: int, text: str, buttons: Keyboard) -> Delivery:
        self.sent += 1
        return Sent(self.sent)


async def breakdown(options: argparse.Namespace, folder: Path) -> None:
    chats = [(chat_id, options.cards) for chat_id in private_ids(options.unlimited_chats)]
    path = folder / "breakdown.sqlite3"
    storage = await SqliteStorage.open(path)
    await asyncio.to_thread(fill_database, path, chats)
    clock = FixedClock(NOW)
    store = SqliteReminderStore(storage)
    await ReminderComposer(store, clock, default_language="zh_CN").compose_for_date(TODAY)
    policy = SenderPolicy(
        messages_per_second=0, group_messages_per_minute=10**6, private_messages_per_second=0
    )
    sender = OutboxSender(
        store, {Channel.TELEGRAM: NullMessenger()}, clock, policy, default_language="zh_CN"
    )
    started, cpu = time.perf_counter(), cpu_seconds()
    stats = await sender.drain()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    await storage.close()
    print(f"breakdown, {len(chats):,} one-message digests of {options.cards} cards:")
    print(
        f"  the sender with a messenger that sends nothing: {stats.sent / seconds:,.0f} "
        f"messages/s, {cpu / stats.sent * 1000:.1f} ms CPU a message (database and rendering)"
    )
    for name, request in (
        ("the bot's AiohttpRequest", AiohttpRequest(SenderPolicy().concurrency)),
        ("PTB's default HTTPXRequest", HTTPXRequest(SenderPolicy().concurrency)),
    ):
        rate, cpu = await send_alone(chats, options.cards, request)
        print(
            f"  TelegramMessenger.send alone (PTB + HTTP to the emulator) over {name}: "
            f"{rate:,.0f} messages/s, {cpu * 1000:.2f} ms CPU a message"
        )


async def send_alone(
    chats: list[tuple[int, int]], cards: int, request: BaseRequest
) -> tuple[float, float]:
    """Messages a second and CPU seconds a message of sends alone, 8 at a time."""
    emulator = EmulatorProcess(len(chats), 0, limits=False)
    try:
        async with Bot(TOKEN, base_url=f"{emulator.base}/bot", request=request) as bot:
            messenger = TelegramMessenger(bot)
            chat, due = (
                DigestChat(0, False, None),
                [
                    DueCard(n, f"8986{n:015d}0", "收银台", TODAY + timedelta(3), 3, None)
                    for n in range(cards)
                ],
            )
            (part,) = render_digest(make_digest(chat, TODAY, due, [], "zh_CN"))
            todo = [chat_id for chat_id, _ in chats]

            async def loop() -> None:
                while todo:
                    outcome = await messenger.send(todo.pop(), part.text, part.buttons)
                    assert isinstance(outcome, Sent), outcome

            started, cpu = time.perf_counter(), cpu_seconds()
            await asyncio.gather(*(loop() for _ in range(SenderPolicy().concurrency)))
            seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    finally:
        emulator.close()
    return len(chats) / seconds, cpu / len(chats)


async def main(options: argparse.Namespace) -> None:
    print(f"delivery benchmark: {simdata.machine()}")
    with tempfile.TemporaryDirectory(prefix="simwatch-delivery-") as folder:
        if options.scenario in ("both", "unlimited"):
            await scenario(options, False, Path(folder))
        if options.scenario in ("both", "limited"):
            await scenario(options, True, Path(folder))
        if options.scenario == "breakdown":
            await breakdown(options, Path(folder))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--scenario", choices=("both", "unlimited", "limited", "breakdown"), default="both"
    )
    parser.add_argument("--unlimited-chats", type=int, default=5000, help="default 5000")
    parser.add_argument("--private", type=int, default=1200, help="limited: private chats")
    parser.add_argument("--cards", type=int, default=3, help="due cards a private chat (3)")
    parser.add_argument("--groups", type=int, default=20, help="limited: groups (20)")
    parser.add_argument("--group-cards", type=int, default=50, help="due cards a group (50)")
    parser.add_argument("--rate", type=float, default=None, help="SenderPolicy rate override")
    parser.add_argument("--concurrency", type=int, default=None, help="SenderPolicy override")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limits", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        asyncio.run(serve(options.private, options.groups, options.limits))
    else:
        asyncio.run(main(options))
