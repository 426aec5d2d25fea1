"""Shell commands: lines starting with ``:``, parsed into small records the session acts on.

Parsing is pure (no emulator, no bot), so a typo becomes a ``ShellInputError`` naming the
catalogue text to show, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bot.robots.models import Service
from bot.shell.texts import say

PREFIX = ":"

# What ``:lang`` and ``--lang`` accept, and the Telegram language_code each one simulates.
LANGUAGE_CODES = {
    "zh": "zh-hans",
    "zh_cn": "zh-hans",
    "zh-cn": "zh-hans",
    "zh-hans": "zh-hans",
    "cn": "zh-hans",
    "en": "en",
}

# In the order ``:help`` lists them; each has ``shell.usage.<name>`` and ``shell.about.<name>``.
COMMAND_NAMES = (
    "help",
    "user",
    "group",
    "admin",
    "member",
    "private",
    "lang",
    "date",
    "remind",
    "file",
    "say",
    "hooks",
    "quit",
)


class ShellInputError(ValueError):
    """Bad shell input; ``key`` is the ``shell.*`` text that explains it."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def explain(self, lang: str) -> str:
        return say(lang, self.key, **self.params)


class UsageError(ShellInputError):
    """A known command with the wrong arguments: show how it is used."""

    def __init__(self, command: str) -> None:
        super().__init__("error.usage")
        self.command = command

    def explain(self, lang: str) -> str:
        return say(lang, "error.usage", usage=say(lang, f"usage.{self.command}"))


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class SwitchUser:
    user_id: int
    name: str | None = None
    language_code: str | None = None


@dataclass(frozen=True)
class SwitchGroup:
    chat_id: int | None = None  # None: the group used last (the shop group at first)


@dataclass(frozen=True)
class SwitchPrivate:
    pass


@dataclass(frozen=True)
class SetAdmin:
    admin: bool


@dataclass(frozen=True)
class SetLanguage:
    language_code: str


@dataclass(frozen=True)
class SetDate:
    day: date


@dataclass(frozen=True)
class Remind:
    day: date | None = None  # None: the bot's today


@dataclass(frozen=True)
class SendFile:
    path: Path


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Hooks:
    new: Service | None = None  # None: list the robots and what each received


Command = (
    Help
    | Quit
    | SwitchUser
    | SwitchGroup
    | SwitchPrivate
    | SetAdmin
    | SetLanguage
    | SetDate
    | Remind
    | SendFile
    | Say
    | Hooks
)


def is_command(line: str) -> bool:
    return line.startswith(PREFIX)


def language_code(text: str) -> str:
    """The Telegram language_code for ``zh`` / ``en`` (and a few spellings of them)."""
    code = LANGUAGE_CODES.get(text.strip().lower())
    if code is None:
        raise ShellInputError("error.lang", text=text)
    return code


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ShellInputError("error.date", text=text) from None


def _id(text: str, *, group: bool) -> int:
    """A user's id (positive) or a group's (negative, as Telegram's group ids are)."""
    error = "error.group_id" if group else "error.user_id"
    try:
        value = int(text)
    except ValueError:
        raise ShellInputError(error) from None
    if value == 0 or (value < 0) != group:
        raise ShellInputError(error)
    return value


def _user(args: list[str]) -> SwitchUser:
    if not args:
        raise UsageError("user")
    user_id = _id(args[0], group=False)
    rest = args[1:]
    code = None
    if len(rest) >= 1 and rest[-1].lower() in LANGUAGE_CODES:
        code = language_code(rest.pop())
    return SwitchUser(user_id, " ".join(rest) or None, code)


def _group(args: list[str]) -> SwitchGroup:
    if len(args) > 1:
        raise UsageError("group")
    return SwitchGroup(_id(args[0], group=True) if args else None)


def _hooks(args: list[str]) -> Hooks:
    if not args:
        return Hooks()
    if len(args) != 2 or args[0].lower() != "new":
        raise UsageError("hooks")
    try:
        return Hooks(Service(args[1].lower()))
    except ValueError:
        raise UsageError("hooks") from None


def parse_command(line: str) -> Command:
    """``line`` starts with ``:``; raises ``ShellInputError`` if it is not a shell command."""
    name, _, rest = line.strip().removeprefix(PREFIX).partition(" ")
    name = name.lower()
    rest = rest.strip()
    args = rest.split()
    if name == "help":
        return Help()
    if name in ("quit", "exit", "q"):
        return Quit()
    if name == "user":
        return _user(args)
    if name == "group":
        return _group(args)
    if name in ("private", "admin", "member") and args:
        raise UsageError(name)
    if name == "private":
        return SwitchPrivate()
    if name in ("admin", "member"):
        return SetAdmin(admin=name == "admin")
    if name == "lang":
        if len(args) != 1:
            raise UsageError("lang")
        return SetLanguage(language_code(args[0]))
    if name == "date":
        if len(args) != 1:
            raise UsageError("date")
        return SetDate(_day(args[0]))
    if name == "remind":
        if len(args) > 1:
            raise UsageError("remind")
        return Remind(_day(args[0]) if args else None)
    if name == "file":
        if not rest:
            raise UsageError("file")
        return SendFile(Path(rest).expanduser())
    if name == "hooks":
        return _hooks(args)
    if name == "say":
        if not rest:
            raise UsageError("say")
        return Say(rest)
    raise ShellInputError("error.unknown", command=PREFIX + name)
