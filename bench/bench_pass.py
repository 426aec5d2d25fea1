"""The daily reminder pass over 10k, 100k and 1M cards: compute and enqueue, no sending.

Target: 1,000,000 cards in 100,000 chats in at most 5 s and 200 MB peak RSS on a 2-core machine.

For each size a generated database (see ``simdata.py``; built once, then cached in
``--cache``) is copied, and a fresh Python process runs ``ReminderComposer.compose_for_date``
over every chat for 2026-11-25 (the first day: an empty sent-log, so every card inside a
reminder window is due), then another fresh process runs it for the day after (the sent-log
filters most cards out). A process per run keeps sizes and days from sharing memory: its peak
RSS (``VmHWM``; ``ru_maxrss`` is printed too, see ``simdata.peak_rss_mb``) is that run's alone,
interpreter and imports included. The pass is the production code path: auto-renewals, the due
cards picked by SQL per batch of 2,000 chats, the sent-log and the outbox written, one
transaction per batch.

    .venv/bin/python bench/bench_pass.py                       # 10k, 100k, 1M cards
    .venv/bin/python bench/bench_pass.py --sizes 1000000 --repeat 3
    .venv/bin/python bench/bench_pass.py --cache-size -65536   # try a PRAGMA cache_size

The first run builds the 1M database (about half a minute, ~250 MB in /tmp/simwatch-bench).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import simdata
from simdata import TODAY

from bot.clock import FixedClock
from bot.reminders.compose import ReminderComposer
from storage.reminders import SqliteReminderStore
from storage.sqlite import SqliteStorage

TARGET_SECONDS = 5.0
TARGET_MB = 200.0


async def one_pass(db: Path, day: date, cache_size: int | None) -> dict[str, Any]:
    """In the child process: one pass over every chat for ``day``, measured."""
    rss_before = simdata.rss_mb()
    started = time.perf_counter()
    storage = await SqliteStorage.open(db)
    if cache_size is not None:
        await storage.fetchall(f"PRAGMA cache_size = {int(cache_size)}")
    opened = time.perf_counter() - started
    clock = FixedClock(datetime.combine(day, clock_time(10), ZoneInfo("Asia/Shanghai")))
    composer = ReminderComposer(SqliteReminderStore(storage), clock, default_language="zh_CN")
    started, cpu = time.perf_counter(), simdata.cpu_seconds()
    stats = await composer.compose_for_date(day)
    seconds, cpu = time.perf_counter() - started, simdata.cpu_seconds() - cpu
    row = await storage.fetchone("PRAGMA cache_size")
    await storage.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "open_seconds": opened,
        "chats": stats.chats,
        "digests": stats.digests,
        "cards_due": stats.cards_due,
        "auto_renewed": stats.auto_renewed,
        "rss_start_mb": rss_before,
        "peak_rss_mb": simdata.peak_rss_mb(),
        "maxrss_mb": simdata.maxrss_mb(),
        "cache_size": int(row[0]) if row else None,
    }


def run_child(db: Path, day: date, cache_size: int | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(db), "--day", day.isoformat()]
    if cache_size is not None:
        command += ["--cache-size", str(cache_size)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(
    cards: int, chats: int, *, cache: Path, work: Path, cache_size: int | None, repeat: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    source = simdata.cached_database(cards, chats, cache=cache)
    runs = []
    for _ in range(repeat):
        db = simdata.fresh_copy(source, work / "pass.sqlite3")
        first = run_child(db, TODAY, cache_size)
        following = run_child(db, TODAY + timedelta(days=1), cache_size)
        runs.append((first, following))
    return runs


def describe(name: str, results: list[dict[str, Any]]) -> str:
    times = [r["seconds"] for r in results]
    spread = f" (runs: {', '.join(f'{t:.2f}' for t in times)})" if len(times) > 1 else ""
    r = results[0]
    return (
        f"  {name:13} {statistics.median(times):6.2f} s{spread} "
        f"(CPU {statistics.median(r['cpu_seconds'] for r in results):.2f} s)   "
        f"peak RSS {max(x['peak_rss_mb'] for x in results):5.0f} MB "
        f"(ru_maxrss {max(x['maxrss_mb'] for x in results):.0f}; "
        f"at start {r['rss_start_mb']:.0f})   "
        f"{r['chats']:,} chats, {r['cards_due']:,} cards due, {r['digests']:,} digests, "
        f"{r['auto_renewed']:,} auto-renewed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="card counts, comma-separated (default: 10000,100000,1000000)",
    )
    parser.add_argument("--cards-per-chat", type=int, default=10, help="default 10")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (default 1)")
    parser.add_argument(
        "--cache-size",
        type=int,
        default=None,
        help="run PRAGMA cache_size = N after opening (default: what SqliteStorage sets)",
    )
    parser.add_argument("--cache", type=Path, default=simdata.DEFAULT_CACHE)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--day", type=date.fromisoformat, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child is not None:
        print(json.dumps(asyncio.run(one_pass(options.child, options.day, options.cache_size))))
        return

    print(f"reminder pass benchmark: {simdata.machine()}")
    sizes = [int(size) for size in options.sizes.split(",")]
    previous: float | None = None
    with tempfile.TemporaryDirectory(prefix="simwatch-pass-") as folder:
        for cards in sizes:
            chats = max(1, cards // options.cards_per_chat)
            runs = measure(
                cards,
                chats,
                cache=options.cache,
                work=Path(folder),
                cache_size=options.cache_size,
                repeat=options.repeat,
            )
            firsts = [first for first, _ in runs]
            nexts = [following for _, following in runs]
            print(
                f"{cards:,} cards in {chats:,} chats (SQLite cache_size "
                f"{firsts[0]['cache_size']}, open+migrate {firsts[0]['open_seconds']:.2f} s):"
            )
            print(describe("first day", firsts))
            print(describe("following day", nexts))
            seconds = statistics.median(r["seconds"] for r in firsts)
            if previous is not None:
                print(f"  first day vs the previous size: x{seconds / previous:.1f}")
            previous = seconds
            if cards == 1_000_000:
                peak = max(r["peak_rss_mb"] for r in firsts + nexts)
                worst = max(r["seconds"] for r in firsts + nexts)
                verdict = "met" if worst <= TARGET_SECONDS and peak <= TARGET_MB else "MISSED"
                print(
                    f"  target <= {TARGET_SECONDS:.0f} s and <= {TARGET_MB:.0f} MB: {verdict} "
                    f"(slowest run {worst:.2f} s, peak {peak:.0f} MB)"
                )


if __name__ == "__main__":
    main()
