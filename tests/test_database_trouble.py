"""A database the operator has to fix, as every ``python -m bot`` command meets it (a
subprocess, the emulator as Telegram): one line naming DATABASE_PATH and exit 2, never a
traceback; old installs' database files made private on open; the shell's log redacted; a dry
run that tells whether the real run could send."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from test_operator_commands import WRONG, a_database, emulator, run, telegram

from bot.emulator import BotApiEmulator
from storage.errors import DatabaseUnusableError, database_errors
from storage.sqlite import SqliteStorage

__all__ = ["emulator"]  # the fixture, used by name

COMMANDS = {
    "run": [],
    "remind": ["remind", "--date", "2026-11-28"],
    "dry run": ["remind", "--dry-run"],
    "import": ["import", "cards.csv", "--chat", "42", "--no-progress"],
    "export": ["export", "--chat", "42"],
    "shell": ["shell"],
}


def too_new(tmp_path: Path) -> Path:
    path = tmp_path / "new" / "simwatch.sqlite3"
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 99")
    path.chmod(0o600)
    path.parent.chmod(0o700)
    return path


# (DATABASE_PATH, what the line says: Chinese, the default operator language)
PATHS = {
    "a folder": (lambda tmp: tmp, "打不开数据库"),
    "no such folder": (lambda tmp: Path("/proc/nope/db.sqlite3"), "DATABASE_PATH"),
    "not a database": (lambda tmp: Path("/proc/version"), "DATABASE_PATH"),
    "a schema too new": (too_new, "结构版本是 99"),
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize("where", PATHS.values(), ids=PATHS.keys())
async def test_an_unusable_database_is_one_line_naming_database_path_and_exit_2(
    tmp_path: Path, emulator: BotApiEmulator, command: list[str], where: tuple[object, str]
) -> None:
    make, says = where
    assert callable(make)
    database: Path = make(tmp_path)
    (tmp_path / "cards.csv").write_text("ICCID,到期日\n89860000000000000019,2027-01-31\n")
    code, out, err = await run(
        tmp_path, *command, DATABASE_PATH=str(database), **telegram(emulator)
    )
    assert code == 2, out + err
    assert "Traceback" not in out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1, out + err
    assert "DATABASE_PATH" in lines[0]
    assert str(database) in lines[0]
    assert says in lines[0]


async def test_the_line_is_in_the_operator_language(tmp_path: Path) -> None:
    code, _out, err = await run(
        tmp_path, "export", "--chat", "1", DATABASE_PATH=str(tmp_path), LANGUAGE="en"
    )
    assert code == 2
    assert err.startswith(f"simwatch: can't open the database {tmp_path} (DATABASE_PATH)")


@pytest.fixture
def read_only_database(tmp_path: Path) -> Iterator[Path]:
    """A database this user can't write: read-only modes, or (for root) an immutable file."""
    database = tmp_path / "data" / "simwatch.sqlite3"
    asyncio.run(a_database(database))
    for end in ("-wal", "-shm"):
        database.with_name(database.name + end).unlink(missing_ok=True)
    if os.geteuid() != 0:
        database.chmod(0o400)
        database.parent.chmod(0o500)
        try:
            yield database
        finally:
            database.parent.chmod(0o700)
        return
    if subprocess.run(["chattr", "+i", str(database)], check=False).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield database
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
async def test_a_read_only_database_is_one_line_and_exit_2(
    read_only_database: Path, tmp_path: Path, emulator: BotApiEmulator, command: list[str]
) -> None:
    (tmp_path / "cards.csv").write_text("ICCID,到期日\n89860000000000000019,2027-01-31\n")
    code, out, err = await run(
        tmp_path, *command, DATABASE_PATH=str(read_only_database), **telegram(emulator)
    )
    assert code == 2, out + err
    assert "Traceback" not in out + err
    (line,) = [line for line in (out + err).splitlines() if line.strip()]
    assert line.startswith(
        f"simwatch：数据库 {read_only_database}（DATABASE_PATH）对当前用户是只读的"
    )


