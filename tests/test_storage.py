"""The storage on both backends: chat scoping, paging, optimistic renewal, two writers at once;
SQLite's schema migration."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.models import (
    CardDraft,
    CardEditDraft,
    Carrier,
    ChatSettings,
    EditField,
    Period,
    RenewalRule,
)
from storage.base import CardFilter, DuplicateCardError, RenewalDraft, SchemaTooNewError, Storage
from storage.factory import open_storage
from storage.migrate import LATEST_VERSION
from storage.sqlite import SqliteStorage

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def draft(iccid: str, expiry: date, **extra: object) -> CardDraft:
    return CardDraft(iccid=iccid, expiry=expiry, **extra)


async def test_new_database_is_migrated_to_latest_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "simwatch.sqlite3"
    storage = await SqliteStorage.open(path)
    await storage.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_database_newer_than_code_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(SchemaTooNewError, match="upgrade SimWatch"):
        await SqliteStorage.open(path)


async def test_cards_are_scoped_to_their_chat(storage: Storage) -> None:
    await storage.ensure_chat(1, is_group=False)
    await storage.ensure_chat(-2, is_group=True)
    card = await storage.add_card(1, draft("89860000000000000001", date(2027, 1, 1)), NOW)
    assert await storage.get_card(-2, card.id) is None
    assert not await storage.delete_card(-2, card.id)
    assert await storage.list_renewals(-2, card.id) == []
    # the same ICCID may live in another chat, but not twice in one
    await storage.add_card(-2, draft(card.iccid, date(2027, 1, 1)), NOW)
    with pytest.raises(DuplicateCardError) as raised:
        await storage.add_card(1, draft(card.iccid, date(2028, 1, 1)), NOW)
    assert raised.value.existing.id == card.id
    assert (await storage.get_card(1, card.id)) == card


async def test_listing_pages_by_expiry_and_filters(storage: Storage) -> None:
    await storage.ensure_chat(1, is_group=False)
    for day in (20, 5, 10, 1):
        await storage.add_card(1, draft(f"8986000000000000{day:04d}", date(2026, 12, day)), NOW)
    page = await storage.list_cards(1, offset=1, limit=2)
    assert [c.expiry.day for c in page] == [5, 10]
    soon = CardFilter(expiring_before=date(2026, 12, 5))
    assert await storage.count_cards(1, soon) == 2
    suffix = await storage.find_cards_by_suffix(1, "0010", 10)
    assert [c.expiry.day for c in suffix] == [10]
    assert await storage.find_cards_by_suffix(1, "%", 10) == []


async def test_renewal_applies_once_even_from_two_stale_screens(storage: Storage) -> None:
    await storage.ensure_chat(1, is_group=False)
    card = await storage.add_card(
        1,
        draft("89860000000000000001", date(2026, 12, 1), carrier=Carrier.CHINA_MOBILE),
        NOW,
    )
    renewal = RenewalDraft(
        renewed_at=NOW,
        by_user_id=7,
        by_name="Li",
        old_expiry=date(2026, 12, 1),
        new_expiry=date(2027, 3, 1),
        period=Period(months=3),
        rule=RenewalRule.EXTEND,
        amount_fen=3000,
    )
    first = await storage.renew_card(1, card.id, renewal)
    second = await storage.renew_card(1, card.id, renewal)
    assert first is not None
    assert second is None
    renewed = await storage.get_card(1, card.id)
    assert renewed is not None
    assert renewed.expiry == date(2027, 3, 1)
    assert await storage.list_renewals(1, card.id) == [first]


async def test_chat_settings_and_first_language(storage: Storage) -> None:
    chat = await storage.ensure_chat(5, is_group=False)
    assert chat.default_language is None
    chat = await storage.ensure_chat(5, is_group=False, language="en")
    assert chat.default_language == "en"
    # the first known language stays
    assert (await storage.ensure_chat(5, is_group=False, language="zh_CN")).default_language == "en"
    await storage.save_chat(
        ChatSettings(chat_id=5, is_group=False, language="zh_CN", timezone="Europe/Berlin")
    )
    saved = await storage.get_chat(5)
    assert saved is not None
    assert (saved.language, saved.timezone, saved.default_language) == (
        "zh_CN",
        "Europe/Berlin",
        "en",
    )


async def test_labels_any_case_suffixes_literally(storage: Storage) -> None:
    await storage.ensure_chat(1, is_group=False)
    await storage.add_card(1, draft("89860000000000000001", date(2027, 1, 1), label="Pos-A"), NOW)
    await storage.add_card(1, draft("8986000000000000_%01", date(2027, 2, 1), label="pos-b"), NOW)
    assert [c.label for c in await storage.find_cards_by_label(1, "POS-A", 10)] == ["Pos-A"]
    assert [c.expiry.month for c in await storage.find_cards_by_suffix(1, "01", 10)] == [1, 2]
    assert [c.label for c in await storage.find_cards_by_suffix(1, "_%01", 10)] == ["pos-b"]


async def test_an_edit_and_its_trail_are_written_together(storage: Storage) -> None:
    await storage.ensure_chat(1, is_group=False)
    card = await storage.add_card(1, draft("89860000000000000001", date(2027, 1, 1)), NOW)
    edit = CardEditDraft(
        edited_at=NOW,
        by_user_id=7,
        by_name="Li",
        field=EditField.LABEL,
        old_value=None,
        new_value="front desk",
    )
    changed = card.model_copy(update={"label": "front desk", "muted": True})
    saved = await storage.update_card(1, changed, edits=[edit], if_expiry=date(2027, 1, 1))
    assert saved is not None
    assert (saved.label, saved.muted) == ("front desk", True)
    [trail] = await storage.list_card_edits(1, card.id)
    assert (trail.field, trail.new_value, trail.edited_at) == (EditField.LABEL, "front desk", NOW)
    # a stale expiry writes nothing, not even the trail
    stale = changed.model_copy(update={"label": "other"})
    assert await storage.update_card(1, stale, edits=[edit], if_expiry=date(2026, 1, 1)) is None
    assert len(await storage.list_card_edits(1, card.id)) == 1
    # another card's ICCID: the duplicate is named
    other = await storage.add_card(1, draft("89860000000000000002", date(2027, 1, 1)), NOW)
    with pytest.raises(DuplicateCardError) as raised:
        await storage.update_card(1, other.model_copy(update={"iccid": card.iccid}))
    assert raised.value.existing.id == card.id


async def test_spending_is_summed_in_fen_by_carrier(storage: Storage) -> None:
    await storage.ensure_chat(1, is_group=False)
    for n, carrier in enumerate((Carrier.CHINA_MOBILE, Carrier.CHINA_MOBILE, Carrier.CHINA_UNICOM)):
        card = await storage.add_card(
            1, draft(f"8986000000000000000{n}", date(2026, 12, 1), carrier=carrier), NOW
        )
        await storage.renew_card(
            1,
            card.id,
            RenewalDraft(
                renewed_at=NOW - timedelta(days=n),
                by_user_id=None,
                by_name=None,
                old_expiry=date(2026, 12, 1),
                new_expiry=date(2027, 12, 1),
                period=Period(months=12),
                rule=RenewalRule.EXTEND,
                amount_fen=2_000_000_001,  # more than 32 bits once summed
            ),
        )
    spent = await storage.spent_by_carrier(1, NOW - timedelta(days=1))
    assert spent == {Carrier.CHINA_MOBILE: 4_000_000_002}
    assert all(type(fen) is int for fen in spent.values())


async def test_two_writers_adding_the_same_card_at_once_make_one(
    storage: Storage, database_url: str | None, tmp_path: Path
) -> None:
    """Two bot processes on one database: each gets its card or the duplicate, never both."""
    other = await open_storage(
        database_url=database_url, database_path=tmp_path / "simwatch.sqlite3"
    )
    try:
        await storage.ensure_chat(1, is_group=False)
        for n in range(20):
            iccid = f"898600000000000{n:05d}"
            results = await asyncio.gather(
                *(s.add_card(1, draft(iccid, date(2027, 1, 1)), NOW) for s in (storage, other)),
                return_exceptions=True,
            )
            added = [r for r in results if not isinstance(r, BaseException)]
            duplicates = [r for r in results if isinstance(r, DuplicateCardError)]
            assert len(added) == 1, results
            assert len(duplicates) == 1, results
            assert duplicates[0].existing.id == added[0].id
        assert await storage.count_cards(1) == 20
    finally:
        await other.close()


async def test_two_writers_renewing_one_card_at_once_renew_it_once(
    storage: Storage, database_url: str | None, tmp_path: Path
) -> None:
    other = await open_storage(
        database_url=database_url, database_path=tmp_path / "simwatch.sqlite3"
    )
    try:
        await storage.ensure_chat(1, is_group=False)
        card = await storage.add_card(1, draft("89860000000000000001", date(2026, 12, 1)), NOW)
        renewal = RenewalDraft(
            renewed_at=NOW,
            by_user_id=None,
            by_name=None,
            old_expiry=date(2026, 12, 1),
            new_expiry=date(2027, 12, 1),
            period=Period(months=12),
            rule=RenewalRule.EXTEND,
            amount_fen=100,
        )
        results = await asyncio.gather(
            *(s.renew_card(1, card.id, renewal) for s in (storage, other, storage, other))
        )
        assert sum(r is not None for r in results) == 1
        assert len(await storage.list_renewals(1, card.id)) == 1
    finally:
        await other.close()
