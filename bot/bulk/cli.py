"""``python -m bot import FILE --chat CHAT_ID`` and ``python -m bot export --chat CHAT_ID``.

The same import as ``/import`` in a chat, for operators: the same validation and report, one
transaction, but with the command line's larger limits and a progress bar on stderr. CHAT_ID is
the chat's id (``/id`` in the chat shows it); the chat must have used the bot. The rows not
imported are written next to FILE (or to ``--rejected``); rows that would move an expiry
earlier than SimWatch's are reported and left, unless ``--apply-older``. Exit status: 0 when
every row was imported, 1 when some rows were not, 2 when the file, the chat or the database
can't be used.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from bot.bulk.export import plain
from bot.bulk.importer import BeforeCommit, import_sheet
from bot.bulk.reading import CLI_LIMITS, read_sheet
from bot.bulk.report import rejected_file, report_text
from bot.bulk.service import BulkService
from bot.bulk.writing import OutputFormat
from bot.clock import SystemClock, local_today
from bot.config import Settings
from bot.errors import InputError
from bot.i18n import t
from storage.errors import DatabaseUnusableError, database_errors, database_shown
from storage.factory import open_stores


def add_bulk_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``import`` and ``export`` commands to ``python -m bot``."""
    importing = subparsers.add_parser(
        "import",
        help="import cards into a chat from a CSV or XLSX file (upsert by ICCID)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    importing.add_argument("file", type=Path, metavar="FILE", help="a .csv or .xlsx file")
    importing.add_argument(
        "--chat",
        type=int,
        required=True,
        metavar="CHAT_ID",
        help="the chat's id (send /id in the chat to see it); the bot must know the chat",
    )
    importing.add_argument(
        "--rejected",
        type=Path,
        default=None,
        metavar="FILE",
        help="where to write the rows not imported (default: next to FILE)",
    )
    importing.add_argument(
        "--max-rows",
        type=int,
        default=CLI_LIMITS.max_rows,
        metavar="N",
        help=f"refuse files with more data rows (default {CLI_LIMITS.max_rows})",
    )
    importing.add_argument(
        "--apply-older",
        action="store_true",
        help="also apply rows whose expiry is earlier than the card's (default: report, leave)",
    )
    importing.add_argument("--no-progress", action="store_true", help="no progress bar")

    exporting = subparsers.add_parser(
        "export", help="export a chat's cards to a CSV or XLSX file (re-importable)"
    )
    exporting.add_argument("--chat", type=int, required=True, metavar="CHAT_ID")
    exporting.add_argument(
        "--format",
        choices=("csv", "xlsx"),
        default=None,
        help="file format (default: from -o's extension, else csv)",
    )
    exporting.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="where to write (default: simwatch-<chat>-<date>.<format> here)",
    )


def _say(out: TextIO, lang: str, key: str, **params: object) -> None:
    print(plain(t(lang, key, **params)), file=out)


@contextmanager
def _progress_bar(
    desc: str, *, total: int | None, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A progress callback (rows done so far) drawing a tqdm bar on stderr."""
    # disable=None: tqdm switches itself off when stderr is not a terminal
    with tqdm(total=total, desc=desc, unit=" rows", disable=None if enabled else True) as bar:

        def update(done: int) -> None:
            bar.update(done - bar.n)

        yield update


async def run_import(
    settings: Settings,
    args: argparse.Namespace,
    out: TextIO,
    *,
    before_commit: BeforeCommit | None = None,
) -> int:
    """The ``import`` command; ``before_commit``: see ``import_sheet``."""
    lang = settings.language
    path: Path = args.file
    try:
        content = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        _say(out, lang, "bulk.cli.read_error", path=path, error=exc.strerror or exc)
        return 2
    limits = replace(CLI_LIMITS, max_rows=args.max_rows)
    enabled = not args.no_progress
    try:
        with _progress_bar(plain(t(lang, "bulk.cli.reading")), total=None, enabled=enabled) as p:
            sheet = await asyncio.to_thread(read_sheet, content, limits, p)
    except InputError as exc:
        print(plain(t(lang, exc.key, **exc.params)), file=out)
        return 2
    try:
        with database_errors():
            stores = await open_stores(
                database_url=settings.database(), database_path=settings.database_path
            )
            try:
                chat = await stores.storage.get_chat(args.chat)
                if chat is None:
                    _say(out, lang, "bulk.cli.no_chat", chat_id=args.chat)
                    return 2
                today = local_today(SystemClock(), chat.timezone)
                checking = plain(t(lang, "bulk.cli.checking"))
                with _progress_bar(checking, total=len(sheet.rows), enabled=enabled) as p:
                    report = await import_sheet(
                        stores.bulk,
                        chat.chat_id,
                        sheet,
                        today=today,
                        now=SystemClock().now(),
                        progress=p,
                        before_commit=before_commit,
                        apply_older=args.apply_older,
                        timezone=chat.timezone,
                    )
            finally:
                await stores.close()
    except DatabaseUnusableError as exc:
        _say(
            out,
            lang,
            exc.key,
            path=database_shown(settings.database(), settings.database_path),
            **exc.params,
        )  # as every command
        return 2
    print(plain(report_text(lang, report, in_chat=False)), file=out)
    _say(out, lang, "bulk.cli.lock_time", seconds=f"{report.lock_seconds:.2f}")
    rejected = rejected_file(lang, sheet, report, path.stem)
    if rejected is None:
        return 1 if report.older else 0
    target: Path = args.rejected or path.with_name(rejected.filename)
    await asyncio.to_thread(target.write_bytes, rejected.content)
    _say(out, lang, "bulk.cli.rejected_written", path=target)
    again = shlex.join([_python(), "-m", "bot", "import", str(target), "--chat", str(args.chat)])
    _say(out, lang, "bulk.cli.rejected_fix", command=again)
    return 1


def _python() -> str:
    """The interpreter running this, to be run again: ``.venv/bin/python`` (relative) when it
    is the venv here, as the README advises; else its full path (a bare ``python`` may be
    another one, without the bot's packages)."""
    executable = Path(sys.executable or "python3")
    try:
        relative = executable.absolute().relative_to(Path.cwd())
    except ValueError:
        return str(executable)
    return str(relative) if relative.parts[:1] == (".venv",) else str(executable)


def _export_format(args: argparse.Namespace) -> OutputFormat:
    if args.format in ("csv", "xlsx"):
        fmt: OutputFormat = args.format
        return fmt
    output: Path | None = args.output
    return "xlsx" if output is not None and output.suffix.lower() == ".xlsx" else "csv"


async def run_export(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    lang = settings.language
    fmt = _export_format(args)
    stores = await open_stores(
        database_url=settings.database(), database_path=settings.database_path
    )
    try:
        chat = await stores.storage.get_chat(args.chat)
        if chat is None:
            _say(out, lang, "bulk.cli.no_chat", chat_id=args.chat)
            return 2
        clock = SystemClock()
        today = local_today(clock, chat.timezone)
        service = BulkService(stores.bulk, clock)
        content, count = await service.export(chat, lang=lang, today=today, fmt=fmt)
    finally:
        await stores.close()
    target: Path = args.output or Path(f"simwatch-{args.chat}-{today:%Y%m%d}.{fmt}")
    await asyncio.to_thread(target.write_bytes, content)
    _say(out, lang, "bulk.cli.exported", count=count, path=target)
    return 0
