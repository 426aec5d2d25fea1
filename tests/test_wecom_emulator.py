"""The WeCom emulator enforces WeCom's rules, so a robot that breaks one fails in tests."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bot.wecom.bodies import (
    button_card,
    card_body,
    file_body,
    markdown_body,
    stream_body,
    welcome_text_body,
)
from bot.wecom.emulator import WeComEmulator
from bot.wecom.errors import WeComApiError
from bot.wecom.frames import (
    CMD_RESPOND_MSG,
    CMD_SEND_MSG,
    CMD_UPLOAD_CHUNK,
    CMD_UPLOAD_FINISH,
    CMD_UPLOAD_INIT,
    EventIn,
    MessageIn,
)
from bot.wecom.limits import (
    ERR_BAD_CREDENTIALS,
    ERR_CHAT_NOT_REACHABLE,
    ERR_CONTENT_TOO_LONG,
    ERR_INVALID_MEDIA_ID,
    ERR_INVALID_MSGTYPE,
    ERR_INVALID_PARAM,
    ERR_INVALID_REQ_ID,
    ERR_RATE_LIMITED,
    MARKDOWN_MAX_BYTES,
)
from tests.wecom_util import Robot, running


@pytest.fixture
async def emu() -> AsyncIterator[WeComEmulator]:
    async with WeComEmulator(event_reply_seconds=0.2) as emulator:
        yield emulator


@pytest.fixture
async def robot(emu: WeComEmulator) -> AsyncIterator[Robot]:
    async with running(emu) as running_robot:
        await running_robot.conn.wait_connected(2)
        yield running_robot


async def _refused(call: Any) -> int:
    with pytest.raises(WeComApiError) as refused:
        await call
    return refused.value.errcode


async def _message(emu: WeComEmulator, robot: Robot, userid: str = "alice") -> MessageIn:
    before = len(robot.inbox)
    await emu.send_text(userid, "hi")
    items = await robot.next_inbound(before + 1)
    item = items[-1]
    assert isinstance(item, MessageIn)
    return item


async def _event(robot: Robot, before: int) -> EventIn:
    items = await robot.next_inbound(before + 1)
    item = items[-1]
    assert isinstance(item, EventIn)
    return item


async def test_a_message_gets_one_reply_a_stream_refreshed_until_finish(
    emu: WeComEmulator, robot: Robot
) -> None:
    message = await _message(emu, robot)
    conn = robot.conn
    assert await _refused(conn.respond("made-up", stream_body("s", "x"))) == ERR_INVALID_REQ_ID
    await conn.respond(message.req_id, stream_body("s1", "thinking", finish=False))
    assert (
        await _refused(conn.respond(message.req_id, stream_body("s2", "x"))) == ERR_INVALID_REQ_ID
    )
    await conn.respond(message.req_id, stream_body("s1", "done"))
    assert (
        await _refused(conn.respond(message.req_id, stream_body("s1", "more")))
        == ERR_INVALID_REQ_ID
    )
    card = button_card("t1", "Renew?", "", [("Yes", "y")])
    assert await _refused(conn.respond(message.req_id, card_body(card))) == ERR_INVALID_REQ_ID
    second = await _message(emu, robot)
    await conn.respond(second.req_id, card_body(button_card("t2", "Renew?", "", [("Yes", "y")])))
    assert await _refused(conn.respond(second.req_id, stream_body("s", "x"))) == ERR_INVALID_REQ_ID
    events = emu.take_events(("single", "alice"))
    assert [e.markdown for e in events] == ["thinking", "done", None]
    assert events[2].card is not None
    assert events[2].card["task_id"] == "t2"


async def test_welcome_only_answers_enter_chat_once_and_in_time(
    emu: WeComEmulator, robot: Robot
) -> None:
    message = await _message(emu, robot)
    welcome = welcome_text_body("欢迎")
    assert await _refused(robot.conn.respond_welcome(message.req_id, welcome)) == ERR_INVALID_REQ_ID
    await emu.enter_chat("bob")
    enter = await _event(robot, 1)
    assert (
        await _refused(robot.conn.respond(enter.req_id, stream_body("s", "x")))
        == ERR_INVALID_REQ_ID
    )
    await robot.conn.respond_welcome(enter.req_id, welcome)
    assert await _refused(robot.conn.respond_welcome(enter.req_id, welcome)) == ERR_INVALID_REQ_ID
    await emu.enter_chat("carol")
    late = await _event(robot, 2)
    await asyncio.sleep(0.25)  # past the window (0.2 s here, 5 s at WeCom)
    assert await _refused(robot.conn.respond_welcome(late.req_id, welcome)) == ERR_INVALID_REQ_ID
    [event] = emu.take_events()
    assert (event.kind, event.chat, event.markdown) == ("welcome", ("single", "bob"), "欢迎")


async def test_card_updates_answer_the_click_with_its_task_in_time(
    emu: WeComEmulator, robot: Robot
) -> None:
    message = await _message(emu, robot)
    card = button_card("renew_7", "Renew SIM 7?", "expires soon", [("Renew", "r"), ("Skip", "s")])
    await robot.conn.respond(message.req_id, card_body(card))
    with pytest.raises(ValueError, match="no button"):
        await emu.click("alice", "renew_7", "other")
    with pytest.raises(ValueError, match="no card"):
        await emu.click("bob", "renew_7", "r")  # bob never saw the card
    await emu.click("alice", "renew_7", "r")
    click = await _event(robot, 1)
    wrong = button_card("renew_8", "x", "", [("a", "b")])
    assert await _refused(robot.conn.update_card(click.req_id, wrong)) == ERR_INVALID_PARAM
    decided = button_card("renew_7", "Renew SIM 7?", "", [], disabled_text="Renewed")
    await robot.conn.update_card(click.req_id, decided)
    assert await _refused(robot.conn.update_card(click.req_id, decided)) == ERR_INVALID_REQ_ID
    with pytest.raises(ValueError, match="no button"):
        await emu.click("alice", "renew_7", "r")  # the card no longer has that button
    await emu.click("alice", "renew_7", "noop")
    late = await _event(robot, 2)
    await asyncio.sleep(0.25)
    assert await _refused(robot.conn.update_card(late.req_id, decided)) == ERR_INVALID_REQ_ID
    events = emu.take_events()
    assert [e.kind for e in events] == ["respond", "update"]
    assert events[1].card == decided


async def test_pushes_reach_only_chats_that_wrote(emu: WeComEmulator, robot: Robot) -> None:
    note = markdown_body("到期提醒")
    assert await _refused(robot.conn.send("alice", note)) == ERR_CHAT_NOT_REACHABLE
    await emu.enter_chat("alice")  # opening the chat is not writing
    await emu.wait_idle()
    assert await _refused(robot.conn.send("alice", note)) == ERR_CHAT_NOT_REACHABLE
    await emu.send_text("bob", "hello", chatid="shop", mention=False)  # not delivered
    await emu.wait_idle()
    assert await _refused(robot.conn.send("shop", note)) == ERR_CHAT_NOT_REACHABLE
    await emu.send_text("bob", "hello", chatid="shop")
    await emu.send_text("alice", "hello")
    await robot.next_inbound(3)
    await robot.conn.send("shop", {**note, "chat_type": 2})
    await robot.conn.send("alice", note)
    assert await _refused(robot.conn.send("alice", {**note, "chat_type": 2})) == ERR_INVALID_PARAM
    assert [(e.kind, e.chat) for e in emu.take_events()] == [
        ("send", ("group", "shop")),
        ("send", ("single", "alice")),
    ]
    assert len(robot.inbox) == 3  # enter_chat and the two group messages that @ the robot


async def test_content_limits_are_enforced_on_the_wire(emu: WeComEmulator, robot: Robot) -> None:
    await _message(emu, robot)
    conn = robot.conn

    def push(msgtype: str, payload: Any) -> Any:
        return conn.request(CMD_SEND_MSG, {"chatid": "alice", "msgtype": msgtype, msgtype: payload})

    await push("markdown", {"content": "x" * MARKDOWN_MAX_BYTES})
    assert await _refused(push("markdown", {"content": "x" * (MARKDOWN_MAX_BYTES + 1)})) == (
        ERR_CONTENT_TOO_LONG
    )
    assert await _refused(push("text", {"content": "plain"})) == ERR_INVALID_MSGTYPE
    seven = {
        "card_type": "button_interaction",
        "task_id": "t7",
        "button_list": [{"text": str(n), "key": str(n)} for n in range(7)],
    }
    assert await _refused(push("template_card", seven)) == ERR_INVALID_PARAM
    options = {
        "card_type": "button_interaction",
        "task_id": "t8",
        "button_list": [{"text": "ok", "key": "ok"}],
        "button_selection": {
            "question_key": "q",
            "option_list": [{"id": str(n), "text": str(n)} for n in range(11)],
        },
    }
    assert await _refused(push("template_card", options)) == ERR_INVALID_PARAM
    assert await _refused(push("file", {"media_id": "made-up"})) == ERR_INVALID_MEDIA_ID
    await conn.send("alice", card_body(button_card("t9", "a", "", [("b", "c")])))
    again = card_body(button_card("t9", "a", "", [("b", "c")]))
    assert await _refused(conn.send("alice", again)) == ERR_INVALID_PARAM  # task_id reused
    assert len(emu.take_events()) == 2


async def test_rate_limit_counts_messages_per_conversation(
    emu: WeComEmulator, robot: Robot
) -> None:
    emu.rate_limit(per_minute=100, per_hour=3)
    message = await _message(emu, robot)
    await _message(emu, robot, "bob")
    for n in range(3):  # one new message and two refreshes of it
        await robot.conn.respond(message.req_id, stream_body("s", str(n), finish=n == 2))
    await robot.conn.send("alice", markdown_body("two"))
    await robot.conn.send("alice", markdown_body("three"))
    limited = await _refused(robot.conn.send("alice", markdown_body("four")))
    await robot.conn.send("bob", markdown_body("another conversation"))
    assert limited == ERR_RATE_LIMITED


async def test_uploads_check_chunks_and_feed_file_messages(
    emu: WeComEmulator, robot: Robot
) -> None:
    conn = robot.conn
    await _message(emu, robot)
    init = {
        "type": "file",
        "filename": "a.csv",
        "total_size": 4,
        "total_chunks": 1,
        "md5": "0" * 32,
    }
    upload_id = (await conn.request(CMD_UPLOAD_INIT, init)).body["upload_id"]
    chunk = {
        "upload_id": upload_id,
        "chunk_index": 0,
        "base64_data": base64.b64encode(b"abcd").decode(),
    }
    await conn.request(CMD_UPLOAD_CHUNK, chunk)
    bad_md5 = conn.request(CMD_UPLOAD_FINISH, {"upload_id": upload_id})
    assert await _refused(bad_md5) == ERR_INVALID_PARAM
    too_many = {**init, "total_chunks": 101}
    assert await _refused(conn.request(CMD_UPLOAD_INIT, too_many)) == ERR_INVALID_PARAM
    big = {**chunk, "base64_data": base64.b64encode(b"x" * (512 * 1024 + 1)).decode()}
    assert await _refused(conn.request(CMD_UPLOAD_CHUNK, big)) == ERR_INVALID_PARAM
    missing = {**init, "total_size": 2_000_000, "total_chunks": 4, "md5": None}
    upload_id = (await conn.request(CMD_UPLOAD_INIT, missing)).body["upload_id"]
    unfinished = conn.request(CMD_UPLOAD_FINISH, {"upload_id": upload_id})
    assert await _refused(unfinished) == ERR_INVALID_PARAM
    media_id = await conn.upload(b"ICCID\n", "卡.csv")
    await conn.send("alice", file_body(media_id))
    [event] = emu.take_events()
    assert event.kind == "file"
    assert event.file == ("卡.csv", b"ICCID\n")


async def test_faults_refuse_without_applying(emu: WeComEmulator, robot: Robot) -> None:
    await _message(emu, robot)
    emu.refuse_next(CMD_SEND_MSG, 45009, "api freq out of limit")
    assert await _refused(robot.conn.send("alice", markdown_body("no"))) == 45009
    await robot.conn.send("alice", markdown_body("yes"))
    assert [e.markdown for e in emu.take_events()] == ["yes"]


async def test_people_cannot_do_what_wecom_does_not_allow(emu: WeComEmulator) -> None:
    with pytest.raises(LookupError):
        await emu.send_text("alice", "nobody is connected")
    async with running(emu) as robot:
        await robot.conn.wait_connected(2)
        with pytest.raises(ValueError, match="single chats"):
            await emu.send_file("bob", "a.xlsx", b"x", chatid="shop")
        with pytest.raises(LookupError):
            await emu.duplicate_last()


async def test_raw_clients_get_errors_not_crashes(emu: WeComEmulator) -> None:
    async with connect(emu.url) as ws:
        await ws.send('{"cmd": "aibot_send_msg", "headers": {"req_id": "r1"}, "body": {}}')
        answer = json.loads(await ws.recv())
        assert (answer["headers"]["req_id"], answer["errcode"]) == ("r1", ERR_INVALID_PARAM)
        await ws.wait_closed()  # unsubscribed: told, then closed
    async with connect(emu.url) as ws:
        await ws.send('{"cmd": "aibot_subscribe", "headers": {"req_id": "s"}, "body": {}}')
        assert json.loads(await ws.recv())["errcode"] == ERR_BAD_CREDENTIALS
    async with connect(emu.url) as ws:
        subscribe = {"bot_id": emu.bot_id, "secret": emu.secret}
        await ws.send(
            json.dumps({"cmd": "aibot_subscribe", "headers": {"req_id": "s"}, "body": subscribe})
        )
        assert json.loads(await ws.recv())["errcode"] == 0
        for garbage in ("not json", '{"headers": {"req_id": "g"}, "cmd": 3}', "[" * 10_000):
            await ws.send(garbage)
            assert json.loads(await ws.recv())["errcode"] == ERR_INVALID_PARAM
        await ws.send(json.dumps({"cmd": CMD_RESPOND_MSG, "headers": {"req_id": "x"}, "body": []}))
        assert json.loads(await ws.recv())["errcode"] == ERR_INVALID_PARAM
        await ws.send('{"cmd": "ping", "headers": {"req_id": "p"}}')
        assert json.loads(await ws.recv()) == {
            "headers": {"req_id": "p"},
            "errcode": 0,
            "errmsg": "ok",
        }
    assert emu.connections == 3
