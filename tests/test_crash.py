"""kill -9 in the middle of work: real processes, real SIGKILL, then a restart.

Delivery: ``python -m bot remind`` sends digests to the emulator, whose answers are slow, so
several sends are in flight at any time. One chat's send is applied but never answered (what
"Telegram accepted it in the instant before the crash" looks like from the bot), and the
process is killed as soon as the emulator has that message. Afterwards: the database is
intact; a rerun at once delivers everything not held by the dead sender's claims and repeats
nothing; once those claims have expired (10 minutes, simulated by moving them into the past),
a rerun delivers the rest. In the end every chat has its digest, and the only repeats are
messages the emulator had accepted whose sending the dead process had not recorded, each
repeated exactly once: the victim's (in practice alone; with 8 workers another send answered in
the same few milliseconds could share its fate, which the sender's contract allows).

Import: ``python -m bot import`` is stopped inside its transaction, after every row has been
written but before COMMIT (a driver runs the command with the import's public ``before_commit``
hook, which says so and waits), then killed. The chat's cards are exactly as before, and a
rerun imports the whole file.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cards_util import iccid

from bot.emulator import BotApiEmulator
from bot.models import CardDraft
from bot.reminders.sender import SenderPolicy
from storage.bulk import SqliteBulkStore
from storage.sqlite import SqliteStorage

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:TEST-TOKEN"  # the conftest emulator's
DAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
PRIVATE = [5000 + n for n in range(40)]
GROUPS = [-100700 - n for n in range(10)]
CHATS = sorted(PRIVATE + GROUPS)  # the pass enqueues digests in chat id order
VICTIM = CHATS[20]
IMPORT_CHAT = 4242
EXISTING = 300  # the chat's cards before the import
IMPORTED = 20_000  # rows in the file: the EXISTING cards changed, the rest new

# ``python -m bot import …`` through public names only, with the import's ``before_commit``
# hook: once every row is written, say so on stdout and wait inside the open transaction.
PAUSE_BEFORE_COMMIT = """
import asyncio, sys
from bot.__main__ import parser
from bot.bulk.cli import run_import
from bot.config import load_settings

async def pause():
    print("WRITTEN, NOT COMMITTED", flush=True)
    await asyncio.sleep(3600)

