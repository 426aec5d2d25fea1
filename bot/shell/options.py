"""How a shell session starts: database, date, and who is typing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

DEFAULT_USER_ID = 1001
DEFAULT_GROUP_ID = -100100  # the shop group ``:group`` opens first
# The Telegram language_code of the simulated user when ``--lang`` is not given, from LANGUAGE
DEFAULT_CODES = {"zh_CN": "zh-hans", "en": "en"}


@dataclass(frozen=True)
class ShellOptions:
    temporary: bool = False  # a throw-away database instead of DATABASE_PATH
    day: date | None = None  # the bot's date, fixed; None: the system clock
    language_code: str | None = None  # the simulated user's; None: from LANGUAGE
    user_id: int = DEFAULT_USER_ID
    save_files: Path | None = None  # where documents and photos from the bot are saved
    channel: str = "telegram"  # the client the terminal plays: telegram or wecom

    def first_language_code(self, default_language: str) -> str:
        return self.language_code or DEFAULT_CODES.get(default_language, "zh-hans")
