"""A person at the terminal chatting with the running bot: inputs in, the chat printed out.

Each input becomes what a Telegram client would send: a message from the simulated user,
queued on the emulator for the bot's long polling, or a button press (a callback query on the
message that carries the button). The session then waits until the bot has finished with it
and prints what the bot did, so the output order never depends on timing.

Numbers press buttons of the keyboard shown last in the chat (the newest message with buttons,
as it is now, after edits). Buttons of older messages are printed but can't be pressed from the
shell, like buttons scrolled out of view: send the command again to get fresh ones.

What the bot does on its own while nobody types (a conversation timing out, the daily tick) is
printed before the answer to the next input.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.emulator import ChatEvent, StoredFile
from bot.i18n import resolve_language
from bot.robots.models import Robot, Service
from bot.robots.render import KEYWORD, service_name
from bot.robots.webhooks import webhook_url
from bot.shell.commands import (
    COMMAND_NAMES,
    Command,
    Help,
    Hooks,
    Quit,
    Remind,
    Say,
    SendFile,
    SetAdmin,
    SetDate,
    SetLanguage,
    ShellInputError,
    SwitchGroup,
    SwitchPrivate,
    SwitchUser,
    is_command,
    parse_command,
)
from bot.shell.console import Console
from bot.shell.options import DEFAULT_GROUP_ID, ShellOptions
from bot.shell.reminders import RemindersUnavailableError, run_reminder_pass
from bot.shell.render import event_lines, pressable
from bot.shell.runtime import SETTLE_SECONDS, BotRuntime
from bot.shell.texts import say, width

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
MESSAGE_KINDS = ("message", "edit", "document", "photo")


@dataclass
class Output:
    """What one input produced: blocks of lines (a message, a notice), printed together."""

    blocks: list[list[str]] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.blocks.append(list(lines))


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise ShellInputError("error.no_file", path=path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ShellInputError("error.file", path=path, error=exc.strerror or exc) from None


def keep_file(folder: Path, file: StoredFile) -> Path:
    """Write ``file`` into ``folder`` under its own name, never over an existing file."""
    name = Path(file.filename or file.file_path).name
    target = folder / name
    number = 1
    while target.exists():
        number += 1
        target = folder / f"{Path(name).stem}-{number}{Path(name).suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    target.write_bytes(file.content)
    return target


def stand_in_token(service: Service, number: int) -> str:
    """A stand-in robot's token, shaped as the service's are and the same in every run (so a
    script's transcript is reproducible)."""
    if service is Service.DINGTALK:
        return f"{number:064x}"  # 64 hex digits
    return f"00000000-5157-4000-8000-{number:012d}"  # a UUID, as WeCom keys and Feishu hooks


class ShellSession:
    def __init__(self, runtime: BotRuntime, console: Console, options: ShellOptions) -> None:
        self.runtime = runtime
        self.emulator = runtime.emulator
        self.console = console
        self.save_files = options.save_files
        code = options.first_language_code(runtime.settings.language)
        name = say(resolve_language(None, code, runtime.settings.language), "default_name")
        self.user = self.emulator.user(options.user_id, name, language_code=code)
        self.chat = self.emulator.private_chat(self.user)
        self.group_id = DEFAULT_GROUP_ID
        self.groups: dict[int, JsonDict] = {}  # groups opened so far, by id
        self.admins: dict[int, list[int]] = {}  # their admins' user ids
        self.people: dict[int, JsonDict] = {self.user_id: self.user}  # users met, by id
        self.keyboards: dict[int, int] = {}  # chat id -> id of the message whose buttons count
        self.hooks: list[Robot] = []  # stand-in robots made with :hooks new, in order

    # --- who and where ---------------------------------------------------------------

    @property
    def lang(self) -> str:
        """The shell speaks the simulated user's language, as the bot does in private."""
        return resolve_language(
            None, self.user.get("language_code"), self.runtime.settings.language
        )

    @property
    def chat_id(self) -> int:
        return int(self.chat["id"])

    @property
    def user_id(self) -> int:
        return int(self.user["id"])

    @property
    def name(self) -> str:
        return str(self.user["first_name"])

    @property
    def in_group(self) -> bool:
        return self.chat_id < 0

    def is_admin(self) -> bool:
        return self.user_id in self.admins.get(self.chat_id, [])

    def prompt(self) -> str:
        if not self.in_group:
            who = say(self.lang, "who_private", name=self.name)
        else:
            key = "who_group_admin" if self.is_admin() else "who_group"
            who = say(self.lang, key, name=self.name, title=self.chat.get("title", ""))
        return say(self.lang, "prompt", who=who)

    def banner(self) -> list[str]:
        runtime = self.runtime
        database = say(self.lang, "database_temp") if runtime.temporary else str(runtime.database)
        today_key = "today_fixed" if runtime.clock.fixed else "today_system"
        today = say(self.lang, today_key, today=runtime.clock.today().isoformat())
        return say(self.lang, "banner", database=database, today=today).splitlines()

    # --- the loop --------------------------------------------------------------------

    async def run(self) -> int:
        """Read and act until :quit or the end of the input; the exit status (0)."""
        if self.console.interactive:
            self.console.write([*self.banner(), ""])
        at_prompt = False  # Ctrl-D and Ctrl-C at the prompt leave the cursor after it
        try:
            while True:
                at_prompt = True
                line = await self.console.read_line(self.prompt())
                if line is None:
                    break
                at_prompt = False
                if not line.strip():
                    continue  # Enter on its own: a new prompt, as in any shell
                output = Output()
                going_on = await self.handle(line, output)
                self.console.write_blocks(output.blocks)
                if not going_on:
                    break
        finally:
            if self.console.interactive:
                self.console.write([*([""] if at_prompt else []), say(self.lang, "bye")])
        return 0

    async def handle(self, line: str, output: Output) -> bool:
        """Act on one input line; False to end the session."""
        text = line.strip()
        if not text:
            return True
        self.collect(output)  # anything the bot did on its own since the last input
        try:
            if is_command(text):
                return await self.command(parse_command(text), output)
            pressed = self.button(text)
            if pressed is None:
                await self.send_text(text, output)
            else:
                await self.press(*pressed, output)
        except ShellInputError as error:
            output.add(error.explain(self.lang))
        except Exception as exc:  # a bug must not end a demo: one log line, then go on
            log.error("shell: could not handle %r", text, exc_info=exc)
        return True

    # --- talking to the bot ----------------------------------------------------------

    def reply_box(self) -> int | None:
        """As a Telegram client does: when the bot's latest message to this user carries
        ForceReply, what they type next is a reply to it (which privacy mode lets through)."""
        return self.emulator.force_reply_target(self.chat, self.user)

    async def send_text(self, text: str, output: Output) -> None:
        update = self.emulator.message_update(self.chat, self.user, text, reply_to=self.reply_box())
        await self.settle_update(update, output)

    async def send_file(self, path: Path, output: Output) -> None:
        content = await asyncio.to_thread(_read_file, path)
        update = self.emulator.document_update(
            self.chat, self.user, path.name, content, reply_to=self.reply_box()
        )
        await self.settle_update(update, output)

    async def settle_update(self, update: JsonDict, output: Output) -> None:
        if self.emulator.reaches_bot(update):
            await self.settle(int(update["update_id"]), output)
            return
        # Group privacy mode: the bot never gets it, so there is nothing to wait for; say so,
        # or the silence would look like a hung bot.
        await self.settle(None, output)
        output.add(say(self.lang, "notice.unseen"))

    def button(self, text: str) -> tuple[int, str] | None:
        """(message id, callback data) if ``text`` is the number of a button shown last."""
        if not text.isdecimal():
            return None
        message_id = self.keyboards.get(self.chat_id)
        if message_id is None:
            return None
        message = next(
            (m for m in self.emulator.chat_messages(self.chat_id) if m.message_id == message_id),
            None,
        )
        if message is None:
            return None
        buttons = pressable(message.reply_markup)
        number = int(text)
        return (message_id, buttons[number - 1]) if 1 <= number <= len(buttons) else None

    async def press(self, message_id: int, data: str, output: Output) -> None:
        try:
            update = self.emulator.callback_update(
                self.chat, self.user, message_id, data, check_button=True
            )
        except LookupError:
            raise ShellInputError("button_gone") from None
        await self.settle(int(update["update_id"]), output)

    async def settle(self, update_id: int | None, output: Output) -> None:
        if not await self.runtime.settle(update_id):
            output.add(say(self.lang, "busy", seconds=int(SETTLE_SECONDS)))
        self.collect(output)

    # --- printing what the bot did ---------------------------------------------------

    def collect(self, output: Output) -> None:
        """The bot's new events as blocks: this chat's first, then other chats' under a
        header, in chat id order (a reminder pass serves chats concurrently)."""
        by_chat: dict[int, list[ChatEvent]] = {}
        for event in self.emulator.take_events():
            by_chat.setdefault(event.chat_id, []).append(event)
        here = by_chat.pop(self.chat_id, [])
        for chat_id, events in [(self.chat_id, here), *sorted(by_chat.items())]:
            header = [] if chat_id == self.chat_id else [self.chat_header(chat_id)]
            for event in events:
                self.track_keyboard(event)
                lines = event_lines(event, self.lang, self.save(event))
                if lines:
                    output.add(*header, *lines)
                    header = []

    def track_keyboard(self, event: ChatEvent) -> None:
        if event.message_id is None:
            return
        shown = self.keyboards.get(event.chat_id)
        if event.kind in MESSAGE_KINDS and pressable(event.reply_markup):
            self.keyboards[event.chat_id] = event.message_id
        elif event.kind in (*MESSAGE_KINDS, "delete") and shown == event.message_id:
            del self.keyboards[event.chat_id]  # edited without buttons, or deleted

    def chat_header(self, chat_id: int) -> str:
        group = self.groups.get(chat_id)
        if group is not None:
            return say(self.lang, "in_group", title=group.get("title", chat_id))
        person = self.people.get(chat_id)
        name = person["first_name"] if person else say(self.lang, "user_name", id=chat_id)
        return say(self.lang, "in_private", name=name)

    def save(self, event: ChatEvent) -> Path | None:
        """Keep a document or photo the bot sent, if ``--save-files`` asked for it."""
        if self.save_files is None or event.file is None or event.kind not in MESSAGE_KINDS:
            return None
        return keep_file(self.save_files, event.file)

    # --- shell commands --------------------------------------------------------------

    async def command(self, command: Command, output: Output) -> bool:
        if isinstance(command, Quit):
            return False
        if isinstance(command, Help):
            output.add(*self.help())
        elif isinstance(command, SwitchUser):
            self.switch_user(command, output)
        elif isinstance(command, SwitchGroup):
            self.switch_group(command.chat_id or self.group_id, output)
        elif isinstance(command, SwitchPrivate):
            self.chat = self.emulator.private_chat(self.user)
            output.add(say(self.lang, "notice.private", name=self.name))
        elif isinstance(command, SetAdmin):
            self.set_admin(command.admin, output)
        elif isinstance(command, SetLanguage):
            self.user = self.emulator.user(
                self.user_id, self.name, language_code=command.language_code
            )
            self.people[self.user_id] = self.user
            output.add(say(self.lang, "notice.lang", name=self.name, lang=command.language_code))
        elif isinstance(command, SetDate):
            self.runtime.clock.fix(command.day)
            output.add(say(self.lang, "notice.date", today=command.day.isoformat()))
        elif isinstance(command, Remind):
            await self.remind(command, output)
        elif isinstance(command, SendFile):
            await self.send_file(command.path, output)
        elif isinstance(command, Say):
            await self.send_text(command.text, output)
        elif isinstance(command, Hooks):
            self.show_hooks(command, output)
        return True

    def show_hooks(self, command: Hooks, output: Output) -> None:
        """``:hooks new SERVICE``: a stand-in group robot and the URL to give ``/push``;
        ``:hooks``: each robot and the messages it received, as its group would show them."""
        robots = self.runtime.robots
        if command.new is not None:
            number = len(self.hooks) + 1
            robot = Robot(command.new, stand_in_token(command.new, number))
            # DingTalk and Feishu robots protected by the keyword 流量卡, as the README advises
            keyword = None if robot.service is Service.WECOM else KEYWORD
            robots.register(robot.service, robot.token, keyword=keyword)
            self.hooks.append(robot)
            output.add(
                say(
                    self.lang,
                    "notice.hook_new",
                    n=number,
                    service=service_name(self.lang, robot.service),
                    url=webhook_url(robot),
                )
            )
            return
        if not self.hooks:
            output.add(say(self.lang, "notice.hooks_none"))
            return
        for number, robot in enumerate(self.hooks, start=1):
            received = robots.received(robot.service, robot.token)
            output.add(
                say(
                    self.lang,
                    "notice.hook",
                    n=number,
                    service=service_name(self.lang, robot.service),
                    token=robot.masked,
                    count=len(received),
                )
            )
            for message in received:
                output.add(*(f"    {line}" for line in message.text.splitlines()), "")

    def help(self) -> list[str]:
        usages = {name: say(self.lang, f"usage.{name}") for name in COMMAND_NAMES}
        column = max(width(usage) for usage in usages.values()) + 2
        lines = [say(self.lang, "help.header")]
        for name, usage in usages.items():
            padding = " " * (column - width(usage))
            lines.append(f"  {usage}{padding}{say(self.lang, f'about.{name}')}")
        return [*lines, "", *say(self.lang, "help.footer").splitlines()]

    def switch_user(self, command: SwitchUser, output: Output) -> None:
        """Someone else at the keyboard: a user met before keeps their name and language."""
        known = self.people.get(command.user_id, {})
        name = command.name or known.get("first_name")
        name = name or say(self.lang, "user_name", id=command.user_id)
        code = command.language_code or known.get("language_code")
        code = code or self.user.get("language_code") or "zh-hans"
        self.user = self.emulator.user(command.user_id, name, language_code=code)
        self.people[command.user_id] = self.user
        self.chat = self.emulator.private_chat(self.user)
        output.add(say(self.lang, "notice.user", name=name, id=command.user_id, lang=code))

    def switch_group(self, chat_id: int, output: Output) -> None:
        group = self.groups.get(chat_id)
        if group is None:
            title = say(self.lang, "group_title")
            if chat_id != DEFAULT_GROUP_ID:
                title = f"{title} {-chat_id}"
            # privacy mode on, as Telegram has it for bots by default
            group = self.emulator.group_chat(chat_id, title, supergroup=True, privacy_mode=True)
            self.groups[chat_id] = group
            self.admins[chat_id] = []
        self.group_id = chat_id
        self.chat = group
        role = say(self.lang, "role.admin" if self.is_admin() else "role.member")
        output.add(
            say(
                self.lang,
                "notice.group",
                name=self.name,
                title=group.get("title", ""),
                id=chat_id,
                role=role,
            )
        )

    def set_admin(self, admin: bool, output: Output) -> None:
        if not self.in_group:
            raise ShellInputError("error.group_only", command=":admin" if admin else ":member")
        admins = [user_id for user_id in self.admins[self.chat_id] if user_id != self.user_id]
        if admin:
            admins.append(self.user_id)
        self.admins[self.chat_id] = admins
        self.emulator.set_admins(self.chat_id, admins)
        role = say(self.lang, "role.admin" if admin else "role.member")
        output.add(
            say(
                self.lang,
                "notice.role",
                name=self.name,
                title=self.chat.get("title", ""),
                role=role,
            )
        )

    async def remind(self, command: Remind, output: Output) -> None:
        day = command.day or self.runtime.clock.today()
        output.add(say(self.lang, "notice.remind", day=day.isoformat()))
        try:
            summary = await run_reminder_pass(self.runtime, day)
        except RemindersUnavailableError:
            output.add(say(self.lang, "notice.remind_unavailable"))
            return
        except Exception as exc:  # a failed pass is reported, the session goes on
            log.error("shell: reminder pass failed", exc_info=exc)
            output.add(say(self.lang, "notice.remind_failed", error=exc))
            return
        await self.settle(None, output)
        if summary:
            output.add(*summary.splitlines())
