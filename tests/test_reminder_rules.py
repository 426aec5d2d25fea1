"""Reminder rules without a database: levels and thresholds, typed settings, auto-renew, and the
digest's text and buttons (split to fit Telegram, never dropping a card)."""

from __future__ import annotations

import json
import re
from datetime import date, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import InputError
from bot.i18n import catalogue, t
from bot.models import Period
from bot.reminders.autorenew import MAX_PERIODS, roll_forward
from bot.reminders.digest import MAX_CARDS, make_digest, render_digest, utf16_units
from bot.reminders.models import (
    DigestChat,
    DueCard,
    ReminderSettings,
    RenewedNote,
    keyboard_from_json,
    notes_from_json,
    notes_to_json,
    settings_from_columns,
    settings_to_columns,
)
from bot.reminders.parsing import parse_days_before, parse_overdue_days, parse_send_time
from bot.reminders.thresholds import due_level, level_bands, reminder_level

TODAY = date(2026, 11, 25)
DEFAULTS = ReminderSettings()


# --- levels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_left", "level"),
    [(31, None), (30, 30), (8, 30), (7, 7), (5, 7), (4, 7), (3, 3), (2, 3), (1, 1), (0, 0)],
)
def test_level_before_expiry_is_the_smallest_threshold_reached(
    days_left: int, level: int | None
) -> None:
    assert reminder_level(days_left, DEFAULTS) == level


def test_after_expiry_every_day_is_a_level_until_the_window_ends() -> None:
    assert reminder_level(-1, DEFAULTS) == -1
    assert reminder_level(-90, DEFAULTS) == -90
    assert reminder_level(-91, DEFAULTS) is None
    assert reminder_level(-1, ReminderSettings(overdue_daily_days=0)) is None


def test_crossing_two_thresholds_at_once_reminds_once_at_the_more_urgent() -> None:
    # reminded at 30 days, then the bot was down until 5 days before expiry
    assert due_level(5, DEFAULTS, logged_level=30) == 7
    assert due_level(4, DEFAULTS, logged_level=7) is None  # the same level: not again
    assert due_level(3, DEFAULTS, logged_level=7) == 3
    assert due_level(12, DEFAULTS, logged_level=None) == 30  # a new card, first reminder


def test_overdue_reminders_come_daily() -> None:
    assert due_level(-1, DEFAULTS, logged_level=0) == -1
    assert due_level(-1, DEFAULTS, logged_level=-1) is None
    assert due_level(-4, DEFAULTS, logged_level=-1) == -4  # catch-up: once, not three times


@given(
    days=st.lists(st.integers(0, 365), min_size=1, max_size=10),
    overdue=st.integers(0, 365),
    offset=st.integers(-400, 400),
)
def test_level_bands_agree_with_reminder_level(days: list[int], overdue: int, offset: int) -> None:
    """The bands the database uses pick the same level as the reference rule."""
    settings = ReminderSettings(days_before=tuple(days), overdue_daily_days=overdue)
    bands = level_bands(settings, TODAY)
    expiry = TODAY + timedelta(days=offset)
    if not bands.earliest <= expiry <= bands.latest:
        assert reminder_level(offset, settings) is None
        return
    if expiry < TODAY:
        banded: int | None = offset
    else:
        banded = next(level for last, level in bands.bands if expiry <= last)
    assert banded == reminder_level(offset, settings)


def test_settings_are_normalised_and_stored_compactly() -> None:
    settings = ReminderSettings(days_before=(1, 30, 7, 7), send_time=time(21, 30, 15))
    assert settings.days_before == (30, 7, 1)
    assert settings.send_time == time(21, 30)
    assert settings_from_columns(*settings_to_columns(settings)) == settings
    assert settings_from_columns(None, None, None) == DEFAULTS
    assert settings_from_columns("25:00", "x", 9999) == DEFAULTS  # damaged: defaults, not a crash
    assert DEFAULTS.days_before == (30, 7, 3, 1, 0)
    assert DEFAULTS.send_time == time(9, 0)
    assert DEFAULTS.overdue_daily_days == 90


