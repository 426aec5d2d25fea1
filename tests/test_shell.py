"""``python -m bot shell``: the terminal chat, end to end, through transcripts.

Each ``tests/transcripts/NAME.txt`` is a shell script (what a person would type; ``#`` lines
are comments); ``NAME.expected.txt`` is exactly what the shell prints for it, run in-process
as ``python -m bot shell --temp --date 2026-11-25 < NAME.txt`` would run it. They double as
readable examples of the bot.

After a deliberate change of texts or flows, regenerate the expected outputs and review the diff:

    UPDATE_TRANSCRIPTS=1 .venv/bin/python -m pytest tests/test_shell.py
    git diff tests/transcripts/
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest

from bot.config import Settings, SettingsError
from bot.emulator import ChatEvent, StoredFile
from bot.shell import ShellOptions, add_shell_parser, run_session, run_shell
from bot.shell.clock import ShellClock
from bot.shell.commands import (
    Remind,
    SendFile,
    SetAdmin,
    ShellInputError,
    SwitchGroup,
    SwitchUser,
    UsageError,
    parse_command,
)
from bot.shell.render import event_lines, keyboard_lines, pressable
from bot.shell.session import keep_file

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = Path(__file__).parent / "transcripts"
SCRIPTS = sorted(p for p in TRANSCRIPTS.glob("*.txt") if not p.name.endswith(".expected.txt"))
DAY = date(2026, 11, 25)
UPDATE = os.environ.get("UPDATE_TRANSCRIPTS") == "1"


def settings(tmp_path: Path) -> Settings:
    """Settings as on a fresh clone: no .env, no token; the database is never this file
    (``--temp``) unless a test says so."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' init-only option
        bot_token=None,
        database_path=tmp_path / "simwatch.sqlite3",
        timezone="Asia/Shanghai",
        language="zh_CN",
        log_level="WARNING",
    )


async def run_script(
    script: str,
    tmp_path: Path,
    options: ShellOptions | None = None,
    *,
    interactive: bool = False,
) -> str:
    out = io.StringIO()
    code = await run_session(
        settings(tmp_path),
        options or ShellOptions(temporary=True, day=DAY),
        stdin=io.StringIO(script),
        stdout=out,
        interactive=interactive,
    )
    assert code == 0
    return out.getvalue()


def load(script: Path) -> tuple[str, Path, str | None]:
    """The script, where its expected output lives, and that output if recorded yet."""
    expected = script.with_suffix(".expected.txt")
    recorded = expected.read_text("utf-8") if expected.exists() else None
    return script.read_text("utf-8"), expected, recorded


def record(expected: Path, printed: str) -> None:
    expected.write_text(printed, "utf-8")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
async def test_transcript(script: Path, tmp_path: Path) -> None:
    text, expected_file, expected = load(script)
    printed = await run_script(text, tmp_path)
    if UPDATE or expected is None:
        record(expected_file, printed)
        if not UPDATE:
            pytest.fail(f"wrote {expected_file.name}: review it, then run the tests again")
        return
    assert printed == expected


async def test_the_temporary_database_is_thrown_away_and_the_real_one_kept(
    tmp_path: Path,
) -> None:
    add = "/addcard 89860012345678901238 2027-01-31 移动 收银台1\n"
    await run_script(add, tmp_path)
    assert not (tmp_path / "simwatch.sqlite3").exists()

    kept = ShellOptions(temporary=False, day=DAY)
    await run_script(add, tmp_path, kept)
    assert (tmp_path / "simwatch.sqlite3").exists()
    listing = await run_script("/cards\n", tmp_path, kept)  # a new session, the same card
    assert "收银台1" in listing


async def test_interactive_prompts_follow_the_user_and_the_chat(tmp_path: Path) -> None:
    printed = await run_script(
        ":group\n:admin\n:lang en\n:private\n",
        tmp_path,
        ShellOptions(temporary=True),
        interactive=True,
    )
    assert printed.startswith("💻 流量卡管家 · 终端试用\n")
    assert f"今天：{date.today().isoformat()}" in printed or "（系统时钟）" in printed
    assert "王老板 › " in printed
    assert "王老板 @ 门店群 › " in printed
    assert "王老板 @ 门店群（管理员） › " in printed
    assert "王老板 @ Shop group (admin) › " not in printed  # the group keeps its name
    assert "王老板 @ 门店群 (admin) › " in printed  # the shell now speaks English
    assert "> " not in printed  # typed lines are not echoed: the terminal shows them
    assert printed.endswith("王老板 › \n👋 Bye.\n")


