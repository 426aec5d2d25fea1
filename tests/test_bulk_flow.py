"""End to end through the real Application and the Bot API emulator: /import, /export,
/calendar, /find and /stats."""

from __future__ import annotations

import codecs
import logging
import pickle
from datetime import UTC, date, datetime, time, timedelta

import pytest
from cards_util import bad_luhn, iccid
from fixtures.bulk_files import csv_bytes, xlsx_bytes
from icalendar import Calendar

import handlers.bulk
from bot.app import AnyApplication
from bot.bulk.reading import CHAT_LIMITS, read_sheet
from bot.chatdriver import ChatDriver, texts
from bot.clock import FixedClock
from bot.emulator import BotApiEmulator
from bot.emulator.records import ChatEvent
from bot.iccid import mask_iccid
from bot.models import CardDraft, Carrier, EditField, RenewalRule
from bot.reminders.models import ReminderSettings
from handlers.bulk import OLDER_KEY
from storage.base import RenewalDraft
from storage.factory import stores_for
from storage.sqlite import SqliteStorage

BOTH_CHANNELS = True  # each test that uses alice also runs as a WeCom user (conftest)

TODAY = date(2026, 11, 25)  # conftest's NOW in Shanghai
CREATED = datetime(2026, 11, 1, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def documents(events: list[ChatEvent]) -> list[ChatEvent]:
    return [event for event in events if event.kind == "document"]


async def add(storage: SqliteStorage, chat_id: int, n: int, **fields: object) -> None:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    values: dict[str, object] = {"iccid": iccid(n), "expiry": TODAY + timedelta(days=n)}
    values.update(fields)
    await storage.add_card(chat_id, CardDraft.model_validate(values), CREATED)


# --- /import ------------------------------------------------------------------------------------


async def test_import_after_the_command_reports_and_returns_the_rejected_rows(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 1)
    await add(storage, alice.chat_id, 2, label="收银台")
    prompt = texts(await alice.send("/import"))
    assert "ICCID" in prompt
    assert "到期日" in prompt
    content = csv_bytes(
        [
            ["ICCID", "到期日", "运营商", "终端号", "商户"],
            [iccid(1), "2027-06-30", "联通", "", ""],
            [iccid(2), (TODAY + timedelta(days=2)).isoformat(), "", "", ""],
            [iccid(3), "2027-03-03", "电信", "T3", "新店"],
            ["8986", "2027-01-01", "", "", ""],
            [iccid(5), "2027-02-30", "", "", ""],
        ],
        encoding="gbk",
    )
    events = await alice.send_document("代理商.csv", content)
    said = texts(events)
    for expected in ("新增：1", "更新：1", "无变化：1", "未导入：2", "第 5 行", "第 6 行"):
        assert expected in said
    (rejected,) = documents(events)
    assert rejected.filename is not None
    assert rejected.filename.endswith(".csv")
    assert rejected.content is not None
    assert rejected.content.startswith(codecs.BOM_UTF8)
    sheet = read_sheet(rejected.content, CHAT_LIMITS)
    assert sheet.headers[-1] == "错误原因"
    assert [str(row.cells[0]).strip() for row in sheet.rows] == [
        "8986",
        iccid(5),
    ]  # ="…": Excel text
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(3))
    assert card is not None
    assert card.label == "新店 · T3"
    assert card.carrier is Carrier.CHINA_TELECOM
    # rows were refused: the fixed ones go straight back, without /import again
    fixed = csv_bytes([["ICCID", "到期日"], ["8986", ""], [iccid(5), "2027-02-28"]])
    again = texts(await alice.send_document("代理商-未导入.csv", fixed))
    assert "新增：1" in again
    assert "未导入：1" in again
    fixed = csv_bytes([["ICCID", "到期日"], [iccid(4), "2027-02-28"]])
    assert "新增：1" in texts(await alice.send_document("代理商-未导入.csv", fixed))
    # all imported: the conversation ended, another document is not imported
    stray = texts(await alice.send_document("again.csv", content))
    assert "/import" in stray
    assert "新增" not in stray


async def test_xlsx_with_the_caption_is_imported_directly(
    alice_en: ChatDriver, storage: SqliteStorage
) -> None:
    content = xlsx_bytes(
        [
            ["expiry", "ICCID", "plan", "auto_renew", "note"],
            [datetime(2027, 1, 31), iccid(1), "3m 30", "yes", "back office"],
            [datetime(2027, 2, 28), iccid(2), "", "", ""],
        ]
    )
    events = await alice_en.send_document("cards.xlsx", content, caption="/import")
    said = texts(events)
    assert "Added: 2" in said
    assert "Not imported: 0" in said
    assert documents(events) == []  # nothing rejected, no file
    assert await storage.count_cards(alice_en.chat_id) == 2


