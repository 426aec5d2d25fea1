"""Logging for the shell: the terminal is the chat, so only warnings and errors, one line each."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from types import TracebackType

from bot.logs import RedactSecrets, redact, register_secrets

# Libraries that log every request or poll at INFO/DEBUG: always WARNING and above here.
NOISY = (
    "telegram", "httpx", "httpcore", "aiohttp", "apscheduler", "asyncio", "aiosqlite", "websockets",
    "bot.wecom.emulator.wire",
)  # fmt: skip

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class OneLineFormatter(logging.Formatter):
    """An exception shows as its last line (``ValueError: …``), not a traceback (nor the
    redacted traceback ``RedactSecrets`` keeps in the record): redacted too."""

    def format(self, record: logging.LogRecord) -> str:
        kept = record.exc_text
        if record.exc_info:
            record.exc_text = redact(self.formatException(record.exc_info))
        try:
            return super().format(record)
        finally:
            record.exc_text = kept

    def formatException(self, ei: ExcInfo) -> str:
        exc_type, exc, _ = ei
        if exc_type is None:
            return ""
        return traceback.format_exception_only(exc_type, exc)[-1].strip()

    def formatStack(self, stack_info: str) -> str:
        return ""


def quiet_logging(level: str, secrets: Mapping[str, str] | None = None) -> None:
    """Warnings and errors on stderr; ``LOG_LEVEL=DEBUG`` shows everything of the bot's own,
    with tracebacks, for whoever is debugging it. Secrets (``secrets``, ``{value: name}``, and
    every one registered before) are redacted as in every command's log (``bot.logs``)."""
    register_secrets(secrets or {})
    debug = level.upper() == "DEBUG"
    handler = logging.StreamHandler(sys.stderr)
    fmt = "simwatch: %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if debug else OneLineFormatter(fmt))
    handler.addFilter(RedactSecrets())  # every secret registered, as in every command's log
    asked = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    root_level = logging.DEBUG if debug else max(logging.WARNING, asked)
    logging.basicConfig(level=root_level, handlers=[handler], force=True)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
