"""The Telegram side, through the real Application and the Bot API emulator: the JobQueue tick,
the digest's buttons, the reminder settings menu, and the chat-activity hook."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import cast

import pytest
from cards_util import iccid
from telegram import Update

from bot.app import AnyApplication
from bot.chatdriver import ChatDriver, texts
from bot.clock import FixedClock
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.emulator.records import BotMessage
from bot.models import Card, CardDraft, Period, RenewalRule
from bot.reminders.digest import mute_data, snooze_data
from bot.reminders.models import ReminderSettings
from bot.reminders.runner import ReminderRunner
from handlers.reminder_schedule import RUNNER_KEY, install_reminders
from storage.base import RenewalDraft, Storage
from storage.factory import stores_for

BOTH_CHANNELS = True  # each test that uses alice also runs as a WeCom user (conftest)

DAY = date(2026, 11, 25)  # conftest's NOW is 10:00 in Shanghai on this day
DAY_NOON = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
BOSS_EN = 1201  # a group's English-speaking administrator


@pytest.fixture
async def runner(
    app: AnyApplication,
    storage: Storage,
    clock: FixedClock,
    emulator: BotApiEmulator,
    tmp_path: Path,
) -> ReminderRunner:
    """The runner the app installed (its tick is off in tests: each test runs passes itself)."""
    return cast(ReminderRunner, app.bot_data[RUNNER_KEY])


async def add_card(storage: Storage, chat_id: int, n: int, days_left: int, **extra: object) -> Card:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    draft = CardDraft(iccid=iccid(n), expiry=DAY + timedelta(days=days_left), **extra)  # type: ignore[arg-type]
    return await storage.add_card(chat_id, draft, FixedClock(DAY_NOON).now())


def digest_message(emulator: BotApiEmulator, chat_id: int) -> BotMessage:
    [message] = [
        m for m in emulator.chat_messages(chat_id) if m.text and "流量卡到期提醒" in m.text
    ]
    return message


def card_buttons(message: BotMessage, card: Card) -> list[str]:
    """The digest's buttons for one card."""
    mine = {f"rn:{card.id}", mute_data(card.id)} | {
        snooze_data(days, card.id, card.expiry) for days in (1, 3)
    }
    return [str(data) for row in message.buttons for _, data in row if data in mine]


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_the_scheduled_tick_sends_the_digest(
    app: AnyApplication,
    storage: Storage,
    clock: FixedClock,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    tmp_path: Path,
) -> None:
    await add_card(storage, alice.chat_id, 1, 3, label="收银台1")
    settings = Settings(database_path=tmp_path / "simwatch.sqlite3")
    install_reminders(
        app, storage, settings=settings, clock=clock, first_tick=0.01, tick_seconds=3600
    )
    [event] = await emulator.wait_for_events(alice.chat_id, timeout=5)
    assert event.text is not None
    assert "收银台1" in event.text
    assert "3 天后到期" in event.text


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_snooze_button(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    group: dict[str, ChatDriver],
) -> None:
    bob = group["bob"]
    first = await add_card(storage, bob.chat_id, 1, -2)
    second = await add_card(storage, bob.chat_id, 2, 3)
    await runner.tick()
    message = digest_message(emulator, bob.chat_id)
    events = await bob.press_data(snooze_data(1, first.id, first.expiry), message.message_id)
    answers = [e for e in events if e.kind == "callback_answer"]
    assert answers[0].text == f"💤 好的，…{first.iccid[-6:]} 到 11月26日 再提醒。"
    card = await storage.get_card(bob.chat_id, first.id)
    assert card is not None
    assert card.snoozed_until == DAY + timedelta(days=1)
    edited = emulator.chat_messages(bob.chat_id)[0]
    assert card_buttons(edited, first) == []  # dealt with: its buttons are gone
    assert len(card_buttons(edited, second)) == 4


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_mute_and_unmute_buttons(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    group: dict[str, ChatDriver],
) -> None:
    bob = group["bob"]
    card = await add_card(storage, bob.chat_id, 1, 0, label="前台")
    await runner.tick()
    message = digest_message(emulator, bob.chat_id)
    events = await bob.press_data(mute_data(card.id), message.message_id)
    said = texts(events)
    assert f"🔕 已静音 …{card.iccid[-6:]}，不再提醒。" in said
    assert "Bob静音了流量卡" in said
    assert "前台" in said
    muted = await storage.get_card(bob.chat_id, card.id)
    assert muted is not None
    assert muted.muted
    undo = await bob.press("🔔 恢复提醒")
    assert "Bob恢复了流量卡" in texts(undo)
    unmuted = await storage.get_card(bob.chat_id, card.id)
    assert unmuted is not None
    assert not unmuted.muted


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_in_private_the_digest_buttons_answer_with_the_full_iccid(
    runner: ReminderRunner, storage: Storage, emulator: BotApiEmulator, alice: ChatDriver
) -> None:
    """As the digest's own lines and every other screen of a private chat do."""
    first = await add_card(storage, alice.chat_id, 1, 3)
    second = await add_card(storage, alice.chat_id, 2, 0)
    await runner.tick()
    message = digest_message(emulator, alice.chat_id)
    assert first.iccid in str(message.text)
    snoozed = await alice.press_data(snooze_data(1, first.id, first.expiry), message.message_id)
    assert f"💤 好的，{first.iccid} 到 11月26日 再提醒。" in texts(snoozed)
    muted = await alice.press_data(mute_data(second.id), message.message_id)
    assert f"🔕 已静音 {second.iccid}，不再提醒。" in texts(muted)


