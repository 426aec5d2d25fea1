"""The unmodified bot running against the local Bot API emulator, as ``run_polling`` runs it.

``running_bot`` starts the emulator on 127.0.0.1, opens the database, builds the application
with ``bot.app.build_application`` and long-polls the emulator; on the way out it undoes all of
that in the mirror order (polling, application, database, emulator, temporary folder).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.app import AnyApplication, build_application
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.robots.emulator import RobotEmulator
from bot.robots.models import Service
from bot.shell.clock import ShellClock
from storage.base import Storage
from storage.factory import open_storage

DATABASE_NAME = "simwatch.sqlite3"
SETTLE_SECONDS = 30.0  # longest wait for the bot to finish with one input
QUIET_SECONDS = 0.02  # no Bot API request for this long: the bot is done answering


@dataclass
class BotRuntime:
    emulator: BotApiEmulator
    robots: RobotEmulator  # stand-ins for WeCom, DingTalk and Feishu group robots (``:hooks``)
    app: AnyApplication
    storage: Storage
    clock: ShellClock
    settings: Settings  # as the bot sees them: pointing at the emulator
    database: Path
    temporary: bool

    async def settle(self, update_id: int | None = None) -> bool:
        """Wait until the bot has fetched update ``update_id`` (if any), handled everything it
        fetched and sent nothing for a moment; False if it was still busy after a while.

        The update leaves the emulator's queue only when the next getUpdates confirms it, and
        PTB puts updates on its own queue before asking again, so ``update_queue.join()`` then
        covers its handling; ``wait_idle`` covers requests made outside the handlers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        try:
            async with asyncio.timeout_at(deadline):
                if update_id is not None:
                    while self._pending(update_id):
                        # every getUpdates (the one that confirms it too) notifies this
                        await self.emulator.state.updates_changed.wait(QUIET_SECONDS)
                await self.app.update_queue.join()
            remaining = max(deadline - loop.time(), QUIET_SECONDS)
            await self.emulator.wait_idle(quiet=QUIET_SECONDS, timeout=remaining)
        except TimeoutError:
            return False
        return True

    def _pending(self, update_id: int) -> bool:
        return any(update["update_id"] == update_id for update in self.emulator.pending_updates)


def session_database(stack: AsyncExitStack, settings: Settings, *, temporary: bool) -> Path:
    """The shell's database: ``DATABASE_PATH``, or (``--temp``) a throw-away file that
    ``stack`` deletes on the way out."""
    if not temporary:
        return settings.database_path
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="simwatch-shell-"))
    return Path(folder) / DATABASE_NAME


@asynccontextmanager
async def running_bot(
    settings: Settings, clock: ShellClock, *, temporary: bool
) -> AsyncIterator[BotRuntime]:
    """The bot polling a fresh emulator, with the database of ``settings`` or a throw-away one."""
    async with AsyncExitStack() as stack:
        database = session_database(stack, settings, temporary=temporary)
        emulator = BotApiEmulator()
        await emulator.start()
        stack.push_async_callback(emulator.stop)
        robots = RobotEmulator()
        await robots.start()
        stack.push_async_callback(robots.stop)
        # --temp: always a throw-away SQLite file; else the configured database
        url = None if temporary else settings.database()
        storage = await open_storage(database_url=url, database_path=database)
        stack.push_async_callback(storage.close)
        config = settings.model_copy(
            update={
                "telegram_base_url": emulator.base_url,
                "telegram_base_file_url": emulator.base_file_url,
                "database_path": database,
                # push robots go to the stand-ins too, never to the real services
                **{f"{service.value}_api_base": robots.base(service) for service in Service},
            }
        )
        # No rate limiter: the emulator enforces no flood limits, and the limiter's group budget
        # (20 a minute) would make a long group session crawl.
        app = build_application(
            config, token=emulator.token, storage=storage, clock=clock, rate_limit=False
        )
        await _start(app, stack)
        yield BotRuntime(emulator, robots, app, storage, clock, config, database, temporary)


async def _start(app: AnyApplication, stack: AsyncExitStack) -> None:
    """What ``run_polling`` does before polling, each step undone by ``stack`` on the way out."""
    await app.initialize()
    if app.post_shutdown is not None:  # the stack unwinds last in, first out
        stack.push_async_callback(app.post_shutdown, app)
    stack.push_async_callback(app.shutdown)
    if app.post_init is not None:
        await app.post_init(app)
    await app.start()
    if app.post_stop is not None:
        stack.push_async_callback(app.post_stop, app)
    stack.push_async_callback(app.stop)
    assert app.updater is not None, "build_application keeps PTB's default updater"
    await app.updater.start_polling(poll_interval=0.0)
    stack.push_async_callback(app.updater.stop)
