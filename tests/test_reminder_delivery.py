"""Delivering digests through the real python-telegram-bot ``Bot`` to the local Bot API emulator,
with Telegram's failures injected: flood control, blocked chats, bad requests, server errors,
timeouts, group migration, crashes around the send, and Telegram's rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from db_rows import fetch
from telegram import Bot

from bot.chats import Channel
from bot.clock import FixedClock
from bot.emulator import BotApiEmulator
from bot.models import Card, CardDraft, RenewalRule
from bot.reminders.compose import ReminderComposer
from bot.reminders.models import Keyboard
from bot.reminders.sender import Delivery, DrainStats, OutboxSender, SenderPolicy
from handlers.delivery import TelegramMessenger
from handlers.transport import AiohttpRequest
from storage.base import RenewalDraft, Storage
from storage.factory import open_stores
from storage.reminders import ReminderStore

TOKEN = "123456:TEST-TOKEN"
DAY = date(2026, 11, 25)
NOW = datetime.combine(DAY, time(10, 0), ZoneInfo("Asia/Shanghai"))
GROUP = -100500  # a supergroup
BASIC_GROUP = -4242  # an old-style group, about to become a supergroup
ALICE = 1001
BOB = 1002

FAST = SenderPolicy(
    messages_per_second=1000,
    backoff_base=0.01,
    claim=timedelta(minutes=10),
    later_base=timedelta(minutes=1),
)


class Crash(BaseException):
    """The process dying: nothing after it runs, not even ``except Exception``."""


class Sleeps:
    """A stand-in for ``asyncio.sleep`` that records waits instead of taking them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


class Setup:
    def __init__(
        self, path: Path, database_url: str | None, bot: Bot, emulator: BotApiEmulator
    ) -> None:
        self.path = path
        self.database_url = database_url
        self.bot = bot
        self.emulator = emulator
        self.clock = FixedClock(NOW)
        self.sleeps = Sleeps()
        self.storage: Storage
        self.store: ReminderStore
        self._n = 0

    async def open(self) -> None:
        """(Re)open the database, as a restarted process would."""
        stores = await open_stores(database_url=self.database_url, database_path=self.path)
        self.storage, self.store = stores.storage, stores.reminders

    def sender(self, policy: SenderPolicy = FAST, messenger: object | None = None) -> OutboxSender:
        return OutboxSender(
            self.store,
            {Channel.TELEGRAM: messenger or TelegramMessenger(self.bot)},  # type: ignore[dict-item]
            self.clock,
            policy,
            default_language="zh_CN",
            sleep=self.sleeps,
        )

    async def compose(self) -> None:
        await ReminderComposer(self.store, self.clock, default_language="zh_CN").compose_due()

    async def drain(self, policy: SenderPolicy = FAST) -> DrainStats:
        return await self.sender(policy).drain()

    async def chat(self, chat_id: int) -> None:
        if chat_id > 0:
            self.emulator.private_chat(self.emulator.user(chat_id, f"User{chat_id}"))
        else:
            self.emulator.group_chat(chat_id, "门店群", supergroup=chat_id < -100000)
        await self.storage.ensure_chat(chat_id, is_group=chat_id < 0)

    async def card(self, chat_id: int, days_left: int = 3, label: str | None = None) -> Card:
        self._n += 1
        draft = CardDraft(
            iccid=f"89860012345678{self._n:06d}",
            expiry=DAY + timedelta(days=days_left),
            label=label,
        )
        return await self.storage.add_card(chat_id, draft, self.clock.now())

    async def due(self, *chat_ids: int, days_left: int = 3) -> list[Card]:
        """One due card in each chat, and the digests composed: the outbox holds one each."""
        cards = []
        for chat_id in chat_ids:
            await self.chat(chat_id)
            cards.append(await self.card(chat_id, days_left))
        await self.compose()
        return cards

    def texts(self, chat_id: int) -> list[str]:
        return [m.text or "" for m in self.emulator.chat_messages(chat_id)]

    def sends_to(self, chat_id: int) -> int:
        return sum(
            1 for call in self.emulator.calls_to("sendMessage") if call.params["chat_id"] == chat_id
        )

    async def statuses(self) -> list[tuple[int, str, str | None]]:
        rows = await fetch(self.storage, "SELECT chat_id, status, error FROM outbox ORDER BY id")
        return [(row[0], row[1], row[2]) for row in rows]


