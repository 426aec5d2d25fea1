"""What people type about a card, end to end: ICCIDs with look-alike letters, the carrier from
the ICCID's prefix, a plan at the end of one-line /addcard, empty periods, expiries too far off,
and masked ICCIDs on every group screen."""

from __future__ import annotations

from datetime import UTC, date, datetime

from cards_util import iccid
from icalendar import Calendar

from bot.chatdriver import ChatDriver, texts
from bot.emulator.records import ChatEvent
from bot.models import LATEST_EXPIRY, Card, CardDraft
from storage.sqlite import SqliteStorage

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def documents(events: list[ChatEvent]) -> list[ChatEvent]:
    return [event for event in events if event.kind == "document"]


async def add(storage: SqliteStorage, chat_id: int, n: int, expiry: date, **extra: object) -> Card:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    draft = CardDraft(iccid=iccid(n), expiry=expiry, label=f"T{n}", **extra)
    return await storage.add_card(chat_id, draft, CREATED)


# --- empty periods and expiries too far off ----------------------------------------------------


async def test_renew_by_zero_days_is_refused(alice: ChatDriver, storage: SqliteStorage) -> None:
    card = await add(storage, alice.chat_id, 1238, date(2027, 1, 31))
    said = texts(await alice.send(f"/renew {iccid(1238)[-4:]} 0天"))
    assert "0天" in said
    assert "确认续费" not in said
    assert alice.emulator.chat_messages(alice.chat_id)[-1].buttons == []
    assert await storage.get_card(alice.chat_id, card.id) == card
    assert await storage.list_renewals(alice.chat_id, card.id) == []


async def test_addcard_with_zero_days_says_so(alice: ChatDriver, storage: SqliteStorage) -> None:
    assert "0 天" in texts(await alice.send(f"/addcard {iccid(2)} 0天"))
    assert await storage.count_cards(alice.chat_id) == 0


async def test_renewing_past_the_latest_expiry_is_refused_politely(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 3, date(2100, 6, 30))
    said = texts(await alice.send(f"/renew {iccid(3)[-4:]} 10年"))
    assert LATEST_EXPIRY.isoformat() in said
    assert "太远" in said
    # the same question again: a shorter period still works
    confirm = texts(await alice.send("3个月"))
    assert "没看懂" not in confirm
    await alice.send("30")
    await alice.press("确认续费")
    renewed = await storage.get_card(alice.chat_id, card.id)
    assert renewed is not None
    assert renewed.expiry == date(2100, 9, 30)


async def test_a_card_at_the_end_of_time_breaks_nothing(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    """One such card (saved before expiries were bounded) used to crash /renew and /calendar."""
    card = await add(storage, alice.chat_id, 4, date.max)
    await add(storage, alice.chat_id, 5, date(2027, 1, 31))
    said = texts(await alice.send(f"/renew {iccid(4)[-4:]} 1个月"))
    assert LATEST_EXPIRY.isoformat() in said
    (ics,) = documents(await alice.send("/calendar"))
    events = Calendar.from_ical(ics.content or b"").walk("VEVENT")
    assert sorted(e.decoded("dtstart") for e in events) == [date(2027, 1, 31), date.max]
    assert "9999-12-31" in texts(await alice.send("/cards"))
    assert "9999-12-31" in texts(await alice.press_data(f"cd:{card.id}"))
    assert await storage.list_renewals(alice.chat_id, card.id) == []
    assert texts(await alice.send("/stats"))
    assert texts(await alice.send("/cost"))
