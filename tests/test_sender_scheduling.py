"""How the outbox sender spends Telegram's limits: the overall pace with its burst, and a group
that has used its minute's budget stepping aside so private chats are not held up behind it.

The sender's clock and sleeps are virtual here (``VirtualTime``), so a minute's wait takes no
time; messages still go through python-telegram-bot to the emulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from db_rows import fetch
from telegram import Bot

from bot.chats import FOREIGN_ID_BASE, Channel, ChatAddress, ChatKind
from bot.clock import Clock
from bot.emulator import BotApiEmulator
from bot.models import CardDraft
from bot.reminders.compose import ReminderComposer
from bot.reminders.models import Keyboard
from bot.reminders.sender import (
    Delivery,
    DrainStats,
    Messenger,
    OutboxSender,
    SenderPolicy,
    Sent,
)
from handlers.delivery import TelegramMessenger
from handlers.transport import AiohttpRequest
from storage.base import Storage
from storage.factory import stores_for

TOKEN = "123456:TEST-TOKEN"
DAY = date(2026, 11, 25)
NOW = datetime.combine(DAY, time(10, 0), ZoneInfo("Asia/Shanghai"))
GROUP = -100500
ALICE = 1001


class VirtualTime:
    """``monotonic``/``sleep`` for the sender: a sleep moves the clock on at once (for every
    task: only sequences within one task are exact)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.meanwhile: Callable[[], Awaitable[None]] | None = None  # runs after each sleep

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.meanwhile is not None:
            await self.meanwhile()
        await asyncio.sleep(0)


class VirtualWall(Clock):
    """The wall clock (claims, sent times) moving with the virtual time."""

    def __init__(self, time: VirtualTime) -> None:
        self.time = time

    def now(self) -> datetime:
        return NOW + timedelta(seconds=self.time.now)


class Recorder:
    """The real messenger, noting the (virtual) time of each message it sends."""

    def __init__(self, inner: TelegramMessenger, clock: VirtualTime) -> None:
        self.inner = inner
        self.clock = clock
        self.sent: list[tuple[int, float]] = []

    async def send(self, chat_id: int, text: str, buttons: Keyboard) -> Delivery:
        self.sent.append((chat_id, self.clock.now))
        return await self.inner.send(chat_id, text, buttons)


class ChannelRecorder:
    """A messenger of another channel (WeCom's, say): notes each message and its (virtual)
    time, and accepts it."""

    def __init__(self, clock: VirtualTime) -> None:
        self.clock = clock
        self.sent: list[tuple[int, float, str]] = []

    async def send(self, chat_id: int, text: str, buttons: Keyboard) -> Delivery:
        self.sent.append((chat_id, self.clock.now, text))
        return Sent(len(self.sent))


