"""``python -m bot`` with WeCom configured: every channel in one process (README, "Channels").

One ``Application`` per channel, all sharing one storage and one reminder tick: Telegram's
(long polling, Telegram's rate limiter) and WeCom's (its long connection, its own request).
The tick lives in the first application and sends each chat's rows through that chat's
channel; WeCom rows only while this process holds the WeCom connection (``WeComChannel``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from telegram import Update
from telegram.ext import TypeHandler

from bot.app import AnyApplication, build_application
from bot.channels.wecom.bridge import WeComRequest
from bot.channels.wecom.channel import ChannelStopped, WeComChannel, chat_language, lease_name
from bot.channels.wecom.identities import Identities
from bot.channels.wecom.inbound import WeComUpdates
from bot.channels.wecom.state import BridgeState
from bot.chats import Channel
from bot.config import Settings
from bot.i18n import t
from bot.reminders.cli import plain
from bot.reminders.sender import Messenger
from handlers.delivery import TelegramMessenger
from storage.base import Storage
from storage.factory import open_storage, stores_for

log = logging.getLogger(__name__)

LINK_SECONDS = 30.0
BEGIN_GROUP = -10  # before MEMBERS_ONLY_GROUP (-2) and every handler (bot.app.add_handlers)


class LiveMessengers(Mapping[Channel, Messenger]):
    """The sender's messengers, as they are at each drain: WeCom's only while this process
    holds the connection, so its rows wait for the holder instead of failing here."""

    def __init__(
        self, telegram: AnyApplication | None, wecom: AnyApplication, channel: WeComChannel
    ) -> None:
        self._telegram = TelegramMessenger(telegram.bot) if telegram is not None else None
        self._wecom = TelegramMessenger(wecom.bot)
        self._channel = channel

    def _live(self) -> dict[Channel, Messenger]:
        live: dict[Channel, Messenger] = {}
        if self._telegram is not None:
            live[Channel.TELEGRAM] = self._telegram
        if self._channel.link() is not None:
            live[Channel.WECOM] = self._wecom
        return live

    def __getitem__(self, key: Channel) -> Messenger:
        return self._live()[key]

    def __iter__(self) -> Any:
        return iter(self._live())

    def __len__(self) -> int:
        return len(self._live())


class Process:
    """The channels of one bot process, started and stopped together. ``options`` go to
    ``build_application`` (tests give a clock, no tick…); ``channel_options`` to
    ``WeComChannel`` (tests shorten the lease)."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        *,
        channel_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        credentials = settings.wecom_credentials()
        assert credentials is not None, "only for a bot with WeCom configured"
        bot_id, secret = credentials
        self.settings = settings
        channels = stores_for(storage).channels
        store = Identities(channels)
        language = chat_language(storage, settings.language)
        state = BridgeState(options.pop("wecom_pace", None))
        self.channel = WeComChannel(
            url=settings.wecom_ws_url,
            bot_id=bot_id,
            secret=secret,
            store=channels,
            state=state,
            **(channel_options or {}),
        )
        tick = options.pop("reminder_tick", True)
        self.telegram: AnyApplication | None = None
        if settings.telegram_enabled():  # the tick, with both channels' messengers
            self.telegram = build_application(
                settings,
                token=settings.require_token(),
                storage=storage,
                reminder_tick=tick,
                messengers=lambda _app: self.messengers,
                **options,
            )
        self.wecom = build_application(
            settings,
            token="wecom",
            storage=storage,
            request=WeComRequest(self.channel.link, store, state, language),
            reminder_tick=tick and self.telegram is None,
            messengers=lambda _app: self.messengers,
            **options,
        )
        self.messengers = LiveMessengers(self.telegram, self.wecom, self.channel)
        self.updates = WeComUpdates(self.wecom, store, state, self.channel.link, language)
        # before every other handler: what the handlers send answers the update being handled
        self.wecom.add_handler(TypeHandler(Update, self.updates.begin), group=BEGIN_GROUP)
        self.channel.attach(self.updates)

    def on_channel_stopped(self, reason: BaseException) -> None:
        """WeCom stopped while Telegram runs on: say why in the log (the process goes on)."""
        if isinstance(reason, ChannelStopped):
            log.error("%s", plain(t(self.settings.language, reason.key, **reason.params)))
        else:
            log.error("the WeCom channel stopped: %s", type(reason).__name__)

    @property
    def applications(self) -> list[AnyApplication]:
        return [app for app in (self.telegram, self.wecom) if app is not None]

    async def start(self) -> None:
        """Start the applications (as ``run_polling`` does: initialize, post_init, start) and
        Telegram's polling; the WeCom channel runs in ``serve_channel``."""
        for application in self.applications:
            await application.initialize()
            if application.post_init is not None:
                await application.post_init(application)
            await application.start()
        if self.telegram is not None and self.telegram.updater is not None:
            await self.telegram.updater.start_polling(allowed_updates=None)

    async def stop(self) -> None:
        """Stop taking new messages, answer those already taken in (over the connection,
        still open), then close the connection and let go of the lease."""
        self.updates.accepting = False
        updater = self.telegram.updater if self.telegram is not None else None
        if updater is not None and updater.running:
            await updater.stop()
        for application in reversed(self.applications):
            if application.running:
                await application.stop()  # handles what is still on its update queue
        await self.channel.close()
        for application in reversed(self.applications):
            await application.shutdown()
            if application.post_shutdown is not None:
                await application.post_shutdown(application)

    async def run(
        self, stop: asyncio.Event, *, on_linked: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        """Serve until ``stop`` is set; ``ChannelStopped`` if WeCom stops the channel.
        ``on_linked``: called once WeCom is connected (tests act on the emulator then)."""
        await self.start()
        serving = asyncio.create_task(self.channel.run())
        stopping = asyncio.create_task(stop.wait())
        try:
            if on_linked is not None:
                await self.channel.wait_linked(LINK_SECONDS)
                await on_linked()
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if serving.done() and self.telegram is not None:
                # WeCom stopped for good (refused, taken over): Telegram's chats go on
                reason = serving.exception()
                if reason is not None:
                    self.on_channel_stopped(reason)
                    await stopping
            elif serving.done():
                serving.result()  # ChannelStopped
        finally:
            stopping.cancel()
            await self.stop()
            serving.cancel()
            await asyncio.gather(serving, stopping, return_exceptions=True)


async def serve(settings: Settings) -> None:
    """Run every configured channel until SIGINT/SIGTERM (or ``ChannelStopped``)."""
    storage = await open_storage(
        database_url=settings.database(), database_path=settings.database_path
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await Process(settings, storage).run(stop)
    finally:
        await storage.close()


@asynccontextmanager
async def wecom_for_remind(
    settings: Settings, storage: Storage
) -> AsyncIterator[Messenger | str | None]:
    """WeCom for ``python -m bot remind``: the messenger of a connection of its own, while no
    bot process holds WeCom's one connection (cron-style deployments); else the holder's name
    (the running bot delivers WeCom's rows); None if it could not connect. Let go on exit."""
    credentials = settings.wecom_credentials()
    assert credentials is not None, "only for a bot with WeCom configured"
    channels = stores_for(storage).channels
    holder = await channels.lease_holder(lease_name(credentials[0]), now=datetime.now(UTC))
    if holder is not None:
        yield holder
        return
    # WeCom alone: a Telegram application here would long-poll, taking the running bot's updates
    process = Process(settings.model_copy(update={"bot_token": None}), storage, reminder_tick=False)
    await process.start()
    serving = asyncio.create_task(process.channel.run())
    try:
        try:
            await process.channel.wait_linked(LINK_SECONDS)
        except TimeoutError:
            yield None
            return
        yield TelegramMessenger(process.wecom.bot)
    finally:
        await process.stop()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
