"""The Bot API emulator, exercised through the real PTB client over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import struct
import time
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)
from telegram.request import HTTPXRequest

from bot.emulator import BotApiEmulator, Button, parse_html

ALICE = 1001
GROUP = -4001


def keyboard(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


def make_png(width: int, height: int) -> bytes:
    """A real (tiny, grey) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator() as emulator:
        emulator.private_chat(emulator.user(ALICE, "Alice"))
        emulator.group_chat(GROUP, "Shop", admins=[ALICE])
        yield emulator


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(emu.token, base_url=emu.base_url, base_file_url=emu.base_file_url) as client:
        yield client


# --- basics ------------------------------------------------------------------------------


async def test_get_me_wrong_token_and_unknown_method(emu: BotApiEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "simwatch_test_bot", True)

    stranger = Bot("999:WRONG", base_url=emu.base_url, base_file_url=emu.base_file_url)
    with pytest.raises(InvalidToken):
        await stranger.initialize()
    await stranger.shutdown()

    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    assert emu.calls_to("noSuchMethod")[0].status == 404


async def test_parameters_are_typed_by_name_in_every_request_shape(
    emu: BotApiEmulator, bot: Bot
) -> None:
    sent = await bot.send_message(ALICE, "123")
    call = emu.calls_to("sendMessage")[-1]
    assert call.params == {"chat_id": ALICE, "text": "123"}  # the text stays a string
    assert sent.text == "123"

    url = f"{emu.base_url}{emu.token}"
    async with httpx.AsyncClient() as client:
        as_json = await client.post(
            f"{url}/sendMessage", json={"chat_id": ALICE, "text": "json body"}
        )
        as_query = await client.get(f"{url}/SENDMESSAGE", params={"chat_id": ALICE, "text": "q"})
        bad_markup = await client.post(
            f"{url}/sendMessage",
            data={"chat_id": str(ALICE), "text": "x", "reply_markup": "{not json"},
        )
    assert as_json.json()["result"]["text"] == "json body"
    assert as_query.json()["result"]["text"] == "q"
    assert bad_markup.status_code == 400
    assert bad_markup.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: can't parse reply keyboard markup JSON object",
    }
    assert [m.text for m in emu.chat_messages(ALICE)] == ["123", "json body", "q"]


# --- messages, edits, keyboards ----------------------------------------------------------


async def test_send_then_edit_with_inline_keyboard(emu: BotApiEmulator, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "Pick", reply_markup=keyboard([("Yes", "y"), ("No", "n")]))
    assert sent.reply_markup == keyboard([("Yes", "y"), ("No", "n")])
    assert sent.from_user is not None
    assert sent.from_user.id == 123456

    edited = await bot.edit_message_text(
        "Picked", chat_id=ALICE, message_id=sent.message_id, reply_markup=keyboard([("Undo", "u")])
    )
    assert isinstance(edited, type(sent))
    assert edited.edit_date is not None

    message = emu.last_message(ALICE)
    assert (message.text, message.buttons) == ("Picked", [[("Undo", "u")]])
    events = emu.take_events(ALICE)
    assert [(e.kind, e.text) for e in events] == [("message", "Pick"), ("edit", "Picked")]
    assert events[0].buttons == [[Button("Yes", "y"), Button("No", "n")]]
    assert emu.take_events(ALICE) == []

    # Like Telegram, editing the text without reply_markup drops the keyboard.
    await bot.edit_message_text("Done", chat_id=ALICE, message_id=sent.message_id)
    assert emu.last_message(ALICE).reply_markup is None


async def test_edit_errors(emu: BotApiEmulator, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "Same", reply_markup=keyboard([("A", "a")]))
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "Same", chat_id=ALICE, message_id=sent.message_id, reply_markup=keyboard([("A", "a")])
        )
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(
            ALICE, sent.message_id, reply_markup=keyboard([("A", "a")])
        )
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=ALICE, message_id=999)
    user_message = emu.message_update(ALICE, ALICE, "hello")["message"]["message_id"]
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", chat_id=ALICE, message_id=user_message)


async def test_text_validation(bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(777, "hi")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(ALICE, " \n ")
    await bot.send_message(ALICE, "a" * 4096)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ALICE, "a" * 4097)
    # Telegram counts UTF-16 code units: each emoji here is two.
    await bot.send_message(ALICE, "😀" * 2048)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ALICE, "😀" * 2049)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(ALICE, "x", reply_markup=keyboard([("too long", "d" * 65)]))
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(ALICE, "x", reply_to_message_id=4242)


