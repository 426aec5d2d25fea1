"""Digests delivered to push robots (WeCom, DingTalk, Feishu) through the real outbox sender, the
real robot client and the local robot emulator, beside the Telegram emulator: each robot gets
the day's digest once, in its own markdown, within its own rate limit, failing on its own.

Time runs fast (``ScaledTime``): the sender's sleeps, the wall clock the robots' budgets are
claimed by, and the emulator's clock (signatures, rate windows) all move together, so a robot's
20 messages a minute take three real seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic as real_monotonic
from zoneinfo import ZoneInfo

import pytest
from db_rows import fetch
from telegram import Bot

from bot.chats import Channel
from bot.clock import Clock
from bot.emulator import BotApiEmulator
from bot.models import CardDraft
from bot.reminders.compose import ReminderComposer
from bot.reminders.outcomes import Delivery
from bot.reminders.sender import DrainStats, OutboxSender, SenderPolicy
from bot.robots.client import RobotClient, payload_size
from bot.robots.delivery import PushGateway
from bot.robots.emulator import Fault, ReceivedMessage, RobotEmulator
from bot.robots.models import LIMITS, PushTarget, Robot, Service
from bot.robots.render import KEYWORD
from handlers.delivery import TelegramMessenger
from handlers.transport import AiohttpRequest
from storage.factory import Stores, open_stores

TOKEN = "123456:TEST-TOKEN"
DAY = date(2026, 11, 25)
NOW = datetime.combine(DAY, time(10, 0), ZoneInfo("Asia/Shanghai"))
ALICE = 1001
SHOP = -100500

WECOM = Robot(Service.WECOM, "0a1b2c3d-1111-2222-3333-444455556666")
DINGTALK = Robot(Service.DINGTALK, "d1" * 32)
DINGTALK_SECRET = "SEC" + "5" * 64
FEISHU = Robot(Service.FEISHU, "f0e1d2c3-aaaa-bbbb-cccc-ddddeeeeffff")
FEISHU_SECRET = "feishu-secret-0123456789"

# A crashed sender's claim lapses after 30 s (of the scaled time), not 10 minutes.
FAST = SenderPolicy(messages_per_second=1000, backoff_base=0.01, claim=timedelta(seconds=30))


class Crash(BaseException):
    """The process dying: nothing after it runs."""


class ScaledTime:
    """Time running ``factor`` times faster than real time, for the sender (its sleeps and
    monotonic clock), the wall clock and the emulator alike; ``jump`` moves it on at once.
    Concurrent sleeps stay exact (each is a real sleep, shortened), unlike a clock that each
    sleep moves on: a robot's slots keep their spacing as its many workers wait for them."""

    def __init__(self, factor: float = 20.0) -> None:
        self.factor = factor
        self.started = real_monotonic()
        self.offset = 0.0

    def monotonic(self) -> float:
        return (real_monotonic() - self.started) * self.factor + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.factor)

    def jump(self, seconds: float) -> None:
        self.offset += seconds


class ScaledWall(Clock):
    def __init__(self, time: ScaledTime) -> None:
        self.time = time

    def now(self) -> datetime:
        return NOW + timedelta(seconds=self.time.monotonic())


