"""/addcard end to end: every step, /cancel at each step, bad input at each step, one-line form."""

from __future__ import annotations

from datetime import date

import pytest
from cards_util import bad_luhn, iccid

from bot.chatdriver import ChatDriver, texts
from bot.models import Carrier, Period
from storage.sqlite import SqliteStorage

BOTH_CHANNELS = True  # each test also as a WeCom user (conftest)

STEPS_TO_REACH = [
    [],  # asking for the ICCID
    [iccid(1)],  # asking for the expiry
    [iccid(1), "2027-01-31"],  # asking for the carrier
    [iccid(1), "2027-01-31", "press:中国移动"],  # asking for the label
    [iccid(1), "2027-01-31", "press:中国移动", "收银台1"],  # asking for the plan
    [iccid(1), "2027-01-31", "press:中国移动", "收银台1", "press:3 个月"],  # asking the price
    [iccid(1), "2027-01-31", "press:中国移动", "收银台1", "3个月 30元"],  # auto-renew
    [iccid(1), "2027-01-31", "press:中国移动", "收银台1", "3个月 30元", "press:是"],  # confirm
]


async def walk(driver: ChatDriver, steps: list[str]) -> str:
    said = texts(await driver.send("/addcard"))
    for step in steps:
        if step.startswith("press:"):
            said = texts(await driver.press(step.removeprefix("press:")))
        else:
            said = texts(await driver.send(step))
    return said


async def test_step_by_step_saves_every_field(alice: ChatDriver, storage: SqliteStorage) -> None:
    summary = await walk(alice, STEPS_TO_REACH[-1])
    assert "请确认" in summary
    assert "收银台1" in summary
    assert "¥30.00" in summary
    saved = texts(await alice.press("保存"))
    assert "已保存" in saved
    assert "2027-01-31" in saved
    assert "剩 67 天" in saved
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.expiry == date(2027, 1, 31)
    assert card.carrier is Carrier.CHINA_MOBILE
    assert card.label == "收银台1"
    assert card.plan_period == Period(months=3)
    assert card.plan_price_fen == 3000
    assert card.auto_renew is True


@pytest.mark.parametrize("steps", STEPS_TO_REACH, ids=lambda s: f"after-{len(s)}-steps")
async def test_cancel_at_any_step_saves_nothing(
    alice: ChatDriver, storage: SqliteStorage, steps: list[str]
) -> None:
    await walk(alice, steps)
    assert "已取消" in texts(await alice.send("/cancel"))
    assert await storage.count_cards(alice.chat_id) == 0
    # the conversation is over: plain text is no longer taken as an answer
    assert "我没看懂" in texts(await alice.send(iccid(2)))


