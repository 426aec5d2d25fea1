"""A local stand-in for the WeCom, DingTalk and Feishu/Lark robot APIs, all on one port.

For tests, the shell and benchmarks: ``RobotEmulator`` answers as the services do (codes and
messages from their guides and from answers seen in the wild), enforcing what they enforce: the
JSON shape, signatures, keywords, IP allow-lists, size limits and per-robot rate limits, plus
injected faults. Paths: WeCom ``/cgi-bin/webhook/send``, DingTalk ``/robot/send``, Feishu
``/open-apis/bot/v2/hook/{id}``, Lark the same under ``/lark`` (``base(Service.LARK)``).

The clock (``clock``, seconds since the epoch; ``time.time`` by default) decides signature ages
and rate windows, so a test can move it instead of waiting.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web

from bot.robots.models import LIMITS, Robot, Service

WINDOW = 60.0  # seconds: the rate limits' sliding window
PER_MINUTE = {Service.WECOM: 20, Service.DINGTALK: 20, Service.FEISHU: 100, Service.LARK: 100}
FEISHU_PER_SECOND = 5
DINGTALK_BLOCK = 600.0  # seconds DingTalk refuses a robot once it went over its limit
SIGNATURE_AGE = 3600.0  # seconds a signed timestamp stays valid, either way, on both services


class Fault(StrEnum):
    """Faults besides an error code (``fail(..., 45009)``)."""

    HTTP_500 = "http_500"  # an internal error page
    NOT_JSON = "not_json"  # HTTP 200 with an HTML page (a proxy's or a portal's)
    TIMEOUT = "timeout"  # no answer for ``RobotEmulator.slow`` seconds (longer than a client waits)
    DROP = "drop"  # the connection closed without an answer, nothing recorded
    LOSE_ANSWER = "lose_answer"  # the message recorded, then the connection closed unanswered


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    title: str | None  # None for WeCom, which has none
    text: str
    at: float  # the emulator's clock when it was accepted
    raw: dict[str, Any]  # the JSON body as posted


@dataclass
class _Robot:
    key: Robot
    secret: str | None
    keyword: str | None
    allow_ip: bool
    received: list[ReceivedMessage] = field(default_factory=list)
    accepted_at: deque[float] = field(default_factory=deque)  # within the last WINDOW
    blocked_until: float = 0.0  # DingTalk's ten minutes
    faults: deque[int | Fault] = field(default_factory=deque)


class _Refused(Exception):
    """An answer other than success: the service's code and message, and the HTTP status."""

    def __init__(self, code: int, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# Messages the services answer with, by code (what injected codes answer too).
_MESSAGES: dict[Service, dict[int, str]] = {
    Service.WECOM: {
        93000: "invalid webhook url, hint: [emulated]",
        45009: "api freq out of limit, hint: [emulated]",
        40058: "markdown.content exceed max length 4096. invalid Request Parameter",
        40008: "invalid message type",
        40035: "invalid parameter: json",
        44004: "empty content",
    },
    Service.DINGTALK: {
        300001: "token is not exist",
        310000: "sign not match",
        410100: "send too fast, exceed 20 times per minute",
        460101: "description: body 大小不合法;solution:请保持大小在 20000bytes 以内;",
        40035: "缺少参数 json",
        400105: "不支持的消息类型",
    },
    Service.FEISHU: {
        19001: "param invalid: incoming webhook access token invalid",
        19021: "sign match fail or timestamp is not within one hour from current time",
        19022: "Ip Not Allowed",
        19024: "Key Words Not Found",
        19036: "The message exceeds the size limit",
        11232: "frequency limited",
        9499: "Bad Request",
    },
}
_MESSAGES[Service.LARK] = _MESSAGES[Service.FEISHU]
_BAD_REQUEST = 9499  # Feishu's answer to a malformed request, with HTTP 400


def _refused(service: Service, code: int, detail: str | None = None) -> _Refused:
    message = detail or _MESSAGES[service].get(code, f"error {code}")
    status = 400 if service in (Service.FEISHU, Service.LARK) and code == _BAD_REQUEST else 200
    return _Refused(code, message, status)


class RobotEmulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        slow: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.clock = clock
        self.slow = slow  # seconds a TIMEOUT fault holds its answer
        self.refusals: Counter[Robot] = Counter()  # rate-limit refusals per robot
        self._robots: dict[Robot, _Robot] = {}
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    # --- set-up ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the robot emulator is already running")
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/cgi-bin/webhook/send", self._wecom)
        app.router.add_post("/robot/send", self._dingtalk)
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self._feishu)
        app.router.add_post("/lark/open-apis/bot/v2/hook/{token}", self._lark)
        # handler_cancellation: a client that gives up ends a held (TIMEOUT) answer at once.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._closing = asyncio.Event()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._closing.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> RobotEmulator:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the robot emulator is not running")
        return f"http://{self.host}:{self.port}"

    def base(self, service: Service) -> str:
        """What ``*_API_BASE`` is set to for ``service`` to reach the emulator."""
        return f"{self.url}/lark" if service is Service.LARK else self.url

    def bases(self) -> dict[Service, str]:
        return {service: self.base(service) for service in Service}

    def register(
        self,
        service: Service,
        token: str,
        *,
        secret: str | None = None,
        keyword: str | None = None,
        allow_ip: bool = True,
    ) -> None:
        """A robot the emulator knows (others get the service's invalid-key answer). WeCom
        group robots have no security settings."""
        if service is Service.WECOM and (secret or keyword or not allow_ip):
            raise ValueError("WeCom group robots have no secret, keyword or IP allow-list")
        key = Robot(service, token)
        self._robots[key] = _Robot(key, secret, keyword, allow_ip)

    def received(self, service: Service, token: str) -> list[ReceivedMessage]:
        robot = self._robots.get(Robot(service, token))
        return list(robot.received) if robot is not None else []

    def fail(self, service: Service, token: str, fault: int | Fault, times: int = 1) -> None:
        """The robot's next ``times`` requests meet ``fault``: an error code the service answers
        with, or a ``Fault``."""
        self._robot(service, token).faults.extend([fault] * times)

    @property
    def total_refusals(self) -> int:
        return sum(self.refusals.values())

    def _robot(self, service: Service, token: str) -> _Robot:
        robot = self._robots.get(Robot(service, token))
        if robot is None:
            raise KeyError(f"no {service.value} robot {Robot(service, token).masked} registered")
        return robot

    # --- the services ------------------------------------------------------------------

    async def _wecom(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Service.WECOM, request.query.get("key", ""))

    async def _dingtalk(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Service.DINGTALK, request.query.get("access_token", ""))

    async def _feishu(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Service.FEISHU, request.match_info["token"])

    async def _lark(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Service.LARK, request.match_info["token"])

    async def _serve(
        self, request: web.Request, service: Service, token: str
    ) -> web.StreamResponse:
        body = await request.read()
        try:
            robot = self._robots.get(Robot(service, token))
            if robot is None:
                raise _refused(service, _INVALID_KEY[service])
            if robot.faults:
                fault = robot.faults.popleft()
                if isinstance(fault, Fault):
                    return await self._faulty(request, fault, service, robot, body)
                raise _refused(service, fault)
            self._accept(request, service, robot, body)
        except _Refused as refused:
            return _answer(service, refused.code, refused.message, refused.status)
        return _answer(service, 0, "ok" if service in _ERRCODE_SERVICES else "success")

    async def _faulty(
        self, request: web.Request, fault: Fault, service: Service, robot: _Robot, body: bytes
    ) -> web.StreamResponse:
        if fault is Fault.HTTP_500:
            return web.Response(status=500, text="<html>500 Internal Server Error</html>")
        if fault is Fault.NOT_JSON:
            return web.Response(text="<html>portal</html>", content_type="text/html")
        if fault is Fault.TIMEOUT:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.slow)
            return web.Response(status=504, text="Gateway Timeout")  # if anyone still waits
        if fault is Fault.LOSE_ANSWER:
            with contextlib.suppress(_Refused):
                self._accept(request, service, robot, body)
        _hang_up(request)
        return web.Response(status=500)  # never reaches the client: the connection is gone

    def _accept(self, request: web.Request, service: Service, robot: _Robot, body: bytes) -> None:
        """Check a request as the service does; record the message, or raise ``_Refused``."""
        now = self.clock()
        if service is Service.DINGTALK and now < robot.blocked_until:
            self._rate_refusal(service, robot, now)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise _refused(service, _BAD_REQUEST if service in _FEISHU else 40035)
        title, text = _message(service, data)
        self._check_signature(request, service, robot, data, now)
        if not robot.allow_ip:
            raise _refused(service, *_IP_REFUSAL[service])
        if robot.keyword is not None and robot.keyword not in f"{title or ''}\n{text}":
            raise _refused(service, *_KEYWORD_REFUSAL[service])
        _check_size(service, text, body)
        self._check_rate(service, robot, now)
        robot.accepted_at.append(now)
        robot.received.append(ReceivedMessage(title=title, text=text, at=now, raw=data))

    def _check_signature(
        self,
        request: web.Request,
        service: Service,
        robot: _Robot,
        data: dict[str, Any],
        now: float,
    ) -> None:
        if not robot.secret:
            return
        if service is Service.DINGTALK:
            timestamp, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
            if not timestamp.isdigit():
                raise _refused(service, 310000, "invalid timestamp")
            if abs(now - int(timestamp) / 1000) > SIGNATURE_AGE:
                raise _refused(service, 310000, "invalid timestamp")
            key, message = robot.secret.encode(), f"{timestamp}\n{robot.secret}".encode()
            if not _same_sign(sign, hmac.new(key, message, hashlib.sha256).digest()):
                raise _refused(service, 310000, "sign not match")
            return
        timestamp, signed = str(data.get("timestamp", "")), data.get("sign")
        key = f"{timestamp}\n{robot.secret}".encode()
        if (
            not timestamp.isdigit()
            or abs(now - int(timestamp)) > SIGNATURE_AGE
            or not isinstance(signed, str)
            or not _same_sign(signed, hmac.new(key, b"", hashlib.sha256).digest())
        ):
            raise _refused(service, 19021)

    def _check_rate(self, service: Service, robot: _Robot, now: float) -> None:
        window = robot.accepted_at
        while window and window[0] <= now - WINDOW:
            window.popleft()
        over = len(window) >= PER_MINUTE[service]
        if service in _FEISHU:
            over = over or sum(1 for t in window if t > now - 1.0) >= FEISHU_PER_SECOND
        if over:
            if service is Service.DINGTALK:
                robot.blocked_until = now + DINGTALK_BLOCK
            self._rate_refusal(service, robot, now)

    def _rate_refusal(self, service: Service, robot: _Robot, now: float) -> None:
        self.refusals[robot.key] += 1
        raise _refused(service, _RATE_LIMITED[service])


