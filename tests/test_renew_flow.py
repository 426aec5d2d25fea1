"""/renew end to end: the picker, the two expiry rules, one-line form, history, stale screens."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from cards_util import iccid

from bot.chatdriver import ChatDriver, texts
from bot.models import Card, CardDraft, Period, RenewalRule
from storage.sqlite import SqliteStorage

BOTH_CHANNELS = True  # each test that uses alice also runs as a WeCom user (conftest)

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


async def add(storage: SqliteStorage, chat_id: int, n: int, expiry: date, **extra: object) -> Card:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    draft = CardDraft(iccid=iccid(n), expiry=expiry, label=f"T{n}", **extra)
    return await storage.add_card(chat_id, draft, CREATED)


async def test_valid_card_extends_from_its_old_expiry(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 1, date(2026, 12, 10))
    picker = texts(await alice.send("/renew"))
    assert "给哪张卡续费" in picker
    await alice.press("T1")
    await alice.press("3 个月")
    confirm = texts(await alice.send("¥30"))
    assert "2026-12-10 → 2027-03-10" in confirm
    assert "从原到期日 2026-12-10 起顺延" in confirm
    done = texts(await alice.press("确认续费"))
    assert "已续费" in done
    (renewal,) = await storage.list_renewals(alice.chat_id, card.id)
    assert renewal.rule is RenewalRule.EXTEND
    assert renewal.new_expiry == date(2027, 3, 10)
    assert renewal.amount_fen == 3000
    assert renewal.by_user_id == alice.user["id"]
    detail = texts(await alice.press("查看这张卡"))
    assert "2026-12-10 → 2027-03-10" in detail
    assert "¥30.00" in detail


async def test_expired_card_restarts_from_today(alice: ChatDriver, storage: SqliteStorage) -> None:
    card = await add(storage, alice.chat_id, 2, date(2026, 10, 1))
    confirm = texts(await alice.send(f"/renew {iccid(2)[-4:]} 1个月"))
    assert "2026-10-01 → 2026-12-25" in confirm
    assert "从今天 2026-11-25 起算" in confirm
    await alice.press("确认续费")
    renewed = await storage.get_card(alice.chat_id, card.id)
    assert renewed is not None
    assert renewed.expiry == date(2026, 12, 25)


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_plan_button_and_plan_price(alice: ChatDriver, storage: SqliteStorage) -> None:
    card = await add(
        storage,
        alice.chat_id,
        3,
        date(2027, 1, 31),
        plan_period=Period(months=1),
        plan_price_fen=1000,
    )
    await alice.send("/cards")  # a message for the button to hang on
    await alice.press_data(f"rn:{card.id}")
    await alice.press("按套餐")
    confirm = texts(await alice.press("付了套餐价 ¥10.00"))
    assert "2027-01-31 → 2027-02-28" in confirm  # month end clamps
    await alice.press("确认续费")
    (renewal,) = await storage.list_renewals(alice.chat_id, card.id)
    assert renewal.amount_fen == 1000


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_custom_date_and_skip_amount(alice: ChatDriver, storage: SqliteStorage) -> None:
    card = await add(storage, alice.chat_id, 4, date(2026, 12, 1))
    await alice.send("/cards")  # a message for the button to hang on
    await alice.press_data(f"rn:{card.id}")
    await alice.send("2027-06-30")
    confirm = texts(await alice.press("跳过"))
    assert "按你给的日期" in confirm
    await alice.press("确认续费")
    (renewal,) = await storage.list_renewals(alice.chat_id, card.id)
    assert renewal.rule is RenewalRule.SET_DATE
    assert renewal.amount_fen is None


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_bad_period_and_bad_amount_ask_again(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 5, date(2026, 12, 1))
    await alice.send("/cards")  # a message for the button to hang on
    await alice.press_data(f"rn:{card.id}")
    assert "没看懂" in texts(await alice.send("下个月吧"))
    await alice.send("6")
    assert "没看懂金额" in texts(await alice.send("三十块钱左右"))
    assert "2026-12-01 → 2027-06-01" in texts(await alice.send("30"))


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
async def test_cancel_at_any_step_changes_nothing(
    alice: ChatDriver, storage: SqliteStorage, steps: int
) -> None:
    card = await add(storage, alice.chat_id, 6, date(2026, 12, 1))
    actions = ["/renew", "press:T6", "press:3 个月", "press:跳过"][: steps + 1]
    for action in actions:
        if action.startswith("press:"):
            await alice.press(action.removeprefix("press:"))
        else:
            await alice.send(action)
    assert "已取消" in texts(await alice.send("/cancel"))
    unchanged = await storage.get_card(alice.chat_id, card.id)
    assert unchanged == card
    assert await storage.list_renewals(alice.chat_id, card.id) == []


async def test_ambiguous_last_digits_ask_which_card(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await storage.ensure_chat(alice.chat_id, is_group=False)
    for number, label in (("89860012345678901234", "A"), ("89860099999999901234", "B")):
        draft = CardDraft(iccid=number, expiry=date(2026, 12, 1), label=label)
        await storage.add_card(alice.chat_id, draft, CREATED)
    which = texts(await alice.send("/renew 01234 3m"))
    assert "是哪一张" in which
    confirm = texts(await alice.press("B"))
    assert "89860099999999901234" in confirm
    await alice.press("确认续费")
    card_b = await storage.get_card_by_iccid(alice.chat_id, "89860099999999901234")
    card_a = await storage.get_card_by_iccid(alice.chat_id, "89860012345678901234")
    assert card_b is not None
    assert card_a is not None
    assert card_b.expiry == date(2027, 3, 1)
    assert card_a.expiry == date(2026, 12, 1)


async def test_unknown_card(alice: ChatDriver) -> None:
    assert "没有找到「9999」这张卡" in texts(await alice.send("/renew 9999 3m"))
    assert "没有找到「收银台9」这张卡" in texts(await alice.send("/renew 收银台9"))


@pytest.mark.parametrize(
    ("words", "new_expiry", "amount_fen"),
    [
        ("3 months 30", date(2027, 3, 1), 3000),
        ("1 year", date(2027, 12, 1), None),
        ("1 year ¥50", date(2027, 12, 1), 5000),
        ("3 个月 30 元", date(2027, 3, 1), 3000),
        ("3 30", date(2027, 3, 1), 3000),
        ("Dec 31 2027 45.5", date(2027, 12, 31), 4550),
        ("31 Dec 2027", date(2027, 12, 31), None),
        ("月底", date(2026, 11, 30), None),
    ],
)
async def test_one_line_periods_and_dates_of_several_words(
    alice: ChatDriver, storage: SqliteStorage, words: str, new_expiry: date, amount_fen: int | None
) -> None:
    card = await add(storage, alice.chat_id, 9, date(2026, 12, 1))
    confirm = texts(await alice.send(f"/renew {iccid(9)[-4:]} {words}"))
    assert f"2026-12-01 → {new_expiry.isoformat()}" in confirm
    await alice.press("确认续费")
    (renewal,) = await storage.list_renewals(alice.chat_id, card.id)
    assert renewal.new_expiry == new_expiry
    assert renewal.amount_fen == amount_fen


async def test_one_line_bad_amount_after_a_period_says_so(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 10, date(2026, 12, 1))
    said = texts(await alice.send(f"/renew {iccid(10)[-4:]} 3 months thirty"))
    assert "没看懂金额「thirty」" in said
    said = texts(await alice.send(f"/renew {iccid(10)[-4:]} someday"))
    assert "没看懂周期「someday」" in said
    assert await storage.list_renewals(alice.chat_id, card.id) == []


async def test_a_date_too_far_off_is_called_that_not_a_bad_period(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 11, date(2026, 12, 1))
    said = texts(await alice.send(f"/renew {iccid(11)[-4:]} 2101-01-01"))
    assert "太远了" in said
    assert "没看懂周期" not in said
    said = texts(await alice.send(f"/renew {iccid(11)[-4:]} 2027-02-30"))
    assert "没看懂周期" not in said
    assert await storage.list_renewals(alice.chat_id, card.id) == []


async def test_one_line_names_the_card_by_its_label(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await storage.ensure_chat(alice.chat_id, is_group=False)
    draft = CardDraft(iccid=iccid(11), expiry=date(2026, 12, 1), label="收银台1")
    card = await storage.add_card(alice.chat_id, draft, CREATED)
    spaced = CardDraft(iccid=iccid(12), expiry=date(2026, 12, 5), label="Till 2")
    other = await storage.add_card(alice.chat_id, spaced, CREATED)
    confirm = texts(await alice.send("/renew 收银台1 3个月"))
    assert "2026-12-01 → 2027-03-01" in confirm
    await alice.press("确认续费")
    assert [r.new_expiry for r in await storage.list_renewals(alice.chat_id, card.id)] == [
        date(2027, 3, 1)
    ]
    confirm = texts(await alice.send("/renew till 2 1 year 50"))  # spaces, any case
    assert "2026-12-05 → 2027-12-05" in confirm
    assert "¥50.00" in confirm
    await alice.press("确认续费")
    (renewal,) = await storage.list_renewals(alice.chat_id, other.id)
    assert renewal.amount_fen == 5000


async def test_one_line_with_just_the_card_asks_for_the_period(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 13, date(2026, 12, 1))
    ask = texts(await alice.send(f"/renew {iccid(13)[-4:]}"))
    assert "续多久" in ask
    await alice.press("6 个月")
    await alice.press("跳过")
    await alice.press("确认续费")
    (renewal,) = await storage.list_renewals(alice.chat_id, card.id)
    assert renewal.new_expiry == date(2027, 6, 1)


async def test_one_line_label_of_several_cards_asks_which_then_how_long(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await storage.ensure_chat(alice.chat_id, is_group=False)
    for n, expiry in ((14, date(2026, 12, 1)), (15, date(2027, 1, 1))):
        draft = CardDraft(iccid=iccid(n), expiry=expiry, label="前台")
        await storage.add_card(alice.chat_id, draft, CREATED)
    assert "是哪一张" in texts(await alice.send("/renew 前台"))
    _, data = alice.find_button(iccid(15)[-8:])
    assert "续多久" in texts(await alice.press_data(data))


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_two_stale_confirmations_renew_once(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 8, date(2026, 12, 1))
    await alice.send(f"/renew {iccid(8)} 3m")
    first_confirm, _ = alice.find_button("确认续费")
    await alice.press("确认续费")
    # the old confirmation message is pressed again, e.g. by a double tap
    said = texts(await alice.press_data("rok", first_confirm.message_id))
    assert "已续费" not in said
    assert len(await storage.list_renewals(alice.chat_id, card.id)) == 1