@pytest.fixture
async def setup(
    emulator: BotApiEmulator,
    tmp_path: Path,
    database_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Setup]:
    # PTB warns on RetryAfter.retry_after unless opted in to timedelta (the bot should opt in)
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    # The transport the bot ships with; short timeouts so injected hangs end quickly.
    request = AiohttpRequest(8, read_timeout=0.3, connect_timeout=1.0)
    bot = Bot(
        TOKEN, base_url=emulator.base_url, base_file_url=emulator.base_file_url, request=request
    )
    async with bot:
        s = Setup(tmp_path / "db.sqlite3", database_url, bot, emulator)
        await s.open()
        yield s
        await s.storage.close()


async def test_digests_reach_their_chats_once(setup: Setup) -> None:
    for chat_id in (GROUP, ALICE):
        await setup.chat(chat_id)
    group_card = await setup.card(GROUP, 3, "收银台1")
    alice_card = await setup.card(ALICE, -2)
    await setup.compose()
    stats = await setup.drain()
    assert (stats.sent, stats.failed, stats.waiting) == (2, 0, 0)
    [group_message] = setup.emulator.chat_messages(GROUP)
    assert group_message.text is not None
    assert "3 天后到期 · …" in group_message.text
    assert "收银台1" in group_message.text
    assert (f"✅ 1. …{group_card.iccid[-6:]} 已续费", f"rn:{group_card.id}") in [
        tuple(b) for row in group_message.buttons for b in row
    ]
    [alice_message] = setup.emulator.chat_messages(ALICE)
    assert alice_card.iccid in (alice_message.text or "")  # private: the whole number
    assert "已停机 2 天" in (alice_message.text or "")
    assert (await setup.drain()).sent == 0
    await setup.compose()
    assert (await setup.drain()).sent == 0
    assert [status for _, status, _ in await setup.statuses()] == ["sent", "sent"]


async def test_flood_control_waits_as_told_then_delivers_once(setup: Setup) -> None:
    await setup.due(GROUP)
    setup.emulator.inject_fault("sendMessage", kind="429", chat_id=GROUP, retry_after=2)
    stats = await setup.drain()
    assert stats.sent == 1
    assert 2.0 in setup.sleeps.waits
    assert len(setup.texts(GROUP)) == 1
    assert setup.sends_to(GROUP) == 2


async def test_a_long_retry_after_waits_in_the_outbox_without_holding_others(
    setup: Setup,
) -> None:
    await setup.due(GROUP, ALICE)
    setup.emulator.inject_fault("sendMessage", kind="429", chat_id=GROUP, retry_after=120)
    stats = await setup.drain()
    assert (stats.sent, stats.waiting) == (1, 1)
    assert len(setup.texts(ALICE)) == 1
    assert setup.texts(GROUP) == []
    assert (await setup.drain()).sent == 0  # not before it was told
    setup.clock.instant += timedelta(minutes=2, seconds=1)
    assert (await setup.drain()).sent == 1
    assert len(setup.texts(GROUP)) == 1


async def test_blocked_chat_goes_quiet(setup: Setup) -> None:
    await setup.due(ALICE, BOB, days_left=-1)
    setup.emulator.set_blocked(ALICE)
    stats = await setup.drain()
    assert (stats.sent, stats.blocked_chats) == (1, 1)
    assert not await setup.store.is_active(ALICE)
    assert (ALICE, "dropped", "Forbidden: bot was blocked by the user") in await setup.statuses()
    # the next days: no digest composed for Alice, none sent
    setup.clock.instant += timedelta(days=1)
    await setup.compose()
    await setup.drain()
    assert setup.sends_to(ALICE) == 1
    assert len(setup.texts(BOB)) == 2
    # Alice writes again (the activity hook's job, see test_reminder_handlers): back on
    await setup.store.reactivate_chat(ALICE)
    setup.emulator.set_blocked(ALICE, False)
    setup.clock.instant += timedelta(days=1)
    await setup.compose()
    await setup.drain()
    assert len(setup.texts(ALICE)) == 1


async def test_a_bad_request_is_recorded_and_the_pass_goes_on(setup: Setup) -> None:
    await setup.due(ALICE, BOB)
    setup.emulator.inject_fault(
        "sendMessage", kind="400", chat_id=ALICE, description="Bad Request: message is too long"
    )
    stats = await setup.drain()
    assert (stats.sent, stats.failed) == (1, 1)
    assert stats.errors == [(ALICE, "Message is too long")]
    assert (ALICE, "failed", "Message is too long") in await setup.statuses()
    assert len(setup.texts(BOB)) == 1
    assert (await setup.drain()).failed == 0  # given up on, not retried


