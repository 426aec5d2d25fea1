"""Chats don't wait for each other; one chat's updates are still handled one by one, in order.

Updates go the way Telegram's do: onto the application's ``update_queue``, fetched by the real
Application and handed to its update processor (``ChatDriver`` calls ``process_update``
directly, which would bypass the processor). A slow command is a real command held by a
test-only handler in an earlier group until the test opens it: the slowness is under the test's
control, not a race against a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cards_util import iccid
from conftest import ALICE, SHOP_GROUP, running_bot
from telegram import Update
from telegram.ext import TypeHandler

from bot.app import AnyApplication
from bot.chatdriver import ChatDriver, texts
from bot.config import Settings
from bot.emulator import BotApiEmulator
from handlers.updates import MAX_CONCURRENT_UPDATES, PerChatUpdateProcessor, lane_key
from storage.sqlite import SqliteStorage

ASK_ICCID = "第 1 步"
ASK_EXPIRY = "第 2 步"
NO_CARDS = "还没有登记任何流量卡"
HELP = "📖 命令"


class Gate:
    """Holds the first update of ``chat_id`` whose text is ``text`` until :meth:`open`."""

    def __init__(self, chat_id: int, text: str) -> None:
        self.chat_id, self.text = chat_id, text
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    async def __call__(self, update: Update, context: Any) -> None:
        message = update.effective_message
        if (
            not self.entered.is_set()
            and update.effective_chat is not None
            and update.effective_chat.id == self.chat_id
            and message is not None
            and message.text == self.text
        ):
            self.entered.set()
            await self.opened.wait()

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
async def gate(app: AnyApplication) -> AsyncIterator[Callable[[int, str], Gate]]:
    made: list[Gate] = []

    def make(chat_id: int, text: str) -> Gate:
        made.append(Gate(chat_id, text))
        # before every other group, so the real handlers run only once the gate opens
        app.add_handler(TypeHandler(Update, made[-1]), group=-1000)
        return made[-1]

    yield make
    for held in made:  # a failed test must not leave the application stuck at shutdown
        held.open()


async def arrive(driver: ChatDriver, text: str) -> None:
    """``text`` typed into the driver's chat, delivered as polling would: through the queue."""
    raw = driver.emulator.message_update(driver.chat, driver.user, text, enqueue=False)
    await driver.app.update_queue.put(Update.de_json(raw, driver.app.bot))


def processor(app: AnyApplication) -> PerChatUpdateProcessor:
    assert isinstance(app.update_processor, PerChatUpdateProcessor)
    return app.update_processor


async def test_a_slow_command_in_one_chat_does_not_delay_another_chat(
    app: AnyApplication,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    group: dict[str, ChatDriver],
    gate: Callable[[int, str], Gate],
) -> None:
    assert app.concurrent_updates == MAX_CONCURRENT_UPDATES
    slow = gate(alice.chat_id, "/cards")
    await arrive(alice, "/cards")
    await asyncio.wait_for(slow.entered.wait(), 5)

    await arrive(group["bob"], "/help")
    # the group is answered while Alice's /cards is still being worked on
    assert HELP in texts(await emulator.wait_for_events(SHOP_GROUP, timeout=5))
    assert emulator.take_events(alice.chat_id) == []

    slow.open()
    assert NO_CARDS in texts(await emulator.wait_for_events(alice.chat_id, timeout=5))


async def test_one_chats_updates_are_handled_in_order_even_when_the_first_is_slow(
    app: AnyApplication,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    group: dict[str, ChatDriver],
    gate: Callable[[int, str], Gate],
) -> None:
    slow = gate(alice.chat_id, "/addcard")
    await arrive(alice, "/addcard")
    await asyncio.wait_for(slow.entered.wait(), 5)
    await arrive(alice, iccid(1))  # typed before the bot asked: it answers the coming question
    await arrive(group["bob"], "/help")  # arrives after Alice's ICCID, so it is a sync point
    await emulator.wait_for_events(SHOP_GROUP, timeout=5)
    await emulator.wait_idle()
    assert emulator.take_events(alice.chat_id) == []  # the ICCID waits for /addcard
    assert processor(app).busy_chats == {alice.chat_id: 1}

    slow.open()
    asked, answered = await emulator.wait_for_events(alice.chat_id, count=2, timeout=5)
    assert ASK_ICCID in asked.text
    assert ASK_EXPIRY in answered.text  # the ICCID was taken as step 1's answer


