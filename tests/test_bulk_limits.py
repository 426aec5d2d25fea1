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


def slow_xlsx(rows: int, ignored_columns: int = 10) -> bytes:
    """A plain, valid workbook that takes seconds of CPU to read: ICCID, expiry and columns
    the importer ignores, as agents' files have."""
    extra = b"".join(b"<c><v>%d</v></c>" % n for n in range(ignored_columns))
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


# --- the parts openpyxl loads whole: styles, defined names ---------------------------------------

STYLES_HEAD = (
    b'<?xml version="1.0"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
    b'2006/main"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    b'<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
    b'<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    b'<cellStyleXfs count="1"><xf/></cellStyleXfs>'
)
STYLES_TAIL = (
    b'<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    b"</styleSheet>"
)
XF = b'<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'  # 62 bytes


def styles_bomb(count: int, xf: bytes = XF) -> bytes:
    body = b'<cellXfs count="%d">' % count + xf * count + b"</cellXfs>" + STYLES_TAIL
    return with_parts(
        {"xl/styles.xml": STYLES_HEAD + body},
        base=xlsx_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]]),
    )


def test_a_styles_part_that_inflates_to_megabytes_is_refused_in_a_moment() -> None:
    """600,000 cell formats: a 110 KB upload, 37 MB inflated (under the 50 MB in all), which
    openpyxl took 20 s of CPU to load. Refused at the part's own bound, before openpyxl."""
    content = styles_bomb(600_000)
    assert len(content) < 200_000
    started = time.process_time()
    error = refused(content)
    assert error.key == "import.file.part_too_big"
    assert error.params == {"max_kb": 1024}
    assert time.process_time() - started < 3


def test_many_tiny_styles_or_names_are_counted_like_shared_strings() -> None:
    """Short entries pack many objects into a small part: counted, whatever the part's name."""
    tiny = styles_bomb(CHAT_LIMITS.max_entries, xf=b"<xf/>")
    assert len(zipfile.ZipFile(io.BytesIO(tiny)).read("xl/styles.xml")) < CHAT_LIMITS.max_part_bytes
    assert refused(tiny).key == "import.file.too_many_entries"
    base = xlsx_bytes([["ICCID", "到期日"], [iccid(1), "2027-01-01"]])
    workbook = zipfile.ZipFile(io.BytesIO(base)).read("xl/workbook.xml")
    names = b"".join(b'<definedName name="n%d">S!$A$1</definedName>' % n for n in range(20_001))
    named = workbook.replace(
        b"</workbook>", b"<definedNames>" + names + b"</definedNames></workbook>"
    )
    error = refused(with_parts({"xl/workbook.xml": named}, base=base))
    assert error.key == "import.file.too_many_entries"
    assert error.params == {"max": 20_000}
    hidden = with_parts(
        {"xl/worksheets/extra.xml": b"<x>" + b"<xf/>" * 20_001 + b"</x>"}, base=base
    )
    assert refused(hidden).key == "import.file.too_many_entries"
    # an ordinary workbook, with its few styles and a name, reads; the command line allows more
    ordinary = styles_bomb(300)
    assert read_sheet(ordinary, CHAT_LIMITS).headers == ("ICCID", "到期日")
    assert read_sheet(tiny, CLI_LIMITS).headers == ("ICCID", "到期日")


async def test_a_styles_bomb_gets_a_clear_answer_in_the_chat(alice_en: ChatDriver) -> None:
    said = texts(await alice_en.send_document("cards.xlsx", styles_bomb(600_000), "/import"))
    assert "more than 1024 KB of formatting or names" in said
    assert "damaged" not in said


async def test_one_upload_at_a_time_per_chat_and_per_user(
    alice: ChatDriver, emulator: BotApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files built to be slow could hold both worker slots: each chat and each user has one
    upload in flight at most, so another user's import is answered meanwhile."""
    monkeypatch.setattr(bot.bulk.worker, "CHAT_WORKER", WorkerLimits(cpu_seconds=2))
    # Within the chat's limits (rows, cells), and several times the 2 s of CPU to read even on
    # a fast machine (about 5 s where 10 ignored columns took 1.4 s).
    slow = slow_xlsx(19_000, ignored_columns=40)
    eve_user = emulator.user(5001, "Eve")
    eve = ChatDriver(alice.app, emulator, emulator.private_chat(eve_user), eve_user)
    mallory_user = emulator.user(5002, "Mallory")
    shop = emulator.group_chat(-5001, "Eve's shop", admins=[5001, 5002])
    eve_in_group = ChatDriver(alice.app, emulator, shop, eve_user)
    mallory_in_group = ChatDriver(alice.app, emulator, shop, mallory_user)
    first = asyncio.create_task(eve_in_group.send_document("a.xlsx", slow, caption="/import"))
    await asyncio.sleep(0.5)  # the worker is reading by now
    same_user = texts(await eve.send_document("b.xlsx", slow, caption="/import"))
    assert "我还在读之前发来的一个文件" in same_user
    same_chat = texts(await mallory_in_group.send_document("c.xlsx", slow, caption="/import"))
    assert "我还在读之前发来的一个文件" in same_chat
    legit = csv_bytes([["ICCID", "到期日"], [iccid(7), "2027-01-01"]])
    started = time.monotonic()
    carol = texts(await alice.send_document("c.csv", legit, caption="/import"))
    assert "新增：1" in carol
    assert not first.done()  # Alice was answered while Eve's file was still being read
    assert time.monotonic() - started < 5
    assert "读取它用的时间超过了上限（2 秒）" in texts(await first)
    # done: Eve may send the next file
    assert "新增：1" in texts(await eve.send_document("d.csv", legit, caption="/import"))
