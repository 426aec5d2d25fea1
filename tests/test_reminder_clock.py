"""A system clock that jumps ahead and back, through the real Application, its reminder pass and
its sender to the Bot API emulator: every reminder still comes on its real day, no card stays
auto-renewed before its real expiry day, and deliberate runs for another day keep working."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import cast

import pytest
from cards_util import iccid
from db_rows import fetch, fetch_one

from bot.app import AnyApplication
from bot.chatdriver import ChatDriver
from bot.chats import Channel
from bot.clock import FixedClock
from bot.emulator import BotApiEmulator
from bot.models import Card, CardDraft, Period
from bot.reminders.runner import ReminderRunner
from bot.reminders.sender import OutboxSender, SenderPolicy
from handlers.delivery import TelegramMessenger
from handlers.reminder_schedule import RUNNER_KEY
from storage.base import Storage

DAY = date(2026, 11, 25)  # conftest's NOW is 10:00 in Shanghai on this day
TICK = timedelta(minutes=1)


class Time:
    """The FixedClock the bot reads, and the time that really passes (the runner's monotonic
    clock): a jump moves the first only."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.elapsed = 0.0

    def monotonic(self) -> float:
        return self.elapsed

    def passes(self, delta: timedelta) -> None:
        self.clock.instant += delta
        self.elapsed += delta.total_seconds()

    def jumps(self, delta: timedelta) -> None:
        self.clock.instant += delta
        self.elapsed += TICK.total_seconds()

    def today(self) -> date:
        return (self.clock.instant + timedelta(hours=8)).date()


@pytest.fixture
def time(clock: FixedClock) -> Time:
    return Time(clock)


@pytest.fixture
def runner(app: AnyApplication, clock: FixedClock, time: Time) -> ReminderRunner:
    """The app's reminder pass, and a sender on the app's bot, ticked by the test with its
    monotonic clock (so that days pass for the chats' budgets too, and retries are quick)."""
    installed = cast(ReminderRunner, app.bot_data[RUNNER_KEY])
    sender = OutboxSender(
        installed.store,
        {Channel.TELEGRAM: TelegramMessenger(app.bot)},
        clock,
        SenderPolicy(messages_per_second=1000, backoff_base=0.01),
        default_language="zh_CN",
        monotonic=time.monotonic,
    )
    return ReminderRunner(
        installed.store, installed.composer, sender, clock, monotonic=time.monotonic
    )


async def add_card(storage: Storage, chat_id: int, n: int, expiry: date, **extra: object) -> Card:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    draft = CardDraft(iccid=iccid(n), expiry=expiry, **extra)  # type: ignore[arg-type]
    return await storage.add_card(chat_id, draft, datetime(2026, 11, 25, 2, 0, tzinfo=UTC))


def digests(emulator: BotApiEmulator, chat_id: int) -> list[str]:
    return [m.text or "" for m in emulator.chat_messages(chat_id)]


async def renewals(storage: Storage, card: Card) -> list[tuple[str, str]]:
    rows = await fetch(
        storage,
        "SELECT old_expiry, new_expiry FROM renewals WHERE card_id = ? ORDER BY id",
        card.id,
    )
    return [(row[0], row[1]) for row in rows]


async def day_by_day(
    runner: ReminderRunner, time: Time, emulator: BotApiEmulator, chat_id: int, days: int
) -> dict[date, str]:
    """Tick at 10:00 on each of the next ``days`` days; the digest each day brought."""
    brought = {}
    for _ in range(days):
        time.passes(timedelta(days=1))
        before = len(digests(emulator, chat_id))
        await runner.tick()
        new = digests(emulator, chat_id)[before:]
        if new:
            brought[time.today()] = "\n".join(new)
    return brought