class World:
    def __init__(self, storage: Storage, emulator: BotApiEmulator, bot: Bot) -> None:
        self.storage = storage
        self.store = stores_for(storage).reminders
        self.emulator = emulator
        self.time = VirtualTime()
        self.clock = VirtualWall(self.time)
        self.recorder = Recorder(TelegramMessenger(bot), self.time)
        self._n = 0

    async def due(self, chat_id: int, cards: int) -> None:
        if chat_id > 0:
            self.emulator.private_chat(self.emulator.user(chat_id, f"User{chat_id}"))
        else:
            self.emulator.group_chat(chat_id, "门店群", supergroup=True)
        await self.storage.ensure_chat(chat_id, is_group=chat_id < 0)
        for _ in range(cards):
            self._n += 1
            draft = CardDraft(iccid=f"89860012345678{self._n:06d}", expiry=DAY + timedelta(3))
            await self.storage.add_card(chat_id, draft, self.clock.now())

    async def wecom_due(self, kind: ChatKind, address: str, cards: int) -> int:
        """A WeCom chat (its id allocated as the bridge has it made) with ``cards`` due."""
        channels = stores_for(self.storage).channels
        chat_id = await channels.chat_id_for(ChatAddress(Channel.WECOM, kind, address), at=NOW)
        for _ in range(cards):
            self._n += 1
            draft = CardDraft(iccid=f"89860012345678{self._n:06d}", expiry=DAY + timedelta(3))
            await self.storage.add_card(chat_id, draft, self.clock.now())
        return chat_id

    def sender(
        self,
        policy: SenderPolicy,
        messenger: Messenger | None = None,
        *,
        wecom: Messenger | None = None,
    ) -> OutboxSender:
        messengers: dict[Channel, Messenger] = {Channel.TELEGRAM: messenger or self.recorder}
        if wecom is not None:
            messengers[Channel.WECOM] = wecom
        return OutboxSender(
            self.store,
            messengers,
            self.clock,
            policy,
            default_language="zh_CN",
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
        )

    async def drain(
        self, policy: SenderPolicy | OutboxSender, deadline: float | None = None
    ) -> DrainStats:
        """Compose what is due and drain the outbox (with a new sender, unless given one)."""
        await ReminderComposer(self.store, self.clock, default_language="zh_CN").compose_due()
        sender = policy if isinstance(policy, OutboxSender) else self.sender(policy)
        return await sender.drain(deadline=deadline)

    def texts(self, chat_id: int) -> list[str]:
        return [m.text or "" for m in self.emulator.chat_messages(chat_id)]


@pytest.fixture
async def world(storage: Storage) -> AsyncIterator[World]:
    async with BotApiEmulator(TOKEN) as emulator:
        bot = Bot(TOKEN, base_url=emulator.base_url, request=AiohttpRequest(8))
        async with bot:
            yield World(storage, emulator, bot)


async def test_pace_allows_a_burst_then_holds_the_rate(world: World) -> None:
    chats = [ALICE + n for n in range(12)]
    for chat_id in chats:
        await world.due(chat_id, 1)
    policy = SenderPolicy(concurrency=1, messages_per_second=10, burst=4)
    assert (await world.drain(policy)).sent == 12
    times = [at for _, at in world.recorder.sent]
    assert times[:4] == [0.0] * 4  # the burst goes out at once
    gaps = [later - earlier for earlier, later in pairwise(times[3:])]
    assert gaps == pytest.approx([0.1] * 8)  # then 10 a second
    assert all(len(world.texts(chat_id)) == 1 for chat_id in chats)


async def test_a_group_out_of_budget_steps_aside_for_private_chats(world: World) -> None:
    await world.due(GROUP, 45)  # three messages of up to 20 cards
    await world.due(ALICE, 1)
    # One worker, and a group budget of 2 a minute: the group's third message must wait.
    policy = SenderPolicy(concurrency=1, messages_per_second=1000, group_messages_per_minute=2)
    stats = await world.drain(policy)
    assert stats.sent == 4
    order = [chat_id for chat_id, _ in world.recorder.sent]
    assert order == [GROUP, GROUP, ALICE, GROUP]  # Alice is not kept waiting a minute
    group_times = [at for chat_id, at in world.recorder.sent if chat_id == GROUP]
    # The group's budget was kept: 2 at once, then one every 30 s (2 a minute).
    assert group_times[2] - group_times[1] >= 30
    texts = world.texts(GROUP)
    assert [text.splitlines()[0].count(f"{n}/3") for n, text in enumerate(texts, 1)] == [1, 1, 1]


async def test_a_group_wait_past_the_deadline_is_left_for_a_later_drain(world: World) -> None:
    await world.due(GROUP, 45)
    policy = SenderPolicy(concurrency=2, messages_per_second=1000, group_messages_per_minute=2)
    sender = world.sender(policy)  # one sender across ticks, as the runner has
    first = await world.drain(sender, deadline=20.0)
    assert first.sent == 2
    assert len(world.texts(GROUP)) == 2
    assert await world.store.count_pending() == 1  # claim handed back, not lost
    # The next tick, 10 s on: the group's budget did not start afresh with the new drain.
    world.time.now = 10.0
    assert (await world.drain(sender, deadline=25.0)).sent == 0
    world.time.now = 60.0
    assert (await world.drain(sender, deadline=105.0)).sent == 1
    assert len(world.texts(GROUP)) == 3
    assert "3/3" in world.texts(GROUP)[2].splitlines()[0]


