"""``:remind``: one full reminder pass (compose, auto-renew, deliver) through the running bot.

It uses the public pass of ``bot.reminders`` (``bot.reminders.cli.run_pass``), the bot's own
database connection, the shell's clock and a ``Messenger`` on the application's bot, so the
digests arrive in the chats like the daily ones. The imports are deferred: a version without
reminders still runs the shell, and ``:remind`` says it is not available.
"""

from __future__ import annotations

import io
from datetime import date

from bot.shell.runtime import BotRuntime


class RemindersUnavailableError(RuntimeError):
    """This version of the bot has no reminder pass to run."""


async def run_reminder_pass(runtime: BotRuntime, day: date) -> str:
    """Remind every chat not reminded for ``day`` yet, as if it were that day everywhere;
    returns the pass's one-line summary (the digests themselves are chat events)."""
    try:
        from bot.chats import Channel
        from bot.clock import SystemClock
        from bot.reminders.cli import run_pass
        from bot.reminders.compose import ReminderComposer
        from bot.reminders.sender import OutboxSender, SenderPolicy
        from bot.robots.delivery import open_robots
        from handlers.delivery import TelegramMessenger
        from storage.factory import stores_for
    except ImportError as exc:
        raise RemindersUnavailableError(str(exc)) from exc
    language = runtime.settings.language
    stores = stores_for(runtime.storage)
    store = stores.reminders
    messengers = {Channel.TELEGRAM: TelegramMessenger(runtime.app.bot)}
    # run_pass would use the system clock; the shell's clock keeps a fixed date fixed
    composer = ReminderComposer(store, runtime.clock, default_language=language)
    summary = io.StringIO()
    # the push robots too: runtime.settings point them at the shell's stand-ins
    # (in real time: the robots' limits and signatures are, whatever date the shell fixed)
    async with open_robots(runtime.settings, stores, SystemClock()) as robots:
        sender = OutboxSender(
            store,
            messengers,
            runtime.clock,
            SenderPolicy(),
            default_language=language,
            robots=robots,
        )
        await run_pass(
            store,
            messengers,
            default_language=language,
            on_date=day,
            out=summary,
            composer=composer,
            sender=sender,
        )
    return summary.getvalue().strip()


def pause_daily_tick(runtime: BotRuntime) -> None:
    """Keep a script's output reproducible: no digest on the bot's own schedule in the middle
    of it (the script says when, with ``:remind``). Interactive sessions keep the tick."""
    try:
        from handlers.reminder_schedule import JOB_NAME
    except ImportError:
        return
    job_queue = runtime.app.job_queue
    if job_queue is None:
        return
    for job in job_queue.get_jobs_by_name(JOB_NAME):
        job.enabled = False
