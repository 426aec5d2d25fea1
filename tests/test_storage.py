"""The SQLite storage: schema migration, chat scoping, paging, optimistic renewal."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.models import CardDraft, Carrier, Period, RenewalRule
from storage.base import CardFilter, DuplicateCardError, RenewalDraft, SchemaTooNewError
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


async def test_cards_are_scoped_to_their_chat(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    try:
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
    finally:
        await storage.close()


async def test_listing_pages_by_expiry_and_filters(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    try:
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
    finally:
        await storage.close()


async def test_renewal_applies_once_even_from_two_stale_screens(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "db.sqlite3")
    try:
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
    finally:
        await storage.close()
