"""Editing and deleting from the detail view, /settings, /start and /help, the command menu."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from cards_util import iccid

from bot.app import AnyApplication
from bot.chatdriver import ChatDriver, texts
from bot.emulator import BotApiEmulator
from bot.models import Card, CardDraft, Carrier, EditField, Period
from storage.base import RenewalDraft
from storage.sqlite import SqliteStorage

BOTH_CHANNELS = True  # each test that uses alice also runs as a WeCom user (conftest)

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


async def a_card(
    storage: SqliteStorage, driver: ChatDriver, expiry: date = date(2026, 12, 1)
) -> Card:
    await storage.ensure_chat(driver.chat_id, is_group=driver.chat_id < 0)
    draft = CardDraft(iccid=iccid(1), expiry=expiry, label="前台")
    return await storage.add_card(driver.chat_id, draft, CREATED)


async def test_edit_each_field_from_the_detail_view(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await a_card(storage, alice)
    await alice.send("/cards")  # a message for the button to hang on
    await alice.press_data(f"cd:{card.id}")
    await alice.press("编辑")
    await alice.press("到期日")
    assert "2026-12-01 改为 2027-05-01" in texts(await alice.send("2027-05-01"))
    assert "已保存" in texts(await alice.press("确认修改"))
    await alice.press("查看这张卡")
    for field, value in [
        ("标签", "后厨 <b>POS</b>"),
        ("套餐", "6个月 50元"),
        ("备注", "老板说 & 明年换卡"),
    ]:
        await alice.press("编辑")
        await alice.press(field)
        assert "已保存" in texts(await alice.send(value))
    await alice.press("编辑")
    await alice.press("运营商")
    await alice.press("中国联通")
    await alice.press("编辑")
    await alice.press("开启自动续费")
    await alice.press("静音提醒")
    edited = await storage.get_card(alice.chat_id, card.id)
    assert edited is not None
    assert edited.expiry == date(2027, 5, 1)
    assert edited.label == "后厨 <b>POS</b>"  # stored and shown verbatim, never as markup
    assert edited.plan_period == Period(months=6)
    assert edited.plan_price_fen == 5000
    assert edited.note == "老板说 & 明年换卡"
    assert edited.carrier is Carrier.CHINA_UNICOM
    assert edited.auto_renew
    assert edited.muted
    detail = texts(await alice.press_data(f"cd:{card.id}"))
    assert "后厨 <b>POS</b>" in detail
    assert "已静音" in detail


@pytest.mark.telegram_only  # Telegram's display name (WeCom gives a userid)
async def test_an_expiry_length_counts_from_the_current_expiry_and_is_confirmed(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await a_card(storage, alice, date(2027, 9, 30))
    await alice.send(f"/edit {iccid(1)[-4:]}")
    assert "现在 2027-09-30 到期" in texts(await alice.press("到期日"))
    confirm = texts(await alice.send("3个月"))
    assert "2027-09-30 改为 2027-12-30" in confirm  # not today + 3 months (2027-02-25)
    assert "不算续费" in confirm
    assert "⚠️" not in confirm
    assert await storage.get_card(alice.chat_id, card.id) == card  # nothing saved yet
    assert "2027-09-30 → 2027-12-30" in texts(await alice.press("确认修改"))
    edited = await storage.get_card(alice.chat_id, card.id)
    assert edited is not None
    assert edited.expiry == date(2027, 12, 30)
    assert await storage.list_renewals(alice.chat_id, card.id) == []  # an edit is no renewal
    (trail,) = await storage.list_card_edits(alice.chat_id, card.id)
    assert (trail.field, trail.old_value, trail.new_value) == (
        EditField.EXPIRY,
        "2027-09-30",
        "2027-12-30",
    )
    assert trail.by_user_id == alice.user["id"]
    assert trail.by_name == "Alice"
    detail = texts(await alice.press("查看这张卡"))
    assert "暂无续费记录" in detail
    assert "修改记录" in detail
    assert "Alice：到期日 2027-09-30 → 2027-12-30" in detail
    assert "已付：¥0.00" in texts(await alice.send("/cost"))


@pytest.mark.telegram_only  # presses again: WeCom replaces a pressed card
async def test_an_earlier_or_past_expiry_is_warned_about(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await a_card(storage, alice, date(2027, 9, 30))
    await alice.send(f"/edit {iccid(1)[-4:]}")
    await alice.press("到期日")
    earlier = texts(await alice.send("2027-03-01"))
    assert "早于现在的到期日 2027-09-30" in earlier
    assert "已经过了" not in earlier
    assert "已取消" in texts(await alice.press("取消"))
    await alice.press_data(f"ef:{card.id}:expiry")
    past = texts(await alice.send("2026-11-01"))
    assert "早于" in past
    assert "已经过了" in past
    await alice.press("确认修改")
    edited = await storage.get_card(alice.chat_id, card.id)
    assert edited is not None
    assert edited.expiry == date(2026, 11, 1)


async def test_an_expiry_edit_on_a_stale_screen_does_not_undo_a_renewal(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await a_card(storage, alice, date(2027, 9, 30))
    await alice.send(f"/edit {iccid(1)[-4:]}")
    await alice.press("到期日")
    await alice.send("2027-10-31")
    renewed = RenewalDraft(
        renewed_at=CREATED,
        by_user_id=None,
        by_name="Bob",
        old_expiry=date(2027, 9, 30),
        new_expiry=date(2028, 9, 30),
        period=Period(months=12),
        rule="extend",
    )
    assert await storage.renew_card(alice.chat_id, card.id, renewed) is not None
    assert "刚刚被续费或修改过" in texts(await alice.press("确认修改"))
    now = await storage.get_card(alice.chat_id, card.id)
    assert now is not None
    assert now.expiry == date(2028, 9, 30)
    assert await storage.list_card_edits(alice.chat_id, card.id) == []


@pytest.mark.telegram_only  # presses again: WeCom replaces a pressed card
async def test_the_trail_keeps_other_fields_and_masks_iccids_in_groups(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    boss = group["boss"]
    card = await a_card(storage, boss)
    await boss.send(f"/edit {iccid(1)[-6:]}")
    await boss.press("标签")
    await boss.send("收银台2")
    await boss.press_data(f"ef:{card.id}:carrier")
    # a carrier that contradicts the ICCID's prefix (898600: China Mobile) is kept, with a note
    assert "898600 是中国移动的" in texts(await boss.press("中国联通"))
    await boss.press_data(f"ef:{card.id}:plan")
    await boss.send("3个月 30元")
    await boss.press_data(f"ef:{card.id}:iccid")
    detail = texts(await boss.send(iccid(2)))  # saved, then the card screen
    fields = [e.field for e in await storage.list_card_edits(boss.chat_id, card.id)]
    assert fields == [EditField.ICCID, EditField.PLAN, EditField.CARRIER, EditField.LABEL]
    assert "Boss：标签 前台 → 收银台2" in detail
    assert "运营商 其他 → 中国联通" in detail
    assert "套餐 — → 3 个月 · ¥30.00" in detail
    assert f"ICCID …{iccid(1)[-6:]} → …{iccid(2)[-6:]}" in detail
    assert iccid(1) not in detail
    assert iccid(2) not in detail


async def test_bad_edit_value_asks_again_and_keeps_the_card(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await a_card(storage, alice)
    await alice.send(f"/edit {iccid(1)[-4:]}")
    await alice.press("到期日")
    assert "不存在" in texts(await alice.send("2027-02-30"))
    await alice.send("/cancel")
    assert await storage.get_card(alice.chat_id, card.id) == card


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_auto_renew_needs_a_plan(alice: ChatDriver, storage: SqliteStorage) -> None:
    card = await a_card(storage, alice)
    await alice.send("/cards")  # a message for the button to hang on
    await alice.press_data(f"ed:{card.id}")
    (notice,) = await alice.press("开启自动续费")
    assert notice.show_alert
    assert "先设置套餐" in (notice.text or "")


async def test_delete_asks_first_and_can_be_kept(alice: ChatDriver, storage: SqliteStorage) -> None:
    card = await a_card(storage, alice)
    # one card matches: straight to the question, as /edit and /renew open the card
    assert "确定要删除" in texts(await alice.send(f"/delete {iccid(1)[-4:]}"))
    assert "前台" in texts(await alice.press("保留"))
    assert await storage.get_card(alice.chat_id, card.id) is not None
    await alice.press("删除")
    await alice.press("确认删除")
    assert await storage.get_card(alice.chat_id, card.id) is None


async def test_delete_by_command_is_for_group_admins(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob, boss = group["bob"], group["boss"]
    await storage.ensure_chat(bob.chat_id, is_group=True)
    draft = CardDraft(iccid=iccid(1), expiry=date(2026, 12, 1), label="前台")
    await storage.add_card(bob.chat_id, draft, datetime(2026, 1, 1, tzinfo=UTC))
    said = texts(await bob.send(f"/delete {iccid(1)[-4:]}"))
    assert "管理员" in said
    assert "确定要删除" not in said
    assert "确定要删除" in texts(await boss.send(f"/delete {iccid(1)[-4:]}"))


async def test_settings_language_and_timezone(alice: ChatDriver, storage: SqliteStorage) -> None:
    shown = texts(await alice.send("/settings"))
    assert "Asia/Shanghai" in shown
    await alice.press("修改时区")
    assert "不认识时区" in texts(await alice.send("Mars/Olympus"))
    assert "Pacific/Honolulu" in texts(await alice.send("honolulu"))
    chat = await storage.get_chat(alice.chat_id)
    assert chat is not None
    assert chat.timezone == "Pacific/Honolulu"
    await alice.send("/settings")
    await alice.press("English")
    assert "Commands" in texts(await alice.send("/help"))


async def test_start_help_and_unknown(alice: ChatDriver, group: dict[str, ChatDriver]) -> None:
    assert "/addcard" in texts(await alice.send("/start"))
    assert "/expiring" in texts(await alice.send("/help"))
    assert "没有这个命令" in texts(await alice.send("/frobnicate"))
    assert "群管理员" in texts(await group["bob"].send("/start"))
    assert await group["bob"].send("今天谁值班？") == []  # staff chatter is left alone


async def test_command_menu_is_registered_in_both_languages(
    app: AnyApplication, emulator: BotApiEmulator
) -> None:
    calls = [c for c in emulator.calls if c.method == "setMyCommands"]
    languages = {c.params.get("language_code") for c in calls}
    assert {"zh", "en"} <= languages
    english = next(c for c in calls if c.params.get("language_code") == "en")
    assert {"command": "addcard", "description": "Add a SIM card"} in english.params["commands"]


async def test_cancel_with_nothing_to_cancel_says_so_kindly(
    alice: ChatDriver, alice_en: ChatDriver, group: dict[str, ChatDriver]
) -> None:
    said = texts(await alice.send("/cancel"))
    assert "没有进行中的操作" in said
    assert "没有这个命令" not in said
    assert "nothing to cancel" in texts(await alice_en.send("/cancel"))
    assert "没有进行中的操作" in texts(await group["bob"].send("/cancel"))
    await alice.send("/addcard")  # in a conversation, /cancel still ends it
    assert "已取消" in texts(await alice.send("/cancel"))
    assert "没有进行中的操作" in texts(await alice.send("/cancel"))


async def test_id_shows_the_chat_id_for_the_command_line(
    app: AnyApplication,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    alice_en: ChatDriver,
    group: dict[str, ChatDriver],
) -> None:
    said = texts(await alice.send("/id"))
    assert f"这个聊天的 ID 是 {alice.chat_id}" in said
    assert f"python -m bot import 卡片.xlsx --chat {alice.chat_id}" in said
    assert f"python -m bot export --chat {alice.chat_id}" in said
    grouped = texts(await group["bob"].send("/id"))
    assert f"--chat {group['bob'].chat_id}" in grouped
    assert "This chat's id is" in texts(await alice_en.send("/id"))
    assert "/id" in texts(await alice.send("/help"))
    assert "/id" in texts(await alice_en.send("/help"))
    english = next(
        c
        for c in emulator.calls
        if c.method == "setMyCommands" and c.params.get("language_code") == "en"
    )
    assert {"command": "id", "description": "This chat's id"} in english.params["commands"]
