"""What the emulator enforces on the robot's replies: which req_id may be answered how,
content limits, and the per-conversation rate limit. Each check returns None when the
frame is fine, or the (errcode, errmsg) WeCom would answer."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.wecom.bodies import card_problem
from bot.wecom.limits import (
    ERR_CONTENT_TOO_LONG,
    ERR_INVALID_MEDIA_ID,
    ERR_INVALID_MSGTYPE,
    ERR_INVALID_PARAM,
    ERR_INVALID_REQ_ID,
    ERR_STREAM_EXPIRED,
    MARKDOWN_MAX_BYTES,
    STREAM_MAX_BYTES,
)

Refusal = tuple[int, str]
Chat = tuple[str, str]
WindowKind = Literal["msg", "enter_chat", "card_event"]
INVALID_REQ_ID: Refusal = (ERR_INVALID_REQ_ID, "invalid req_id")


@dataclass
class ReplyWindow:
    """A callback the robot may answer: what kind, where, since when, and how used."""

    kind: WindowKind
    chat: Chat
    userid: str
    opened_at: float
    task_id: str | None = None
    used: bool = False  # a welcome / card update / non-stream reply was sent
    stream_id: str | None = None
    finished: bool = False
    card_sent: bool = False


def check_reply(
    window: ReplyWindow | None,
    cmd_kind: WindowKind,
    body: dict[str, Any],
    now: float,
    *,
    event_seconds: float,
    stream_seconds: float,
) -> Refusal | None:
    """May this respond/welcome/update frame use ``window``? (Does not mark it used.)

    Rules modelled: the req_id must be a live callback of the matching kind; a welcome
    or a card update within ``event_seconds`` of the event, once; a message gets one
    reply message — a stream refreshed under one stream id until finish (for
    ``stream_seconds``), a template card, or a file — and a card at most once.
    """
    if window is None or window.kind != cmd_kind:
        return INVALID_REQ_ID
    age = now - window.opened_at
    if cmd_kind != "msg":
        if window.used or age > event_seconds:
            return INVALID_REQ_ID
        return None
    msgtype = body.get("msgtype")
    if msgtype in ("stream", "stream_with_template_card"):
        stream = body.get("stream")
        stream_id = stream.get("id") if isinstance(stream, dict) else None
        if not isinstance(stream_id, str) or not stream_id:
            return (ERR_INVALID_PARAM, "stream.id is required")
        if window.used or window.finished:
            return INVALID_REQ_ID
        if window.stream_id is not None and stream_id != window.stream_id:
            return INVALID_REQ_ID
        if age > stream_seconds:
            return (ERR_STREAM_EXPIRED, "stream message update expired")
        if window.card_sent and "template_card" in body:
            return (ERR_INVALID_PARAM, "template_card already sent for this message")
        return None
    if window.used or window.stream_id is not None:
        return INVALID_REQ_ID
    if age > stream_seconds:
        return INVALID_REQ_ID
    return None


def mark_reply(window: ReplyWindow, body: dict[str, Any]) -> bool:
    """Record a reply accepted on ``window``; True if it made a new message."""
    stream = body.get("stream")
    if window.kind == "msg" and isinstance(stream, dict):
        new = window.stream_id is None
        window.stream_id = str(stream.get("id"))
        window.finished = bool(stream.get("finish"))
        window.card_sent = window.card_sent or "template_card" in body
        return new
    window.used = True
    return window.kind != "card_event"  # an update replaces a message, it adds none


def check_content(
    body: dict[str, Any], allowed: tuple[str, ...], media: set[str]
) -> Refusal | None:
    """Is the message body's content acceptable (type allowed, sizes, cards, media)?"""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in allowed:
        return (ERR_INVALID_MSGTYPE, f"invalid msgtype {msgtype!r}")
    if msgtype in ("stream", "stream_with_template_card"):
        stream = body.get("stream")
        if not isinstance(stream, dict):
            return (ERR_INVALID_PARAM, "stream is required")
        problem = _text_problem(stream.get("content", ""), STREAM_MAX_BYTES)
        if problem:
            return problem
    if msgtype in ("markdown", "text"):
        item = body.get(msgtype)
        content = item.get("content") if isinstance(item, dict) else None
        problem = _text_problem(content, MARKDOWN_MAX_BYTES)
        if problem:
            return problem
    if "template_card" in body or msgtype == "template_card":
        problem_text = card_problem(body.get("template_card"))
        if problem_text:
            return (ERR_INVALID_PARAM, problem_text)
    if msgtype in ("file", "image", "voice", "video"):
        item = body.get(msgtype)
        media_id = item.get("media_id") if isinstance(item, dict) else None
        if not isinstance(media_id, str) or media_id not in media:
            return (ERR_INVALID_MEDIA_ID, "invalid media_id")
    return None


def _text_problem(content: object, limit: int) -> Refusal | None:
    if not isinstance(content, str):
        return (ERR_INVALID_PARAM, "content must be a string")
    if len(content.encode("utf-8")) > limit:
        return (ERR_CONTENT_TOO_LONG, f"content size out of limit {limit} bytes")
    return None


@dataclass
class RateLimiter:
    """Messages per conversation in the last minute and hour (sliding windows)."""

    per_minute: int
    per_hour: int
    _sent: dict[Chat, deque[float]] = field(default_factory=dict)

    def allow(self, chat: Chat, now: float) -> bool:
        """Count one message for ``chat`` if it is within both limits."""
        times = self._sent.setdefault(chat, deque())
        while times and now - times[0] >= 3_600:
            times.popleft()
        last_minute = sum(1 for at in times if now - at < 60)
        if last_minute >= self.per_minute or len(times) >= self.per_hour:
            return False
        times.append(now)
        return True
