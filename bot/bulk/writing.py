"""Writing a table as a file Excel opens correctly: CSV (UTF-8 with BOM) or XLSX.

Two Excel habits are defended against. Long digit strings (ICCIDs, terminal serials) would be
shown as ``8.98601E+19`` and lose digits when saved again, and ``0012`` would lose its zeros:
in XLSX they are text cells, in CSV they are written ``="8986…"`` (the importer unwraps it).
Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would run as a formula
(CSV injection), headers included: in CSV it gets a leading single quote (``cells.neutralise``;
the importer takes exactly that quote off again), in XLSX it is a text cell with Excel's quote
prefix set, so it stays text even when someone edits the cell. Numbers (days left, amounts) are
written as plain numbers: only text is ever quoted.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.cell.cell import Cell as XlsxCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from bot.bulk.cells import Cell, Uncomputed, cell_text, is_formula_like, neutralise

OutputFormat = Literal["csv", "xlsx"]
OutValue = Cell | Decimal  # Decimal: an amount of money, written as an exact number

_NUMBER_EXCEL_MANGLES = re.compile(r"[0-9]{12,}|0[0-9]+")  # loses digits / leading zeros
_MAX_WIDTH = 40


def _csv_field(value: OutValue) -> str:
    if isinstance(value, Decimal):
        return f"{value:f}"
    if not isinstance(value, str | Uncomputed):
        return cell_text(value)  # a number, a date, a boolean: never a formula
    text = value.formula if isinstance(value, Uncomputed) else value
    if _NUMBER_EXCEL_MANGLES.fullmatch(text):
        return f'="{text}"'  # digits only, so this formula is always just the text
    return neutralise(text)


def write_csv(headers: Sequence[str], rows: Iterable[Sequence[OutValue]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_csv_field(header) for header in headers])
    writer.writerows([_csv_field(value) for value in row] for row in rows)
    # the BOM tells Excel the file is UTF-8; without it, Excel in China reads it as GBK
    return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")


def _xlsx_cell(sheet: Worksheet, value: OutValue) -> XlsxCell:
    if isinstance(value, Uncomputed):
        value = value.formula
    if isinstance(value, str):
        cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"  # never a formula, whatever the text starts with
        if is_formula_like(value):
            cell.quotePrefix = True  # Excel's leading quote: still text after editing the cell
        return cell
    written: Any = value  # the stubs list fewer value types than openpyxl writes
    cell = WriteOnlyCell(sheet, written)
    if isinstance(value, datetime):
        cell.number_format = "yyyy-mm-dd hh:mm"
    elif isinstance(value, date):
        cell.number_format = "yyyy-mm-dd"
    elif isinstance(value, Decimal):
        cell.number_format = "0.00"
    return cell


def write_xlsx(
    headers: Sequence[str], rows: Iterable[Sequence[OutValue]], *, title: str = "cards"
) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    widths = [max(len(header) * 2, 10) for header in headers]
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(width, _MAX_WIDTH)
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = _xlsx_cell(sheet, header)
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def write_table(
    fmt: OutputFormat, headers: Sequence[str], rows: Iterable[Sequence[OutValue]]
) -> bytes:
    return write_xlsx(headers, rows) if fmt == "xlsx" else write_csv(headers, rows)
