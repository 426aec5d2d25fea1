"""Wiring reminders into the Application: the service for the handlers, and the JobQueue tick.

The lead's ``post_init`` calls ``install_reminders(application, storage, settings=…, clock=…)``
once the storage is open. The tick keeps no state between runs that matters: what was composed
and what is still to send live in the database, so a restart simply carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

from telegram.ext import Application, ContextTypes, Job

from bot.chats import Channel
from bot.clock import Clock
from bot.config import Settings
from bot.reminders.compose import ReminderComposer
from bot.reminders.runner import ReminderRunner
from bot.reminders.sender import Messenger, OutboxSender, RobotGateway, SenderPolicy
from bot.reminders.service import ReminderService
from handlers.delivery import TelegramMessenger
from storage.base import Storage
from storage.factory import stores_for

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
REMINDERS_KEY = "simwatch.reminders"
RUNNER_KEY = "simwatch.reminders.runner"
TICK_SECONDS = 60.0
JOB_NAME = "simwatch-reminders"


def reminders(context: ContextTypes.DEFAULT_TYPE) -> ReminderService | None:
    """The reminder service, or None if ``install_reminders`` was not called."""
    return cast(ReminderService | None, context.application.bot_data.get(REMINDERS_KEY))


def install_reminders(
    application: AnyApplication,
    storage: Storage,
    *,
    settings: Settings,
    clock: Clock,
    tick_seconds: float = TICK_SECONDS,
    first_tick: float = 5.0,
    policy: SenderPolicy | None = None,
    schedule: bool = True,
    robots: RobotGateway | None = None,
    messengers: Mapping[Channel, Messenger] | None = None,
) -> ReminderRunner:
    """Make the reminder service available to the handlers and (unless told not to, as tests
    that drive passes themselves do) schedule the tick. ``messengers``: the sender's, by
    channel (default: this application's bot for Telegram; ``bot.serve`` gives every channel's
    of the process, read at each drain)."""
    store = stores_for(storage).reminders
    application.bot_data[REMINDERS_KEY] = ReminderService(storage, store, clock)
    composer = ReminderComposer(store, clock, default_language=settings.language)
    sender = OutboxSender(
        store,
        # "is None", not "or": a live mapping may be empty now and have a channel later
        messengers
        if messengers is not None
        else {Channel.TELEGRAM: TelegramMessenger(application.bot)},
        clock,
        policy,
        default_language=settings.language,
        robots=robots,
    )
    runner = ReminderRunner(store, composer, sender, clock)
    application.bot_data[RUNNER_KEY] = runner
    if schedule:
        schedule_reminders(application, runner, tick_seconds=tick_seconds, first_tick=first_tick)
    return runner


def schedule_reminders(
    application: AnyApplication,
    runner: ReminderRunner,
    *,
    tick_seconds: float = TICK_SECONDS,
    first_tick: float = 5.0,
) -> Job[Any]:
    """Run ``runner.tick`` every ``tick_seconds`` (a tick drains for less than that)."""
    job_queue = application.job_queue
    if job_queue is None:
        raise RuntimeError("reminders need python-telegram-bot[job-queue] (APScheduler)")
    for old in job_queue.get_jobs_by_name(JOB_NAME):
        old.schedule_removal()

    async def tick(context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await runner.tick()
        except Exception:  # one bad tick must not stop the next ones
            log.exception("reminder tick failed")

    return job_queue.run_repeating(
        tick,
        interval=tick_seconds,
        first=first_tick,
        name=JOB_NAME,
        job_kwargs={"max_instances": 1, "coalesce": True},
    )
