"""Groups under Telegram's privacy mode (the default for bots): the bot hears only commands,
replies to its own messages and mentions. Step-by-step questions therefore carry a selective
ForceReply in groups, so a member's Telegram client sends the answer as a reply.

The emulator filters what the bot gets; ``ChatDriver.send`` types as a Telegram client does
(a reply when the bot's latest message to that person carries ForceReply), ``send_plain``
as someone who closed the reply box.
"""

from __future__ import annotations

import html
from datetime import date
from typing import Any

import pytest
from cards_util import bad_luhn, iccid
from conftest import BOB, BOSS, NOW
from telegram import ForceReply
from telegram.error import BadRequest

from bot.app import AnyApplication
from bot.chatdriver import ChatDriver, texts
from bot.emulator import ApiError, BotApiEmulator, ChatEvent
from bot.emulator.markup import MAX_PLACEHOLDER_CHARS, validate_reply_markup
from bot.i18n import LANGUAGES, catalogue, t
from bot.models import CardDraft
from storage.sqlite import SqliteStorage

GROUP = -100777
BOT = "simwatch_test_bot"  # the emulator's bot username


@pytest.fixture
def shop(app: AnyApplication, emulator: BotApiEmulator) -> dict[str, ChatDriver]:
    """A shop's group with the bot in privacy mode: Bob and Eve are staff (Eve's Telegram is in
    English), the boss administers it."""
    boss = emulator.user(BOSS, "Boss", language_code="zh-hans")
    bob = emulator.user(BOB, "Bob", language_code="zh-hans")
    eve = emulator.user(1004, "Eve", language_code="en")
    chat = emulator.group_chat(GROUP, "门店群", supergroup=True, admins=[BOSS], privacy_mode=True)
    return {
        "boss": ChatDriver(app, emulator, chat, boss),
        "bob": ChatDriver(app, emulator, chat, bob),
        "eve": ChatDriver(app, emulator, chat, eve),
    }


def force_reply(event: ChatEvent) -> dict[str, Any] | None:
    markup = event.reply_markup or {}
    return markup if markup.get("force_reply") is True else None


def asking(events: list[ChatEvent]) -> dict[str, Any]:
    """The ForceReply the bot's answer ends with (exactly one: the question)."""
    (markup,) = [m for m in map(force_reply, events) if m is not None]
    return markup


def placeholder(lang: str, name: str) -> str:
    return html.unescape(t(lang, f"ask.placeholder.{name}"))


def delivered_as_reply(emulator: BotApiEmulator, driver: ChatDriver) -> bool:
    """Whether the driver's newest message went out as a reply to one of the bot's messages."""
    chat = emulator.state.chats[driver.chat_id]
    mine = [m for m in chat.user_messages.values() if m["from"]["id"] == driver.user["id"]]
    replied = mine[-1].get("reply_to_message") or {}
    return bool(replied.get("from", {}).get("is_bot"))


# --- the emulator: what privacy mode lets through -------------------------------------------


async def test_privacy_mode_lets_only_commands_replies_and_mentions_through(
    emulator: BotApiEmulator, shop: dict[str, ChatDriver], alice: ChatDriver
) -> None:
    bob = shop["bob"]

    def reaches(text: str, *, reply_to: int | None = None, chat: int = GROUP) -> bool:
        update = emulator.message_update(chat, BOB, text, reply_to=reply_to)
        queued = any(u["update_id"] == update["update_id"] for u in emulator.pending_updates)
        assert queued == emulator.reaches_bot(update)
        return queued

    assert not reaches("今天谁值班？")
    assert reaches("/cards")
    assert reaches(f"/cards@{BOT.upper()}")  # usernames are case-insensitive
    assert not reaches("/cards@another_bot")
    assert reaches(f"@{BOT} 在吗")
    assert not reaches(f"mail me at shop@{BOT}.example")
    chatter = emulator.message_update(GROUP, BOSS, "收到")
    assert not reaches("好的", reply_to=chatter["message"]["message_id"])  # a reply to a person
    await bob.send("/help")
    answer = emulator.last_message(GROUP)
    assert reaches("谢谢", reply_to=answer.message_id)  # a reply to the bot
    # the group still saw the plain message: members can reply to it
    assert emulator.state.chats[GROUP].user_messages[chatter["message"]["message_id"]]
    assert reaches("hello", chat=alice.chat_id)  # private chats: everything
    emulator.set_bot_status(GROUP, "administrator")
    assert reaches("今天谁值班？")  # an administrator bot hears everything
    emulator.set_bot_status(GROUP, "member")
    emulator.set_privacy_mode(GROUP, False)
    assert reaches("今天谁值班？")


