"""Archived cards (停用) in the database, both backends: the flag, the lists that leave them out,
renewing one, and the reminder pass (with auto-renew) skipping them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cards_util import iccid

from bot.clock import FixedClock
from bot.models import CardDraft, Period, RenewalRule
from bot.reminders.compose import ReminderComposer
from storage.base import CardFilter, RenewalDraft, Storage
from storage.factory import stores_for

DAY = date(2026, 11, 25)
CHAT = 4242
ARCHIVED_AT = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


async def _cards(storage: Storage, offsets: list[int], **extra: object) -> list[int]:
    await storage.ensure_chat(CHAT, is_group=False)
    ids = []
    for n, days in enumerate(offsets):
        draft = CardDraft(iccid=iccid(n), expiry=DAY + timedelta(days=days), **extra)  # type: ignore[arg-type]
        ids.append((await storage.add_card(CHAT, draft, ARCHIVED_AT)).id)
    return ids


async def test_archive_and_restore_keep_the_first_date(storage: Storage) -> None:
    (card_id,) = await _cards(storage, [10])
    card = await storage.set_archived(CHAT, card_id, ARCHIVED_AT)
    assert card is not None
    assert card.archived
    assert card.archived_at == ARCHIVED_AT
    again = await storage.set_archived(CHAT, card_id, ARCHIVED_AT + timedelta(days=1))
    assert again is not None
    assert again.archived_at == ARCHIVED_AT
    restored = await storage.set_archived(CHAT, card_id, None)
    assert restored is not None
    assert not restored.archived
    assert await storage.set_archived(CHAT + 1, card_id, ARCHIVED_AT) is None  # not its chat


async def test_lists_leave_archived_cards_out_but_lookups_find_them(storage: Storage) -> None:
    ids = await _cards(storage, [5, 10, 400])
    await storage.set_archived(CHAT, ids[1], ARCHIVED_AT)
    assert await storage.count_cards(CHAT) == 2
    assert [c.id for c in await storage.list_cards(CHAT)] == [ids[0], ids[2]]
    soon = CardFilter(expiring_before=DAY + timedelta(days=30))
    assert [c.id for c in await storage.list_cards(CHAT, card_filter=soon)] == [ids[0]]
    assert [
        c.id for c in await storage.list_cards(CHAT, card_filter=CardFilter(archived=True))
    ] == [ids[1]]
    found = await storage.get_card_by_iccid(CHAT, iccid(1))
    assert found is not None
    assert found.archived
    assert [c.id for c in await storage.find_cards_by_suffix(CHAT, iccid(1)[-6:], 10)] == [ids[1]]


async def test_renewing_an_archived_card_restores_it(storage: Storage) -> None:
    (card_id,) = await _cards(storage, [-3])
    await storage.set_archived(CHAT, card_id, ARCHIVED_AT)
    renewal = RenewalDraft(
        renewed_at=ARCHIVED_AT,
        by_user_id=1,
        by_name="Alice",
        old_expiry=DAY - timedelta(days=3),
        new_expiry=DAY + timedelta(days=365),
        period=Period(months=12),
        rule=RenewalRule.RESTART,
    )
    assert await storage.renew_card(CHAT, card_id, renewal) is not None
    card = await storage.get_card(CHAT, card_id)
    assert card is not None
    assert not card.archived
    assert len(await storage.list_renewals(CHAT, card_id)) == 1


async def test_the_pass_skips_archived_cards_and_does_not_auto_renew_them(storage: Storage) -> None:
    # due today: a plain card, an archived one, and an archived card that would auto-renew
    ids = await _cards(storage, [0, 0])
    await storage.ensure_chat(CHAT, is_group=False)
    auto = await storage.add_card(
        CHAT,
        CardDraft(iccid=iccid(9), expiry=DAY, auto_renew=True, plan_period=Period(months=1)),
        ARCHIVED_AT,
    )
    await storage.set_archived(CHAT, ids[1], ARCHIVED_AT)
    await storage.set_archived(CHAT, auto.id, ARCHIVED_AT)
    clock = FixedClock(datetime.combine(DAY, time(10), ZoneInfo("Asia/Shanghai")))
    store = stores_for(storage).reminders
    stats = await ReminderComposer(store, clock, default_language="zh_CN").compose_for_date(DAY)
    assert (stats.cards_due, stats.auto_renewed) == (1, 0)
    _, cards = await store.digest_cards(CHAT, DAY)
    assert [card.id for card in cards] == [ids[0]]
    still = await storage.get_card(CHAT, auto.id)
    assert still is not None
    assert still.expiry == DAY
    assert await storage.list_renewals(CHAT, auto.id) == []
    # archived after the pass, before the digest went out: not in the digest either
    await storage.set_archived(CHAT, ids[0], ARCHIVED_AT)
    _, cards = await store.digest_cards(CHAT, DAY)
    assert cards == []


async def test_putting_back_a_card_that_expired_while_archived_records_no_renewals(
    storage: Storage,
) -> None:
    """Auto-renew would otherwise record a renewal, and a charge, for every month it was out
    of service: putting it back after its expiry turns auto-renew off instead."""
    plan = {"plan_period": Period(months=1), "plan_price_fen": 3000, "auto_renew": True}
    lapsed, current = await _cards(storage, [-200, 20], **plan)
    for card_id in (lapsed, current):
        await storage.set_archived(CHAT, card_id, ARCHIVED_AT)
    back = await storage.set_archived(CHAT, lapsed, None, restored_on=DAY)
    assert back is not None
    assert not back.auto_renew
    assert back.expiry == DAY - timedelta(days=200)  # as it was: renewing it is the user's
    still = await storage.set_archived(CHAT, current, None, restored_on=DAY)
    assert still is not None
    assert still.auto_renew  # not expired: nothing to catch up
    store = stores_for(storage).reminders
    now = datetime.combine(DAY + timedelta(days=1), time(10), ZoneInfo("Asia/Shanghai"))
    await ReminderComposer(store, FixedClock(now), default_language="zh_CN").compose_due()
    assert await storage.list_renewals(CHAT, lapsed) == []


async def test_a_merge_keeps_the_winning_cards_service_state(storage: Storage) -> None:
    """Group and supergroup both had the card: the later expiry wins, archived or not."""
    old, new = -4646, -1004646
    for chat in (old, new):
        await storage.ensure_chat(chat, is_group=True)
    live = await storage.add_card(
        old, CardDraft(iccid=iccid(1), expiry=DAY + timedelta(days=300)), ARCHIVED_AT
    )
    stale = await storage.add_card(
        new, CardDraft(iccid=iccid(1), expiry=DAY - timedelta(days=30)), ARCHIVED_AT
    )
    await storage.set_archived(new, stale.id, ARCHIVED_AT)
    assert live.id != stale.id
    await stores_for(storage).reminders.migrate_chat(old, new)
    merged = await storage.get_card_by_iccid(new, iccid(1))
    assert merged is not None
    assert merged.expiry == DAY + timedelta(days=300)
    assert not merged.archived  # the renewed, live copy won: it keeps reminding


async def test_a_backdated_renewal_restoring_an_archived_card_turns_auto_renew_off(
    storage: Storage,
) -> None:
    await storage.ensure_chat(CHAT, is_group=False)
    card = await storage.add_card(
        CHAT,
        CardDraft(
            iccid=iccid(77),
            expiry=date(2026, 6, 1),
            auto_renew=True,
            plan_period=Period(months=1),
            plan_price_fen=3000,
        ),
        ARCHIVED_AT,
    )
    await storage.set_archived(CHAT, card.id, ARCHIVED_AT)
    draft = RenewalDraft(
        renewed_at=ARCHIVED_AT,
        by_user_id=1,
        by_name="Boss",
        old_expiry=card.expiry,
        new_expiry=date(2026, 8, 1),  # paid in July, entered now: still past
        period=Period(months=1),
        rule=RenewalRule.EXTEND,
    )
    assert await storage.renew_card(CHAT, card.id, draft) is not None
    back = await storage.get_card(CHAT, card.id)
    assert back is not None
    assert not back.archived
    assert not back.auto_renew
