"""Settings from the environment and ``.env`` (pydantic-settings).

A bad or missing setting becomes one clear line naming it, not a traceback: see ``load_settings``.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.i18n import LANGUAGES
from bot.models import DEFAULT_LANGUAGE, DEFAULT_TIMEZONE
from bot.timezones import is_zone


class SettingsError(Exception):
    """A setting is missing or invalid; the message says which and how to fix it."""


class TokenRejectedError(SettingsError):
    """Telegram refused the bot token (``InvalidToken``)."""

    def __init__(self) -> None:
        super().__init__("BOT_TOKEN was rejected by Telegram: check it with @BotFather")


class TelegramUnreachableError(Exception):
    """The Bot API did not answer at all; ``detail`` says how it failed (without the token)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Settings(BaseSettings):
    # An empty value (``PLAN_CATALOGUE=`` as in .env.example) means the setting's default.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    bot_token: SecretStr | None = Field(default=None, description="from @BotFather")
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    database_path: Path = Path("data/simwatch.sqlite3")
    # postgresql://user:password@host:5432/database: PostgreSQL instead of the SQLite file
    database_url: SecretStr | None = None
    timezone: str = DEFAULT_TIMEZONE
    language: str = DEFAULT_LANGUAGE
    log_level: str = "INFO"
    plan_catalogue: Path | None = None  # None: the example catalogue shipped in bot/plans/
    # Where push robots' messages go. A pasted webhook URL gives only the service and the token;
    # the bot always sends to these, so a user can never make it call an address they choose.
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    dingtalk_api_base: str = "https://oapi.dingtalk.com"
    feishu_api_base: str = "https://open.feishu.cn"
    lark_api_base: str = "https://open.larksuite.com"
    # The two-way WeCom smart robot (智能机器人, API mode, long connection): both set to run it.
    wecom_bot_id: str | None = None
    wecom_bot_secret: SecretStr | None = None
    wecom_ws_url: str = "wss://openws.work.weixin.qq.com"

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value().strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("use postgresql://user:password@host:5432/database")
        return SecretStr(url)

    @field_validator("wecom_api_base", "dingtalk_api_base", "feishu_api_base", "lark_api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        base = value.strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("use a URL such as https://qyapi.weixin.qq.com")
        return base

    @field_validator("wecom_ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        url = value.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("wss", "ws") or not parts.hostname:
            raise ValueError("use a WebSocket URL such as wss://openws.work.weixin.qq.com")
        return url

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if not is_zone(value):
            msg = f"unknown time zone {value[:64]!r}; use an IANA name such as Asia/Shanghai"
            raise ValueError(msg)
        return value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    def secrets(self) -> dict[str, str]:
        """Every secret setting's value -> its name (``BOT_TOKEN``): what logs must not show.
        A new secret setting is a ``SecretStr`` field and is covered by that alone."""
        found: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value().strip():
                secret = value.get_secret_value().strip()
                found[secret] = name.upper()
                with suppress(ValueError):  # a URL's password on its own too
                    password = urlsplit(secret).password
                    if password:
                        found[password] = f"{name.upper()} password"
        return found

    def database(self) -> str | None:
        """``DATABASE_URL`` (PostgreSQL), or None: the SQLite file at ``database_path``."""
        return self.database_url.get_secret_value() if self.database_url else None

    def telegram_enabled(self) -> bool:
        return self.bot_token is not None and bool(self.bot_token.get_secret_value().strip())

    def wecom_credentials(self) -> tuple[str, str] | None:
        """The WeCom robot's id and secret when both are set (the channel runs), else None."""
        if self.wecom_bot_id is None or self.wecom_bot_secret is None:
            return None
        bot_id, secret = self.wecom_bot_id.strip(), self.wecom_bot_secret.get_secret_value().strip()
        return (bot_id, secret) if bot_id and secret else None

    def require_token(self) -> str:
        if self.bot_token is None or not self.bot_token.get_secret_value().strip():
            raise SettingsError(
                "BOT_TOKEN is not set: get a token from @BotFather and put BOT_TOKEN=... in .env "
                "(see .env.example), or set WECOM_BOT_ID and WECOM_BOT_SECRET to run the bot "
                "as a WeCom robot, or try the bot without either: "
                ".venv/bin/python -m bot shell --temp"
            )
        return self.bot_token.get_secret_value().strip()


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into a one-line ``SettingsError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{name} is invalid: {message} (see .env.example)") from None
