"""/cost, catalogue plans in /addcard and the cheapest option in /renew, end to end."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from cards_util import iccid

from bot.chatdriver import ChatDriver, texts
from bot.models import Card, CardDraft, Carrier, Period
from storage.sqlite import SqliteStorage

BOTH_CHANNELS = True  # each test that uses alice also runs as a WeCom user (conftest)

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


async def monthly_card(storage: SqliteStorage, chat_id: int, n: int, expiry: date) -> Card:
    await storage.ensure_chat(chat_id, is_group=False)
    draft = CardDraft(
        iccid=iccid(n),
        expiry=expiry,
        carrier=Carrier.CHINA_MOBILE,
        label=f"T{n}",
        plan_period=Period(months=1),
        plan_price_fen=500,  # the example catalogue's 移动物联网 月包 30MB
    )
    return await storage.add_card(chat_id, draft, CREATED)


async def test_cost_shows_spent_due_and_savings(alice: ChatDriver, storage: SqliteStorage) -> None:
    await monthly_card(storage, alice.chat_id, 1, date(2026, 12, 10))
    await monthly_card(storage, alice.chat_id, 2, date(2027, 3, 1))
    await alice.send(f"/renew {iccid(1)} 1 5")
    await alice.press("确认续费")
    said = texts(await alice.send("/cost"))
    assert "近 12 个月已付：¥5.00" in said
    assert "未来 30 天要付：¥0.00" in said  # the renewed card is now due 2027-01-10
    # card 1: 2027-01-10 … 2027-11-10 (11 payments); card 2: 2027-03-01 … 2027-11-01 (9)
    assert "未来 12 个月要付：¥100.00" in said
    assert "把 2 张卡换成「移动物联网 年包 30MB」¥48.00/1 年（每月 ¥4.00），每年共省 ¥24.00" in said
    assert "示例套餐目录" in said


async def test_cost_with_nothing_to_advise(alice: ChatDriver, storage: SqliteStorage) -> None:
    await storage.ensure_chat(alice.chat_id, is_group=False)
    draft = CardDraft(iccid=iccid(3), expiry=date(2027, 1, 1), carrier=Carrier.CHINA_UNICOM)
    await storage.add_card(alice.chat_id, draft, CREATED)
    said = texts(await alice.send("/cost"))
    assert "1 张卡没有设置套餐价格" in said
    assert "设置套餐（周期和价格）后" in said
    assert "最划算" not in said  # nothing to compare is not "already the cheapest"


async def test_addcard_offers_the_carriers_catalogue_plans(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await alice.send("/addcard")
    await alice.send(iccid(4))
    await alice.send("2027-01-31")
    await alice.press("中国电信")
    plans = texts(await alice.press("跳过"))
    assert "套餐" in plans
    _, data = alice.find_button("电信物联网 年包 30MB ¥45.00")
    assert data.startswith("ac:cat:")
    await alice.press("电信物联网 年包 30MB")
    await alice.press("否")
    await alice.press("保存")
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(4))
    assert card is not None
    assert card.plan_period == Period(months=12)
    assert card.plan_price_fen == 4500


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_renew_suggests_the_cheapest_plan(alice: ChatDriver, storage: SqliteStorage) -> None:
    card = await monthly_card(storage, alice.chat_id, 5, date(2026, 12, 10))
    await alice.send("/cards")
    ask = texts(await alice.press_data(f"rn:{card.id}"))
    assert "最省钱：「移动物联网 年包 30MB」¥48.00/1 年" in ask
    await alice.press("按最省钱套餐")
    confirm = texts(await alice.press("付了套餐价 ¥48.00"))
    assert "2026-12-10 → 2027-12-10" in confirm
    await alice.press("确认续费")
    (renewal,) = await storage.list_renewals(alice.chat_id, card.id)
    assert renewal.amount_fen == 4800


async def test_cost_when_every_plan_is_already_the_cheapest(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await storage.ensure_chat(alice.chat_id, is_group=False)
    draft = CardDraft(
        iccid=iccid(6),
        expiry=date(2027, 1, 1),
        carrier=Carrier.CHINA_MOBILE,
        plan_period=Period(months=12),
        plan_price_fen=4800,  # the example catalogue's cheapest China Mobile plan
    )
    await storage.add_card(alice.chat_id, draft, CREATED)
    assert "已经是套餐目录里最划算的了" in texts(await alice.send("/cost"))


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_edit_picks_a_plan_from_the_catalogue(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await monthly_card(storage, alice.chat_id, 7, date(2027, 1, 1))
    await alice.send("/cards")
    await alice.press_data(f"ed:{card.id}")
    await alice.press("套餐")
    _, data = alice.find_button("移动物联网 年包 30MB ¥48.00")
    assert data.startswith("ecat:")
    assert "已保存" in texts(await alice.press("移动物联网 年包 30MB"))
    edited = await storage.get_card(alice.chat_id, card.id)
    assert edited is not None
    assert edited.plan_period == Period(months=12)
    assert edited.plan_price_fen == 4800


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_price_per_month_rounds_half_up(alice: ChatDriver, storage: SqliteStorage) -> None:
    await storage.ensure_chat(alice.chat_id, is_group=False)
    draft = CardDraft(
        iccid=iccid(8),
        expiry=date(2027, 1, 1),
        carrier=Carrier.CHINA_UNICOM,
        plan_period=Period(months=3),
        plan_price_fen=1500,  # ¥5.00 a month
    )
    card = await storage.add_card(alice.chat_id, draft, CREATED)
    await alice.send("/cards")
    ask = texts(await alice.press_data(f"rn:{card.id}"))
    # ¥50 a year is 416.67 fen a month: ¥4.17, not the truncated ¥4.16
    assert "「联通物联网 年包 50MB」¥50.00/1 年（每月 ¥4.17）" in ask
