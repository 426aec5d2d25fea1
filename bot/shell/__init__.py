"""``python -m bot shell``: chat with the real bot in a terminal, no token and no internet.

The local Bot API emulator runs on 127.0.0.1, the unmodified bot long-polls it with its usual
handlers and SQLite database (``DATABASE_PATH``, or a throw-away one with ``--temp``), and the
terminal plays a Telegram client: what you type is sent as a simulated user's message, what the
bot sends is printed, numbered buttons are pressed by typing their number. Commands starting
with ``:`` drive the shell itself (``:help``). With stdin not a terminal it runs a script:
``python -m bot shell --temp --date 2026-11-25 < script.txt`` prints the conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import date
from pathlib import Path
from typing import TextIO

from bot.config import Settings, load_settings
from bot.shell.clock import ShellClock
from bot.shell.commands import ShellInputError, language_code
from bot.shell.console import Console, enable_line_editing, terminal_kept
from bot.shell.logs import quiet_logging
from bot.shell.options import DEFAULT_USER_ID, ShellOptions
from bot.shell.reminders import pause_daily_tick
from bot.shell.runtime import running_bot
from bot.shell.session import ShellSession

__all__ = ["ShellOptions", "add_shell_parser", "run_session", "run_shell"]


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-25") from None


def _language(text: str) -> str:
    try:
        return language_code(text)
    except ShellInputError:
        raise argparse.ArgumentTypeError(f"{text!r}: use zh or en") from None


def _user_id(text: str) -> int:
    if not text.isdecimal() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def add_shell_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    shell = subparsers.add_parser(
        "shell",
        help="chat with the bot in this terminal: no token, no internet",
        description=(
            "Chat with SimWatch in this terminal. The bot runs unmodified against a local "
            "Telegram Bot API emulator (no BOT_TOKEN, no internet); DATABASE_PATH, TIMEZONE and "
            "LANGUAGE apply. Type messages and /commands; type a number to press a button; "
            ":help lists the shell's own commands. With stdin not a terminal, runs a script: "
            "each line is echoed as '> line', lines starting with # are comments."
        ),
    )
    shell.add_argument(
        "--temp",
        action="store_true",
        help="use a throw-away database, deleted on exit, instead of DATABASE_PATH",
    )
    shell.add_argument(
        "--date",
        type=_iso_date,
        metavar="YYYY-MM-DD",
        help="fix the bot's date (10:00 in TIMEZONE) for reproducible runs; default: now",
    )
    shell.add_argument(
        "--lang",
        type=_language,
        metavar="zh|en",
        help="the simulated user's Telegram language; default: from LANGUAGE",
    )
    shell.add_argument(
        "--user-id",
        type=_user_id,
        default=DEFAULT_USER_ID,
        metavar="ID",
        help=f"the simulated user's Telegram id (default {DEFAULT_USER_ID})",
    )
    shell.add_argument(
        "--channel",
        choices=("telegram", "wecom"),
        default="telegram",
        help="the client the terminal plays: Telegram (default) or WeCom (企业微信, against a "
        "local WeCom emulator)",
    )
    shell.add_argument(
        "--save-files",
        type=Path,
        metavar="DIR",
        help="save the documents and photos the bot sends into DIR",
    )


def options_from(args: argparse.Namespace) -> ShellOptions:
    return ShellOptions(
        temporary=bool(args.temp),
        day=args.date,
        language_code=args.lang,
        user_id=int(args.user_id),
        save_files=args.save_files,
        channel=str(getattr(args, "channel", "telegram")),
    )


async def run_session(
    settings: Settings,
    options: ShellOptions,
    *,
    stdin: TextIO,
    stdout: TextIO,
    interactive: bool,
) -> int:
    """One shell session on these streams (the tests run scripts through this)."""
    clock = ShellClock(settings.timezone, options.day)
    console = Console(stdin, stdout, interactive=interactive)
    if options.channel == "wecom":
        from bot.shell.wecom import run_wecom_session

        return await run_wecom_session(settings, clock, console, temporary=options.temporary)
    async with running_bot(settings, clock, temporary=options.temporary) as runtime:
        if not interactive:
            pause_daily_tick(runtime)
        return await ShellSession(runtime, console, options).run()


async def _run_until_interrupted(
    settings: Settings, options: ShellOptions, interactive: bool
) -> int:
    """``run_session`` on the process's stdin/stdout; Ctrl-C ends it like :quit.

    asyncio's own Ctrl-C handling runs only once the event loop wakes up, which can take a
    while when the signal lands on the input thread; ``add_signal_handler`` wakes it at once.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        return await run_session(
            settings, options, stdin=sys.stdin, stdout=sys.stdout, interactive=interactive
        )
    except asyncio.CancelledError:
        if not interrupted:
            raise
        task.uncancel()
        return 0
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def run_shell(args: argparse.Namespace) -> int:
    """``python -m bot shell``; the exit status. Errors that stop it before the chat starts
    (``SettingsError``, ``SchemaTooNewError``, a bad plan catalogue) are left to the caller,
    which prints them as one line."""
    settings = load_settings()
    options = options_from(args)
    interactive = sys.stdin.isatty()
    quiet_logging(settings.log_level, settings.secrets())
    if interactive:
        enable_line_editing()
    with terminal_kept(sys.stdin):
        try:
            return asyncio.run(_run_until_interrupted(settings, options, interactive))
        except KeyboardInterrupt:  # a second Ctrl-C while shutting down
            return 0
