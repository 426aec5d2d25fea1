"""Logging set-up that never writes a secret.

Request URLs contain the bot token, and libraries log or quote them (httpx in its request lines,
aiohttp in some error texts); later settings add more secrets. Every command of ``python -m bot``
sets logging up the same way (``setup_logging``) with every secret the settings hold (every
``SecretStr`` field, see ``bot.config.Settings.secrets``): one filter on the log's handlers
replaces each of them, in log lines and tracebacks alike, by the setting's name (``<BOT_TOKEN>``).
``redact`` does the same for text printed outside the log, and ``install_excepthook`` for an
unexpected traceback on stderr.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType
from urllib.parse import quote

_MIN_SECRET_LEN = 4  # shorter values would redact ordinary words

# Every secret this process knows, by its value: the placeholder that replaces it.
_SECRETS: dict[str, str] = {}


def _forms(secret: str) -> set[str]:
    """The secret as given and as a URL may carry it (percent-encoded)."""
    return {secret, quote(secret, safe=""), quote(secret)}


def register_secrets(secrets: Mapping[str, str]) -> None:
    """Remember ``{value: name}`` pairs, e.g. ``{"123:AA…": "BOT_TOKEN"}``, for ``redact``."""
    for value, name in secrets.items():
        value = value.strip()
        if len(value) >= _MIN_SECRET_LEN:
            for form in _forms(value):
                _SECRETS[form] = f"<{name}>"


# Push robots' credentials are users' data, not settings: they are known by their shape. A
# webhook URL's token (WeCom ``key=``, DingTalk ``access_token=``, Feishu/Lark ``/hook/…``) and
# a DingTalk ``SEC…`` secret, wherever a line quotes them (at DEBUG, python-telegram-bot logs
# whole updates: a pasted /push URL with them).
_ROBOT_CREDENTIALS = re.compile(
    r"(?P<keep>(?:key|access_token)=|/bot/v2/hook/)[A-Za-z0-9_-]{4,}|\bSEC[A-Za-z0-9]{16,}"
)


def _robot_credential(match: re.Match[str]) -> str:
    return f"{match.group('keep') or ''}<ROBOT_CREDENTIAL>"


def redact(text: str, secrets: Mapping[str, str] | None = None) -> str:
    """``text`` with every known secret (or those of ``secrets``) replaced by its placeholder,
    and every push robot's webhook token or signing secret."""
    table = _SECRETS if secrets is None else secrets
    for value in sorted(table, key=len, reverse=True):  # longest first: one may contain another
        if value in text:
            text = text.replace(value, table[value])
    return _ROBOT_CREDENTIALS.sub(_robot_credential, text)


class RedactSecrets(logging.Filter):
    """A handler filter replacing secrets in every record: its message, traceback and stack.

    Without arguments it uses the process's registered secrets (``register_secrets``), so one
    filter covers secrets registered later too; with ``secrets`` given, exactly those (each
    replaced by ``<BOT_TOKEN>``, the first secret a process had).
    """

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self._own: dict[str, str] | None = None
        if secrets:
            self._own = {}
            for secret in secrets:
                if secret:
                    self._own.update(dict.fromkeys(_forms(secret), "<BOT_TOKEN>"))

    def _redact(self, text: str) -> str:
        return redact(text, self._own)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (clean := self._redact(message)) != message:
            record.msg = clean
            record.args = None
        # A traceback can carry a secret too (an error quoting a request URL): format it here,
        # as the handler's formatter would, and keep the redacted text for it to use.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


RedactToken = RedactSecrets  # the name it had while the token was the only secret


def setup_logging(level: str, secrets: Mapping[str, str] | Iterable[str] = ()) -> None:
    """The log of every command: to stderr at ``level``, secrets redacted.

    ``secrets``: ``{value: name}`` (``Settings.secrets()``), or plain values (named BOT_TOKEN).
    """
    pairs = dict(secrets) if isinstance(secrets, Mapping) else dict.fromkeys(secrets, "BOT_TOKEN")
    register_secrets(pairs)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level, force=True
    )
    # One line per HTTP request is noise at INFO, and those lines carry the token in the URL.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # aiosqlite's DEBUG lines quote every statement's parameters: robots' tokens and secrets,
    # users' texts. They are never worth it, even at DEBUG.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLevelName(level)))
    logging.captureWarnings(True)  # warnings go through the same (redacting) handler
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())


def _excepthook(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    text = "".join(traceback.format_exception(kind, error, trace))
    sys.stderr.write(redact(text))


def install_excepthook() -> None:
    """An uncaught exception's traceback is printed with the secrets redacted."""
    sys.excepthook = _excepthook
