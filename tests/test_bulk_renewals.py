"""Renewals by spreadsheet: a file with a 续费 column records renewals as /renew does."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cards_util import iccid
from fixtures.bulk_files import csv_bytes, xlsx_bytes

from bot.bulk import cli
from bot.bulk.export import plain
from bot.bulk.importer import ImportReport, import_sheet
from bot.bulk.reading import CLI_LIMITS, read_sheet
from bot.bulk.report import rejected_reason, report_text
from bot.chatdriver import ChatDriver, texts
from bot.config import Settings
from bot.models import Card, CardDraft, Period, RenewalRule
from storage.base import Storage
from storage.bulk import BulkStore
from storage.factory import open_storage, stores_for

TODAY = date(2026, 11, 25)  # NOW in Shanghai, the chats' default timezone
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CREATED = datetime(2026, 10, 1, tzinfo=UTC)
CHAT = 4343
SHANGHAI = "Asia/Shanghai"


@pytest.fixture
async def store(storage: Storage) -> BulkStore:
    await storage.ensure_chat(CHAT, is_group=False)
    return stores_for(storage).bulk


async def add(storage: Storage, n: int, expiry: date, chat: int = CHAT, **fields: object) -> Card:
    draft = CardDraft.model_validate({"iccid": iccid(n), "expiry": expiry, **fields})
    return await storage.add_card(chat, draft, CREATED)


async def run(store: BulkStore, content: bytes, now: datetime = NOW) -> ImportReport:
    sheet = read_sheet(content, CLI_LIMITS)
    today = now.astimezone(UTC).date() if now != NOW else TODAY
    return await import_sheet(store, CHAT, sheet, today=today, now=now, timezone=SHANGHAI)


async def card(storage: Storage, n: int, chat: int = CHAT) -> Card:
    found = await storage.get_card_by_iccid(chat, iccid(n))
    assert found is not None
    return found


async def test_a_renewal_file_renews_exactly_its_rows_as_renew_does(
    store: BulkStore, storage: Storage
) -> None:
    muted = await add(storage, 1, date(2026, 12, 10), label="收银台1")
    await storage.update_card(CHAT, muted.model_copy(update={"muted": True}))
    lapsed = await add(storage, 2, date(2026, 11, 1))
    await storage.set_archived(CHAT, lapsed.id, NOW - timedelta(days=3))
    untouched = await add(storage, 3, date(2026, 12, 5))
    skipped = await add(storage, 4, date(2026, 12, 6))
    content = csv_bytes(
        [
            ["ICCID", "标签", "续费", "金额"],
            [iccid(1), "改了也不算", "12个月", "120"],
            [iccid(2), "", "3个月", ""],
            [iccid(4), "", "", "30"],  # no renewal given: skipped, not rejected
        ]
    )
    report = await run(store, content)
    assert (report.renewed, report.skipped, report.rejected) == (2, 1, [])
    first, second = await card(storage, 1), await card(storage, 2)
    # still valid: extended from its expiry; already expired: restarted today, as /renew does
    assert first.expiry == date(2027, 12, 10)
    assert second.expiry == date(2027, 2, 25)
    assert first.label == "收银台1"  # a renewal, not an edit
    assert not first.muted  # a renewal by a person ends the mute
    assert not second.archived  # and puts an archived card back in service
    assert (await card(storage, 3)).expiry == untouched.expiry
    assert (await card(storage, 4)).expiry == skipped.expiry
    (history,) = await storage.list_renewals(CHAT, first.id)
    assert (history.old_expiry, history.new_expiry, history.rule) == (
        date(2026, 12, 10),
        date(2027, 12, 10),
        RenewalRule.EXTEND,
    )
    assert (history.period, history.amount_fen, history.by_name) == (
        Period(months=12),
        12000,
        "import",
    )
    (restart,) = await storage.list_renewals(CHAT, second.id)
    assert (restart.rule, restart.amount_fen) == (RenewalRule.RESTART, None)
    assert await storage.list_renewals(CHAT, untouched.id) == []
    assert await storage.list_renewals(CHAT, skipped.id) == []
    assert sum((await storage.spent_by_carrier(CHAT, NOW - timedelta(days=365))).values()) == 12000
    said = plain(report_text("zh_CN", report, in_chat=False))
    assert "已续费：2" in said
    assert "「续费」列为空、跳过：1" in said
    unmuted = "有 1 张静音的卡按文件续了费（到期日推后），已恢复到期提醒："
    assert f"{unmuted}\n第 2 行 {iccid(1)}" in said
    assert f"有 1 张停用的卡续了费，已恢复使用：\n第 3 行 {iccid(2)}" in said


async def test_a_new_expiry_date_and_the_payment_date(store: BulkStore, storage: Storage) -> None:
    await add(storage, 1, date(2026, 12, 10))
    await add(storage, 2, date(2026, 11, 10))  # expired now, but not when it was paid
    await add(storage, 3, date(2026, 11, 10))  # the same, with no payment date
    content = xlsx_bytes(
        [
            ["ICCID", "renew", "amount", "paid_on"],
            [iccid(1), date(2027, 6, 30), "50", ""],
            [iccid(2), "1个月", "10", date(2026, 11, 5)],
            [iccid(3), "1个月", "10", ""],
        ]
    )
    report = await run(store, content)
    assert report.renewed == 3
    first, second, third = [await card(storage, n) for n in (1, 2, 3)]
    assert first.expiry == date(2027, 6, 30)
    assert second.expiry == date(2026, 12, 10)  # extended: it was valid on 2026-11-05
    assert third.expiry == date(2026, 12, 25)  # restarted today
    (set_date,) = await storage.list_renewals(CHAT, first.id)
    assert (set_date.rule, set_date.period, set_date.amount_fen) == (
        RenewalRule.SET_DATE,
        None,
        5000,
    )
    (extended,) = await storage.list_renewals(CHAT, second.id)
    assert extended.rule is RenewalRule.EXTEND
    assert sum((await storage.spent_by_carrier(CHAT, NOW - timedelta(days=1))).values()) == 7000


async def test_bad_rows_are_rejected_with_reasons_and_change_nothing(
    store: BulkStore, storage: Storage
) -> None:
    cards = [await add(storage, n, date(2026, 12, 1)) for n in range(1, 6)]
    content = csv_bytes(
        [
            ["ICCID", "续费", "金额", "日期"],
            [iccid(9), "12个月", "120", ""],  # no such card here
            [iccid(1), "好久", "", ""],  # not a period
            [iccid(2), "3个月", "", "2026-12-20"],  # paid in the future
            [iccid(3), "2026-11-30", "", ""],  # not later than its expiry
            [iccid(4), "3个月", "30", ""],
            [iccid(4), "6个月", "60", ""],  # the same card, another renewal: which one?
            [iccid(5), "1个月", "10", ""],  # the one good row
        ]
    )
    report = await run(store, content)
    assert report.renewed == 1
    reasons = {r.row.number: rejected_reason("zh_CN", r) for r in report.rejected}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7]
    assert "这个聊天里没有这张卡" in reasons[2]
    assert "「续费」列" in reasons[3]
    assert "付款日期 2026-12-20 还没到" in reasons[4]
    assert "续到 2026-11-30 不晚于这张卡现在的到期日 2026-12-01" in reasons[5]
    assert "第 7 行也出现了" in reasons[6]
    english = {r.row.number: rejected_reason("en", r) for r in report.rejected}
    assert "There is no such card in this chat" in english[2]
    for n, left in enumerate(cards[:4], start=1):
        assert (await card(storage, n)).expiry == date(2026, 12, 1)
        assert await storage.list_renewals(CHAT, left.id) == []
    assert (await card(storage, 5)).expiry == date(2027, 1, 1)
    assert len(await storage.list_cards(CHAT, limit=100)) == 5  # nothing added


@pytest.mark.parametrize("with_expiry", [True, False], ids=["到期日", "no-expiry-column"])
async def test_the_same_file_twice_renews_once(
    store: BulkStore, storage: Storage, with_expiry: bool
) -> None:
    renewed = await add(storage, 1, date(2026, 12, 10))
    header = ["ICCID", "到期日", "续费", "金额"] if with_expiry else ["ICCID", "续费", "金额"]
    row = [iccid(1), "2026-12-10", "1年", "48"] if with_expiry else [iccid(1), "1年", "48"]
    content = csv_bytes([header, row])
    assert (await run(store, content)).renewed == 1
    again = await run(store, content, now=NOW + timedelta(hours=5))  # still 25 Nov in Shanghai
    assert (again.renewed, len(again.already_renewed), again.rejected) == (0, 1, [])
    assert (await card(storage, 1)).expiry == date(2027, 12, 10)
    assert len(await storage.list_renewals(CHAT, renewed.id)) == 1
    said = plain(report_text("zh_CN", again, in_chat=False))
    assert "已经续过、没有重复续费：1" in said
    assert "有 1 张卡已经续过费，没有再续" in said
    assert f"第 2 行 {iccid(1)}" in said


async def test_without_the_expiry_column_a_day_later_is_another_renewal(
    store: BulkStore, storage: Storage
) -> None:
    renewed = await add(storage, 1, date(2026, 12, 10))
    content = csv_bytes([["ICCID", "续费"], [iccid(1), "1个月"]])
    assert (await run(store, content)).renewed == 1
    other = csv_bytes([["ICCID", "续费"], [iccid(1), "2个月"]])
    assert (await run(store, other)).renewed == 1  # another period the same day: renewed
    # just after midnight in Shanghai (16:30 UTC on the 25th): the same file sent again is the
    # same payment, not a second one (within a day of the renewal it recorded)
    sheet = read_sheet(content, CLI_LIMITS)
    just_after_midnight = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)
    again = await import_sheet(
        store, CHAT, sheet, today=date(2026, 11, 26), now=just_after_midnight, timezone=SHANGHAI
    )
    assert again.renewed == 0
    assert len(again.already_renewed) == 1
    # two days later the same period again is a new renewal
    later = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
    report = await import_sheet(
        store, CHAT, sheet, today=date(2026, 11, 27), now=later, timezone=SHANGHAI
    )
    assert report.renewed == 1
    assert (await card(storage, 1)).expiry == date(2027, 4, 10)
    assert len(await storage.list_renewals(CHAT, renewed.id)) == 3


# --- through the bot ---------------------------------------------------------------------------


async def test_sending_a_renewal_file_renews_and_cost_counts_it(
    alice: ChatDriver, storage: Storage
) -> None:
    await storage.ensure_chat(alice.chat_id, is_group=False)
    muted = await add(storage, 1, date(2026, 12, 10), chat=alice.chat_id, label="收银台1")
    await storage.update_card(alice.chat_id, muted.model_copy(update={"muted": True}))
    await add(storage, 2, date(2026, 12, 20), chat=alice.chat_id)
    content = csv_bytes(
        [
            ["ICCID", "到期日", "续费", "金额"],
            [iccid(1), "2026-12-10", "12个月", "120"],
            [iccid(7), "2026-12-10", "12个月", "120"],
        ]
    )
    said = texts(await alice.send_document("续费.csv", content, caption="/import"))
    assert "续费文件处理完成" in said
    assert "已续费：1" in said
    assert "未续费：1" in said
    assert "第 3 行：" in said
    assert "这个聊天里没有这张卡" in said
    assert (await card(storage, 1, alice.chat_id)).expiry == date(2027, 12, 10)
    assert "近 12 个月已付：¥120.00" in texts(await alice.send("/cost"))
    again = texts(await alice.send_document("续费.csv", content, caption="/import"))
    assert "已续费：0" in again
    assert "已经续过、没有重复续费：1" in again
    assert (await card(storage, 1, alice.chat_id)).expiry == date(2027, 12, 10)
    assert "近 12 个月已付：¥120.00" in texts(await alice.send("/cost"))


# --- the command line --------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    root = argparse.ArgumentParser()
    cli.add_bulk_parsers(root.add_subparsers(dest="command"))
    return root.parse_args(argv)


async def test_the_command_line_renews_from_a_file(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = Settings(database_path=tmp_path / "cli.sqlite3", database_url=database_url)
    storage = await open_storage(
        database_url=settings.database(), database_path=settings.database_path
    )
    try:
        await storage.ensure_chat(-100888, is_group=True)
        first = await add(storage, 1, date(2027, 1, 31), chat=-100888)
    finally:
        await storage.close()
    source = tmp_path / "paid.csv"
    source.write_bytes(csv_bytes([["ICCID", "续费", "金额"], [iccid(1), "6个月", "30"]]))
    out = io.StringIO()
    args = parse(["import", str(source), "--chat", "-100888", "--no-progress"])
    assert await cli.run_import(settings, args, out) == 0
    assert "已续费：1" in out.getvalue() or "Renewed: 1" in out.getvalue()
    out = io.StringIO()
    assert await cli.run_import(settings, args, out) == 0
    said = out.getvalue()
    assert "已经续过、没有重复续费：1" in said or "Renewed already, not renewed again: 1" in said
    storage = await open_storage(
        database_url=settings.database(), database_path=settings.database_path
    )
    try:
        renewed = await storage.get_card(-100888, first.id)
        history = await storage.list_renewals(-100888, first.id)
    finally:
        await storage.close()
    assert renewed is not None
    assert renewed.expiry == date(2027, 7, 31)
    assert [(r.amount_fen, r.by_name) for r in history] == [(3000, "import")]


# --- what a hostile review found ---------------------------------------------------------------


async def test_an_expiry_column_that_is_wrong_rejects_the_row_instead_of_calling_it_renewed(
    store: BulkStore, storage: Storage
) -> None:
    await add(storage, 1, date(2026, 12, 10))
    content = csv_bytes([["ICCID", "到期日", "续费"], [iccid(1), "2026-12-11", "12个月"]])
    report = await run(store, content)
    assert report.renewed == 0
    assert report.already_renewed == []
    [rejected] = report.rejected
    assert "2026-12-11" in rejected_reason("zh_CN", rejected)
    assert (await card(storage, 1)).expiry == date(2026, 12, 10)


async def test_a_renewal_like_header_of_an_ordinary_file_stays_an_ordinary_import(
    store: BulkStore, storage: Storage
) -> None:
    await add(storage, 1, date(2026, 12, 10))
    content = csv_bytes(
        [["ICCID", "到期日", "标签", "续期"], [iccid(1), "2026-12-10", "前台", "12个月"]]
    )
    report = await run(store, content)
    assert not report.renewal_file
    assert report.updated == 1
    changed = await card(storage, 1)
    assert changed.label == "前台"
    assert changed.expiry == date(2026, 12, 10)  # nobody paid for a renewal
    assert await storage.list_renewals(CHAT, changed.id) == []


async def test_a_dated_file_sent_again_after_midnight_renews_once(
    store: BulkStore, storage: Storage
) -> None:
    renewed = await add(storage, 1, date(2026, 12, 10))
    content = csv_bytes(
        [["ICCID", "续费", "金额", "日期"], [iccid(1), "12个月", "120", "2026-11-25"]]
    )
    before_midnight = datetime(2026, 11, 25, 15, 50, tzinfo=UTC)  # 23:50 in Shanghai
    assert (await run(store, content, before_midnight)).renewed == 1
    after_midnight = datetime(2026, 11, 25, 16, 10, tzinfo=UTC)  # 00:10 the next day
    sheet = read_sheet(content, CLI_LIMITS)
    again = await import_sheet(
        store, CHAT, sheet, today=date(2026, 11, 26), now=after_midnight, timezone=SHANGHAI
    )
    assert again.renewed == 0
    assert len(await storage.list_renewals(CHAT, renewed.id)) == 1


async def test_an_archived_card_renewed_to_a_past_expiry_does_not_auto_renew_its_months_out(
    store: BulkStore, storage: Storage
) -> None:
    out = await add(
        storage,
        1,
        date(2026, 6, 1),
        auto_renew=True,
        plan_period=Period(months=1),
        plan_price_fen=3000,
    )
    await storage.set_archived(CHAT, out.id, NOW - timedelta(days=100))
    content = csv_bytes(
        [["ICCID", "续费", "金额", "日期"], [iccid(1), "1个月", "30", "2026-07-01"]]
    )
    assert (await run(store, content)).renewed == 1
    back = await card(storage, 1)
    assert not back.archived
    assert back.expiry < TODAY
    assert not back.auto_renew  # else the next pass would renew it for every month out


async def test_a_payment_day_without_its_year_is_the_last_such_day(
    store: BulkStore, storage: Storage
) -> None:
    await add(storage, 1, date(2026, 12, 10))
    content = csv_bytes([["ICCID", "续费", "日期"], [iccid(1), "12个月", "11-20"]])
    report = await run(store, content)  # on 2026-11-25: 20 November just past, not next year's
    assert report.renewed == 1
    assert report.rejected == []
