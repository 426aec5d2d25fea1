"""Reading an uploaded file into rows of cells: CSV in the encodings Excel writes, or XLSX.

The kind of file is recognised by its first bytes, not by its name: a PNG renamed ``.xlsx`` is
refused as "not a spreadsheet", an old ``.xls`` is asked to be saved again as ``.xlsx``.
Everything that can go wrong with the file as a whole is an ``InputError`` (``import.file.*``).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Literal

from openpyxl import load_workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from bot.bulk.cells import Cell, Uncomputed, cell_text, from_csv, is_blank
from bot.bulk.columns import HEADER_SEARCH_ROWS, Field, field_for
from bot.errors import InputError

log = logging.getLogger(__name__)

FileKind = Literal["csv", "xlsx"]
Progress = Callable[[int], None]  # called with the number of data rows read so far

MB = 1024 * 1024
PROGRESS_EVERY = 1000
_CSV_DELIMITERS = (",", "\t", ";", "|")
_SNIFF_RECORDS = HEADER_SEARCH_ROWS
_MAX_CONTROL_SHARE = 0.01  # more control characters than this: binary data that happened to decode
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (Excel 97–2003), .doc
# PNG, JPEG, GIF, PDF, RAR, 7-Zip, gzip: common things sent by mistake
_BINARY = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"Rar!", b"7z\xbc\xaf", b"\x1f\x8b")
_ALLOWED_CONTROLS = frozenset("\t\r\n")
_CHUNK = 1024 * 1024
# an entry of the shared-string table, <si> or <x:si …>; 64 bytes cover the longest match
_SHARED_STRING_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,31}:)?si[\s/>]")
_TAG_OVERLAP = 64
# What openpyxl builds an object for while it loads a part whole, before the first row: cell
# formats, fonts, fills, borders, number formats, named styles, differential formats (styles.xml),
# defined names and sheets (workbook.xml), content types and relationships. Counted in every
# part, whatever its name: a workbook may point openpyxl at a part under any path.
_ENTRY_TAG = re.compile(
    rb"<(?:[A-Za-z_][\w.-]{0,31}:)?"
    rb"(?:xf|font|fill|border|numFmt|cellStyle|dxf|definedName|sheet|Override|Default|Relationship)"
    rb"[\s/>]"
)
_SHEET_PART = re.compile(r"xl/worksheets/[^/]+\.xml")
_STRINGS_PART = "xl/sharedstrings.xml"
_BINARY_PART = re.compile(r"(?:xl/media/|xl/embeddings/|.*\.bin$)", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """What an upload may hold. Each bound is checked while the file streams in, so a small
    file that expands enormously (a zip bomb, a million blank rows) stops at the bound."""

    max_bytes: int
    max_rows: int  # data rows (blank rows not counted)
    max_unpacked_bytes: int  # an XLSX is a zip: what its parts may really inflate to, together
    max_lines: int = 50_000  # rows read, blank ones included
    max_columns: int = 500  # cells in one row, up to its last one
    max_cells: int = 1_000_000  # cells read in all, blank ones included
    max_shared_strings: int = 300_000  # an XLSX's table of distinct texts
    max_cell_chars: int = 32_767  # Excel's own limit for one cell
    # any other XML part (styles, workbook, theme, relationships…), which openpyxl loads whole
    max_part_bytes: int = 1 * MB
    # entries of those parts (cell formats, defined names, sheets… see ``_ENTRY_TAG``), in all;
    # Excel itself allows about 64,000 cell formats, real files have a few hundred
    max_entries: int = 20_000

    @property
    def max_mb(self) -> int:
        return self.max_bytes // MB

    @property
    def max_unpacked_mb(self) -> int:
        return self.max_unpacked_bytes // MB


CHAT_LIMITS = Limits(
    max_bytes=5 * MB,
    max_rows=20_000,
    max_unpacked_bytes=50 * MB,
    max_lines=50_000,
    max_columns=500,
    max_cells=1_000_000,
    max_shared_strings=300_000,
    max_part_bytes=1 * MB,
    max_entries=20_000,
)
CLI_LIMITS = Limits(
    max_bytes=500 * MB,
    max_rows=2_000_000,
    max_unpacked_bytes=5000 * MB,
    max_lines=4_000_000,
    max_columns=1_000,
    max_cells=50_000_000,
    max_shared_strings=20_000_000,
    max_part_bytes=100 * MB,
    max_entries=2_000_000,
)


@dataclass(frozen=True)
class SheetRow:
    number: int  # as the spreadsheet shows it (1-based, the header row counted)
    cells: tuple[Cell, ...]
    truncated: bool = False  # the file ends inside this row (a CSV cut off mid-row)


@dataclass(frozen=True)
class Sheet:
    kind: FileKind
    headers: tuple[str, ...]
    header_row: int
    rows: list[SheetRow] = field(default_factory=list)
    encoding: str | None = None  # CSV only


def read_sheet(content: bytes, limits: Limits, progress: Progress | None = None) -> Sheet:
    """The header and the non-blank data rows of an uploaded CSV or XLSX file."""
    if not content:
        raise InputError("import.file.empty")
    if len(content) > limits.max_bytes:
        raise InputError("import.file.too_big", max=limits.max_mb)
    if content.startswith(_ZIP):
        return _read_xlsx(content, limits, progress)
    if content.startswith(_OLE2):
        raise InputError("import.file.xls")
    if content.startswith(_BINARY):
        raise InputError("import.file.not_spreadsheet")
    return _read_csv(content, limits, progress)


# --- common ---------------------------------------------------------------------------------


def _header_index(rows: Sequence[Sequence[Cell]]) -> int | None:
    """The first row naming an ICCID column."""
    for index, cells in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if any(field_for(cell_text(cell)) is Field.ICCID for cell in cells):
            return index
    return None


def _no_header(rows: Sequence[Sequence[Cell]]) -> InputError:
    first = next((cells for cells in rows if not all(map(is_blank, cells))), ())
    shown = ", ".join(cell_text(cell).strip() for cell in first if not is_blank(cell))[:200]
    return InputError("import.file.no_header", found=shown or "—")


class _Budget:
    """Counts every row and cell read (blank ones too) against the limits, as they stream in:
    the refusal comes at the bound, however much more the file would expand to."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.lines = 0
        self.cells = 0

    def take(self, number: int, width: int) -> None:
        """Row ``number`` (as the sheet counts) is ``width`` cells wide."""
        limits = self._limits
        self.lines += 1
        self.cells += width
        if self.lines > limits.max_lines:
            raise InputError("import.file.too_many_lines", max=limits.max_lines)
        if width > limits.max_columns:
            raise InputError("import.file.too_many_columns", row=number, max=limits.max_columns)
        if self.cells > limits.max_cells:
            raise InputError("import.file.too_many_cells", max=limits.max_cells)

    def check_text(self, number: int, text: str) -> None:
        longest = self._limits.max_cell_chars
        if len(text) > longest:
            raise InputError("import.file.cell_too_long", row=number, max=longest)


