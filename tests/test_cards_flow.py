"""/cards, /expiring and the card detail view, end to end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from cards_util import iccid

from bot.chatdriver import ChatDriver, texts
from bot.models import CardDraft
from storage.sqlite import SqliteStorage

BOTH_CHANNELS = True  # each test that uses alice also runs as a WeCom user (conftest)

TODAY = date(2026, 11, 25)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


async def add_cards(storage: SqliteStorage, chat_id: int, offsets: list[int]) -> None:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    for n, days in enumerate(offsets):
        draft = CardDraft(iccid=iccid(n), expiry=TODAY + timedelta(days=days), label=f"T{n}")
        await storage.add_card(chat_id, draft, CREATED)


async def test_no_cards_says_how_to_add_one(alice: ChatDriver) -> None:
    said = texts(await alice.send("/cards"))
    assert "还没有登记" in said
    assert "/addcard" in said


async def test_cards_sorted_by_expiry_with_status_and_days(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add_cards(storage, alice.chat_id, [100, -3, 0, 12, -120])
    (event,) = await alice.send("/cards")
    lines = [line for line in (event.text or "").splitlines() if line[:1].isdigit()]
    assert len(lines) == 5
    assert "已过期 120 天" in lines[0]
    assert "🔴 已停机 3 天" in lines[1]  # the same words as in the digest
    assert "今天到期" in lines[2]
    assert "即将到期 · 剩 12 天" in lines[3]
    assert "正常 · 剩 100 天" in lines[4]
    assert iccid(1) in lines[1]  # private chats see the whole ICCID


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_pages_of_ten_with_arrows(alice: ChatDriver, storage: SqliteStorage) -> None:
    await add_cards(storage, alice.chat_id, list(range(1, 26)))
    first = texts(await alice.send("/cards"))
    assert "共 25 张" in first
    assert "第 1/3 页" in first
    (second,) = [e for e in await alice.press("▶") if e.kind != "callback_answer"]
    assert second.kind == "edit"  # the list is edited in place, not re-sent
    assert "第 2/3 页" in (second.text or "")
    assert "11. " in (second.text or "")
    third = texts(await alice.press("▶"))
    assert "第 3/3 页" in third
    assert "25. " in third
    assert "第 2/3 页" in texts(await alice.press("◀"))


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_five_thousand_cards_page_to_the_end(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add_cards(storage, alice.chat_id, [n % 400 for n in range(5000)])
    assert "共 5000 张" in texts(await alice.send("/cards"))
    last = texts(await alice.press_data("pg:a:499"))
    assert "第 500/500 页" in last
    assert "5000. " in last
    # a page past the end (a stale button after deletions) shows the last page, not nothing
    await alice.press_data("pg:a:0")
    assert "第 500/500 页" in texts(await alice.press_data("pg:a:9999"))


async def test_tapping_a_card_opens_its_detail(alice: ChatDriver, storage: SqliteStorage) -> None:
    await add_cards(storage, alice.chat_id, [20])
    await alice.send("/cards")
    (detail,) = [e for e in await alice.press("T0") if e.kind != "callback_answer"]
    assert detail.text is not None
    assert iccid(0) in detail.text
    assert "2026-12-15" in detail.text
    assert "暂无续费记录" in detail.text
    labels = [text for row in detail.buttons for text, _ in row]
    assert labels == ["🔄 续费", "✏️ 编辑", "🗑 删除", "🗄 停用", "◀ 返回列表"]


async def test_expiring_lists_only_soon_and_expired_most_urgent_first(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add_cards(storage, alice.chat_id, [40, 30, 5, -2])
    default = texts(await alice.send("/expiring"))
    assert "共 3 张" in default
    assert "剩 40 天" not in default
    assert default.index("停机 2 天") < default.index("剩 5 天") < default.index("剩 30 天")
    week = texts(await alice.send("/expiring 7"))
    assert "共 2 张" in week
    assert "7 天内" in week


async def test_expiring_with_nothing_due_and_bad_days(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add_cards(storage, alice.chat_id, [90])
    assert "没有到期的卡" in texts(await alice.send("/expiring"))
    assert "0 到 3650" in texts(await alice.send("/expiring soon"))


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_the_page_counter_says_where_you_are(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add_cards(storage, alice.chat_id, list(range(1, 26)))
    await alice.send("/cards")
    await alice.press("▶")
    (answered,) = await alice.press("2/3")
    assert answered.kind == "callback_answer"
    assert "第 2 页，共 3 页" in (answered.text or "")
    assert "◀ ▶" in (answered.text or "")


async def test_english_lists_say_1_day_and_1_card(
    alice_en: ChatDriver, storage: SqliteStorage
) -> None:
    await add_cards(storage, alice_en.chat_id, [1])
    said = texts(await alice_en.send("/cards"))
    assert "1 day left" in said
    assert "1 days" not in said
    assert "(1 card)" in texts(await alice_en.send("/stats"))
    draft = CardDraft(iccid=iccid(99), expiry=TODAY - timedelta(days=1))  # expired yesterday
    await storage.add_card(alice_en.chat_id, draft, CREATED)
    said = texts(await alice_en.send("/expiring 1"))
    assert "Expiring within 1 day or expired" in said
    assert "Suspended for 1 day" in said
    assert "(2 cards)" in texts(await alice_en.send("/stats"))


async def test_a_card_without_a_label_leaves_no_stray_space(
    alice: ChatDriver, alice_en: ChatDriver, storage: SqliteStorage
) -> None:
    """The label step can be skipped: sentences that name the card then read ICCID + punctuation,
    not "8986…  · 到期" or "8986… :" with a gap where the label would be."""
    for driver in (alice, alice_en):
        await storage.ensure_chat(driver.chat_id, is_group=False)
        draft = CardDraft(iccid=iccid(1), expiry=TODAY + timedelta(days=40))
        await storage.add_card(driver.chat_id, draft, CREATED)
        said = [texts(await driver.send("/cards"))]
        said.append(texts(await driver.send(f"/renew {iccid(1)[-4:]}")))
        said.append(texts(await driver.send("/cancel")))
        said.append(texts(await driver.send(f"/renew {iccid(1)[-4:]} 3m")))
        said.append(texts(await driver.send("/cancel")))
        said.append(texts(await driver.send(f"/edit {iccid(1)[-4:]}")))
        said.append(texts(await driver.send(f"/delete {iccid(1)[-4:]}")))
        if "🗑" in said[-1]:  # a picker first: open the confirmation
            said.append(texts(await driver.press("🗑")))
        text = "\n".join(said)
        assert iccid(1) in text
        for gap in ("  ", " ：", " :", " ?", " （", " 吗"):
            assert f"{iccid(1)}{gap}" not in text, (gap, text)