@pytest.mark.parametrize(
    "markup",
    [
        {"force_reply": False},
        {"force_reply": "true"},
        {"force_reply": True, "selective": "yes"},
        {"force_reply": True, "input_field_placeholder": ""},
        {"force_reply": True, "input_field_placeholder": "x" * 65},
        {"force_reply": True, "input_field_placeholder": 30},
    ],
)
def test_malformed_force_reply_is_refused(markup: dict[str, Any]) -> None:
    with pytest.raises(ApiError):
        validate_reply_markup(markup)


async def test_force_reply_travels_to_the_emulator_and_is_checked(
    app: AnyApplication, emulator: BotApiEmulator, shop: dict[str, ChatDriver]
) -> None:
    ok = ForceReply(selective=True, input_field_placeholder="x" * 64)
    await app.bot.send_message(GROUP, "?", reply_markup=ok)
    last = emulator.last_message(GROUP)
    assert last.reply_markup == {
        "force_reply": True,
        "selective": True,
        "input_field_placeholder": "x" * 64,
    }
    too_long = ForceReply(input_field_placeholder="x" * 65)
    with pytest.raises(BadRequest, match="placeholder"):
        await app.bot.send_message(GROUP, "?", reply_markup=too_long)


async def test_an_edit_cannot_turn_a_message_into_a_force_reply(
    app: AnyApplication, emulator: BotApiEmulator, shop: dict[str, ChatDriver]
) -> None:
    # As on Telegram: edits take inline keyboards only, so a question that needs the reply box
    # after a button press must be a new message (what handlers.common.ask does).
    sent = await app.bot.send_message(GROUP, "第 2 步")
    with pytest.raises(BadRequest, match="Inline keyboard expected"):
        await app.bot.edit_message_text(
            "第 2 步：到期日",
            chat_id=GROUP,
            message_id=sent.message_id,
            reply_markup=ForceReply(selective=True),  # type: ignore[arg-type]
        )
    assert emulator.last_message(GROUP).text == "第 2 步"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_placeholder_fits_the_input_field(lang: str) -> None:
    hints = {k: v for k, v in catalogue(lang).items() if k.startswith("ask.placeholder.")}
    assert hints
    for key, hint in hints.items():
        assert 1 <= len(hint) <= MAX_PLACEHOLDER_CHARS, key
        assert html.escape(hint, quote=False) == hint, key  # plain text, no HTML to unescape


# --- /addcard in a privacy-mode group ---------------------------------------------------------