async def test_old_digest_buttons_act_on_the_card_as_it_is_now(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    group: dict[str, ChatDriver],
    alice: ChatDriver,
) -> None:
    bob = group["bob"]
    card = await add_card(storage, bob.chat_id, 1, 3)
    gone = await add_card(storage, bob.chat_id, 2, 3)
    theirs = await add_card(storage, alice.chat_id, 3, 3)
    await runner.tick()
    message = digest_message(emulator, bob.chat_id)
    await storage.renew_card(
        bob.chat_id,
        card.id,
        RenewalDraft(
            renewed_at=DAY_NOON,
            by_user_id=None,
            by_name="Boss",
            old_expiry=card.expiry,
            new_expiry=date(2027, 11, 28),
            period=None,
            rule=RenewalRule.SET_DATE,
        ),
    )
    events = await bob.press_data(snooze_data(3, card.id, card.expiry), message.message_id)
    assert "现在 2027-11-28 到期，无需操作" in texts(events)
    await storage.delete_card(bob.chat_id, gone.id)
    events = await bob.press_data(mute_data(gone.id), message.message_id)
    assert "找不到这张卡" in texts(events)
    # a forged button with a card of another chat: not found, and nothing changes
    events = await bob.press_data(mute_data(theirs.id), message.message_id)
    assert "找不到这张卡" in texts(events)
    still = await storage.get_card(alice.chat_id, theirs.id)
    assert still is not None
    assert not still.muted


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_renewed_button_opens_the_renew_flow(
    runner: ReminderRunner, storage: Storage, emulator: BotApiEmulator, alice: ChatDriver
) -> None:
    card = await add_card(storage, alice.chat_id, 1, 3)
    await runner.tick()
    message = digest_message(emulator, alice.chat_id)
    events = await alice.press_data(f"rn:{card.id}", message.message_id)
    assert card.iccid in texts(events)
    assert digest_message(emulator, alice.chat_id).text == message.text  # still there