class _Collector:
    """Keeps the non-blank data rows, counting them against the limit as they stream in."""

    def __init__(self, limits: Limits, progress: Progress | None) -> None:
        self.rows: list[SheetRow] = []
        self._limits = limits
        self._progress = progress

    def add(self, number: int, cells: tuple[Cell, ...], *, truncated: bool = False) -> None:
        if all(map(is_blank, cells)):
            return
        if len(self.rows) >= self._limits.max_rows:
            raise InputError("import.file.too_many_rows", max=self._limits.max_rows)
        self.rows.append(SheetRow(number, cells, truncated))
        if self._progress is not None and len(self.rows) % PROGRESS_EVERY == 0:
            self._progress(len(self.rows))

    def done(self) -> list[SheetRow]:
        if self._progress is not None:
            self._progress(len(self.rows))
        return self.rows


# --- CSV ------------------------------------------------------------------------------------


def _decode(content: bytes) -> tuple[str, str]:
    """The text and the encoding it was in; Excel in China saves CSV as GBK (GB18030 is a
    superset), elsewhere as UTF-8, sometimes with a BOM, or UTF-16 ("Unicode text")."""
    if content.startswith(codecs.BOM_UTF8):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8", "gb18030")
    for encoding in candidates:
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            if encoding.startswith("utf-8"):
                _refuse_mixed_encodings(content)
            continue
        return text, encoding
    raise InputError("import.file.encoding")


