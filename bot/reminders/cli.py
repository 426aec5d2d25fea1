"""``python -m bot remind [--date YYYY-MM-DD] [--dry-run]``: one reminder pass, then exit.

Without ``--date`` it composes what the bot's own tick would compose now (chats whose send time
has passed today); with ``--date`` every chat not done for that date yet, as if it were that day
in every time zone, whatever the send times. Then it delivers everything pending and prints a
summary; the exit status is 1 if any message failed or had to be left for later.

``--dry-run`` composes inside transactions that are rolled back and sends nothing: it prints the
messages a real run would send (``python -m bot`` then checks ``BOT_TOKEN`` as a real run would,
or says it is not set).

Messages another sender has claimed are not sent by this run, and a sender that was killed
leaves its claims for 10 minutes: the summary then says how many messages are held, and until
when (the first run after that sends them).
"""

from __future__ import annotations

import argparse
import html
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import date, datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.chats import Channel
from bot.clock import SystemClock, local_today
from bot.config import Settings, SettingsError, load_settings
from bot.dates import parse_expiry
from bot.errors import InputError, excerpt
from bot.i18n import t
from bot.models import DEFAULT_LANGUAGE, DEFAULT_TIMEZONE
from bot.reminders.compose import ComposedDigest, ComposeStats, ReminderComposer
from bot.reminders.runner import CLOCK_JUMP, RESTART_GAP
from bot.reminders.sender import (
    DrainStats,
    Messenger,
    OutboxSender,
    RobotGateway,
    SenderPolicy,
)
from bot.robots.delivery import open_robots
from bot.robots.models import Refusal
from bot.robots.render import from_stored, service_name
from storage.factory import Stores, open_stores
from storage.reminders import ReminderStore

MessengerFactory = Callable[[Settings], AbstractAsyncContextManager[Messenger]]

_TAG = re.compile(r"<[^>]+>")


def add_remind_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    remind = subparsers.add_parser(
        "remind",
        help="run one reminder pass (compose, auto-renew, deliver) and exit",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    remind.add_argument(
        "--date",
        type=date_argument,
        default=None,
        metavar="DATE",
        help="compute as if today were this date in every chat's time zone (ignores send "
        "times); written as in the bot: 2026-12-25, 2026/12/25, 12月25日…",
    )
    remind.add_argument(
        "--trust-clock",
        action="store_true",
        help="run even though the system clock is far after (or before) the latest time the "
        "database recorded (without it such a run does nothing and says so)",
    )
    remind.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be sent; change nothing, send nothing",
    )


def _operator_language() -> str:
    try:
        return load_settings().language
    except SettingsError:
        return DEFAULT_LANGUAGE


def date_argument(text: str) -> date:
    """``--date`` as the bot reads dates (``bot.dates.parse_expiry``: 2026-12-25, 2026/12/25,
    12月25日, a length such as 30天 from today); a friendly error otherwise."""
    today = local_today(SystemClock(), DEFAULT_TIMEZONE)
    try:
        return parse_expiry(text, today)
    except InputError:
        message = t(_operator_language(), "remind_cli.bad_date", text=excerpt(text))
        raise argparse.ArgumentTypeError(plain(message)) from None


def plain(text: str) -> str:
    """Telegram HTML as terminal text."""
    return html.unescape(_TAG.sub("", text))


def _say(out: TextIO, lang: str, key: str, **params: object) -> None:
    print(plain(t(lang, key, **params)), file=out)


async def _compose(
    composer: ReminderComposer, on_date: date | None, *, dry_run: bool
) -> ComposeStats:
    if on_date is None:
        return await composer.compose_due(dry_run=dry_run)
    return await composer.compose_for_date(on_date, dry_run=dry_run)


def _print_digest(out: TextIO, lang: str, digest: ComposedDigest) -> None:
    target = digest.target
    for number, part in enumerate(digest.parts, start=1):
        if target is not None:  # a robot's markdown, as it would receive it
            _say(
                out,
                lang,
                "remind_cli.robot_message",
                chat_id=digest.chat_id,
                service=service_name(lang, target.robot.service),
                token=target.robot.masked,
                part=number,
                parts=len(digest.parts),
            )
            print(from_stored(part.text)[1], file=out)
            print(file=out)
            continue
        _say(
            out,
            lang,
            "remind_cli.message",
            chat_id=digest.chat_id,
            part=number,
            parts=len(digest.parts),
        )
        print(plain(part.text), file=out)
        for row in part.buttons:
            print("  " + "  ".join(f"[{text}]" for text, _ in row), file=out)
        print(file=out)


async def _dry_run(
    store: ReminderStore, composer: ReminderComposer, on_date: date | None, lang: str, out: TextIO
) -> int:
    pending = await store.count_pending()
    stats = await _compose(composer, on_date, dry_run=True)
    _say(out, lang, "remind_cli.dry_run")
    for digest in stats.composed:
        _print_digest(out, lang, digest)
    _say(
        out,
        lang,
        "remind_cli.dry_run_summary",
        chats=stats.digests,
        cards=stats.cards_due,
        renewed=stats.auto_renewed,
        messages=sum(len(digest.parts) for digest in stats.composed),
        pending=pending,
    )
    return 0


