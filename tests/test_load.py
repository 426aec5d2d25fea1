"""200 users at once for 5 seconds against the real application with long polling: no errors.

The short form of ``bench/bench_load.py`` (which runs ``python -m bot`` for a minute with
Telegram's flood limits and reports latencies). Here the application runs in the test's event
loop, polling the emulator with ``updater.start_polling``, and 200 users (20 of them groups)
send commands and press page buttons as fast as they get answers. Every action must get all
of its replies, the emulator must refuse no call, and nothing may be logged as an error.
Timings are not asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from cards_util import iccid

from bot.app import AnyApplication, build_application
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.emulator.queues import ChatQueues
from storage.sqlite import SqliteStorage

TOKEN = "123456:TEST-TOKEN"  # the conftest emulator's
USERS = 200
GROUPS = 20
SECONDS = 5.0
REPLY_TIMEOUT = 20.0

# (text or None for the page button, replies it causes, weight)
ACTIONS: list[tuple[str | None, int, int]] = [
    ("/cards", 1, 20),
    (None, 2, 15),  # a page button on the user's last /cards list: an edit and an answer
    ("/expiring", 1, 10),
    ("/find 收银台", 1, 10),
    ("/start", 1, 4),
    ("/help", 1, 4),
    ("/cost", 1, 6),
    ("/settings", 1, 4),
    ("/addcard", 1, 8),
    ("/renew", 1, 6),  # then /cancel
    ("/export", 1, 3),
    ("/stats", 2, 1),  # text and a chart
]


def chat_of(n: int) -> int:
    """Groups first, then private chats (whose id is the user's)."""
    return -(1_000_000_000_300 + n) if n < GROUPS else user_of(n)


def user_of(n: int) -> int:
    return 900_000 + n


@pytest.fixture
async def polling_app(tmp_path: Path, emulator: BotApiEmulator) -> AsyncIterator[AnyApplication]:
    path = tmp_path / "load.sqlite3"
    storage = await SqliteStorage.open(path)
    today = date.today()
    rng = random.Random(3)
    rows: list[tuple[int, str, str, str]] = []
    for n in range(USERS):
        for _ in range(rng.randint(11, 30)):
            expiry = today + timedelta(days=rng.randint(-30, 200))
            rows.append((chat_of(n), iccid(len(rows) + 1), expiry.isoformat(), f"收银台{n % 9}"))
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executemany(
            "INSERT INTO chats (chat_id, is_group, created_at, address) "
            "VALUES (?1, ?2, '2026-01-01', ?1)",
            [(chat_of(n), int(chat_of(n) < 0)) for n in range(USERS)],
        )
        db.executemany(
            "INSERT INTO cards (chat_id, iccid, expiry, carrier, label, created_at) "
            "VALUES (?, ?, ?, 'cmcc', ?, '2026-01-01')",
            rows,
        )
    for n in range(USERS):
        user = emulator.user(user_of(n), f"U{n}", language_code="zh-hans")
        if n < GROUPS:
            emulator.group_chat(chat_of(n), f"门店群{n}", supergroup=True, admins=[user["id"]])
        else:
            emulator.private_chat(user)
    settings = Settings(
        bot_token=TOKEN,
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=path,
    )
    app = build_application(
        settings, token=TOKEN, storage=storage, rate_limit=False, reminder_tick=False
    )
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0)
    yield app
    await app.updater.stop()
    await app.stop()
    await app.shutdown()
    await storage.close()


async def test_200_users_for_5_seconds_without_an_error(
    polling_app: AnyApplication, emulator: BotApiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    missing: list[tuple[int, str]] = []
    done = 0
    calls_before = len(emulator.calls)

    async def user(n: int, deadline: float, queues: ChatQueues) -> None:
        nonlocal done
        rng = random.Random(n)
        chat_id, user_id = chat_of(n), user_of(n)
        cards_message: int | None = None
        page = added = 0
        steps: list[tuple[str | None, int]] = []
        while time.monotonic() < deadline or steps:
            if not steps:
                ((text, replies, _),) = rng.choices(ACTIONS, [a[2] for a in ACTIONS])
                if text is None and cards_message is None:
                    text, replies = "/cards", 1
                steps = [(text, replies)] + ([("/cancel", 1)] if text == "/renew" else [])
            text, replies = steps.pop(0)
            if text is None:
                assert cards_message is not None
                page = 1 - page  # alternate: an edit to the same page would change nothing
                emulator.callback_update(chat_id, user_id, cards_message, f"pg:a:{page}")
            else:
                if text == "/addcard":
                    added += 1
                    text = f"/addcard {iccid(n * 1000 + 500_000 + added)} 2027-03-31 移动 新店"
                emulator.message_update(chat_id, user_id, text)
            try:
                events = await queues.take(chat_id, replies, timeout=REPLY_TIMEOUT)
            except TimeoutError:
                missing.append((chat_id, str(text)))
                return
            done += 1
            if text == "/cards":
                cards_message, page = events[0].message_id, 0

    deadline = time.monotonic() + SECONDS
    async with ChatQueues(emulator) as queues, asyncio.TaskGroup() as users:
        for n in range(USERS):  # one failing user stops them all
            users.create_task(user(n, deadline, queues))

    refused = [
        (call.method, call.status, (call.response or {}).get("description"))
        for call in emulator.calls[calls_before:]
        if call.response is not None and not call.ok
    ]
    assert missing == []
    assert refused == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert done >= USERS, done  # every user was answered at least once