_FEISHU = (Service.FEISHU, Service.LARK)
_ERRCODE_SERVICES = (Service.WECOM, Service.DINGTALK)
_INVALID_KEY = {Service.WECOM: 93000, Service.DINGTALK: 300001, Service.FEISHU: 19001}
_INVALID_KEY[Service.LARK] = 19001
_RATE_LIMITED = {Service.WECOM: 45009, Service.DINGTALK: 410100, Service.FEISHU: 11232}
_RATE_LIMITED[Service.LARK] = 11232
_IP_REFUSAL: dict[Service, tuple[int, str | None]] = {
    Service.DINGTALK: (310000, "错误描述:ip 127.0.0.1 not in whitelist;"),
    Service.FEISHU: (19022, None),
    Service.LARK: (19022, None),
}
_KEYWORD_REFUSAL: dict[Service, tuple[int, str | None]] = {
    Service.DINGTALK: (310000, "keywords not in content"),
    Service.FEISHU: (19024, None),
    Service.LARK: (19024, None),
}


def _message(service: Service, data: dict[str, Any]) -> tuple[str | None, str]:
    """The title and text of a request body in the shape the service takes, or ``_Refused``."""
    if service is Service.WECOM:
        if data.get("msgtype") != "markdown":
            raise _refused(service, 40008)
        content = _get(data, "markdown", "content")
        if not isinstance(content, str) or not content:
            raise _refused(service, 44004)
        return None, content
    if service is Service.DINGTALK:
        if data.get("msgtype") != "markdown":
            raise _refused(service, 400105)
        title, text = _get(data, "markdown", "title"), _get(data, "markdown", "text")
        if not isinstance(title, str) or not isinstance(text, str) or not title or not text:
            raise _refused(service, 40035, "缺少参数 markdown")
        return title, text
    title = _get(data, "card", "header", "title", "content")
    elements = _get(data, "card", "elements")
    if data.get("msg_type") != "interactive" or not isinstance(elements, list) or not elements:
        raise _refused(service, _BAD_REQUEST)
    markdown = [e for e in elements if isinstance(e, dict) and e.get("tag") == "markdown"]
    contents = [element.get("content") for element in markdown]
    texts = [content for content in contents if isinstance(content, str)]
    if not texts or len(texts) != len(contents):
        raise _refused(service, _BAD_REQUEST)
    return (title if isinstance(title, str) else None), "\n".join(texts)


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _check_size(service: Service, text: str, body: bytes) -> None:
    limit = LIMITS[service].max_bytes
    if service is Service.WECOM and len(text.encode()) > limit:
        raise _refused(service, 40058)
    if service is Service.DINGTALK and len(text.encode()) > limit:
        raise _refused(service, 460101)
    if service in _FEISHU and len(body) > limit:
        raise _refused(service, 19036)


def _same_sign(sent: str, digest: bytes) -> bool:
    try:
        return hmac.compare_digest(base64.b64decode(sent, validate=True), digest)
    except (binascii.Error, ValueError):
        return False


def _answer(service: Service, code: int, message: str, status: int = 200) -> web.Response:
    if service in _ERRCODE_SERVICES:
        body: dict[str, Any] = {"errcode": code, "errmsg": message}
    else:
        body = {"code": code, "msg": message, "data": {}}
    text = json.dumps(body, ensure_ascii=False)
    return web.Response(status=status, text=text, content_type="application/json")


def _hang_up(request: web.Request) -> None:
    """Close the connection under the request: the client sees it drop, unanswered."""
    transport = request.transport
    if transport is not None:
        transport.abort()
