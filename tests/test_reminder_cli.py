"""``python -m bot remind``: the parser, a dry run that changes nothing, a real run through the
emulator with its summary and exit status."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from db_rows import snapshot

from bot.clock import FixedClock
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.models import CardDraft
from bot.reminders.cli import add_remind_parser, run_remind
from bot.reminders.compose import ReminderComposer
from storage.factory import open_stores

TOKEN = "123456:TEST-TOKEN"
DAY = date(2026, 11, 25)
GROUP = -100500
ALICE = 1001


def test_parser() -> None:
    root = argparse.ArgumentParser()
    add_remind_parser(root.add_subparsers(dest="command"))
    args = root.parse_args(["remind", "--date", "2026-11-25", "--dry-run"])
    assert (args.command, args.date, args.dry_run) == ("remind", DAY, True)
    args = root.parse_args(["remind"])
    assert (args.date, args.dry_run) == (None, False)
    with pytest.raises(SystemExit):
        root.parse_args(["remind", "--date", "25/11/2026"])


@pytest.fixture
async def settings(tmp_path: Path, database_url: str | None, emulator: BotApiEmulator) -> Settings:
    path = tmp_path / "simwatch.sqlite3"
    stores = await open_stores(database_url=database_url, database_path=path)
    storage = stores.storage
    now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    for chat_id, n, days_left, label in (
        (GROUP, 1, 3, "收银台1"),
        (GROUP, 2, -4, None),
        (ALICE, 3, 0, "家里"),
    ):
        await storage.ensure_chat(chat_id, is_group=chat_id < 0)
        draft = CardDraft(
            iccid=f"89860012345678{n:06d}", expiry=DAY + timedelta(days=days_left), label=label
        )
        await storage.add_card(chat_id, draft, now)
    await stores.close()
    emulator.group_chat(GROUP, "门店群", supergroup=True)
    emulator.private_chat(emulator.user(ALICE, "Alice"))
    return Settings(
        bot_token=TOKEN,  # type: ignore[arg-type]
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=path,
        database_url=database_url,  # type: ignore[arg-type]
    )


async def _tables(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    stores = await open_stores(
        database_url=settings.database(), database_path=settings.database_path
    )
    try:
        return await snapshot(
            stores.storage, "cards", "renewals", "reminder_log", "outbox", "chat_reminders"
        )
    finally:
        await stores.close()


async def test_dry_run_prints_what_would_be_sent_and_changes_nothing(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    before = await _tables(settings)
    out = io.StringIO()
    settings_without_token = settings.model_copy(update={"bot_token": None})
    code = await run_remind(settings_without_token, on_date=DAY, dry_run=True, out=out)
    assert code == 0
    printed = out.getvalue()
    assert "试运行" in printed
    assert "流量卡到期提醒" in printed
    assert "收银台1" in printed
    assert "家里" in printed
    assert "<b>" not in printed  # terminal text, not HTML
    assert "[🔕 不再提醒]" in printed
    assert "2 个聊天将收到提醒，3 张卡需要提醒" in printed
    assert await _tables(settings) == before
    assert emulator.calls_to("sendMessage") == []


async def test_a_real_run_sends_and_summarises(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    out = io.StringIO()
    assert await run_remind(settings, on_date=DAY, dry_run=False, out=out) == 0
    assert "发送成功 2 条，失败 0 条" in out.getvalue()
    assert len(emulator.chat_messages(GROUP)) == 1
    assert len(emulator.chat_messages(ALICE)) == 1
    again = io.StringIO()
    assert await run_remind(settings, on_date=DAY, dry_run=False, out=again) == 0
    assert "发送成功 0 条" in again.getvalue()
    assert len(emulator.chat_messages(GROUP)) == 1


async def test_a_failed_delivery_fails_the_run(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    emulator.inject_fault("sendMessage", kind="400", chat_id=ALICE)
    out = io.StringIO()
    assert await run_remind(settings, on_date=DAY, dry_run=False, out=out) == 1
    printed = out.getvalue()
    assert f"发送失败：聊天 {ALICE}" in printed
    assert "发送成功 1 条，失败 1 条" in printed


async def test_messages_a_dead_sender_still_holds_are_counted_with_when_they_free_up(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    # A sender killed mid-delivery left Alice's digest claimed for 10 more minutes.
    stores = await open_stores(
        database_url=settings.database(), database_path=settings.database_path
    )
    try:
        store = stores.reminders
        now = datetime.now(UTC)
        composer = ReminderComposer(store, FixedClock(now), default_language="zh_CN")
        await composer.compose_for_date(DAY)
        pending = await store.pending(now=now, after_id=0, limit=10)
        [alices] = [message for message in pending if message.chat_id == ALICE]
        until = now + timedelta(minutes=10)
        assert await store.claim(alices.id, now=now, until=until)
    finally:
        await stores.close()

    out = io.StringIO()
    assert await run_remind(settings, on_date=DAY, dry_run=False, out=out) == 0
    printed = out.getvalue()
    assert "发送成功 1 条，失败 0 条" in printed
    local = until.astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"有 1 条消息被另一个（或已崩溃的）发送进程占用到 {local:%Y-%m-%d %H:%M:%S}" in printed
    assert emulator.chat_messages(ALICE) == []
    assert len(emulator.chat_messages(GROUP)) == 1

    english = io.StringIO()
    settings_en = settings.model_copy(update={"language": "en"})
    assert await run_remind(settings_en, on_date=DAY, dry_run=True, out=english) == 0
    assert "1 message is held by another (or a crashed) sender until" in english.getvalue()
