"""What an import did, in words (the chat message, the CLI summary) and as a file to fix.

The file of rejected rows has the uploaded file's columns, cells as they were, plus a reason
column; its header is not a known column, so the fixed file imports without deleting it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.bulk.cells import Cell
from bot.bulk.export import plain
from bot.bulk.importer import ImportReport, RejectedRow
from bot.bulk.reading import Sheet
from bot.bulk.rows import CellProblem
from bot.bulk.writing import OutputFormat, OutValue, write_table
from bot.i18n import Html, t

MAX_REASONS_SHOWN = 10  # in the message; all of them are in the file
MAX_ROW_NUMBERS_SHOWN = 20
MAX_MESSAGE_CHARS = 3500  # Telegram allows 4096 characters; the summary and footer need room


@dataclass(frozen=True)
class ReportFile:
    filename: str
    content: bytes


def problem_text(lang: str, problem: CellProblem) -> Html:
    reason = t(lang, problem.error.key, **problem.error.params)
    if problem.column is None:
        return reason
    return t(lang, "import.reason.in_column", column=problem.column, reason=reason)


def rejected_reason(lang: str, rejected: RejectedRow) -> Html:
    return Html(
        t(lang, "import.reason.separator").join(problem_text(lang, p) for p in rejected.problems)
    )


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:MAX_ROW_NUMBERS_SHOWN])
    return shown + ("…" if len(numbers) > MAX_ROW_NUMBERS_SHOWN else "")


def report_text(lang: str, report: ImportReport, *, in_chat: bool = True) -> Html:
    """The import's summary. ``in_chat``: end with how to send the fixed rows back (the file of
    rejected rows goes with the message); the command line says that in its own words."""
    lines = [
        t(
            lang,
            "import.report.summary",
            rows=report.rows,
            added=report.added,
            updated=report.updated,
            unchanged=report.unchanged,
            rejected=len(report.rejected),
        )
    ]
    if report.duplicates:
        rows = _numbers([row for row, _ in report.duplicates])
        lines.append(t(lang, "import.report.duplicates", count=len(report.duplicates), rows=rows))
    if report.luhn_rows:
        rows = _numbers(report.luhn_rows)
        lines.append(t(lang, "import.report.luhn", count=len(report.luhn_rows), rows=rows))
    if report.unmuted:
        lines.append(t(lang, "import.report.unmuted", count=report.unmuted))
    if report.rejected:
        lines.append(t(lang, "import.report.rejected_header"))
        budget = MAX_MESSAGE_CHARS - sum(len(line) + 1 for line in lines)
        shown = 0
        for rejected in report.rejected[:MAX_REASONS_SHOWN]:
            reason = rejected_reason(lang, rejected)
            line = t(lang, "import.report.rejected_line", row=rejected.row.number, reason=reason)
            budget -= len(line) + 1
            if budget < 0 and shown:  # whole lines only, so the HTML stays balanced
                break
            lines.append(line)
            shown += 1
        more = len(report.rejected) - shown
        if more > 0:
            lines.append(t(lang, "import.report.rejected_more", count=more))
        if in_chat:
            lines.append(t(lang, "import.report.rejected_file"))
    elif report.imported == 0 and report.rows == 0:
        lines.append(t(lang, "import.report.nothing"))
    return Html("\n".join(lines))


def rejected_file(lang: str, sheet: Sheet, report: ImportReport, stem: str) -> ReportFile | None:
    """The rejected rows as they were, plus the reason, in the uploaded file's format."""
    if not report.rejected:
        return None
    width = len(sheet.headers)
    headers = [*sheet.headers, plain(t(lang, "import.rejected.reason_header"))]
    rows: list[list[OutValue]] = []
    for rejected in report.rejected:
        cells: list[Cell] = list(rejected.row.cells[:width])
        cells += [None] * (width - len(cells))
        rows.append([*cells, plain(rejected_reason(lang, rejected))])
    fmt: OutputFormat = sheet.kind
    filename = f"{stem}-{plain(t(lang, 'import.rejected.filename'))}.{fmt}"
    return ReportFile(filename, write_table(fmt, headers, rows))