async def test_a_member_adds_a_card_step_by_step_by_answering_the_prompts(
    emulator: BotApiEmulator, shop: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob, boss = shop["bob"], shop["boss"]
    started = await bob.send("/addcard")
    assert "第 1 步" in texts(started)
    prompt = asking(started)
    assert prompt["selective"] is True
    assert prompt["input_field_placeholder"] == placeholder("zh_CN", "iccid")
    # only Bob's client opens the reply box: the question replies to his /addcard
    assert emulator.force_reply_target(GROUP, BOB) == started[-1].message_id
    assert emulator.force_reply_target(GROUP, BOSS) is None

    wrong = await bob.send("12345")  # a typo: said so, and asked again with ForceReply
    assert delivered_as_reply(emulator, bob)
    assert asking(wrong)["input_field_placeholder"] == placeholder("zh_CN", "iccid")
    assert await boss.send("老板路过") == []  # chatter in the group stays among the members

    expiry = await bob.send(iccid(1))
    assert "第 2 步" in texts(expiry)
    assert asking(expiry)["input_field_placeholder"] == placeholder("zh_CN", "expiry")
    assert "第 3 步" in texts(await bob.send("2027-01-31"))

    label = await bob.press("中国移动")  # a button press: the question comes with a mention
    assert "第 4 步" in texts(label)
    line = label[-1]
    assert asking(label)["input_field_placeholder"] == placeholder("zh_CN", "label")
    assert (line.text or "").startswith("Bob")
    last = emulator.last_message(GROUP)
    assert {"type": "text_mention", "offset": 0, "length": 3} in [
        {k: e[k] for k in ("type", "offset", "length")} for e in last.entities
    ]
    assert emulator.force_reply_target(GROUP, BOB) == line.message_id

    plan = await bob.send("收银台1")
    assert "第 5 步" in texts(plan)
    assert delivered_as_reply(emulator, bob)
    assert "请确认" in texts(await bob.press("跳过"))  # no plan: no auto-renew question
    saved = texts(await bob.press("保存"))
    assert "已保存" in saved

    card = await storage.get_card_by_iccid(GROUP, iccid(1))
    assert card is not None
    assert (card.expiry, card.label) == (date(2027, 1, 31), "收银台1")


async def test_a_corrected_iccid_after_the_check_digit_warning_reaches_the_bot(
    shop: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob = shop["bob"]
    await bob.send("/addcard")
    warning = await bob.send(bad_luhn(4))
    assert "校验码对不上" in texts(warning)
    assert asking(warning)["input_field_placeholder"] == placeholder("zh_CN", "iccid")
    assert "第 2 步" in texts(await bob.send(iccid(4)))  # a reply to the warning


async def test_plain_answers_never_reach_the_bot_so_the_conversation_waits(
    emulator: BotApiEmulator, shop: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob = shop["bob"]
    question = (await bob.send("/addcard"))[-1]
    assert await bob.send_plain(iccid(2)) == []  # no answer at all: the bot never saw it
    assert await bob.send_plain("2027-01-31") == []
    assert await storage.get_card_by_iccid(GROUP, iccid(2)) is None
    # the members did see it; the question still waits, and a reply to it is answered
    chat = emulator.state.chats[GROUP]
    assert iccid(2) in [m.get("text") for m in chat.user_messages.values()]
    assert question.message_id is not None
    assert "第 2 步" in texts(await bob.reply_to(question.message_id, iccid(2)))


async def test_another_member_keeps_their_own_reply_box(
    emulator: BotApiEmulator, shop: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob, boss = shop["bob"], shop["boss"]
    await bob.send("/addcard")
    await boss.send("/cards")  # answered to the boss, not to Bob
    assert "第 2 步" in texts(await bob.send(iccid(3)))  # Bob's client still replies to his


async def test_prompts_use_the_language_of_whoever_is_asked(shop: dict[str, ChatDriver]) -> None:
    eve = shop["eve"]
    started = await eve.send("/addcard")
    assert "Step 1" in texts(started)
    assert asking(started)["input_field_placeholder"] == placeholder("en", "iccid")
    assert "Step 2" in texts(await eve.send(iccid(4)))
    asked = await eve.send("2027-01-31")
    label = await eve.press("China Mobile")
    assert "Step 3" in texts(asked)
    assert asking(label)["input_field_placeholder"] == placeholder("en", "label")
    assert (label[-1].text or "").startswith("Eve: ")


# --- /renew, /edit, settings and /import in a privacy-mode group ------------------------------


async def add(storage: SqliteStorage, n: int, expiry: date) -> int:
    await storage.ensure_chat(GROUP, is_group=True)
    card = await storage.add_card(
        GROUP, CardDraft(iccid=iccid(n), expiry=expiry, label=f"T{n}"), NOW
    )
    return card.id


async def test_renew_with_a_typed_date_and_amount(
    emulator: BotApiEmulator, shop: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob = shop["bob"]
    card_id = await add(storage, 5, date(2026, 12, 1))
    await bob.send("/renew")
    period = await bob.press("T5")
    # the buttons stay on the question; the line after it opens Bob's reply box
    edited = [e for e in period if e.kind == "edit"]
    assert len(edited) == 1
    assert edited[0].buttons
    assert "续多久" in (edited[0].text or "")
    assert asking(period)["input_field_placeholder"] == placeholder("zh_CN", "period")
    amount = await bob.send("2027-06-30")
    assert delivered_as_reply(emulator, bob)
    assert "付了多少钱" in texts(amount)
    assert asking(amount)["input_field_placeholder"] == placeholder("zh_CN", "amount")
    confirm = texts(await bob.send("45"))
    assert "2026-12-01 → 2027-06-30" in confirm
    assert "¥45.00" in confirm
    assert "已续费" in texts(await bob.press("确认续费"))
    (renewal,) = await storage.list_renewals(GROUP, card_id)
    assert (renewal.new_expiry, renewal.amount_fen) == (date(2027, 6, 30), 4500)


async def test_edit_a_field_after_a_button_press(
    shop: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob = shop["bob"]
    card_id = await add(storage, 6, date(2026, 12, 1))
    await bob.send(f"/edit {iccid(6)[-6:]}")
    asked = await bob.press("备注")
    assert [e.kind for e in asked if e.kind != "callback_answer"] == ["message"]
    assert asking(asked)["input_field_placeholder"] == placeholder("zh_CN", "note")
    assert "已保存" in texts(await bob.send("在前台抽屉里"))
    card = await storage.get_card(GROUP, card_id)
    assert card is not None
    assert card.note == "在前台抽屉里"


async def test_admin_types_a_send_time_and_a_time_zone(shop: dict[str, ChatDriver]) -> None:
    boss = shop["boss"]
    await boss.send("/settings")
    await boss.press("提醒设置")
    asked = await boss.press("发送时间")
    assert asking(asked)["input_field_placeholder"] == placeholder("zh_CN", "time")
    assert "21:00" in texts(await boss.send("晚上9点"))
    await boss.send("/settings")
    asked = await boss.press("修改时区")
    assert asking(asked)["input_field_placeholder"] == placeholder("zh_CN", "timezone")
    assert "Asia/Tokyo" in texts(await boss.send("tokyo"))


async def test_import_file_sent_as_the_reply(
    shop: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    boss = shop["boss"]
    asked = await boss.send("/import")
    assert asking(asked)["input_field_placeholder"] == placeholder("zh_CN", "import_file")
    content = f"ICCID,到期日\n{iccid(7)},2027-03-01\n".encode()
    assert "1" in texts(await boss.send_document("cards.csv", content))
    assert await storage.get_card_by_iccid(GROUP, iccid(7)) is not None


async def test_a_refused_import_file_is_fixed_in_the_reply_box(
    shop: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    boss = shop["boss"]
    await boss.send("/import")
    refused = await boss.send_document("cards.csv", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert "不是表格文件" in texts(refused)
    assert asking(refused)["input_field_placeholder"] == placeholder("zh_CN", "import_file")
    bad = f"ICCID,到期日\n{iccid(7)},2027-03-01\n{iccid(8)},明年\n".encode()
    rows_refused = await boss.send_document("cards.csv", bad)  # the reply box sends a reply
    assert "未导入：1" in texts(rows_refused)
    assert asking(rows_refused)["input_field_placeholder"] == placeholder("zh_CN", "import_file")
    fixed = f"ICCID,到期日\n{iccid(8)},2028-03-01\n".encode()
    assert "新增：1" in texts(await boss.send_document("fixed.csv", fixed))
    assert await storage.get_card_by_iccid(GROUP, iccid(8)) is not None


# --- private chats are unchanged ------------------------------------------------------------


async def test_private_chats_get_no_force_reply(
    emulator: BotApiEmulator, alice: ChatDriver, storage: SqliteStorage
) -> None:
    events = await alice.send("/addcard")
    events += await alice.send(iccid(8))
    events += await alice.send("2027-01-31")
    events += await alice.press("中国移动")
    events += await alice.send("收银台1")
    events += await alice.press("跳过")
    events += await alice.press("保存")
    assert "已保存" in texts(events)
    assert [force_reply(e) for e in events] == [None] * len(events)
    # the carrier question became the label question in place, as before
    assert [e.kind for e in events].count("edit") >= 1
    sent = emulator.calls_to("sendMessage")
    assert not any("force_reply" in str(c.params.get("reply_markup")) for c in sent)
