"""The real entry point: ``python -m bot`` long-polls the (emulated) Bot API and answers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bot.emulator import BotApiEmulator

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "987654:SECRET-TOKEN-abc"


async def test_python_m_bot_answers_and_never_logs_the_token(tmp_path: Path) -> None:
    async with BotApiEmulator(TOKEN) as emulator:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": emulator.base_url,
            "TELEGRAM_BASE_FILE_URL": emulator.base_file_url,
            "DATABASE_PATH": str(tmp_path / "db" / "simwatch.sqlite3"),
            "LOG_LEVEL": "DEBUG",  # the chattiest level must not leak the token either
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            user = emulator.user(555, "Wang", language_code="zh-hans")
            emulator.message_update(emulator.private_chat(user), user, "/start")
            (reply,) = await emulator.wait_for_events(555, count=1, timeout=30)
            assert "流量卡管家" in (reply.text or "")
            assert emulator.commands_for(language_code="en"), "the English menu was registered"
        finally:
            process.send_signal(signal.SIGINT)
            output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0
    log = output.decode()
    assert "getUpdates" in log or "Application started" in log  # it did log at DEBUG
    assert TOKEN not in log
    assert (tmp_path / "db" / "simwatch.sqlite3").exists()
