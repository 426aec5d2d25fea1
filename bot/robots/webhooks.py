"""Reading a pasted webhook URL: exactly the hosts and paths each service hands out, nothing else.

The bot keeps only the service and the token of what is pasted and always sends to the configured
``*_API_BASE``, so no part of a pasted URL can ever reach a request. The strictness is for the
person pasting: a lookalike host (``qyapi.weixin.qq.com.evil.cn``), an ``http://`` copy or a
mangled paste is named as such instead of being saved and failing later.

Choices (all pure, no I/O):

* Surrounding whitespace, ``<…>``, quotes and brackets, and trailing punctuation a chat client
  adds (``.,;:!?)]}>`` and their full-width forms) are dropped first; what is left must be
  printable ASCII without spaces or backslashes.
* ``https`` only; no userinfo; port only 443 (the default); the host as the service spells it,
  compared case-insensitively (no IP literals, no trailing dot, no percent-encoding); the path
  exactly the service's, no ``.``/``..`` segments, no percent-encoding, no trailing slash, no
  fragment.
* The token: 16 to 128 of ``[A-Za-z0-9_-]``, as written (not percent-decoded); DingTalk's
  ``access_token`` hexadecimal, as DingTalk issues it. A token parameter given twice is refused
  (which one would the person mean?).
* Other query parameters are ignored, whatever they are (e.g. the ``timestamp``/``sign`` of a
  DingTalk URL copied from a signed request): they are never stored nor sent, so they are
  harmless. Feishu's URL carries its token in the path: any query there is ignored likewise.
"""

from __future__ import annotations

import re
from enum import StrEnum

from bot.robots.models import Robot, Service


class WebhookProblem(StrEnum):
    NOT_A_URL = "not_a_url"  # not a URL at all, or characters no webhook URL has
    NOT_HTTPS = "not_https"  # http:// or another scheme
    UNKNOWN_HOST = "unknown_host"  # another host, userinfo (x@host), a port, an IP literal
    WRONG_PATH = "wrong_path"  # the right host but not the robot's send path
    NO_TOKEN = "no_token"  # the key / access_token / hook id is missing or empty
    BAD_TOKEN = "bad_token"  # a token of the wrong length or characters, or two of them
    SECRET_NOT_USED = "secret_not_used"  # WeCom robots have no signing secret
    BAD_SECRET = "bad_secret"  # a secret this service cannot have issued


class WebhookError(ValueError):
    """A pasted URL or secret refused; ``reason`` says why (the handlers word it). The text never
    quotes what was pasted: it may carry a token."""

    def __init__(self, reason: WebhookProblem) -> None:
        super().__init__(f"webhook refused: {reason.value}")
        self.reason = reason


MAX_URL_LENGTH = 2048
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_HEX_TOKEN = re.compile(r"[0-9A-Fa-f]{16,128}")

_HOSTS: dict[str, Service] = {
    "qyapi.weixin.qq.com": Service.WECOM,
    "oapi.dingtalk.com": Service.DINGTALK,
    "open.feishu.cn": Service.FEISHU,
    "open.larksuite.com": Service.LARK,
}
_QUERY_PATHS: dict[Service, tuple[str, str]] = {  # path, the query parameter holding the token
    Service.WECOM: ("/cgi-bin/webhook/send", "key"),
    Service.DINGTALK: ("/robot/send", "access_token"),
}
_HOOK_PATH = "/open-apis/bot/v2/hook/"  # Feishu and Lark: the token is the last path segment

# What a chat client or a sentence may wrap around a pasted URL (never part of a token).
_OPENERS = "<([{\"'`「『《【（“‘"
_TRAILERS = ">)]}\"'`.,;:!?。，；：！？、」』》】）”’…"


def _unwrap(text: str) -> str:
    text = text.strip()
    while True:
        before = text
        text = text.lstrip(_OPENERS).rstrip(_TRAILERS).strip()
        if text == before:
            return text


