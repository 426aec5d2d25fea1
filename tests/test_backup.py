"""``python -m bot backup FILE``: a consistent copy taken while the bot keeps writing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cards_util import iccid

from bot.models import CardDraft
from storage.backup import BackupError, backup_database
from storage.sqlite import SqliteStorage

NOW = datetime(2026, 11, 25, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


async def test_backup_while_writing_is_consistent(tmp_path: Path) -> None:
    source = tmp_path / "live.sqlite3"
    storage = await SqliteStorage.open(source)
    await storage.ensure_chat(1, is_group=False)
    stop = asyncio.Event()

    async def keep_writing() -> int:
        n = 0
        while not stop.is_set():
            await storage.add_card(1, CardDraft(iccid=iccid(n), expiry=date(2027, 1, 1)), NOW)
            n += 1
        return n

    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.2)
    copies = []
    for k in range(3):
        copy = tmp_path / f"backup-{k}.sqlite3"
        copies.append((copy, await asyncio.to_thread(backup_database, source, copy)))
    stop.set()
    written = await writer
    await storage.close()
    previous = 0
    for copy, cards in copies:
        with sqlite3.connect(copy) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert db.execute("SELECT count(*) FROM cards").fetchone() == (cards,)
        assert previous <= cards <= written
        previous = cards
    # the copy opens as a SimWatch database of its own
    restored = await SqliteStorage.open(copies[-1][0])
    assert await restored.count_cards(1) == copies[-1][1]
    await restored.close()


def test_backup_refuses_to_overwrite_or_copy_nothing(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no database"):
        backup_database(tmp_path / "missing.sqlite3", tmp_path / "copy.sqlite3")
    existing = tmp_path / "copy.sqlite3"
    existing.write_text("keep me")
    source = tmp_path / "db.sqlite3"
    sqlite3.connect(source).close()
    with pytest.raises(BackupError, match="exists already"):
        backup_database(source, existing)
    assert existing.read_text() == "keep me"


def test_backup_command(tmp_path: Path) -> None:
    asyncio.run(_make_db(tmp_path / "db.sqlite3"))

    def backup(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "LANGUAGE"}
        return subprocess.run(
            [sys.executable, "-m", "bot", "backup", *args, str(tmp_path / "out.sqlite3")],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT), "DATABASE_PATH": str(tmp_path / "db.sqlite3")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = backup()
    assert done.returncode == 0, done.stderr
    assert "（1 张卡）" in done.stdout
    refused = backup()
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert backup("--force").returncode == 0


async def _make_db(path: Path) -> None:
    storage = await SqliteStorage.open(path)
    await storage.ensure_chat(1, is_group=False)
    await storage.add_card(1, CardDraft(iccid=iccid(1), expiry=date(2027, 1, 1)), NOW)
    await storage.close()
