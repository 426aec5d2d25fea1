"""Hostile or odd input is stored and shown back verbatim, never executed, never a crash."""

from __future__ import annotations

import pytest
from cards_util import iccid

from bot.chatdriver import ChatDriver, texts
from storage.sqlite import SqliteStorage

ODD_LABELS = [
    "Robert'); DROP TABLE cards;--",
    "1 OR 1=1; SELECT * FROM chats",
    "<script>alert(1)</script> & <b>bold</b>",
    "収银台 🧾💳🔥 👨‍👩‍👧‍👦",
    "\u202eالمتجر الرئيسي\u202c (RTL)",
    "%_% {name} {0} %s",
]


@pytest.mark.parametrize("label", ODD_LABELS)
async def test_odd_labels_round_trip_verbatim(
    alice: ChatDriver, storage: SqliteStorage, label: str
) -> None:
    said = texts(await alice.send(f"/addcard {iccid(1)} 2027-01-01 移动 {label}"))
    assert "已保存" in said
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(1))
    assert card is not None
    assert card.label == label
    assert label in texts(await alice.send("/cards"))
    assert label in texts(await alice.press(label[:6]))
    assert await storage.count_cards(alice.chat_id) == 1  # and the table is still there


async def test_control_characters_get_a_friendly_error(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    said = texts(await alice.send(f"/addcard {iccid(1)} 2027-01-01 移动 bad\x07bell"))
    assert "控制字符" in said
    assert await storage.count_cards(alice.chat_id) == 0


@pytest.mark.parametrize(
    "text",
    ["8" * 4096, "日" * 4096, "/renew " + "9" * 4000, "/expiring " + "9" * 4000, "🔥" * 2048],
)
async def test_huge_messages_are_answered_briefly(alice: ChatDriver, text: str) -> None:
    await alice.send("/addcard")
    for event in await alice.send(text):
        assert len(event.text or "") < 1000  # a short complaint, not an echo of the input


async def test_sql_in_arguments_finds_nothing_and_breaks_nothing(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await alice.send(f"/addcard {iccid(2)} 2027-01-01")
    for command in ("/renew", "/edit", "/delete"):
        said = texts(await alice.send(f"{command} ' OR '1'='1 3m"))
        assert "没有找到" in said or "没看懂" in said  # a friendly answer either way
    assert "没有找到" in texts(await alice.send("/renew %%%% 3m"))
    assert await storage.count_cards(alice.chat_id) == 1
