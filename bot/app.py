"""Wiring: the python-telegram-bot Application with SimWatch's handlers, storage and clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from telegram import BotCommand
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
)
from telegram.request import BaseRequest

from bot.chats import Channel
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.i18n import t
from bot.plans.catalogue import Catalogue, load_catalogue
from bot.reminders.outcomes import Delivery
from bot.reminders.sender import Messenger
from bot.robots.client import RobotClient, RobotMessage
from bot.robots.delivery import PushGateway
from bot.robots.models import Robot
from bot.services.cards import CardService
from bot.services.push import PushService
from handlers import (
    addcard,
    admin,
    archive,
    bulk,
    cards,
    digest,
    edit,
    errors,
    find,
    money,
    push,
    reminder_settings,
    renew,
    settings,
    start,
    stats,
)
from handlers.common import (
    MEMBERS_ONLY_GROUP,
    MEMBERS_ONLY_HANDLER,
    SERVICES_KEY,
    Services,
    install_services,
)
from handlers.persistence import FLUSH_GROUP, FLUSH_HANDLER, DatabasePersistence
from handlers.reminder_schedule import install_reminders
from handlers.transport import AiohttpRequest
from handlers.updates import PerChatUpdateProcessor
from storage.base import Storage
from storage.conversations import ConversationStore, conversations_for
from storage.factory import open_storage, stores_for

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
MessengersFactory = Callable[[AnyApplication], Mapping[Channel, Messenger]]
CHANNEL_API_URL = "channel://api/bot"  # python-telegram-bot wants URLs; a channel's request
CHANNEL_FILE_URL = "channel://file"  # takes its methods' names and getFile's paths from them

MENU_COMMANDS = (
    "addcard",
    "cards",
    "expiring",
    "renew",
    "find",
    "import",
    "export",
    "calendar",
    "stats",
    "cost",
    "settings",
    "push",
    "archive",
    "admin",
    "help",
    "id",
    "cancel",
)
CONVERSATION_FLUSH_SECONDS = 5
BOT_CONNECTIONS = 256  # as python-telegram-bot's own default pool for Bot API calls


class OnDemandRobotClient(RobotClient):
    """A ``RobotClient`` whose session opens at its first send: a bot whose chats have no
    robots (and every harness that runs ``post_init`` without ``post_shutdown``) never holds
    one open."""

    async def send(
        self, robot: Robot, secret: str | None, message: RobotMessage, *, now: datetime
    ) -> Delivery:
        await self.start()  # a no-op once started
        return await super().send(robot, secret, message, now=now)


def conversations_path(database_path: Path) -> Path:
    """Where earlier versions kept the conversations in progress, next to the database (e.g.
    ``data/simwatch.conversations.pickle``): imported into the database on first start."""
    return database_path.with_name(f"{database_path.stem}.conversations.pickle")


def conversation_store(storage: Storage) -> ConversationStore:
    """The conversation tables of the bot's database."""
    return conversations_for(storage)


def menu(lang: str) -> list[BotCommand]:
    return [BotCommand(name, t(lang, f"commands.{name}")) for name in MENU_COMMANDS]


async def register_commands(application: AnyApplication) -> None:
    """The command menu users see, in Chinese by default and in English for English clients."""
    await application.bot.set_my_commands(menu("zh_CN"))
    await application.bot.set_my_commands(menu("zh_CN"), language_code="zh")
    await application.bot.set_my_commands(menu("en"), language_code="en")


def add_handlers(application: AnyApplication) -> None:
    # A button in a group answers only the group's members (public groups show them to all).
    application.add_handler(MEMBERS_ONLY_HANDLER, group=MEMBERS_ONLY_GROUP)
    # Any update from a chat first marks it active again (it may have blocked the bot before).
    application.add_handler(digest.ACTIVITY_HANDLER, group=digest.ACTIVITY_GROUP)
    # One group, so exactly one handler answers an update: conversations first (their steps win
    # over one-shot buttons), the catch-alls for stale buttons and stray text last.
    application.add_handlers(
        [
            addcard.conversation_handler(),
            renew.conversation_handler(),
            edit.conversation_handler(),
            settings.conversation_handler(),
            bulk.conversation_handler(),
            reminder_settings.conversation_handler(),
            *start.HANDLERS,
            *cards.HANDLERS,
            *archive.HANDLERS,
            *money.HANDLERS,
            *bulk.HANDLERS,
            *find.HANDLERS,
            *stats.HANDLERS,
            *digest.HANDLERS,
            *reminder_settings.HANDLERS,
            *settings.HANDLERS,
            *push.HANDLERS,
            *admin.HANDLERS,
            *edit.EXTRA_HANDLERS,
            *bulk.FALLBACK_HANDLERS,
            *start.FALLBACK_HANDLERS,
        ]
    )
    # Last: what the update changed in conversations in progress is written at once.
    application.add_handler(FLUSH_HANDLER, group=FLUSH_GROUP)
    # Whatever fails while answering someone: they get a polite answer, the log the error once.
    application.add_error_handler(errors.on_error)


