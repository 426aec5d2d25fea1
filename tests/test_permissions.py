"""Groups and forged input: staff may add, view and renew; only admins delete or change settings;
nobody reaches another chat's cards, whatever callback data or arguments they send."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import cast

import pytest
from cards_util import iccid

from bot.app import AnyApplication
from bot.chatdriver import ChatDriver, texts
from bot.emulator import BotApiEmulator
from bot.models import Card, CardDraft
from bot.reminders.digest import mute_data, snooze_data
from bot.reminders.runner import ReminderRunner
from handlers.reminder_schedule import RUNNER_KEY
from storage.sqlite import SqliteStorage

BOTH_CHANNELS = True  # each test with alice or the group also runs on WeCom (conftest)

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


async def alice_card(storage: SqliteStorage, alice: ChatDriver) -> Card:
    await storage.ensure_chat(alice.chat_id, is_group=False)
    draft = CardDraft(iccid=iccid(42), expiry=date(2026, 12, 1), label="Alice的店")
    return await storage.add_card(alice.chat_id, draft, CREATED)


async def test_group_members_add_view_and_renew_with_masked_iccids(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob = group["bob"]
    await bob.send(f"/addcard {iccid(1)} 2026-12-20 移动 收银台")
    listing = texts(await bob.send("/cards"))
    assert iccid(1)[-6:] in listing
    assert iccid(1) not in listing  # only the last digits are shown to the group
    detail = texts(await bob.press("收银台"))
    assert iccid(1) not in detail
    await bob.press("续费")
    await bob.press("1 个月")
    await bob.press("跳过")
    assert "已续费" in texts(await bob.press("确认续费"))
    card = await storage.get_card_by_iccid(bob.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2027, 1, 20)


@pytest.mark.telegram_only  # a Telegram alert (WeCom says it in the chat)
async def test_only_admins_delete_in_groups(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob, boss = group["bob"], group["boss"]
    await bob.send(f"/addcard {iccid(2)} 2026-12-20")
    card = await storage.get_card_by_iccid(bob.chat_id, iccid(2))
    assert card is not None
    await bob.send("/cards")  # a message for the button to hang on
    await bob.press_data(f"cd:{card.id}")
    (refusal,) = await bob.press("删除")
    assert refusal.kind == "callback_answer"
    assert refusal.show_alert
    assert "只有群管理员" in (refusal.text or "")
    assert "只有群管理员" in texts(await bob.press_data(f"dy:{card.id}"))
    assert await storage.get_card(bob.chat_id, card.id) is not None

    await boss.send("/cards")  # a message for the button to hang on
    await boss.press_data(f"cd:{card.id}")
    assert "确定要删除" in texts(await boss.press("删除"))
    assert "已删除" in texts(await boss.press("确认删除"))
    assert await storage.get_card(boss.chat_id, card.id) is None


async def test_only_admins_change_group_settings(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob, boss = group["bob"], group["boss"]
    await bob.send("/settings")
    refusal = texts(await bob.press("English"))
    assert "只有群管理员" in refusal
    chat = await storage.get_chat(bob.chat_id)
    assert chat is not None
    assert chat.language is None
    await boss.send("/settings")
    assert "Settings" in texts(await boss.press("English"))
    assert "No cards registered yet" in texts(await bob.send("/cards"))


@pytest.mark.parametrize(
    "data",
    ["cd:{id}", "dl:{id}", "dy:{id}", "ed:{id}", "et:{id}:mute", "et:{id}:auto", "ef:{id}:label"],
)
async def test_forged_buttons_never_reach_another_chats_card(
    alice: ChatDriver,
    group: dict[str, ChatDriver],
    storage: SqliteStorage,
    data: str,
) -> None:
    card = await alice_card(storage, alice)
    boss = group["boss"]  # even an administrator of another chat
    await boss.send("/cards")
    said = texts(await boss.press_data(data.format(id=card.id)))
    assert "找不到这张卡" in said
    assert "Alice的店" not in said
    assert iccid(42) not in said
    assert await storage.get_card(alice.chat_id, card.id) == card


async def test_forged_renew_button_and_arguments(
    alice: ChatDriver, group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    card = await alice_card(storage, alice)
    bob = group["bob"]
    await bob.send("/cards")  # a message for the button to hang on
    assert "找不到这张卡" in texts(await bob.press_data(f"rn:{card.id}"))
    assert "没有找到" in texts(await bob.send(f"/renew {iccid(42)} 12"))
    assert "没有找到" in texts(await bob.send(f"/edit {iccid(42)[-6:]}"))
    assert "没有找到" in texts(await bob.send(f"/delete {iccid(42)[-6:]}"))
    assert await storage.get_card(alice.chat_id, card.id) == card
    assert await storage.list_renewals(alice.chat_id, card.id) == []


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
@pytest.mark.parametrize("data", ["ac:save", "rok", "rper:3", "pg:x:1", "garbage", "cd:abc"])
async def test_stale_or_junk_buttons_answer_without_changing_anything(
    alice: ChatDriver, storage: SqliteStorage, data: str
) -> None:
    card = await alice_card(storage, alice)
    await alice.send("/cards")
    await alice.press_data(data)
    assert await storage.get_card(alice.chat_id, card.id) == card
    assert await storage.count_cards(alice.chat_id) == 1


@pytest.mark.telegram_only  # Telegram's outsiders (WeCom shows a group's cards only to it)
async def test_buttons_answer_only_the_groups_members(
    app: AnyApplication,
    emulator: BotApiEmulator,
    group: dict[str, ChatDriver],
    storage: SqliteStorage,
) -> None:
    """A public group's messages (and their buttons) are visible to anyone with the link:
    someone who is not in the group presses them and nothing happens to its cards."""
    bob = group["bob"]
    await bob.send(f"/addcard {iccid(7)} 2026-11-28 移动 收银台")
    card = await storage.get_card_by_iccid(bob.chat_id, iccid(7))
    assert card is not None
    runner = cast(ReminderRunner, app.bot_data[RUNNER_KEY])
    await runner.tick()
    [digest] = [m for m in emulator.chat_messages(bob.chat_id) if "到期提醒" in (m.text or "")]
    await bob.send("/cards")
    listing = emulator.chat_messages(bob.chat_id)[-1]

    stranger = bob.as_user(emulator.user(4004, "Eve", language_code="en"))
    emulator.set_member_status(bob.chat_id, 4004, "left")
    kicked = bob.as_user(emulator.user(4005, "Mallory", language_code="zh-hans"))
    emulator.set_member_status(bob.chat_id, 4005, "kicked")
    presses = [
        (snooze_data(3, card.id, card.expiry), digest.message_id),
        (mute_data(card.id), digest.message_id),
        (f"rn:{card.id}", digest.message_id),
        (f"cd:{card.id}", listing.message_id),
        (f"et:{card.id}:mute", listing.message_id),
        (f"dl:{card.id}", listing.message_id),
        ("st:lang:en", listing.message_id),
        ("bx:csv", listing.message_id),
    ]
    for data, message_id in presses:
        for outsider, alert in (
            (stranger, "Only members of this group can use these buttons."),
            (kicked, "只有这个群的成员才能使用这些按钮。"),
        ):
            events = await outsider.press_data(data, message_id)
            assert [(e.kind, e.text, e.show_alert) for e in events] == [
                ("callback_answer", alert, True)
            ], data
    after = await storage.get_card(bob.chat_id, card.id)
    assert after == card  # not muted, not snoozed, not renewed
    chat = await storage.get_chat(bob.chat_id)
    assert chat is not None
    assert chat.language is None

    # back in the group: the same button works again
    emulator.set_member_status(bob.chat_id, 4004, "member")
    events = await stranger.press_data(mute_data(card.id), digest.message_id)
    assert "Eve" in texts(events)
    muted = await storage.get_card(bob.chat_id, card.id)
    assert muted is not None
    assert muted.muted


@pytest.mark.telegram_only  # a Telegram alert (WeCom says it in the chat)
async def test_a_button_of_someone_elses_conversation_says_whose_it_is(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob, boss = group["bob"], group["boss"]
    await bob.send("/addcard")
    await bob.send(iccid(2))
    await bob.send("2027-01-31")  # the carrier buttons, seen by the whole group
    (answered,) = await boss.press("中国移动")
    assert answered.kind == "callback_answer"
    assert answered.show_alert
    assert "这是Bob正在进行的操作" in (answered.text or "")
    assert "失效" not in (answered.text or "")
    assert "第 4 步" in texts(await bob.press("中国移动"))  # Bob's own step is untouched

    await boss.send(f"/addcard {iccid(3)} 2026-12-20 移动 前台")
    await bob.send("/cancel")
    await bob.send(f"/renew {iccid(3)[-4:]}")  # Bob's renewal: its period buttons
    (answered,) = await boss.press("3 个月")
    assert "只有Bob能点" in (answered.text or "")
    await bob.send("/cancel")
    (answered,) = await boss.press("3 个月")  # nobody's conversation any more: stale
    assert "已失效" in (answered.text or "")
    card = await storage.get_card_by_iccid(bob.chat_id, iccid(3))
    assert card is not None
    assert card.expiry == date(2026, 12, 20)


async def test_admin_in_a_telegram_group_points_to_telegrams_own_administrators(
    group: dict[str, ChatDriver], alice: ChatDriver
) -> None:
    assert "群设置" in texts(await group["bob"].send("/admin"))
    assert "用在群里" in texts(await alice.send("/admin"))