class HeldInput(io.StringIO):
    """Its lines, then a reader held at the prompt (a person thinking) until released."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.at_prompt = threading.Event()
        self.released = threading.Event()

    def readline(self, size: int | None = -1) -> str:
        line = super().readline(size)
        if not line:
            self.at_prompt.set()
            self.released.wait(5)
        return line


async def test_interrupting_a_session_stops_the_bot_and_the_emulator(tmp_path: Path) -> None:
    """Ctrl-C cancels the session: polling, application, database and emulator still stop."""
    stdin = HeldInput("/addcard 89860012345678901238 2027-01-31 移动 收银台1\n")
    out = io.StringIO()
    session = asyncio.create_task(
        run_session(
            settings(tmp_path),
            ShellOptions(day=DAY),
            stdin=stdin,
            stdout=out,
            interactive=False,
        )
    )
    assert await asyncio.to_thread(stdin.at_prompt.wait, 5)
    session.cancel()
    with pytest.raises(asyncio.CancelledError):
        await session
    stdin.released.set()
    assert "已保存" in out.getvalue()
    # the database was closed cleanly: another session opens it and finds the card
    again = await run_script("/cards\n", tmp_path, ShellOptions(day=DAY))
    assert "收银台1" in again


async def test_a_file_is_sent_to_the_bot_as_a_document(tmp_path: Path) -> None:
    upload = tmp_path / "cards.csv"
    upload.write_text("iccid,expiry\n89860012345678901238,2027-01-31\n", "utf-8")
    printed = await run_script(f":file {upload}\n/start\n", tmp_path)
    assert "💻" not in printed  # no complaint; the bot itself ignores documents for now
    assert "你好，王老板" in printed


async def test_options_pick_the_user_and_their_language(tmp_path: Path) -> None:
    options = ShellOptions(temporary=True, day=DAY, language_code="en", user_id=4242)
    printed = await run_script("/start\n:user 4242\n", tmp_path, options)
    assert "Hi Alice!" in printed
    assert "You are now Alice (id 4242, Telegram language en)" in printed


def test_files_from_the_bot_show_their_size_and_are_kept_without_overwriting(
    tmp_path: Path,
) -> None:
    stored = StoredFile("f1", "u1", "documents/file_1.csv", b"a,b\n", filename="cards.csv")
    event = ChatEvent("document", 1001, 7, text="导出的卡片", file=stored)
    assert event_lines(event, "en") == ["📎 cards.csv (4 bytes)", "导出的卡片"]
    first, second = keep_file(tmp_path, stored), keep_file(tmp_path, stored)
    assert (first.name, second.name) == ("cards.csv", "cards-2.csv")
    assert second.read_bytes() == b"a,b\n"
    assert event_lines(event, "zh_CN", second)[1] == f"   已保存到 {second}"


def test_edits_deletions_and_button_answers_read_as_a_chat_would_show_them() -> None:
    edit = ChatEvent(
        "edit",
        1001,
        3,
        text="✅ 已保存\n第二行",
        reply_markup={"inline_keyboard": [[{"text": "查看这张卡", "callback_data": "cd:1"}]]},
    )
    assert event_lines(edit, "en") == ["✏️ (edited) ✅ 已保存", "第二行", "  [1] 查看这张卡"]
    gone = ChatEvent("delete", 1001, 3, text="一条很长很长的消息" * 5)
    assert event_lines(gone, "en") == ["🗑 (deleted) " + ("一条很长很长的消息" * 5)[:29] + "…"]
    alert = ChatEvent("callback_answer", 1001, 3, text="只有群管理员可以", show_alert=True)
    toast = ChatEvent("callback_answer", 1001, 3, text="已复制")
    silent = ChatEvent("callback_answer", 1001, 3)
    assert event_lines(alert, "en") == ["❗ Alert: 只有群管理员可以"]
    assert event_lines(toast, "en") == ["💬 已复制"]
    assert event_lines(silent, "en") == []


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (":user 1002", SwitchUser(1002)),
        (":user 1002 小 李 en", SwitchUser(1002, "小 李", "en")),
        (":USER 7 zh", SwitchUser(7, None, "zh-hans")),
        (":group", SwitchGroup()),
        (":group -100200", SwitchGroup(-100200)),
        (":admin", SetAdmin(admin=True)),
        (":member", SetAdmin(admin=False)),
        (":remind", Remind()),
        (":remind 2026-12-01", Remind(date(2026, 12, 1))),
        (":file  my cards.csv ", SendFile(Path("my cards.csv"))),
    ],
)
def test_shell_commands_parse(line: str, parsed: object) -> None:
    assert parse_command(line) == parsed


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (":user 0", "error.user_id"),
        (":group 5", "error.group_id"),
        (":group -1 -2", "error.usage"),
        (":admin now", "error.usage"),
        (":lang", "error.usage"),
        (":lang de", "error.lang"),
        (":date", "error.usage"),
        (":date 25/11/2026", "error.date"),
        (":frobnicate", "error.unknown"),
    ],
)
def test_bad_shell_commands_name_their_mistake(line: str, error: str) -> None:
    with pytest.raises(ShellInputError) as caught:
        parse_command(line)
    assert caught.value.key == error
    assert caught.value.explain("en").startswith("💻 ")
    if isinstance(caught.value, UsageError):
        assert "Usage: :" in caught.value.explain("en")


def test_buttons_are_numbered_across_rows_and_links_are_not_pressable() -> None:
    markup = {
        "inline_keyboard": [
            [
                {"text": "🔄 续费", "callback_data": "rn:1"},
                {"text": "✏️ 编辑", "callback_data": "ed:1"},
            ],
            [{"text": "帮助", "url": "https://example.com"}, {"text": "◀", "callback_data": "bk"}],
        ]
    }
    assert keyboard_lines(markup) == ["  [1] 🔄 续费  [2] ✏️ 编辑", "  [🔗 帮助]  [3] ◀"]
    assert pressable(markup) == ["rn:1", "ed:1", "bk"]
    assert keyboard_lines(None) == []


def test_a_fixed_day_is_ten_in_the_morning_where_the_bot_is() -> None:
    clock = ShellClock("Asia/Shanghai", DAY)
    assert clock.fixed
    assert clock.today() == DAY
    assert clock.now().isoformat() == "2026-11-25T02:00:00+00:00"
    clock.fix(date(2026, 12, 31))
    assert clock.today() == date(2026, 12, 31)
    assert not ShellClock("Asia/Shanghai").fixed


def test_the_shell_subcommand_parses_its_options() -> None:
    root = argparse.ArgumentParser(prog="python -m bot")
    add_shell_parser(root.add_subparsers(dest="command"))
    args = root.parse_args(["shell", "--temp", "--date", "2026-11-25", "--lang", "en"])
    assert (args.command, args.temp, args.date, args.lang) == ("shell", True, DAY, "en")
    assert args.user_id == 1001
    with pytest.raises(SystemExit):
        root.parse_args(["shell", "--date", "tomorrow"])


def test_bad_settings_reach_the_caller(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("TIMEZONE", "Mars/Olympus_Mons")
    root = argparse.ArgumentParser()
    add_shell_parser(root.add_subparsers(dest="command"))
    with pytest.raises(SettingsError, match="TIMEZONE"):
        run_shell(root.parse_args(["shell", "--temp"]))


def test_the_real_entry_point_runs_a_script_quietly(tmp_path: Path) -> None:
    """As ``python -m bot shell --temp < script`` will: real stdin, logging, exit status."""
    entry = (
        "import argparse, sys\n"
        "from bot.shell import add_shell_parser, run_shell\n"
        "root = argparse.ArgumentParser()\n"
        "add_shell_parser(root.add_subparsers(dest='command'))\n"
        "sys.exit(run_shell(root.parse_args(sys.argv[1:])))\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("BOT_TOKEN", "DATABASE_PATH", "TIMEZONE", "LANGUAGE", "LOG_LEVEL")
    }
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", entry, "shell", "--temp", "--date", "2026-11-25"],
        input="# a comment\n\n/start\n:nosuch\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("> /start\n你好，王老板！")
    assert "> :nosuch\n💻 没有终端命令「:nosuch」" in done.stdout
    assert done.stderr == ""
    assert not (tmp_path / "data").exists()  # --temp: DATABASE_PATH untouched


async def test_the_shell_plays_a_wecom_user(tmp_path: Path) -> None:
    script = "\n".join(
        [
            "/start",
            "/addcard 89860012345678901238 2026-12-31 移动 收银台1",
            "/cards",
            "1",  # the card's button, pressed by its number
            ":group",
            "/start",
        ]
    )
    out = await run_script(script, tmp_path, ShellOptions(temporary=True, day=DAY, channel="wecom"))
    assert "每日提醒会发到这个单聊" in out
    assert "💳 流量卡详情" in out
    assert "[1] 🔄 续费" in out
    assert "群里第一个和我说话的人（shell-user）是这里的管理员" in out