async def test_a_rejected_row_wider_than_the_header_comes_back_whole(alice: ChatDriver) -> None:
    """A CSV line with cells past the header's last column (a note typed to the right): the
    rejected-rows file keeps them, so the fix sent back loses nothing."""
    content = f"ICCID,到期日\n{iccid(1)},2027-01-01\n8986,2027-01-01,门店A,记得续费\n".encode()
    (rejected,) = documents(await alice.send_document("wide.csv", content, "/import"))
    assert rejected.content is not None
    lines = rejected.content.decode("utf-8-sig").splitlines()
    assert lines[0].split(",")[:2] == ["ICCID", "到期日"]
    assert lines[0].endswith("错误原因")
    cells = lines[1].split(",")
    assert cells[:4] == ["8986", "2027-01-01", "门店A", "记得续费"]
    assert len(cells) == 5  # the reason after the widest row


async def test_xlsx_rejected_rows_come_back_as_xlsx(alice_en: ChatDriver) -> None:
    content = xlsx_bytes([["ICCID", "expiry"], [iccid(1), "2027-01-01"], [iccid(2), "someday"]])
    events = await alice_en.send_document("cards.xlsx", content, caption="/import")
    assert "Row 3" in texts(events)
    (rejected,) = documents(events)
    assert rejected.filename == "cards-not-imported.xlsx"
    assert rejected.content is not None
    assert read_sheet(rejected.content, CHAT_LIMITS).rows[0].cells[1] == "someday"


async def test_a_file_that_is_not_a_spreadsheet_is_refused_politely(alice: ChatDriver) -> None:
    png = PNG_SIGNATURE + b"\0" * 64
    said = texts(await alice.send_document("cards.xlsx", png, caption="/import"))
    assert "不是表格文件" in said


