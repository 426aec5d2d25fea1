"""``python -m bot shell --channel wecom``: the terminal plays a WeCom user.

The unmodified bot runs as ``python -m bot`` runs it with only WeCom set (``bot.serve``),
connected over a real WebSocket to the local WeCom emulator; what you type goes to it as a WeCom
message, what the bot sends is printed as WeCom shows it: markdown, a card's buttons numbered
``[1]``…, lettered choices as the bot wrote them. Typing a number presses a card's button when
the newest message has a card, else it is sent as typed (letters answer lettered choices).

Shell commands: ``:group`` (talk in a shop group, the robot mentioned), ``:private``, ``:user
NAME`` (someone else types), ``:file PATH`` (send a file, single chat only), ``:quit``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from pydantic import SecretStr

from bot.channels import choices
from bot.channels.wecom.driver import WeComChatDriver
from bot.channels.wecom.pace import ChatPace
from bot.config import Settings
from bot.emulator.records import ChatEvent
from bot.serve import Process
from bot.shell.clock import ShellClock
from bot.shell.console import Console
from bot.shell.runtime import session_database
from bot.shell.texts import say
from bot.wecom.emulator import WeComEmulator
from storage.factory import open_storage

SHOP_GROUP = "shop-group"
DEFAULT_USER = "shell-user"
CONNECT_SECONDS = 10.0


@asynccontextmanager
async def running_wecom_bot(
    settings: Settings, clock: ShellClock, *, temporary: bool, pace: ChatPace | None = None
) -> AsyncIterator[tuple[Process, WeComEmulator]]:
    """The bot on WeCom only, connected to a fresh emulator, with the database of ``settings``
    or a throw-away one."""
    async with AsyncExitStack() as stack:
        database = session_database(stack, settings, temporary=temporary)
        emulator = await stack.enter_async_context(WeComEmulator())
        url = None if temporary else settings.database()
        storage = await open_storage(database_url=url, database_path=database)
        stack.push_async_callback(storage.close)
        config = settings.model_copy(
            update={
                "bot_token": None,
                "wecom_bot_id": emulator.bot_id,
                "wecom_bot_secret": emulator.secret,
                "wecom_ws_url": emulator.url,
                "database_path": database,
            }
        )
        config.wecom_bot_secret = SecretStr(emulator.secret)  # model_copy does not validate
        process = Process(config, storage, clock=clock, rate_limit=False, wecom_pace=pace)
        await process.start()
        stack.push_async_callback(process.stop)
        serving = asyncio.create_task(process.channel.run())
        stack.callback(serving.cancel)
        await process.channel.wait_linked(CONNECT_SECONDS)
        yield process, emulator


def render(events: list[ChatEvent]) -> list[str]:
    """What the person sees of the bot's messages."""
    lines: list[str] = []
    for event in events:
        if event.file is not None:
            lines.append(f"[{event.kind}: {event.file.filename}, {event.file.size} bytes]")
            continue
        text_lines = (event.text or "").split("\n")
        lines.extend(text_lines)
        labels = [label for row in event.buttons for label, _data in row]
        # lettered choices are in the text already; a card's buttons are shown numbered
        if labels and not text_lines[-1].startswith(
            f"{choices.code(len(labels) - 1, len(labels))}. "
        ):
            lines.extend(f"  [{n}] {label}" for n, label in enumerate(labels, 1))
        lines.append("")
    return lines


class WeComShell:
    def __init__(
        self, process: Process, emulator: WeComEmulator, console: Console, lang: str
    ) -> None:
        self.process, self.emulator, self.console, self.lang = process, emulator, console, lang
        self.store = process.updates.store
        self.userid = DEFAULT_USER
        self.group = False
        self.driver: WeComChatDriver | None = None

    async def _driver(self) -> WeComChatDriver:
        if self.driver is None:
            chatid = SHOP_GROUP if self.group else None
            self.driver = await WeComChatDriver.open(
                self.emulator, self.process.updates, self.store, self.userid, chatid
            )
        return self.driver

    async def run(self) -> int:
        while True:
            line = await self.console.read_line("wecom> ")
            if line is None or line.strip() == ":quit":
                return 0
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            self.console.write(await self.handle(text))

    async def handle(self, text: str) -> list[str]:
        if text in (":group", ":private"):
            self.group, self.driver = text == ":group", None
            if self.group:
                return [say(self.lang, "notice.wecom_group", name=self.userid, title=SHOP_GROUP)]
            return [say(self.lang, "notice.wecom_private", name=self.userid)]
        if text.startswith(":user "):
            self.userid, self.driver = text.removeprefix(":user ").strip() or DEFAULT_USER, None
            return [say(self.lang, "notice.wecom_user", name=self.userid)]
        driver = await self._driver()
        if text.startswith(":file "):
            name = text.removeprefix(":file ").strip()
            try:
                content = await asyncio.to_thread(_read, name)
            except FileNotFoundError:
                return [say(self.lang, "error.no_file", path=name)]
            except OSError as exc:
                return [say(self.lang, "error.file", path=name, error=exc.strerror or exc)]
            return render(await driver.send_document(Path(name).name, content))
        if text.isdecimal() and driver.screens and driver.screens[-1].task_id is not None:
            buttons = [label for row in driver.screens[-1].event.buttons for label, _ in row]
            if 1 <= int(text) <= len(buttons):
                return render(await driver.press(buttons[int(text) - 1]))
        return render(await driver.send(text))


def _read(name: str) -> bytes:
    return Path(name).expanduser().read_bytes()


async def run_wecom_session(
    settings: Settings, clock: ShellClock, console: Console, *, temporary: bool
) -> int:
    async with running_wecom_bot(settings, clock, temporary=temporary) as (process, emulator):
        return await WeComShell(process, emulator, console, settings.language).run()
