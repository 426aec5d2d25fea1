"""The real entry point on WeCom: ``python -m bot`` with only the WeCom settings, against the
local WeCom emulator — a card added in WeCom, the digest pushed by the bot's own tick, a restart
that does not repeat it, a dropped connection recovered, a wrong secret refused in one line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cards_util import iccid

from bot.chats import Channel, ChatAddress, ChatKind
from bot.models import CardDraft
from bot.reminders.models import ReminderSettings
from bot.wecom.emulator import WeComEmulator
from storage.factory import stores_for
from storage.sqlite import SqliteStorage

ROOT = Path(__file__).resolve().parent.parent
SECRET = "wecom-secret-do-not-log-42"


def environment(emulator: WeComEmulator, database: Path, secret: str = SECRET) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "DATABASE_URL")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "WECOM_BOT_ID": emulator.bot_id,
        "WECOM_BOT_SECRET": secret,
        "WECOM_WS_URL": emulator.url,
        "DATABASE_PATH": str(database),
        "LOG_LEVEL": "DEBUG",  # the chattiest level must not leak the secret either
    }


async def start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def stop(process: asyncio.subprocess.Process) -> tuple[int | None, str]:
    process.send_signal(signal.SIGINT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return process.returncode, output.decode()


async def seed(database: Path, *, card: bool = True) -> None:
    """A WeCom shop owner with digests due from midnight (so a tick sends one whatever the time
    of day the test runs), and (``card``) a card expiring in three days."""
    storage = await SqliteStorage.open(database)
    try:
        stores = stores_for(storage)
        address = ChatAddress(Channel.WECOM, ChatKind.PRIVATE, "wang")
        chat_id = await stores.channels.chat_id_for(address, at=datetime.now(UTC))
        await stores.reminders.save_settings(chat_id, ReminderSettings(send_time=time(0, 0)))
        if card:
            draft = CardDraft(iccid=iccid(1), expiry=in_three_days(), label="收银台1")
            await storage.add_card(chat_id, draft, datetime.now(UTC))
    finally:
        await storage.close()


def in_three_days() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=3)


def digests(emulator: WeComEmulator) -> list[str]:
    """The digests the bot pushed to Wang (of all events, taken or not)."""
    return [
        e.markdown
        for e in emulator.events
        if e.kind == "send" and e.markdown and "收银台1" in e.markdown and e.chat[1] == "wang"
    ]


async def test_python_m_bot_on_wecom_sends_the_digest_once_and_recovers(tmp_path: Path) -> None:
    database = tmp_path / "simwatch.sqlite3"
    await seed(database, card=False)
    async with WeComEmulator(secret=SECRET) as emulator:
        env = environment(emulator, database)
        process = await start(env, tmp_path)
        try:
            await emulator.wait_subscriptions(1, timeout=30)
            added = f"/addcard {iccid(1)} {in_three_days().isoformat()} 移动 收银台1"
            await emulator.send_text("wang", added)  # and now the robot may write to Wang
            (saved,) = await emulator.wait_for_events(("single", "wang"), timeout=30)
            assert "已保存" in (saved.markdown or "")
            # the first tick comes 5 s after the start (on a slow machine the card may miss it:
            # the next comes a minute later): the digest, markdown and its card
            await emulator.wait_for_events(("single", "wang"), count=2, timeout=80)
            assert digests(emulator), [e.markdown for e in emulator.events]
            await emulator.wait_idle(quiet=0.5, timeout=10)  # its answers are in, marked sent
            emulator.drop_connection()
            await emulator.wait_subscriptions(2, timeout=30)  # it came back by itself
            emulator.take_events()
            await emulator.send_text("wang", "/help")
            (answer,) = await emulator.wait_for_events(("single", "wang"), timeout=30)
            assert "/addcard" in (answer.markdown or "")
        finally:
            code, log = await stop(process)
        assert code == 0, log
        assert len(digests(emulator)) == 1
        assert SECRET not in log

        # A restart the same day: the tick runs again and sends nothing more.
        process = await start(env, tmp_path)
        try:
            await emulator.wait_subscriptions(3, timeout=30)
            await asyncio.sleep(7)  # past the first tick of the new process
        finally:
            code, log = await stop(process)
        assert code == 0, log
        assert len(digests(emulator)) == 1, "the restart repeated the digest"


async def test_a_wrong_secret_is_one_line_naming_the_settings(tmp_path: Path) -> None:
    async with WeComEmulator(secret=SECRET) as emulator:
        env = environment(emulator, tmp_path / "simwatch.sqlite3", secret="not-the-secret")
        env["LOG_LEVEL"] = "ERROR"
        process = await start(env, tmp_path)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    text = output.decode()
    assert process.returncode == 2, text
    assert "WECOM_BOT_SECRET" in text
    assert "Traceback" not in text
    assert "not-the-secret" not in text
    assert emulator.connections == 1, "no reconnect storm after a refusal"


async def test_neither_channel_set_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_TOKEN", "WECOM_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    text = output.decode()
    assert process.returncode == 2
    assert "BOT_TOKEN" in text
    assert "WECOM_BOT_ID" in text
    assert len(text.strip().splitlines()) == 1
