"""Importing into a chat through the domain and storage layers, and the command line."""

from __future__ import annotations

import argparse
import io
import time
from datetime import UTC, date, datetime
from pathlib import Path

import aiosqlite
import pytest
from cards_util import bad_luhn, iccid
from fixtures.bulk_files import csv_bytes, xlsx_bytes, xlsx_with_formula

from bot.bulk import cli
from bot.bulk.importer import ImportReport, import_sheet
from bot.bulk.reading import CHAT_LIMITS, CLI_LIMITS, read_sheet
from bot.bulk.report import rejected_file, report_text
from bot.bulk.service import BulkService
from bot.clock import FixedClock
from bot.config import Settings
from bot.models import CardDraft, Carrier, Period
from storage.bulk import SqliteBulkStore
from storage.sqlite import SqliteStorage

TODAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CHAT = 4242


@pytest.fixture
async def store(storage: SqliteStorage) -> SqliteBulkStore:
    await storage.ensure_chat(CHAT, is_group=False)
    return SqliteBulkStore(storage)


async def run(store: SqliteBulkStore, content: bytes, chat: int = CHAT) -> ImportReport:
    sheet = read_sheet(content, CLI_LIMITS)
    return await import_sheet(store, chat, sheet, today=TODAY, now=NOW)


async def snapshot(storage: SqliteStorage, chat: int = CHAT) -> list[tuple[object, ...]]:
    rows = await storage.fetchall("SELECT * FROM cards WHERE chat_id = ? ORDER BY id", (chat,))
    return [tuple(row) for row in rows]


async def test_added_updated_unchanged_rejected(
    store: SqliteBulkStore, storage: SqliteStorage
) -> None:
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


async def test_reimporting_the_same_file_changes_nothing(store: SqliteBulkStore) -> None:
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


async def test_new_card_needs_expiry_and_auto_renew_needs_a_plan(store: SqliteBulkStore) -> None:
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
    store: SqliteBulkStore, storage: SqliteStorage
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


async def test_luhn_mismatch_is_imported_with_a_warning(store: SqliteBulkStore) -> None:
    report = await run(store, csv_bytes([["ICCID", "到期日"], [bad_luhn(1), "2027-01-01"]]))
    assert report.added == 1
    assert report.luhn_rows == [2]
    assert "校验位" in report_text("zh_CN", report)


async def test_cards_of_other_chats_are_untouched(
    store: SqliteBulkStore, storage: SqliteStorage
) -> None:
    await storage.ensure_chat(777, is_group=False)
    await storage.add_card(777, CardDraft(iccid=iccid(1), expiry=date(2030, 1, 1)), NOW)
    report = await run(store, csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]]))
    assert report.added == 1  # a new card in this chat, not an update of the other chat's
    other = await storage.get_card_by_iccid(777, iccid(1))
    assert other is not None
    assert other.expiry == date(2030, 1, 1)


async def test_a_crash_mid_import_leaves_the_chat_as_it_was(
    store: SqliteBulkStore, storage: SqliteStorage
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
    store: SqliteBulkStore, storage: SqliteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await storage.add_card(CHAT, CardDraft(iccid=iccid(1), expiry=date(2027, 1, 1)), NOW)
    before = await snapshot(storage)

    async def explode(*args: object) -> None:
        raise RuntimeError("killed after the updates")

    monkeypatch.setattr("storage.bulk._SqliteImportSession.insert", explode)
    content = csv_bytes([["ICCID", "到期日"], [iccid(1), "2029-09-09"], [iccid(2), "2027-01-01"]])
    with pytest.raises(RuntimeError):
        await run(store, content)
    assert await snapshot(storage) == before


async def test_fifty_thousand_rows_in_one_go(
    store: SqliteBulkStore, storage: SqliteStorage
) -> None:
    rows = [["ICCID", "到期日", "运营商", "终端号"]]
    rows += [
        [iccid(n), f"2027-{1 + n % 12:02d}-{1 + n % 28:02d}", "移动", f"T{n}"]
        for n in range(50_000)
    ]
    content = csv_bytes(rows, encoding="gbk")
    started = time.perf_counter()
    report = await run(store, content)
    elapsed = time.perf_counter() - started
    assert report.added == 50_000
    assert not report.rejected
    assert await storage.count_cards(CHAT) == 50_000
    assert elapsed < 15, elapsed  # set-based SQL: a few seconds, not minutes


async def test_rejected_rows_file_keeps_the_columns_and_adds_the_reason(
    store: SqliteBulkStore,
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


async def test_service_reads_and_imports(store: SqliteBulkStore, storage: SqliteStorage) -> None:
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


async def test_cli_import_then_export_round_trip(tmp_path: Path) -> None:
    settings = Settings(database_path=tmp_path / "cli.sqlite3")
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


async def test_report_of_many_bad_rows_fits_in_one_message(store: SqliteBulkStore) -> None:
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


async def test_formula_text_goes_back_as_text_not_as_a_formula(store: SqliteBulkStore) -> None:
    sheet = read_sheet(xlsx_with_formula(cached=None), CHAT_LIMITS)
    report = await import_sheet(store, CHAT, sheet, today=TODAY, now=NOW)
    made = rejected_file("zh_CN", sheet, report, "f")
    assert made is not None
    (row,) = read_sheet(made.content, CHAT_LIMITS).rows
    assert isinstance(row.cells[1], str)
    assert row.cells[1].startswith("=TEXT(")
