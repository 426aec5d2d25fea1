"""``python -m bot``: help, and one clear line (exit status 2) for a bad or missing setting."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from cards_util import bad_luhn, iccid

from bot.logs import RedactToken
from storage.sqlite import SqliteStorage

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "TIMEZONE", "LANGUAGE"}}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_run_again_hint_names_the_project_venv_as_the_readme_does(tmp_path: Path) -> None:
    if not Path(sys.executable).absolute().is_relative_to(ROOT / ".venv"):
        pytest.skip("the tests run outside the project's venv")
    sheet = tmp_path / "cards.csv"
    sheet.write_text(f"ICCID,到期日\n{iccid(1)},2027-01-31\n8986,2027-02-28\n", encoding="utf-8")
    asyncio.run(known_chat(tmp_path / "db.sqlite3", 42))
    env = {"DATABASE_PATH": str(tmp_path / "db.sqlite3"), "LANGUAGE": "en"}
    # from the project's directory, where the README's commands are run
    result = run(["import", str(sheet), "--chat", "42", "--no-progress"], ROOT, **env)
    assert result.returncode == 1, result.stdout + result.stderr
    [rejected] = tmp_path.glob("cards-*.csv")
    assert f".venv/bin/python -m bot import {rejected} --chat 42" in result.stdout


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    assert "run" in result.stdout


def test_missing_token_is_one_clear_line(tmp_path: Path) -> None:
    result = run([], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "BOT_TOKEN is not set" in result.stderr
    assert "@BotFather" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("TIMEZONE", "Mars/Base", "TIMEZONE is invalid"),
        ("LANGUAGE", "fr", "LANGUAGE is invalid"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL is invalid"),
    ],
)
def test_invalid_setting_names_itself(tmp_path: Path, name: str, value: str, says: str) -> None:
    result = run([], tmp_path, BOT_TOKEN="1:x", **{name: value})
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_settings_are_read_from_dot_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TIMEZONE=Nowhere/Land\n", encoding="utf-8")
    result = run([], tmp_path, BOT_TOKEN="1:x")
    assert "TIMEZONE is invalid" in result.stderr


def test_token_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    token = "123456:SECRET-abc"
    logger = logging.getLogger("httpx")
    caplog.handler.addFilter(RedactToken(token))
    with caplog.at_level(logging.WARNING, logger="httpx"):
        logger.warning('HTTP Request: POST https://api.telegram.org/bot%s/getMe "200"', token)
    assert token not in caplog.text
    assert "<BOT_TOKEN>" in caplog.text


async def known_chat(database: Path, chat_id: int) -> None:
    storage = await SqliteStorage.open(database)
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    await storage.close()


@pytest.mark.parametrize(
    ("language", "says"),
    [("zh_CN", "在这个文件里改好这些行"), ("en", "Fix those rows in that file")],
)
def test_import_tells_the_operator_to_fix_the_rejected_rows_and_run_it_again(
    tmp_path: Path, language: str, says: str
) -> None:
    bad = "8986001234"
    sheet = tmp_path / "cards.csv"
    sheet.write_text(f"ICCID,到期日\n{iccid(1)},2027-01-31\n{bad},2027-02-28\n", encoding="utf-8")
    env = {"DATABASE_PATH": str(tmp_path / "db.sqlite3"), "LANGUAGE": language}
    asyncio.run(known_chat(tmp_path / "db.sqlite3", 42))  # the chat has used the bot
    first = run(["import", str(sheet), "--chat", "42", "--no-progress"], tmp_path, **env)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "/import" not in first.stdout  # the chat's wording: nothing is attached here
    assert says in first.stdout
    [rejected] = tmp_path.glob("cards-*.csv")
    # the interpreter running it, not a bare "python" (maybe one without the bot's packages)
    [command] = [line for line in first.stdout.splitlines() if " -m bot import" in line]
    argv = shlex.split(command[command.index(sys.executable) :])
    assert argv == [sys.executable, "-m", "bot", "import", str(rejected), "--chat", "42"]
    # Done as told: the fixed file imports; the card imported the first time is not added twice.
    rejected.write_text(
        rejected.read_text(encoding="utf-8").replace(bad, iccid(2)), encoding="utf-8"
    )
    again = run([*argv[3:], "--no-progress"], tmp_path, **env)
    assert again.returncode == 0, again.stdout + again.stderr
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM cards WHERE chat_id = 42").fetchone() == (2,)


def test_a_command_line_import_names_the_cards_and_leaves_an_edit_trail(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    env = {"DATABASE_PATH": str(database), "LANGUAGE": "en"}
    asyncio.run(known_chat(database, 42))
    first = tmp_path / "cards.csv"
    first.write_text(f"ICCID,expiry,carrier\n{iccid(1)},2027-01-31,\n{iccid(2)},2027-06-30,\n")
    added = run(["import", str(first), "--chat", "42", "--no-progress"], tmp_path, **env)
    assert added.returncode == 0, added.stdout + added.stderr
    renewal = tmp_path / "renewal.csv"
    renewal.write_text(
        f"ICCID,expiry\n{iccid(1)},2028-01-31\n{iccid(2)},2027-01-01\n{bad_luhn(3)},2027-01-01\n"
    )
    command = ["import", str(renewal), "--chat", "42", "--no-progress"]
    second = run(command, tmp_path, **env)
    assert second.returncode == 1, second.stdout + second.stderr  # a row left as older
    for line in (
        "⏪ 1 row was not imported: its expiry is earlier than SimWatch's.",
        f"Row 3, {iccid(2)}: file 2027-01-01, SimWatch 2027-06-30",  # in full: the operator's
        f"Row 4, {bad_luhn(3)}",
        "run again with --apply-older to import that row too.",
    ):
        assert line in second.stdout
    assert "(1)" not in second.stdout
    applied = run([*command, "--apply-older"], tmp_path, **env)
    assert "1 card's expiry was moved earlier" in applied.stdout
    with closing(sqlite3.connect(database)) as db:
        carriers = db.execute("SELECT carrier FROM cards WHERE chat_id = 42 ORDER BY id").fetchall()
        trail = db.execute(
            "SELECT c.iccid, e.field, e.old_value, e.new_value, e.by_user_id, e.by_name "
            "FROM card_edits e JOIN cards c ON c.id = e.card_id ORDER BY e.id"
        ).fetchall()
    assert carriers == [("cmcc",), ("cmcc",), ("cmcc",)]  # the prefix 898600 names it
    assert trail == [
        (iccid(1), "expiry", "2027-01-31", "2028-01-31", None, "import"),
        (iccid(2), "expiry", "2027-06-30", "2027-01-01", None, "import"),
    ]
