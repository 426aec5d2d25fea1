"""The reminder pass against the database (SQLite and PostgreSQL): one digest a day, catch-up,
snooze and mute, auto-renew, time zones and their send times, dry runs, and the SQL agreeing
with the reference rules."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from db_rows import fetch, fetch_one, snapshot

from bot.clock import FixedClock
from bot.models import Card, CardDraft, Period, RenewalRule
from bot.reminders.compose import ReminderComposer
from bot.reminders.models import ReminderSettings, notes_from_json
from bot.reminders.service import ActionStatus, ReminderService
from bot.reminders.thresholds import due_level
from storage.base import RenewalDraft, Storage
from storage.factory import stores_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 25)
CHAT = -100500
OTHER = 1001


def at(day: date, hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> FixedClock:
    return FixedClock(datetime.combine(day, time(hour, minute), zone))


class World:
    """A database with a composer whose clock tests move."""

    def __init__(self, storage: Storage, clock: FixedClock) -> None:
        self.storage = storage
        self.store = stores_for(storage).reminders
        self.clock = clock
        self.composer = ReminderComposer(self.store, clock, default_language="zh_CN")
        self.service = ReminderService(storage, self.store, clock)
        self._n = 0

    def move(self, to: FixedClock) -> None:
        self.clock.instant = to.instant

    async def chat(self, chat_id: int = CHAT, timezone: str = "Asia/Shanghai") -> None:
        settings = await self.storage.ensure_chat(chat_id, is_group=chat_id < 0)
        await self.storage.save_chat(settings.model_copy(update={"timezone": timezone}))

    async def card(self, expiry: date, chat_id: int = CHAT, **extra: object) -> Card:
        self._n += 1
        draft = CardDraft(iccid=f"89860012345678{self._n:06d}", expiry=expiry, **extra)  # type: ignore[arg-type]
        return await self.storage.add_card(chat_id, draft, self.clock.now())

    async def due_on(self, day: date) -> list[int]:
        """Compose as of ``day`` (every chat); the ids of the cards reminded."""
        await self.composer.compose_for_date(day)
        return await self.reminded(day)

    async def reminded(self, day: date, chat_id: int = CHAT) -> list[int]:
        _, cards = await self.store.digest_cards(chat_id, day)
        return sorted(card.id for card in cards)

    async def digests(self) -> list[tuple[int, str]]:
        rows = await fetch(self.storage, "SELECT chat_id, digest_date FROM outbox ORDER BY id")
        return [(row[0], row[1]) for row in rows]


@pytest.fixture
async def world(storage: Storage) -> World:
    w = World(storage, at(DAY, 10))
    await w.chat()
    return w


async def test_two_passes_on_one_day_make_one_digest(world: World) -> None:
    card = await world.card(DAY + timedelta(days=3))
    first = await world.composer.compose_due()
    assert (first.chats, first.digests, first.cards_due) == (1, 1, 1)
    second = await world.composer.compose_due()
    assert (second.chats, second.digests) == (0, 0)
    assert await world.digests() == [(CHAT, DAY.isoformat())]
    assert await world.reminded(DAY) == [card.id]


async def test_nothing_before_the_send_time(world: World) -> None:
    await world.card(DAY)
    world.move(at(DAY, 8, 59))
    assert (await world.composer.compose_due()).chats == 0
    world.move(at(DAY, 9, 0))
    assert (await world.composer.compose_due()).digests == 1


async def test_skipped_days_catch_up_with_one_reminder(world: World) -> None:
    expiry = DAY + timedelta(days=40)
    card = await world.card(expiry)
    assert await world.due_on(expiry - timedelta(days=31)) == []
    assert await world.due_on(expiry - timedelta(days=30)) == [card.id]
    # down from 29 to 6 days before: crossing 7 once, not 30 again, nothing twice
    assert await world.due_on(expiry - timedelta(days=5)) == [card.id]
    assert await world.due_on(expiry - timedelta(days=4)) == []
    assert await world.due_on(expiry - timedelta(days=3)) == [card.id]
    row = await fetch_one(
        world.storage, "SELECT level FROM reminder_log WHERE card_id = ?", card.id
    )
    assert row is not None
    assert row[0] == 3


async def test_a_card_that_crossed_30_and_7_while_down_is_reminded_once_at_7(world: World) -> None:
    card = await world.card(DAY + timedelta(days=6))
    stats = await world.composer.compose_due()
    assert stats.cards_due == 1
    _, [due] = await world.store.digest_cards(CHAT, DAY)
    assert (due.id, due.days_left) == (card.id, 6)
    row = await fetch_one(
        world.storage, "SELECT level FROM reminder_log WHERE card_id = ?", card.id
    )
    assert row is not None
    assert row[0] == 7


async def test_overdue_daily_for_90_days_then_quiet(world: World) -> None:
    card = await world.card(DAY)
    assert await world.due_on(DAY) == [card.id]
    for days in (1, 2, 10, 90):
        assert await world.due_on(DAY + timedelta(days=days)) == [card.id], days
    assert await world.due_on(DAY + timedelta(days=91)) == []


async def test_renewal_starts_a_new_cycle(world: World) -> None:
    card = await world.card(DAY + timedelta(days=7))
    assert await world.due_on(DAY) == [card.id]
    new_expiry = DAY + timedelta(days=40)
    renewed = await world.storage.renew_card(
        CHAT,
        card.id,
        RenewalDraft(
            renewed_at=world.clock.now(),
            by_user_id=None,
            by_name=None,
            old_expiry=card.expiry,
            new_expiry=new_expiry,
            period=None,
            rule=RenewalRule.SET_DATE,
        ),
    )
    assert renewed is not None
    assert await world.due_on(DAY + timedelta(days=1)) == []
    assert await world.due_on(new_expiry - timedelta(days=30)) == [card.id]


async def test_snooze_is_quiet_then_reminds_again(world: World) -> None:
    card = await world.card(DAY - timedelta(days=1))  # overdue: reminded daily
    chat = await world.storage.get_chat(CHAT)
    assert chat is not None
    assert await world.due_on(DAY) == [card.id]
    result = await world.service.snooze(chat, card.id, 3, digest_expiry=card.expiry)
    assert result.status is ActionStatus.DONE
    assert result.until == DAY + timedelta(days=3)
    assert await world.due_on(DAY + timedelta(days=1)) == []
    assert await world.due_on(DAY + timedelta(days=2)) == []
    assert await world.due_on(DAY + timedelta(days=3)) == [card.id]


async def test_snooze_one_day_reminds_tomorrow_even_without_a_new_threshold(world: World) -> None:
    card = await world.card(DAY + timedelta(days=7))
    chat = await world.storage.get_chat(CHAT)
    assert chat is not None
    assert await world.due_on(DAY) == [card.id]
    await world.service.snooze(chat, card.id, 1)
    assert await world.due_on(DAY + timedelta(days=1)) == [card.id]  # 6 days left, level 7
    assert await world.due_on(DAY + timedelta(days=2)) == []


async def test_mute_holds_until_unmuted(world: World) -> None:
    card = await world.card(DAY - timedelta(days=1))
    assert (await world.service.mute(CHAT, card.id)).status is ActionStatus.DONE
    assert (await world.service.mute(CHAT, card.id)).status is ActionStatus.ALREADY
    assert await world.due_on(DAY) == []
    assert await world.due_on(DAY + timedelta(days=1)) == []
    assert (await world.service.unmute(CHAT, card.id)).status is ActionStatus.DONE
    assert await world.due_on(DAY + timedelta(days=2)) == [card.id]


async def test_card_actions_are_scoped_to_the_chat(world: World) -> None:
    await world.chat(OTHER)
    theirs = await world.card(DAY, chat_id=OTHER)
    chat = await world.storage.get_chat(CHAT)
    assert chat is not None
    assert (await world.service.snooze(chat, theirs.id, 1)).status is ActionStatus.NOT_FOUND
    assert (await world.service.mute(CHAT, theirs.id)).status is ActionStatus.NOT_FOUND
    stale = await world.service.snooze(chat, theirs.id + 1000, 1)
    assert stale.status is ActionStatus.NOT_FOUND
    mine = await world.card(DAY)
    changed = await world.service.snooze(chat, mine.id, 1, digest_expiry=DAY - timedelta(days=30))
    assert changed.status is ActionStatus.CHANGED


async def test_auto_renew_rolls_forward_records_history_and_reports_it(world: World) -> None:
    monthly = {"plan_period": Period(months=1), "plan_price_fen": 3000, "auto_renew": True}
    today_card = await world.card(DAY, label="门店2", **monthly)
    late_card = await world.card(DAY - timedelta(days=40), **monthly)
    soon_card = await world.card(DAY + timedelta(days=5), **monthly)  # renews itself: no nagging
    plain = await world.card(DAY + timedelta(days=5))
    stats = await world.composer.compose_due()
    assert stats.auto_renewed == 2
    assert await world.reminded(DAY) == [plain.id]
    renewed = await world.storage.get_card(CHAT, today_card.id)
    assert renewed is not None
    assert renewed.expiry == date(2026, 12, 25)
    [record] = await world.storage.list_renewals(CHAT, today_card.id)
    assert record.automatic
    assert record.amount_fen == 3000
    assert record.rule is RenewalRule.EXTEND
    assert (record.old_expiry, record.new_expiry) == (DAY, date(2026, 12, 25))
    history = await world.storage.list_renewals(CHAT, late_card.id)
    assert [(r.old_expiry, r.new_expiry) for r in reversed(history)] == [
        (date(2026, 10, 16), date(2026, 11, 16)),
        (date(2026, 11, 16), date(2026, 12, 16)),
    ]
    assert await world.storage.list_renewals(CHAT, soon_card.id) == []
    row = await fetch_one(world.storage, "SELECT renewed FROM outbox WHERE chat_id = ?", CHAT)
    assert row is not None
    notes = sorted(notes_from_json(row[0]), key=lambda n: n.card_id)
    assert [(n.card_id, n.periods, n.charge_fen) for n in notes] == [
        (today_card.id, 1, 3000),
        (late_card.id, 2, 6000),
    ]


async def test_muted_auto_renewing_card_renews_quietly(world: World) -> None:
    card = await world.card(DAY, plan_period=Period(months=1), auto_renew=True)
    await world.service.mute(CHAT, card.id)
    stats = await world.composer.compose_due()
    assert (stats.auto_renewed, stats.digests) == (1, 0)


async def test_inactive_chats_are_skipped_until_they_come_back(world: World) -> None:
    await world.card(DAY)
    await world.store.deactivate_chat(
        CHAT, "Forbidden: bot was blocked by the user", at=world.clock.now()
    )
    assert (await world.composer.compose_due()).chats == 0
    assert await world.store.reactivate_chat(CHAT)
    assert not await world.store.reactivate_chat(CHAT)
    assert (await world.composer.compose_due()).digests == 1


async def test_chat_settings_change_send_time_days_and_window(world: World) -> None:
    card = await world.card(DAY + timedelta(days=14))
    custom = ReminderSettings(send_time=time(21, 0), days_before=(14, 2), overdue_daily_days=0)
    await world.service.save_settings(CHAT, custom)
    assert await world.service.settings(CHAT) == custom
    assert (await world.composer.compose_due()).chats == 0  # 10:00, sends at 21:00
    world.move(at(DAY, 21, 0))
    assert (await world.composer.compose_due()).cards_due == 1
    assert await world.reminded(DAY) == [card.id]
    assert await world.due_on(card.expiry + timedelta(days=1)) == []  # no overdue reminders


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # UTC-10: 09:00 on Nov 25 local is 19:00 UTC
        (
            "Pacific/Honolulu",
            datetime(2026, 11, 25, 18, 59, tzinfo=UTC),
            datetime(2026, 11, 25, 19, 0, tzinfo=UTC),
        ),
        # UTC+14: 09:00 on Nov 25 local is 19:00 UTC the day before
        (
            "Pacific/Kiritimati",
            datetime(2026, 11, 24, 18, 59, tzinfo=UTC),
            datetime(2026, 11, 24, 19, 0, tzinfo=UTC),
        ),
        # Berlin springs forward on 2026-03-29: 09:00 CEST is 07:00 UTC (08:00 the day before)
        (
            "Europe/Berlin",
            datetime(2026, 3, 29, 6, 59, tzinfo=UTC),
            datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
        ),
        # New York falls back on 2026-11-01: 09:00 EST is 14:00 UTC (13:00 the day before)
        (
            "America/New_York",
            datetime(2026, 11, 1, 13, 59, tzinfo=UTC),
            datetime(2026, 11, 1, 14, 0, tzinfo=UTC),
        ),
    ],
)
async def test_digest_comes_at_the_local_send_time(
    world: World, zone: str, before: datetime, after: datetime
) -> None:
    chat_id = -7000
    await world.chat(chat_id, timezone=zone)
    local_day = after.astimezone(ZoneInfo(zone)).date()
    card = await world.card(local_day + timedelta(days=3), chat_id=chat_id)
    world.clock.instant = before
    assert chat_id not in [c for c, _ in await world.digests()]
    await world.composer.compose_due()
    assert chat_id not in [c for c, _ in await world.digests()]
    world.clock.instant = after
    await world.composer.compose_due()
    assert (chat_id, local_day.isoformat()) in await world.digests()
    assert await world.reminded(local_day, chat_id) == [card.id]
    _, [due] = await world.store.digest_cards(chat_id, local_day)
    assert due.days_left == 3  # counted on the chat's calendar


async def test_a_send_time_that_does_not_exist_on_the_dst_day_still_comes(world: World) -> None:
    chat_id = -7001
    await world.chat(chat_id, timezone="Europe/Berlin")
    await world.service.save_settings(chat_id, ReminderSettings(send_time=time(2, 30)))
    await world.card(date(2026, 3, 30), chat_id=chat_id)
    world.clock.instant = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)  # 01:59 CET
    await world.composer.compose_due()
    assert chat_id not in [c for c, _ in await world.digests()]
    world.clock.instant = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST: 02:30 skipped
    await world.composer.compose_due()
    assert (chat_id, "2026-03-29") in await world.digests()


TABLES = ("cards", "renewals", "reminder_log", "outbox", "chat_reminders")


async def test_dry_run_changes_nothing(world: World) -> None:
    await world.card(DAY, plan_period=Period(months=1), auto_renew=True, plan_price_fen=100)
    await world.card(DAY + timedelta(days=3), label="收银台1")
    before = await snapshot(world.storage, *TABLES)
    stats = await world.composer.compose_due(dry_run=True)
    assert (stats.digests, stats.cards_due, stats.auto_renewed) == (1, 1, 1)
    [digest] = stats.composed
    assert "收银台1" in digest.parts[0].text
    assert "¥1.00" in digest.parts[0].text
    dated = await world.composer.compose_for_date(DAY + timedelta(days=1), dry_run=True)
    assert dated.digests == 1
    assert await snapshot(world.storage, *TABLES) == before
    assert (await world.composer.compose_due()).digests == 1  # the real one still happens


async def test_a_group_that_became_a_supergroup_keeps_everything(world: World) -> None:
    card = await world.card(DAY)
    await world.service.save_settings(CHAT, ReminderSettings(send_time=time(8, 0)))
    await world.composer.compose_due()
    new_id = -1000000100500
    await world.store.migrate_chat(CHAT, new_id)
    assert await world.storage.get_card(new_id, card.id) is not None
    assert await world.storage.get_chat(CHAT) is None
    assert (await world.service.settings(new_id)).send_time == time(8, 0)
    assert await world.digests() == [(new_id, DAY.isoformat())]
    assert await world.reminded(DAY, new_id) == [card.id]
    await world.store.migrate_chat(CHAT, new_id)  # reported twice: no harm


async def test_the_database_picks_exactly_what_the_rules_say(world: World) -> None:
    """Many cards, several settings and days: the SQL sent-log follows ``due_level``."""
    rng = random.Random(7)
    chats = {
        -1: ReminderSettings(),
        -2: ReminderSettings(days_before=(14, 5, 0), overdue_daily_days=10),
        -3: ReminderSettings(days_before=(60,), overdue_daily_days=0),
        -4: ReminderSettings(days_before=(3, 2, 1), overdue_daily_days=365),
    }
    cards: dict[int, tuple[int, date]] = {}
    for chat_id, settings in chats.items():
        await world.chat(chat_id)
        await world.service.save_settings(chat_id, settings)
        for _ in range(40):
            card = await world.card(DAY + timedelta(days=rng.randint(-120, 90)), chat_id=chat_id)
            cards[card.id] = (chat_id, card.expiry)
    logged: dict[int, int] = {}
    day = DAY
    for _ in range(12):
        day += timedelta(days=rng.randint(1, 9))
        expected = set()
        for card_id, (chat_id, expiry) in cards.items():
            level = due_level((expiry - day).days, chats[chat_id], logged.get(card_id))
            if level is not None:
                expected.add(card_id)
                logged[card_id] = level
        await world.composer.compose_for_date(day)
        got = set()
        for chat_id in chats:
            got.update(await world.reminded(day, chat_id))
        assert got == expected, day
