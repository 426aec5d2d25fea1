"""Reading messy real-world files: encodings, delimiters, Excel dates, formulas, damage."""

from __future__ import annotations

import codecs
import random
from datetime import date, datetime

import pytest
from cards_util import iccid
from fixtures.bulk_files import csv_bytes, xlsx_bytes, xlsx_with_formula
from openpyxl.worksheet.worksheet import Worksheet

from bot.bulk.cells import Uncomputed
from bot.bulk.columns import EXPORT_HEADERS, Field, field_for, map_columns
from bot.bulk.reading import CHAT_LIMITS, Limits, SheetRow, read_sheet
from bot.bulk.rows import KEEP, RowProblems, RowValues, parse_row
from bot.errors import InputError
from bot.models import Carrier, Period

TODAY = date(2026, 11, 25)
HEADER = ["ICCID", "到期日", "运营商", "终端号", "商户", "套餐", "自动续费", "备注"]


def parsed(content: bytes) -> list[RowValues | RowProblems]:
    sheet = read_sheet(content, CHAT_LIMITS)
    columns = map_columns(sheet.headers)
    return [parse_row(row, columns, TODAY) for row in sheet.rows]


def values(content: bytes) -> list[RowValues]:
    rows = parsed(content)
    assert all(isinstance(row, RowValues) for row in rows), rows
    return [row for row in rows if isinstance(row, RowValues)]


def refused(content: bytes, limits: Limits = CHAT_LIMITS) -> str:
    with pytest.raises(InputError) as caught:
        read_sheet(content, limits)
    return caught.value.key


# --- encodings and delimiters -----------------------------------------------------------------

CHINESE_ROWS = [
    HEADER,
    [iccid(1), "2026-12-31", "中国移动", "T1001", "张记面馆", "3个月 30元", "是", ""],
]


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),  # with BOM, as "CSV UTF-8" in Excel
        ("gbk", "gb18030"),  # Excel in China
        ("utf-16", "utf-16"),  # "Unicode text", BOM included by the codec
    ],
)
def test_common_encodings_are_read(encoding: str, expected: str) -> None:
    sep = "\t" if encoding == "utf-16" else ","
    content = csv_bytes(CHINESE_ROWS, encoding=encoding, sep=sep)
    sheet = read_sheet(content, CHAT_LIMITS)
    assert sheet.encoding == expected
    assert sheet.headers == tuple(HEADER)
    (row,) = values(content)
    assert row.label == "张记面馆 · T1001"
    assert row.carrier is Carrier.CHINA_MOBILE
    assert row.plan_period == Period(months=3)
    assert row.plan_price_fen == 3000
    assert row.auto_renew is True
    assert row.note is KEEP  # empty: leave as it is


def test_a_csv_mixing_utf8_and_gbk_lines_is_refused_naming_the_rows() -> None:
    """Two files pasted together, one saved as GBK, one as UTF-8: read either way, part of it
    would be mojibake (收银台 → 鏀堕摱鍙), imported without a word. Refused instead."""
    lines = [("ICCID,到期日,商户", "utf-8")]
    lines += [(f"{iccid(n)},2027-01-01,收银台{n}", "gbk") for n in range(1, 8)]
    lines += [(f"{iccid(n)},2027-01-01,张记面馆{n}", "utf-8") for n in range(8, 10)]
    lines += [(f"{iccid(10)},2027-01-01,plain ascii", "utf-8")]
    content = b"".join(text.encode(encoding) + b"\r\n" for text, encoding in lines)
    with pytest.raises(InputError) as caught:
        read_sheet(content, CHAT_LIMITS)
    assert caught.value.key == "import.file.mixed_encoding"
    assert caught.value.params == {
        "utf8_count": 3,
        "utf8_rows": "1, 9, 10",
        "other_count": 7,
        "other_rows": "2, 3, 4, 5, 6…",
    }
    # a whole file in GBK is still read as GBK, one in UTF-8 as UTF-8
    gbk = b"".join(text.encode("gbk") + b"\r\n" for text, _ in lines)
    assert read_sheet(gbk, CHAT_LIMITS).encoding == "gb18030"
    assert read_sheet(gbk.decode("gbk").encode(), CHAT_LIMITS).encoding == "utf-8"
    # even when a GBK line happens to be valid UTF-8: 么 is C3 B4 in GBK, "ô" in UTF-8
    lucky = next(ch for ch in map(chr, range(0x4E00, 0x9FA6)) if _reads_as_latin1(ch))
    more = f"{iccid(11)},2027-01-01,{lucky}\r\n".encode("gbk")
    assert read_sheet(gbk + more, CHAT_LIMITS).encoding == "gb18030"