async def test_delete_message(emu: BotApiEmulator, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "bye")
    assert await bot.delete_message(ALICE, sent.message_id)
    assert emu.chat_messages(ALICE) == []
    assert [(e.kind, e.message_id) for e in emu.take_events(ALICE)][-1] == (
        "delete",
        sent.message_id,
    )
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(ALICE, sent.message_id)


async def test_a_bot_deletes_members_messages_only_with_the_right(
    emu: BotApiEmulator, bot: Bot
) -> None:
    """A basic group's administrator may delete any message; in a supergroup the bot needs the
    can_delete_messages right, which getChatMember reports."""
    supergroup = -1004001
    emu.group_chat(supergroup, "Big shop", supergroup=True, admins=[ALICE])
    for chat_id in (GROUP, supergroup):
        said = emu.message_update(chat_id, ALICE, "a secret", enqueue=False)["message"]
        with pytest.raises(BadRequest, match=r"(?i)message can't be deleted"):
            await bot.delete_message(chat_id, said["message_id"])  # a member only
    emu.set_bot_status(supergroup, "administrator", can_delete_messages=False)
    said = emu.message_update(supergroup, ALICE, "a secret", enqueue=False)["message"]
    with pytest.raises(BadRequest, match=r"(?i)message can't be deleted"):
        await bot.delete_message(supergroup, said["message_id"])
    member = await bot.get_chat_member(supergroup, emu.bot_user["id"])
    assert member.status == "administrator"
    assert member.can_delete_messages is False  # type: ignore[attr-defined]
    emu.set_bot_status(supergroup, "administrator")
    assert await bot.delete_message(supergroup, said["message_id"])
    emu.set_bot_status(GROUP, "administrator", can_delete_messages=False)  # a basic group
    said = emu.message_update(GROUP, ALICE, "a secret", enqueue=False)["message"]
    assert await bot.delete_message(GROUP, said["message_id"])
    kinds = [(e.kind, e.text) for e in emu.take_events(GROUP)]
    assert ("delete", "a secret") in kinds


# --- HTML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>s</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("Tom & Jerry", 'Unescaped "&" at byte offset 4'),
    ],
)
async def test_html_is_rejected_like_telegram(
    emu: BotApiEmulator, bot: Bot, html: str, reason: str
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities: ") as caught:
        await bot.send_message(ALICE, html, parse_mode="HTML")
    # PTB normalises the case of the description; the reason itself is Telegram's.
    assert reason.lower() in caught.value.message.lower()
    assert reason in str(emu.calls[-1].description)


async def test_html_is_stored_as_seen_with_entities(emu: BotApiEmulator, bot: Bot) -> None:
    html = (
        '<b>续费</b> &lt;ok&gt; &amp; <a href="https://t.me/x">link</a> '
        '<tg-spoiler>s</tg-spoiler> <pre><code class="language-py">x</code></pre>'
    )
    sent = await bot.send_message(ALICE, html, parse_mode="HTML")
    assert sent.text == "续费 <ok> & link s x"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 2),
        ("text_link", 10, 4),
        ("spoiler", 15, 1),
        ("pre", 17, 1),
    ]
    assert sent.entities[1].url == "https://t.me/x"
    assert sent.entities[3].language == "py"
    stored = emu.last_message(ALICE)
    assert (stored.text, stored.raw_text, stored.parse_mode) == (sent.text, html, "HTML")


def test_html_offsets_count_utf16_and_lenient_ampersand() -> None:
    assert parse_html("😀 <i>x</i>") == ("😀 x", [{"type": "italic", "offset": 3, "length": 1}])
    assert parse_html("Tom & Jerry &#33;", strict=False) == ("Tom & Jerry !", [])


# --- callbacks, commands, files ------------------------------------------------------------


