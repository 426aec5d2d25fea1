"""Whatever goes wrong, the user gets an answer: forged buttons, huge input, odd time zones,
a full disk. Each cause is fixed, and the error handler answers what no handler foresaw."""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cards_util import iccid
from conftest import TOKEN, running_bot

from bot.chatdriver import ChatDriver, texts
from bot.config import Settings
from bot.emulator import BotApiEmulator
from bot.models import CardDraft
from storage.sqlite import SqliteStorage

WALK_TO_PLAN = [iccid(1), "2027-01-31", "press:中国移动", "收银台1"]


async def walk(driver: ChatDriver, steps: list[str]) -> None:
    await driver.send("/addcard")
    for step in steps:
        if step.startswith("press:"):
            await driver.press(step.removeprefix("press:"))
        else:
            await driver.send(step)


async def a_card(storage: SqliteStorage, driver: ChatDriver) -> int:
    await storage.ensure_chat(driver.chat_id, is_group=False)
    card = await storage.add_card(
        driver.chat_id,
        CardDraft(iccid=iccid(7), expiry=datetime(2027, 3, 1).date()),
        datetime.now(),
    )
    return card.id


# --- forged buttons --------------------------------------------------------------------------


BIG = "9" * 40  # no id, page or count is that long
OVER = "9" * 19  # the right length for an id, but above SQLite's largest integer
# Where each forged press is made: some buttons only mean something in a conversation's step.
SETUPS = {
    "list": ["/cards"],
    "addcard": ["/addcard", *WALK_TO_PLAN],
    "renew": ["/renew"],
    "edit": ["/cards", "edit:plan"],
}
FORGED = {
    "list": [
        *("dg:m:" + BIG, "dg:u:" + BIG, "dg:i:" + BIG, "dg:m:" + OVER, "dg:u:" + OVER),
        *("dg:i:" + OVER, "dg:m:\u0663", "dg:i:\u00b2", "dg:m:-1"),
        *("dg:z:3:" + BIG + ":740000", "dg:z:3:" + OVER + ":740000", "dg:z:3:\u0663:740000"),
        *("dg:z:2:1:740000", "dg:z:3:1:9999999", "dg:z:3:1:0", "dg:z:3:1"),
        *("pg:e" + BIG + ":0", "pg:e\u0663:0", "pg:e9999:0", "pg:a:" + "9" * 25, "pg:a:" + OVER),
        *("pg:x:0", "pg:a", "pn:" + "9" * 25 + ":1", "pn:" + OVER + ":1", "pn:1", "pn:5:2"),
        *("cd:" + "9" * 61, "cd:-1", "cd:١٢", "cd:+5", "cd:" + OVER, "cd:"),
        *("dl:" + "9" * 61, "dy:" + OVER, "dn:\u0663"),
        *("fd:x:" + BIG, "fd:x:\u0663", "fd:x:" + OVER, "fd:x", "fh:" + OVER),
        *("ed:" + BIG, "ed:" + OVER, "et:" + BIG + ":mute", "et:" + OVER + ":auto"),
        *("ef:" + OVER + ":plan", "ef:1:nothing", "ef:" + BIG + ":plan"),
        *("rn:" + BIG, "rn:" + OVER, "rn:" + OVER + ":d"),
        *("rs:set:o:" + BIG, "rs:set:t:99999", "rs:set:t:9999", "rs:set:o:99999"),
        *("rs:set:d:" + ".".join(["1"] * 20), "rs:set:d:1..2", "rs:set:x:1"),
        *("st:lang:xx", "st:lang:" + BIG),
    ],
    "addcard": [
        *("ac:plan:121", "ac:plan:0", "ac:plan:" + OVER, "ac:plan:\u0663"),
        *("ac:cat:999", "ac:cat:" + OVER, "ac:cat:" + "9" * 30, "ac:luhn:what"),
    ],
    "renew": ["rpg:" + OVER, "rpg:" + BIG, "rp:" + OVER, "rp:" + BIG, "rwhich:" + OVER],
    "edit": ["ecat:999", "ecat:" + OVER, "ecat:" + BIG, "ecar:" + "x" * 40],
}


