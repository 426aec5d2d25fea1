"""Files built to be expensive: zip bombs, blank rows, 16,384 columns, huge string tables.

Each is refused at the limit it crosses, with a message that names the limit, and the reading
happens in a worker process whose CPU and memory limits hold, so the bot goes on serving the
other chats meanwhile.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zipfile
from dataclasses import replace

import pytest
from cards_util import iccid
from fixtures.bulk_files import csv_bytes, xlsx_bytes

import bot.bulk.worker
from bot.bulk.reading import CHAT_LIMITS, CLI_LIMITS, Limits, read_sheet
from bot.bulk.worker import WorkerLimits, read_sheet_in_worker
from bot.chatdriver import ChatDriver, texts
from bot.emulator import BotApiEmulator
from bot.errors import InputError

SHEET = "xl/worksheets/sheet1.xml"
HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
TAIL = b"</sheetData></worksheet>"


def refused(content: bytes, limits: Limits = CHAT_LIMITS) -> InputError:
    with pytest.raises(InputError) as caught:
        read_sheet(content, limits)
    return caught.value


def inline(ref: str, text: str) -> bytes:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'.encode()


def header_row() -> bytes:
    return b'<row r="1">' + inline("A1", "ICCID") + inline("B1", "到期日") + b"</row>"


def card_row(number: int, row: int) -> bytes:
    cells = inline(f"A{row}", iccid(number)) + inline(f"B{row}", "2027-01-01")
    return f'<row r="{row}">'.encode() + cells + b"</row>"


def with_parts(
    parts: dict[str, bytes], *, lie: dict[str, int] | None = None, base: bytes | None = None
) -> bytes:
    """A real workbook (openpyxl's) with some parts replaced or added. ``lie``: claim these
    sizes for those parts in the zip's headers, whatever they really inflate to."""
    source_bytes = base if base is not None else xlsx_bytes([["ICCID", "到期日"]])
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(source_bytes)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            data = parts.pop(item.filename, None)
            target.writestr(item.filename, source.read(item) if data is None else data)
        for name, data in parts.items():
            target.writestr(name, data)
    content = bytearray(out.getvalue())
    for name, size in (lie or {}).items():
        _patch_size(content, name.encode(), size)
    return bytes(content)


def _patch_size(content: bytearray, name: bytes, size: int) -> None:
    """Overwrite the uncompressed size of ``name`` in its local and central headers."""
    for signature, size_at, name_len_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),  # local file header
        (b"PK\x01\x02", 24, 28, 46),  # central directory entry
    ):
        at = 0
        while (at := content.find(signature, at)) >= 0:
            (name_len,) = struct.unpack_from("<H", content, at + name_len_at)
            if bytes(content[at + name_at : at + name_at + name_len]) == name:
                struct.pack_into("<I", content, at + size_at, size)
            at += 4


def sheet_xml(*rows: bytes) -> bytes:
    return HEAD + b"".join(rows) + TAIL


# --- the bombs ------------------------------------------------------------------------------


def test_a_zip_whose_part_inflates_far_beyond_its_header_is_refused_fast() -> None:
    blank = b"<row/>" * 4_000_000  # 24 MB of blank rows, a few dozen KB zipped
    content = with_parts({SHEET: sheet_xml(header_row(), blank)}, lie={SHEET: 10_000})
    assert len(content) < 400_000
    started = time.process_time()
    error = refused(content)
    assert error.key == "import.file.damaged"  # the sizes don't add up: the headers lied
    assert time.process_time() - started < 2


def test_a_zip_that_really_inflates_too_far_is_refused_naming_the_limit() -> None:
    content = with_parts({SHEET: sheet_xml(header_row(), b"<row/>" * 10_000_000)})
    error = refused(content)
    assert (error.key, error.params) == ("import.file.too_big_unpacked", {"max": 50})


def test_many_blank_rows_count_against_the_limit() -> None:
    content = with_parts({SHEET: sheet_xml(header_row(), card_row(1, 2), b"<row/>" * 60_000)})
    error = refused(content)
    assert (error.key, error.params) == ("import.file.too_many_lines", {"max": 50_000})


def test_a_gap_of_a_million_rows_counts_too() -> None:
    far = b'<row r="1048576">' + inline("A1048576", "x") + b"</row>"
    error = refused(with_parts({SHEET: sheet_xml(header_row(), card_row(1, 2), far)}))
    assert error.key == "import.file.too_many_lines"


def test_16384_columns_are_refused_naming_the_row() -> None:
    wide = (
        b'<row r="2">' + b"<c/>" * 16_383 + b'<c r="XFD2" t="inlineStr"><is><t>x</t></is></c></row>'
    )
    error = refused(with_parts({SHEET: sheet_xml(header_row(), wide, card_row(1, 3))}))
    assert (error.key, error.params) == ("import.file.too_many_columns", {"row": 2, "max": 500})


def test_cells_are_counted_blank_ones_too() -> None:
    rows = [f'<row r="{n}">'.encode() + b"<c/>" * 400 + b"</row>" for n in range(2, 200)]
    limits = replace(CHAT_LIMITS, max_cells=50_000)  # the chat's 1,000,000 takes seconds
    error = refused(with_parts({SHEET: sheet_xml(header_row(), *rows)}), limits)
    assert (error.key, error.params) == ("import.file.too_many_cells", {"max": 50_000})


