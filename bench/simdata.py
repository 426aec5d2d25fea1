"""Synthetic SimWatch databases for the benchmarks, built fast and cached.

Not a benchmark itself: ``bench_pass.py``, ``bench_jobqueue.py`` and ``bench_delivery.py`` import
it. The schema comes from the real migrations (``SqliteStorage.open``); rows go in with
``executemany`` in large transactions through the stdlib ``sqlite3`` module, which builds a
million cards in about half a minute. A built database is kept in a cache folder, keyed by its
shape, the generator's version and the migrations' text, and copied for each run.

What a generated database looks like, for ``cards`` cards in ``chats`` chats (seeded, so
every run sees the same data):

* 1 % of the chats are agents (代理商) holding 40 % of the cards; the other chats are shops with
  1 to 19 cards each (the rest of the cards, spread at random); 10 % of the chats are groups.
* Expiries are uniform from ``today - 180`` to ``today + 365`` days: about a sixth of the cards
  are overdue within the 90-day daily window and 5–6 % expire within the next 30 days.
* 3 % of the cards renew automatically (a plan of 1, 3, 6 or 12 months); 1 % are muted;
  0.5 % are snoozed; 2 % of the chats changed their reminder settings; 5 % are in a time zone
  other than Asia/Shanghai.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from storage.sqlite import SqliteStorage

GENERATOR_VERSION = 2
DEFAULT_CACHE = Path("/tmp/simwatch-bench")
TODAY = date(2026, 11, 25)  # the date the benchmarks pass over ("first day")
CREATED = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
OTHER_ZONES = ("Asia/Hong_Kong", "Asia/Urumqi", "Europe/London", "America/Los_Angeles")
CARRIERS = ("cmcc", "cucc", "ctcc", "other")
CHUNK = 100_000  # rows per executemany


def migrations_digest() -> str:
    """A short hash of the shipped migrations: a new migration means a new cached database."""
    digest = hashlib.sha256()
    for entry in sorted(resources.files("storage.migrations").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            digest.update(entry.name.encode())
            digest.update(entry.read_bytes())
    return digest.hexdigest()[:10]


def chat_ids(chats: int) -> list[int]:
    """The chats' ids: every tenth one a group (negative id), the rest private chats."""
    return [-(1_000_000_000_000 + n) if n % 10 == 9 else 100_000 + n for n in range(chats)]