def buttons_of(message: BotMessage) -> list[tuple[str, str | None]]:
    return [(text, data) for row in message.buttons for text, data in row]


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_renewing_from_a_group_digest_keeps_the_digest_for_everyone(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    group: dict[str, ChatDriver],
) -> None:
    bob, boss = group["bob"], group["boss"]
    first = await add_card(storage, bob.chat_id, 1, 3, label="前台")
    second = await add_card(storage, bob.chat_id, 2, 5)
    await runner.tick()
    digest = digest_message(emulator, bob.chat_id)
    events = await bob.press_data(f"rn:{first.id}", digest.message_id)
    asked = [e for e in events if e.kind == "message"]
    assert "续多久" in texts(asked)  # the renewal is a new message
    now = digest_message(emulator, bob.chat_id)
    assert now.text == digest.text  # the day's list stays for everyone
    assert card_buttons(now, second) == card_buttons(digest, second)  # untouched
    renewing = f"⏳ …{first.iccid[-6:]} 续费中…"
    assert (renewing, f"rn:{first.id}:d") in buttons_of(now)
    # only its ✅ changed: 💤 and 🔕 still work while the renewal is open, and after a /cancel
    others = [data for data in card_buttons(digest, first) if not data.startswith("rn:")]
    assert len(others) == 3  # 💤 1 day, 💤 3 days, 🔕
    assert card_buttons(now, first) == others
    assert "已取消" in texts(await bob.send("/cancel"))
    after = digest_message(emulator, bob.chat_id)
    assert after.text == digest.text
    assert card_buttons(after, first) == others

    # someone else takes it over from the digest's button and finishes it; meanwhile the
    # second card is snoozed on the digest
    events = await boss.press_data(f"rn:{first.id}:d", digest.message_id)
    await bob.press_data(snooze_data(1, second.id, second.expiry), digest.message_id)
    assert "续多久" in texts(events)
    await boss.press("1 个月")
    await boss.press("跳过")
    assert "已续费" in texts(await boss.press("确认续费"))
    renewed = await storage.get_card(bob.chat_id, first.id)
    assert renewed is not None
    assert renewed.expiry == date(2026, 12, 28)
    now = digest_message(emulator, bob.chat_id)
    assert now.text == digest.text
    assert card_buttons(now, second) == []  # snoozed meanwhile: its buttons stay gone
    done = f"✔️ …{first.iccid[-6:]} 已续费 · 2026-12-28 到期"
    assert (done, f"dg:i:{first.id}") in buttons_of(now)
    assert renewing not in [text for text, _ in buttons_of(now)]
    events = await bob.press_data(f"dg:i:{first.id}", digest.message_id)
    assert texts(events) == f"…{first.iccid[-6:]} 已续费，现在 2026-12-28 到期。"


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_reminder_settings_menu(
    runner: ReminderRunner, storage: Storage, alice: ChatDriver
) -> None:
    await alice.send("/settings")
    menu = texts(await alice.press_data("rs:menu"))
    assert "到期提醒设置" in menu
    assert "09:00" in menu
    assert "提前 30、7、3、1 天和到期当天提醒" in menu
    assert "每天提醒，最多 90 天" in menu
    await alice.press_data("rs:time")
    assert "没看懂" in texts(await alice.send("25点"))
    saved = texts(await alice.send("晚上9点"))
    assert "✅ 已保存" in saved
    assert "21:00" in saved
    await alice.press_data("rs:days")
    saved = texts(await alice.press_data("rs:set:d:7.3.1.0"))
    assert "提前 7、3、1 天和到期当天提醒" in saved
    await alice.press_data("rs:overdue")
    saved = texts(await alice.send("30"))
    assert "每天提醒，最多 30 天" in saved
    store = stores_for(storage).reminders
    assert await store.get_settings(alice.chat_id) == ReminderSettings(
        send_time=time(21, 0), days_before=(7, 3, 1, 0), overdue_daily_days=30
    )
    forged = await alice.press_data("rs:set:d:999")  # out of range: ignored
    assert [e.kind for e in forged] == ["callback_answer"]
    done = texts(await alice.press_data("rs:done"))
    assert "每天 21:00（Asia/Shanghai）发送" in done


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_only_group_admins_change_reminder_settings(
    runner: ReminderRunner, storage: Storage, group: dict[str, ChatDriver]
) -> None:
    bob, boss = group["bob"], group["boss"]
    await bob.send("/settings")
    assert "到期提醒设置" in texts(await bob.press_data("rs:menu"))  # looking is fine
    refused = await bob.press_data("rs:set:t:0700")
    assert any(e.show_alert and e.text == "只有群管理员可以修改提醒设置。" for e in refused)
    refused = await bob.press_data("rs:time")
    assert any(e.show_alert for e in refused)
    await boss.press_data("rs:time")
    assert "07:00" in texts(await boss.press_data("rs:set:t:0700"))
    store = stores_for(storage).reminders
    assert (await store.get_settings(boss.chat_id)).send_time == time(7, 0)


