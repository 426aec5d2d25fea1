"""Logging for the shell: the terminal is the chat, so only warnings and errors, one line each."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

# Libraries that log every request or poll at INFO/DEBUG: always WARNING and above here.
NOISY = ("telegram", "httpx", "httpcore", "aiohttp", "apscheduler", "asyncio", "aiosqlite")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class OneLineFormatter(logging.Formatter):
    """An exception shows as its last line (``ValueError: …``), not a traceback."""

    def formatException(self, ei: ExcInfo) -> str:
        exc_type, exc, _ = ei
        if exc_type is None:
            return ""
        return traceback.format_exception_only(exc_type, exc)[-1].strip()

    def formatStack(self, stack_info: str) -> str:
        return ""


def quiet_logging(level: str) -> None:
    """Warnings and errors on stderr; ``LOG_LEVEL=DEBUG`` shows everything of the bot's own,
    with tracebacks, for whoever is debugging it."""
    debug = level.upper() == "DEBUG"
    handler = logging.StreamHandler(sys.stderr)
    fmt = "simwatch: %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if debug else OneLineFormatter(fmt))
    asked = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    root_level = logging.DEBUG if debug else max(logging.WARNING, asked)
    logging.basicConfig(level=root_level, handlers=[handler], force=True)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
