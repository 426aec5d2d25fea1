"""Online backup of the SQLite database with SQLite's backup API (safe while the bot runs)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


class BackupError(Exception):
    """The backup could not be made; the message says why."""


def backup_database(source: Path, destination: Path, *, overwrite: bool = False) -> int:
    """Copy ``source`` to ``destination`` consistently; returns the number of cards copied.

    The copy is written next to the destination and renamed into place only once it passed an
    integrity check, so a failed or interrupted backup never leaves a half-written file behind.
    """
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    if destination.exists() and not overwrite:
        raise BackupError(f"{destination} exists already (use --force to replace it)")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        with (
            closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as src,
            closing(sqlite3.connect(partial)) as dst,
        ):
            src.execute("PRAGMA busy_timeout = 5000")
            src.backup(dst)  # one step: a consistent snapshot even while the bot writes
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            (status,) = dst.execute("PRAGMA integrity_check").fetchone()
            if status != "ok":
                raise BackupError(f"the copy failed its integrity check: {status}")
            (cards,) = dst.execute("SELECT count(*) FROM cards").fetchone()
        partial.replace(destination)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite could not copy {source}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return int(cards)