def test_a_huge_shared_string_table_is_refused_before_it_is_loaded() -> None:
    strings = b"<si><t>x</t></si>" * 400_000
    sst = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + strings
        + b"</sst>"
    )
    content = with_parts({"xl/sharedStrings.xml": sst})
    error = refused(content)
    assert (error.key, error.params) == ("import.file.too_many_strings", {"max": 300_000})
    # the same table under a namespace prefix, cut by the 1 MB chunks anywhere
    prefixed = sst.replace(b"<si>", b"<x:si>").replace(b"</si>", b"</x:si>")
    assert refused(with_parts({"xl/sharedStrings.xml": prefixed})).key == (
        "import.file.too_many_strings"
    )


def test_a_file_within_every_limit_still_reads() -> None:
    rows = [card_row(n, n + 1) for n in range(1, 2001)]
    sheet = read_sheet(
        with_parts({SHEET: sheet_xml(header_row(), *rows, b"<row/>" * 100)}), CHAT_LIMITS
    )
    assert len(sheet.rows) == 2000


# --- CSV is bounded the same way ------------------------------------------------------------


def test_csv_blank_lines_columns_and_cell_length_are_bounded() -> None:
    head = f"ICCID,到期日\r\n{iccid(1)},2027-01-01\r\n"
    blank = refused((head + "\r\n" * 60_000).encode())
    assert (blank.key, blank.params) == ("import.file.too_many_lines", {"max": 50_000})
    wide = refused((head + "x," * 600 + "\r\n").encode())
    assert (wide.key, wide.params) == ("import.file.too_many_columns", {"row": 3, "max": 500})
    long = refused((head + f"{iccid(2)},{'9' * 40_000}\r\n").encode())
    assert (long.key, long.params) == ("import.file.cell_too_long", {"row": 3, "max": 32_767})


# --- the worker process ---------------------------------------------------------------------


def slow_xlsx(rows: int) -> bytes:
    """A plain, valid workbook that takes seconds of CPU to read: ICCID, expiry and ten
    columns the importer ignores, as agents' files have."""
    extra = b"".join(b"<c><v>%d</v></c>" % n for n in range(10))
    body = [card_row(n, n + 1).replace(b"</row>", extra + b"</row>") for n in range(1, rows + 1)]
    return with_parts({SHEET: sheet_xml(header_row(), *body)})


def test_the_worker_reads_a_sheet_like_the_parser() -> None:
    content = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"], [iccid(2), "2027-02-01"]])
    assert read_sheet_in_worker(content, CHAT_LIMITS) == read_sheet(content, CHAT_LIMITS)
    with pytest.raises(InputError) as caught:
        read_sheet_in_worker(b"\x89PNG\r\n\x1a\n" + bytes(256), CHAT_LIMITS)
    assert caught.value.key == "import.file.not_spreadsheet"


def test_a_worker_over_its_cpu_limit_is_stopped_and_reported() -> None:
    content = slow_xlsx(30_000)
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        read_sheet_in_worker(content, CLI_LIMITS, WorkerLimits(cpu_seconds=1))
    assert (caught.value.key, caught.value.params) == ("import.file.too_slow", {"seconds": 1})
    assert time.monotonic() - started < 30


def test_a_worker_over_its_memory_limit_is_reported_not_fatal() -> None:
    content = csv_bytes([["ICCID", "到期日"], *([iccid(n), "2027-01-01"] for n in range(100_000))])
    with pytest.raises(InputError) as caught:
        read_sheet_in_worker(content, CLI_LIMITS, WorkerLimits(memory_mb=16))
    assert (caught.value.key, caught.value.params) == ("import.file.too_much_memory", {"mb": 16})
    # and the next upload is read as usual
    small = csv_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    assert len(read_sheet_in_worker(small, CHAT_LIMITS).rows) == 1


# --- in the chat ----------------------------------------------------------------------------


async def test_the_chat_hears_which_limit_a_bomb_crossed(
    alice: ChatDriver, alice_en: ChatDriver
) -> None:
    bomb = with_parts({SHEET: sheet_xml(header_row(), card_row(1, 2), b"<row/>" * 60_000)})
    said = texts(await alice.send_document("cards.xlsx", bomb, caption="/import"))
    assert "空行也算" in said
    assert "50000" in said
    wide = csv_bytes([["ICCID", "到期日", *(f"c{n}" for n in range(600))]])
    said = texts(await alice_en.send_document("cards.csv", wide, caption="/import"))
    assert "Row 1 uses more columns than the limit (500)" in said


async def test_other_chats_are_served_while_a_heavy_file_is_read(
    alice: ChatDriver,
    emulator: BotApiEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reading burns its CPU in the worker, not in the bot: the bot's own CPU time hardly
    moves, another chat's /cards is answered meanwhile, and the file is refused at the limit."""
    monkeypatch.setattr(bot.bulk.worker, "CHAT_WORKER", WorkerLimits(cpu_seconds=1))
    content = slow_xlsx(19_000)  # within the chat's limits; seconds of CPU to read
    bob_user = emulator.user(9, "Bob")
    bob = ChatDriver(alice.app, emulator, emulator.private_chat(bob_user), bob_user)
    started = time.process_time()
    importing = asyncio.create_task(alice.send_document("big.xlsx", content, caption="/import"))
    await asyncio.sleep(0.5)  # the worker is reading by now
    said = texts(await bob.send("/cards"))
    assert said  # Bob got his answer…
    assert not importing.done()  # …while Alice's file was still being read
    alice_said = texts(await importing)
    assert "读取它用的时间超过了上限（1 秒）" in alice_said
    assert time.process_time() - started < 1.5
