"""Load: 200 simulated users chatting with the real bot at once for 60 s; errors and latency.

Target: zero errors; latency percentiles reported (no target given).

The bot is the production program, ``python -m bot`` in its own process: long polling,
``AIORateLimiter``, the reminder tick, its own SQLite database (filled beforehand with 11 to 60
cards per chat). This process is Telegram and the users: the local Bot API emulator with
Telegram's flood limits on (``--no-limits`` turns them off), and one task per user that sends a
command (or presses a button on its last ``/cards`` list), waits for every reply it causes, then
thinks for ``--think`` seconds (uniform) before the next. Latency runs from the moment the
update is queued for ``getUpdates`` to the bot's first reply arriving at the emulator.

An error is: a reply that does not come within 30 s, any Bot API call the emulator refuses
(a 400 like "message is not modified", a 429), the bot logging at ERROR level, or the bot not
exiting cleanly on SIGINT at the end.

    .venv/bin/python bench/bench_load.py                       # 200 users, 60 s, think 5-10 s
    .venv/bin/python bench/bench_load.py --think 0,0           # no think time: the ceiling
    .venv/bin/python bench/bench_load.py --users 50 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import simdata
from stdnum import luhn

from bot.emulator import BotApiEmulator
from bot.emulator.queues import ChatQueues
from storage.sqlite import SqliteStorage

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH-LOAD"
REPLY_TIMEOUT = 30.0
TODAY = date.today()


def iccid(n: int) -> str:
    body = f"8986003{n:012d}"
    return body + luhn.calc_check_digit(body)


@dataclass
class User:
    index: int
    user_id: int
    chat_id: int
    cards_message: int | None = None  # the last /cards list, for page buttons
    page: int = 0
    added: int = 0


@dataclass
class Action:
    name: str
    replies: int  # events the bot's answer consists of
    update: Callable[[BotApiEmulator, User], Any]
    ready: Callable[[User], bool] = lambda user: True


def _text(text: str | Callable[[User], str]) -> Callable[[BotApiEmulator, User], Any]:
    def send(emulator: BotApiEmulator, user: User) -> Any:
        value = text(user) if callable(text) else text
        return emulator.message_update(user.chat_id, user.user_id, value)

    return send


def _page(emulator: BotApiEmulator, user: User) -> Any:
    assert user.cards_message is not None
    user.page = 1 - user.page  # alternate, so the edit always changes the message
    return emulator.callback_update(
        user.chat_id, user.user_id, user.cards_message, f"pg:a:{user.page}"
    )


def _addcard(user: User) -> str:
    user.added += 1
    return f"/addcard {iccid(user.index * 100_000 + user.added)} 2027-03-31 移动 新店{user.added}"


# (weight, action): what people do most is look at their cards.
ACTIONS: list[tuple[int, Action]] = [
    (20, Action("/cards", 1, _text("/cards"))),
    (15, Action("page button", 2, _page, lambda user: user.cards_message is not None)),
    (10, Action("/expiring", 1, _text("/expiring"))),
    (10, Action("/find", 1, _text("/find 收银台"))),
    (4, Action("/start", 1, _text("/start"))),
    (4, Action("/help", 1, _text("/help"))),
    (6, Action("/cost", 1, _text("/cost"))),
    (4, Action("/stats", 2, _text("/stats"))),  # text and a chart
    (3, Action("/calendar", 1, _text("/calendar"))),
    (4, Action("/settings", 1, _text("/settings"))),
    (8, Action("/addcard", 1, _text(_addcard))),
    (6, Action("/renew", 1, _text("/renew"))),  # always followed by /cancel
    (3, Action("/export", 1, _text("/export"))),
]
CANCEL = Action("/cancel", 1, _text("/cancel"))


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    timeouts: Counter[str] = field(default_factory=Counter)
    replies: int = 0


async def act(
    emulator: BotApiEmulator, queues: ChatQueues, user: User, action: Action, out: Results
) -> None:
    sent = time.time()
    action.update(emulator, user)
    try:
        events = await queues.take(user.chat_id, action.replies, timeout=REPLY_TIMEOUT)
    except TimeoutError:  # the chat's late replies are dropped, not misread as the next ones
        out.timeouts[action.name] += 1
        return
    out.replies += len(events)
    out.latencies[action.name].append(min(event.time for event in events) - sent)
    if action.name == "/cards":
        user.cards_message, user.page = events[0].message_id, 0


async def simulate(
    emulator: BotApiEmulator,
    queues: ChatQueues,
    user: User,
    deadline: float,
    think: tuple[float, float],
    rng: random.Random,
    out: Results,
) -> None:
    await asyncio.sleep(rng.uniform(0, max(think[1], 1.0)))  # users do not start in step
    weights = [weight for weight, _ in ACTIONS]
    while time.monotonic() < deadline:
        (action,) = rng.choices([action for _, action in ACTIONS], weights)
        if not action.ready(user):
            action = ACTIONS[0][1]
        await act(emulator, queues, user, action, out)
        if action.name == "/renew":
            await act(emulator, queues, user, CANCEL, out)
        await asyncio.sleep(rng.uniform(*think))


def fill_database(path: Path, users: list[User], rng: random.Random) -> int:
    rows: list[tuple[object, ...]] = []
    for user in users:
        for _ in range(rng.randint(11, 60)):
            n = len(rows) + 1
            expiry = (TODAY + timedelta(days=rng.randint(-60, 300))).isoformat()
            rows.append((user.chat_id, iccid(n), expiry, "cmcc", f"收银台{n % 9}", simdata.CREATED))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO chats (chat_id, is_group, created_at, address) VALUES (?1, ?2, ?3, ?1)",
            [(user.chat_id, int(user.chat_id < 0), simdata.CREATED) for user in users],
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


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    if not ms:
        return "-"

    def at(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    return (
        f"p50 {statistics.median(ms):6.0f}  p90 {at(0.90):6.0f}  p95 {at(0.95):6.0f}  "
        f"p99 {at(0.99):6.0f}  max {ms[-1]:6.0f} ms"
    )


async def main(options: argparse.Namespace) -> int:
    rng = random.Random(7)
    think = tuple(float(x) for x in options.think.split(","))
    assert len(think) == 2
    groups = options.users // 10
    users = [
        User(n, 700_000 + n, -(1_000_000_000_200 + n) if n < groups else 700_000 + n)
        for n in range(options.users)
    ]
    with tempfile.TemporaryDirectory(prefix="simwatch-load-") as folder:
        path = Path(folder) / "load.sqlite3"
        storage = await SqliteStorage.open(path)
        await storage.close()
        cards = fill_database(path, users, rng)
        async with BotApiEmulator(TOKEN, max_calls=1_000_000) as emulator:
            emulator.state.max_events = 1_000_000
            for user in users:
                person = emulator.user(user.user_id, f"U{user.index}", language_code="zh-hans")
                if user.chat_id < 0:
                    emulator.group_chat(user.chat_id, f"门店群{user.index}", admins=[user.user_id])
                else:
                    emulator.private_chat(person)
            if not options.no_limits:
                emulator.enable_rate_limits()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "BOT_TOKEN": TOKEN,
                "TELEGRAM_BASE_URL": emulator.base_url,
                "TELEGRAM_BASE_FILE_URL": emulator.base_file_url,
                "DATABASE_PATH": str(path),
                "LOG_LEVEL": "WARNING",
            }
            bot = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=folder,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            log = asyncio.create_task(bot.stdout.read()) if bot.stdout else None
            while not emulator.calls_to("getUpdates"):  # noqa: ASYNC110 - a poll of a list
                await asyncio.sleep(0.05)
            print(f"load benchmark: {simdata.machine()}")
            print(
                f"{len(users)} users ({len(users) - groups} private chats, {groups} groups; "
                f"{cards:,} cards) for {options.seconds:.0f} s, think time {think[0]:g}-"
                f"{think[1]:g} s, against `python -m bot` (long polling, AIORateLimiter); "
                f"emulator flood limits {'off' if options.no_limits else 'on'}"
            )
            calls_before = len(emulator.calls)
            cpu_before = process_cpu(bot.pid)
            out = Results()
            started = time.monotonic()
            deadline = started + options.seconds
            async with ChatQueues(emulator) as queues:
                await asyncio.gather(
                    *(simulate(emulator, queues, user, deadline, think, rng, out) for user in users)
                )
            elapsed = time.monotonic() - started
            cpu = process_cpu(bot.pid) - cpu_before
            bot.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(bot.wait(), timeout=30)
            output = (await log).decode() if log else ""
            calls = emulator.calls[calls_before:]
    refused = Counter(
        f"{call.method} {call.status}: {(call.response or {}).get('description', '')}"
        for call in calls
        if call.response is not None and not call.ok
    )
    errors_logged = [line for line in output.splitlines() if "ERROR" in line or "Traceback" in line]
    actions = sum(len(samples) for samples in out.latencies.values())
    timeouts = sum(out.timeouts.values())
    every = [s for samples in out.latencies.values() for s in samples]
    errors = timeouts + sum(refused.values()) + len(errors_logged) + (code != 0)
    print(
        f"  {actions + timeouts:,} actions in {elapsed:.1f} s ({(actions + timeouts) / elapsed:.1f}"
        f"/s), {out.replies:,} reply events; bot process CPU {cpu:.1f} s "
        f"({cpu / elapsed * 100:.0f} % of one core)"
    )
    print(
        f"  errors: {errors} (replies missing {timeouts}, API calls refused "
        f"{sum(refused.values())}, ERROR log lines {len(errors_logged)}, exit status {code})"
    )
    for what, count in refused.most_common(5):
        print(f"    refused {count}x {what}")
    for line in errors_logged[:5]:
        print(f"    log: {line[:160]}")
    print(f"  latency, enqueue to first reply, all actions: {percentiles(every)}")
    for name, samples in sorted(out.latencies.items(), key=lambda item: -len(item[1])):
        print(f"    {name:12} {len(samples):5}x  {percentiles(samples)}")
    print(f"  target: zero errors: {'met' if errors == 0 else 'MISSED'}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=200, help="default 200 (10 %% groups)")
    parser.add_argument("--seconds", type=float, default=60.0, help="default 60")
    parser.add_argument("--think", default="5,10", help="seconds between actions, min,max")
    parser.add_argument("--no-limits", action="store_true", help="no flood limits")
    sys.exit(asyncio.run(main(parser.parse_args())))
