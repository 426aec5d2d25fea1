"""Cards out of service (停用) through the bot, both backends: archiving from the card's screen
(with a confirm step) and by /archive, restoring, what archived cards are left out of (/cards,
/expiring, /stats, /cost, /calendar, the reminder pass), /find marking them, /addcard and
/renew of an archived card."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import cast

import pytest
from cards_util import iccid
from fixtures.bulk_files import csv_bytes
from icalendar import Calendar

from bot.app import AnyApplication
from bot.bulk.reading import CHAT_LIMITS, read_sheet
from bot.chatdriver import ChatDriver, ChatEvent, texts
from bot.emulator import BotApiEmulator
from bot.models import Card, CardDraft, Period
from bot.reminders.runner import ReminderRunner
from handlers.reminder_schedule import RUNNER_KEY
from storage.base import Storage

BOTH_CHANNELS = True  # each test that uses alice also runs as a WeCom user (conftest)

TODAY = date(2026, 11, 25)  # conftest's NOW, in Shanghai
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


async def add(storage: Storage, chat_id: int, n: int, days: int, **extra: object) -> Card:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    draft = CardDraft(iccid=iccid(n), expiry=TODAY + timedelta(days=days), **extra)  # type: ignore[arg-type]
    return await storage.add_card(chat_id, draft, CREATED)


async def archive(storage: Storage, card: Card) -> None:
    assert await storage.set_archived(card.chat_id, card.id, CREATED) is not None


def shown(events: list[ChatEvent]) -> list[ChatEvent]:
    return [e for e in events if e.kind != "callback_answer"]


async def test_archive_from_the_card_screen_asks_first_then_restores(
    alice: ChatDriver, storage: Storage
) -> None:
    card = await add(storage, alice.chat_id, 1, 10, label="收银台1")
    await alice.send("/cards")
    await alice.press("收银台1")
    asked = texts(await alice.press("🗄 停用"))
    assert "确定停用流量卡" in asked
    assert "续费和修改记录都保留" in asked
    still = await storage.get_card(alice.chat_id, card.id)
    assert still is not None
    assert not still.archived  # nothing happens before the confirmation
    assert "流量卡详情" in texts(await alice.press("保留"))
    await alice.press("🗄 停用")
    done = texts(await alice.press("🗄 确定停用"))
    assert "🗄 已停用" in done
    detail = texts(await alice.press_data(f"cd:{card.id}"))
    assert "已停用" in detail
    assert "已停用（2026-11-25 起）" in detail
    assert "已停用，不提醒" in detail  # its screen does not say reminders are on
    restored = texts(await alice.press("♻️ 恢复使用"))
    assert "♻️ 已恢复使用" in restored
    again = await storage.get_card(alice.chat_id, card.id)
    assert again is not None
    assert not again.archived


async def test_archived_cards_are_left_out_of_lists_reports_and_calendar(
    alice: ChatDriver, storage: Storage
) -> None:
    kept = await add(
        storage, alice.chat_id, 1, 5, plan_period=Period(months=12), plan_price_fen=3000
    )
    gone = await add(
        storage, alice.chat_id, 2, 6, plan_period=Period(months=12), plan_price_fen=99_900
    )
    await archive(storage, gone)
    cards = texts(await alice.send("/cards"))
    assert "共 1 张" in cards
    assert iccid(1) in cards
    assert iccid(2) not in cards
    expiring = texts(await alice.send("/expiring"))
    assert iccid(1) in expiring
    assert iccid(2) not in expiring
    stats = texts(await alice.send("/stats"))
    assert "1 张" in stats
    assert "2 张" not in stats
    cost = texts(await alice.send("/cost"))
    assert "¥30.00" in cost
    assert "999" not in cost  # the archived card's plan is not due
    (ics,) = [e for e in await alice.send("/calendar") if e.kind == "document"]
    events = Calendar.from_ical(ics.content or b"").walk("VEVENT")
    assert [str(e["uid"]).split("-")[1] for e in events] == [str(kept.id)]
    found = texts(await alice.send(f"/find {iccid(2)[-6:]}"))
    assert iccid(2) in found
    assert "🗄已停用" in found


async def test_archive_command_confirms_and_offers_restore_on_an_archived_card(
    alice: ChatDriver, storage: Storage
) -> None:
    card = await add(storage, alice.chat_id, 7, 3)
    assert "用法" in texts(await alice.send("/archive"))
    assert "没有找到" in texts(await alice.send("/archive 0000"))
    assert "确定停用流量卡" in texts(await alice.send(f"/archive {iccid(7)[-4:]}"))
    await alice.press("🗄 确定停用")
    offered = texts(await alice.send(f"/archive {iccid(7)}"))
    assert "已经停用了" in offered
    assert "要恢复使用吗" in offered
    await alice.press("♻️ 恢复使用")
    saved = await storage.get_card(alice.chat_id, card.id)
    assert saved is not None
    assert not saved.archived
    assert "没有停用" in texts(await alice.send(f"/unarchive {iccid(7)[-4:]}"))
    await archive(storage, card)
    assert "♻️ 已恢复使用" in texts(await alice.send(f"/unarchive {iccid(7)[-4:]}"))
    saved = await storage.get_card(alice.chat_id, card.id)
    assert saved is not None
    assert not saved.archived


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_in_a_group_only_admins_archive(
    group: dict[str, ChatDriver], storage: Storage
) -> None:
    card = await add(storage, group["bob"].chat_id, 3, 3)
    assert "只有群管理员" in texts(await group["bob"].send(f"/archive {iccid(3)[-4:]}"))
    refused = await group["bob"].press_data(f"ay:{card.id}")
    assert any(e.kind == "callback_answer" and "只有群管理员" in (e.text or "") for e in refused)
    saved = await storage.get_card(card.chat_id, card.id)
    assert saved is not None
    assert not saved.archived
    await group["boss"].send(f"/archive {iccid(3)[-4:]}")
    assert "🗄 已停用" in texts(await group["boss"].press("🗄 确定停用"))


async def test_adding_an_archived_cards_iccid_offers_to_restore_it(
    alice: ChatDriver, storage: Storage
) -> None:
    card = await add(storage, alice.chat_id, 4, 30)
    await archive(storage, card)
    said = texts(await alice.send(f"/addcard {iccid(4)} 2027-06-30"))
    assert "停用了" in said
    assert "要恢复使用吗" in said
    # what a restore brings back is said, not the date just typed
    assert f"到期日 {card.expiry.isoformat()}" in said
    assert "这次输入的内容不会保存" in said
    assert "♻️ 已恢复使用" in texts(await alice.press("♻️ 恢复使用"))
    assert await storage.count_cards(alice.chat_id) == 1


async def test_renewing_an_archived_card_restores_it_and_says_so(
    alice: ChatDriver, storage: Storage
) -> None:
    card = await add(storage, alice.chat_id, 5, -3)
    await archive(storage, card)
    await alice.send(f"/renew {iccid(5)[-4:]} 12个月 30")
    done = texts(await alice.press("✅ 确认续费"))
    assert "已续费" in done
    assert "续费后已恢复使用" in done
    saved = await storage.get_card(alice.chat_id, card.id)
    assert saved is not None
    assert not saved.archived
    assert len(await storage.list_renewals(alice.chat_id, card.id)) == 1


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_the_daily_digest_leaves_archived_cards_out(
    app: AnyApplication, alice: ChatDriver, storage: Storage, emulator: BotApiEmulator
) -> None:
    due = await add(storage, alice.chat_id, 8, 1)
    off = await add(storage, alice.chat_id, 9, 1)
    await archive(storage, off)
    runner = cast(ReminderRunner, app.bot_data[RUNNER_KEY])
    await runner.tick()
    digests = [m.text or "" for m in emulator.chat_messages(alice.chat_id) if m.text]
    assert any(iccid(8) in text for text in digests)
    assert not any(iccid(9) in text for text in digests)
    assert due.id != off.id


# --- import and export --------------------------------------------------------------------


def _csv(rows: list[list[str]]) -> bytes:
    return csv_bytes(rows)


async def test_an_archived_column_archives_and_restores_and_without_it_cards_stay_archived(
    alice: ChatDriver, storage: Storage
) -> None:
    back = await add(storage, alice.chat_id, 1, 10)
    await archive(storage, back)
    await add(storage, alice.chat_id, 2, 10)
    kept = await add(storage, alice.chat_id, 3, 10)
    await archive(storage, kept)
    content = _csv(
        [
            ["ICCID", "到期日", "停用"],
            [iccid(1), "2027-06-30", "否"],  # archived: restored
            [iccid(2), "2027-06-30", "是"],  # in service: archived
            [iccid(4), "2027-06-30", "1"],  # new, archived from the start
        ]
    )
    said = texts(await alice.send_document("停用.csv", content, caption="/import"))
    assert "新增：1" in said
    assert "按「停用」列停用了 2 张卡" in said
    assert "按「停用」列恢复使用了 1 张停用的卡" in said
    by_iccid = {c.iccid: c for c in await storage.list_cards(alice.chat_id)}
    assert list(by_iccid) == [iccid(1)]  # the only card in service now (3 is still archived)
    for n in (2, 3, 4):
        card = await storage.get_card_by_iccid(alice.chat_id, iccid(n))
        assert card is not None
        assert card.archived, n
    # a file without the column: the archived card it names stays archived, and the report says so
    plain = _csv([["ICCID", "到期日"], [iccid(3), "2027-09-30"]])
    said = texts(await alice.send_document("旧表.csv", plain, caption="/import"))
    assert "更新：1" in said
    assert "有 1 张卡已经停用，文件里没有说要恢复，仍然停用" in said
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(3))
    assert card is not None
    assert card.archived
    assert card.expiry == date(2027, 9, 30)


async def test_a_bad_archived_cell_is_a_rejected_row(alice: ChatDriver, storage: Storage) -> None:
    content = _csv([["ICCID", "到期日", "archived"], [iccid(5), "2027-06-30", "maybe"]])
    said = texts(await alice.send_document("x.csv", content, caption="/import"))
    assert "未导入：1" in said
    assert await storage.get_card_by_iccid(alice.chat_id, iccid(5)) is None


async def test_export_says_which_cards_are_archived_and_imports_back_unchanged(
    alice: ChatDriver, storage: Storage
) -> None:
    await add(storage, alice.chat_id, 1, 10)
    gone = await add(storage, alice.chat_id, 2, 20)
    await archive(storage, gone)
    await alice.send("/export")
    (exported,) = [e for e in await alice.press("CSV") if e.kind == "document"]
    assert exported.content is not None
    sheet = read_sheet(exported.content, CHAT_LIMITS)
    column = sheet.headers.index("停用")
    assert "状态" in sheet.headers  # the status column is another one
    values = {str(row.cells[0]).strip(): row.cells[column] for row in sheet.rows}
    assert values == {iccid(1): "否", iccid(2): "是"}
    back = texts(await alice.send_document(exported.filename or "", exported.content, "/import"))
    assert "无变化：2" in back
    card = await storage.get_card(alice.chat_id, gone.id)
    assert card is not None
    assert card.archived


# --- /calendar's horizon ------------------------------------------------------------------


def _event_days(events: list[ChatEvent]) -> list[date]:
    (ics,) = [e for e in events if e.kind == "document"]
    found = Calendar.from_ical(ics.content or b"").walk("VEVENT")
    return sorted(e.decoded("dtstart") for e in found)


async def test_calendar_takes_a_horizon_with_overdue_cards_today(
    alice: ChatDriver, storage: Storage
) -> None:
    for n, days in enumerate([-40, 5, 89, 91, 300, 400]):
        await add(storage, alice.chat_id, n, days)
    ninety = await alice.send("/calendar 90")
    assert _event_days(ninety) == [TODAY, TODAY + timedelta(days=5), TODAY + timedelta(days=89)]
    caption = texts(ninety)
    assert "只含 2027-02-23 以前到期的卡" in caption
    assert "3 张卡" in caption
    year = _event_days(await alice.send("/calendar"))  # 12 months: up to 2027-11-25
    assert year == [TODAY, *(TODAY + timedelta(days=d) for d in (5, 89, 91, 300))]
    (ics,) = [e for e in await alice.send("/calendar 1") if e.kind == "document"]
    (overdue,) = Calendar.from_ical(ics.content or b"").walk("VEVENT")  # the 5-day one is out
    assert overdue.decoded("dtstart") == TODAY
    assert [a.decoded("trigger") for a in overdue.walk("VALARM")] == [timedelta(hours=9)]
    assert _event_days(await alice.send("/calendar 730天")) == [*year, TODAY + timedelta(days=400)]


async def test_calendar_horizon_out_of_bounds_is_a_friendly_answer(
    alice: ChatDriver, storage: Storage
) -> None:
    await add(storage, alice.chat_id, 1, 5)
    for bad in ("0", "731", "-5", "abc", "90 10"):
        said = await alice.send(f"/calendar {bad}")
        assert [e.kind for e in said] == ["message"], bad
        assert "1 到 730 之间的整数" in texts(said), bad


async def test_a_pick_list_marks_the_archived_one_of_two_alike_cards(
    alice: ChatDriver, storage: Storage
) -> None:
    """A returned terminal and its replacement share a label: /renew must not make renewing
    the returned one the easy mistake."""
    returned = await add(storage, alice.chat_id, 1, 10, label="收银台1")
    await add(storage, alice.chat_id, 2, 12, label="收银台1")
    await archive(storage, returned)
    (asked,) = shown(await alice.send("/renew 收银台1"))
    labels = [text for row in asked.buttons for text, _ in row]
    assert f"🗄 {iccid(1)} 收银台1" in labels
    assert f"{iccid(2)} 收银台1" in labels


async def test_a_chat_whose_cards_are_all_archived_is_told_they_are_there(
    alice: ChatDriver, storage: Storage
) -> None:
    card = await add(storage, alice.chat_id, 3, 40)
    await archive(storage, card)
    for command in ("/cards", "/stats", "/cost", "/calendar"):
        said = texts(await alice.send(command))
        assert "另有 1 张已停用的卡" in said, command
        assert "/unarchive" in said, command


async def test_a_calendar_with_no_card_within_its_horizon_says_so(
    alice: ChatDriver, storage: Storage
) -> None:
    await add(storage, alice.chat_id, 5, 200)
    said = texts(await alice.send("/calendar 30"))
    assert "接下来 30 天里没有到期的卡" in said
    assert "还没有卡" not in said  # there is one, just later


async def test_the_command_menu_offers_archive(
    app: AnyApplication, emulator: BotApiEmulator
) -> None:
    for code in ("", "zh", "en"):
        names = [c["command"] for c in emulator.commands_for(language_code=code)]
        assert "archive" in names