def _reads_as_latin1(ch: str) -> bool:
    """A Chinese character whose GBK bytes are a Latin-1 letter in UTF-8."""
    try:
        return 0xC0 <= ord(ch.encode("gbk").decode("utf-8")) < 0x100
    except (UnicodeDecodeError, TypeError):
        return False


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiter_is_found_from_the_header(sep: str) -> None:
    rows = [["ICCID", "expiry", "label"], [iccid(2), "2027-01-05", "Till, front"]]
    content = (
        csv_bytes(rows, sep=sep)
        if sep != ","
        else b"ICCID,expiry,label\r\n" + (f'{iccid(2)},2027-01-05,"Till, front"\r\n'.encode())
    )
    (row,) = values(content)
    assert row.expiry == date(2027, 1, 5)
    assert row.label == "Till, front"


def test_headers_in_any_order_with_hints_and_a_title_row_above() -> None:
    rows = [
        ["终端流量卡清单（2026年11月）", None, None],
        [],
        ["备注", "到期日期(必填)", "*ICCID号码", "Unknown column"],
        ["门口那台", "2027/3/1", iccid(3), "whatever"],
    ]
    sheet = read_sheet(csv_bytes(rows), CHAT_LIMITS)
    assert sheet.header_row == 3
    (row,) = values(csv_bytes(rows))
    assert row.number == 4
    assert (row.iccid, row.expiry, row.note) == (iccid(3), date(2027, 3, 1), "门口那台")


def test_every_export_header_is_an_import_alias() -> None:
    for headers in EXPORT_HEADERS.values():
        for field, header in headers.items():
            assert field_for(header) is field


def test_blank_rows_are_skipped_and_numbers_stay_the_sheets() -> None:
    rows = [HEADER[:2], [iccid(1), "2027-01-01"], ["", ""], [" ", ""], [iccid(2), "2027-01-02"]]
    assert [row.number for row in values(csv_bytes(rows))] == [2, 5]


def test_excel_text_wrapper_and_export_tabs_are_unwrapped() -> None:
    content = f'ICCID,到期日\r\n="{iccid(4)}",2027-01-01\r\n{iccid(5)}\t,2027-01-01\r\n'.encode()
    assert [row.iccid for row in values(content)] == [iccid(4), iccid(5)]


# --- Excel dates and numbers ------------------------------------------------------------------


def test_xlsx_date_cells_serial_numbers_and_text_dates() -> None:
    def edit(sheet: Worksheet) -> None:
        sheet["B3"].number_format = "General"  # a date that lost its format: a serial number

    rows = [
        ["ICCID", "到期日"],
        [iccid(1), datetime(2027, 2, 28)],
        [iccid(2), 46387],  # = 2026-12-31
        [iccid(3), "2027年3月1日"],
        [iccid(4), 20270401],  # yyyymmdd typed as a number
    ]
    expiries = [row.expiry for row in values(xlsx_bytes(rows, edit=edit))]
    assert expiries == [date(2027, 2, 28), date(2026, 12, 31), date(2027, 3, 1), date(2027, 4, 1)]


def test_serial_number_in_a_csv_is_a_date_too() -> None:
    (row,) = values(csv_bytes([["ICCID", "到期日"], [iccid(1), "46387"]]))
    assert row.expiry == date(2026, 12, 31)


def test_iccid_as_an_exact_integer_is_fine() -> None:
    # Excel itself keeps 15 digits; a program may store all of them as an integer
    row = parse_row(
        SheetRow(2, (int(iccid(1)), "2027-01-01")), map_columns(["ICCID", "到期日"]), TODAY
    )
    assert isinstance(row, RowValues)
    assert row.iccid == iccid(1)


def test_iccid_that_excel_turned_into_a_float_is_refused_with_the_reason() -> None:
    (row,) = parsed(xlsx_bytes([["ICCID", "到期日"], [float(iccid(1)), "2027-01-01"]]))
    assert isinstance(row, RowProblems)
    assert row.problems[0].error.key == "import.reason.iccid_number"


def test_prices_as_numbers_and_boolean_cells() -> None:
    rows = [
        ["ICCID", "到期日", "周期", "金额", "auto_renew"],
        [iccid(1), "2027-01-01", 12, 99.5, True],
    ]
    (row,) = values(xlsx_bytes(rows))
    assert (row.plan_period, row.plan_price_fen, row.auto_renew) == (Period(months=12), 9950, True)


# --- formulas ---------------------------------------------------------------------------------


def test_formula_with_a_cached_value_is_read_by_value() -> None:
    # openpyxl writes no cached values, so write the sheet XML the way Excel does
    content = xlsx_with_formula(cached="2027-05-01")
    (row,) = values(content)
    assert row.expiry == date(2027, 5, 1)


def test_formula_without_a_cached_value_is_refused_clearly() -> None:
    (row,) = parsed(xlsx_with_formula(cached=None))
    assert isinstance(row, RowProblems)
    (problem,) = row.problems
    assert problem.error.key == "import.reason.formula"
    assert problem.column == "到期日"


def test_uncomputed_formula_survives_in_the_rejected_row() -> None:
    sheet = read_sheet(xlsx_with_formula(cached=None), CHAT_LIMITS)
    assert isinstance(sheet.rows[0].cells[1], Uncomputed)


# --- damage and things that aren't spreadsheets -----------------------------------------------