class Setup:
    def __init__(self, path: Path, url: str | None, bot: Bot, telegram: BotApiEmulator) -> None:
        self.path, self.url, self.bot, self.telegram = path, url, bot, telegram
        self.time = ScaledTime()
        self.clock = ScaledWall(self.time)
        self.robots = RobotEmulator(clock=lambda: NOW.timestamp() + self.time.monotonic(), slow=3.0)
        self.client: RobotClient
        self.stores: Stores
        self._n = 0

    async def open(self) -> None:
        self.stores = await open_stores(database_url=self.url, database_path=self.path)

    async def start(self) -> None:
        await self.robots.start()
        self.client = RobotClient(self.robots.bases(), timeout=1.0)
        await self.client.start()
        await self.open()

    async def close(self) -> None:
        await self.client.close()
        await self.stores.close()
        await self.robots.stop()

    def gateway(self) -> PushGateway:
        return PushGateway(self.stores.push, self.client, self.clock)

    def sender(self, gateway: object | None = None, policy: SenderPolicy = FAST) -> OutboxSender:
        return OutboxSender(
            self.stores.reminders,
            {Channel.TELEGRAM: TelegramMessenger(self.bot)},
            self.clock,
            policy,
            default_language="zh_CN",
            robots=gateway or self.gateway(),  # type: ignore[arg-type]
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
        )

    async def drain(self) -> DrainStats:
        return await self.sender().drain()

    async def compose(self) -> None:
        composer = ReminderComposer(self.stores.reminders, self.clock, default_language="zh_CN")
        await composer.compose_due()

    async def chat(self, chat_id: int, name: str = "老王的店") -> None:
        if chat_id > 0:
            self.telegram.private_chat(self.telegram.user(chat_id, name))
        else:
            self.telegram.group_chat(chat_id, name, supergroup=True)
        await self.stores.storage.ensure_chat(chat_id, is_group=chat_id < 0)

    async def cards(
        self, chat_id: int, count: int = 1, days_left: int = 3, label_prefix: str = "收银台"
    ) -> None:
        for _ in range(count):
            self._n += 1
            draft = CardDraft(
                iccid=f"89860012345678{self._n:06d}",
                expiry=DAY + timedelta(days=days_left),
                label=f"{label_prefix}{self._n}",
            )
            await self.stores.storage.add_card(chat_id, draft, self.clock.now())

    async def push(
        self,
        chat_id: int,
        robot: Robot,
        secret: str | None = None,
        *,
        keyword: str | None = None,
        name: str = "老王的店",
    ) -> PushTarget:
        if robot not in self.registered:
            self.robots.register(robot.service, robot.token, secret=secret, keyword=keyword)
            self.registered.add(robot)
        target = await self.stores.push.add_target(
            chat_id,
            robot,
            secret=secret,
            source_name=name,
            added_by=ALICE,
            at=self.clock.now(),
            is_group=chat_id < 0,
        )
        assert target is not None
        return target

    registered: set[Robot]

    def got(self, robot: Robot) -> list[ReceivedMessage]:
        return self.robots.received(robot.service, robot.token)

    def telegram_texts(self, chat_id: int) -> list[str]:
        return [m.text or "" for m in self.telegram.chat_messages(chat_id)]


@pytest.fixture
async def setup(
    tmp_path: Path, database_url: str | None, emulator: BotApiEmulator
) -> AsyncIterator[Setup]:
    request = AiohttpRequest(8)
    bot = Bot(TOKEN, base_url=emulator.base_url, request=request)
    await bot.initialize()
    env = Setup(tmp_path / "robots.sqlite3", database_url, bot, emulator)
    env.registered = set()
    try:
        await env.start()
        yield env
        await env.close()
    finally:
        await bot.shutdown()