# --- what users type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9:00", time(9, 0)),
        ("09:30", time(9, 30)),
        ("９：３０", time(9, 30)),
        ("9.30", time(9, 30)),
        ("0930", time(9, 30)),
        ("9", time(9, 0)),
        ("21点", time(21, 0)),
        ("9点半", time(9, 30)),
        ("9点15分", time(9, 15)),
        ("21时", time(21, 0)),
        ("上午9点", time(9, 0)),
        ("早上8点", time(8, 0)),
        ("下午3点", time(15, 0)),
        ("晚上9点", time(21, 0)),
        ("晚上12点", time(0, 0)),
        ("中午12点", time(12, 0)),
        ("中午1点", time(13, 0)),
        ("9am", time(9, 0)),
        ("9:30 PM", time(21, 30)),
        ("12pm", time(12, 0)),
        ("12am", time(0, 0)),
        ("0:00", time(0, 0)),
        ("23:59", time(23, 59)),
    ],
)
def test_send_time(text: str, expected: time) -> None:
    assert parse_send_time(text) == expected


@pytest.mark.parametrize(
    "text", ["", "24:00", "9:60", "25点", "下午13点", "晚上9pm", "tomorrow", "9:5", "1" * 80]
)
def test_bad_send_time(text: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_send_time(text)
    assert raised.value.key == "reminder_settings.bad_time"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30,7,3,1,0", (30, 7, 3, 1, 0)),
        ("30 7 3", (30, 7, 3)),
        ("30，7，3", (30, 7, 3)),
        ("30、7、3、1", (30, 7, 3, 1)),
        ("7天 3天 0天", (7, 3, 0)),
        ("0, 1, 3, 3", (3, 1, 0)),
        ("365", (365,)),
    ],
)
def test_days_before(text: str, expected: tuple[int, ...]) -> None:
    assert parse_days_before(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "366", "-1", "1,2,3,4,5,6,7,8,9,10,11", "3.5"])