@pytest.mark.telegram_only  # Telegram's blocking (WeCom has no such state)
async def test_a_chat_that_blocked_the_bot_is_back_when_it_writes(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    alice: ChatDriver,
    app: AnyApplication,
) -> None:
    await add_card(storage, alice.chat_id, 1, -1)
    emulator.set_blocked(alice.chat_id)
    await runner.tick()
    store = stores_for(storage).reminders
    assert not await store.is_active(alice.chat_id)
    emulator.set_blocked(alice.chat_id, False)
    await alice.send("/start")
    assert await store.is_active(alice.chat_id)
    # blocking shows up as an update too: paused at once, back when unblocked
    kicked = emulator.my_chat_member_update(
        alice.chat, alice.user, new_status="kicked", enqueue=False
    )
    await app.process_update(Update.de_json(kicked, app.bot))
    assert not await store.is_active(alice.chat_id)
    back = emulator.my_chat_member_update(
        alice.chat, alice.user, new_status="member", enqueue=False
    )
    await app.process_update(Update.de_json(back, app.bot))
    assert await store.is_active(alice.chat_id)


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_a_renewal_by_a_person_ends_a_mute_and_lists_show_it(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    clock: FixedClock,
    alice: ChatDriver,
) -> None:
    card = await add_card(storage, alice.chat_id, 1, 3, label="前台")
    await runner.tick()
    await alice.press_data(mute_data(card.id), digest_message(emulator, alice.chat_id).message_id)
    mark = f"{card.iccid} 前台 · 到期 {card.expiry.isoformat()} 🔕"
    assert mark in texts(await alice.send("/cards"))
    assert mark in texts(await alice.send("/expiring"))
    assert mark in texts(await alice.send("/find 前台"))
    assert "提醒：🔕 已静音" in texts(await alice.press_data(f"cd:{card.id}"))

    await alice.send(f"/renew {card.iccid[-6:]} 1年")
    done = texts(await alice.press("确认续费"))
    assert "续费后已恢复到期提醒" in done
    listing = texts(await alice.send("/cards"))
    assert "前台 · 到期 2027-11-28" in listing
    assert "🔕" not in listing
    assert "提醒：开启" in texts(await alice.press_data(f"cd:{card.id}"))
    # and it is reminded again before its new expiry
    emulator.take_events()
    clock.instant += timedelta(days=365)
    await runner.tick()  # a jump ahead is acted on once the next tick confirms it
    await runner.tick()
    assert "前台 · 到期 2027-11-28" in texts(emulator.take_events(alice.chat_id))


async def test_an_automatic_renewal_keeps_the_mute(
    runner: ReminderRunner, storage: Storage, emulator: BotApiEmulator, alice: ChatDriver
) -> None:
    card = await add_card(
        storage, alice.chat_id, 1, 0, plan_period=Period(months=1), auto_renew=True
    )
    await alice.send(f"/edit {card.iccid[-6:]}")
    await alice.press("静音提醒")
    await runner.tick()
    renewed = await storage.get_card(alice.chat_id, card.id)
    assert renewed is not None
    assert renewed.expiry == date(2026, 12, 25)
    assert renewed.muted
    assert "🔕" in texts(await alice.send("/cards"))


@pytest.mark.telegram_only  # Telegram's display name (WeCom gives a userid)
async def test_a_mute_through_edit_is_announced_in_the_group_as_from_a_digest(
    runner: ReminderRunner, storage: Storage, group: dict[str, ChatDriver]
) -> None:
    bob, boss = group["bob"], group["boss"]
    card = await add_card(storage, bob.chat_id, 1, 3, label="前台")
    await bob.send(f"/edit {card.iccid[-6:]}")
    said = texts(await bob.press("静音提醒"))
    assert f"Bob静音了流量卡 …{card.iccid[-6:]} · 前台，之后不再提醒" in said
    muted = await storage.get_card(bob.chat_id, card.id)
    assert muted is not None
    assert muted.muted
    # the notice's undo button works for anyone in the group
    assert "Boss恢复了流量卡" in texts(await boss.press("🔔 恢复提醒"))
    [menu] = await boss.send(f"/edit {card.iccid[-6:]}")
    await boss.press_data(f"et:{card.id}:mute", menu.message_id)
    said = texts(await boss.press_data(f"et:{card.id}:mute", menu.message_id))  # unmute
    assert f"Boss恢复了流量卡 …{card.iccid[-6:]} · 前台的到期提醒" in said
    unmuted = await storage.get_card(bob.chat_id, card.id)
    assert unmuted is not None
    assert not unmuted.muted


async def test_an_english_users_digest_is_in_english(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    alice_en: ChatDriver,
) -> None:
    await alice_en.send("/start")  # never touches /settings
    await add_card(storage, alice_en.chat_id, 1, 3)
    await runner.tick()
    [digest] = emulator.chat_messages(alice_en.chat_id)[1:]
    assert digest.text is not None
    assert "SIM cards to renew" in digest.text
    assert "到期" not in digest.text