async def test_server_errors_are_retried_with_backoff(setup: Setup) -> None:
    await setup.due(GROUP)
    setup.emulator.inject_fault("sendMessage", kind="500", chat_id=GROUP, times=2)
    stats = await setup.drain()
    assert stats.sent == 1
    assert setup.sleeps.waits == [0.01, 0.02]
    assert len(setup.texts(GROUP)) == 1


async def test_retries_are_bounded_then_the_message_waits_for_a_later_drain(setup: Setup) -> None:
    await setup.due(GROUP)
    setup.emulator.inject_fault("sendMessage", kind="502", chat_id=GROUP, times=100)
    stats = await setup.drain()
    assert (stats.sent, stats.waiting) == (0, 1)
    assert setup.sends_to(GROUP) == FAST.transient_attempts
    assert [status for _, status, _ in await setup.statuses()] == ["pending"]
    setup.emulator.clear_faults()
    assert (await setup.drain()).sent == 0  # backing off
    setup.clock.instant += FAST.later_base
    assert (await setup.drain()).sent == 1


async def test_timeouts_are_retried(setup: Setup) -> None:
    await setup.due(ALICE)
    setup.emulator.inject_fault("sendMessage", kind="timeout", chat_id=ALICE)
    stats = await setup.drain()
    assert stats.sent == 1
    assert len(setup.texts(ALICE)) == 1


async def test_group_upgraded_to_supergroup_gets_its_digest_at_the_new_id(setup: Setup) -> None:
    [card] = await setup.due(BASIC_GROUP)
    new_id = setup.emulator.upgrade_to_supergroup(BASIC_GROUP)["id"]
    stats = await setup.drain()
    assert (stats.sent, stats.migrated_chats) == (1, 1)
    assert len(setup.texts(new_id)) == 1
    assert await setup.storage.get_chat(BASIC_GROUP) is None
    assert await setup.storage.get_card(new_id, card.id) is not None
    assert await setup.statuses() == [(new_id, "sent", None)]


async def test_crash_between_enqueue_and_send_delivers_exactly_once(setup: Setup) -> None:
    await setup.due(GROUP, ALICE)
    await setup.storage.close()  # the process dies; nothing in memory survives
    await setup.open()
    await setup.compose()  # the restarted bot's first tick
    assert (await setup.drain()).sent == 2
    assert len(setup.texts(GROUP)) == 1
    assert len(setup.texts(ALICE)) == 1


class CrashAfterSend:
    """Telegram accepts the message, then the process dies before recording it."""

    def __init__(self, inner: TelegramMessenger) -> None:
        self.inner = inner

    async def send(self, chat_id: int, text: str, buttons: Keyboard) -> Delivery:
        await self.inner.send(chat_id, text, buttons)
        raise Crash


async def test_crash_between_send_and_acknowledgement_repeats_only_that_message(
    setup: Setup,
) -> None:
    await setup.due(GROUP, ALICE)
    one_at_a_time = SenderPolicy(concurrency=1, messages_per_second=1000)
    crashing = setup.sender(one_at_a_time, CrashAfterSend(TelegramMessenger(setup.bot)))
    with pytest.raises(Crash):
        await crashing.drain()
    await setup.storage.close()
    await setup.open()
    first = await setup.drain()  # the other chat; the crashed sender's claim still holds
    assert (first.sent, first.skipped) == (1, 0)
    setup.clock.instant += one_at_a_time.claim
    assert (await setup.drain()).sent == 1
    assert sorted(len(setup.texts(c)) for c in (GROUP, ALICE)) == [1, 2]


async def test_a_lost_answer_is_the_only_way_to_a_duplicate(setup: Setup) -> None:
    await setup.due(ALICE)
    setup.emulator.inject_fault("sendMessage", kind="lost_response", chat_id=ALICE)
    assert (await setup.drain()).sent == 1
    assert len(setup.texts(ALICE)) == 2  # Telegram had it; we could not know


async def test_a_long_digest_arrives_in_several_valid_messages(setup: Setup) -> None:
    await setup.chat(GROUP)
    cards = [await setup.card(GROUP, n % 30 - 3, f"<门店&{n}>") for n in range(45)]
    await setup.compose()
    assert (await setup.drain()).sent == 3
    messages = setup.emulator.chat_messages(GROUP)
    assert len(messages) == 3
    for number, message in enumerate(messages, start=1):
        assert f"{number}/3" in (message.text or "").splitlines()[0]
    pressed = sorted(
        int(data[3:])
        for m in messages
        for row in m.buttons
        for _, data in row
        if data and data.startswith("rn:")
    )
    assert pressed == sorted(card.id for card in cards)