async def test_a_chat_flooding_while_busy_does_not_lock_out_the_others(
    app: AnyApplication,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    group: dict[str, ChatDriver],
    gate: Callable[[int, str], Gate],
) -> None:
    slow = gate(alice.chat_id, "/cards")
    await arrive(alice, "/cards")
    await asyncio.wait_for(slow.entered.wait(), 5)
    flood = MAX_CONCURRENT_UPDATES + 6  # more than there are slots
    for _ in range(flood):
        await arrive(alice, "/help")

    await arrive(group["bob"], "/help")
    assert HELP in texts(await emulator.wait_for_events(SHOP_GROUP, timeout=5))

    slow.open()
    answers = await emulator.wait_for_events(alice.chat_id, count=flood + 1, timeout=10)
    assert NO_CARDS in answers[0].text
    assert all(HELP in answer.text for answer in answers[1:])


async def test_no_chat_is_remembered_once_its_updates_are_done(
    app: AnyApplication, emulator: BotApiEmulator, alice: ChatDriver, group: dict[str, ChatDriver]
) -> None:
    drivers = [alice, group["bob"], group["boss"]]
    for text in ("/start", "/cards", "/help"):
        for driver in drivers:
            await arrive(driver, text)
    await app.update_queue.join()  # every update processed, not just answered
    assert len(emulator.take_events(alice.chat_id)) == 3
    assert len(emulator.take_events(SHOP_GROUP)) == 6
    assert processor(app).busy_chats == {}


async def test_an_update_that_blows_up_does_not_wedge_its_chat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Straight on the processor: an error escaping an update's processing is logged, and the
    chat's next update still runs (its lane is not left behind, busy forever)."""
    lanes = PerChatUpdateProcessor()
    update = Update.de_json(
        {
            "update_id": 1,
            "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}},
        },
        None,
    )
    release, ran = asyncio.Event(), []

    async def blow_up() -> None:
        await release.wait()
        raise RuntimeError("boom")

    async def next_one() -> None:
        ran.append("next")

    first = asyncio.create_task(lanes.process_update(update, blow_up()))
    await asyncio.sleep(0)  # the first update is now running, holding the chat
    await lanes.process_update(update, next_one())  # queued behind it: returns at once
    assert (ran, lanes.busy_chats) == ([], {5: 1})
    release.set()
    await first
    assert ran == ["next"]
    assert lanes.busy_chats == {}
    assert "processing an update failed" in caplog.text


def test_updates_without_a_chat_are_ordered_by_their_user() -> None:
    user = {"id": ALICE, "is_bot": False, "first_name": "Alice"}
    inline = Update.de_json(
        {"update_id": 1, "inline_query": {"id": "1", "from": user, "query": "", "offset": ""}},
        None,
    )
    assert lane_key(inline) == ALICE
    assert lane_key(Update(update_id=2)) is None  # nobody's: runs freely
    assert lane_key("not an update") is None


async def test_concurrent_conversations_are_kept_apart_and_survive_a_restart(
    emulator: BotApiEmulator, storage: SqliteStorage, tmp_path: Path
) -> None:
    """Two people add a card at the same time, one of them slowly; their steps and drafts stay
    their own, and both go on after a restart (the persistence under concurrent updates)."""
    settings = Settings(
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=tmp_path / "simwatch.sqlite3",  # the storage fixture's database
    )
    zhao, qian = emulator.user(7, "Zhao"), emulator.user(8, "Qian")
    async with running_bot(settings, storage) as before:
        slow = Gate(7, "/addcard")
        before.add_handler(TypeHandler(Update, slow), group=-1000)
        drivers = [ChatDriver(before, emulator, emulator.private_chat(u), u) for u in (zhao, qian)]
        try:
            await arrive(drivers[0], "/addcard")
            await asyncio.wait_for(slow.entered.wait(), 5)
            await arrive(drivers[0], iccid(1))
            await arrive(drivers[1], "/addcard")
            await arrive(drivers[1], iccid(2))
            asked, answered = await emulator.wait_for_events(8, count=2, timeout=5)
            assert emulator.take_events(7) == []  # Qian went ahead while Zhao's /addcard was slow
        finally:
            slow.open()
        assert ASK_ICCID in asked.text
        assert ASK_EXPIRY in answered.text
        asked, answered = await emulator.wait_for_events(7, count=2, timeout=5)
        assert ASK_ICCID in asked.text
        assert ASK_EXPIRY in answered.text

    async with running_bot(settings, storage) as after:
        for n, user in ((1, zhao), (2, qian)):
            driver = ChatDriver(after, emulator, emulator.private_chat(user), user)
            # the next answer is the expiry of the card each of them typed before the restart
            assert "第 3 步" in texts(await driver.send("2027-01-31"))
            await driver.press("中国移动")
            await driver.press("跳过")
            await driver.press("跳过")
            assert "已保存" in texts(await driver.press("保存"))
            card = await storage.get_card_by_iccid(driver.chat_id, iccid(n))
            assert card is not None
            assert card.expiry == date(2027, 1, 31)