async def test_what_was_sent_is_kept_in_the_outbox(world: World) -> None:
    # A one-message digest is stored together with its "sent" mark: the record of what a chat
    # was told (for looking into a complaint) must still be there, as for longer digests.
    await world.due(ALICE, 2)
    await world.due(GROUP, 45)
    world.emulator.inject_fault("sendMessage", kind="400", chat_id=ALICE + 1)
    await world.due(ALICE + 1, 1)  # Telegram refuses this one
    stats = await world.drain(SenderPolicy(messages_per_second=1000))
    assert (stats.sent, stats.failed) == (4, 1)
    rows = await fetch(
        world.storage,
        "SELECT chat_id, status, part, parts, text, message_id FROM outbox ORDER BY chat_id, part",
    )
    stored = {(r[0], r[2]): (r[1], r[3], r[4], r[5]) for r in rows}
    (alice,) = world.emulator.chat_messages(ALICE)
    status, parts, text, message_id = stored[(ALICE, 1)]
    assert (status, parts, message_id) == ("sent", 1, alice.message_id)
    assert text == alice.raw_text  # the HTML exactly as Telegram received it
    assert [stored[(GROUP, n)][:2] for n in (1, 2, 3)] == [("sent", 3)] * 3
    status, parts, text, _ = stored[(ALICE + 1, 1)]
    assert (status, parts) == ("failed", 1)
    assert text  # what Telegram refused, to see why


async def test_an_agents_long_private_digest_keeps_to_a_message_a_second(world: World) -> None:
    agent, shop = ALICE, ALICE + 1
    await world.due(agent, 100)  # five messages of 20 cards
    await world.due(shop, 1)
    policy = SenderPolicy(concurrency=1, messages_per_second=1000)
    assert (await world.drain(policy)).sent == 6
    order = [chat_id for chat_id, _ in world.recorder.sent]
    assert order == [agent, agent, shop, agent, agent, agent]  # the shop is not kept waiting
    at = [t for chat_id, t in world.recorder.sent if chat_id == agent]
    assert [round(later - earlier, 6) for earlier, later in pairwise(at[1:])] == [1.0] * 3
    assert len(world.texts(agent)) == 5


async def test_a_digest_longer_than_a_claim_is_still_sent_once(world: World) -> None:
    # An agent's digest takes longer to send (a message a second) than a claim lasts; the
    # claims are renewed as it goes, so another sender (``remind`` beside the running bot)
    # finds nothing to take over when the first claim would have lapsed.
    await world.due(ALICE, 100)  # five messages
    policy = SenderPolicy(
        concurrency=1,
        messages_per_second=1000,
        private_messages_per_second=0.1,  # one every 10 s
        private_burst=1,
        claim=timedelta(seconds=25),
    )
    other = world.sender(policy, TelegramMessenger(world.recorder.inner.bot))
    others: list[DrainStats] = []

    async def the_bots_tick() -> None:
        if world.time.now >= 30 and not others:  # past the first claims' 25 s
            others.append(await other.drain())

    world.time.meanwhile = the_bots_tick
    stats = await world.drain(policy)
    assert stats.sent == 5
    assert [o.sent for o in others] == [0]
    texts = world.texts(ALICE)
    assert len(texts) == 5
    assert len(set(texts)) == 5  # nothing sent twice


async def test_a_long_group_digest_at_the_default_limits_ends(world: World) -> None:
    # 60 messages to one group at 18 a minute: the drain waits out the group's budget in
    # small steps of floating-point time and must still come to an end.
    await world.due(GROUP, 1200)
    stats = await asyncio.wait_for(world.drain(SenderPolicy()), timeout=60)
    assert stats.sent == 60
    assert world.time.now == pytest.approx((60 - 18) * 60 / 18, abs=0.5)


