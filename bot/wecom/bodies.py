"""Bodies of the frames the robot sends, checked against WeCom's limits before they go.

Builders raise ValueError for what WeCom would refuse, so a mistake shows up at the line
that made it rather than as an errcode later.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from bot.wecom.limits import (
    CARD_KEY_MAX_BYTES,
    CARD_MAX_BUTTONS,
    CARD_MAX_OPTIONS,
    CARD_OPTION_ID_MAX_BYTES,
    MARKDOWN_MAX_BYTES,
    STREAM_MAX_BYTES,
    TASK_ID_MAX_BYTES,
)

_TASK_ID = re.compile(r"[0-9A-Za-z_\-@]+")
# The key of the one inert button a decided card shows (see button_card).
DISABLED_KEY = "noop"


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def check_content(content: str, limit: int, what: str) -> None:
    """Raise ValueError if ``content`` is over ``limit`` UTF-8 bytes."""
    size = _utf8_len(content)
    if size > limit:
        raise ValueError(f"{what} is {size} bytes in UTF-8, over WeCom's {limit}")


def markdown_body(content: str) -> dict[str, Any]:
    check_content(content, MARKDOWN_MAX_BYTES, "markdown content")
    return {"msgtype": "markdown", "markdown": {"content": content}}


def welcome_text_body(content: str) -> dict[str, Any]:
    """A text welcome (aibot_respond_welcome_msg accepts text or template_card)."""
    check_content(content, MARKDOWN_MAX_BYTES, "welcome text")
    return {"msgtype": "text", "text": {"content": content}}


def stream_body(
    stream_id: str, content: str, finish: bool = True, card: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A stream reply; with ``card`` the stream_with_template_card form (card sent once)."""
    check_content(content, STREAM_MAX_BYTES, "stream content")
    stream = {"id": stream_id, "finish": finish, "content": content}
    if card is None:
        return {"msgtype": "stream", "stream": stream}
    validate_card(card)
    return {"msgtype": "stream_with_template_card", "stream": stream, "template_card": card}


def card_body(card: dict[str, Any]) -> dict[str, Any]:
    validate_card(card)
    return {"msgtype": "template_card", "template_card": card}


def file_body(media_id: str, media_type: str = "file") -> dict[str, Any]:
    """A media message (respond or send) of an uploaded media_id."""
    return {"msgtype": media_type, media_type: {"media_id": media_id}}


def button_card(
    task_id: str,
    title: str,
    description: str,
    buttons: list[tuple[str, str]],
    *,
    disabled_text: str | None = None,
) -> dict[str, Any]:
    """A button_interaction card; ``buttons`` are (text, key) pairs.

    With ``disabled_text`` the card is the decided version of itself: one inert button
    (key ``DISABLED_KEY``) saying what was decided. WeCom documents no disabled state
    for robot cards, so the receiver must ignore clicks on that key.
    """
    if disabled_text is not None:
        buttons = [(disabled_text, DISABLED_KEY)]
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": title, "desc": description},
        "task_id": task_id,
        "button_list": [
            {"text": text, "style": 2 if disabled_text is not None else 1, "key": key}
            for text, key in buttons
        ],
    }
    validate_card(card)
    return card


def validate_card(card: dict[str, Any]) -> None:
    """Raise ValueError if a template card breaks a limit WeCom documents."""
    problem = card_problem(card)
    if problem is not None:
        raise ValueError(problem)


def card_problem(card: object) -> str | None:
    """What is wrong with a template card, or None (shared with the emulator)."""
    if not isinstance(card, dict) or not isinstance(card.get("card_type"), str):
        return "template_card needs a card_type"
    task_id = card.get("task_id")
    if task_id is not None and (
        not isinstance(task_id, str)
        or not _TASK_ID.fullmatch(task_id)
        or _utf8_len(task_id) > TASK_ID_MAX_BYTES
    ):
        return f"task_id must be 1-{TASK_ID_MAX_BYTES} bytes of [0-9A-Za-z_-@]"
    interactive = ("button_interaction", "vote_interaction", "multiple_interaction")
    if card["card_type"] in interactive and task_id is None:
        return f"a {card['card_type']} card needs a task_id"
    buttons = card.get("button_list")
    if buttons is not None:
        problem = _buttons_problem(buttons)
        if problem:
            return problem
    elif card["card_type"] == "button_interaction":
        return "a button_interaction card needs a button_list"
    selection = card.get("button_selection")
    if selection is not None:
        options = selection.get("option_list") if isinstance(selection, dict) else None
        if not isinstance(options, list) or not 1 <= len(options) <= CARD_MAX_OPTIONS:
            return f"button_selection needs 1-{CARD_MAX_OPTIONS} options"
        for option in options:
            option_id = option.get("id") if isinstance(option, dict) else None
            if not isinstance(option_id, str) or _utf8_len(option_id) > CARD_OPTION_ID_MAX_BYTES:
                return f"option ids are strings of at most {CARD_OPTION_ID_MAX_BYTES} bytes"
    return None


def _buttons_problem(buttons: object) -> str | None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= CARD_MAX_BUTTONS:
        return f"a card has 1-{CARD_MAX_BUTTONS} buttons"
    keys: set[str] = set()
    for button in buttons:
        if not isinstance(button, dict):
            return "a button is an object"
        key, text = button.get("key"), button.get("text")
        if not isinstance(text, str) or not text:
            return "a button needs a text"
        if not isinstance(key, str) or not 0 < _utf8_len(key) <= CARD_KEY_MAX_BYTES:
            return f"button keys are 1-{CARD_KEY_MAX_BYTES} bytes"
        if key in keys:
            return f"button key {key!r} is repeated"
        keys.add(key)
    return None


def update_card_body(card: dict[str, Any], userids: list[str] | None = None) -> dict[str, Any]:
    """aibot_respond_update_msg body: replace the clicked card (for ``userids``, or all)."""
    validate_card(card)
    body: dict[str, Any] = {"response_type": "update_template_card", "template_card": card}
    if userids:
        body["userids"] = userids
    return body


SendChatType = Literal["single", "group"]
# chat_type on aibot_send_msg: 1 single, 2 group, absent lets WeCom work it out.
_CHAT_TYPE_CODES = {"single": 1, "group": 2}


def send_body(
    chatid: str, chat_type: SendChatType | None, msgtype: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """aibot_send_msg body: chatid is the userid in a single chat, the chatid in a group."""
    if msgtype == "markdown":
        check_content(str(payload.get("content", "")), MARKDOWN_MAX_BYTES, "markdown content")
    elif msgtype == "template_card":
        validate_card(payload)
    body: dict[str, Any] = {"chatid": chatid, "msgtype": msgtype, msgtype: payload}
    if chat_type is not None:
        body["chat_type"] = _CHAT_TYPE_CODES[chat_type]
    return body
