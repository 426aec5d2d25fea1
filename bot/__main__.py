"""``python -m bot``: run the bot, or one of the operator commands (see ``--help``).

Every command starts the same way: files it creates are private to the user running it (umask
077: the database and its -wal/-shm files, the conversations, backups and exports), logging goes
to stderr at ``LOG_LEVEL`` with every secret of the settings redacted, and a bad or rejected
setting is one line on stderr with exit status 2, as is a database that can't be used
(``storage.errors``: a folder, read-only, not a database, a schema too new…). Operator
messages use the catalogue, in ``LANGUAGE`` (Chinese by default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.bulk.cli import add_bulk_parsers, run_export, run_import
from bot.config import (
    Settings,
    SettingsError,
    TelegramUnreachableError,
    TokenRejectedError,
    load_settings,
)
from bot.i18n import t
from bot.logs import install_excepthook, redact, register_secrets, setup_logging
from bot.migrate_db import add_migrate_db_parser, run_migrate_db
from bot.plans.catalogue import CatalogueError, load_catalogue
from bot.reminders.cli import add_remind_parser, plain, run_remind
from bot.shell import add_shell_parser, run_shell
from storage.base import DatabaseUnreachableError, SchemaTooNewError
from storage.errors import DatabaseUnusableError, database_errors, database_shown

PRIVATE_UMASK = 0o077  # files 0600, folders 0700


def _say(settings: Settings, key: str, /, *, err: bool = False, **params: object) -> None:
    print(plain(t(settings.language, key, **params)), file=sys.stderr if err else sys.stdout)


async def preflight(settings: Settings, token: str) -> None:
    """Before going online: migrate the database and make sure Telegram answers to the token.

    Doing this ourselves turns the usual first-run mistakes into one clear line each.
    """
    from handlers.delivery import check_token

    await prepare_database(settings)
    await check_token(settings)


async def prepare_database(settings: Settings) -> None:
    """Migrate the database before going online (a bot without Telegram has no token to check)."""
    from storage.factory import open_storage

    storage = await open_storage(
        database_url=settings.database(), database_path=settings.database_path
    )
    await storage.close()


def run_channels(settings: Settings) -> int:
    """WeCom configured: every configured channel in one process (``bot.serve``)."""
    from bot.channels.wecom.channel import ChannelStopped
    from bot.serve import serve

    if settings.telegram_enabled():
        asyncio.run(preflight(settings, settings.require_token()))
    else:
        asyncio.run(prepare_database(settings))
    try:
        asyncio.run(serve(settings))
    except ChannelStopped as exc:
        _say(settings, exc.key, err=True, **exc.params)
        return 2 if exc.key == "wecom.refused" else 1
    return 0


def run_bot(settings: Settings) -> int:
    from bot.app import build_application

    if settings.wecom_credentials() is not None:
        return run_channels(settings)
    token = settings.require_token()
    application = build_application(settings, token=token)
    asyncio.run(preflight(settings, token))  # TokenRejectedError / TelegramUnreachableError
    application.run_polling(allowed_updates=None, drop_pending_updates=False)
    return 0


class PlainHelpFormatter(argparse.HelpFormatter):
    """Help as terminal text: the docstrings' ``literal`` markup without its backticks."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(re.sub(r"``([^`]*)``", r"\1", text))

    def _expand_help(self, action: argparse.Action) -> str:
        return re.sub(r"``([^`]*)``", r"\1", super()._expand_help(action))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bot",
        description="SimWatch (流量卡管家): reminders to renew POS terminals' data SIM cards.",
        formatter_class=PlainHelpFormatter,
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
    add_migrate_db_parser(commands)
    for command in commands.choices.values():
        command.formatter_class = PlainHelpFormatter
    return root


def run_backup(settings: Settings, file: Path, *, force: bool) -> int:
    from storage.backup import BackupError, backup_database

    if settings.database() is not None:  # PostgreSQL: its own tools copy it consistently
        _say(settings, "cli.backup_postgres", err=True, file=file)
        return 2
    try:
        cards = backup_database(settings.database_path, file, overwrite=force)
    except BackupError as exc:
        reason = t(settings.language, exc.key, **exc.params)
        _say(settings, "cli.backup_failed", err=True, reason=reason)
        return 1
    _say(settings, "cli.backed_up", source=settings.database_path, target=file, cards=cards)
    return 0


def _remind(settings: Settings, args: argparse.Namespace) -> int:
    if args.dry_run and settings.database() is None and not settings.database_path.exists():
        _say(settings, "cli.no_database", err=True, path=settings.database_path)
        return 2
    code = asyncio.run(
        run_remind(
            settings,
            on_date=args.date,
            dry_run=args.dry_run,
            out=sys.stdout,
            trust_clock=args.trust_clock,
        )
    )
    if args.dry_run:  # it sent nothing, but says whether the real run could send
        if settings.bot_token is None or not settings.bot_token.get_secret_value().strip():
            _say(settings, "cli.dry_run_no_token", err=True)
        else:
            from handlers.delivery import check_token

            asyncio.run(check_token(settings))  # TokenRejectedError / TelegramUnreachableError
    return code


def _command(settings: Settings, args: argparse.Namespace) -> int:
    # Every setting is checked whatever the command (README: "exits with status 2, whatever the
    # command"): the plan catalogue too, though only the bot and the shell read its plans.
    load_catalogue(settings.plan_catalogue)
    if args.command in (None, "run"):
        return run_bot(settings)
    if args.command == "shell":
        return run_shell(args)
    if args.command == "remind":
        return _remind(settings, args)
    if args.command == "import":
        return asyncio.run(run_import(settings, args, sys.stdout))
    if args.command == "export":
        return asyncio.run(run_export(settings, args, sys.stdout))
    if args.command == "backup":
        return run_backup(settings, args.file, force=args.force)
    if args.command == "migrate-db":
        return run_migrate_db(settings, args, sys.stdout, sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    install_excepthook()
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"simwatch: {exc}", file=sys.stderr)
        return 2
    register_secrets(settings.secrets())
    if args.command != "shell":  # the shell sets up its own, quieter log
        setup_logging(settings.log_level, settings.secrets())
    try:
        with database_errors():  # a database the operator must fix: one line, for every command
            return _command(settings, args)
    except DatabaseUnusableError as exc:
        _say(
            settings,
            exc.key,
            err=True,
            path=database_shown(settings.database(), settings.database_path),
            **exc.params,
        )
        return 2
    except TokenRejectedError:
        _say(settings, "cli.token_rejected", err=True)
        return 2
    except TelegramUnreachableError as exc:
        url = redact(settings.telegram_base_url)
        _say(settings, "cli.unreachable", err=True, url=url, error=redact(exc.detail))
        return 1
    except (SettingsError, SchemaTooNewError, DatabaseUnreachableError) as exc:
        print(f"simwatch: {redact(str(exc))}", file=sys.stderr)
        return 2
    except CatalogueError as exc:
        print(f"simwatch: PLAN_CATALOGUE is invalid: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
