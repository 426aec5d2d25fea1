"""Validation of ``reply_markup`` the way Telegram checks it, and a flat view of its buttons."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from bot.emulator.errors import ApiError, bad_request

# Exactly one of these makes an inline button do something; a bare text button is refused.
INLINE_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
MAX_CALLBACK_DATA_BYTES = 64
MAX_PLACEHOLDER_CHARS = 64  # ForceReply / ReplyKeyboardMarkup input_field_placeholder
_BUTTON_URL = re.compile(r"^(?:https?|tg)://\S+$", re.IGNORECASE)


class Button(NamedTuple):
    """A keyboard button as ``(text, callback_data or url)``; compares equal to a plain tuple."""

    text: str
    value: str | None


def _inline_button_error(reason: str) -> ApiError:
    return bad_request(f"can't parse inline keyboard button: {reason}")


def _validate_inline_button(button: object) -> None:
    if not isinstance(button, dict):
        raise _inline_button_error("InlineKeyboardButton must be an Object")
    text = button.get("text")
    if not isinstance(text, str):
        raise _inline_button_error('Field "text" must be of type String')
    if not text.strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    actions = [name for name in INLINE_ACTIONS if name in button]
    if not actions:
        raise _inline_button_error("Text buttons are unallowed in the inline keyboard")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not _BUTTON_URL.match(url):
            raise bad_request("BUTTON_URL_INVALID")


def _rows(markup: dict[str, Any], field: str, kind: str) -> list[list[Any]]:
    rows = markup[field]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(f'field "{field}" of the {kind} must be an Array of Arrays')
    return rows


def validate_reply_markup(markup: object) -> dict[str, Any] | None:
    """Check ``markup`` like Telegram; return it, or ``None`` for "no keyboard".

    An empty inline keyboard means "no keyboard", as on Telegram, so that editing a
    message without buttons to ``{"inline_keyboard": []}`` counts as "not modified".
    """
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = _rows(markup, "inline_keyboard", "InlineKeyboardMarkup")
        for row in rows:
            for button in row:
                _validate_inline_button(button)
        if not any(rows):
            return None
        return markup
    if "keyboard" in markup:
        for row in _rows(markup, "keyboard", "ReplyKeyboardMarkup"):
            for button in row:
                text = button.get("text") if isinstance(button, dict) else button
                if not isinstance(text, str) or not text:
                    raise bad_request("can't parse keyboard button: Text is empty")
        return markup
    if "force_reply" in markup:
        _validate_force_reply(markup)
        return markup
    if markup.get("remove_keyboard") is True:
        return markup
    raise bad_request('can\'t find field "inline_keyboard" in the reply markup')


def validate_inline_markup(markup: object) -> dict[str, Any] | None:
    """For edits: only an inline keyboard (or none) may be set on an existing message; a
    ForceReply or reply keyboard needs a new message, as on Telegram."""
    checked = validate_reply_markup(markup)
    if checked is not None and "inline_keyboard" not in checked:
        raise bad_request("inline keyboard expected")
    return checked


def _validate_force_reply(markup: dict[str, Any]) -> None:
    """ForceReply: ``force_reply`` must be true; ``selective`` a boolean, and the placeholder
    shown in the empty input field 1-64 characters."""
    if not isinstance(markup["force_reply"], bool):
        raise bad_request('Field "force_reply" of the ForceReply object must be of type Boolean')
    if markup["force_reply"] is not True:
        raise bad_request('can\'t find field "inline_keyboard" in the reply markup')
    if "selective" in markup and not isinstance(markup["selective"], bool):
        raise bad_request('Field "selective" of the ForceReply object must be of type Boolean')
    if "input_field_placeholder" in markup:
        placeholder = markup["input_field_placeholder"]
        if not isinstance(placeholder, str):
            raise bad_request(
                'Field "input_field_placeholder" of the ForceReply object must be of type String'
            )
        if not 1 <= len(placeholder) <= MAX_PLACEHOLDER_CHARS:
            raise bad_request("input field placeholder must be 1-64 characters long")


def buttons_of(markup: dict[str, Any] | None) -> list[list[Button]]:
    """Rows of :class:`Button` of an inline or reply keyboard; ``[]`` for anything else."""
    if not markup:
        return []
    if "inline_keyboard" in markup:
        return [
            [
                Button(str(button.get("text", "")), button.get("callback_data", button.get("url")))
                for button in row
            ]
            for row in markup["inline_keyboard"]
        ]
    if "keyboard" in markup:
        return [
            [
                Button(button["text"] if isinstance(button, dict) else str(button), None)
                for button in row
            ]
            for row in markup["keyboard"]
        ]
    return []