def _summary(out: TextIO, lang: str, composed: ComposeStats, drained: DrainStats) -> None:
    for chat_id, error in drained.errors:
        _say(out, lang, "remind_cli.error", chat_id=chat_id, error=error)
    refusals = {refusal.value for refusal in Refusal}
    for failed in drained.robot_errors:
        # a refusal as the chat is told it (what to change), not as a code
        error = failed.error
        said = t(lang, f"robot.refusal.{error}") if error in refusals else error
        _say(
            out,
            lang,
            "remind_cli.robot_error",
            chat_id=failed.chat_id,
            service=service_name(lang, failed.robot.service),
            token=failed.robot.masked,
            error=said,
        )
    if drained.robots_sent or drained.robot_errors:
        _say(
            out,
            lang,
            "remind_cli.robots",
            sent=drained.robots_sent,
            failed=len(drained.robot_errors),
        )
    if drained.paused_targets:
        _say(out, lang, "remind_cli.robots_paused", paused=drained.paused_targets)
    _say(
        out,
        lang,
        "remind_cli.summary",
        chats=composed.digests,
        cards=composed.cards_due,
        renewed=composed.auto_renewed,
        sent=drained.sent,
        failed=drained.failed + drained.waiting,
        blocked=drained.blocked_chats,
    )


async def _say_held(out: TextIO, lang: str, store: ReminderStore, zone: str) -> None:
    """How many messages another (or a crashed) sender still holds, and until when."""
    held = await store.held(now=SystemClock().now())
    if held.count and held.until is not None:
        local = held.until.astimezone(ZoneInfo(zone))
        until = f"{local:%Y-%m-%d %H:%M:%S} ({zone})"
        _say(out, lang, "remind_cli.held", count=held.count, until=until)


async def run_pass(
    store: ReminderStore,
    messengers: Mapping[Channel, Messenger],
    *,
    default_language: str,
    on_date: date | None,
    out: TextIO,
    composer: ReminderComposer | None = None,
    sender: OutboxSender | None = None,
    robots: RobotGateway | None = None,
) -> int:
    """Compose (and auto-renew), deliver everything pending to the channels of ``messengers``
    (and the robots), print the summary; the exit code. Messages of chats of other channels
    stay pending for the bot, which has every channel's messenger."""
    clock = SystemClock()
    composer = composer or ReminderComposer(store, clock, default_language=default_language)
    sender = sender or OutboxSender(
        store, messengers, clock, SenderPolicy(), default_language=default_language, robots=robots
    )
    composed = await _compose(composer, on_date, dry_run=False)
    drained = await sender.drain()
    _summary(out, default_language, composed, drained)
    return 1 if drained.failed or drained.waiting else 0


async def _clock_doubted(store: ReminderStore, settings: Settings, out: TextIO) -> bool:
    """Whether the system clock is further after the latest time the database recorded than
    a daily cron leaves (``RESTART_GAP``), or before it: a clock that is wrong (a board before
    it syncs) would send and auto-renew for the wrong day. Says so in one line."""
    latest = (await store.clock_record()).latest
    now = SystemClock().now()
    if latest is None or -CLOCK_JUMP <= now - latest <= RESTART_GAP:
        return False
    zone = ZoneInfo(settings.timezone)

    def shown(moment: datetime) -> str:
        return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"

    key = "remind_cli.clock_ahead" if now > latest else "remind_cli.clock_behind"
    days = abs(now - latest).days
    _say(out, settings.language, key, now=shown(now), latest=shown(latest), days=days)
    return True


async def _messengers(
    settings: Settings,
    stores: Stores,
    stack: AsyncExitStack,
    out: TextIO,
    messenger_factory: MessengerFactory | None,
) -> dict[Channel, Messenger]:
    """A messenger for each configured channel; WeCom's only where no running bot holds its
    connection (the bot then delivers WeCom's rows, and this says so)."""
    messengers: dict[Channel, Messenger] = {}
    wecom = settings.wecom_credentials() is not None
    if settings.telegram_enabled() or not wecom:  # neither: Telegram's "BOT_TOKEN is not set"
        if messenger_factory is None:
            from handlers.delivery import open_messenger  # the Telegram side, when needed

            messenger_factory = open_messenger
        messengers[Channel.TELEGRAM] = await stack.enter_async_context(messenger_factory(settings))
    if wecom:
        from bot.serve import wecom_for_remind

        found = await stack.enter_async_context(wecom_for_remind(settings, stores.storage))
        if isinstance(found, str):
            _say(out, settings.language, "remind_cli.wecom_held", holder=found)
        elif found is None:
            _say(out, settings.language, "remind_cli.wecom_unreachable")
        else:
            messengers[Channel.WECOM] = found
    return messengers


async def run_remind(
    settings: Settings,
    *,
    on_date: date | None,
    dry_run: bool,
    out: TextIO,
    messenger_factory: MessengerFactory | None = None,
    trust_clock: bool = False,
) -> int:
    """The ``remind`` command. ``messenger_factory`` opens the Telegram side (by default
    ``handlers.delivery.open_messenger``, imported only when something is to be sent); WeCom's
    connects itself unless a running bot holds WeCom's connection (``_messengers``).
    Without ``on_date`` and ``trust_clock``, a run whose clock is far from what the database
    recorded does nothing (exit status 1)."""
    lang = settings.language
    stores = await open_stores(
        database_url=settings.database(), database_path=settings.database_path
    )
    try:
        store = stores.reminders
        if on_date is None and not trust_clock and await _clock_doubted(store, settings, out):
            return 1
        if dry_run:
            composer = ReminderComposer(store, SystemClock(), default_language=lang)
            code = await _dry_run(store, composer, on_date, lang, out)
        else:
            async with AsyncExitStack() as stack:
                messengers = await _messengers(settings, stores, stack, out, messenger_factory)
                robots = await stack.enter_async_context(
                    open_robots(settings, stores, SystemClock())
                )
                code = await run_pass(
                    store,
                    messengers,
                    default_language=lang,
                    on_date=on_date,
                    out=out,
                    robots=robots,
                )
        await _say_held(out, lang, store, settings.timezone)
        return code
    finally:
        await stores.close()