async def test_renewed_meanwhile_is_left_out_and_an_empty_digest_is_not_sent(
    setup: Setup,
) -> None:
    [card] = await setup.due(ALICE)
    await setup.store.set_muted(ALICE, card.id, True)
    stats = await setup.drain()
    assert (stats.sent, stats.dropped) == (0, 1)
    assert setup.texts(ALICE) == []


async def test_telegram_limits_are_respected(setup: Setup) -> None:
    setup.emulator.enable_rate_limits(global_per_second=30, group_per_minute=20)
    chats = [ALICE + n for n in range(35)]
    await setup.due(*chats)
    paced = OutboxSender(  # real sleeps: the pacer spaces sends under 30/s
        setup.store,
        {Channel.TELEGRAM: TelegramMessenger(setup.bot)},
        setup.clock,
        SenderPolicy(messages_per_second=28),
        default_language="zh_CN",
    )
    stats = await paced.drain()
    assert stats.sent == 35
    assert setup.emulator.rate_limited_count == 0


async def test_one_slow_chat_does_not_hold_back_the_others(setup: Setup) -> None:
    chats = [ALICE + n for n in range(4)]
    await setup.due(*chats)
    setup.emulator.inject_fault("sendMessage", kind="slow", chat_id=chats[0], delay=0.25)
    await setup.drain()
    events = {e.chat_id: e.time for e in setup.emulator.take_events() if e.kind == "message"}
    assert set(events) == set(chats)
    assert all(events[c] < events[chats[0]] for c in chats[1:])


async def test_a_group_that_merges_into_its_supergroup_keeps_every_card_and_reminder(
    setup: Setup,
) -> None:
    """The supergroup wrote to the bot before its group's move was known (it has a row, a card
    of the group's and a digest for the day of its own): sending the group's digest learns of
    the move, and the two chats become one. Nothing is deleted; each card is reminded once."""
    storage = setup.storage
    await setup.chat(BASIC_GROUP)
    shared = "89860012345678999999"
    old_shared = await storage.add_card(
        BASIC_GROUP, CardDraft(iccid=shared, expiry=DAY), setup.clock.now()
    )
    assert await storage.renew_card(
        BASIC_GROUP, old_shared.id, renewal(DAY, DAY + timedelta(days=7))
    )
    await setup.card(BASIC_GROUP, 1, "后厨")
    new_id = setup.emulator.upgrade_to_supergroup(BASIC_GROUP)["id"]
    await setup.chat(new_id)
    new_shared = await storage.add_card(
        new_id, CardDraft(iccid=shared, expiry=DAY, label="收银台"), setup.clock.now()
    )
    assert await storage.renew_card(new_id, new_shared.id, renewal(DAY, DAY + timedelta(days=3)))
    await setup.card(new_id, 0, "前台")
    await setup.compose()  # a digest for each chat, for the same day
    stats = await setup.drain()
    assert stats.migrated_chats == 1
    assert await storage.get_chat(BASIC_GROUP) is None
    sent = setup.texts(new_id)
    assert len(sent) == 2
    joined = "\n".join(sent)
    assert (joined.count("后厨"), joined.count("前台")) == (1, 1)
    assert f"收银台 · 到期 {DAY + timedelta(days=7)}" in sent[-1]  # the merged card, as it is now
    assert [status for _, status, _ in await setup.statuses()] == ["sent", "sent"]
    # one card for the ICCID: the later expiry, the label the other had, both histories
    [card] = [c for c in await storage.list_cards(new_id, limit=10) if c.iccid == shared]
    assert (card.id, card.expiry, card.label) == (
        new_shared.id,
        DAY + timedelta(days=7),
        "收银台",
    )
    history = await storage.list_renewals(new_id, card.id)
    assert sorted(r.new_expiry for r in history) == [
        DAY + timedelta(days=3),
        DAY + timedelta(days=7),
    ]
    assert len(await storage.list_cards(new_id, limit=10)) == 3
    # the next day: what was reminded is not reminded again, what is due comes
    setup.clock.instant += timedelta(days=1)
    await setup.compose()
    assert (await setup.drain()).sent == 1
    [next_day] = setup.texts(new_id)[2:]
    assert "后厨" in next_day
    assert "前台" in next_day
    assert "收银台" not in next_day


def renewal(old: date, new: date) -> RenewalDraft:
    return RenewalDraft(
        renewed_at=NOW,
        by_user_id=BOB,
        by_name="Bob",
        old_expiry=old,
        new_expiry=new,
        period=None,
        rule=RenewalRule.SET_DATE,
    )