async def two_cards(
    runner: ReminderRunner,
    time: Time,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> tuple[Card, Card]:
    """A card expiring in 5 days and one auto-renewing in 10; today's digest sent."""
    soon = await add_card(storage, alice.chat_id, 1, DAY + timedelta(days=5), label="收银台")
    auto = await add_card(
        storage,
        alice.chat_id,
        2,
        DAY + timedelta(days=10),
        label="前台",
        auto_renew=True,
        plan_period=Period(months=1),
        plan_price_fen=3000,
    )
    await runner.tick()
    [first] = digests(emulator, alice.chat_id)
    assert "收银台" in first
    assert "前台" not in first
    return soon, auto


def assert_real_days(brought: dict[date, str]) -> None:
    """From tomorrow on: 3, 1 and 0 days before the 5-day card's expiry, then daily after it;
    the auto-renewing card renews on its expiry day, in that day's digest."""
    reminded = sorted(day for day, text in brought.items() if "收银台" in text)
    expiry = DAY + timedelta(days=5)
    assert reminded == [expiry - timedelta(days=3), expiry - timedelta(days=1)] + [
        expiry + timedelta(days=n) for n in range(7)
    ]
    renewed = [day for day, text in brought.items() if "前台" in text]
    assert renewed == [DAY + timedelta(days=10)]
    assert "自动续费" in brought[DAY + timedelta(days=10)]


async def test_one_tick_thirty_days_ahead_does_nothing(
    runner: ReminderRunner,
    time: Time,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    _, auto = await two_cards(runner, time, emulator, alice, storage)
    time.jumps(timedelta(days=30))
    assert await runner.tick() is None  # not believed yet
    time.jumps(-timedelta(days=30))  # corrected before the next tick
    time.passes(TICK)
    assert await runner.tick() is not None
    assert len(digests(emulator, alice.chat_id)) == 1  # nothing was sent for the false day
    assert await renewals(storage, auto) == []
    assert_real_days(await day_by_day(runner, time, emulator, alice.chat_id, 11))


async def test_a_clock_ahead_for_a_while_is_undone_when_it_is_back(
    runner: ReminderRunner,
    time: Time,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    _, auto = await two_cards(runner, time, emulator, alice, storage)
    time.jumps(timedelta(days=30))
    await runner.tick()
    time.passes(TICK)
    await runner.tick()  # the jump held: believed, a digest for a day a month away went out
    wrong = digests(emulator, alice.chat_id)[1:]
    assert len(wrong) == 1
    assert "前台" in wrong[0]
    assert len(await renewals(storage, auto)) == 1
    time.jumps(-timedelta(days=30))  # the clock is back, still today
    assert await runner.tick() is None  # a jump back waits for the next tick to confirm it
    assert await renewals(storage, auto) != []
    time.passes(TICK)
    await runner.tick()
    card = await storage.get_card(alice.chat_id, auto.id)
    assert card is not None
    assert card.expiry == auto.expiry
    assert await renewals(storage, auto) == []
    assert len(digests(emulator, alice.chat_id)) == 2  # today's digest was not repeated
    assert_real_days(await day_by_day(runner, time, emulator, alice.chat_id, 11))
    assert await renewals(storage, auto) == [
        (auto.expiry.isoformat(), date(2027, 1, 5).isoformat())
    ]


async def test_a_deliberate_run_for_a_later_day_stays(
    runner: ReminderRunner,
    time: Time,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    """``remind --date`` (and the shell's ``:remind``) compose for another day at the real
    time: the next ticks keep what it did, as before."""
    _, auto = await two_cards(runner, time, emulator, alice, storage)
    later = DAY + timedelta(days=10)
    stats = await runner.composer.compose_for_date(later)
    assert (stats.digests, stats.auto_renewed) == (1, 1)
    await runner.sender.drain()
    assert len(digests(emulator, alice.chat_id)) == 2
    time.passes(timedelta(days=1))
    await runner.tick()
    assert len(await renewals(storage, auto)) == 1  # kept
    row = await fetch_one(
        storage, "SELECT composed_on FROM chat_reminders WHERE chat_id = ?", alice.chat_id
    )
    assert row is not None
    assert row[0] == later.isoformat()
    assert len(digests(emulator, alice.chat_id)) == 2


async def test_messages_held_by_a_clock_ahead_are_freed(
    runner: ReminderRunner,
    time: Time,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    """A digest that had to wait while the clock was ahead waits a minute, not a month."""
    await add_card(storage, alice.chat_id, 1, DAY + timedelta(days=3))
    await runner.composer.compose_due()  # today's digest, due to go out
    time.jumps(timedelta(days=30))
    emulator.inject_fault("sendMessage", kind="502", chat_id=alice.chat_id, times=100)
    stats = await runner.sender.drain()
    assert (stats.sent, stats.waiting) == (0, 1)  # backing off, from a month ahead
    emulator.clear_faults()
    time.jumps(-timedelta(days=30))
    time.passes(TICK)
    assert (await runner.sender.drain()).sent == 1
    assert len(digests(emulator, alice.chat_id)) == 1


async def test_a_clock_ahead_for_days_still_loses_no_reminder(
    runner: ReminderRunner,
    time: Time,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    """Two days' passes ahead: the sent-log keeps one previous entry, so the card's entry from
    before the jump is gone; recomputed as of today (at worst a reminder at a threshold it had
    reached repeats: here today's, already sent, so nothing), every real reminder comes."""
    _, auto = await two_cards(runner, time, emulator, alice, storage)
    time.jumps(timedelta(days=30))
    await runner.tick()
    for _ in range(2):
        time.passes(TICK)
        await runner.tick()
        time.passes(timedelta(days=1) - TICK)
    time.jumps(-timedelta(days=32))
    await runner.tick()
    time.passes(TICK)
    await runner.tick()
    assert await renewals(storage, auto) == []
    assert len(digests(emulator, alice.chat_id)) == 3  # today's, and the two days ahead
    assert_real_days(await day_by_day(runner, time, emulator, alice.chat_id, 11))


def fresh_runner(app: AnyApplication, clock: FixedClock, time: Time) -> ReminderRunner:
    """A runner as a restarted bot makes it: no memory of earlier ticks."""
    installed = cast(ReminderRunner, app.bot_data[RUNNER_KEY])
    sender = OutboxSender(
        installed.store,
        {Channel.TELEGRAM: TelegramMessenger(app.bot)},
        clock,
        SenderPolicy(messages_per_second=1000, backoff_base=0.01),
        default_language="zh_CN",
        monotonic=time.monotonic,
    )
    return ReminderRunner(
        installed.store, installed.composer, sender, clock, monotonic=time.monotonic
    )


async def test_a_clock_that_jumps_back_keeps_real_renewals(
    runner: ReminderRunner,
    time: Time,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    """The clock was right when the card auto-renewed on its real day; it then goes back a
    month (for one tick, then for good): the renewal stays, no digest for the false day."""
    _, auto = await two_cards(runner, time, emulator, alice, storage)
    await day_by_day(runner, time, emulator, alice.chat_id, 11)  # renews on DAY + 10
    renewed = [(auto.expiry.isoformat(), date(2027, 1, 5).isoformat())]
    assert await renewals(storage, auto) == renewed
    sent = len(digests(emulator, alice.chat_id))
    time.jumps(-timedelta(days=30))
    assert await runner.tick() is None  # a jump back waits for the next tick too
    time.jumps(timedelta(days=30))  # fixed before it
    time.passes(TICK)
    assert await runner.tick() is not None
    assert await renewals(storage, auto) == renewed
    time.jumps(-timedelta(days=30))  # now it goes back and stays back
    await runner.tick()
    time.passes(TICK)
    assert await runner.tick() is not None
    card = await storage.get_card(alice.chat_id, auto.id)
    assert card is not None
    assert card.expiry == date(2027, 1, 5)
    assert await renewals(storage, auto) == renewed
    assert len(digests(emulator, alice.chat_id)) == sent  # no "24 天后到期" for a renewed card
    time.jumps(timedelta(days=30))
    time.passes(TICK)
    await runner.tick()
    time.passes(TICK)
    await runner.tick()
    rows = await fetch(storage, "SELECT renewed_at FROM renewals WHERE card_id = ?", auto.id)
    assert len(rows) == 1  # not made again
    assert len(digests(emulator, alice.chat_id)) == sent


async def test_a_restart_while_the_clock_is_far_ahead_waits(
    app: AnyApplication,
    clock: FixedClock,
    time: Time,
    runner: ReminderRunner,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bot restarts while the clock is a month ahead (a board's clock before it syncs):
    the first tick composes, renews and sends nothing, and says why; the clock is fixed
    before the next tick, and every reminder still comes on its real day."""
    _, auto = await two_cards(runner, time, emulator, alice, storage)
    time.jumps(timedelta(days=30))
    restarted = fresh_runner(app, clock, time)
    assert await restarted.tick() is None
    assert "waiting for the next tick" in caplog.text
    assert len(digests(emulator, alice.chat_id)) == 1
    assert await renewals(storage, auto) == []
    time.jumps(-timedelta(days=30))
    assert await restarted.tick() is not None
    assert_real_days(await day_by_day(restarted, time, emulator, alice.chat_id, 11))


async def test_a_restart_far_ahead_that_holds_is_undone_when_the_clock_is_back(
    app: AnyApplication,
    clock: FixedClock,
    time: Time,
    runner: ReminderRunner,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    """Confirmed a minute later, the month-ahead clock is acted on, but its passes are marked:
    when it comes back (confirmed), they are undone and the card renews on its real day."""
    _, auto = await two_cards(runner, time, emulator, alice, storage)
    time.jumps(timedelta(days=30))
    restarted = fresh_runner(app, clock, time)
    assert await restarted.tick() is None
    time.passes(TICK)
    assert await restarted.tick() is not None
    assert len(await renewals(storage, auto)) == 1
    time.jumps(-timedelta(days=30))
    assert await restarted.tick() is None
    time.passes(TICK)
    assert await restarted.tick() is not None
    assert await renewals(storage, auto) == []
    assert_real_days(await day_by_day(restarted, time, emulator, alice.chat_id, 11))


async def test_a_bot_down_for_days_catches_up(
    app: AnyApplication,
    clock: FixedClock,
    time: Time,
    runner: ReminderRunner,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    """Down for four days (the clock right): the first tick waits, the next catches up."""
    await two_cards(runner, time, emulator, alice, storage)
    time.passes(timedelta(days=4))
    restarted = fresh_runner(app, clock, time)
    assert await restarted.tick() is None
    time.passes(TICK)
    assert await restarted.tick() is not None
    [caught_up] = digests(emulator, alice.chat_id)[1:]
    assert "收银台" in caught_up
    assert "明天到期" in caught_up


async def test_a_restart_with_the_clock_a_month_behind_keeps_real_renewals(
    app: AnyApplication,
    clock: FixedClock,
    time: Time,
    runner: ReminderRunner,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    storage: Storage,
) -> None:
    """A board whose clock restarts a month behind, and stays so: nothing the trusted clock
    did is taken back, and no digest goes out for the false day."""
    _, auto = await two_cards(runner, time, emulator, alice, storage)
    await day_by_day(runner, time, emulator, alice.chat_id, 11)
    renewed = await renewals(storage, auto)
    assert len(renewed) == 1
    sent = len(digests(emulator, alice.chat_id))
    time.jumps(-timedelta(days=30))
    restarted = fresh_runner(app, clock, time)
    assert await restarted.tick() is None
    time.passes(TICK)
    assert await restarted.tick() is not None
    assert await renewals(storage, auto) == renewed
    assert len(digests(emulator, alice.chat_id)) == sent
