"""Online backup of the SQLite database with SQLite's backup API (safe while the bot runs)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from bot.i18n import t


class BackupError(Exception):
    """The backup could not be made. ``key`` names the catalogue text (``cli.backup.*``) that
    says why, ``params`` fill it; ``str()`` is the English text."""

    def __init__(self, key: str, **params: Any) -> None:
        self.key = f"cli.backup.{key}"
        self.params = params
        super().__init__(t("en", self.key, **params))


def _create_private(path: Path) -> None:
    """An empty file only its owner can read (SQLite keeps the mode of a file it opens)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


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
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        _create_private(partial)
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
