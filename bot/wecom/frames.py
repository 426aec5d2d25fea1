"""WeCom long-connection frames: ``{cmd, headers: {req_id}, body}`` and the answers
``{headers: {req_id}, errcode, errmsg[, body]}``, plus typed views of the callbacks.

``Frame.parse`` is the one door for bytes from the network: anything malformed raises
``FrameError`` (never another exception), and sizes are bounded before JSON is parsed.
``parse_inbound`` holds to the same: any field of a callback may be any JSON type, so
every read goes through ``_str`` / ``_obj`` / ``_list``, which treat a wrong type as absent.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.wecom.bodies import (
    button_card,
    card_body,
    file_body,
    markdown_body,
    send_body,
    stream_body,
    update_card_body,
    validate_card,
    welcome_text_body,
)
from bot.wecom.errors import FrameError
from bot.wecom.limits import (
    CARD_KEY_MAX_BYTES,
    CARD_MAX_BUTTONS,
    CARD_MAX_OPTIONS,
    MARKDOWN_MAX_BYTES,
    STREAM_MAX_BYTES,
    UPLOAD_CHUNK_BYTES,
)

__all__ = [
    "CARD_KEY_MAX_BYTES",
    "CARD_MAX_BUTTONS",
    "CARD_MAX_OPTIONS",
    "CMD_EVENT_CALLBACK",
    "CMD_MSG_CALLBACK",
    "CMD_PING",
    "CMD_RESPOND_MSG",
    "CMD_RESPOND_UPDATE",
    "CMD_RESPOND_WELCOME",
    "CMD_SEND_MSG",
    "CMD_SUBSCRIBE",
    "CMD_UPLOAD_CHUNK",
    "CMD_UPLOAD_FINISH",
    "CMD_UPLOAD_INIT",
    "MARKDOWN_MAX_BYTES",
    "MAX_FRAME_BYTES",
    "STREAM_MAX_BYTES",
    "EventIn",
    "Frame",
    "Inbound",
    "MessageIn",
    "button_card",
    "card_body",
    "file_body",
    "markdown_body",
    "new_req_id",
    "parse_inbound",
    "send_body",
    "stream_body",
    "update_card_body",
    "validate_card",
    "welcome_text_body",
]

# Commands, robot → WeCom.
CMD_SUBSCRIBE = "aibot_subscribe"
CMD_PING = "ping"
CMD_RESPOND_MSG = "aibot_respond_msg"
CMD_RESPOND_WELCOME = "aibot_respond_welcome_msg"
CMD_RESPOND_UPDATE = "aibot_respond_update_msg"
CMD_SEND_MSG = "aibot_send_msg"
CMD_UPLOAD_INIT = "aibot_upload_media_init"
CMD_UPLOAD_CHUNK = "aibot_upload_media_chunk"
CMD_UPLOAD_FINISH = "aibot_upload_media_finish"
# Commands, WeCom → robot.
CMD_MSG_CALLBACK = "aibot_msg_callback"
CMD_EVENT_CALLBACK = "aibot_event_callback"

# The largest legitimate frame is an upload chunk: 512 KiB as base64 plus its envelope.
MAX_FRAME_BYTES = UPLOAD_CHUNK_BYTES * 4 // 3 + 64 * 1024
_MAX_ID_CHARS = 256


def new_req_id(prefix: str) -> str:
    """A fresh request id shaped like the SDK's: ``{prefix}_{ms}_{random}``."""
    return f"{prefix}_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Frame:
    """One frame in either direction; an answer has ``cmd`` None and an ``errcode``."""

    cmd: str | None
    req_id: str
    body: dict[str, Any] = field(default_factory=dict)
    errcode: int | None = None
    errmsg: str | None = None

    @property
    def is_answer(self) -> bool:
        return self.cmd is None

    @classmethod
    def parse(cls, raw: str | bytes) -> Frame:
        """Parse and check one frame; raise FrameError on anything malformed."""
        if len(raw) > MAX_FRAME_BYTES:
            raise FrameError(f"frame of {len(raw)} bytes is over {MAX_FRAME_BYTES}")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise FrameError(f"frame is not JSON: {exc.__class__.__name__}") from None
        if not isinstance(data, dict):
            raise FrameError("frame is not a JSON object")
        headers = data.get("headers")
        if not isinstance(headers, dict):
            raise FrameError("frame has no headers object")
        req_id = headers.get("req_id")
        if not isinstance(req_id, str) or not 0 < len(req_id) <= _MAX_ID_CHARS:
            raise FrameError("frame has no usable headers.req_id")
        cmd = data.get("cmd")
        if cmd is not None and (not isinstance(cmd, str) or not 0 < len(cmd) <= 64):
            raise FrameError("frame cmd is not a short string")
        body = data.get("body")
        if body is None:
            body = {}
        elif not isinstance(body, dict):
            raise FrameError("frame body is not an object")
        errcode = data.get("errcode")
        if errcode is not None and (isinstance(errcode, bool) or not isinstance(errcode, int)):
            raise FrameError("frame errcode is not an integer")
        errmsg = data.get("errmsg")
        if errmsg is not None and not isinstance(errmsg, str):
            raise FrameError("frame errmsg is not a string")
        if cmd is None and errcode is None:
            raise FrameError("frame has neither cmd nor errcode")
        return cls(cmd=cmd, req_id=req_id, body=body, errcode=errcode, errmsg=errmsg)

    def dumps(self) -> str:
        """Serialise; keys absent on the wire (no body, no errcode) are left out."""
        data: dict[str, Any] = {}
        if self.cmd is not None:
            data["cmd"] = self.cmd
        data["headers"] = {"req_id": self.req_id}
        if self.body:
            data["body"] = self.body
        if self.errcode is not None:
            data["errcode"] = self.errcode
            data["errmsg"] = self.errmsg or ""
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