def parse_webhook(url: str) -> Robot:
    """The robot a pasted webhook URL names, or ``WebhookError`` saying what is wrong with it."""
    text = _unwrap(url)
    if (
        not text
        or len(text) > MAX_URL_LENGTH
        or not text.isascii()
        or not text.isprintable()
        or any(c in text for c in " \\")
    ):
        raise WebhookError(WebhookProblem.NOT_A_URL)
    scheme, sep, rest = text.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise WebhookError(WebhookProblem.NOT_A_URL)
    if scheme.lower() != "https":
        raise WebhookError(WebhookProblem.NOT_HTTPS)
    # Split by hand rather than urlsplit: it tolerates what must be refused here (a second
    # "?", "@" in odd places) and decodes nothing, so what is checked is what was pasted.
    authority, path, query, fragment = _split(rest)
    service = _service(authority)
    if fragment is not None or "%" in path or any(s in (".", "..") for s in path.split("/")):
        raise WebhookError(WebhookProblem.WRONG_PATH)
    if service in _QUERY_PATHS:
        expected, name = _QUERY_PATHS[service]
        if path != expected:
            raise WebhookError(WebhookProblem.WRONG_PATH)
        token = _query_token(query, name)
    else:
        if not path.startswith(_HOOK_PATH):
            raise WebhookError(WebhookProblem.WRONG_PATH)
        token = path.removeprefix(_HOOK_PATH)
        if "/" in token:
            raise WebhookError(WebhookProblem.WRONG_PATH)
        if not token:
            raise WebhookError(WebhookProblem.NO_TOKEN)
    pattern = _HEX_TOKEN if service is Service.DINGTALK else _TOKEN
    if not pattern.fullmatch(token):
        raise WebhookError(WebhookProblem.BAD_TOKEN)
    return Robot(service, token)


def _split(rest: str) -> tuple[str, str, str | None, str | None]:
    """authority, path, query (None: no "?"), fragment (None: no "#")."""
    rest, hash_sign, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    return authority, path, query if question else None, fragment if hash_sign else None


def _service(authority: str) -> Service:
    if "@" in authority:  # userinfo: "https://qyapi.weixin.qq.com@evil.cn/" goes to evil.cn
        raise WebhookError(WebhookProblem.UNKNOWN_HOST)
    host, colon, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if colon and port != "443":
        raise WebhookError(WebhookProblem.UNKNOWN_HOST)
    service = _HOSTS.get(host.lower())
    if service is None:
        raise WebhookError(WebhookProblem.UNKNOWN_HOST)
    return service


def _query_token(query: str | None, name: str) -> str:
    found: list[str] = []
    for pair in (query or "").split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            found.append(value)
    if len(found) > 1:
        raise WebhookError(WebhookProblem.BAD_TOKEN)
    if not found or not found[0]:
        raise WebhookError(WebhookProblem.NO_TOKEN)
    return found[0]


_DINGTALK_SECRET = re.compile(r"SEC[A-Za-z0-9]{16,125}")  # SEC + 64 hex digits as issued
_FEISHU_SECRET = re.compile(r"[A-Za-z0-9]{16,128}")  # 22 letters and digits as issued


def check_secret(service: Service, secret: str) -> str:
    """The signing secret as it will be stored, or ``WebhookError`` if this service cannot have
    issued it: WeCom robots have none; DingTalk's (加签) start with "SEC"; Feishu's and Lark's
    (签名校验) are some twenty letters and digits."""
    text = _unwrap(secret)
    if service is Service.WECOM:
        raise WebhookError(WebhookProblem.SECRET_NOT_USED)
    pattern = _DINGTALK_SECRET if service is Service.DINGTALK else _FEISHU_SECRET
    if not pattern.fullmatch(text):
        raise WebhookError(WebhookProblem.BAD_SECRET)
    return text


def webhook_url(robot: Robot) -> str:
    """The URL the service would show for ``robot``: what ``parse_webhook`` reads back (the
    shell hands these out for its stand-in robots)."""
    if robot.service is Service.WECOM:
        return f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={robot.token}"
    if robot.service is Service.DINGTALK:
        return f"https://oapi.dingtalk.com/robot/send?access_token={robot.token}"
    host = "open.feishu.cn" if robot.service is Service.FEISHU else "open.larksuite.com"
    return f"https://{host}{_HOOK_PATH}{robot.token}"