async def test_callback_query_answer(emu: BotApiEmulator, bot: Bot) -> None:
    sent = await bot.send_message(ALICE, "Renew?", reply_markup=keyboard([("Renew", "renew:1")]))
    emu.take_events()
    update = emu.press_button(ALICE, ALICE, "Renew")
    query = update["callback_query"]
    assert query["data"] == "renew:1"
    assert query["message"]["text"] == "Renew?"

    [received] = await bot.get_updates()
    assert received.callback_query is not None
    assert received.callback_query.message is not None
    assert received.callback_query.message.message_id == sent.message_id
    assert await received.callback_query.answer("Done", show_alert=True)
    [answer] = emu.take_events(ALICE)
    assert (answer.kind, answer.message_id, answer.text, answer.show_alert) == (
        "callback_answer",
        sent.message_id,
        "Done",
        True,
    )
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await received.callback_query.answer()
    with pytest.raises(LookupError, match=r"(?i)no bot message 99"):
        emu.callback_update(ALICE, ALICE, 99, "renew:1")
    with pytest.raises(LookupError, match=r"(?i)no button with callback_data 'forged'"):
        emu.callback_update(ALICE, ALICE, sent.message_id, "forged", check_button=True)


async def test_set_my_commands_per_scope_and_language(emu: BotApiEmulator, bot: Bot) -> None:
    zh = [BotCommand("start", "开始"), BotCommand("cards", "流量卡")]
    assert await bot.set_my_commands(zh, scope=BotCommandScopeAllPrivateChats(), language_code="zh")
    assert await bot.set_my_commands([BotCommand("start", "Start")])
    scope = {"type": "all_private_chats"}
    assert emu.commands_for(scope, "zh") == [
        {"command": "start", "description": "开始"},
        {"command": "cards", "description": "流量卡"},
    ]
    assert emu.commands_for() == [{"command": "start", "description": "Start"}]
    assert ('{"type":"all_private_chats"}', "zh") in emu.commands
    fetched = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="zh")
    assert [c.command for c in fetched] == ["start", "cards"]
    assert await bot.get_my_commands(language_code="en") == ()
    with pytest.raises(BadRequest):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])
    with pytest.raises(BadRequest, match=r"(?i)language code"):
        await bot.set_my_commands([BotCommand("start", "x")], language_code="zh-hans")


async def test_send_document_and_photo_keep_the_bytes(emu: BotApiEmulator, bot: Bot) -> None:
    report = "卡号,到期\n8986,2025-01-01\n".encode()
    sent = await bot.send_document(
        ALICE, report, filename="cards.csv", caption="<b>导出</b>", parse_mode="HTML"
    )
    assert sent.document is not None
    assert sent.document.file_name == "cards.csv"
    assert sent.document.file_size == len(report)
    assert sent.caption == "导出"
    [event] = emu.take_events(ALICE)
    assert (event.kind, event.filename, event.content, event.text) == (
        "document",
        "cards.csv",
        report,
        "导出",
    )
    assert emu.last_message(ALICE).file is not None

    png = make_png(3, 2)
    photo = await bot.send_photo(ALICE, png, filename="chart.png")
    assert [(p.width, p.height) for p in photo.photo] == [(3, 2)]
    assert emu.take_events(ALICE)[0].content == png
    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await bot.send_photo(ALICE, b"not an image", filename="x.png")

    # Re-sending by file_id reuses the stored file.
    again = await bot.send_document(ALICE, sent.document.file_id)
    assert again.document is not None
    assert again.document.file_id == sent.document.file_id


async def test_user_document_can_be_downloaded(emu: BotApiEmulator, bot: Bot) -> None:
    content = bytes(range(256)) * 10
    emu.document_update(ALICE, ALICE, "iccids.xlsx", content, caption="导入")
    [update] = await bot.get_updates()
    assert update.message is not None
    assert update.message.document is not None
    document = update.message.document
    assert (document.file_name, document.file_size) == ("iccids.xlsx", len(content))
    file = await bot.get_file(document.file_id)
    assert file.file_path is not None
    assert file.file_path.startswith(emu.base_file_url)
    assert bytes(await file.download_as_bytearray()) == content
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("nope")


# --- getUpdates --------------------------------------------------------------------------


async def test_get_updates_long_polls_and_confirms(emu: BotApiEmulator, bot: Bot) -> None:
    async def later() -> None:
        await asyncio.sleep(0.1)
        emu.message_update(ALICE, ALICE, "/start@simwatch_test_bot now")

    task = asyncio.create_task(later())
    started = time.monotonic()
    [update] = await bot.get_updates(timeout=1)
    assert time.monotonic() - started < 0.9
    await task
    assert update.message is not None
    assert update.message.text is not None
    [command] = update.message.entities
    assert (command.type, command.offset, command.length) == ("bot_command", 0, 24)

    # Not confirmed yet: delivered again; confirmed by offset: gone.
    assert [u.update_id for u in await bot.get_updates()] == [update.update_id]
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()
    assert emu.pending_updates == []