async def test_each_robot_gets_the_days_digest_once_in_its_own_markdown(setup: Setup) -> None:
    await setup.chat(SHOP, "老王的店")
    await setup.cards(SHOP, 2)
    await setup.push(SHOP, WECOM)
    await setup.push(SHOP, DINGTALK, DINGTALK_SECRET, keyword=KEYWORD)
    await setup.push(SHOP, FEISHU, FEISHU_SECRET, keyword=KEYWORD)
    await setup.compose()
    stats = await setup.drain()
    assert stats.robots_sent == 3
    assert not stats.robot_errors
    assert len(setup.telegram_texts(SHOP)) == 1  # the chat's own digest, as before
    for robot in (WECOM, DINGTALK, FEISHU):
        (message,) = setup.got(robot)
        assert KEYWORD in message.text
        assert "收银台1" in message.text
        assert "收银台2" in message.text
        assert "89860012345678000001" not in message.text  # masked: the robot's group is a group
        assert "「老王的店」" in message.text
        assert "/renew" in message.text
        assert "✅" not in message.text  # no buttons, nothing to press
    assert setup.got(DINGTALK)[0].title
    assert setup.got(FEISHU)[0].raw["msg_type"] == "interactive"
    assert setup.got(WECOM)[0].raw["msgtype"] == "markdown"
    # the same day again, a tick later: nothing more anywhere
    setup.time.jump(120)
    await setup.compose()
    await setup.drain()
    assert [len(setup.got(robot)) for robot in (WECOM, DINGTALK, FEISHU)] == [1, 1, 1]
    assert len(setup.telegram_texts(SHOP)) == 1
    rows = await fetch(setup.stores.storage, "SELECT last_result FROM push_targets")
    assert {row[0] for row in rows} == {"ok"}


async def test_a_failing_robot_holds_back_neither_the_chat_nor_other_robots(
    setup: Setup,
) -> None:
    await setup.chat(SHOP)
    await setup.cards(SHOP)
    await setup.push(SHOP, WECOM)
    await setup.push(SHOP, FEISHU)
    setup.robots.fail(Service.WECOM, WECOM.token, Fault.HTTP_500, times=10)
    await setup.compose()
    stats = await setup.drain()
    assert len(setup.got(FEISHU)) == 1
    assert len(setup.telegram_texts(SHOP)) == 1
    assert setup.got(WECOM) == []
    assert stats.waiting == 1
    assert [(e.chat_id, e.target_id) for e in stats.robot_errors] == [(SHOP, 1)]
    assert await setup.stores.reminders.is_active(SHOP)  # the chat itself is not touched
    # the service recovers: the next drain, after the back-off, delivers it, once
    setup.robots.fail(Service.WECOM, WECOM.token, 0, times=0)
    setup.time.jump(600)
    await _heal(setup, WECOM)
    await setup.drain()
    assert len(setup.got(WECOM)) == 1
    assert len(setup.got(FEISHU)) == 1
    assert len(setup.telegram_texts(SHOP)) == 1


async def _heal(setup: Setup, robot: Robot) -> None:
    """Take back the faults still queued for ``robot``."""
    setup.robots._robot(robot.service, robot.token).faults.clear()


async def test_a_chat_that_blocked_the_bot_still_feeds_its_robots(setup: Setup) -> None:
    await setup.chat(ALICE)
    await setup.cards(ALICE)
    await setup.push(ALICE, WECOM)
    await setup.stores.reminders.deactivate_chat(ALICE, "Forbidden: blocked", at=setup.clock.now())
    await setup.compose()
    await setup.drain()
    assert setup.telegram_texts(ALICE) == []
    assert len(setup.got(WECOM)) == 1


async def test_a_refused_key_pauses_that_robot_and_tells_the_chat_once(setup: Setup) -> None:
    await setup.chat(SHOP)
    await setup.cards(SHOP, days_left=-2)  # overdue: reminded every day
    target = await setup.push(SHOP, DINGTALK, DINGTALK_SECRET)
    await setup.push(SHOP, FEISHU)
    setup.robots.fail(Service.DINGTALK, DINGTALK.token, 300001)  # the robot was removed
    await setup.compose()
    stats = await setup.drain()
    assert stats.paused_targets == 1
    assert len(setup.got(FEISHU)) == 1
    await setup.drain()  # the notice waits in the outbox for the next drain (the next tick)
    texts = setup.telegram_texts(SHOP)
    assert len(texts) == 2  # the digest, then the notice
    assert "钉钉机器人" in texts[1]
    assert DINGTALK.masked in texts[1]
    assert DINGTALK.token not in "".join(texts)
    paused = await setup.stores.push.target(target.id)
    assert paused is not None
    assert paused.paused
    # the next day: nothing goes to the paused robot, the chat is not told again
    setup.time.jump(86_400)
    await setup.compose()
    await setup.drain()
    assert setup.got(DINGTALK) == []
    assert len(setup.got(FEISHU)) == 2
    assert len(setup.telegram_texts(SHOP)) == 3


