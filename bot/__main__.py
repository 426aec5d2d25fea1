"""``python -m bot``: run the bot, or one of the operator commands (see ``--help``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.bulk.cli import add_bulk_parsers, run_export, run_import
from bot.config import Settings, SettingsError, load_settings
from bot.logs import setup_logging
from bot.plans.catalogue import CatalogueError
from bot.reminders.cli import add_remind_parser, run_remind
from bot.shell import add_shell_parser, run_shell
from storage.base import SchemaTooNewError


async def preflight(settings: Settings, token: str) -> None:
    """Before going online: migrate the database and make sure Telegram answers to the token.

    Doing this ourselves turns the usual first-run mistakes into one clear line each.
    """
    from telegram import Bot

    from handlers.transport import AiohttpRequest
    from storage.sqlite import SqliteStorage

    storage = await SqliteStorage.open(settings.database_path)
    await storage.close()
    bot = Bot(token, base_url=settings.telegram_base_url, request=AiohttpRequest())
    async with bot:  # initialize() calls getMe
        pass


def run_bot(settings: Settings) -> int:
    from telegram.error import InvalidToken, NetworkError

    from bot.app import build_application

    token = settings.require_token()
    setup_logging(settings.log_level, token)
    application = build_application(settings, token=token)
    try:
        asyncio.run(preflight(settings, token))
    except InvalidToken:
        print(
            "simwatch: BOT_TOKEN was rejected by Telegram: check it with @BotFather",
            file=sys.stderr,
        )
        return 2
    except NetworkError as exc:
        print(
            f"simwatch: cannot reach Telegram at {settings.telegram_base_url} ({exc.message}); "
            "check the network or TELEGRAM_BASE_URL",
            file=sys.stderr,
        )
        return 1
    application.run_polling(allowed_updates=None, drop_pending_updates=False)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bot",
        description="SimWatch (流量卡管家): reminders to renew POS terminals' data SIM cards.",
    )
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the bot on Telegram (long polling); the default")
    backup = commands.add_parser(
        "backup", help="copy the database consistently, even while the bot runs"
    )
    backup.add_argument("file", type=Path, help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_shell_parser(commands)
    add_bulk_parsers(commands)
    add_remind_parser(commands)
    return root


def run_backup(settings: Settings, file: Path, *, force: bool) -> int:
    from storage.backup import BackupError, backup_database

    try:
        cards = backup_database(settings.database_path, file, overwrite=force)
    except BackupError as exc:
        print(f"simwatch: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {settings.database_path} to {file} ({cards} cards)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command in (None, "run"):
            return run_bot(settings)
        if args.command == "shell":
            return run_shell(args)
        if args.command == "remind":
            return asyncio.run(
                run_remind(settings, on_date=args.date, dry_run=args.dry_run, out=sys.stdout)
            )
        if args.command == "import":
            return asyncio.run(run_import(settings, args, sys.stdout))
        if args.command == "export":
            return asyncio.run(run_export(settings, args, sys.stdout))
        if args.command == "backup":
            return run_backup(settings, args.file, force=args.force)
    except (SettingsError, SchemaTooNewError) as exc:
        print(f"simwatch: {exc}", file=sys.stderr)
        return 2
    except CatalogueError as exc:
        print(f"simwatch: PLAN_CATALOGUE is invalid: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
