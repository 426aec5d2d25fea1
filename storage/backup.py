"""Online backup of the SQLite database with SQLite's backup API (safe while the bot runs)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from bot.files import create_private
from bot.i18n import t


class BackupError(Exception):
    """The backup could not be made. ``key`` names the catalogue text (``cli.backup.*``) that
    says why, ``params`` fill it; ``str()`` is the English text."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key = f"cli.backup.{key}"
        self.params = params
        super().__init__(t("en", self.key, **params))


def backup_database(source: Path, destination: Path, *, overwrite: bool = False) -> int:
    """Copy ``source`` to ``destination`` consistently; returns the number of cards copied.

    The copy is written next to the destination and renamed into place only once it passed an
    integrity check, so a failed or interrupted backup never leaves a half-written file behind.
    """
    if not source.exists():
        raise BackupError("no_database", path=source)
    if destination.exists() and not overwrite:
        raise BackupError("exists", path=destination)
    partial = destination.with_name(destination.name + ".partial")
    try:
        partial.unlink(missing_ok=True)
        create_private(partial)  # and its folder, 0700, if missing
        with (
            closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as src,
            closing(sqlite3.connect(partial)) as dst,
        ):
            src.execute("PRAGMA busy_timeout = 5000")
            src.backup(dst)  # one step: a consistent snapshot even while the bot writes
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            (status,) = dst.execute("PRAGMA integrity_check").fetchone()
            if status != "ok":
                raise BackupError("integrity", status=status)
            (cards,) = dst.execute("SELECT count(*) FROM cards").fetchone()
        partial.replace(destination)
    except sqlite3.Error as exc:
        raise BackupError("sqlite", path=source, error=exc) from None
    except OSError as exc:
        raise BackupError("write", path=destination, error=exc.strerror or exc) from None
    finally:
        partial.unlink(missing_ok=True)
    return int(cards)