def test_sqlite_s_read_only_error_is_told_as_such(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (x)")
    with (
        closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db,
        pytest.raises(DatabaseUnusableError) as caught,
        database_errors(),
    ):
        db.execute("INSERT INTO t VALUES (1)")
    assert caught.value.key == "cli.database.read_only"


def test_a_mistake_in_the_program_keeps_its_traceback() -> None:
    with (
        closing(sqlite3.connect(":memory:")) as db,
        pytest.raises(sqlite3.OperationalError),
        database_errors(),
    ):
        db.execute("SELEC 1")


# --- an old install's files made private -----------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def world_readable_install(folder: Path) -> Path:
    """A database as an install from before files were private left it: 0644 in 0755."""
    database = folder / "simwatch.sqlite3"
    await a_database(database)
    with closing(sqlite3.connect(database)) as db:  # a -wal and -shm left behind, as a kill does
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("UPDATE cards SET note = 'x'")
        os.chmod(database, 0o644)
        for end in ("-wal", "-shm"):
            os.chmod(database.with_name(database.name + end), 0o644)
        os.chmod(folder, 0o755)
        (folder / "simwatch.conversations.pickle").write_bytes(b"")
    return database


async def test_an_old_install_s_database_is_made_private_by_the_next_run(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    database = await world_readable_install(tmp_path / "data")
    code, out, err = await run(tmp_path, "remind", "--date", "2026-11-28", **telegram(emulator))
    assert code == 0, out + err
    files = [database, *(database.with_name(database.name + e) for e in ("-wal", "-shm"))]
    assert {p.name: mode(p) for p in files if p.exists()} == {
        p.name: 0o600 for p in files if p.exists()
    }
    assert mode(database.parent) == 0o700  # it holds nothing but the bot's files
    assert err.count("made the database's files private") == 1
    again = await run(tmp_path, "remind", "--date", "2026-11-28", **telegram(emulator))
    assert "made the database's files private" not in again[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


async def test_a_shared_folder_or_home_keeps_its_mode(tmp_path: Path, home: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    in_shared = await world_readable_install(shared)
    (shared / "notes.txt").write_text("someone else's")
    in_home = await world_readable_install(home)
    for database in (in_shared, in_home):
        storage = await SqliteStorage.open(database)
        await storage.close()
        assert mode(database) == 0o600
        assert mode(database.parent) == 0o755


async def test_a_file_that_is_no_database_is_not_touched(tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite3"  # DATABASE_PATH naming the wrong file
    text.write_text("not a database")
    text.chmod(0o644)
    with pytest.raises(DatabaseUnusableError), database_errors():
        await SqliteStorage.open(text)
    assert mode(text) == 0o644


# --- the shell's log --------------------------------------------------------------------------


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("level", ["WARNING", "DEBUG"])
def test_the_shell_s_log_redacts_the_token(
    root_logging: None, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    from bot.shell.logs import quiet_logging

    quiet_logging(level, {"55:SHELL-SECRET-token": "BOT_TOKEN"})
    log = logging.getLogger("bot.test")
    log.warning("GET https://api.telegram.org/bot55:SHELL-SECRET-token/getMe failed")
    try:
        raise RuntimeError("bot55%3ASHELL-SECRET-token refused")
    except RuntimeError:
        log.exception("sending failed")
    err = capsys.readouterr().err
    assert "SHELL-SECRET" not in err
    assert "bot<BOT_TOKEN>/getMe" in err
    assert "RuntimeError: bot<BOT_TOKEN> refused" in err
    if level == "WARNING":  # one line per record still
        assert "Traceback" not in err


# --- a dry run and the token ------------------------------------------------------------------


async def test_a_dry_run_with_a_rejected_token_says_so_and_exits_2(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    await a_database(tmp_path / "data" / "simwatch.sqlite3")
    code, out, err = await run(
        tmp_path, "remind", "--dry-run", "--date", "2026-11-28", **telegram(emulator, WRONG)
    )
    assert code == 2, out + err
    assert "试运行" in out  # the messages are still shown
    assert err.strip() == "simwatch：Telegram 拒绝了 BOT_TOKEN，请在 @BotFather 核对 token。"
    good = await run(tmp_path, "remind", "--dry-run", "--date", "2026-11-28", **telegram(emulator))
    assert good[0] == 0, good
    assert emulator.calls_to("sendMessage") == []  # neither dry run sent anything


async def test_a_dry_run_without_a_token_says_a_real_run_could_not_send(tmp_path: Path) -> None:
    await a_database(tmp_path / "data" / "simwatch.sqlite3")
    code, out, err = await run(tmp_path, "remind", "--dry-run", "--date", "2026-11-28")
    assert code == 0, out + err
    assert "试运行" in out
    assert "没有设置 BOT_TOKEN" in err
