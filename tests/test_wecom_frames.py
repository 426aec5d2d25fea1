"""Frames and bodies of the WeCom long connection: parsing hostile input, typed callbacks,
and builders that refuse what WeCom would refuse."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.wecom.bodies import (
    DISABLED_KEY,
    button_card,
    markdown_body,
    send_body,
    stream_body,
    update_card_body,
)
from bot.wecom.dedup import RecentIds
from bot.wecom.errors import FrameError
from bot.wecom.frames import (
    MAX_FRAME_BYTES,
    EventIn,
    Frame,
    MessageIn,
    new_req_id,
    parse_inbound,
)
from bot.wecom.limits import CARD_MAX_BUTTONS, MARKDOWN_MAX_BYTES


def test_frame_round_trips_and_answers_parse() -> None:
    frame = Frame("aibot_send_msg", "req-1", {"chatid": "alice", "msgtype": "markdown"})
    assert Frame.parse(frame.dumps()) == frame
    answer = Frame.parse('{"headers": {"req_id": "req-1"}, "errcode": 0, "errmsg": "ok"}')
    assert answer.is_answer
    assert answer.errcode == 0
    assert answer.body == {}
    ping = json.loads(Frame("ping", "ping_1").dumps())
    assert ping == {"cmd": "ping", "headers": {"req_id": "ping_1"}}


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        "",
        "null",
        "[]",
        '{"cmd": "ping"}',
        '{"cmd": "ping", "headers": {"req_id": ""}}',
        '{"cmd": "ping", "headers": {"req_id": 5}}',
        '{"cmd": 5, "headers": {"req_id": "a"}}',
        '{"cmd": "x", "headers": {"req_id": "a"}, "body": "text"}',
        '{"headers": {"req_id": "a"}, "errcode": "0"}',
        '{"headers": {"req_id": "a"}, "errcode": true}',
        '{"headers": {"req_id": "a"}}',
        "[" * 50_000,
        '{"cmd": "x", "headers": {"req_id": "' + "a" * 300 + '"}}',
    ],
)
def test_malformed_frames_raise_frame_error(raw: str | bytes) -> None:
    with pytest.raises(FrameError):
        Frame.parse(raw)


def test_oversized_frames_are_refused_before_parsing() -> None:
    with pytest.raises(FrameError, match="over"):
        Frame.parse(b" " * (MAX_FRAME_BYTES + 1))


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_parse_never_raises_anything_but_frame_error(raw: str | bytes) -> None:
    with contextlib.suppress(FrameError):
        Frame.parse(raw)


def test_req_ids_are_unique_and_prefixed() -> None:
    ids = {new_req_id("aibot_send_msg") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("aibot_send_msg_") for i in ids)


def _callback(body: dict[str, object], cmd: str = "aibot_msg_callback") -> Frame:
    return Frame(cmd, "cb-1", body)


def test_text_and_mixed_messages_parse_to_their_text() -> None:
    text = parse_inbound(
        _callback(
            {
                "msgid": "m1",
                "chattype": "group",
                "chatid": "g1",
                "from": {"userid": "bob"},
                "msgtype": "text",
                "text": {"content": "@SimWatch /cards"},
            }
        )
    )
    assert isinstance(text, MessageIn)
    assert text.chat == ("group", "g1")
    assert text.text == "@SimWatch /cards"
    assert text.req_id == "cb-1"
    mixed = parse_inbound(
        _callback(
            {
                "msgid": "m2",
                "chattype": "single",
                "from": {"userid": "alice"},
                "msgtype": "mixed",
                "mixed": {
                    "msg_item": [
                        {"msgtype": "text", "text": {"content": "ICCID"}},
                        {"msgtype": "image", "image": {"url": "http://x/i", "aeskey": "k"}},
                        {"msgtype": "text", "text": {"content": "8986"}},
                    ]
                },
            }
        )
    )
    assert isinstance(mixed, MessageIn)
    assert mixed.text == "ICCID\n8986"
    assert mixed.file_url == "http://x/i"
    assert mixed.chat == ("single", "alice")


def test_card_clicks_parse_in_both_shapes() -> None:
    base = {"msgid": "e1", "from": {"userid": "alice"}, "msgtype": "event"}
    flat = {"eventtype": "template_card_event", "event_key": "k", "task_id": "t"}
    nested = {
        "eventtype": "template_card_event",
        "template_card_event": {"event_key": "k", "task_id": "t"},
    }
    for event in (flat, nested):
        parsed = parse_inbound(_callback({**base, "event": event}, "aibot_event_callback"))
        assert isinstance(parsed, EventIn)
        assert (parsed.event_key, parsed.task_id) == ("k", "t")


@pytest.mark.parametrize(
    "body",
    [
        {"msgid": "m", "msgtype": "text"},  # no sender
        {"msgid": "m", "from": {"userid": "a"}, "chattype": "group"},  # group without chatid
        {"msgid": "m", "from": {"userid": "a"}, "chattype": "channel"},
        {"from": {"userid": "a"}, "msgtype": "text"},  # no msgid
    ],
)
def test_broken_callbacks_raise_frame_error(body: dict[str, object]) -> None:
    with pytest.raises(FrameError):
        parse_inbound(_callback(body))


def test_answers_are_not_inbound() -> None:
    assert parse_inbound(Frame(None, "r", {}, 0, "ok")) is None


def test_builders_refuse_what_wecom_refuses() -> None:
    markdown_body("好" * (MARKDOWN_MAX_BYTES // 3))
    with pytest.raises(ValueError, match="bytes"):
        markdown_body("好" * (MARKDOWN_MAX_BYTES // 3 + 1))  # 3 bytes each in UTF-8
    with pytest.raises(ValueError, match="bytes"):
        stream_body("s", "x" * (MARKDOWN_MAX_BYTES + 1))
    six = [(f"b{n}", f"k{n}") for n in range(CARD_MAX_BUTTONS)]
    assert len(button_card("t1", "T", "D", six)["button_list"]) == CARD_MAX_BUTTONS
    with pytest.raises(ValueError, match="buttons"):
        button_card("t1", "T", "D", [*six, ("b", "k")])
    with pytest.raises(ValueError, match="keys"):
        button_card("t1", "T", "D", [("b", "k" * 1025)])
    with pytest.raises(ValueError, match="repeated"):
        button_card("t1", "T", "D", [("a", "k"), ("b", "k")])
    with pytest.raises(ValueError, match="task_id"):
        button_card("task id with spaces", "T", "D", [("a", "k")])
    with pytest.raises(ValueError, match="bytes"):
        send_body("alice", "single", "markdown", {"content": "x" * (MARKDOWN_MAX_BYTES + 1)})


def test_decided_card_has_one_inert_button_and_update_body_wraps_it() -> None:
    card = button_card("t1", "Renew?", "SIM", [("Yes", "y"), ("No", "n")], disabled_text="Renewed")
    assert [(b["text"], b["key"]) for b in card["button_list"]] == [("Renewed", DISABLED_KEY)]
    body = update_card_body(card, ["alice"])
    assert body == {
        "response_type": "update_template_card",
        "template_card": card,
        "userids": ["alice"],
    }
    assert send_body("g1", "group", "markdown", {"content": "hi"})["chat_type"] == 2
    assert "chat_type" not in send_body("alice", None, "markdown", {"content": "hi"})


def test_recent_ids_forget_by_age_and_by_count() -> None:
    now = [0.0]
    seen = RecentIds(capacity=3, ttl=10, clock=lambda: now[0])
    assert seen.check_and_add("a")
    assert not seen.check_and_add("a")
    now[0] = 11
    assert seen.check_and_add("a")  # older than the ttl: new again
    for key in "bcd":
        assert seen.check_and_add(key)
    assert len(seen) <= 3
    assert seen.check_and_add("a")