def build_application(
    config: Settings,
    *,
    token: str,
    storage: Storage | None = None,
    clock: Clock | None = None,
    rate_limit: bool = True,
    catalogue: Catalogue | None = None,
    reminder_tick: bool = True,
    robot_clock: Clock | None = None,
    request: BaseRequest | None = None,
    messengers: MessengersFactory | None = None,
) -> AnyApplication:
    """The bot, ready to ``initialize()``/``run_polling()``.

    ``request``: the Bot API carried out by another channel (``bot.channels``, e.g. WeCom's
    ``WeComRequest``) instead of Telegram: no updater, no Telegram rate limiter, and the update
    source puts the channel's updates on the update queue. ``messengers``: the reminder
    sender's messenger per channel, given this application (default: its own bot, for the
    channel it runs) — a process running several channels has one tick, in one application.

    ``robot_clock`` times what push robots see: their rate budgets and the signatures, which
    the services check against the real time. It is the system clock unless a test gives one
    (``clock``, a date fixed for the reminders, would sign with the wrong time).

    Without ``storage`` the database at ``config.database_path`` is opened when the application
    starts (inside its event loop) and closed when it stops. The plan catalogue is read and
    validated here, so a bad one stops the bot before it connects (``CatalogueError``).
    """
    plans = catalogue or load_catalogue(config.plan_catalogue)
    owned: list[Storage] = []  # the storage opened here, if none was given

    async def opened() -> Storage:
        # PTB loads the conversations in ``initialize()``, before ``post_init``: whichever
        # needs the storage first opens it.
        if storage is not None:
            return storage
        if not owned:
            owned.append(
                await open_storage(
                    database_url=config.database(), database_path=config.database_path
                )
            )
        return owned[0]

    async def open_conversations() -> ConversationStore:
        return conversation_store(await opened())

    # Conversation steps and their drafts (``user_data``) survive a restart, even a kill -9:
    # written to the database after every update (and every few seconds for what a time-out
    # changed), each time in one transaction.
    persistence = DatabasePersistence(
        open_conversations,
        old_file=conversations_path(config.database_path),
        update_interval=CONVERSATION_FLUSH_SECONDS,
    )
    builder: Any = (  # Any: setting a rate limiter changes the builder's generic type
        ApplicationBuilder()
        .token(token)
        .persistence(persistence)
        .concurrent_updates(PerChatUpdateProcessor())  # other chats don't wait on a slow one
    )
    if request is None:
        builder = (
            builder.base_url(config.telegram_base_url)
            .base_file_url(config.telegram_base_file_url)
            .request(AiohttpRequest(BOT_CONNECTIONS))
            .get_updates_request(AiohttpRequest())
        )
        if rate_limit:  # Telegram's flood limits pace Telegram only
            builder = builder.rate_limiter(AIORateLimiter())
    else:
        builder = (
            builder.base_url(CHANNEL_API_URL)
            .base_file_url(CHANNEL_FILE_URL)
            .request(request)
            .get_updates_request(request)
            .updater(None)
        )

    # The push robots' HTTP client (one session for every robot), shared by /push's tests and
    # the reminder sender's deliveries; closed with the bot.
    robot_client = OnDemandRobotClient.from_settings(config)

    async def post_init(application: AnyApplication) -> None:
        store = await opened()
        now = clock or SystemClock()
        pushes = stores_for(store).push
        cards_service = CardService(store, now)
        real = robot_clock or SystemClock()
        push_service = PushService(pushes, robot_client, real)
        install_services(application, Services(config, now, cards_service, plans, push_service))
        install_reminders(
            application,
            store,
            settings=config,
            clock=now,
            schedule=reminder_tick,
            robots=PushGateway(pushes, robot_client, real),
            messengers=messengers(application) if messengers is not None else None,
        )
        await register_commands(application)

    async def post_shutdown(application: AnyApplication) -> None:
        await robot_client.close()
        while owned:  # after ``shutdown()``, which wrote the conversations out
            await owned.pop().close()
        application.bot_data.pop(SERVICES_KEY, None)

    application: AnyApplication = builder.post_init(post_init).post_shutdown(post_shutdown).build()
    add_handlers(application)
    return application