@pytest.mark.parametrize(
    ("steps", "bad", "complaint", "good"),
    [
        ([], "12345", "应为 19–20 位", iccid(1)),
        ([], "99860012345678901234", "以 89 开头", iccid(1)),
        ([], "8986001234567890123#", "不应有「#」", iccid(1)),
        ([iccid(1)], "明天吧", "没看懂日期", "2027-01-31"),
        ([iccid(1)], "2027-02-30", "不存在", "2027-01-31"),
        ([iccid(1), "2027-01-31"], "小灵通", "请点按钮选择运营商", "联通"),
        ([iccid(1), "2027-01-31", "press:中国移动"], "长" * 65, "标签太长", "收银台1"),
        ([iccid(1), "2027-01-31", "press:中国移动", "x"], "很多钱", "没看懂", "3个月 30元"),
        ([iccid(1), "2027-01-31", "press:中国移动", "x", "press:3 个月"], "-5", "负数", "30"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_the_same_question_again(
    alice: ChatDriver, steps: list[str], bad: str, complaint: str, good: str
) -> None:
    await walk(alice, steps)
    assert complaint in texts(await alice.send(bad))
    after = texts(await alice.send(good))
    assert "没看懂" not in after
    assert "请" in after or "是否" in after or "第" in after


async def test_wrong_check_digit_asks_before_going_on(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await alice.send("/addcard")
    warning = texts(await alice.send(bad_luhn(5)))
    assert "校验码对不上" in warning
    assert "ICCID" in texts(await alice.press("重新输入"))
    await alice.send(bad_luhn(5))
    assert "哪天到期" in texts(await alice.press("号码没错"))
    await alice.send("2027-01-31")
    await alice.press("中国电信")
    await alice.press("跳过")
    summary = texts(await alice.press("跳过"))
    assert "校验码对不上" in summary
    await alice.press("保存")
    assert await storage.get_card_by_iccid(alice.chat_id, bad_luhn(5)) is not None


async def test_a_corrected_iccid_typed_after_the_warning_goes_on(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await alice.send("/addcard")
    assert "校验码对不上" in texts(await alice.send(bad_luhn(6)))
    assert "哪天到期" in texts(await alice.send(iccid(6)))  # no button: just the right number
    await alice.send("2027-01-31")
    await alice.press("中国移动")
    await alice.press("跳过")
    summary = texts(await alice.press("跳过"))
    assert iccid(6) in summary
    assert "校验码对不上" not in summary
    await alice.press("保存")
    assert await storage.get_card_by_iccid(alice.chat_id, iccid(6)) is not None
    assert await storage.get_card_by_iccid(alice.chat_id, bad_luhn(6)) is None


async def test_a_retyped_iccid_is_checked_again(alice: ChatDriver) -> None:
    await alice.send("/addcard")
    await alice.send(bad_luhn(8))
    assert "19–20" in texts(await alice.send("8986"))  # still wrong: say why, stay on the ICCID
    assert "校验码对不上" in texts(await alice.send(bad_luhn(8)))


async def test_same_iccid_twice_offers_the_existing_card(alice: ChatDriver) -> None:
    await alice.send(f"/addcard {iccid(7)} 2027-03-01 移动 前台")
    await alice.send("/addcard")
    said = texts(await alice.send(iccid(7).replace("0", "0 ", 2)))
    assert "已经有卡号" in said
    detail = texts(await alice.press("查看这张卡"))
    assert "前台" in detail
    assert "2027-03-01" in detail


async def test_one_line_add_with_carrier_and_label(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    said = texts(await alice.send(f"/addcard {iccid(3)} 2026/12/31 电信 二号 收银台"))
    assert "已保存" in said
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(3))
    assert card is not None
    assert card.carrier is Carrier.CHINA_TELECOM
    assert card.label == "二号 收银台"
    assert card.expiry == date(2026, 12, 31)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-12-31", date(2026, 12, 31)),
        ("2026.12.31", date(2026, 12, 31)),
        ("20261231", date(2026, 12, 31)),
        ("2026年12月31日", date(2026, 12, 31)),
        ("12月31日", date(2026, 12, 31)),
        ("11-01", date(2027, 11, 1)),  # the next 1 November
        ("30天", date(2026, 12, 25)),
        ("3个月", date(2027, 2, 25)),
        ("1y", date(2027, 11, 25)),
    ],
)
async def test_one_line_accepts_every_date_form(
    alice: ChatDriver, storage: SqliteStorage, typed: str, expected: date
) -> None:
    await alice.send(f"/addcard {iccid(4)} {typed}")
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(4))
    assert card is not None
    assert card.expiry == expected


@pytest.mark.parametrize(
    ("typed", "expected", "label"),
    [
        ("Dec 31 移动 收银台1", date(2026, 12, 31), "收银台1"),
        ("31 Dec 2027 Till 2", date(2027, 12, 31), "Till 2"),
        ("end of month 前台", date(2026, 11, 30), "前台"),
        ("明天 电信 二号", date(2026, 11, 26), "二号"),
    ],
)
async def test_one_line_takes_a_date_of_several_words(
    alice: ChatDriver, storage: SqliteStorage, typed: str, expected: date, label: str
) -> None:
    """The dates /help promises work in the one-line form too, the words after them are the
    carrier and the label as usual."""
    assert "已保存" in texts(await alice.send(f"/addcard {iccid(5)} {typed}"))
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(5))
    assert card is not None
    assert (card.expiry, card.label) == (expected, label)


async def test_past_date_is_saved_and_flagged_as_expired(alice: ChatDriver) -> None:
    said = texts(await alice.send(f"/addcard {iccid(8)} 2026-11-01"))
    assert "已保存" in said
    assert "已过期" in said


async def test_one_line_with_a_bad_check_digit_asks_to_confirm(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    said = texts(await alice.send(f"/addcard {bad_luhn(9)} 2027-01-01"))
    assert "校验码对不上" in said
    assert await storage.count_cards(alice.chat_id) == 0
    await alice.press("保存")
    assert await storage.count_cards(alice.chat_id) == 1


async def test_one_line_errors_name_the_problem(alice: ChatDriver) -> None:
    assert "格式" in texts(await alice.send(f"/addcard {iccid(1)}"))
    assert "没看懂日期" in texts(await alice.send(f"/addcard {iccid(1)} someday"))


async def test_idle_conversation_times_out_politely(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await alice.send("/addcard")
    await alice.send(iccid(1))
    assert alice.app.job_queue is not None
    # PTB names a conversation's idle timer after its callback
    (timeout,) = alice.app.job_queue.get_jobs_by_name("_trigger_timeout")
    await timeout.run(alice.app)
    assert "太久没有回复" in texts(alice.take_events())
    assert "我没看懂" in texts(await alice.send("2027-01-01"))
    assert await storage.count_cards(alice.chat_id) == 0


async def test_english_user_gets_english(alice_en: ChatDriver) -> None:
    said = texts(await alice_en.send(f"/addcard {iccid(1)} 2027-01-31 mobile Till"))
    assert "Saved" in said
    assert "67 days left" in said