async def test_a_csv_mixing_encodings_is_refused_with_the_rows(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    content = "ICCID,到期日,商户\r\n".encode("gbk") + b"".join(
        f"{iccid(n)},2027-01-01,收银台{n}\r\n".encode("utf-8" if n == 3 else "gbk")
        for n in range(1, 5)
    )
    said = texts(await alice.send_document("merged.csv", content, caption="/import"))
    assert "混用了两种文字编码" in said
    assert "1 行是 UTF-8（第 4 行）" in said
    assert await storage.count_cards(alice.chat_id) == 0


async def test_too_big_a_file_is_refused_before_downloading(alice: ChatDriver) -> None:
    huge = b"ICCID\n" + b"8" * (CHAT_LIMITS.max_bytes + 1)
    assert "文件太大" in texts(await alice.send_document("big.csv", huge, caption="/import"))


async def test_waiting_for_a_file_nags_on_text_and_cancels(alice: ChatDriver) -> None:
    await alice.send("/import")
    assert "作为文件" in texts(await alice.send("where do I send it?"))
    assert "取消" in texts(await alice.send("/cancel"))
    assert "/import" in texts(await alice.send_document("x.csv", b"ICCID\n"))  # not imported


async def test_stray_documents_hint_in_private_and_stay_quiet_in_groups(
    alice: ChatDriver, group: dict[str, ChatDriver]
) -> None:
    content = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    assert "/import" in texts(await alice.send_document("cards.csv", content))
    assert await group["boss"].send_document("cards.csv", content) == []


@pytest.mark.telegram_only  # WeCom passes a robot no files from groups
async def test_group_import_is_for_admins(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    content = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    bob, boss = group["bob"], group["boss"]
    assert "管理员" in texts(await bob.send("/import"))
    assert "管理员" in texts(await bob.send_document("c.csv", content, caption="/import"))
    assert await storage.count_cards(bob.chat_id) == 0
    prompt = texts(await boss.send("/import"))
    assert "回复" in prompt
    assert "新增：1" in texts(await boss.send_document("c.csv", content))


# --- /export ------------------------------------------------------------------------------------


async def test_export_then_reimport_changes_nothing(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    content = csv_bytes(
        [
            ["ICCID", "到期日", "运营商", "终端号", "商户", "套餐", "自动续费", "备注"],
            [iccid(1), "2027-01-31", "移动", "T1", "面馆", "3个月 30.5元", "是", "=1+1 不是公式"],
            [iccid(2), "2026-11-01", "", "", "", "1年", "", ""],
            [iccid(3), "2027-05-05", "其他", "", "@home", "30天", "否", ""],
        ]
    )
    await alice.send_document("in.csv", content, caption="/import")
    for fmt_label in ("Excel", "CSV"):
        chooser = texts(await alice.send("/export"))
        assert "格式" in chooser
        (exported,) = documents(await alice.press(fmt_label))
        assert exported.content is not None
        if fmt_label == "CSV":
            assert exported.content.startswith(codecs.BOM_UTF8)
        back = texts(
            await alice.send_document(exported.filename or "", exported.content, "/import")
        )
        assert "无变化：3" in back
        assert "新增：0" in back
        assert "更新：0" in back


async def test_export_shows_status_and_last_renewal(
    alice_en: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice_en.chat_id, 10, label="Till")
    card = await storage.get_card_by_iccid(alice_en.chat_id, iccid(10))
    assert card is not None
    renewed_at = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)  # Nov 21 in Shanghai
    renewal = RenewalDraft(
        renewed_at=renewed_at,
        by_user_id=None,
        by_name="Alice",
        old_expiry=card.expiry,
        new_expiry=card.expiry + timedelta(days=30),
        period=None,
        rule=RenewalRule.SET_DATE,
    )
    assert await storage.renew_card(alice_en.chat_id, card.id, renewal) is not None
    (exported,) = documents(await alice_en.send("/export xlsx"))
    assert exported.content is not None
    sheet = read_sheet(exported.content, CHAT_LIMITS)
    assert sheet.headers[-3:] == ("status", "days_left", "last_renewal")
    row = sheet.rows[0].cells
    assert row[0] == iccid(10)
    assert row[3] == "Till"
    assert "OK" in str(row[-3])
    assert row[-2] == 40
    assert row[-1] == datetime(2026, 11, 21)  # a date cell, in the chat's time zone


async def test_empty_export_is_a_template(alice: ChatDriver) -> None:
    (exported,) = documents(await alice.send("/export csv"))
    assert "模板" in (exported.text or "")


@pytest.mark.telegram_only  # a Telegram alert (WeCom says it in the chat)
async def test_group_export_is_for_admins(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    await add(storage, group["boss"].chat_id, 1)
    assert "管理员" in texts(await group["bob"].send("/export"))
    await group["boss"].send("/export")
    answered = await group["bob"].press("Excel")  # bob presses the boss's button
    assert documents(answered) == []
    assert any(e.kind == "callback_answer" and e.show_alert for e in answered)


# --- /calendar ----------------------------------------------------------------------------------


async def test_calendar_has_an_all_day_event_per_card_with_alarms(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 3, label="收银台1")
    await add(storage, alice.chat_id, 45)
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(45))
    assert card is not None
    await storage.update_card(alice.chat_id, card.model_copy(update={"muted": True}))
    (ics,) = documents(await alice.send("/calendar"))
    assert ics.filename == "simwatch-expiries.ics"
    assert ics.content is not None
    assert "到期前 30、7、3、1 天和到期当天的 09:00" in (ics.text or "")
    calendar = Calendar.from_ical(ics.content)
    events = calendar.walk("VEVENT")
    assert len(events) == 2
    first, muted = events
    assert first.decoded("dtstart") == TODAY + timedelta(days=3)
    assert type(first.decoded("dtstart")) is date  # all-day: a DATE, not a DATE-TIME
    alarms = first.walk("VALARM")
    triggers = sorted(alarm.decoded("trigger") for alarm in alarms)
    assert triggers == [timedelta(days=-d, hours=9) for d in (30, 7, 3, 1, 0)]
    assert "收银台1" in str(first["summary"])
    assert muted.walk("VALARM") == []
    again = Calendar.from_ical(documents(await alice.send("/calendar"))[0].content or b"")
    assert [e["uid"] for e in again.walk("VEVENT")] == [e["uid"] for e in events]


async def test_calendar_follows_the_chats_reminder_settings(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    chat_id = group["bob"].chat_id
    await add(storage, chat_id, 10)
    settings = ReminderSettings(send_time=time(20, 30), days_before=(15, 2))
    await stores_for(storage).reminders.save_settings(chat_id, settings)
    (ics,) = documents(await group["bob"].send("/calendar"))
    (event,) = Calendar.from_ical(ics.content or b"").walk("VEVENT")
    triggers = sorted(alarm.decoded("trigger") for alarm in event.walk("VALARM"))
    assert triggers == [
        timedelta(days=-15, hours=20, minutes=30),
        timedelta(days=-2, hours=20, minutes=30),
    ]
    assert iccid(10) not in ics.content.decode()  # groups see masked ICCIDs


async def test_calendar_without_cards_says_so(alice: ChatDriver) -> None:
    assert "日历是空的" in texts(await alice.send("/calendar"))


# --- /find --------------------------------------------------------------------------------------


async def test_find_by_digits_label_terminal_and_note(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 1, label="张记面馆 · T550012")
    await add(storage, alice.chat_id, 2, note="放在二楼 100% 满意")
    await add(storage, alice.chat_id, 3, label="a_b")
    await add(storage, alice.chat_id, 4, label="axb")
    assert "张记面馆" in texts(await alice.send("/find T550"))
    assert "（1 张" in texts(await alice.send("/find 面馆"))
    found = texts(await alice.send(f"/find {iccid(2)[-8:-2]}"))
    assert iccid(2) in found
    assert iccid(2) in texts(await alice.send("/find 100%"))
    underscore = texts(await alice.send("/find a_b"))
    assert "a_b" in underscore
    assert "axb" not in underscore
    assert "没有找到" in texts(await alice.send("/find 1%0"))
    assert "用法" in texts(await alice.send("/find"))


async def test_find_pages_like_cards_and_opens_a_card(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    for n in range(1, 24):
        await add(storage, alice.chat_id, n, label=f"连锁店 {n}号")
    first = texts(await alice.send("/find 连锁店"))
    assert "23 张" in first
    assert "第 1/3 页" in first
    second = texts(await alice.press("▶"))
    assert "第 2/3 页" in second
    _message, data = alice.find_button("连锁店")
    assert data.startswith("cd:")
    assert len(data.encode()) <= 64


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_find_with_a_long_query_pages_through_the_chat_data(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    long_label = "非常长的连锁店名称用来测试回调数据的长度限制"
    for n in range(1, 13):
        await add(storage, alice.chat_id, n, label=f"{long_label}{n}")
    await alice.send(f"/find {long_label}")
    _, data = alice.find_button("▶")
    assert data.startswith("fh:")
    assert len(data.encode()) <= 64
    assert "第 2/2 页" in texts(await alice.press("▶"))
    assert "过期" in texts(await alice.press_data("fh:unknownkey:1"))


async def test_find_in_a_group_masks_iccids(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    await add(storage, group["bob"].chat_id, 7)
    said = texts(await group["bob"].send(f"/find {iccid(7)[-6:]}"))
    assert iccid(7)[-6:] in said
    assert iccid(7) not in said


# --- /stats -------------------------------------------------------------------------------------


async def test_stats_counts_and_a_weekly_chart(alice: ChatDriver, storage: SqliteStorage) -> None:
    for n, days in enumerate((-120, -5, 0, 3, 10, 11, 12, 60, 200), start=1):
        await add(storage, alice.chat_id, n, expiry=TODAY + timedelta(days=days))
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    await storage.update_card(
        alice.chat_id, card.model_copy(update={"carrier": Carrier.CHINA_UNICOM})
    )
    events = await alice.send("/stats")
    said = texts([e for e in events if e.kind == "message"])
    assert "共 9 张" in said
    for line in ("正常：2", "即将到期（30 天内）：5", "已停机：1", "已过期 90 天以上：1"):
        assert line in said
    assert "中国联通：1" in said
    assert "其他：8" in said
    assert "未来 12 周内到期 6 张，最忙的一周从 2026-12-02 开始（3 张）" in said
    (photo,) = [e for e in events if e.kind == "photo"]
    assert photo.content is not None
    assert photo.content.startswith(PNG_SIGNATURE)


async def test_stats_without_cards(alice: ChatDriver) -> None:
    events = await alice.send("/stats")
    assert "还没有卡" in texts(events)
    assert [e for e in events if e.kind == "photo"] == []


@pytest.mark.telegram_only  # a caption for another bot: WeCom files have none
async def test_a_caption_for_another_bot_is_not_ours(alice: ChatDriver) -> None:
    content = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    events = await alice.send_document("c.csv", content, caption="/import@some_other_bot")
    assert "新增" not in texts(events)
    ours = await alice.send_document("c.csv", content, caption="/import@simwatch_test_bot now")
    assert "新增：1" in texts(ours)


async def test_a_file_that_renews_a_muted_card_ends_the_mute(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 1, expiry=date(2026, 12, 1))
    await add(storage, alice.chat_id, 2, expiry=date(2026, 12, 1))
    for n in (1, 2):
        card = await storage.get_card_by_iccid(alice.chat_id, iccid(n))
        assert card is not None
        await storage.update_card(alice.chat_id, card.model_copy(update={"muted": True}))
    content = csv_bytes(
        [
            ["ICCID", "到期日", "备注"],
            [iccid(1), "2027-12-01", ""],  # renewed in the file
            [iccid(2), "2026-12-01", "只改备注"],  # same expiry: still muted
        ]
    )
    said = texts(await alice.send_document("续费.csv", content, caption="/import"))
    assert "更新：2" in said
    assert "有 1 张静音的卡按文件续了费（到期日推后），已恢复到期提醒：" in said
    assert f"提醒：\n第 2 行 {iccid(1)}" in said
    assert "第 3 行" not in said
    renewed = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    kept = await storage.get_card_by_iccid(alice.chat_id, iccid(2))
    assert renewed is not None
    assert kept is not None
    assert (renewed.expiry, renewed.muted) == (date(2027, 12, 1), False)
    assert kept.muted
    assert "🔕" in texts(await alice.send("/cards"))


# --- older files, long reports, fixing a refused file -------------------------------------------


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_an_old_spreadsheet_does_not_undo_a_renewal(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    content = csv_bytes([["ICCID", "到期日", "商户"], [iccid(1), "2026-12-31", "收银台"]])
    assert "新增：1" in texts(await alice.send_document("cards.csv", content, "/import"))
    await alice.send(f"/renew {iccid(1)[-4:]} 1年 50")
    assert "已续费" in texts(await alice.press("确认续费"))
    again = texts(await alice.send_document("cards.csv", content, "/import"))
    assert "更新：0" in again
    assert "到期日比 SimWatch 里早、未导入：1 行" in again
    assert "比 SimWatch 里的早" in again
    assert f"第 2 行 {iccid(1)} 收银台：文件里 2026-12-31，SimWatch 里 2027-12-31" in again
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2027, 12, 31), "the renewal stands"
    assert len(await storage.list_renewals(alice.chat_id, card.id)) == 1

    message, data = alice.find_button("仍然导入")
    applied = await alice.press("仍然导入")
    assert "已按文件导入 1 行" in texts(applied)
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2026, 12, 31), "applied because the user said so"
    assert alice.emulator.chat_messages(alice.chat_id)[-2].buttons == []  # the button went
    # the same button again (a double tap, a stale client): nothing more happens
    twice = await alice.press_data(data, message.message_id)
    assert any(e.kind == "callback_answer" and "已经导入过" in (e.text or "") for e in twice)
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2026, 12, 31)


async def test_apply_anyway_pressed_late_leaves_cards_renewed_since(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 1, expiry=date(2027, 6, 1))
    await add(storage, alice.chat_id, 2, expiry=date(2027, 6, 1))
    old = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"], [iccid(2), "2027-01-01"]])
    report = texts(await alice.send_document("old.csv", old, "/import"))
    assert "有 2 行的到期日比 SimWatch 里的早" in report
    await alice.send(f"/renew {iccid(2)[-4:]} 1个月")
    await alice.press("确认续费")  # card 2: 2027-07-01 now
    said = texts(await alice.press("仍然导入"))
    assert "已按文件导入 1 行" in said
    assert "有 1 行的卡在导入之后又改过" in said
    one = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    two = await storage.get_card_by_iccid(alice.chat_id, iccid(2))
    assert one is not None
    assert two is not None
    assert (one.expiry, two.expiry) == (date(2027, 1, 1), date(2027, 7, 1))


@pytest.mark.telegram_only  # WeCom passes a robot no files from groups
async def test_apply_anyway_is_for_those_who_may_import(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    boss, bob = group["boss"], group["bob"]
    await add(storage, boss.chat_id, 1, expiry=date(2027, 6, 1))
    old = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    assert "比 SimWatch 里的早" in texts(await boss.send_document("old.csv", old, "/import"))
    refused = await bob.press("仍然导入")
    assert any(e.kind == "callback_answer" and e.show_alert for e in refused)
    card = await storage.get_card_by_iccid(boss.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2027, 6, 1)
    assert "已按文件导入 1 行" in texts(await boss.press("仍然导入"))
    card = await storage.get_card_by_iccid(boss.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2027, 1, 1)


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_a_forged_apply_anyway_button_finds_nothing(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 1, expiry=date(2027, 6, 1))
    await alice.send_document(
        "old.csv", csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]]), "/import"
    )
    for data in ("io:", "io:x:y", f"io:{alice.user['id']}:nope", "io:99999999999999999999:a"):
        events = await alice.press_data(data)
        assert any(e.kind == "callback_answer" and "已经导入过" in (e.text or "") for e in events)
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2027, 6, 1)


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_forged_apply_anyway_data_leaves_every_message_alone(
    alice: ChatDriver, storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """Forged data that int() would choke on (a superscript two is a "digit"), or pointing at
    another message: a polite answer, no error, and the keyboards it hangs on stay."""
    await add(storage, alice.chat_id, 1, expiry=date(2027, 6, 1))
    old = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    await alice.send_document("old.csv", old, "/import")
    report, data = alice.find_button("仍然导入")
    token = data.rsplit(":", 1)[1]
    await alice.send("/cards")
    cards = alice.emulator.chat_messages(alice.chat_id)[-1]
    assert cards.buttons
    uid = alice.user["id"]
    forged = ["io:\u00b2:tok", "io:" + "9" * 30 + ":tok", f"io:{uid}:{token}:x", f"io:{uid}:\u00b2"]
    for bad in forged:
        for message_id in (report.message_id, cards.message_id):
            events = await alice.press_data(bad, message_id)
            assert any(
                e.kind == "callback_answer" and "已经导入过" in (e.text or "") for e in events
            )
    # the real button's data, pressed on another message: that message keeps its keyboard
    events = await alice.press_data(data, cards.message_id)
    assert any(e.kind == "callback_answer" and e.show_alert for e in events)
    messages = {m.message_id: m for m in alice.emulator.chat_messages(alice.chat_id)}
    assert messages[cards.message_id].buttons == cards.buttons
    assert messages[report.message_id].buttons == report.buttons
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2027, 6, 1)
    # the real button on its own report still works
    assert "已按文件导入 1 行" in texts(await alice.press("仍然导入"))


@pytest.mark.telegram_only  # reads a draft under the Telegram user's id
async def test_apply_anyway_expires_after_a_day(
    alice: ChatDriver, storage: SqliteStorage, clock: FixedClock, app: AnyApplication
) -> None:
    await add(storage, alice.chat_id, 1, expiry=date(2027, 6, 1))
    old = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    await alice.send_document("old.csv", old, "/import")
    assert app.user_data[alice.user["id"]][OLDER_KEY]
    clock.instant += timedelta(hours=24, minutes=1)
    events = await alice.press("仍然导入")
    assert any(
        e.kind == "callback_answer"
        and "按钮已经过期了" in (e.text or "")
        and "24 小时" in (e.text or "")
        for e in events
    )
    assert alice.emulator.chat_messages(alice.chat_id)[-1].buttons == []  # the button went
    assert not app.user_data[alice.user["id"]][OLDER_KEY]  # and what it would have applied
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2027, 6, 1)


