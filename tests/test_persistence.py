"""The conversations file (PTB's pickle persistence) is written whole or not at all, and a
damaged one does not stop the bot: it starts, says so once, and keeps the damaged file aside."""

from __future__ import annotations

import logging
import os
import pickle
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cards_util import iccid
from conftest import running_bot

from bot.app import conversations_path
from bot.chatdriver import ChatDriver, texts
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.files import atomic_write
from storage.sqlite import SqliteStorage

ROOT = Path(__file__).resolve().parent.parent


def settings_for(emulator: BotApiEmulator, tmp_path: Path) -> Settings:
    return Settings(
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=tmp_path / "simwatch.sqlite3",
    )


async def a_conversation_in_progress(emulator: BotApiEmulator, settings: Settings) -> bytes:
    """Start /addcard, stop the bot (which writes the file out); the file's bytes."""
    user = emulator.user(7, "Zhao")
    storage = await SqliteStorage.open(settings.database_path)
    async with running_bot(settings, storage) as app:
        driver = ChatDriver(app, emulator, emulator.private_chat(user), user)
        await driver.send("/addcard")
        await driver.send(iccid(1))
    await storage.close()
    return conversations_path(settings.database_path).read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
async def test_a_damaged_conversations_file_does_not_stop_the_bot(
    emulator: BotApiEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    settings = settings_for(emulator, tmp_path)
    whole = await a_conversation_in_progress(emulator, settings)
    damaged = {"truncated": whole[: len(whole) // 2], "garbage": b"\x80\x05junk", "empty": b""}
    path = conversations_path(settings.database_path)
    path.write_bytes(damaged[damage])

    user = emulator.user(8, "Qian")
    storage = await SqliteStorage.open(settings.database_path)
    try:
        with caplog.at_level(logging.WARNING):
            async with running_bot(settings, storage) as app:
                driver = ChatDriver(app, emulator, emulator.private_chat(user), user)
                assert "流量卡管家" in texts(await driver.send("/start"))
                assert "第 1 步" in texts(await driver.send("/addcard"))
    finally:
        await storage.close()
    said = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(said) == 1, said
    assert (path.with_name(path.name + ".damaged")).read_bytes() == damaged[damage]
    # and the file written at that shutdown is whole again
    with path.open("rb") as file:
        assert "conversations" in pickle.load(file)


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "data.pickle"
    path.write_bytes(b"old and whole")

    def half_then_fail(file: object) -> None:
        assert hasattr(file, "write")
        file.write(b"new but ha")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old and whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.pickle"]


def test_a_kill_in_the_middle_of_a_write_keeps_the_old_file(tmp_path: Path) -> None:
    # A real SIGKILL, halfway through writing 8 MB: no cleanup code runs.
    path = tmp_path / "data.pickle"
    path.write_bytes(b"old and whole")
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from bot.files import atomic_write

        def write(file):
            file.write(b"x" * 4_000_000)
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
            file.write(b"y" * 4_000_000)

        atomic_write(Path({str(path)!r}), write)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == -9, result.stderr
    assert path.read_bytes() == b"old and whole"
    atomic_write(path, lambda file: file.write(b"next write"))  # the leftover is no obstacle
    assert path.read_bytes() == b"next write"


def test_a_written_file_is_private(tmp_path: Path) -> None:
    folder = tmp_path / "new"
    atomic_write(folder / "data.pickle", lambda file: file.write(b"x"))
    assert stat.S_IMODE((folder / "data.pickle").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