def test_bad_days_before(text: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_days_before(text)
    assert raised.value.key == "reminder_settings.bad_days"


def test_overdue_window() -> None:
    assert parse_overdue_days("90") == 90
    assert parse_overdue_days("３０天") == 30
    assert parse_overdue_days("0") == 0
    for bad in ("366", "a lot", "-5", ""):
        with pytest.raises(InputError):
            parse_overdue_days(bad)


def test_input_errors_have_texts_with_their_placeholders() -> None:
    for lang in ("zh_CN", "en"):
        texts = catalogue(lang)
        for call, text in (
            (parse_send_time, "x"),
            (parse_days_before, "x"),
            (parse_overdue_days, "x"),
        ):
            with pytest.raises(InputError) as raised:
                call(text)
            assert raised.value.key in texts
            t(lang, raised.value.key, **raised.value.params)  # fills in (and picks plurals)


# --- auto-renew -----------------------------------------------------------------------------


def test_auto_renew_rolls_from_the_old_expiry_until_after_today() -> None:
    month = Period(months=1)
    assert roll_forward(date(2026, 11, 26), month, TODAY) == ()
    assert roll_forward(TODAY, month, TODAY) == ((TODAY, date(2026, 12, 25)),)
    # the bot was down for two months: two periods, billing dates unchanged (EXTEND)
    assert roll_forward(date(2026, 9, 30), month, TODAY) == (
        (date(2026, 9, 30), date(2026, 10, 30)),
        (date(2026, 10, 30), date(2026, 11, 30)),
    )
    assert roll_forward(TODAY, Period(), TODAY) is None
    assert roll_forward(TODAY - timedelta(days=MAX_PERIODS + 5), Period(days=1), TODAY) is None


def test_renewed_notes_round_trip() -> None:
    notes = [RenewedNote(3, "8986", "收银台<1>", TODAY, date(2027, 11, 25), 1, 3000)]
    assert notes_from_json(notes_to_json(notes)) == notes
    assert notes_from_json(None) == []


# --- the digest -----------------------------------------------------------------------------

GROUP = DigestChat(chat_id=-100500, is_group=True, language=None)
PRIVATE = DigestChat(chat_id=1001, is_group=False, language="en")


def due(n: int, days_left: int, label: str | None = None) -> DueCard:
    return DueCard(
        id=n,
        iccid=f"89860012345678{n:06d}",
        label=label,
        expiry=TODAY + timedelta(days=days_left),
        days_left=days_left,
    )


def test_digest_reads_well_most_urgent_first() -> None:
    cards = [due(1, 3, "收银台1"), due(2, -2, "前台"), due(3, 0), due(4, -95)]
    [part] = render_digest(make_digest(GROUP, TODAY, cards, [], "zh_CN"))
    lines = part.text.splitlines()
    assert lines[0] == "⏰ <b>流量卡到期提醒</b> · 11月25日（4 张）"
    assert lines[2] == "1. ⚫ 已过期 95 天（可能已销户） · <code>…000004</code> · 到期 2026-08-22"
    assert lines[3] == "2. 🔴 已停机 2 天 · <code>…000002</code> · 前台 · 到期 2026-11-23"
    assert lines[4] == "3. 🟡 今天到期 · <code>…000003</code> · 到期 2026-11-25"
    assert lines[5] == "4. 🟠 3 天后到期 · <code>…000001</code> · 收银台1 · 到期 2026-11-28"
    rows = part.buttons
    assert rows[0] == (("✅ 1. …000004 已续费", "rn:4"),)
    assert [text for text, _ in rows[1]] == ["💤 明天再提醒", "💤 3天后再提醒", "🔕 不再提醒"]


def test_private_chats_see_the_whole_iccid_and_their_language() -> None:
    [part] = render_digest(make_digest(PRIVATE, TODAY, [due(7, 1)], [], "zh_CN"))
    assert "<code>89860012345678000007</code>" in part.text
    assert "expires tomorrow" in part.text
    assert part.buttons[1][2] == ("🔕 Mute", "dg:m:7")


def test_user_text_is_escaped() -> None:
    [part] = render_digest(make_digest(GROUP, TODAY, [due(1, 3, "<b>A&B</b>")], [], "en"))
    assert "&lt;b&gt;A&amp;B&lt;/b&gt;" in part.text


def test_auto_renewals_get_their_own_section_with_the_expected_charge() -> None:
    note = RenewedNote(9, "89860012345678000009", "门店2", TODAY, date(2026, 12, 25), 1, 3000)
    [part] = render_digest(make_digest(GROUP, TODAY, [due(1, 3)], [note], "zh_CN"))
    assert "🔄 <b>今天自动续费</b>（1 张）" in part.text
    assert (
        "• <code>…000009</code> · 门店2 · 2026-11-25 → <b>2026-12-25</b> · 预计扣费 ¥30.00"
        in part.text
    )
    [only] = render_digest(make_digest(GROUP, TODAY, [], [note], "zh_CN"))
    assert only.text.startswith("🔄 <b>流量卡自动续费通知</b>")
    assert only.buttons == ()
    assert render_digest(make_digest(GROUP, TODAY, [], [], "zh_CN")) == []


def _card_ids(part_buttons: str) -> list[int]:
    return [
        int(data[3:])
        for row in keyboard_from_json(part_buttons)
        for _, data in row
        if data.startswith("rn:")
    ]


def test_digest_says_what_renewing_will_cost_when_the_plan_is_known() -> None:
    priced = DueCard(7, "89860012345678000007", "收银台", TODAY + timedelta(days=3), 3, 3000)
    [part] = render_digest(make_digest(GROUP, TODAY, [priced, due(8, 7)], [], "zh_CN"))
    lines = part.text.splitlines()
    assert lines[2].endswith("到期 2026-11-28 · 续费 ¥30.00")
    assert lines[3].endswith("到期 2026-12-02")  # no plan price, no amount


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_a_long_digest_is_split_without_losing_a_card(lang: str) -> None:
    label = "很长的门店名称" * 6  # shortened on the line, never dropped
    cards = [due(n, n % 40 - 5, label if n % 3 else None) for n in range(1, 118)]
    parts = render_digest(make_digest(GROUP, TODAY, cards, [], lang))
    assert len(parts) == 6
    seen: list[int] = []
    for number, part in enumerate(parts, start=1):
        assert utf16_units(part.text) <= 4096
        ids = _card_ids(part.buttons_json)
        assert len(ids) <= MAX_CARDS
        seen.extend(ids)
        assert f"{number}/6" in part.text.splitlines()[0]
        for row in keyboard_from_json(part.buttons_json):
            for _, data in row:
                assert len(data.encode()) <= 64
    assert sorted(seen) == list(range(1, 118))
    numbers = [int(m) for p in parts for m in re.findall(r"^(\d+)\. ", p.text, re.M)]
    assert numbers == list(range(1, 118))


def test_text_limit_splits_too() -> None:
    cards = [due(n, 3, "x" * 40) for n in range(1, 11)]
    parts = render_digest(make_digest(GROUP, TODAY, cards, [], "en"), max_units=900)
    assert len(parts) > 1
    assert all(utf16_units(p.text) <= 900 for p in parts)
    assert sorted(i for p in parts for i in _card_ids(p.buttons_json)) == list(range(1, 11))


def test_buttons_are_valid_json_even_for_odd_iccids() -> None:
    card = DueCard(1, 'ABC"{x}\\', None, TODAY, 0)
    [part] = render_digest(make_digest(GROUP, TODAY, [card], [], "en"))
    rows = json.loads(part.buttons_json)
    assert rows[0][0][0] == '✅ 1. …C"{x}\\ renewed'
