"""Importing into a chat through the domain and storage layers, and the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from cards_util import bad_luhn, iccid
from fixtures.bulk_files import csv_bytes, xlsx_bytes, xlsx_with_formula

from bot.bulk import cli
from bot.bulk.importer import ImportReport, import_sheet
from bot.bulk.reading import CHAT_LIMITS, CLI_LIMITS, read_sheet
from bot.bulk.report import rejected_file, rejected_reason, report_text, visible_length
from bot.bulk.service import BulkService
from bot.clock import FixedClock
from bot.config import Settings
from bot.models import Card, CardDraft, Carrier, Period, RenewalRule
from storage.base import RenewalDraft, Storage
from storage.bulk import BulkStore
from storage.factory import open_storage, stores_for
from storage.sqlite import SqliteStorage

TODAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CHAT = 4242


@pytest.fixture
async def store(storage: Storage) -> BulkStore:
    await storage.ensure_chat(CHAT, is_group=False)
    return stores_for(storage).bulk


async def run(store: BulkStore, content: bytes, chat: int = CHAT) -> ImportReport:
    sheet = read_sheet(content, CLI_LIMITS)
    return await import_sheet(store, chat, sheet, today=TODAY, now=NOW)


async def snapshot(storage: Storage, chat: int = CHAT) -> list[dict[str, object]]:
    cards = await storage.list_cards(chat, limit=1_000_000)
    return [card.model_dump() for card in sorted(cards, key=lambda card: card.id)]


async def test_added_updated_unchanged_rejected(store: BulkStore, storage: SqliteStorage) -> None:
    await storage.add_card(CHAT, CardDraft(iccid=iccid(1), expiry=date(2027, 1, 1)), NOW)
    await storage.add_card(
        CHAT, CardDraft(iccid=iccid(2), expiry=date(2027, 2, 2), label="收银台"), NOW
    )
    content = csv_bytes(
        [
            ["ICCID", "到期日", "运营商", "标签"],
            [iccid(1), "2027-06-30", "联通", ""],  # updated
            [iccid(2), "2027-02-02", "", ""],  # unchanged: empty cells keep the values
            [iccid(3), "2027-03-03", "电信", "新店"],  # added
            [iccid(4), "明年", "", ""],  # rejected
        ]
    )
    report = await run(store, content)
    assert (report.added, report.updated, report.unchanged) == (1, 1, 1)
    assert [r.row.number for r in report.rejected] == [5]
    one = await storage.get_card_by_iccid(CHAT, iccid(1))
    assert one is not None
    assert one.expiry == date(2027, 6, 30)
    assert one.carrier is Carrier.CHINA_UNICOM
    two = await storage.get_card_by_iccid(CHAT, iccid(2))
    assert two is not None
    assert two.label == "收银台"
    three = await storage.get_card_by_iccid(CHAT, iccid(3))
    assert three is not None
    assert (three.label, three.carrier) == ("新店", Carrier.CHINA_TELECOM)
    assert three.created_at == NOW
    assert await storage.get_card_by_iccid(CHAT, iccid(4)) is None


async def test_reimporting_the_same_file_changes_nothing(store: BulkStore) -> None:
    content = csv_bytes(
        [
            ["ICCID", "到期日", "终端号", "商户", "套餐", "自动续费", "备注"],
            [iccid(1), "2027-01-01", "T1", "店", "3个月 30元", "是", "门口"],
            [iccid(2), "30天", "", "", "", "", ""],
        ]
    )
    first = await run(store, content)
    assert first.added == 2
    again = await run(store, content)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)


async def test_new_card_needs_expiry_and_auto_renew_needs_a_plan(store: BulkStore) -> None:
    content = csv_bytes(
        [
            ["ICCID", "到期日", "自动续费", "金额"],
            [iccid(1), "", "", ""],
            [iccid(2), "2027-01-01", "是", ""],
            [iccid(3), "2027-01-01", "", "30"],
        ]
    )
    report = await run(store, content)
    keys = [r.problems[0].error.key for r in report.rejected]
    assert keys == [
        "import.reason.no_expiry",
        "import.reason.auto_needs_plan",
        "import.reason.price_needs_period",
    ]


async def test_duplicates_identical_once_conflicting_all_rejected(
    store: BulkStore, storage: SqliteStorage
) -> None:
    content = csv_bytes(
        [
            ["ICCID", "到期日"],
            [iccid(1), "2027-01-01"],
            [iccid(1), "2027-01-01"],  # the same again: imported once
            [iccid(2), "2027-01-01"],
            [iccid(2).lower(), "2027-09-09"],  # same ICCID, different date
        ]
    )
    report = await run(store, content)
    assert report.added == 1
    assert report.duplicates == [(3, 2)]
    assert [r.row.number for r in report.rejected] == [4, 5]
    assert report.rejected[0].problems[0].error.params == {"rows": "5"}
    assert await storage.get_card_by_iccid(CHAT, iccid(2)) is None


async def test_luhn_mismatch_is_imported_with_a_warning(store: BulkStore) -> None:
    report = await run(store, csv_bytes([["ICCID", "到期日"], [bad_luhn(1), "2027-01-01"]]))
    assert report.added == 1
    assert report.luhn_rows == [2]
    assert "校验位" in report_text("zh_CN", report)


async def test_cards_of_other_chats_are_untouched(store: BulkStore, storage: SqliteStorage) -> None:
    await storage.ensure_chat(777, is_group=False)
    await storage.add_card(777, CardDraft(iccid=iccid(1), expiry=date(2030, 1, 1)), NOW)
    report = await run(store, csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]]))
    assert report.added == 1  # a new card in this chat, not an update of the other chat's
    other = await storage.get_card_by_iccid(777, iccid(1))
    assert other is not None
    assert other.expiry == date(2030, 1, 1)


@pytest.mark.parametrize("backend", ["sqlite"])  # a SQLite trigger makes the database refuse
async def test_a_crash_mid_import_leaves_the_chat_as_it_was(
    store: BulkStore, storage: SqliteStorage
) -> None:
    await storage.add_card(CHAT, CardDraft(iccid=iccid(1), expiry=date(2027, 1, 1)), NOW)
    before = await snapshot(storage)
    # valid to the importer, refused by the database when the 3rd new card is inserted (after
    # the update of card 1 and two inserts already ran inside the transaction)
    await storage.fetchall(
        "CREATE TRIGGER boom BEFORE INSERT ON cards WHEN NEW.iccid = "
        f"'{iccid(12)}' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    )
    rows = [["ICCID", "到期日"], [iccid(1), "2028-08-08"]]
    rows += [[iccid(n), "2027-01-01"] for n in (10, 11, 12, 13)]
    with pytest.raises(aiosqlite.IntegrityError):
        await run(store, csv_bytes(rows))
    assert await snapshot(storage) == before
    await storage.fetchall("DROP TRIGGER boom")
    report = await run(store, csv_bytes(rows))  # the connection is usable afterwards
    assert (report.added, report.updated) == (4, 1)


async def test_a_failing_store_rolls_back_the_updates(
    store: BulkStore, storage: SqliteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await storage.add_card(CHAT, CardDraft(iccid=iccid(1), expiry=date(2027, 1, 1)), NOW)
    before = await snapshot(storage)

    async def explode(*args: object) -> None:
        raise RuntimeError("killed after the updates")

    monkeypatch.setattr("storage.bulk._SqliteImportSession.insert", explode)
    monkeypatch.setattr("storage.postgres.bulk._PostgresImportSession.insert", explode)
    content = csv_bytes([["ICCID", "到期日"], [iccid(1), "2029-09-09"], [iccid(2), "2027-01-01"]])
    with pytest.raises(RuntimeError):
        await run(store, content)
    assert await snapshot(storage) == before


async def test_fifty_thousand_rows_in_one_go(store: BulkStore, storage: SqliteStorage) -> None:
    rows = [["ICCID", "到期日", "运营商", "终端号"]]
    rows += [
        [iccid(n), f"2027-{1 + n % 12:02d}-{1 + n % 28:02d}", "移动", f"T{n}"]
        for n in range(50_000)
    ]
    content = csv_bytes(rows, encoding="gbk")
    report = await run(store, content)  # how long it takes is bench/'s business, not a test's
    assert report.added == 50_000
    assert not report.rejected
    assert await storage.count_cards(CHAT) == 50_000


async def test_rejected_rows_file_keeps_the_columns_and_adds_the_reason(
    store: BulkStore,
) -> None:
    content = xlsx_bytes(
        [["ICCID", "到期日", "备注"], [iccid(1), "2027-01-01", "ok"], ["8986", "2027-01-01", "bad"]]
    )
    sheet = read_sheet(content, CHAT_LIMITS)
    report = await import_sheet(store, CHAT, sheet, today=TODAY, now=NOW)
    made = rejected_file("en", sheet, report, "shop")
    assert made is not None
    assert made.filename == "shop-not-imported.xlsx"
    back = read_sheet(made.content, CHAT_LIMITS)
    assert back.headers == ("ICCID", "到期日", "备注", "reason")
    (row,) = back.rows
    assert row.cells[:3] == ("8986", "2027-01-01", "bad")
    assert "ICCID" in str(row.cells[3])
    assert "<" not in str(row.cells[3])


async def test_service_reads_and_imports(store: BulkStore, storage: SqliteStorage) -> None:
    service = BulkService(store, FixedClock(NOW))
    content = csv_bytes(
        [["ICCID", "到期日", "周期", "金额"], [iccid(1), "2027-01-01", "1年", "¥120"]]
    )
    result = await service.import_file(CHAT, content, today=TODAY)
    assert result.report.added == 1
    card = await storage.get_card_by_iccid(CHAT, iccid(1))
    assert card is not None
    assert (card.plan_period, card.plan_price_fen) == (
        Period(months=12),
        12000,
    )


# --- the command line ---------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    root = argparse.ArgumentParser()
    cli.add_bulk_parsers(root.add_subparsers(dest="command"))
    return root.parse_args(argv)


async def known_chat(settings: Settings, chat_id: int) -> None:
    """The chat has used the bot (the command line imports only into chats the bot knows)."""
    storage = await open_storage(
        database_url=settings.database(), database_path=settings.database_path
    )
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    await storage.close()


async def test_cli_import_then_export_round_trip(tmp_path: Path, database_url: str | None) -> None:
    settings = Settings(database_path=tmp_path / "cli.sqlite3", database_url=database_url)
    await known_chat(settings, -100777)
    source = tmp_path / "agent.csv"
    rows = [
        ["ICCID", "到期日", "运营商", "商户"],
        *[[iccid(n), "2027-01-01", "电信", f"店{n}"] for n in range(300)],
    ]
    rows.append(["89", "2027-01-01", "", ""])
    source.write_bytes(csv_bytes(rows, encoding="gbk"))
    out = io.StringIO()
    code = await cli.run_import(settings, parse(["import", str(source), "--chat", "-100777"]), out)
    assert code == 1  # one row was not imported
    said = out.getvalue()
    assert "300" in said
    assert "<" not in said
    rejected = tmp_path / "agent-未导入.csv"
    assert rejected.exists()
    exported = tmp_path / "cards.xlsx"
    out = io.StringIO()
    args = parse(["export", "--chat", "-100777", "-o", str(exported)])
    assert await cli.run_export(settings, args, out) == 0
    assert str(exported) in out.getvalue()
    out = io.StringIO()
    code = await cli.run_import(
        settings, parse(["import", str(exported), "--chat", "-100777"]), out
    )
    assert code == 0
    assert "无变化：300" in out.getvalue()


async def test_cli_missing_file_and_unknown_chat(tmp_path: Path) -> None:
    settings = Settings(database_path=tmp_path / "cli.sqlite3")
    out = io.StringIO()
    args = parse(["import", str(tmp_path / "nope.csv"), "--chat", "1"])
    assert await cli.run_import(settings, args, out) == 2
    assert "nope.csv" in out.getvalue()
    out = io.StringIO()
    assert await cli.run_export(settings, parse(["export", "--chat", "99"]), out) == 2
    assert "99" in out.getvalue()
    source = tmp_path / "cards.csv"
    source.write_bytes(csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]]))
    out = io.StringIO()
    args = parse(["import", str(source), "--chat", "99", "--no-progress"])
    assert await cli.run_import(settings, args, out) == 2, "no chat 99 was ever seen"
    (line,) = out.getvalue().splitlines()
    assert "99" in line
    assert "/id" in line
    storage = await SqliteStorage.open(settings.database_path)
    assert await storage.get_chat(99) is None
    await storage.close()


async def test_report_of_many_bad_rows_fits_in_one_message(store: BulkStore) -> None:
    rows = [["ICCID", "到期日", "运营商", "自动续费", "备注"]]
    rows += [
        ["8986" + "x" * 30, "2027-02-30", "火星" * 10, "也许" * 10, "n" * 600] for _ in range(60)
    ]
    report = await run(store, csv_bytes(rows))
    assert len(report.rejected) == 60
    for lang in ("zh_CN", "en"):
        text = report_text(lang, report)
        assert len(text) < 4000
        assert text.count("<code>") == text.count("</code>")


async def test_formula_text_goes_back_as_text_not_as_a_formula(store: BulkStore) -> None:
    sheet = read_sheet(xlsx_with_formula(cached=None), CHAT_LIMITS)
    report = await import_sheet(store, CHAT, sheet, today=TODAY, now=NOW)
    made = rejected_file("zh_CN", sheet, report, "f")
    assert made is not None
    (row,) = read_sheet(made.content, CHAT_LIMITS).rows
    assert isinstance(row.cells[1], str)
    assert row.cells[1].startswith("=TEXT(")


# --- bounded reports, older files, short write transactions ---------------------------------------


async def test_one_iccid_in_thousands_of_rows_gives_short_reasons(store: BulkStore) -> None:
    rows = [["ICCID", "到期日"]]
    rows += [[iccid(1), f"2027-{1 + n % 12:02d}-{1 + n % 28:02d}"] for n in range(3000)]
    sheet = read_sheet(csv_bytes(rows), CLI_LIMITS)
    report = await import_sheet(store, CHAT, sheet, today=TODAY, now=NOW)
    assert len(report.rejected) == 3000
    first, second = report.rejected[0], report.rejected[1]
    assert rejected_reason("zh_CN", first) == (
        "同一个 ICCID 在第 3, 4, 5, 6, 7 行等另外 2999 行也出现了，但内容不同。请只保留一行。"
    )
    assert "第 2, 4, 5, 6, 7 行" in rejected_reason("zh_CN", second)
    assert "rows 2, 3, 4, 5, 6, … (2999 other rows in all)" in rejected_reason(
        "en", report.rejected[-1]
    )
    assert max(len(rejected_reason("en", r)) for r in report.rejected) < 200
    made = rejected_file("zh_CN", sheet, report, "dup")
    assert made is not None
    assert len(made.content) < 500_000
    assert visible_length(report_text("zh_CN", report)) <= 4096


async def test_a_reason_quotes_only_a_short_excerpt_of_a_cell(store: BulkStore) -> None:
    rows = [["ICCID", "到期日", "套餐"], [iccid(1), "2027-01-01", "很长的套餐" * 1000]]
    report = await run(store, csv_bytes(rows))
    (rejected,) = report.rejected
    assert len(rejected_reason("zh_CN", rejected)) < 200


async def test_every_report_fits_in_one_telegram_message(store: BulkStore) -> None:
    # reasons as long as they get (every cell wrong, long headers), emoji counted twice
    headers = ["ICCID", "到期日" + "😀" * 50, "运营商", "自动续费", "备注", "套餐"]
    rows = [headers]
    rows += [
        [f"8986{n}" + "x" * 30, "2027-02-30", "火星" * 10, "也许" * 10, "n" * 600, "?" * 90]
        for n in range(400)
    ]
    report = await run(store, csv_bytes(rows))
    for lang in ("zh_CN", "en"):
        text = report_text(lang, report)
        assert visible_length(text) <= 4096
        assert text.count("<b>") == text.count("</b>")


async def test_a_report_naming_every_kind_of_card_still_fits_in_one_message(
    store: BulkStore, storage: Storage
) -> None:
    label = "长" * 60  # shortened in the report, but each line names a card
    rows: list[list[object]] = [["ICCID", "到期日", "运营商", "标签"]]
    for n in range(60):  # muted cards the file renews, and cards it would move earlier
        card = await storage.add_card(
            CHAT, CardDraft(iccid=iccid(n), expiry=date(2027, 6, 1), label=label), NOW
        )
        await storage.update_card(CHAT, card.model_copy(update={"muted": n % 2 == 0}))
        rows.append([iccid(n), "2028-01-01" if n % 2 == 0 else "2027-01-01", "", ""])
    for n in range(100, 160):  # check digit, a carrier the prefix contradicts, O for 0
        rows.append([bad_luhn(n), "2027-01-01", "", label])
        rows.append([iccid(n, prefix="8986011"), "2027-01-01", "移动", label])
        rows.append(["8986OO" + iccid(n)[6:], "2027-01-01", "", label])
    rows += [[f"8986{n}" + "x" * 30, "2027-02-30", "火星" * 10, "n" * 60] for n in range(400)]
    report = await run(store, csv_bytes(rows))
    assert (len(report.unmuted), len(report.older), len(report.luhn)) == (30, 30, 60)
    assert (len(report.carriers), len(report.lookalikes)) == (60, 60)
    for lang in ("zh_CN", "en"):
        for is_group in (False, True):
            text = report_text(lang, report, is_group=is_group)
            assert visible_length(text) <= 4096
            assert text.count("<b>") == text.count("</b>")
            assert text.count("<code>") == text.count("</code>")
            assert iccid(100, prefix="8986011")[-6:] in text  # the first of each kind is named


async def renew(storage: SqliteStorage, card: Card, new_expiry: date) -> None:
    renewal = RenewalDraft(
        renewed_at=NOW,
        by_user_id=1,
        by_name="店长",
        old_expiry=card.expiry,
        new_expiry=new_expiry,
        period=Period(months=12),
        rule=RenewalRule.EXTEND,
        amount_fen=5000,
    )
    assert await storage.renew_card(card.chat_id, card.id, renewal) is not None


async def test_rows_older_than_simwatch_are_left_and_reported(
    store: BulkStore, storage: SqliteStorage
) -> None:
    content = csv_bytes(
        [["ICCID", "到期日", "标签"], [iccid(1), "2027-01-01", "新标签"], [iccid(2), "", "b"]]
    )
    card = await storage.add_card(CHAT, CardDraft(iccid=iccid(1), expiry=date(2027, 1, 1)), NOW)
    await storage.add_card(CHAT, CardDraft(iccid=iccid(2), expiry=date(2027, 1, 1)), NOW)
    await renew(storage, card, date(2028, 1, 1))
    report = await run(store, content)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    (older,) = report.older
    assert (older.number, older.file_expiry, older.card_expiry) == (
        2,
        date(2027, 1, 1),
        date(2028, 1, 1),
    )
    kept = await storage.get_card_by_iccid(CHAT, iccid(1))
    assert kept is not None
    assert (kept.expiry, kept.label) == (date(2028, 1, 1), None), "the row is left as a whole"
    said = report_text("zh_CN", report, in_chat=False)
    assert f"第 2 行 <code>{iccid(1)}</code>：文件里 2027-01-01，SimWatch 里 2028-01-01" in said
    assert "--apply-older" in said


async def test_cli_leaves_older_rows_unless_told_and_reports_the_lock_time(
    tmp_path: Path,
) -> None:
    settings = Settings(database_path=tmp_path / "cli.sqlite3")
    await known_chat(settings, 5)
    source = tmp_path / "cards.csv"
    source.write_bytes(csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]]))
    args = ["import", str(source), "--chat", "5", "--no-progress"]
    out = io.StringIO()
    assert await cli.run_import(settings, parse(args), out) == 0
    assert "写入数据库用了" in out.getvalue()
    storage = await SqliteStorage.open(settings.database_path)
    card = await storage.get_card_by_iccid(5, iccid(1))
    assert card is not None
    await renew(storage, card, date(2028, 1, 1))
    await storage.close()
    out = io.StringIO()
    assert await cli.run_import(settings, parse(args), out) == 1, "a row was left"
    assert "--apply-older" in out.getvalue()
    out = io.StringIO()
    assert await cli.run_import(settings, parse([*args, "--apply-older"]), out) == 0
    assert "按文件改早了" in out.getvalue()
    storage = await SqliteStorage.open(settings.database_path)
    card = await storage.get_card_by_iccid(5, iccid(1))
    await storage.close()
    assert card is not None
    assert card.expiry == date(2027, 1, 1)


class RenewsAfterReading:
    """The bot renews a card in the moment between the import's read and its write."""

    def __init__(self, storage: Storage, card: Card) -> None:
        self.storage = storage
        self.inner = stores_for(storage).bulk
        self.card: Card | None = card

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def cards_by_iccid(self, chat_id: int, iccids: Sequence[str]) -> dict[str, Card]:
        cards = await self.inner.cards_by_iccid(chat_id, iccids)
        if self.card is not None:
            await renew(self.storage, self.card, date(2028, 1, 1))
            self.card = None
        return cards


