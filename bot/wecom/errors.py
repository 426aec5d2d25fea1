"""Exceptions of the WeCom long-connection client; none of them ever carries the secret."""

from __future__ import annotations


class WeComError(Exception):
    """Base of everything bot.wecom raises on purpose."""


class FrameError(WeComError):
    """A frame (or a callback inside one) is not what the protocol allows."""


class WeComApiError(WeComError):
    """WeCom answered a request with errcode != 0."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeCom errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class SubscribeRefused(WeComApiError):
    """aibot_subscribe was refused (wrong bot id or secret): retrying cannot help."""


class TakenOver(WeComError):
    """Another connection subscribed the same robot; WeCom closed this one for good."""


class ConnectionLost(WeComError):
    """The connection is down, or dropped before the answer came."""


class AnswerTimeout(WeComError):
    """No answer in time; the request may or may not have been applied."""


class MediaError(WeComError):
    """A file could not be downloaded, decrypted or uploaded; the message says why."""
