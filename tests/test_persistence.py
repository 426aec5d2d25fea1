"""Conversations in progress live in the database: written after every update (a kill -9 loses
at most the step being answered), a damaged row does not stop the bot, and the pickle file of
earlier versions is imported once.

The atomic file writes of ``bot.files`` (still used for files the bot writes) are tested here
too, as they were when the conversations were such a file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from cards_util import iccid
from conftest import NOW, TOKEN, running_bot

from bot.app import conversation_store, conversations_path
from bot.chatdriver import ChatDriver, texts
from bot.config import Settings
from bot.emulator import BotApiEmulator
from storage.base import Storage
from storage.conversations import ConversationKey

ROOT = Path(__file__).resolve().parent.parent
# What the previous version's pickle persistence wrote (tests/fixtures/make it with the bot of
# that version): Zhao (7) at /addcard's step 2 with the ICCID iccid(1) typed, Qian (8, English)
# at step 1.
OLD_FILE = ROOT / "tests" / "fixtures" / "old_conversations.pickle"
ASK_EXPIRY = "第 2 步"
ASK_CARRIER = "第 3 步"
NOT_IN_A_CONVERSATION = "没看懂"
ASK_ICCID_AGAIN = "ICCID"


def settings_for(emulator: BotApiEmulator, tmp_path: Path) -> Settings:
    return Settings(
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=tmp_path / "simwatch.sqlite3",  # the storage fixture's database
    )


def driver(app: object, emulator: BotApiEmulator, user_id: int, **user: str) -> ChatDriver:
    person = emulator.user(user_id, "Zhao" if user_id == 7 else "Qian", **user)
    return ChatDriver(app, emulator, emulator.private_chat(person), person)  # type: ignore[arg-type]


async def two_cards_half_added(
    emulator: BotApiEmulator, settings: Settings, storage: Storage
) -> None:
    """Zhao (7) and Qian (8) each typed an ICCID in /addcard; the expiry is asked next."""
    async with running_bot(settings, storage) as app:
        for user_id, n in ((7, 1), (8, 2)):
            chat = driver(app, emulator, user_id)
            await chat.send("/addcard")
            assert ASK_EXPIRY in texts(await chat.send(iccid(n)))


def unreadable(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]


@pytest.mark.parametrize("damaged", ["draft", "step"])
async def test_a_damaged_row_is_skipped_with_one_line_and_the_bot_starts(
    emulator: BotApiEmulator,
    storage: Storage,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damaged: str,
) -> None:
    settings = settings_for(emulator, tmp_path)
    await two_cards_half_added(emulator, settings, storage)
    zhao = ConversationKey(chat_id=7, user_id=7, name="addcard")
    if damaged == "draft":  # e.g. written by a version whose classes are gone
        await conversation_store(storage).save_conversations({}, {zhao: b"\x80\x05junk"}, at=NOW)
    else:
        await conversation_store(storage).save_conversations({zhao: "{not json"}, {}, at=NOW)

    with caplog.at_level(logging.WARNING):
        async with running_bot(settings, storage) as app:
            # Zhao's conversation is gone as a whole (no step carried on without its draft)
            answer = texts(await driver(app, emulator, 7).send("2027-01-31"))
            assert ASK_CARRIER not in answer
            assert NOT_IN_A_CONVERSATION in answer
            assert "第 1 步" in texts(await driver(app, emulator, 7).send("/addcard"))
            # Qian's goes on
            assert ASK_CARRIER in texts(await driver(app, emulator, 8).send("2027-01-31"))
    said = unreadable(caplog)
    assert len(said) == 1, said
    assert "addcard" in said[0]
    assert "user 7" in said[0]

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        async with running_bot(settings, storage) as app:  # said once: the row is gone
            assert "第 2 步" in texts(await driver(app, emulator, 7).send(iccid(1)))
    assert unreadable(caplog) == []


async def test_the_old_conversations_file_is_imported_once(
    emulator: BotApiEmulator,
    storage: Storage,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(emulator, tmp_path)
    old = conversations_path(settings.database_path)
    shutil.copy(OLD_FILE, old)

    with caplog.at_level(logging.INFO):
        async with running_bot(settings, storage) as app:
            # Zhao's answer is the expiry of the ICCID typed before the upgrade
            assert ASK_CARRIER in texts(await driver(app, emulator, 7).send("2027-01-31"))
            assert "Step 2" in texts(
                await driver(app, emulator, 8, language_code="en").send(iccid(2))
            )
    assert not old.exists()
    assert old.with_name(old.name + ".imported").read_bytes() == OLD_FILE.read_bytes()
    assert len([r for r in caplog.records if "imported" in r.getMessage()]) == 1

    shutil.copy(OLD_FILE, old)  # a stale copy put back by hand: the database's rows win
    async with running_bot(settings, storage) as app:
        zhao = driver(app, emulator, 7)
        assert "第 4 步" in texts(await zhao.press("中国移动"))  # where Zhao was, not step 2
        await zhao.press("跳过")
        await zhao.press("跳过")
        assert "已保存" in texts(await zhao.press("保存"))
    card = await storage.get_card_by_iccid(7, iccid(1))
    assert card is not None
    assert card.expiry.isoformat() == "2027-01-31"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
async def test_a_damaged_old_file_is_set_aside_and_the_bot_starts(
    emulator: BotApiEmulator,
    storage: Storage,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    settings = settings_for(emulator, tmp_path)
    whole = OLD_FILE.read_bytes()
    damaged = {"truncated": whole[: len(whole) // 2], "garbage": b"\x80\x05junk", "empty": b""}
    old = conversations_path(settings.database_path)
    old.write_bytes(damaged[damage])

    with caplog.at_level(logging.WARNING):
        async with running_bot(settings, storage) as app:
            chat = driver(app, emulator, 7)
            assert "流量卡管家" in texts(await chat.send("/start"))
            await chat.send("/addcard")
            assert ASK_EXPIRY in texts(await chat.send(iccid(1)))
    said = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(said) == 1, said
    assert old.with_name(old.name + ".damaged").read_bytes() == damaged[damage]
    assert not old.exists()  # nothing writes that file any more

    async with running_bot(settings, storage) as app:  # and the new conversation was kept
        assert ASK_CARRIER in texts(await driver(app, emulator, 7).send("2027-01-31"))


async def test_a_kill_9_loses_at_most_the_step_in_progress(
    tmp_path: Path, database_url: str | None
) -> None:
    """``python -m bot`` killed right after a step was answered: after a restart the
    conversation goes on from that step (the old pickle file was written every few seconds:
    a kill lost the conversation of the last seconds, /addcard included)."""
    database = tmp_path / "data" / "simwatch.sqlite3"
    async with BotApiEmulator(TOKEN) as emulator:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": emulator.base_url,
            "TELEGRAM_BASE_FILE_URL": emulator.base_file_url,
            "DATABASE_PATH": str(database),
            "LOG_LEVEL": "ERROR",
        }
        if database_url is not None:
            env["DATABASE_URL"] = database_url
        user = emulator.user(7, "Zhao")
        chat = emulator.private_chat(user)

        async def bot() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=tmp_path,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )

        async def say(text: str) -> str:
            emulator.message_update(chat, user, text)
            (answer,) = await emulator.wait_for_events(7, count=1, timeout=30)
            return answer.text or ""

        process = await bot()
        try:
            assert "第 1 步" in await say("/addcard")
            assert ASK_EXPIRY in await say(iccid(1))
        finally:
            process.send_signal(signal.SIGKILL)  # no shutdown, no last write
            await asyncio.wait_for(process.wait(), timeout=30)
        assert process.returncode == -signal.SIGKILL

        process = await bot()
        try:
            answer = await say("2027-01-31")
        finally:
            process.send_signal(signal.SIGINT)
            _, errors = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, errors.decode()
    # The answer is taken as the expiry of the ICCID typed before the kill. (Had the kill come
    # in the instant between the answer reaching Telegram and its step being written, that step
    # would be the one lost: the ICCID would be asked again. Never more than that step.)
    assert ASK_CARRIER in answer or ASK_ICCID_AGAIN in answer, answer