async def test_a_card_renewed_while_the_file_is_checked_keeps_its_renewal(
    storage: SqliteStorage,
) -> None:
    await storage.ensure_chat(CHAT, is_group=False)
    card = await storage.add_card(CHAT, CardDraft(iccid=iccid(1), expiry=date(2027, 1, 1)), NOW)
    content = csv_bytes(
        [["ICCID", "到期日", "标签"], [iccid(1), "2027-06-01", "A"], [iccid(2), "2027-01-01", "B"]]
    )
    sheet = read_sheet(content, CLI_LIMITS)
    store = RenewsAfterReading(storage, card)
    report = await import_sheet(store, CHAT, sheet, today=TODAY, now=NOW)
    renewed = await storage.get_card_by_iccid(CHAT, iccid(1))
    assert renewed is not None
    assert renewed.expiry == date(2028, 1, 1), "not overwritten by what the file planned"
    assert [older.number for older in report.older] == [2]
    assert report.added == 1


async def test_the_write_lock_is_held_for_the_writes_only(
    store: BulkStore, storage: Storage
) -> None:
    """Every row is checked and the plan made before the transaction starts: inside it, the
    import only writes (no reading of the chat's cards, no validation), so the database is
    locked for the writes alone. Told by what happens, not by timing it."""
    drafts = [CardDraft(iccid=iccid(n), expiry=date(2027, 1, 1)) for n in range(2_000)]
    async with store.import_session(CHAT) as session:
        await session.insert(drafts, NOW)
    rows = [["ICCID", "到期日", "运营商", "终端号", "商户"]]
    rows += [[iccid(n), "2027-06-30", "移动", f"T{n}", "店"] for n in range(3_000)]
    sheet = read_sheet(csv_bytes(rows), CLI_LIMITS)
    validated: list[int] = []
    inside: list[str] = []
    at_start: list[int] = []

    class Watched:
        """The session as the importer gets it: which of its methods it calls."""

        def __init__(self, real: Any) -> None:
            self._real = real

        def __getattr__(self, name: str) -> Any:
            inside.append(name)
            return getattr(self._real, name)

    real_session = store.import_session

    @contextlib.asynccontextmanager
    async def watched_session(chat_id: int) -> AsyncIterator[Any]:
        at_start.append(validated[-1] if validated else 0)
        async with real_session(chat_id) as session:
            yield Watched(session)

    store.import_session = watched_session  # type: ignore[method-assign]
    report = await import_sheet(store, CHAT, sheet, today=TODAY, now=NOW, progress=validated.append)
    assert (report.added, report.updated) == (1_000, 2_000)
    assert at_start == [3_000]  # every row checked before the transaction began
    assert set(inside) <= {"update", "insert", "record_edits"}, inside
    assert report.lock_seconds > 0