async def test_a_long_digest_is_split_to_the_services_limit_never_truncated(
    setup: Setup,
) -> None:
    await setup.chat(SHOP)
    await setup.cards(SHOP, 150)
    await setup.push(SHOP, WECOM)
    await setup.compose()
    await setup.drain()
    parts = setup.got(WECOM)
    assert len(parts) > 1
    for part in parts:
        assert len(part.text.encode()) <= LIMITS[Service.WECOM].max_bytes
        assert KEYWORD in part.text
    every = "\n".join(part.text for part in parts)
    assert sum(every.count(f"收银台{n} ·") for n in range(1, 151)) == 150  # each card once
    assert parts[-1].text.count("/renew") == 1
    assert "/renew" not in parts[0].text


async def test_a_robot_shared_by_25_chats_stays_under_its_limit(setup: Setup) -> None:
    chats = [-200_000 - n for n in range(25)]
    for n, chat_id in enumerate(chats):
        await setup.chat(chat_id, f"门店{n}")
        await setup.cards(chat_id)
        await setup.push(chat_id, DINGTALK, DINGTALK_SECRET, name=f"门店{n}")
    await setup.compose()
    stats = await setup.drain()
    got = setup.got(DINGTALK)
    assert len(got) == 25
    assert stats.robots_sent == 25
    assert setup.robots.total_refusals == 0  # never over 20 a minute, so never blocked
    assert {n for n in range(25) if any(f"「门店{n}」" in m.text for m in got)} == set(range(25))
    times = [m.at for m in got]
    assert max(sum(1 for u in times if t <= u < t + 60) for t in times) <= 20
    # 25 messages at the ceiling of 20 a minute: about 75 s, not much more
    assert got[-1].at - got[0].at <= 24 * LIMITS[Service.DINGTALK].interval + 5


async def test_two_senders_at_once_deliver_each_message_once(setup: Setup) -> None:
    for n in range(6):
        chat_id = -300_000 - n
        await setup.chat(chat_id, f"店{n}")
        await setup.cards(chat_id)
        await setup.push(chat_id, FEISHU, name=f"店{n}")
        await setup.push(chat_id, WECOM, name=f"店{n}")
    await setup.compose()
    first, second = setup.sender(), setup.sender()
    await asyncio.gather(first.drain(), second.drain())
    assert len(setup.got(FEISHU)) == 6
    assert len(setup.got(WECOM)) == 6
    assert sorted(m.text for m in setup.got(FEISHU)) == sorted(
        set(m.text for m in setup.got(FEISHU))
    )
    assert setup.robots.total_refusals == 0


class CrashAfterSend:
    """The real gateway; the process dies right after the robot accepted a message, before the
    outbox could mark it sent."""

    def __init__(self, inner: PushGateway) -> None:
        self.inner = inner
        self.target = inner.target
        self.claim_slot = inner.claim_slot

    async def send(self, target: PushTarget, title: str, text: str) -> Delivery:
        await self.inner.send(target, title, text)
        raise Crash