def test_xlsx_cut_in_half_is_damaged() -> None:
    content = xlsx_bytes([["ICCID", "到期日"], *[[iccid(n), "2027-01-01"] for n in range(200)]])
    assert refused(content[: len(content) // 2]) == "import.file.damaged"


def test_csv_cut_mid_row_rejects_only_the_cut_row() -> None:
    content = csv_bytes(
        [HEADER[:3], [iccid(1), "2027-01-01", "移动"], [iccid(2), "2027-01-02", "联通"]]
    )
    cut = content[: content.rindex(b"2027-01-02") + 4]  # "…,2027" and no newline
    rows = parsed(cut)
    assert isinstance(rows[0], RowValues)
    assert isinstance(rows[1], RowProblems)
    assert rows[1].problems[0].error.key == "import.reason.truncated"


def test_csv_without_a_final_newline_is_complete() -> None:
    content = csv_bytes([HEADER[:2], [iccid(1), "2027-01-01"]]).rstrip(b"\r\n")
    assert len(values(content)) == 1


@pytest.mark.parametrize(
    ("content", "key"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "import.file.not_spreadsheet"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "import.file.xls"),
        (b"", "import.file.empty"),
        (b"PK\x05\x06" + b"\0" * 18, "import.file.not_spreadsheet"),  # an empty zip
    ],
)
def test_files_that_are_not_spreadsheets(content: bytes, key: str) -> None:
    assert refused(content) == key


def test_random_bytes_are_not_a_spreadsheet() -> None:
    noise = random.Random(7).randbytes(4096)
    assert refused(noise) in {"import.file.not_spreadsheet", "import.file.encoding"}


def test_png_renamed_xlsx_is_recognised_by_content() -> None:
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 100
    assert refused(png) == "import.file.not_spreadsheet"


def test_no_iccid_column_says_what_it_found() -> None:
    with pytest.raises(InputError) as caught:
        read_sheet(csv_bytes([["姓名", "电话"], ["张三", "138"]]), CHAT_LIMITS)
    assert caught.value.key == "import.file.no_header"
    assert "姓名" in caught.value.params["found"]


def test_limits_on_size_and_rows() -> None:
    small = Limits(max_bytes=1000, max_rows=3, max_unpacked_bytes=10**6)
    big = csv_bytes([["ICCID", "note"], *[[iccid(n), "x" * 50] for n in range(30)]])
    assert refused(big, small) == "import.file.too_big"
    many = csv_bytes([["ICCID"], *[[iccid(n)] for n in range(4)]])
    assert refused(many, small) == "import.file.too_many_rows"
    assert len(read_sheet(csv_bytes([["ICCID"], *[[iccid(n)] for n in range(3)]]), small).rows) == 3


# --- row validation, as /addcard validates ----------------------------------------------------


def test_each_bad_cell_is_reported_with_its_column() -> None:
    rows = [HEADER, ["8986", "2026-02-30", "火星通信", "", "", "三个半月", "也许", ""]]
    (row,) = parsed(csv_bytes(rows))
    assert isinstance(row, RowProblems)
    keys = {(p.column, p.error.key) for p in row.problems}
    assert keys == {
        ("ICCID", "error.iccid.length"),
        ("到期日", "error.date.invalid"),
        ("运营商", "import.reason.carrier"),
        ("套餐", "error.plan.unrecognized"),
        ("自动续费", "import.reason.yes_no"),
    }


def test_clear_words_empty_a_field_and_empty_cells_keep_it() -> None:
    rows = [["ICCID", "到期日", "标签", "备注", "套餐"], [iccid(1), "", "-", "无", "-"]]
    (row,) = values(csv_bytes(rows))
    assert (row.label, row.note, row.plan_period, row.plan_price_fen) == (None, None, None, None)
    assert row.expiry is KEEP


def test_terminal_alone_becomes_the_label_and_too_long_is_refused() -> None:
    rows = [["ICCID", "终端号", "标签"], [iccid(1), "T9", ""], [iccid(2), "T" * 40, "L" * 40]]
    first, second = parsed(csv_bytes(rows))
    assert isinstance(first, RowValues)
    assert first.label == "T9"
    assert isinstance(second, RowProblems)
    assert second.problems[0].error.key == "error.label.too_long"


def test_luhn_mismatch_is_not_an_error() -> None:
    bad = iccid(1)[:-1] + str((int(iccid(1)[-1]) + 1) % 10)
    (row,) = values(csv_bytes([["ICCID", "到期日"], [bad, "2027-01-01"]]))
    assert row.luhn_ok is False


def test_field_columns_map_leftmost_wins() -> None:
    columns = map_columns(["商户", "ICCID", "标签"])
    assert columns.columns[Field.LABEL] == 0


def test_bom_alone_is_read_as_utf8() -> None:
    content = codecs.BOM_UTF8 + "ICCID,到期日\n".encode() + f"{iccid(1)},2027-01-01\n".encode()
    assert read_sheet(content, CHAT_LIMITS).encoding == "utf-8-sig"
