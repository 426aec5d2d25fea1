"""``python -m bot remind``: the parser, a dry run that changes nothing, a real run through the
emulator with its summary and exit status."""

from __future__ import annotations

import argparse
import io
from collections.abc import AsyncIterator
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
from bot.robots.emulator import RobotEmulator
from bot.robots.models import Robot, Service
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
    assert (args.date, args.dry_run, args.trust_clock) == (None, False, False)
    assert root.parse_args(["remind", "--trust-clock"]).trust_clock
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


async def _composed_at(settings: Settings, now: datetime) -> None:
    """A pass for DAY, made (by the clock) at ``now``."""
    stores = await open_stores(
        database_url=settings.database(), database_path=settings.database_path
    )
    try:
        composer = ReminderComposer(stores.reminders, FixedClock(now), default_language="zh_CN")
        await composer.compose_for_date(DAY)
    finally:
        await stores.close()


async def test_a_run_whose_clock_is_far_after_the_database_waits_for_trust_clock(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    """The database last recorded a pass on 2026-11-25 at 10:00; a run now, days later,
    could be a clock that ran ahead: it does nothing and says how to go on."""
    await _composed_at(settings, datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
    before = await _tables(settings)
    out = io.StringIO()
    assert await run_remind(settings, on_date=None, dry_run=False, out=out) == 1
    [line] = out.getvalue().splitlines()
    assert "2026-11-25 10:00" in line
    assert "本次未做任何事" in line
    assert "--trust-clock" in line
    assert await _tables(settings) == before
    assert emulator.calls_to("sendMessage") == []
    trusted = io.StringIO()
    await run_remind(settings, on_date=None, dry_run=False, out=trusted, trust_clock=True)
    assert "提醒完成" in trusted.getvalue()
    assert "--trust-clock" not in trusted.getvalue()


async def test_a_run_soon_after_the_last_recorded_time_needs_no_trust(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    await _composed_at(settings, datetime.now(UTC) - timedelta(hours=20))
    out = io.StringIO()
    await run_remind(settings, on_date=None, dry_run=False, out=out)
    assert "--trust-clock" not in out.getvalue()
    assert "提醒完成" in out.getvalue()


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


WECOM = Robot(Service.WECOM, "0a1b2c3d-1111-2222-3333-444455556666")


@pytest.fixture
async def robots(settings: Settings) -> AsyncIterator[tuple[Settings, RobotEmulator]]:
    """The settings pointed at a robot emulator, and the group pushing to a WeCom robot."""
    async with RobotEmulator() as emulator:
        emulator.register(WECOM.service, WECOM.token)
        stores = await open_stores(
            database_url=settings.database(), database_path=settings.database_path
        )
        try:
            await stores.push.add_target(
                GROUP,
                WECOM,
                secret=None,
                source_name="门店群",
                added_by=ALICE,
                at=datetime.now(UTC),
                is_group=True,
            )
        finally:
            await stores.close()
        bases = {f"{service.value}_api_base": emulator.base(service) for service in Service}
        yield settings.model_copy(update=bases), emulator


async def test_a_dry_run_shows_what_each_robot_would_get(
    robots: tuple[Settings, RobotEmulator],
) -> None:
    settings, emulator = robots
    before = await _tables(settings)
    out = io.StringIO()
    offline = settings.model_copy(update={"bot_token": None})
    assert await run_remind(offline, on_date=DAY, dry_run=True, out=out) == 0
    printed = out.getvalue()
    assert f"聊天 {GROUP} → 企业微信机器人 {WECOM.masked}（第 1/1 条）" in printed
    assert "**流量卡到期提醒**" in printed  # the robot's markdown, as it would receive it
    assert "「门店群」里发 /renew" in printed
    assert WECOM.token not in printed
    assert await _tables(settings) == before
    assert emulator.received(WECOM.service, WECOM.token) == []


async def test_a_run_reports_each_robot(robots: tuple[Settings, RobotEmulator]) -> None:
    settings, emulator = robots
    out = io.StringIO()
    assert await run_remind(settings, on_date=DAY, dry_run=False, out=out) == 0
    assert "推送机器人：发送成功 1 条，失败 0 次。" in out.getvalue()
    assert "地址被拒绝" not in out.getvalue()
    assert len(emulator.received(WECOM.service, WECOM.token)) == 1


async def test_a_robot_whose_key_is_refused_is_named_and_paused(
    robots: tuple[Settings, RobotEmulator],
) -> None:
    settings, emulator = robots
    emulator.fail(WECOM.service, WECOM.token, 93000)
    out = io.StringIO()
    await run_remind(settings, on_date=DAY, dry_run=False, out=out)
    printed = out.getvalue()
    assert f"推送失败：聊天 {GROUP} 的企业微信机器人 {WECOM.masked}：机器人的地址已失效" in printed
    assert "invalid_key" not in printed  # what to change, not a code
    assert "1 个推送机器人的地址被拒绝：已暂停，并已通知所在的聊天。" in printed
    assert WECOM.token not in printed
    assert len(emulator.received(WECOM.service, WECOM.token)) == 0


async def test_a_dry_run_shows_a_blocked_chats_robots_but_not_the_chat(
    robots: tuple[Settings, RobotEmulator],
) -> None:
    settings, _ = robots
    stores = await open_stores(
        database_url=settings.database(), database_path=settings.database_path
    )
    try:
        await stores.reminders.deactivate_chat(GROUP, "Forbidden", at=datetime.now(UTC))
    finally:
        await stores.close()
    out = io.StringIO()
    offline = settings.model_copy(update={"bot_token": None})
    assert await run_remind(offline, on_date=DAY, dry_run=True, out=out) == 0
    printed = out.getvalue()
    assert f"聊天 {GROUP} → 企业微信机器人" in printed  # its robot still gets the digest
    assert f"—— 聊天 {GROUP}（第" not in printed  # the chat itself blocked the bot
    assert f"—— 聊天 {ALICE}（第" in printed