async def test_a_crash_between_send_and_mark_repeats_at_most_that_message(
    setup: Setup,
) -> None:
    await setup.chat(SHOP)
    await setup.cards(SHOP)
    await setup.push(SHOP, WECOM)
    await setup.push(SHOP, FEISHU)
    await setup.compose()
    # one worker: exactly one message is in flight when the process dies
    one_at_a_time = replace(FAST, concurrency=1, robot_concurrency=1)
    with pytest.raises(Crash):
        await setup.sender(CrashAfterSend(setup.gateway()), one_at_a_time).drain()
    crashed = len(setup.got(WECOM)) + len(setup.got(FEISHU))
    assert crashed == 1
    await setup.stores.close()
    await setup.open()  # restarted; the crashed sender's claim lapses after 30 s
    setup.time.jump(31)
    await setup.drain()
    # each robot has its digest; only the one in flight at the crash went twice
    assert {len(setup.got(WECOM)), len(setup.got(FEISHU))} <= {1, 2}
    assert len(setup.got(WECOM)) + len(setup.got(FEISHU)) == 3
    await setup.drain()
    assert len(setup.got(WECOM)) + len(setup.got(FEISHU)) == 3


async def test_a_rate_limit_answer_waits_and_nothing_is_lost(setup: Setup) -> None:
    await setup.chat(SHOP)
    await setup.cards(SHOP)
    await setup.push(SHOP, WECOM)
    setup.robots.fail(Service.WECOM, WECOM.token, 45009)
    await setup.compose()
    stats = await setup.drain()
    assert setup.got(WECOM) == []
    assert stats.waiting == 1
    setup.time.jump(120)
    await setup.drain()
    assert len(setup.got(WECOM)) == 1


async def test_the_digest_fits_what_each_service_measures() -> None:
    """The renderer's parts are within each service's limit as the client measures it."""
    from bot.reminders.digest import make_digest
    from bot.reminders.models import DigestChat, DueCard
    from bot.robots.render import render_robot_digest

    due = [
        DueCard(n, f"8986001234567890{n:04d}", "很长的标签" * 8, DAY, 0, 3000)
        for n in range(1, 400)
    ]
    digest = make_digest(DigestChat(SHOP, True, "zh_CN"), DAY, due, [], "zh_CN")
    for service in Service:
        parts = render_robot_digest(digest, service, "店")
        assert all(payload_size(service, part) <= LIMITS[service].max_bytes for part in parts)
        shown = sum(part.text.count(" · 到期 ") for part in parts)
        assert shown == len(due)


async def test_a_group_that_becomes_a_supergroup_keeps_its_robots(setup: Setup) -> None:
    basic, supergroup, other = -4242, -1004242, -4343
    await setup.chat(basic, "老店")
    await setup.cards(basic)
    await setup.push(basic, WECOM, name="老店")
    await setup.compose()  # the digest for today, not sent yet
    await setup.stores.reminders.migrate_chat(basic, supergroup)
    moved = await setup.stores.push.targets(supergroup)
    assert [target.robot for target in moved] == [WECOM]
    assert await setup.stores.push.targets(basic) == []
    setup.telegram.group_chat(supergroup, "老店", supergroup=True)
    await setup.drain()
    assert len(setup.got(WECOM)) == 1  # the pending robot digest followed the chat
    # Merging into a supergroup that has rows of its own: a robot both push to is kept once,
    # the others move over.
    await setup.chat(other, "二店")
    await setup.push(other, WECOM, name="二店")
    await setup.push(other, FEISHU, name="二店")
    await setup.stores.reminders.migrate_chat(other, supergroup)
    merged = await setup.stores.push.targets(supergroup)
    assert sorted(target.robot.service for target in merged) == [Service.FEISHU, Service.WECOM]


async def test_a_robot_many_chats_share_catches_up_tick_by_tick(setup: Setup) -> None:
    """The bot drains for 45 s a minute: a robot 50 chats share needs several drains. A slot
    past a drain's end is not claimed, so the robot's budget does not run away from the clock
    (claimed and unused, 50 slots a drain would push it on 150 s a minute) and each drain
    sends what fits, about 45 / 3.05."""
    chats = [-400_000 - n for n in range(50)]
    for n, chat_id in enumerate(chats):
        await setup.chat(chat_id, f"分店{n}")
        await setup.cards(chat_id)
        await setup.push(chat_id, WECOM, name=f"分店{n}")
    await setup.compose()
    per_tick = []
    while len(setup.got(WECOM)) < 50 and len(per_tick) < 6:
        before = len(setup.got(WECOM))
        await setup.sender().drain(deadline=setup.time.monotonic() + 45)
        per_tick.append(len(setup.got(WECOM)) - before)
        setup.time.jump(15)  # the next tick, a minute after this one began
    assert sum(per_tick) == 50
    assert len(per_tick) <= 4
    assert min(per_tick[:-1]) >= 12
    assert setup.robots.total_refusals == 0


