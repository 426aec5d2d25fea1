"""Files only their owner can read: created private, and old ones tightened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def create_private(path: Path, *, exist_ok: bool = False) -> bool:
    """An empty file only its owner can open (0600), its missing folders made 0700; whether
    the folder had to be made. SQLite keeps the mode of a file it opens, and gives its -wal,
    -shm and -journal files the database file's mode."""
    made_folder = not path.parent.exists()
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        if not exist_ok:
            raise
    return made_folder


def _shared_folder(folder: Path) -> bool:
    """``/`` and the user's home: folders holding other things than ours, never tightened."""
    resolved = folder.resolve()
    home = os.environ.get("HOME")
    return resolved == Path(resolved.anchor) or (
        home is not None and resolved == Path(home).resolve()
    )


def only_ours(folder: Path, prefixes: tuple[str, ...]) -> bool:
    """Every entry of ``folder`` starts with one of ``prefixes`` (or with a dot before it: a
    partial write)."""
    try:
        return all(entry.name.lstrip(".").startswith(prefixes) for entry in folder.iterdir())
    except OSError:
        return False


def tighten(files: Iterable[Path], folder: Path | None = None) -> list[str]:
    """Make existing ``files`` 0600 and ``folder`` (if given and not ``/`` or ``$HOME``) 0700
    where they are more open; what was changed, as ``path (0644 → 0600)``. Files of another
    owner, which cannot be changed, are left as they are."""
    changed = []
    targets = [(path, PRIVATE_FILE) for path in files]
    if folder is not None and not _shared_folder(folder):
        targets.append((folder, PRIVATE_DIR))
    for path, wanted in targets:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & ~wanted:
                os.chmod(path, mode & wanted)
                changed.append(f"{path} ({mode:04o} → {mode & wanted:04o})")
        except OSError:  # gone, or not ours
            continue
    return changed
