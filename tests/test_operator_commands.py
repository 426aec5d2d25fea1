"""Every ``python -m bot`` command as an operator runs it (a subprocess, the emulator as
Telegram): the same log set-up with secrets redacted, one line and exit 2 for a bad or rejected
setting, private files, and the README's first steps (``.env.example`` copied as it is)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cards_util import iccid

from bot.emulator import BotApiEmulator
from bot.models import CardDraft
from storage.sqlite import SqliteStorage

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "987654:SECRET-TOKEN-abc"
WRONG = "111111:WRONG-SECRET-xyz"
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator(TOKEN) as emu:
        yield emu


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN", "LANGUAGE", "TIMEZONE"}}
    return {
        **kept,
        "PYTHONPATH": str(ROOT),
        "DATABASE_PATH": str(tmp_path / "data" / "simwatch.sqlite3"),
        **settings,
    }


async def run(tmp_path: Path, *args: str, **settings: str) -> tuple[int, str, str]:
    """``python -m bot ARGS`` in ``tmp_path``; (exit status, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=tmp_path,
        env=environment(tmp_path, **settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def a_database(path: Path, chat_id: int = 42) -> None:
    storage = await SqliteStorage.open(path)
    await storage.ensure_chat(chat_id, is_group=False)
    await storage.add_card(chat_id, CardDraft(iccid=iccid(1), expiry=date(2026, 11, 28)), NOW)
    await storage.close()


def telegram(emulator: BotApiEmulator, token: str = TOKEN, **more: str) -> dict[str, str]:
    return {
        "BOT_TOKEN": token,
        "TELEGRAM_BASE_URL": emulator.base_url,
        "TELEGRAM_BASE_FILE_URL": emulator.base_file_url,
        **more,
    }


# --- secrets and one-line errors -------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["remind"], ["remind", "--date", "2026-11-28"]])
async def test_a_rejected_token_is_one_line_and_exit_2(
    tmp_path: Path, emulator: BotApiEmulator, command: list[str]
) -> None:
    await a_database(tmp_path / "data" / "simwatch.sqlite3")
    code, out, err = await run(tmp_path, *command, **telegram(emulator, WRONG, LOG_LEVEL="DEBUG"))
    assert code == 2, out + err
    assert "Traceback" not in err
    assert "WRONG-SECRET" not in out + err
    assert [line for line in err.splitlines() if line.startswith("simwatch")] == [
        "simwatch：Telegram 拒绝了 BOT_TOKEN，请在 @BotFather 核对 token。"
    ]


@pytest.mark.parametrize("middle", ["/./", "/x/../", "//"])
async def test_a_base_url_aiohttp_normalises_does_not_leak_the_token(
    tmp_path: Path, emulator: BotApiEmulator, middle: str
) -> None:
    # A mistyped scheme: aiohttp's error quotes the URL, as normalised (without "/./" …).
    base = f"htps://127.0.0.1{middle}bot"
    code, out, err = await run(
        tmp_path, **telegram(emulator, TOKEN, TELEGRAM_BASE_URL=base, LOG_LEVEL="DEBUG")
    )
    assert code == 1, out + err
    assert "SECRET" not in out + err
    assert "连不上 Telegram" in err


async def test_remind_logs_as_the_bot_does_with_the_token_redacted(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    await a_database(tmp_path / "data" / "simwatch.sqlite3")
    emulator.private_chat(emulator.user(42, "Alice"))
    code, out, err = await run(
        tmp_path, "remind", "--date", "2026-11-28", **telegram(emulator, LOG_LEVEL="DEBUG")
    )
    assert code == 0, out + err
    assert "DEBUG" in err, "LOG_LEVEL reaches remind"
    assert "SECRET" not in out + err
    assert "发送成功 1 条" in out
    quiet = await run(tmp_path, "remind", **telegram(emulator, LOG_LEVEL="WARNING"))
    assert "DEBUG" not in quiet[2]
    assert "INFO" not in quiet[2]


@pytest.mark.parametrize(
    "command", [["import", "cards.csv", "--chat", "42"], ["export", "--chat", "42"]]
)
async def test_import_and_export_log_with_every_secret_redacted(
    tmp_path: Path, command: list[str]
) -> None:
    await a_database(tmp_path / "data" / "simwatch.sqlite3")
    (tmp_path / "cards.csv").write_text(f"ICCID,到期日\n{iccid(2)},2027-01-31\n", "utf-8")
    code, out, err = await run(
        tmp_path,
        *command,
        "--no-progress" if command[0] == "import" else "--format=csv",
        BOT_TOKEN=TOKEN,
        LOG_LEVEL="DEBUG",
    )
    assert code == 0, out + err
    assert "DEBUG" in err, "LOG_LEVEL reaches the command"  # asyncio's and aiosqlite's lines
    assert "SECRET" not in out + err


def test_one_filter_redacts_every_secret_setting() -> None:
    import logging

    from pydantic import SecretStr

    from bot.config import Settings
    from bot.logs import RedactSecrets, redact, register_secrets

    class MoreSecrets(Settings):
        webhook_secret: SecretStr | None = None  # a later issue's secret: a SecretStr field

    settings = MoreSecrets(bot_token="1:TOKEN-value", webhook_secret="hook-secret-value")  # type: ignore[arg-type]
    assert settings.secrets() == {
        "1:TOKEN-value": "BOT_TOKEN",
        "hook-secret-value": "WEBHOOK_SECRET",
    }
    register_secrets(settings.secrets())
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "%s and %s", None, None)
    record.args = ("https://h/bot1%3ATOKEN-value/getMe", "hook-secret-value")
    RedactSecrets().filter(record)
    assert record.getMessage() == "https://h/bot<BOT_TOKEN>/getMe and <WEBHOOK_SECRET>"
    assert redact("key=hook-secret-value") == "key=<WEBHOOK_SECRET>"


def test_push_robots_credentials_are_redacted_wherever_a_line_quotes_them() -> None:
    """A pasted /push URL and a signing secret are users' data, not settings: at DEBUG,
    python-telegram-bot logs whole updates, the paste with them."""
    import logging

    from bot.logs import RedactSecrets

    pasted = (
        "/push https://oapi.dingtalk.com/robot/send?access_token=d1d1d1d1d1d1d1d1d1d1 "
        "SEC0123456789abcdef0123456789"
    )
    record = logging.LogRecord("telegram.ext", logging.DEBUG, __file__, 1, "%s", None, None)
    record.args = (f"Update(message=Message(text='{pasted}'))",)
    RedactSecrets().filter(record)
    shown = record.getMessage()
    assert "d1d1d1d1d1d1" not in shown
    assert "SEC0123456789abcdef" not in shown
    assert "access_token=<ROBOT_CREDENTIAL>" in shown
    hook = "https://open.feishu.cn/open-apis/bot/v2/hook/0a1b2c3d-aaaa-bbbb"
    wecom = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0a1b2c3d-1111-2222"
    from bot.logs import redact

    assert "0a1b2c3d" not in redact(f"{hook} {wecom}")


# --- files only their owner can read ---------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_every_file_the_bot_and_its_commands_create_is_private(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    data = tmp_path / "data"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=environment(tmp_path, **telegram(emulator)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        user = emulator.user(555, "Wang", language_code="zh-hans")
        emulator.message_update(emulator.private_chat(user), user, "/addcard")
        await emulator.wait_for_events(555, count=1, timeout=30)
        # the conversation in progress is in the database, no file of its own
        names = ("simwatch.sqlite3", "simwatch.sqlite3-wal", "simwatch.sqlite3-shm")
        assert {p.name: mode(p) for p in data.iterdir()} == dict.fromkeys(names, 0o600)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
    assert mode(data) == 0o700
    assert (await run(tmp_path, "backup", "backups/copy.sqlite3"))[0] == 0
    assert mode(tmp_path / "backups") == 0o700
    assert mode(tmp_path / "backups" / "copy.sqlite3") == 0o600
    assert (await run(tmp_path, "export", "--chat", "555", "-o", "cards.csv"))[0] == 0
    assert mode(tmp_path / "cards.csv") == 0o600


# --- first steps: .env.example, the README's commands ----------------------------------------


async def test_the_example_env_file_copied_as_it_is_works(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    # .env.example has PLAN_CATALOGUE= (empty): it means the default, not the folder ".".
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    env = {k: v for k, v in environment(tmp_path, **telegram(emulator)).items()}
    del env["DATABASE_PATH"]  # the one in .env
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        user = emulator.user(556, "Zhao", language_code="zh-hans")
        emulator.message_update(emulator.private_chat(user), user, "/start")
        (reply,) = await emulator.wait_for_events(556, count=1, timeout=30)
        assert "流量卡管家" in (reply.text or "")
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert "Is a directory" not in err.decode()
    assert (tmp_path / "data" / "simwatch.sqlite3").exists()


async def test_a_dry_run_without_a_database_says_so_and_creates_none(tmp_path: Path) -> None:
    code, _out, err = await run(tmp_path, "remind", "--dry-run")
    assert code == 2
    assert err.count("\n") == 1
    assert "还没有数据库" in err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("typed", ["2026/11/28", "2026.11.28", "20261128", "2026年11月28日"])
async def test_remind_date_is_read_as_the_bot_reads_dates(tmp_path: Path, typed: str) -> None:
    await a_database(tmp_path / "data" / "simwatch.sqlite3")
    code, out, err = await run(tmp_path, "remind", "--dry-run", "--date", typed)
    assert code == 0, out + err
    assert "1 个聊天将收到提醒，1 张卡需要提醒" in out


@pytest.mark.parametrize(
    ("language", "says"), [("zh_CN", "没看懂日期"), ("en", "I don't understand")]
)
async def test_a_bad_remind_date_is_a_friendly_error(
    tmp_path: Path, language: str, says: str
) -> None:
    code, _out, err = await run(tmp_path, "remind", "--date", "next week", LANGUAGE=language)
    assert code == 2
    assert says in err
    assert "fromisoformat" not in err


async def test_help_is_plain_text(tmp_path: Path) -> None:
    for command in ("remind", "import", "export", "backup", "shell"):
        code, out, _ = await run(tmp_path, command, "--help")
        assert code == 0
        assert "``" not in out, command


@pytest.mark.parametrize(("language", "says"), [("zh_CN", "备份到"), ("en", "backed up")])
async def test_backup_speaks_the_operators_language(
    tmp_path: Path, language: str, says: str
) -> None:
    await a_database(tmp_path / "data" / "simwatch.sqlite3")
    code, out, err = await run(tmp_path, "backup", "copy.sqlite3", LANGUAGE=language)
    assert code == 0, out + err
    assert says in out
    code, out, err = await run(tmp_path, "backup", "copy.sqlite3", LANGUAGE=language)
    assert code == 1
    assert "--force" in err
    with closing(sqlite3.connect(tmp_path / "copy.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM cards").fetchone() == (1,)


def test_the_example_iccids_people_copy_pass_the_check_digit() -> None:
    import re

    from bot.iccid import check_iccid

    sources = [ROOT / "README.md", *sorted((ROOT / "bot" / "locales").glob("*.toml"))]
    examples = {
        (path.name, number)
        for path in sources
        for number in re.findall(r"/addcard (89\d{17,18})\b", path.read_text("utf-8"))
    }
    assert examples
    assert [example for example in examples if not check_iccid(example[1]).luhn_ok] == []


@pytest.mark.parametrize(
    "command",
    [["remind", "--dry-run"], ["export", "--chat", "555"], ["backup", "copy.sqlite3"], ["remind"]],
)
async def test_a_bad_plan_catalogue_stops_every_command_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """README: a missing or invalid setting prints one line naming it and exits with status 2,
    whatever the command — not only the bot, which is the one that reads the plans."""
    code, out, err = await run(tmp_path, *command, PLAN_CATALOGUE=str(tmp_path / "nope.toml"))
    assert code == 2, (out, err)
    (line,) = err.strip().splitlines()
    assert "PLAN_CATALOGUE" in line
    assert out == ""