async def test_another_senders_fresh_claim_is_not_taken_for_a_clock_ahead(
    setup: Setup,
) -> None:
    """A claim another sender took a moment ago, on a clock a few seconds ahead of this one,
    is live: freed, its message would go twice."""
    await setup.chat(SHOP)
    await setup.cards(SHOP)
    await setup.push(SHOP, WECOM)
    await setup.compose()
    store = setup.stores.reminders
    now = setup.clock.now()
    (robot_row,) = await store.pending(now=now, after_id=0, limit=10, robots=True)
    ahead = now + timedelta(seconds=5)
    assert await store.claim(robot_row.id, now=ahead, until=ahead + FAST.claim)
    await setup.drain()
    assert setup.got(WECOM) == []  # the other sender's
    assert (await store.held(now=setup.clock.now())).count == 1


async def test_a_robot_budget_set_by_a_clock_ahead_is_lifted(setup: Setup) -> None:
    await setup.chat(SHOP)
    await setup.cards(SHOP)
    await setup.push(SHOP, WECOM)
    await setup.compose()
    # a sender whose clock was a month ahead claimed the robot's next slot
    ahead = setup.clock.now() + timedelta(days=30)
    await setup.stores.push.claim_slot(WECOM, now=ahead, interval=3.05)
    await setup.sender().drain(deadline=setup.time.monotonic() + 45)
    assert len(setup.got(WECOM)) == 1


async def test_a_shared_robots_pending_digest_survives_a_merge(setup: Setup) -> None:
    """The old group's robot digest had not gone out (the service was down) while the
    supergroup's had: after the merge the old group's cards still reach the robot."""
    old, new = -4545, -1004545
    await setup.chat(old, "老店")
    await setup.chat(new, "老店")
    await setup.cards(old, label_prefix="旧")
    await setup.cards(new, label_prefix="新")
    await setup.push(old, WECOM, name="老店")
    await setup.push(new, WECOM, name="老店")
    await setup.compose()
    rows = await setup.stores.reminders.pending(
        now=setup.clock.now(), after_id=0, limit=10, robots=True
    )
    old_row = next(row for row in rows if row.chat_id == old)
    # the old group's robot digest waits (backing off); the supergroup's goes out
    await setup.stores.reminders.defer(old_row.id, until=setup.clock.now() + timedelta(minutes=5),
                                       error="timed out")  # fmt: skip
    await setup.drain()
    assert "新" in setup.got(WECOM)[0].text
    await setup.stores.reminders.migrate_chat(old, new)
    setup.time.jump(600)
    await setup.drain()
    assert any("旧" in message.text for message in setup.got(WECOM))


async def test_a_label_cannot_format_link_or_mention_in_the_group(setup: Setup) -> None:
    name = '店<at user_id="all">所有人</at>'
    label = "[点我](http://evil.example) <font color=red>**急**</font> "
    await setup.chat(SHOP, name)
    await setup.cards(SHOP, label_prefix=label)
    await setup.push(SHOP, WECOM, name=name)
    await setup.push(SHOP, FEISHU, name=name)
    await setup.compose()
    await setup.drain()
    for robot in (WECOM, FEISHU):
        (message,) = setup.got(robot)
        assert "点我" in message.text  # the label is shown...
        for markup in ("[点我](", "http://", "<font", "**急**", "<at"):
            assert markup not in message.text  # ...as text, never as markup