async def test_get_updates_filters_allowed_types_and_limits(emu: BotApiEmulator, bot: Bot) -> None:
    emu.my_chat_member_update(GROUP, ALICE, new_status="administrator")
    for n in range(3):
        emu.message_update(ALICE, ALICE, f"m{n}")
    updates = await bot.get_updates(limit=2, allowed_updates=["message"])
    assert [u.message.text for u in updates if u.message] == ["m0", "m1"]
    assert len(emu.pending_updates) == 3  # the my_chat_member update was dropped
    [last] = await bot.get_updates(offset=-1)
    assert last.message is not None
    assert last.message.text == "m2"
    assert (await bot.get_chat_member(GROUP, emu.bot_user["id"])).status == "administrator"


async def test_second_poller_and_webhook_conflict(emu: BotApiEmulator, bot: Bot) -> None:
    # A second running instance of the bot: Telegram ends the older long poll with 409.
    async with Bot(emu.token, base_url=emu.base_url) as twin:
        first = asyncio.create_task(bot.get_updates(timeout=2))
        await asyncio.sleep(0.1)
        assert await twin.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
            await first

    assert await bot.set_webhook("https://example.com/hook")
    with pytest.raises(Conflict, match=r"(?i)webhook is active"):
        await bot.get_updates()
    assert (await bot.get_webhook_info()).url == "https://example.com/hook"
    assert await bot.delete_webhook()
    assert await bot.get_updates() == ()


# --- faults --------------------------------------------------------------------------------