@pytest.mark.parametrize(
    ("setup", "data"), [(setup, data) for setup, forged in FORGED.items() for data in forged]
)
async def test_a_forged_button_gets_the_stale_answer(
    alice: ChatDriver,
    storage: SqliteStorage,
    setup: str,
    data: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    card_id = await a_card(storage, alice)
    for step in SETUPS[setup]:
        if step == "edit:plan":
            await alice.press_data(f"ef:{card_id}:plan")
        elif step.startswith("press:"):
            await alice.press(step.removeprefix("press:"))
        else:
            await alice.send(step)
    with caplog.at_level(logging.ERROR):
        events = await alice.press_data(data)
    assert [e.text for e in events if e.show_alert] == [
        "这个按钮已失效（操作已完成或已超时）。请重新发送命令。"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    card = await storage.get_card(alice.chat_id, card_id)
    assert card is not None
    assert not card.muted  # nothing changed


@pytest.mark.parametrize("data", ["pg:a:", "pg:e3650:", "fd:8986:", "rpg:"])
async def test_a_page_far_past_the_end_shows_the_last_page(
    alice: ChatDriver, storage: SqliteStorage, data: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The largest page a button can carry: its offset (page × page size) must not overflow."""
    await storage.ensure_chat(alice.chat_id, is_group=False)
    for i in range(12):
        draft = CardDraft(iccid=iccid(i), expiry=datetime(2027, 3, 1).date())
        await storage.add_card(alice.chat_id, draft, datetime.now())
    await alice.send("/renew" if data == "rpg:" else "/cards")
    with caplog.at_level(logging.ERROR):
        said = texts(await alice.press_data(data + str(2**63 - 1)))
    assert "第 2/2 页" in said
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_forged_renewal_period_is_answered_and_renews_nothing(
    alice: ChatDriver, storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    card_id = await a_card(storage, alice)
    await alice.send("/renew")
    await alice.press_data(f"rp:{card_id}")
    with caplog.at_level(logging.ERROR):
        said = texts(await alice.press_data("rper:999"))
    assert "没看懂" in said
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    card = await storage.get_card(alice.chat_id, card_id)
    assert card is not None
    assert card.expiry == datetime(2027, 3, 1).date()


# --- input quoted back -----------------------------------------------------------------------


@pytest.mark.parametrize("huge", ["x" * 4096, "个" * 4096, "3个月 " + "x" * 4000])
async def test_a_huge_plan_is_quoted_back_as_a_short_excerpt(
    alice: ChatDriver, huge: str, caplog: pytest.LogCaptureFixture
) -> None:
    await walk(alice, WALK_TO_PLAN)
    with caplog.at_level(logging.ERROR):
        said = texts(await alice.send(huge))
    assert "没看懂" in said
    assert len(said) < 300
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("command", ["/edit", "/renew", "/delete"])
async def test_a_huge_card_reference_is_quoted_back_as_a_short_excerpt(
    alice: ChatDriver, command: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        said = texts(await alice.send(f"{command} " + "日" * 4080))
    assert said
    assert len(said) < 300
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- time zones ------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["Asia", "America", "Etc", "z" * 300, "../../etc/passwd", ""])
async def test_a_time_zone_that_is_not_one_is_refused_politely(
    alice: ChatDriver, storage: SqliteStorage, typed: str, caplog: pytest.LogCaptureFixture
) -> None:
    await alice.send("/settings")
    await alice.press("修改时区")
    with caplog.at_level(logging.ERROR):
        said = texts(await alice.send(typed or " "))
    assert "不认识时区" in said
    assert len(said) < 300
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    chat = await storage.get_chat(alice.chat_id)
    assert chat is not None
    assert chat.timezone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("typed", "zone", "shown"),
    [
        ("北京", "Asia/Shanghai", "Asia/Shanghai"),
        ("上海", "Asia/Shanghai", "Asia/Shanghai"),
        ("香港", "Asia/Hong_Kong", "Asia/Hong_Kong"),
        ("UTC+8", "Etc/GMT-8", "UTC+8"),  # the database's Etc/GMT names count backwards
        ("utc-5", "Etc/GMT+5", "UTC-5"),
        ("GMT+05:00", "Etc/GMT-5", "UTC+5"),
        ("东八区", "Etc/GMT-8", "UTC+8"),
        ("UTC", "UTC", "UTC"),
        ("new york", "America/New_York", "America/New_York"),
        ("Beijing", "Asia/Shanghai", "Asia/Shanghai"),
    ],
)
async def test_time_zones_as_people_type_them(
    alice: ChatDriver, storage: SqliteStorage, typed: str, zone: str, shown: str
) -> None:
    await alice.send("/settings")
    await alice.press("修改时区")
    said = texts(await alice.send(typed))
    assert f"时区已设为 {shown}" in said
    chat = await storage.get_chat(alice.chat_id)
    assert chat is not None
    assert chat.timezone == zone
    assert f"时区：{shown}" in texts(await alice.send("/settings"))


async def test_a_utc_offset_sets_the_right_local_day(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    # conftest's NOW is 02:00 UTC on 2026-11-25: still the 24th at UTC-5, the 25th at UTC+8.
    await alice.send("/settings")
    await alice.press("修改时区")
    assert "2026-11-24" in texts(await alice.send("UTC-5"))
    await alice.send("/settings")
    await alice.press("修改时区")
    assert "2026-11-25" in texts(await alice.send("UTC+8"))


def test_a_time_zone_setting_that_is_a_folder_is_a_settings_error() -> None:
    from bot.config import SettingsError, load_settings

    for name in ("Asia", "z" * 300):
        with pytest.raises(SettingsError, match="TIMEZONE is invalid"):
            load_settings(timezone=name)


# --- what nobody foresaw: the error handler --------------------------------------------------


class FullDisk(SqliteStorage):
    """A database on a full disk: reading works, every write fails as SQLite reports it."""

    async def add_card(self, *args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")


@pytest.fixture
async def full_disk(tmp_path: Path, emulator: BotApiEmulator) -> Any:
    path = tmp_path / "full.sqlite3"
    plain = await SqliteStorage.open(path)
    await plain.close()
    storage = await FullDisk.open(path)
    settings = Settings(
        bot_token=TOKEN,  # type: ignore[arg-type]
        telegram_base_url=emulator.base_url,
        telegram_base_file_url=emulator.base_file_url,
        database_path=path,
    )
    async with running_bot(settings, storage) as app:
        emulator.take_events()
        yield app
    await storage.close()


@pytest.mark.parametrize(
    ("language", "says"), [("zh-hans", "存储空间满了"), ("en", "storage is full")]
)
async def test_a_full_disk_gets_a_polite_answer_in_the_users_language(
    full_disk: Any,
    emulator: BotApiEmulator,
    caplog: pytest.LogCaptureFixture,
    language: str,
    says: str,
) -> None:
    user = emulator.user(4242, "Wang", language_code=language)
    wang = ChatDriver(full_disk, emulator, emulator.private_chat(user), user)
    with caplog.at_level(logging.ERROR):
        said = texts(await wang.send(f"/addcard {iccid(3)} 2027-01-31"))
    assert says in said
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1, "logged once"
    assert failures[0].exc_info is not None, "with its traceback"
    assert "database or disk is full" in caplog.text


async def test_a_failure_after_a_button_press_is_answered_too(
    full_disk: Any, emulator: BotApiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    user = emulator.user(4243, "Li", language_code="zh-hans")
    li = ChatDriver(full_disk, emulator, emulator.private_chat(user), user)
    await walk(li, [*WALK_TO_PLAN, "3个月 30元", "press:是"])
    with caplog.at_level(logging.ERROR):
        said = texts(await li.press("保存"))
    assert "存储空间满了" in said
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert TOKEN not in caplog.text


async def test_in_a_group_the_apology_is_addressed_to_whoever_acted(
    full_disk: Any, emulator: BotApiEmulator
) -> None:
    boss = emulator.user(4244, "Boss Zhou", language_code="zh-hans")
    chat = emulator.group_chat(-100777, "门店群", supergroup=True, admins=[4244])
    zhou = ChatDriver(full_disk, emulator, chat, boss)
    await walk(zhou, [*WALK_TO_PLAN, "3个月 30元", "press:是"])
    said = texts(await zhou.press("保存"))
    assert "Boss Zhou：" in said
    assert "存储空间满了" in said
