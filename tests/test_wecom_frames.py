"""Frames and bodies of the WeCom long connection: parsing hostile input, typed callbacks,
and builders that refuse what WeCom would refuse."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
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


@pytest.mark.parametrize(
    "body",
    [
        {"from": {"userid": "a"}, "msgid": "m", "msgtype": "mixed", "mixed": {"msg_item": 5}},
        {"from": {"userid": "a"}, "msgid": "m", "msgtype": "mixed", "mixed": {"msg_item": "ab"}},
        {
            "from": {"userid": "a"},
            "msgid": "m",
            "msgtype": "mixed",
            "mixed": {"msg_item": {"k": 1}},
        },
        {"from": {"userid": "a"}, "msgid": "m", "msgtype": "mixed", "mixed": [1]},
        {"from": {"userid": "a"}, "msgid": "m", "msgtype": 5, "text": {"content": "hi"}},
        {"from": {"userid": "a"}, "msgid": "m", "msgtype": "text", "text": {"content": 7}},
    ],
)
def test_callback_fields_of_the_wrong_type_read_as_absent(body: dict[str, object]) -> None:
    parsed = parse_inbound(_callback(body))
    assert isinstance(parsed, MessageIn)
    assert parsed.text is None
    assert parsed.file_url is None
    assert parsed.userid == "a"


@pytest.mark.parametrize(
    "body",
    [
        {"msgid": "m", "from": "alice", "msgtype": "text"},
        {"msgid": "m", "from": {"userid": ["alice"]}, "msgtype": "text"},
        {"msgid": "m", "from": {"userid": "a"}, "chattype": ["group"], "chatid": "g"},
        {"msgid": "m", "from": {"userid": "a"}, "chattype": {"group": 1}, "chatid": "g"},
        {"msgid": "m", "from": {"userid": "a"}, "chattype": "group", "chatid": 5},
        {"msgid": 5, "from": {"userid": "a"}, "msgtype": "text"},
    ],
)
def test_callback_identity_fields_of_the_wrong_type_raise_frame_error(
    body: dict[str, object],
) -> None:
    with pytest.raises(FrameError):
        parse_inbound(_callback(body))


@pytest.mark.parametrize("event", [5, "enter_chat", ["enter_chat"], {"eventtype": 5}])
def test_events_of_the_wrong_type_raise_frame_error(event: object) -> None:
    body = {"msgid": "e", "from": {"userid": "a"}, "msgtype": "event", "event": event}
    with pytest.raises(FrameError):
        parse_inbound(_callback(body, "aibot_event_callback"))


# Well-formed callbacks of every kind the parser reads; the property below breaks them.
_SENDER = {"msgid": "m1", "chattype": "group", "chatid": "g1", "from": {"userid": "alice"}}
_CALLBACKS: dict[str, dict[str, object]] = {
    "text": {**_SENDER, "msgtype": "text", "text": {"content": "hi"}},
    "voice": {**_SENDER, "msgtype": "voice", "voice": {"content": "hi"}},
    "file": {**_SENDER, "msgtype": "file", "file": {"url": "u", "aeskey": "k", "filename": "f"}},
    "image": {**_SENDER, "msgtype": "image", "image": {"url": "u", "aeskey": "k"}},
    "mixed": {
        **_SENDER,
        "msgtype": "mixed",
        "mixed": {
            "msg_item": [
                {"msgtype": "text", "text": {"content": "a"}},
                {"msgtype": "image", "image": {"url": "u", "aeskey": "k"}},
            ]
        },
    },
    "click": {
        **_SENDER,
        "msgtype": "event",
        "event": {"eventtype": "template_card_event", "event_key": "k", "task_id": "t"},
    },
    "nested click": {
        **_SENDER,
        "msgtype": "event",
        "event": {
            "eventtype": "template_card_event",
            "template_card_event": {"event_key": "k", "task_id": "t"},
        },
    },
}
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)
# One strategy per JSON type, so that a replaced field always changes its type.
_JSON_OF_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers(),
    "float": st.floats(),
    "str": st.text(max_size=4),
    "list": st.lists(_ANY_JSON, max_size=2),
    "dict": st.dictionaries(st.text(max_size=4), _ANY_JSON, max_size=2),
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list"}.get(
        type(value), "dict"
    )


_Path = tuple[str | int, ...]


def _paths(value: object, prefix: _Path = ()) -> list[_Path]:
    """Every key and index inside a JSON value, depth first."""
    items: list[tuple[str | int, object]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    paths: list[_Path] = []
    for key, inner in items:
        paths += [(*prefix, key), *_paths(inner, (*prefix, key))]
    return paths


def _break(draw: st.DrawFn, body: dict[str, Any], path: _Path) -> None:
    """Remove the field at ``path``, or give it a value of another JSON type."""
    *parents, key = path
    holder: Any = body
    for parent in parents:
        holder = holder[parent]
    if isinstance(holder, dict) and draw(st.integers(0, 5)) == 0:
        del holder[key]
    else:
        others = sorted(set(_JSON_OF_TYPE) - {_json_type(holder[key])})
        holder[key] = draw(_JSON_OF_TYPE[draw(st.sampled_from(others))])


# Every field of every callback, so that each one is broken in every run (left to chance,
# hypothesis reached a given nested field too seldom to be relied on).
_FIELDS = [(kind, path) for kind, body in _CALLBACKS.items() for path in _paths(body)]


@pytest.mark.parametrize(
    ("kind", "path"), _FIELDS, ids=[f"{k}:{'.'.join(map(str, p))}" for k, p in _FIELDS]
)
@settings(max_examples=25)
@given(data=st.data())
def test_a_callback_with_any_field_broken_parses_or_raises_frame_error(
    kind: str, path: _Path, data: st.DataObject
) -> None:
    body = copy.deepcopy(_CALLBACKS[kind])
    _break(data.draw, body, path)
    for _ in range(data.draw(st.integers(0, 2))):  # and maybe others with it
        if paths := _paths(body):
            _break(data.draw, body, data.draw(st.sampled_from(paths)))
    cmd = "aibot_event_callback" if "click" in kind else "aibot_msg_callback"
    _assert_parses_or_raises_frame_error(cmd, body)


@settings(max_examples=200)
@given(
    st.sampled_from(["aibot_msg_callback", "aibot_event_callback"]),
    st.dictionaries(st.text(max_size=8), _ANY_JSON, max_size=6),
)
def test_a_callback_of_any_json_object_parses_or_raises_frame_error(
    cmd: str, body: dict[str, object]
) -> None:
    _assert_parses_or_raises_frame_error(cmd, body)


def _assert_parses_or_raises_frame_error(cmd: str, body: dict[str, object]) -> None:
    raw = json.dumps({"cmd": cmd, "headers": {"req_id": "cb-1"}, "body": body})
    try:
        parsed = parse_inbound(Frame.parse(raw))
    except FrameError:
        return
    # A value the bot can use as typed: ids are non-empty strings, the rest str or None.
    assert isinstance(parsed, MessageIn | EventIn)
    assert isinstance(parsed.userid, str)
    assert parsed.userid
    assert parsed.chattype in ("single", "group")
    assert all(isinstance(part, str) and part for part in parsed.chat)
    if isinstance(parsed, MessageIn):
        assert isinstance(parsed.msgid, str)
        assert parsed.msgid
        optional = [parsed.text, parsed.file_url, parsed.file_aeskey, parsed.file_name]
    else:
        assert isinstance(parsed.event_type, str)
        assert parsed.event_type
        optional = [parsed.msgid, parsed.event_key, parsed.task_id]
    assert all(value is None or isinstance(value, str) for value in optional)


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