async def test_each_chat_goes_through_its_own_channels_messenger(world: World) -> None:
    await world.due(ALICE, 1)
    await world.due(GROUP, 1)
    zhang = await world.wecom_due(ChatKind.PRIVATE, "zhangsan", 1)
    shop = await world.wecom_due(ChatKind.GROUP, "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", 1)
    wecom = ChannelRecorder(world.time)
    policy = SenderPolicy(messages_per_second=1000)
    stats = await world.drain(world.sender(policy, wecom=wecom))
    assert stats.sent == 4
    assert sorted(chat_id for chat_id, _ in world.recorder.sent) == [GROUP, ALICE]
    assert sorted(chat_id for chat_id, _, _ in wecom.sent) == [zhang, shop]
    assert min(zhang, shop) >= FOREIGN_ID_BASE
    assert (len(world.texts(ALICE)), len(world.texts(GROUP))) == (1, 1)
    # the WeCom group is a group by its kind (not its id's sign): its ICCIDs are masked
    texts = {chat_id: text for chat_id, _, text in wecom.sent}
    assert "89860012345678000003" in texts[zhang]
    assert "89860012345678000004" not in texts[shop]
    # marked sent with the message id WeCom's messenger gave
    handed = {chat_id: n for n, (chat_id, _, _) in enumerate(wecom.sent, start=1)}
    rows = await fetch(
        world.storage,
        "SELECT chat_id, status, message_id FROM outbox WHERE chat_id >= ?",
        FOREIGN_ID_BASE,
    )
    assert sorted(rows) == sorted((chat_id, "sent", n) for chat_id, n in handed.items())


async def test_without_a_wecom_messenger_its_chats_wait_for_a_sender_that_has_one(
    world: World,
) -> None:
    await world.due(ALICE, 1)
    zhang = await world.wecom_due(ChatKind.PRIVATE, "zhangsan", 1)
    policy = SenderPolicy(messages_per_second=1000)
    telegram_only = await world.drain(world.sender(policy))  # ``remind``, say
    assert (telegram_only.sent, telegram_only.waiting, telegram_only.errors) == (1, 0, [])
    assert [chat_id for chat_id, _ in world.recorder.sent] == [ALICE]
    # not read, so not tried: pending as the pass left it, no attempt counted
    rows = await fetch(
        world.storage, "SELECT status, attempts FROM outbox WHERE chat_id = ?", zhang
    )
    assert rows == [("pending", 0)]
    wecom = ChannelRecorder(world.time)
    both = world.sender(policy, wecom=wecom)
    assert (await world.drain(both)).sent == 1
    assert (await world.drain(both)).sent == 0
    assert (await world.drain(world.sender(policy))).sent == 0
    assert [chat_id for chat_id, _, _ in wecom.sent] == [zhang]  # exactly once
    assert [chat_id for chat_id, _ in world.recorder.sent] == [ALICE]
    assert await world.store.count_pending() == 0


@pytest.mark.parametrize("kind", [ChatKind.GROUP, ChatKind.PRIVATE])
async def test_a_wecom_chat_is_paced_by_wecoms_budget(world: World, kind: ChatKind) -> None:
    chat_id = await world.wecom_due(kind, "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", 200)  # 10 messages
    wecom = ChannelRecorder(world.time)
    # Telegram's budgets set far from WeCom's: a group's 2 a minute, a person's 10 a second
    policy = SenderPolicy(
        messages_per_second=1000,
        group_messages_per_minute=2,
        private_messages_per_second=10,
        private_burst=10,
        wecom_messages_per_minute=20,
        wecom_burst=5,
    )
    assert (await world.drain(world.sender(policy, wecom=wecom))).sent == 10
    times = [at for sent_to, at, _ in wecom.sent if sent_to == chat_id]
    assert times[:5] == [0.0] * 5  # WeCom's burst
    gaps = [later - earlier for earlier, later in pairwise(times[4:])]
    assert gaps == pytest.approx([3.0] * 5)  # then 20 a minute
