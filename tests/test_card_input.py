"""What people type about a card, end to end: ICCIDs with look-alike letters, the carrier from
the ICCID's prefix, a plan at the end of one-line /addcard, empty periods, expiries too far off,
and masked ICCIDs on every group screen."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from cards_util import bad_luhn, iccid
from icalendar import Calendar

from bot.chatdriver import ChatDriver, texts
from bot.emulator.records import ChatEvent
from bot.models import LATEST_EXPIRY, Card, CardDraft, Carrier, Period
from storage.sqlite import SqliteStorage

BOTH_CHANNELS = True  # each test that uses alice also runs as a WeCom user (conftest)

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def documents(events: list[ChatEvent]) -> list[ChatEvent]:
    return [event for event in events if event.kind == "document"]


async def add(storage: SqliteStorage, chat_id: int, n: int, expiry: date, **extra: object) -> Card:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    draft = CardDraft(iccid=iccid(n), expiry=expiry, label=f"T{n}", **extra)
    return await storage.add_card(chat_id, draft, CREATED)


# --- empty periods and expiries too far off ----------------------------------------------------


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_renew_by_zero_days_is_refused(alice: ChatDriver, storage: SqliteStorage) -> None:
    card = await add(storage, alice.chat_id, 1238, date(2027, 1, 31))
    said = texts(await alice.send(f"/renew {iccid(1238)[-4:]} 0天"))
    assert "0天" in said
    assert "确认续费" not in said
    assert alice.emulator.chat_messages(alice.chat_id)[-1].buttons == []
    assert await storage.get_card(alice.chat_id, card.id) == card
    assert await storage.list_renewals(alice.chat_id, card.id) == []


async def test_addcard_with_zero_days_says_so(alice: ChatDriver, storage: SqliteStorage) -> None:
    assert "0 天" in texts(await alice.send(f"/addcard {iccid(2)} 0天"))
    assert await storage.count_cards(alice.chat_id) == 0


async def test_renewing_past_the_latest_expiry_is_refused_politely(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 3, date(2100, 6, 30))
    said = texts(await alice.send(f"/renew {iccid(3)[-4:]} 10年"))
    assert LATEST_EXPIRY.isoformat() in said
    assert "太远" in said
    # the same question again: a shorter period still works
    confirm = texts(await alice.send("3个月"))
    assert "没看懂" not in confirm
    await alice.send("30")
    await alice.press("确认续费")
    renewed = await storage.get_card(alice.chat_id, card.id)
    assert renewed is not None
    assert renewed.expiry == date(2100, 9, 30)


async def test_a_card_at_the_end_of_time_breaks_nothing(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    """One such card (saved before expiries were bounded) used to crash /renew and /calendar."""
    card = await add(storage, alice.chat_id, 4, date.max)
    await add(storage, alice.chat_id, 5, date(2027, 1, 31))
    said = texts(await alice.send(f"/renew {iccid(4)[-4:]} 1个月"))
    assert LATEST_EXPIRY.isoformat() in said
    for command in ("/calendar", "/calendar 730"):  # past every horizon: no event, no crash
        (ics,) = documents(await alice.send(command))
        events = Calendar.from_ical(ics.content or b"").walk("VEVENT")
        assert sorted(e.decoded("dtstart") for e in events) == [date(2027, 1, 31)]
    assert "9999-12-31" in texts(await alice.send("/cards"))
    assert "9999-12-31" in texts(await alice.press_data(f"cd:{card.id}"))
    assert await storage.list_renewals(alice.chat_id, card.id) == []
    assert texts(await alice.send("/stats"))
    assert texts(await alice.send("/cost"))


# --- ICCIDs with letters that look like digits ---------------------------------------------------


def lookalike(number: str) -> str:
    """What a person copying the card by eye types: O for 0 and l for 1, here and there."""
    return number[:4] + number[4:6].replace("0", "O") + number[6:].replace("1", "l", 1)


async def test_letters_for_digits_are_flagged_and_the_digits_offered(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    typed = lookalike(iccid(11))
    assert typed != iccid(11)
    await alice.send("/addcard")
    warning = texts(await alice.send(typed))
    assert "看起来像是数字 0 和 1" in warning
    assert iccid(11) in warning  # the corrected digits, to compare with the card
    assert "第 2 步" in texts(await alice.press("改成数字"))
    await alice.send("2027-01-31")
    await alice.press("中国移动")
    await alice.press("跳过")
    await alice.press("跳过")
    await alice.press("保存")
    assert await storage.get_card_by_iccid(alice.chat_id, iccid(11)) is not None
    assert await storage.count_cards(alice.chat_id) == 1


async def test_letters_for_the_digits_of_a_card_already_there_open_that_card(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await add(storage, alice.chat_id, 12, date(2027, 3, 1))
    await alice.send("/addcard")
    said = texts(await alice.send(lookalike(iccid(12))))
    assert "已经有卡号" in said
    assert iccid(12) in said
    said = texts(await alice.send(f"/addcard {lookalike(iccid(12))} 2027-05-01"))
    assert "已经有卡号" in said
    assert await storage.count_cards(alice.chat_id) == 1


async def test_one_line_with_letters_for_digits_asks_before_saving(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    typed = lookalike(iccid(13))
    summary = texts(await alice.send(f"/addcard {typed} 2027-01-31 收银台1"))
    assert "可能是数字 0 和 1" in summary
    assert await storage.count_cards(alice.chat_id) == 0
    await alice.press("改成数字后保存")
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(13))
    assert card is not None
    assert card.carrier is Carrier.CHINA_MOBILE  # from the corrected digits' prefix 898600
    # "the letters are right": kept as typed
    await alice.send(f"/addcard {lookalike(iccid(14))} 2027-01-31")
    await alice.press_data("ac:save")
    assert await storage.get_card_by_iccid(alice.chat_id, lookalike(iccid(14)).upper()) is not None


async def test_one_line_digits_with_a_wrong_check_digit_are_questioned_too(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    """ "Use digits" on a number whose digits version fails the check digit: the bot asks about
    the check digit before saving, as the step-by-step flow does."""
    typed = lookalike(bad_luhn(15))
    await alice.send(f"/addcard {typed} 2027-01-31")
    said = texts(await alice.press("改成数字后保存"))
    assert "校验码对不上" in said
    assert await storage.count_cards(alice.chat_id) == 0
    await alice.press("保存")
    assert await storage.get_card_by_iccid(alice.chat_id, bad_luhn(15)) is not None


async def test_in_a_group_the_lookalike_warning_shows_the_letters_it_is_about(
    group: dict[str, ChatDriver],
) -> None:
    """Masked to the last 6, "8986OO12…901238" and "89860012…901238" read the same: the warning
    shows both from the first character that differs."""
    bob = group["bob"]
    typed = lookalike(iccid(16))
    await bob.send("/addcard")
    said = texts(await bob.send(typed))
    assert typed[4:].upper() in said  # the letters, as typed
    assert iccid(16)[4:] in said  # and the digits offered instead
    assert typed.upper() not in said  # still masked before them


# --- the carrier from the ICCID's issuer prefix --------------------------------------------------


async def test_one_line_without_a_carrier_takes_the_prefixs(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    for n, prefix, carrier in [
        (21, "8986001", Carrier.CHINA_MOBILE),
        (22, "8986061", Carrier.CHINA_UNICOM),
        (23, "8986111", Carrier.CHINA_TELECOM),
        (24, "8985001", Carrier.OTHER),  # not a Chinese issuer: nothing to infer
    ]:
        said = texts(await alice.send(f"/addcard {iccid(n, prefix)} 2027-01-31 收银台{n}"))
        card = await storage.get_card_by_iccid(alice.chat_id, iccid(n, prefix))
        assert card is not None
        assert card.carrier is carrier
        assert card.label == f"收银台{n}"
        assert ("按卡号前缀" in said) == (carrier is not Carrier.OTHER)


async def test_a_typed_carrier_wins_with_a_note_when_the_prefix_disagrees(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    said = texts(await alice.send(f"/addcard {iccid(25, '8986031')} 2027-01-31 联通 仓库"))
    assert "898603 是中国电信的，你选的是中国联通" in said
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(25, "8986031"))
    assert card is not None
    assert card.carrier is Carrier.CHINA_UNICOM
    said = texts(await alice.send(f"/addcard {iccid(26, '8986031')} 2027-01-31 电信 仓库"))
    assert "⚠️" not in said


async def test_step_by_step_preselects_the_prefixs_carrier(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    await alice.send("/addcard")
    await alice.send(iccid(27, "8986011"))
    question = texts(await alice.send("2027-01-31"))
    assert "898601，这是中国联通的卡" in question
    assert alice.find_button("✅")[1] == "ac:car:cucc"
    await alice.press("中国移动")  # the person's choice wins
    await alice.press("跳过")
    summary = texts(await alice.press("跳过"))
    assert "898601 是中国联通的，你选的是中国移动" in summary
    await alice.press("保存")
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(27, "8986011"))
    assert card is not None
    assert card.carrier is Carrier.CHINA_MOBILE


# --- a plan at the end of one-line /addcard ------------------------------------------------------


async def test_one_line_reads_a_trailing_plan(alice: ChatDriver, storage: SqliteStorage) -> None:
    await alice.send(f"/addcard {iccid(31)} 2027-01-31 移动 收银台1 3个月 30元")
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(31))
    assert card is not None
    assert card.label == "收银台1"
    assert card.plan_period == Period(months=3)
    assert card.plan_price_fen == 3000
    await alice.send(f"/addcard {iccid(32)} 2027-01-31 1年")
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(32))
    assert card is not None
    assert (card.label, card.plan_period, card.plan_price_fen) == (None, Period(months=12), None)
    # a number at the end of a label stays in the label
    await alice.send(f"/addcard {iccid(33)} 2027-01-31 电信 收银台 2")
    card = await storage.get_card_by_iccid(alice.chat_id, iccid(33))
    assert card is not None
    assert (card.label, card.plan_period) == ("收银台 2", None)


# --- masking in groups ----------------------------------------------------------------------------


@pytest.mark.telegram_only  # reads the Telegram emulator's records (edits, ids)
async def test_groups_see_the_last_six_on_every_pick_button_and_confirmation(
    group: dict[str, ChatDriver], storage: SqliteStorage
) -> None:
    bob, boss = group["bob"], group["boss"]
    await storage.ensure_chat(bob.chat_id, is_group=True)
    for number, label in (("89860012345678901238", "A"), ("89860099999999901238", "B")):
        draft = CardDraft(iccid=number, expiry=date(2026, 12, 1), label=label)
        await storage.add_card(bob.chat_id, draft, CREATED)
    for driver, command in ((bob, "/renew 1238 3m"), (bob, "/edit 1238"), (boss, "/delete 1238")):
        await driver.send(command)
        buttons = [
            text
            for row in driver.emulator.chat_messages(bob.chat_id)[-1].buttons
            for text, _ in row
        ]
        assert len(buttons) == 2, command
        for text in buttons:
            assert "…901238" in text, command
            assert "78901238" not in text, command
            assert "99901238" not in text, command
        await driver.send("/cancel")
    await bob.send("/addcard")
    await bob.send("89860012345678901246")
    await bob.send("2027-01-31")
    await bob.press("中国移动")
    await bob.press("跳过")
    summary = texts(await bob.press("跳过"))
    assert "…901246" in summary
    assert "89860012345678901246" not in summary


@pytest.mark.telegram_only  # data WeCom can't send: a card has only its keys
async def test_editing_an_iccid_with_letters_for_digits_offers_the_digits(
    alice: ChatDriver, storage: SqliteStorage
) -> None:
    card = await add(storage, alice.chat_id, 15, date(2027, 3, 1))
    await alice.send("/cards")  # a message for the button to hang on
    await alice.press_data(f"ef:{card.id}:iccid")
    warning = texts(await alice.send(lookalike(iccid(16))))
    assert iccid(16) in warning
    assert await storage.get_card(alice.chat_id, card.id) == card
    assert "已保存" in texts(await alice.press("改成数字"))
    edited = await storage.get_card(alice.chat_id, card.id)
    assert edited is not None
    assert edited.iccid == iccid(16)