async def test_rows_kept_for_apply_anyway_are_small_and_bounded_per_user(
    alice: ChatDriver,
    group: dict[str, ChatDriver],
    emulator: BotApiEmulator,
    storage: SqliteStorage,
    app: AnyApplication,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the button keeps lives in the persisted user data: a few dozen bytes a row, and a
    bounded number of rows per user over all their chats; the oldest import's button goes."""
    boss = group["boss"]
    boss_private = ChatDriver(app, emulator, emulator.private_chat(boss.user), boss.user)
    n = 2000
    for chat in (boss.chat_id, boss_private.chat_id):
        for k in range(n):
            await add(storage, chat, k + 1, expiry=date(2027, 6, 1))
    old = csv_bytes(
        [["ICCID", "到期日", "标签"]] + [[iccid(k + 1), "2027-01-01", "L" * 60] for k in range(n)]
    )
    await boss.send_document("old.csv", old, "/import")
    boss.find_button("仍然导入这 2000 行")
    kept = pickle.dumps(dict(app.user_data[boss.user["id"]]))
    assert len(kept) < 60 * n
    monkeypatch.setattr(handlers.bulk, "MAX_OLDER_ROWS", 3000)
    await boss_private.send_document("old.csv", old, "/import")
    boss_private.find_button("仍然导入这 2000 行")
    assert len(app.user_data[boss.user["id"]][OLDER_KEY]) == 1  # the group's went to make room
    gone = await boss.press("仍然导入")
    assert any(e.kind == "callback_answer" and "已经导入过" in (e.text or "") for e in gone)
    assert "已按文件导入 2000 行" in texts(await boss_private.press("仍然导入"))
    # more rows than a user may keep: no button, and the report says what to do instead
    monkeypatch.setattr(handlers.bulk, "MAX_OLDER_ROWS", 1000)
    said = texts(await boss.send_document("old.csv", old, "/import"))
    assert "要改早到期日的行太多" in said
    assert boss.emulator.chat_messages(boss.chat_id)[-1].buttons == []


async def test_a_report_too_long_for_telegram_is_cut_to_fit_and_the_file_still_comes(
    alice_en: ChatDriver, storage: SqliteStorage
) -> None:
    rows = [["ICCID", "expiry", "plan", "note"]]
    rows += [[iccid(1), f"2027-01-{1 + n % 28:02d}", "", f"copy {n}"] for n in range(1500)]
    rows += [[iccid(2), "2027-01-01", "每" * 3000, "x"]]  # a plan nobody can read, quoted
    events = await alice_en.send_document("big.csv", csv_bytes(rows), "/import")
    (report,) = [e for e in events if e.kind == "message"]
    assert report.text is not None
    assert "Not imported: 1501" in report.text
    assert len(report.text.encode("utf-16-le")) // 2 <= 4096
    assert "more" in report.text
    (rejected,) = documents(events)
    assert rejected.content is not None
    assert len(read_sheet(rejected.content, CHAT_LIMITS).rows) == 1501
    assert len(rejected.content) < 400_000  # short reasons, not every other row's number


async def test_a_refused_file_can_be_fixed_and_sent_straight_back(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await alice.send("/import")
    png = PNG_SIGNATURE + b"\0" * 64
    assert "不是表格文件" in texts(await alice.send_document("cards.xlsx", png))
    bad = csv_bytes([["ICCID", "到期日"], [iccid(1), "明年"]])
    assert "未导入：1" in texts(await alice.send_document("cards.csv", bad))
    good = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    assert "新增：1" in texts(await alice.send_document("cards.csv", good))
    # everything imported: the wait is over, a further file is not imported
    other = csv_bytes([["ICCID", "到期日"], [iccid(2), "2027-01-01"]])
    assert "新增" not in texts(await alice.send_document("more.csv", other))
    assert await storage.count_cards(alice.chat_id) == 1


async def test_a_refused_captioned_file_can_be_sent_back_without_the_caption(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    bad = csv_bytes([["卡号", "到期日"], ["8986", "2027-01-01"]])
    assert "未导入：1" in texts(await alice.send_document("c.csv", bad, caption="/import"))
    good = csv_bytes([["卡号", "到期日"], [iccid(1), "2027-01-01"]])
    assert "新增：1" in texts(await alice.send_document("c.csv", good))


# --- carriers, look-alike ICCIDs, the edit trail, reports that name the cards ------------------


def lettered(digits: str) -> str:
    """The ICCID as a misreading types it: ``8986OO…`` for ``898600…``."""
    assert digits[4:6] == "00"
    return digits[:4] + "OO" + digits[6:]


async def test_an_import_takes_the_carrier_from_the_prefix_and_notes_a_contradiction(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    unicom_card = iccid(4, prefix="8986011")
    await add(storage, alice.chat_id, 4, iccid=unicom_card, carrier=Carrier.CHINA_TELECOM)
    contradicting = iccid(3, prefix="8986011")
    content = csv_bytes(
        [
            ["ICCID", "到期日", "运营商", "商户"],
            [iccid(1), "2027-01-31", "", ""],  # 898600: China Mobile
            [iccid(2, prefix="8986031"), "2027-01-31", "", ""],  # 898603: China Telecom
            [contradicting, "2027-01-31", "移动", "收银台3"],  # 898601 is Unicom: given wins
            [unicom_card, "2027-06-30", "", ""],  # an empty cell keeps the card's carrier
            [iccid(5, prefix="8986991"), "2027-01-31", "", ""],  # no known prefix
        ]
    )
    said = texts(await alice.send_document("cards.csv", content, "/import"))
    assert "新增：4" in said
    assert "更新：1" in said
    carriers = []
    for number in (iccid(1), iccid(2, prefix="8986031"), contradicting, unicom_card):
        card = await storage.get_card_by_iccid(alice.chat_id, number)
        assert card is not None
        carriers.append(card.carrier)
    assert carriers == [
        Carrier.CHINA_MOBILE,
        Carrier.CHINA_TELECOM,
        Carrier.CHINA_MOBILE,
        Carrier.CHINA_TELECOM,
    ]
    other = await storage.get_card_by_iccid(alice.chat_id, iccid(5, prefix="8986991"))
    assert other is not None
    assert other.carrier is Carrier.OTHER
    assert "有 1 张卡填的运营商和 ICCID 前缀不一致" in said
    assert f"第 4 行 {contradicting} 收银台3：文件里是中国移动，前缀 898601 是中国联通" in said
    assert "第 5 行" not in said  # the card's own carrier, untouched by the file: no note


async def test_an_iccid_with_lookalike_letters_is_never_a_second_card_silently(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 1)
    await add(storage, alice.chat_id, 3, iccid=lettered(iccid(3)))  # really has the letters
    content = csv_bytes(
        [
            ["ICCID", "到期日"],
            [lettered(iccid(1)), "2027-01-31"],  # the chat has the digits: refused
            [iccid(2), "2027-01-31"],
            [lettered(iccid(2)), "2027-01-31"],  # the file has the digits: refused
            [lettered(iccid(3)), "2027-06-30"],  # the chat has exactly this one: updated
            [lettered(iccid(4)), "2027-01-31"],  # nothing like it: imported, with a warning
        ]
    )
    events = await alice.send_document("cards.csv", content, "/import")
    said = texts(events)
    for expected in ("新增：2", "更新：1", "未导入：2"):
        assert expected in said
    assert "是不是 8986 0010 0000 0000 0017？这个号码的卡已经在这里了" in said
    assert "是不是 8986 0010 0000 0000 0025？第 3 行就是这个号码" in said
    assert await storage.get_card_by_iccid(alice.chat_id, lettered(iccid(1))) is None
    assert await storage.get_card_by_iccid(alice.chat_id, lettered(iccid(2))) is None
    assert await storage.get_card_by_iccid(alice.chat_id, lettered(iccid(4))) is not None
    assert "有 1 张新卡的 ICCID 里有字母 O、l 或 I" in said
    assert f"第 6 行 {lettered(iccid(4))}：是不是 {iccid(4)}？" in said
    assert "第 5 行" not in said
    (rejected,) = documents(events)
    assert rejected.content is not None
    reasons = [row.cells[-1] for row in read_sheet(rejected.content, CHAT_LIMITS).rows]
    assert all("是不是" in str(reason) for reason in reasons)


@pytest.mark.telegram_only  # Telegram's display name (WeCom gives a userid)
async def test_a_renewal_by_file_goes_to_the_cards_edit_trail(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 1, expiry=date(2026, 12, 1), label="旧店")
    await add(storage, alice.chat_id, 2, expiry=date(2027, 3, 1))
    content = csv_bytes(
        [
            ["ICCID", "到期日", "商户", "运营商"],
            [iccid(1), "2027-12-01", "新店", ""],
            [iccid(2), "2027-03-01", "", ""],  # unchanged: no trail
        ]
    )
    assert "更新：1" in texts(await alice.send_document("续费.csv", content, "/import"))
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    trail = await storage.list_card_edits(alice.chat_id, card.id)
    assert sorted((e.field, e.old_value, e.new_value) for e in trail) == [
        (EditField.EXPIRY, "2026-12-01", "2027-12-01"),
        (EditField.LABEL, "旧店", "新店"),
    ]
    assert {(e.by_user_id, e.by_name) for e in trail} == {(alice.user["id"], "Alice")}
    two = await storage.get_card_by_iccid(alice.chat_id, iccid(2))
    assert two is not None
    assert await storage.list_card_edits(alice.chat_id, two.id) == []
    detail = texts(await alice.press_data(f"cd:{card.id}"))
    assert "Alice：到期日 2026-12-01 → 2027-12-01" in detail
    # an older file applied anyway is an edit by the same person too
    old = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-06-01"]])
    await alice.send_document("旧.csv", old, "/import")
    await alice.press("仍然导入")
    (latest, *_) = await storage.list_card_edits(alice.chat_id, card.id)
    assert (latest.field, latest.old_value, latest.new_value, latest.by_name) == (
        EditField.EXPIRY,
        "2027-12-01",
        "2027-06-01",
        "Alice",
    )


@pytest.mark.telegram_only  # WeCom passes a robot no files from groups
async def test_a_group_import_report_names_each_card_masked(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    boss = group["boss"]
    await add(storage, boss.chat_id, 1, expiry=date(2026, 12, 1), label="收银台1")
    await add(storage, boss.chat_id, 2, expiry=date(2027, 6, 1), label="收银台2")
    one = await storage.get_card_by_iccid(boss.chat_id, iccid(1))
    assert one is not None
    await storage.update_card(boss.chat_id, one.model_copy(update={"muted": True}))
    content = csv_bytes(
        [
            ["ICCID", "到期日"],
            [iccid(1), "2027-12-01"],  # renews a muted card
            [iccid(2), "2027-01-01"],  # older than SimWatch's
            [bad_luhn(3), "2027-01-01"],  # check digit
        ]
    )
    said = texts(await boss.send_document("cards.csv", content, "/import"))
    assert f"第 2 行 {mask_iccid(iccid(1))} 收银台1" in said
    assert (
        f"第 3 行 {mask_iccid(iccid(2))} 收银台2：文件里 2027-01-01，SimWatch 里 2027-06-01" in said
    )
    assert f"第 4 行 {mask_iccid(bad_luhn(3))}" in said
    for number in (iccid(1), iccid(2), bad_luhn(3)):
        assert number not in said


async def test_english_import_reports_are_sentences(
    alice_en: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice_en.chat_id, 1, expiry=date(2027, 6, 1))
    await add(storage, alice_en.chat_id, 2, expiry=date(2026, 12, 1))
    two = await storage.get_card_by_iccid(alice_en.chat_id, iccid(2))
    assert two is not None
    await storage.update_card(alice_en.chat_id, two.model_copy(update={"muted": True}))
    content = csv_bytes(
        [
            ["ICCID", "expiry"],
            [iccid(1), "2027-01-01"],
            [iccid(2), "2027-12-01"],
            [bad_luhn(3), "2027-01-01"],
            [iccid(4), "someday"],
        ]
    )
    said = texts(await alice_en.send_document("cards.csv", content, "/import"))
    assert "(1)" not in said
    assert ": 1." not in said
    for sentence in (
        "⏪ 1 row was not imported: its expiry is earlier than SimWatch's.",
        "🔔 The file renewed 1 muted card (later expiry); its reminders are back on:",
        "⚠️ The ICCID check digit doesn't match for 1 card (imported; please check for typos):",
        f"Row 2, {iccid(1)}: file 2027-01-01, SimWatch 2027-06-01",
        "press the button below to import that row too.",
    ):
        assert sentence in said
    alice_en.find_button("⏪ Import anyway: 1 older row")
    done = texts(await alice_en.press("Import anyway"))
    assert "⏪ Imported as the file says: 1 card has an earlier expiry now." in done
