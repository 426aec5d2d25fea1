"""Sending one message to a push robot over HTTP, signed if it has a secret, its answer as a
``Delivery`` the outbox sender acts on.

Requests go to the configured base of each service (``*_API_BASE``), never to a pasted URL. What
each service is sent (checked against apprise's plugins and the services' guides):

* WeCom: ``POST {base}/cgi-bin/webhook/send?key=K``, ``markdown.content`` (no title: the text
  carries its own heading line);
* DingTalk: ``POST {base}/robot/send?access_token=T[&timestamp=ms&sign=S]``, ``markdown`` with a
  title (what the notification shows) and the text; ``S`` is base64(HMAC-SHA256(key=secret,
  msg="{ms}\\n{secret}")), URL-encoded;
* Feishu/Lark: ``POST {base}/open-apis/bot/v2/hook/{id}``, an ``interactive`` card (a header
  with the title, one markdown element): a card renders lists and bold text, which ``post``
  rich text would need built element by element. Signed: ``timestamp`` (seconds) and ``sign``
  = base64(HMAC-SHA256(key="{s}\\n{secret}", msg=b"")) in the body.

Outcomes: errcode/code 0 is ``Sent``; a refused key or security setting is ``Blocked`` with a
``Refusal``; rate limits are ``RateLimited``; 5xx, timeouts, network errors and answers that are
not JSON are ``Transient``; any other code is ``Rejected`` with the code and the service's
message. No text of an outcome or a log line holds the token, the secret or the request URL
(aiohttp quotes URLs in some errors: see ``_scrub``).

No proxy: the services are in China, where the bot runs; Telegram's proxy is not theirs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from bot.config import Settings
from bot.reminders.outcomes import Blocked, Delivery, RateLimited, Rejected, Sent, Transient
from bot.robots.models import Refusal, Robot, Service, mask

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RobotMessage:
    title: str  # DingTalk's markdown title / Feishu card header; WeCom has none (prepend nothing)
    text: str  # the markdown body


# How long to wait after each service's rate-limit answer. None says when to retry, so:
# WeCom (20 a minute, a window whose start we do not know): a minute frees the whole window.
# DingTalk: the robot is blocked for 10 minutes after going over; sooner only prolongs it.
# Feishu/Lark (5 a second and 100 a minute, or load at the top of the hour): a minute frees both.
RATE_LIMIT_WAIT: dict[Service, float] = {
    Service.WECOM: 60.0,
    Service.DINGTALK: 600.0,
    Service.FEISHU: 60.0,
    Service.LARK: 60.0,
}

# Codes that end a target until its owner acts (``Blocked``), per service.
_WECOM_REFUSALS = {93000: Refusal.INVALID_KEY}  # invalid webhook url (unknown or removed key)
_DINGTALK_REFUSALS = {
    300001: Refusal.INVALID_KEY,  # token is not exist
    300005: Refusal.INVALID_KEY,  # token is not exist (another variant)
    400013: Refusal.INVALID_KEY,  # the group was dissolved
    400101: Refusal.INVALID_KEY,  # access_token does not exist
    400102: Refusal.INVALID_KEY,  # the robot was disabled
    400106: Refusal.INVALID_KEY,  # the robot does not exist
    310000: Refusal.SECURITY,  # sign not match / keywords not in content / ip not in whitelist
}
_FEISHU_REFUSALS = {
    19001: Refusal.INVALID_KEY,  # incoming webhook access token invalid
    19021: Refusal.SIGNATURE,  # sign match fail or timestamp not within one hour
    19022: Refusal.IP,  # ip not allowed
    19024: Refusal.KEYWORD,  # key words not found
}
_REFUSALS: dict[Service, dict[int, Refusal]] = {
    Service.WECOM: _WECOM_REFUSALS,
    Service.DINGTALK: _DINGTALK_REFUSALS,
    Service.FEISHU: _FEISHU_REFUSALS,
    Service.LARK: _FEISHU_REFUSALS,
}
_RATE_LIMITED: dict[Service, int] = {
    Service.WECOM: 45009,  # api freq out of limit
    Service.DINGTALK: 410100,  # send too fast
    Service.FEISHU: 11232,  # frequency limited
    Service.LARK: 11232,
}

# Feishu's signature fields as payload_size assumes them: a 10-digit second count (until 2286)
# and the base64 of a 32-byte HMAC (always 44 characters).
_TIMESTAMP_PLACEHOLDER = "0" * 10
_SIGN_PLACEHOLDER = "A" * 44
MAX_ERROR_TEXT = 300  # characters of a service's error message kept in an outcome


def _dumps(body: Mapping[str, Any]) -> bytes:
    """The request body as sent: compact UTF-8 JSON (what Feishu's 20 KB limit measures)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _feishu_body(message: RobotMessage, signature: tuple[str, str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if signature is not None:
        body["timestamp"], body["sign"] = signature
    body["msg_type"] = "interactive"
    body["card"] = {
        "header": {"title": {"tag": "plain_text", "content": message.title}},
        "elements": [{"tag": "markdown", "content": message.text}],
    }
    return body


def payload_size(service: Service, message: RobotMessage) -> int:
    """What ``LIMITS[service].max_bytes`` measures: WeCom, the UTF-8 bytes of markdown.content;
    DingTalk, of markdown.text; Feishu/Lark, the whole request body as sent, counting the
    timestamp and sign fields of a signed robot (so a message that fits, fits either way)."""
    if service in (Service.WECOM, Service.DINGTALK):
        return len(message.text.encode())
    return len(_dumps(_feishu_body(message, (_TIMESTAMP_PLACEHOLDER, _SIGN_PLACEHOLDER))))


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签 (before URL encoding): base64(HMAC-SHA256(secret, "{ms}\\n{secret}"))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def feishu_sign(secret: str, timestamp: int) -> str:
    """Feishu's 签名校验: base64(HMAC-SHA256 keyed with "{s}\\n{secret}" over nothing)."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class RobotClient:
    """One aiohttp session for every robot of every service."""

    def __init__(self, bases: Mapping[Service, str], *, timeout: float = 10.0) -> None:
        missing = set(Service) - set(bases)
        if missing:
            raise ValueError(f"no API base for {', '.join(sorted(missing))}")
        self.bases = {service: base.rstrip("/") for service, base in bases.items()}
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RobotClient:
        return cls(
            {
                Service.WECOM: settings.wecom_api_base,
                Service.DINGTALK: settings.dingtalk_api_base,
                Service.FEISHU: settings.feishu_api_base,
                Service.LARK: settings.lark_api_base,
            }
        )

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> RobotClient:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def send(
        self, robot: Robot, secret: str | None, message: RobotMessage, *, now: datetime
    ) -> Delivery:
        """Send one message; errors are returned, not raised."""
        if self._session is None:
            raise RuntimeError("RobotClient.send before start()")
        url, params, body = self._request(robot, secret, message, now)
        try:
            async with self._session.post(url, params=params, data=body) as response:
                status, raw = response.status, await response.read()
        except TimeoutError:  # before ClientError: some timeouts are both
            outcome: Delivery = Transient("timed out")
        except (aiohttp.ClientError, OSError) as error:
            outcome = Transient(_scrub(f"{error.__class__.__name__}: {error}", robot, secret))
        else:
            outcome = _outcome(robot, secret, status, raw)
        if not isinstance(outcome, Sent):
            log.info("robot %r: %s", robot, outcome)
        return outcome

    def _request(
        self, robot: Robot, secret: str | None, message: RobotMessage, now: datetime
    ) -> tuple[str, dict[str, str], bytes]:
        base, service, token = self.bases[robot.service], robot.service, robot.token
        if service is Service.WECOM:
            body = {"msgtype": "markdown", "markdown": {"content": message.text}}
            return f"{base}/cgi-bin/webhook/send", {"key": token}, _dumps(body)
        if service is Service.DINGTALK:
            params = {"access_token": token}
            if secret:
                timestamp_ms = int(now.timestamp() * 1000)
                params["timestamp"] = str(timestamp_ms)
                params["sign"] = dingtalk_sign(secret, timestamp_ms)  # aiohttp URL-encodes it
            markdown = {"title": message.title, "text": message.text}
            body = {"msgtype": "markdown", "markdown": markdown}
            return f"{base}/robot/send", params, _dumps(body)
        signature = None
        if secret:
            seconds = int(now.timestamp())
            signature = (str(seconds), feishu_sign(secret, seconds))
        url = f"{base}/open-apis/bot/v2/hook/{token}"
        return url, {}, _dumps(_feishu_body(message, signature))


def _outcome(robot: Robot, secret: str | None, status: int, raw: bytes) -> Delivery:
    service = robot.service
    if status >= 500:
        return Transient(f"HTTP {status}")
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict):
        if status == 429:
            return RateLimited(RATE_LIMIT_WAIT[service])
        return Transient(f"HTTP {status}: the answer is not JSON")
    if service in (Service.WECOM, Service.DINGTALK):
        code, text = answer.get("errcode"), answer.get("errmsg")
    elif "code" in answer:
        code, text = answer.get("code"), answer.get("msg")
    else:  # older Feishu answers: {"StatusCode": 0, "StatusMessage": "success"}
        code, text = answer.get("StatusCode"), answer.get("StatusMessage")
    if not isinstance(code, int) or isinstance(code, bool):
        if status == 429:
            return RateLimited(RATE_LIMIT_WAIT[service])
        return Transient(f"HTTP {status}: an answer without a code")
    if code == 0 and status == 200:
        return Sent(message_id=0)
    if code == _RATE_LIMITED[service] or status == 429:
        return RateLimited(RATE_LIMIT_WAIT[service])
    refusal = _REFUSALS[service].get(code)
    if refusal is not None:
        return Blocked(refusal)
    said = _scrub(str(text or ""), robot, secret)[:MAX_ERROR_TEXT]
    error = f"{service.value} error {code}"
    return Rejected(f"{error}: {said}" if said else error)


_URL = re.compile(r"(?i)\b(https?://[^/\s?#]+)[/?#]\S*")


def _scrub(text: str, robot: Robot, secret: str | None) -> str:
    """``text`` without the token, the secret or anything after a URL's host: aiohttp quotes
    request URLs in some errors, and a service may echo what it was sent."""
    text = _URL.sub(lambda m: f"{m.group(1)}/…", text)
    for value in (robot.token, secret):
        if value:
            text = text.replace(value, mask(value))
    return text