def _refuse_mixed_encodings(content: bytes) -> None:
    """A file that is not all UTF-8 but has lines that are (two files pasted together, one
    saved by Excel in China as GBK, one as UTF-8): read as either, part of it would become
    mojibake (``收银台`` → ``鏀堕摱鍙``). Refused, naming the lines of each kind."""
    utf8: list[int] = []
    other: list[int] = []
    for number, line in enumerate(content.removeprefix(codecs.BOM_UTF8).splitlines(), start=1):
        if line.isascii():
            continue  # the same in both
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            other.append(number)
            continue
        # GBK bytes are rarely valid UTF-8 by chance, and then not as Chinese text
        (utf8 if all(map(_plausible_utf8, text)) else other).append(number)
    if utf8 and other:
        raise InputError(
            "import.file.mixed_encoding",
            utf8_count=len(utf8),
            utf8_rows=_line_list(utf8),
            other_count=len(other),
            other_rows=_line_list(other),
        )


def _plausible_utf8(ch: str) -> bool:
    """A character real Chinese or English text has (CJK, full-width forms, punctuation). Not
    Latin-1 letters, Greek or Cyrillic: what GBK's two-byte characters often decode to."""
    code = ord(ch)
    return (
        code < 0x80
        or ch in "·×÷"
        or 0x2000 <= code < 0x2070  # general punctuation: “ ” — …
        or 0x2460 <= code < 0x2500  # ① ⑴
        or 0x3000 <= code < 0xA000  # CJK punctuation, kana, CJK ideographs
        or 0xFF00 <= code < 0xFFF0  # full-width forms: ， （ ）
        or code >= 0x1F000  # emoji
    )


def _line_list(numbers: list[int], shown: int = 5) -> str:
    text = ", ".join(str(n) for n in numbers[:shown])
    return text + ("…" if len(numbers) > shown else "")


def _looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    sample = text[:100_000]
    controls = sum(
        1 for ch in sample if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) == "Cc"
    )
    return controls > len(sample) * _MAX_CONTROL_SHARE