async def test_faults_raise_the_real_ptb_exceptions(
    emu: BotApiEmulator, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # RetryAfter.retry_after as timedelta, no warning
    emu.inject_fault("sendMessage", kind="429", retry_after=3)
    emu.inject_fault("sendMessage", kind="403", chat_id=ALICE)
    emu.inject_fault("sendMessage", kind="403", chat_id=GROUP)
    emu.inject_fault(kind="400", description="Bad Request: planned")
    emu.inject_fault(kind="500")
    emu.inject_fault(kind="502")
    emu.inject_fault("sendMessage", kind="migrate", chat_id=GROUP)

    with pytest.raises(RetryAfter) as retry:
        await bot.send_message(ALICE, "x")
    assert retry.value.retry_after == dtm.timedelta(seconds=3)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(ALICE, "x")
    with pytest.raises(Forbidden, match=r"(?i)bot was kicked from the group chat"):
        await bot.send_message(GROUP, "x")
    with pytest.raises(BadRequest, match=r"(?i)planned"):
        await bot.send_message(ALICE, "x")
    with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
        await bot.send_message(ALICE, "x")
    with pytest.raises(NetworkError, match=r"(?i)Bad Gateway"):
        await bot.send_message(ALICE, "x")
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(GROUP, "x")
    assert migrated.value.new_chat_id == -1004001

    assert emu.pending_faults == []
    await bot.send_message(ALICE, "recovered")
    assert [c.fault for c in emu.calls_to("sendMessage")] == [
        "429", "403", "403", "400", "500", "502", "migrate", None,
    ]  # fmt: skip
    assert [m.text for m in emu.chat_messages(ALICE)] == ["recovered"]


async def test_timeout_slow_and_lost_response(emu: BotApiEmulator) -> None:
    request = HTTPXRequest(read_timeout=0.5)
    async with Bot(emu.token, base_url=emu.base_url, request=request) as bot:
        emu.inject_fault("sendMessage", kind="timeout")
        with pytest.raises(TimedOut):
            await bot.send_message(ALICE, "never arrives")
        assert emu.chat_messages(ALICE) == []

        emu.inject_fault("sendMessage", kind="lost_response")
        with pytest.raises(TimedOut):
            await bot.send_message(ALICE, "arrives unseen")
        assert [m.text for m in emu.chat_messages(ALICE)] == ["arrives unseen"]

        emu.inject_fault("sendMessage", kind="slow", delay=0.2)
        started = time.monotonic()
        await bot.send_message(ALICE, "late")
        assert time.monotonic() - started >= 0.2


async def test_blocked_chats_and_upgraded_groups(emu: BotApiEmulator, bot: Bot) -> None:
    emu.set_blocked(ALICE)
    with pytest.raises(Forbidden, match=r"(?i)blocked by the user"):
        await bot.send_message(ALICE, "x")
    emu.set_blocked(ALICE, False)
    await bot.send_message(ALICE, "x")

    emu.my_chat_member_update(GROUP, ALICE, new_status="kicked", enqueue=False)
    with pytest.raises(Forbidden, match=r"(?i)kicked from the group chat"):
        await bot.send_message(GROUP, "x")
    emu.set_bot_status(GROUP, "member")

    supergroup = emu.upgrade_to_supergroup(GROUP)
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(GROUP, "x")
    assert migrated.value.new_chat_id == supergroup["id"] == -1004001
    assert (await bot.send_message(supergroup["id"], "moved")).chat.type == "supergroup"


async def test_rate_limits_answer_429(
    emu: BotApiEmulator, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    emu.enable_rate_limits(private_burst=2, group_per_minute=3)
    await bot.send_message(ALICE, "1")
    await bot.send_message(ALICE, "2")
    with pytest.raises(RetryAfter) as private:
        await bot.send_message(ALICE, "3")
    assert private.value.retry_after == dtm.timedelta(seconds=1)
    for n in range(3):
        await bot.send_message(GROUP, str(n))
    with pytest.raises(RetryAfter) as group:
        await bot.send_message(GROUP, "4")
    assert group.value.retry_after == dtm.timedelta(seconds=20)  # 20/min refills one per 20 s
    assert emu.rate_limited_count == 2
    emu.disable_rate_limits()
    await bot.send_message(GROUP, "free again")


# --- chats ---------------------------------------------------------------------------------


async def test_chat_members_and_admins(emu: BotApiEmulator, bot: Bot) -> None:
    bob = emu.user(1002, "Bob")
    emu.set_admins(GROUP, [ALICE, 1002])
    emu.user(1003, "Carol")
    statuses = [(await bot.get_chat_member(GROUP, uid)).status for uid in (ALICE, 1002, 1003)]
    assert statuses == ["creator", "administrator", "member"]
    emu.user(1004, "Dave")
    emu.set_member_status(GROUP, 1003, "left")
    emu.set_member_status(GROUP, 1004, "kicked")
    left, kicked = [await bot.get_chat_member(GROUP, uid) for uid in (1003, 1004)]
    assert (left.status, kicked.status) == ("left", "kicked")
    assert left.user.first_name == "Carol"
    emu.set_member_status(GROUP, 1003, "member")
    assert (await bot.get_chat_member(GROUP, 1003)).status == "member"
    admins = await bot.get_chat_administrators(GROUP)
    assert [a.user.first_name for a in admins] == ["Alice", bob["first_name"]]
    with pytest.raises(BadRequest, match=r"(?i)user not found"):
        await bot.get_chat_member(GROUP, 5555)
    chat = await bot.get_chat(GROUP)
    assert (chat.id, chat.type, chat.title) == (GROUP, "group", "Shop")
    assert await bot.send_chat_action(GROUP, "typing")


# --- a real Application over polling -------------------------------------------------------


async def test_application_polling_round_trip(emu: BotApiEmulator) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("你好", reply_markup=keyboard([("OK", "ok")]))

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer("收到")
        await update.callback_query.edit_message_text("已确认")

    app = (
        ApplicationBuilder()
        .token(emu.token)
        .base_url(emu.base_url)
        .base_file_url(emu.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        emu.message_update(ALICE, ALICE, "/start")
        [reply] = await emu.wait_for_events(ALICE, timeout=2)
        assert (reply.kind, reply.text, reply.buttons) == ("message", "你好", [[("OK", "ok")]])

        emu.press_button(ALICE, ALICE, "OK")
        events = await emu.wait_for_events(ALICE, count=2, timeout=2)
        assert [(e.kind, e.text) for e in events] == [
            ("callback_answer", "收到"),
            ("edit", "已确认"),
        ]

        # In groups only commands addressed to this bot (or to no bot) are handled.
        emu.message_update(GROUP, ALICE, "/start@other_bot")
        emu.message_update(GROUP, ALICE, "/start@simwatch_test_bot")
        [group_reply] = await emu.wait_for_events(GROUP, timeout=2)
        assert group_reply.text == "你好"
        await emu.wait_idle()
        assert emu.take_events() == []
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert all(call.ok for call in emu.calls if call.response is not None)
