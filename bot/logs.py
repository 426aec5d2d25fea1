"""Logging set-up that never writes the bot token (request URLs contain it, and libraries log or
quote them: httpx in its request lines, aiohttp in some error texts)."""

from __future__ import annotations

import logging


class RedactToken(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        secret = self.secret
        if not secret:
            return True
        if secret in (message := record.getMessage()):
            record.msg = message.replace(secret, "<BOT_TOKEN>")
            record.args = None
        # A traceback can carry it too (an error quoting a request URL): format it here, as
        # the handler's formatter would, and keep the redacted text for it to use.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and secret in record.exc_text:
            record.exc_text = record.exc_text.replace(secret, "<BOT_TOKEN>")
        if record.stack_info and secret in record.stack_info:
            record.stack_info = record.stack_info.replace(secret, "<BOT_TOKEN>")
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