ChatType = Literal["single", "group"]


@dataclass(frozen=True)
class MessageIn:
    """A message a person sent the robot (aibot_msg_callback)."""

    req_id: str
    msgid: str
    chattype: ChatType
    chatid: str | None
    userid: str
    msgtype: str
    text: str | None
    file_url: str | None
    file_aeskey: str | None
    file_name: str | None
    raw: dict[str, Any]

    @property
    def chat(self) -> tuple[str, str]:
        """("single", userid) or ("group", chatid): the conversation to answer in."""
        return _chat_of(self.chattype, self.chatid, self.userid)


@dataclass(frozen=True)
class EventIn:
    """An event (aibot_event_callback): enter_chat, template_card_event, …"""

    req_id: str
    msgid: str | None
    event_type: str
    chattype: ChatType
    chatid: str | None
    userid: str
    event_key: str | None
    task_id: str | None
    raw: dict[str, Any]

    @property
    def chat(self) -> tuple[str, str]:
        return _chat_of(self.chattype, self.chatid, self.userid)


Inbound = MessageIn | EventIn


def _chat_of(chattype: ChatType, chatid: str | None, userid: str) -> tuple[str, str]:
    if chattype == "group" and chatid:
        return ("group", chatid)
    return ("single", userid)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _common(body: dict[str, Any]) -> tuple[ChatType, str | None, str]:
    userid = _str(_obj(body.get("from")).get("userid"))
    if userid is None:
        raise FrameError("callback has no from.userid")
    given = body.get("chattype", "single")
    if given not in ("single", "group"):  # JSON of any type compares safely
        raise FrameError("callback chattype is neither single nor group")
    chattype: ChatType = "group" if given == "group" else "single"
    chatid = _str(body.get("chatid"))
    if chattype == "group" and chatid is None:
        raise FrameError("group callback has no chatid")
    return chattype, chatid, userid


def parse_inbound(frame: Frame) -> Inbound | None:
    """The typed view of a callback frame; None for frames that are not callbacks.

    Raises FrameError if a callback lacks what every callback has (sender, chat).
    """
    body = frame.body
    if frame.cmd == CMD_MSG_CALLBACK:
        msgid = _str(body.get("msgid"))
        if msgid is None:
            raise FrameError("message callback has no msgid")
        chattype, chatid, userid = _common(body)
        msgtype = _str(body.get("msgtype")) or "unknown"
        text, url, aeskey, name = _content(msgtype, body)
        return MessageIn(
            frame.req_id, msgid, chattype, chatid, userid, msgtype, text, url, aeskey, name, body
        )
    if frame.cmd == CMD_EVENT_CALLBACK:
        event = _obj(body.get("event"))
        event_type = _str(event.get("eventtype"))
        if event_type is None:
            raise FrameError("event callback has no event.eventtype")
        chattype, chatid, userid = _common(body)
        # The SDK types put event_key/task_id on the event; wire captures nest event
        # details under the event type's name (as feedback_event.id): accept both.
        detail = _obj(event.get(event_type)) or event
        return EventIn(
            frame.req_id,
            _str(body.get("msgid")),
            event_type,
            chattype,
            chatid,
            userid,
            _str(detail.get("event_key")),
            _str(detail.get("task_id")),
            body,
        )
    return None


def _content(
    msgtype: str, body: dict[str, Any]
) -> tuple[str | None, str | None, str | None, str | None]:
    """(text, file url, aeskey, file name) of a message body."""
    item = _obj(body.get(msgtype))
    if msgtype in ("text", "voice"):
        return _str(item.get("content")), None, None, None
    if msgtype in ("file", "image", "video"):
        name = _str(item.get("filename")) or _str(item.get("file_name"))
        return None, _str(item.get("url")), _str(item.get("aeskey")), name
    if msgtype == "mixed":
        texts: list[str] = []
        image: dict[str, Any] = {}
        for raw_part in _list(item.get("msg_item")):
            part = _obj(raw_part)
            kind = _str(part.get("msgtype"))
            if kind == "text":
                content = _str(_obj(part.get("text")).get("content"))
                if content:
                    texts.append(content)
            elif kind == "image" and not image:
                image = _obj(part.get("image"))
        text = "\n".join(texts) or None
        return text, _str(image.get("url")), _str(image.get("aeskey")), None
    return None, None, None, None
