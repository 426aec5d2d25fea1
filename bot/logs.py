"""Logging set-up that never writes the bot token (httpx logs request URLs, which contain it)."""

from __future__ import annotations

import logging


class RedactToken(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret and self.secret in (message := record.getMessage()):
            record.msg = message.replace(self.secret, "<BOT_TOKEN>")
            record.args = None
        return True


def setup_logging(level: str, token: str | None) -> None:
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level, force=True
    )
    # One line per HTTP request is noise at INFO, and those lines carry the token in the URL.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if token:
        for handler in logging.getLogger().handlers:
            handler.addFilter(RedactToken(token))