args = parser().parse_args(sys.argv[1:])
sys.exit(asyncio.run(run_import(load_settings(), args, sys.stdout, before_commit=pause)))
"""


def environment(emulator: BotApiEmulator | None, database: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": TOKEN,
        "DATABASE_PATH": str(database),
        "LANGUAGE": "zh_CN",  # the summaries checked below are the Chinese ones
        "LOG_LEVEL": "ERROR",
    }
    if emulator is not None:
        env["TELEGRAM_BASE_URL"] = emulator.base_url
        env["TELEGRAM_BASE_FILE_URL"] = emulator.base_file_url
    return env


async def start(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str]:
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def kill(process: asyncio.subprocess.Process) -> None:
    process.kill()  # SIGKILL: no cleanup, no atexit, no rollback
    await asyncio.wait_for(process.wait(), timeout=10)


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db, db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def outbox(path: Path) -> list[tuple[int, str, str | None]]:
    """(chat id, status, claimed_until) per outbox row."""
    with closing(sqlite3.connect(path)) as db, db:
        return db.execute(
            "SELECT chat_id, status, claimed_until FROM outbox ORDER BY id"
        ).fetchall()


def delivered(emulator: BotApiEmulator) -> Counter[tuple[int, str]]:
    """How many times each (chat, text) was accepted by the emulator."""
    return Counter(
        (chat_id, message.text or "")
        for chat_id in CHATS
        for message in emulator.chat_messages(chat_id)
    )


@pytest.fixture
async def reminders_db(tmp_path: Path, emulator: BotApiEmulator) -> Path:
    path = tmp_path / "remind.sqlite3"
    storage = await SqliteStorage.open(path)
    n = 0
    for chat_id in CHATS:
        await storage.ensure_chat(chat_id, is_group=chat_id < 0)
        for days_left in (3, -2)[: 1 + chat_id % 2]:  # one or two due cards a chat
            n += 1
            draft = CardDraft(iccid=iccid(n), expiry=DAY + timedelta(days=days_left))
            await storage.add_card(chat_id, draft, NOW)
    await storage.close()
    for chat_id in PRIVATE:
        emulator.private_chat(emulator.user(chat_id, f"店主{chat_id}"))
    for chat_id in GROUPS:
        emulator.group_chat(chat_id, f"门店群{chat_id}", supergroup=True)
    return path


async def test_kill_during_delivery_loses_nothing_and_repeats_only_the_unconfirmed(
    reminders_db: Path, emulator: BotApiEmulator, tmp_path: Path
) -> None:
    env = environment(emulator, reminders_db)
    remind = ("-m", "bot", "remind", "--date", DAY.isoformat())
    # The victim's send is applied and its answer held until the client hangs up; every other
    # send is answered after 0.23 s, so about six are in flight at the sender's 25/s.
    emulator.inject_fault("sendMessage", kind="lost_response", chat_id=VICTIM)
    emulator.inject_fault("sendMessage", kind="slow", delay=0.23, times=10_000)

    process = await start(env, tmp_path, *remind)
    await emulator.wait_for_events(VICTIM, timeout=30)  # Telegram has the victim's digest
    await kill(process)
    await emulator.wait_idle(timeout=10)  # the dead client's held requests are dropped
    emulator.clear_faults()

    assert integrity(reminders_db) == "ok"
    rows = outbox(reminders_db)
    assert {chat_id for chat_id, _, _ in rows} == set(CHATS), "every digest was enqueued"
    sent_before = {chat_id for chat_id, status, _ in rows if status == "sent"}
    accepted = {chat_id for chat_id, _ in delivered(emulator)}
    unconfirmed = accepted - sent_before  # Telegram has them, the outbox does not know
    assert VICTIM in unconfirmed
    assert sent_before <= accepted
    assert len(unconfirmed) <= SenderPolicy().concurrency  # at most one per busy worker
    assert 0 < len(sent_before) < len(CHATS), "the kill landed mid-delivery"

    # Restarted at once: the dead sender's claims still hold (10 minutes), so what it was
    # sending waits; everything else goes out, and nothing is sent twice.
    code, output = await finish(await start(env, tmp_path, *remind))
    assert code == 0, output
    held = [chat_id for chat_id, status, _ in outbox(reminders_db) if status == "pending"]
    assert f"有 {len(held)} 条消息被另一个（或已崩溃的）发送进程占用到" in output, output
    claimed = set(held)
    assert VICTIM in claimed
    assert set(CHATS) - {chat_id for chat_id, _ in delivered(emulator)} <= claimed
    assert max(delivered(emulator).values()) == 1, "no repeat while the claims hold"

    # Ten minutes later the claims have expired (moved into the past here, not waited for).
    with closing(sqlite3.connect(reminders_db)) as db, db:
        db.execute(
            "UPDATE outbox SET claimed_until = ? WHERE status = 'pending'",
            ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="microseconds"),),
        )
    code, output = await finish(await start(env, tmp_path, *remind))
    assert code == 0, output

    assert integrity(reminders_db) == "ok"
    assert {status for _, status, _ in outbox(reminders_db)} == {"sent"}
    counts = delivered(emulator)
    assert {chat_id for chat_id, _ in counts} == set(CHATS), "every chat got its digest"
    repeated = {chat_id for (chat_id, _), times in counts.items() if times > 1}
    assert repeated == unconfirmed, "repeats are exactly the sends the dead process missed"
    assert max(counts.values()) == 2
    assert all(len(emulator.chat_messages(chat_id)) <= 2 for chat_id in CHATS)


@pytest.fixture
async def import_db(tmp_path: Path) -> tuple[Path, Path]:
    """A chat with EXISTING cards, and a CSV that changes all of them and adds the rest."""
    path = tmp_path / "import.sqlite3"
    storage = await SqliteStorage.open(path)
    await storage.ensure_chat(IMPORT_CHAT, is_group=False)
    drafts = [
        CardDraft(iccid=iccid(n), expiry=date(2027, 1, 1), label="旧")
        for n in range(1, EXISTING + 1)
    ]
    async with SqliteBulkStore(storage).import_session(IMPORT_CHAT) as session:
        await session.insert(drafts, NOW)
    await storage.close()
    lines = ["ICCID,到期日,运营商,标签"]
    lines += [f"{iccid(n)},2027-06-30,移动,收银台{n % 50}" for n in range(1, IMPORTED + 1)]
    sheet = tmp_path / "cards.csv"
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, sheet


def wal_size(path: Path) -> int:
    wal = Path(str(path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def chat_cards(path: Path) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db, db:
        return db.execute(
            "SELECT * FROM cards WHERE chat_id = ? ORDER BY id", (IMPORT_CHAT,)
        ).fetchall()


async def test_kill_inside_the_import_transaction_changes_nothing_then_a_rerun_imports_all(
    import_db: tuple[Path, Path], tmp_path: Path
) -> None:
    path, sheet = import_db
    env = environment(None, path)
    before = chat_cards(path)
    assert len(before) == EXISTING
    args = ("import", str(sheet), "--chat", str(IMPORT_CHAT), "--no-progress")

    process = await start(env, tmp_path, "-c", PAUSE_BEFORE_COMMIT, *args)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert line.decode().strip() == "WRITTEN, NOT COMMITTED"
    spilled = wal_size(path)
    await kill(process)

    assert integrity(path) == "ok"
    assert chat_cards(path) == before, "the killed import left the chat exactly as it was"
    assert spilled > 0, "uncommitted pages had reached the WAL file: recovery was exercised"

    code, output = await finish(await start(env, tmp_path, "-m", "bot", *args))
    assert code == 0, output
    after = chat_cards(path)
    assert len(after) == IMPORTED
    assert {row[3] for row in after} == {"2027-06-30"}  # expiry: the EXISTING cards updated too
    assert integrity(path) == "ok"