@pytest.mark.parametrize("backend", ["sqlite"])  # SQLite's file lock and busy timeout
async def test_the_bot_waits_out_another_process_writing_for_more_than_5_s(
    storage: SqliteStorage, tmp_path: Path
) -> None:
    locked = threading.Event()

    def hold_the_lock() -> None:
        with sqlite3.connect(tmp_path / "simwatch.sqlite3", isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            other.execute(
                "INSERT INTO chats (chat_id, is_group, created_at, address) VALUES (1, 0, 'x', '1')"
            )
            locked.set()
            time.sleep(5.5)
            other.execute("COMMIT")

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        await asyncio.to_thread(locked.wait)
        chat = await storage.ensure_chat(2, is_group=False)  # a write: waits, then succeeds
        assert chat.chat_id == 2
    finally:
        await asyncio.to_thread(holder.join)


@pytest.fixture
async def read_only(tmp_path: Path) -> AsyncIterator[Path]:
    """A database with chat 5 that nobody may write, root included (root ignores file modes:
    the file is made immutable)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "ro.sqlite3"
    await known_chat(Settings(database_path=path), 5)
    for leftover in folder.glob("ro.sqlite3-*"):
        leftover.unlink()
    if os.geteuid() != 0:
        path.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield path
        finally:
            folder.chmod(0o755)
        return
    made = await asyncio.to_thread(subprocess.run, ["chattr", "+i", str(path)], check=False)
    if made.returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield path
    finally:
        await asyncio.to_thread(subprocess.run, ["chattr", "-i", str(path)], check=True)


async def test_cli_import_into_a_read_only_database_says_so_in_one_line(
    read_only: Path, tmp_path: Path
) -> None:
    source = tmp_path / "cards.csv"
    source.write_bytes(csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]]))
    out = io.StringIO()
    args = parse(["import", str(source), "--chat", "5", "--no-progress"])
    assert await cli.run_import(Settings(database_path=read_only), args, out) == 2
    (line,) = out.getvalue().splitlines()
    assert str(read_only) in line
    assert "只读" in line  # said as every command says it (bot/__main__.py)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_cli_import_into_a_read_only_postgresql_is_one_line(
    tmp_path: Path, database_url: str
) -> None:
    await known_chat(Settings(database_url=database_url), 5)  # type: ignore[arg-type]
    read_only = f"{database_url}&default_transaction_read_only=on"
    settings = Settings(database_url=read_only)  # type: ignore[arg-type]
    source = tmp_path / "cards.csv"
    source.write_bytes(csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]]))
    out = io.StringIO()
    args = parse(["import", str(source), "--chat", "5", "--no-progress"])
    assert await cli.run_import(settings, args, out) == 2
    said = out.getvalue()
    assert "read-only" in said
    assert said.count("\n") == 1, said
