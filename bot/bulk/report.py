"""What an import did, in words (the chat message, the CLI summary) and as a file to fix.

The file of rejected rows has the uploaded file's columns, cells as they were, plus a reason
column; its header is not a known column, so the fixed file imports without deleting it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.bulk.cells import Cell
from bot.bulk.export import plain
from bot.bulk.importer import ImportReport, RejectedRow
from bot.bulk.reading import Sheet
from bot.bulk.rows import CellProblem
from bot.bulk.writing import OutputFormat, OutValue, write_table
from bot.i18n import Html, t

MAX_REASONS_SHOWN = 10  # in the message; all of them are in the file
MAX_OLDER_SHOWN = 5
MAX_ROW_NUMBERS_SHOWN = 20
MAX_PARAM_CHARS = 40  # what a reason quotes of a cell or a header, so every reason stays short
# Telegram allows 4096 characters (UTF-16 units of the text after its HTML is parsed); the
# report leaves a margin for what the handlers add around it
MAX_MESSAGE_CHARS = 4000


@dataclass(frozen=True)
class ReportFile:
    filename: str
    content: bytes


def visible_length(text: str) -> int:
    """What Telegram counts against its limit: the text without tags, entities decoded, in
    UTF-16 code units (an emoji outside the BMP counts twice)."""
    return len(plain(text).encode("utf-16-le")) // 2


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_PARAM_CHARS:
        return value[: MAX_PARAM_CHARS - 1] + "…"
    return value


def problem_text(lang: str, problem: CellProblem) -> Html:
    params = {name: _short(value) for name, value in problem.error.params.items()}
    reason = t(lang, problem.error.key, **params)
    if problem.column is None:
        return reason
    return t(lang, "import.reason.in_column", column=_short(problem.column), reason=reason)


def rejected_reason(lang: str, rejected: RejectedRow) -> Html:
    return Html(
        t(lang, "import.reason.separator").join(problem_text(lang, p) for p in rejected.problems)
    )


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:MAX_ROW_NUMBERS_SHOWN])
    return shown + ("…" if len(numbers) > MAX_ROW_NUMBERS_SHOWN else "")


def _fill(lines: Sequence[Html], budget: int, limit: int) -> tuple[list[Html], int]:
    """As many of ``lines`` (whole lines, so the HTML stays balanced) as fit in ``budget``."""
    taken: list[Html] = []
    for line in lines[:limit]:
        cost = visible_length(line) + 1
        if cost > budget:
            break
        taken.append(line)
        budget -= cost
    return taken, budget


def _length(lines: Sequence[str]) -> int:
    return sum(visible_length(line) + 1 for line in lines)


def report_text(lang: str, report: ImportReport, *, in_chat: bool = True) -> Html:
    """The import's summary, always short enough for one Telegram message: the first rejected
    and older rows, then how many more (all of them are in the file or the command's output).
    ``in_chat``: end with how to send the fixed rows back (the file of rejected rows goes with
    the message) and offer the button for older rows; the command line says that in its own
    words."""
    head = [
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
    if report.older:
        head.append(t(lang, "import.report.older_count", count=len(report.older)))
    if report.duplicates:
        rows = _numbers([row for row, _ in report.duplicates])
        head.append(t(lang, "import.report.duplicates", count=len(report.duplicates), rows=rows))
    if report.luhn_rows:
        rows = _numbers(report.luhn_rows)
        head.append(t(lang, "import.report.luhn", count=len(report.luhn_rows), rows=rows))
    if report.unmuted:
        head.append(t(lang, "import.report.unmuted", count=report.unmuted))
    if report.older_applied:
        head.append(t(lang, "import.report.older_applied", count=report.older_applied))
    if not report.rejected and not report.older and report.imported == 0 and report.rows == 0:
        head.append(t(lang, "import.report.nothing"))
    older_tail: list[Html] = []
    rejected_tail: list[Html] = []
    if report.older:
        key = "import.report.older_button" if in_chat else "import.report.older_cli"
        older_tail.append(t(lang, key, count=len(report.older)))
    if report.rejected and in_chat:
        rejected_tail.append(t(lang, "import.report.rejected_file"))
    more = t(lang, "import.report.rejected_more", count=max(report.rows, 1))  # the longest
    older_head = t(lang, "import.report.older_header", count=len(report.older))
    rejected_head = t(lang, "import.report.rejected_header")
    fixed = [*head, *older_tail, *rejected_tail]
    if report.older:
        fixed += [older_head, more]
    if report.rejected:
        fixed += [rejected_head, more]
    budget = MAX_MESSAGE_CHARS - _length(fixed)
    lines: list[str] = list(head)
    if report.older:
        older_lines = [
            t(
                lang,
                "import.report.older_line",
                row=older.number,
                file=older.file_expiry.isoformat(),
                ours=older.card_expiry.isoformat(),
            )
            for older in report.older[:MAX_OLDER_SHOWN]
        ]
        shown, budget = _fill(older_lines, budget, MAX_OLDER_SHOWN)
        lines += [older_head, *shown]
        if len(report.older) > len(shown):
            lines.append(
                t(lang, "import.report.rejected_more", count=len(report.older) - len(shown))
            )
        lines += older_tail
    if report.rejected:
        rejected_lines = [
            t(
                lang,
                "import.report.rejected_line",
                row=rejected.row.number,
                reason=rejected_reason(lang, rejected),
            )
            for rejected in report.rejected[:MAX_REASONS_SHOWN]
        ]
        shown, budget = _fill(rejected_lines, budget, MAX_REASONS_SHOWN)
        lines += [rejected_head, *shown]
        if len(report.rejected) > len(shown):
            lines.append(
                t(lang, "import.report.rejected_more", count=len(report.rejected) - len(shown))
            )
        lines += rejected_tail
    return Html("\n".join(lines))


def rejected_file(lang: str, sheet: Sheet, report: ImportReport, stem: str) -> ReportFile | None:
    """The rejected rows as they were, plus the reason, in the uploaded file's format."""
    if not report.rejected:
        return None
    # a row wider than the header (a CSV line with extra cells) keeps them all: blank headers
    # above them, and the reason after the widest row
    width = max(len(sheet.headers), *(len(r.row.cells) for r in report.rejected))
    extra = [""] * (width - len(sheet.headers))
    headers = [*sheet.headers, *extra, plain(t(lang, "import.rejected.reason_header"))]
    rows: list[list[OutValue]] = []
    for rejected in report.rejected:
        cells: list[Cell] = list(rejected.row.cells)
        cells += [None] * (width - len(cells))
        rows.append([*cells, plain(rejected_reason(lang, rejected))])
    fmt: OutputFormat = sheet.kind
    filename = f"{stem}-{plain(t(lang, 'import.rejected.filename'))}.{fmt}"
    return ReportFile(filename, write_table(fmt, headers, rows))
