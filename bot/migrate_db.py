"""``python -m bot migrate-db --from SQLITE_FILE [--to POSTGRESQL_URL]``: move to PostgreSQL.

Copies every table of a SimWatch SQLite database (it may be in use: a consistent snapshot of it
is copied, the file itself is never written) into an empty PostgreSQL database, ``--to`` or
else ``DATABASE_URL``, in one transaction, and prints the rows per table on both sides. Exit
status: 0 when copied and the counts match; 2 when the source or the target can't be used, the
target already holds data or a row can't be copied; 1 when the counts differ after the copy.
Whatever fails, the transaction is rolled back: nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from bot.config import Settings
from bot.i18n import t
from bot.logs import register_secrets
from bot.reminders.cli import plain
from storage.postgres.pool import redacted
from storage.transfer import TransferError, copy_sqlite_to_postgres


def add_migrate_db_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = subparsers.add_parser(
        "migrate-db",
        help="copy a SQLite database into an empty PostgreSQL database",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    command.add_argument(
        "--from",
        dest="source",
        required=True,
        type=_sqlite_path,
        metavar="SQLITE_FILE",
        help="the SQLite database to copy (a path, or sqlite:PATH); it is only read",
    )
    command.add_argument(
        "--to",
        dest="target",
        default=None,
        metavar="POSTGRESQL_URL",
        help="postgresql://user:password@host:5432/database (default: DATABASE_URL, which "
        "keeps the password off the command line)",
    )


def _sqlite_path(text: str) -> Path:
    """A path, or ``sqlite:PATH`` (as issue 14 spells it), or SQLAlchemy's ``sqlite:///PATH``
    (``sqlite:////abs/path`` for an absolute one)."""
    for prefix in ("sqlite:///", "sqlite:"):
        if text.startswith(prefix):
            return Path(text.removeprefix(prefix))
    return Path(text)


def _say(out: TextIO, lang: str, key: str, /, **params: object) -> None:
    print(plain(t(lang, key, **params)), file=out)


def run_migrate_db(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    lang = settings.language
    url: str | None = args.target or settings.database()
    if not url:
        _say(err, lang, "cli.migrate_db.no_target")
        return 2
    password = urlsplit(url).password if args.target else None
    if password:  # given on the command line: as secret as DATABASE_URL's
        register_secrets({password: "--to password"})
    target = redacted(url)
    _say(out, lang, "cli.migrate_db.copying", source=args.source, target=target)

    def progress(table: str, rows: int, seconds: float) -> None:
        _say(
            out,
            lang,
            "cli.migrate_db.table_copied",
            table=table,
            rows=rows,
            seconds=f"{seconds:.1f}",
        )

    started = time.monotonic()
    try:
        counts = asyncio.run(copy_sqlite_to_postgres(args.source, url, progress=progress))
    except TransferError as exc:
        _say(err, lang, exc.key, **exc.params)
        return exc.status
    for count in counts:
        _say(
            out,
            lang,
            "cli.migrate_db.count",
            table=count.table,
            source=count.source,
            target=count.target,
        )
    _say(
        out,
        lang,
        "cli.migrate_db.done",
        tables=len(counts),
        rows=sum(count.target for count in counts),
        seconds=f"{time.monotonic() - started:.1f}",
        target=target,
    )
    return 0