async def test_a_groups_digest_speaks_its_first_users_language_until_settings_fix_one(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    app: AnyApplication,
    clock: FixedClock,
) -> None:
    chat = emulator.group_chat(-100777, "Shop", supergroup=True, admins=[BOSS_EN])
    boss = ChatDriver(app, emulator, chat, emulator.user(BOSS_EN, "Boss", language_code="en"))
    staff = boss.as_user(emulator.user(BOSS_EN + 1, "小王", language_code="zh-hans"))
    await boss.send("/cards")  # the first to use the bot here: English
    said = texts(await staff.send("/settings"))
    assert "设置" in said  # replies follow each person's language
    assert "每日提醒语言：English" in said
    await add_card(storage, chat["id"], 1, 3)
    await runner.tick()
    [digest] = [m for m in emulator.chat_messages(chat["id"]) if "renew" in (m.text or "")]
    assert "SIM cards to renew" in (digest.text or "")
    # an admin fixes Chinese for everyone: the next digest and every reply are Chinese
    await boss.press_data("st:lang:zh_CN", emulator.last_message(chat["id"]).message_id)
    assert "每日提醒语言：中文（本聊天所有人统一）" in texts(await boss.send("/settings"))
    await add_card(storage, chat["id"], 2, 30)
    clock.instant += timedelta(days=1)
    assert await runner.tick() is None  # a day's jump at once: believed on the next tick
    await runner.tick()
    assert "流量卡到期提醒" in (emulator.chat_messages(chat["id"])[-1].text or "")


@pytest.mark.parametrize("told_in", ["supergroup", "group"])
async def test_a_migration_message_merges_the_group_into_its_supergroup(
    runner: ReminderRunner,
    storage: Storage,
    emulator: BotApiEmulator,
    app: AnyApplication,
    told_in: str,
) -> None:
    """Telegram's service message (``migrate_from_chat_id`` in the supergroup, or
    ``migrate_to_chat_id`` in the group) arrives after someone used the bot in the supergroup:
    the old group's language, time zone, reminder settings and cards fill the new chat; a
    card both have becomes one, with both histories."""
    old_id = -4242
    boss_user = emulator.user(BOSS_EN, "Boss", language_code="zh-hans")
    group_json = emulator.group_chat(old_id, "门店群", admins=[BOSS_EN])
    old = ChatDriver(app, emulator, group_json, boss_user)
    await old.send("/cards")
    chat = await storage.get_chat(old_id)
    assert chat is not None
    await storage.save_chat(chat.model_copy(update={"language": "en", "timezone": "Asia/Tokyo"}))
    store = stores_for(storage).reminders
    await store.save_settings(old_id, ReminderSettings(send_time=time(8, 0)))
    shared = await add_card(storage, old_id, 1, 40)
    await add_card(storage, old_id, 2, 50, label="后厨")
    await storage.renew_card(old_id, shared.id, renewal(shared.expiry, DAY + timedelta(days=60)))
    supergroup = emulator.upgrade_to_supergroup(old_id)
    new = ChatDriver(app, emulator, supergroup, boss_user)
    await new.send("/cards")  # seen first: a chat of its own, with the defaults
    new_shared = await add_card(storage, supergroup["id"], 1, 20, label="收银台")
    await storage.renew_card(
        supergroup["id"], new_shared.id, renewal(new_shared.expiry, DAY + timedelta(days=30))
    )
    service_message = {
        "message_id": 999,
        "date": int(DAY_NOON.timestamp()),
        "from": boss_user,
    }
    if told_in == "supergroup":
        service_message |= {"chat": supergroup, "migrate_from_chat_id": old_id}
    else:
        service_message |= {"chat": group_json, "migrate_to_chat_id": supergroup["id"]}
    moved = {"update_id": 10_000, "message": service_message}
    await app.process_update(Update.de_json(moved, app.bot))
    assert await storage.get_chat(old_id) is None
    merged = await storage.get_chat(supergroup["id"])
    assert merged is not None
    assert (merged.language, merged.timezone) == ("en", "Asia/Tokyo")
    assert (await store.get_settings(supergroup["id"])).send_time == time(8, 0)
    cards = await storage.list_cards(supergroup["id"], limit=10)
    assert len(cards) == 2
    [card] = [c for c in cards if c.iccid == shared.iccid]
    assert (card.expiry, card.label) == (DAY + timedelta(days=60), "收银台")
    assert len(await storage.list_renewals(supergroup["id"], card.id)) == 2
    said = texts(await new.send("/cards"))
    assert "后厨" in said
    assert "收银台" in said


def renewal(old: date, new: date) -> RenewalDraft:
    return RenewalDraft(
        renewed_at=DAY_NOON,
        by_user_id=BOSS_EN,
        by_name="Boss",
        old_expiry=old,
        new_expiry=new,
        period=None,
        rule=RenewalRule.SET_DATE,
    )