def cards_per_chat(cards: int, chats: int, rng: random.Random) -> list[int]:
    """How many cards each chat has: agents (1 % of the chats) hold 40 % of the cards."""
    if cards < chats:
        raise ValueError("need at least one card per chat")
    agents = max(1, chats // 100)
    agent_cards = int(cards * 0.4) if chats >= 100 else 0
    if chats < 100:
        agents = 0
    counts = [1] * chats
    for n in range(agents):  # spread the agents over the id range
        counts[n * (chats // agents)] = agent_cards // agents
    shops = [n for n in range(chats) if agents == 0 or n % (chats // agents) != 0]
    left = cards - sum(counts)
    while left > 0:
        n = rng.choice(shops)
        if counts[n] < 19:
            counts[n] += 1
            left -= 1
    # rounding: the first agent (or shop) takes what is missing or surplus
    counts[0] += cards - sum(counts)
    return counts


def _card_rows(
    ids: list[int], counts: list[int], rng: random.Random
) -> Iterator[tuple[object, ...]]:
    card_id = 0
    for chat_id, count in zip(ids, counts, strict=True):
        for _ in range(count):
            card_id += 1
            expiry = TODAY + timedelta(days=rng.randint(-180, 365))
            auto = rng.random() < 0.03
            months = rng.choice((1, 3, 6, 12)) if auto or rng.random() < 0.5 else None
            price = months * 1000 if months else None
            snoozed = (TODAY + timedelta(days=rng.randint(-5, 5))).isoformat()
            yield (
                card_id,
                chat_id,
                f"8986{card_id:015d}{card_id % 10}",
                expiry.isoformat(),
                CARRIERS[card_id % 4],
                f"收银台{card_id % 7}" if card_id % 3 else None,
                months,
                None,
                price,
                int(auto),
                None,
                int(rng.random() < 0.01),
                snoozed if rng.random() < 0.005 else None,
                CREATED,
            )


def _chunks(rows: Iterator[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    chunk: list[tuple[object, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _create_schema(path: Path) -> None:
    storage = await SqliteStorage.open(path)
    await storage.close()


def build_database(path: Path, *, cards: int, chats: int, seed: int = 1) -> None:
    """A new database at ``path`` with the real schema and generated chats and cards."""
    asyncio.run(_create_schema(path))
    rng = random.Random(seed)
    ids = chat_ids(chats)
    counts = cards_per_chat(cards, chats, rng)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -262144")
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO chats (chat_id, is_group, language, timezone, created_at, address) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?1)",
            [
                (
                    chat_id,
                    int(chat_id < 0),
                    "en" if n % 17 == 0 else None,
                    OTHER_ZONES[n % len(OTHER_ZONES)] if n % 20 == 7 else "Asia/Shanghai",
                    CREATED,
                )
                for n, chat_id in enumerate(ids)
            ],
        )
        db.executemany(
            "INSERT INTO chat_reminders (chat_id, send_time, days_before, overdue_daily_days) "
            "VALUES (?, ?, ?, ?)",
            [(chat_id, "08:30", "30,15,7,1,0", 60) for n, chat_id in enumerate(ids) if n % 50 == 3],
        )
        db.execute("COMMIT")
        for chunk in _chunks(_card_rows(ids, counts, rng)):
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO cards (id, chat_id, iccid, expiry, carrier, label, plan_months, "
                "plan_days, plan_price_fen, auto_renew, note, muted, snoozed_until, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chunk,
            )
            db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def cached_database(
    cards: int, chats: int, *, cache: Path = DEFAULT_CACHE, quiet: bool = False
) -> Path:
    """The generated database of this shape, built on first use and kept in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    name = f"sw-{cards}-{chats}-g{GENERATOR_VERSION}-m{migrations_digest()}.sqlite3"
    path = cache / name
    if not path.exists():
        partial = cache / (name + ".partial")
        for leftover in cache.glob(name + ".partial*"):
            leftover.unlink()
        started = time.perf_counter()
        # In a child process: building takes a few hundred MB, which the benchmark's own
        # process (and the ru_maxrss its children inherit) should not carry.
        subprocess.run([sys.executable, __file__, str(partial), str(cards), str(chats)], check=True)
        with open(partial, "rb+") as built:  # on disk before anything is timed
            os.fsync(built.fileno())
        partial.rename(path)
        if not quiet:
            took = time.perf_counter() - started
            size = path.stat().st_size / 2**20
            print(f"  built {path.name}: {cards:,} cards, {chats:,} chats in {took:.1f} s "
                  f"({size:.0f} MB)")  # fmt: skip
    return path


def fresh_copy(source: Path, target: Path) -> Path:
    """Copy a database (no -wal/-shm: cached databases are checkpointed) over ``target``."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    shutil.copyfile(source, target)
    # Flush the copy now: otherwise the kernel writes its ~170 MB back while the timed pass
    # runs, and the pass's own commits and checkpoints wait behind it (seconds of noise).
    with open(target, "rb+") as copy:
        os.fsync(copy.fileno())
    return target


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    """This process's resident set size now, in MB (Linux)."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (Linux).

    ``VmHWM`` rather than ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries
    ``ru_maxrss`` across ``fork`` + ``exec``, so a child started by a parent that once held
    300 MB reports at least 300 MB whatever it did itself; ``VmHWM`` is the high-water mark of
    this program's own memory, reset by ``exec``. Both are printed where it matters.
    """
    return _status_mb("VmHWM")


def maxrss_mb() -> float:
    """``getrusage`` ``ru_maxrss`` in MB (see ``peak_rss_mb`` for why it can mislead)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (SQLite works in aiosqlite's)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> str:
    """One line describing this machine, for the results."""
    import platform

    model = "?"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return (
        f"{os.cpu_count()} cores ({model}), {total_kb / 2**20:.1f} GB RAM, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


if __name__ == "__main__":
    # python bench/simdata.py PATH CARDS CHATS: build one database (what cached_database runs)
    build_database(Path(sys.argv[1]), cards=int(sys.argv[2]), chats=int(sys.argv[3]))


class ServedProcess:
    """An emulator in a process of its own (a benchmark script run with ``--serve``), as the
    real service would be: it prints ``PORT n`` once listening, and answers each ``stats``
    line on its stdin with one JSON line."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"

    def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        result: dict[str, Any] = json.loads(self.process.stdout.readline())
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
