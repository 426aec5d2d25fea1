"""Reading Bot API parameters from any request shape Telegram accepts.

PTB posts ``application/x-www-form-urlencoded`` (or ``multipart/form-data`` when it
uploads files) where strings are sent as-is and every other value is JSON-encoded
(``chat_id=123``, ``reply_markup={...}``, ``show_alert=true``). Other clients use JSON
bodies or query strings. Values are therefore typed by parameter *name*: a ``text`` of
``"123"`` stays the string ``"123"`` while ``chat_id`` becomes the integer 123.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web

from bot.emulator.errors import ApiError, bad_request
from bot.emulator.records import JsonDict, UploadedFile

INT_FIELDS = frozenset(
    {
        "message_id", "offset", "limit", "user_id", "cache_time",
        "message_thread_id", "reply_to_message_id", "max_connections", "until_date",
        "width", "height", "duration",
    }
)  # fmt: skip
FLOAT_FIELDS = frozenset({"timeout"})  # PTB sends a fractional timedelta as e.g. "1.5"
CHAT_ID_FIELDS = frozenset({"chat_id", "from_chat_id"})
BOOL_FIELDS = frozenset(
    {
        "disable_notification", "protect_content", "show_alert", "drop_pending_updates",
        "disable_web_page_preview", "allow_sending_without_reply", "has_spoiler",
        "disable_content_type_detection", "show_caption_above_media", "allow_paid_broadcast",
        "revoke_messages", "only_if_banned", "for_channels", "is_big",
    }
)  # fmt: skip
JSON_FIELDS = frozenset(
    {
        "reply_markup", "entities", "caption_entities", "commands", "scope", "allowed_updates",
        "link_preview_options", "reply_parameters", "menu_button", "message_ids", "media",
        "permissions", "rights", "reaction",
    }
)  # fmt: skip
_JSON_WHAT = {"reply_markup": "reply keyboard markup", "entities": "entities"}
_INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")


def _to_int(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.match(value):
        return int(value)
    raise bad_request(f'field "{name}" must be of type Integer')


def _to_float(name: str, value: object) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if number is not None and math.isfinite(number):
        return number
    raise bad_request(f'field "{name}" must be of type Float')


def _to_chat_id(value: object) -> int | str:
    if isinstance(value, str) and value.startswith("@"):
        return value
    try:
        return _to_int("chat_id", value)
    except ApiError:
        raise bad_request("chat not found") from None


def _to_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "false", "0", ""}:
        return value.strip().lower() in {"true", "1"}
    raise bad_request(f'field "{name}" must be of type Boolean')


def _to_json(name: str, value: object) -> Any:
    if not isinstance(value, str):
        return value  # already structured: it came in a JSON body
    try:
        return json.loads(value)
    except ValueError:
        what = _JSON_WHAT.get(name, name)
        raise bad_request(f"can't parse {what} JSON object") from None


def coerce_param(name: str, value: object) -> Any:
    """Type one parameter by its name; unknown parameters stay as they came."""
    if name in JSON_FIELDS:
        return _to_json(name, value)
    if name in CHAT_ID_FIELDS:
        return _to_chat_id(value)
    if name in INT_FIELDS:
        return _to_int(name, value)
    if name in FLOAT_FIELDS:
        return _to_float(name, value)
    if name in BOOL_FIELDS:
        return _to_bool(name, value)
    return value


@dataclass
class RequestParams:
    """Typed parameters of one call plus the files uploaded with it."""

    values: JsonDict = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        """Whether the parameter was sent (and is not JSON ``null``)."""
        return self.values.get(name) is not None

    def chat_id(self) -> int | str:
        """The required ``chat_id``: an integer or an ``@username``."""
        if not self.has("chat_id"):
            raise bad_request("chat_id is empty")
        return _to_chat_id(self.values["chat_id"])

    def get_int(self, name: str) -> int | None:
        """An optional integer parameter."""
        return _to_int(name, self.values[name]) if self.has(name) else None

    def get_float(self, name: str) -> float | None:
        """An optional number parameter."""
        return _to_float(name, self.values[name]) if self.has(name) else None

    def require_int(self, name: str) -> int:
        """A required integer parameter."""
        value = self.get_int(name)
        if value is None:
            raise bad_request(f"{name} is empty")
        return value

    def get_str(self, name: str) -> str | None:
        """An optional string parameter (numbers from JSON bodies are accepted as text)."""
        if not self.has(name):
            return None
        value = self.values[name]
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise bad_request(f'field "{name}" must be of type String')

    def get_bool(self, name: str, default: bool = False) -> bool:
        """An optional boolean parameter."""
        return _to_bool(name, self.values[name]) if self.has(name) else default

    def get_json(self, name: str) -> Any:
        """An optional JSON-typed parameter (object or array)."""
        return _to_json(name, self.values[name]) if self.has(name) else None


async def _read_multipart(request: web.Request, raw: dict[str, Any]) -> dict[str, UploadedFile]:
    files: dict[str, UploadedFile] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue  # nested multiparts are not part of the Bot API
        if part.filename is None:
            raw[part.name] = await part.text()
        else:
            content = bytes(await part.read(decode=True))
            mime_type = part.headers.get("Content-Type", "application/octet-stream")
            files[part.name] = UploadedFile(part.name, part.filename, mime_type, content)
    return files


async def read_request_params(request: web.Request) -> RequestParams:
    """Collect query-string and body parameters (form, multipart or JSON) and type them."""
    raw: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    try:
        if request.can_read_body:
            content_type = request.content_type
            if content_type == "application/json":
                body = await request.json()
                if not isinstance(body, dict):
                    raise bad_request("request body must be a JSON object")
                raw.update(body)
            elif content_type == "multipart/form-data":
                files = await _read_multipart(request, raw)
            elif content_type == "application/x-www-form-urlencoded":
                raw.update(parse_qsl(await request.text(), keep_blank_values=True))
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "Request Entity Too Large") from None
    except ValueError:
        raise bad_request("can't parse request body") from None
    values = {name: coerce_param(name, value) for name, value in raw.items()}
    return RequestParams(values, files)