def _records(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def _sniff_delimiter(text: str) -> str:
    """The delimiter under which a header row names the most known columns."""
    lines = io.StringIO(text, newline="")
    head = "".join(itertools.islice(lines, _SNIFF_RECORDS))
    best, best_score = ",", 0
    for delimiter in _CSV_DELIMITERS:
        try:
            records = list(_records(head, delimiter))
        except csv.Error:
            continue
        score = max((sum(1 for cell in row if field_for(cell)) for row in records), default=0)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_rows(text: str, delimiter: str, limits: Limits) -> Iterator[tuple[int, list[Cell], bool]]:
    """(row number, cells, is the last record), every record counted against the limits."""
    budget = _Budget(limits)
    records = _records(text, delimiter)
    previous: list[str] | None = None
    number = 0
    for record in records:
        if previous is not None:
            yield number, [from_csv(cell) for cell in previous], False
        number += 1
        budget.take(number, len(record))
        for cell in record:
            budget.check_text(number, cell)
        previous = record
    if previous is not None:
        yield number, [from_csv(cell) for cell in previous], True


def _read_csv(content: bytes, limits: Limits, progress: Progress | None) -> Sheet:
    text, encoding = _decode(content)
    if _looks_binary(text):
        raise InputError("import.file.not_spreadsheet")
    delimiter = _sniff_delimiter(text)
    ends_cleanly = text.endswith(("\n", "\r"))
    rows = _csv_rows(text, delimiter, limits)
    try:
        head = list(itertools.islice(rows, HEADER_SEARCH_ROWS))
        index = _header_index([cells for _, cells, _ in head])
        if index is None:
            raise _no_header([cells for _, cells, _ in head])
        headers = tuple(cell_text(cell).strip() for cell in head[index][1])
        collector = _Collector(limits, progress)
        for number, cells, last in itertools.chain(head[index + 1 :], rows):
            # A file that stops inside its last row (cut off while copying or uploading): the
            # row is short, or a quoted field swallowed the rest. Don't import half a row.
            truncated = last and not ends_cleanly and len(cells) < len(headers)
            collector.add(number, tuple(cells), truncated=truncated)
    except csv.Error as exc:  # e.g. a field larger than the csv module allows
        log.info("unreadable CSV: %s", exc)
        raise InputError("import.file.damaged") from None
    return Sheet("csv", headers, index + 1, collector.done(), encoding)


# --- XLSX -----------------------------------------------------------------------------------


def _check_zip(content: bytes, limits: Limits) -> None:
    """Inflate every part once, counting the bytes that really come out (the sizes a zip's
    headers claim can lie), the entries of the shared-string table and the entries of the parts
    openpyxl loads whole before the first row is read (styles, defined names…: ``_ENTRY_TAG``),
    and bounding each part other than a worksheet, the shared strings or a picture."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            infos = archive.infolist()
            if "xl/workbook.xml" not in {info.filename for info in infos}:
                raise InputError("import.file.not_spreadsheet")  # a .docx, a plain .zip…
            if sum(info.file_size for info in infos) > limits.max_unpacked_bytes:
                raise InputError("import.file.too_big_unpacked", max=limits.max_unpacked_mb)
            counter = _PartCounter(limits)
            for info in infos:
                counter.start(info.filename)
                with archive.open(info) as part:
                    while chunk := part.read(_CHUNK):
                        counter.feed(chunk)
    except InputError:
        raise  # a ValueError too
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError):
        raise InputError("import.file.damaged") from None  # a CRC error: a header that lied


class _PartCounter:
    """The running counts of ``_check_zip``, part after part, chunk after chunk."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.inflated = 0
        self.strings = 0
        self.entries = 0
        self._part = ""
        self._part_bytes = 0
        self._part_bounded = False
        self._tail = b""

    def start(self, name: str) -> None:
        self._part = name
        self._part_bytes = 0
        self._tail = b""
        folded = name.casefold()
        self._part_bounded = not (
            _SHEET_PART.fullmatch(folded) or folded == _STRINGS_PART or _BINARY_PART.match(folded)
        )

    def feed(self, chunk: bytes) -> None:
        limits = self._limits
        self.inflated += len(chunk)
        if self.inflated > limits.max_unpacked_bytes:
            raise InputError("import.file.too_big_unpacked", max=limits.max_unpacked_mb)
        self._part_bytes += len(chunk)
        if self._part_bounded and self._part_bytes > limits.max_part_bytes:
            log.info("XLSX part %s inflates past %s bytes", self._part, limits.max_part_bytes)
            raise InputError("import.file.part_too_big", max_kb=limits.max_part_bytes // 1024)
        tail = self._tail
        window = tail + chunk
        # a tag cut in two by the chunking is counted in the next window
        self.strings += _count_after(_SHARED_STRING_TAG, window, len(tail))
        if self.strings > limits.max_shared_strings:
            raise InputError("import.file.too_many_strings", max=limits.max_shared_strings)
        self.entries += _count_after(_ENTRY_TAG, window, len(tail))
        if self.entries > limits.max_entries:
            log.info(
                "XLSX with over %s styles, names or sheets (in %s)", limits.max_entries, self._part
            )
            raise InputError("import.file.too_many_entries", max=limits.max_entries)
        self._tail = window[-_TAG_OVERLAP:]


def _count_after(pattern: re.Pattern[bytes], window: bytes, start: int) -> int:
    """Matches of ``pattern`` in ``window`` that end past ``start`` (not counted before)."""
    return sum(1 for m in pattern.finditer(window) if m.end() > start)


@contextmanager
def _worksheets(content: bytes, *, data_only: bool) -> Iterator[list[ReadOnlyWorksheet]]:
    """The workbook's worksheets (chart sheets left out), streamed; closed afterwards."""
    workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=data_only)
    try:
        yield [sheet for sheet in workbook.worksheets if isinstance(sheet, ReadOnlyWorksheet)]
    finally:
        workbook.close()


def _cell(value: object) -> Cell:
    """A value as openpyxl reads it, as one of our cell types."""
    if value is None or isinstance(value, str | bool | int | float | date | time | timedelta):
        return value  # datetime is a date
    if isinstance(value, Decimal):
        return float(value)
    return str(value)  # rich text, array formulas: their text


def _stream(
    sheet: ReadOnlyWorksheet, budget: _Budget, max_row: int | None = None
) -> Iterator[tuple[Cell, ...]]:
    # The stored dimension often claims A1:XFD1048576 (a formatted column); trusting it would
    # pad every row to 16,384 cells. Without it rows are as wide as their last cell.
    sheet.reset_dimensions()
    # the stubs give ReadOnlyWorksheet the writable Worksheet's iter_rows signature
    rows: Iterator[tuple[object, ...]] = sheet.iter_rows(  # type: ignore[misc]
        max_row=max_row, values_only=True
    )
    for number, row in enumerate(rows, start=1):
        budget.take(number, len(row))  # blank rows and gaps count too
        cells = tuple(_cell(value) for value in row)
        for cell in cells:
            if isinstance(cell, str):
                budget.check_text(number, cell)
        yield cells


def _read_xlsx(content: bytes, limits: Limits, progress: Progress | None) -> Sheet:
    _check_zip(content, limits)
    try:
        sheet, sheet_index = _first_sheet_with_header(content, limits, progress)
        suspects = _empty_known_cells(sheet)
        if suspects:
            sheet = _mark_uncomputed(content, sheet_index, sheet, suspects, limits)
    except (InputError, MemoryError):
        raise
    except Exception as exc:  # openpyxl raises a zoo of types on a damaged file; all mean that
        log.info("unreadable XLSX: %r", exc)
        raise InputError("import.file.damaged") from None
    return sheet


def _first_sheet_with_header(
    content: bytes, limits: Limits, progress: Progress | None
) -> tuple[Sheet, int]:
    first_rows: list[tuple[Cell, ...]] = []
    budget = _Budget(limits)  # over all the sheets looked at
    with _worksheets(content, data_only=True) as sheets:
        for sheet_index, worksheet in enumerate(sheets):
            rows = _stream(worksheet, budget)
            # range first: zip stops without taking a 21st row from the stream
            head = [tuple(row) for _, row in zip(range(HEADER_SEARCH_ROWS), rows, strict=False)]
            first_rows = first_rows or head
            index = _header_index(head)
            if index is None:
                continue
            headers = tuple(cell_text(cell).strip() for cell in head[index])
            collector = _Collector(limits, progress)
            for number, cells in enumerate(head[index + 1 :], start=index + 2):
                collector.add(number, _fit(cells, len(headers)))
            for number, cells in enumerate(rows, start=len(head) + 1):
                collector.add(number, _fit(cells, len(headers)))
            return Sheet("xlsx", headers, index + 1, collector.done()), sheet_index
    raise _no_header(first_rows)


def _fit(cells: tuple[Cell, ...], width: int) -> tuple[Cell, ...]:
    """Cells beyond the header's last column are noise (stray formatting, sums on the side)."""
    return cells[:width] if len(cells) > width else cells


def _empty_known_cells(sheet: Sheet) -> dict[int, list[int]]:
    """Row number → columns of known fields that came back empty: maybe a formula saved by a
    program that does not calculate (so no cached value). Only these are looked at again."""
    known = [i for i, header in enumerate(sheet.headers) if field_for(header) is not None]
    suspects: dict[int, list[int]] = {}
    for row in sheet.rows:
        empty = [i for i in known if i >= len(row.cells) or row.cells[i] is None]
        if empty:
            suspects[row.number] = empty
    return suspects


def _mark_uncomputed(
    content: bytes,
    sheet_index: int,
    sheet: Sheet,
    suspects: dict[int, list[int]],
    limits: Limits,
) -> Sheet:
    """Read the sheet once more with formulas instead of values: an empty cell that holds a
    formula becomes ``Uncomputed`` (refused with a clear reason instead of read as blank)."""
    formulas: dict[int, dict[int, str]] = {}
    last = max(suspects)
    with _worksheets(content, data_only=False) as sheets:
        # the same rows as the first reading, which kept within the limits
        rows = _stream(sheets[sheet_index], _Budget(limits), last)
        for number, cells in enumerate(rows, start=1):
            for column in suspects.get(number, ()):
                value = cells[column] if column < len(cells) else None
                if isinstance(value, str) and value.startswith("="):
                    formulas.setdefault(number, {})[column] = value
    if not formulas:
        return sheet
    rows_out = [_with_formulas(row, formulas.get(row.number)) for row in sheet.rows]
    return Sheet(sheet.kind, sheet.headers, sheet.header_row, rows_out, sheet.encoding)


def _with_formulas(row: SheetRow, formulas: dict[int, str] | None) -> SheetRow:
    if not formulas:
        return row
    width = max(len(row.cells), max(formulas) + 1)
    cells: list[Cell] = [*row.cells, *([None] * (width - len(row.cells)))]
    for column, formula in formulas.items():
        cells[column] = Uncomputed(formula)
    return SheetRow(row.number, tuple(cells), row.truncated)
