"""What an import did, in words (the chat message, the CLI summary) and as a file to fix.

The file of rejected rows has the uploaded file's columns, cells as they were, plus a reason
column; its header is not a known column, so the fixed file imports without deleting it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.bulk.cells import Cell
from bot.bulk.export import plain
from bot.bulk.importer import CardNote, ImportReport, RejectedRow
from bot.bulk.reading import Sheet
from bot.bulk.rows import CellProblem
from bot.bulk.writing import OutputFormat, OutValue, write_table
from bot.errors import excerpt
from bot.i18n import Html, t
from bot.iccid import shown_iccid

MAX_REASONS_SHOWN = 10  # in the message; all of them are in the file
MAX_OLDER_SHOWN = 5
MAX_ROW_NUMBERS_SHOWN = 20
MAX_NOTES_SHOWN = 5  # cards named under each note (check digit, unmuted, carrier, look-alike)
PREFIX_SHOWN = 6  # the issuer prefix a carrier note names: 898601
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
    # the bot's one excerpt rule (bot.errors), at most MAX_PARAM_CHARS with its "…"
    return excerpt(value, MAX_PARAM_CHARS - 1) if isinstance(value, str) else value


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


def card_text(lang: str, iccid: str, label: str | None, *, is_group: bool) -> Html:
    """Which card a line is about: its ICCID as the chat may see it (the last 6 in groups) and
    its label, shortened."""
    shown = shown_iccid(iccid, is_group)
    if label:
        return t(lang, "import.report.card_labeled", iccid=shown, label=_short(label))
    return t(lang, "import.report.card", iccid=shown)


@dataclass(frozen=True)
class _Section:
    """A header and one line per row (the first few, as many as fit), then how many more."""

    header: Html
    lines: list[Html]
    total: int
    limit: int
    tail: list[Html] = field(default_factory=list)  # after the lines (what to do about them)


def _sections(lang: str, report: ImportReport, is_group: bool) -> list[_Section]:
    def card(note: CardNote) -> Html:
        return card_text(lang, note.iccid, note.label, is_group=is_group)

    def line(note: CardNote) -> Html:
        return t(lang, "import.report.note_line", row=note.number, card=card(note))

    def notes(key: str, items: Sequence[CardNote]) -> _Section:
        shown = [line(note) for note in items[:MAX_NOTES_SHOWN]]
        return _Section(t(lang, key, count=len(items)), shown, len(items), MAX_NOTES_SHOWN)

    sections: list[_Section] = []
    if report.luhn:
        sections.append(notes("import.report.luhn", report.luhn))
    if report.unmuted:
        sections.append(notes("import.report.unmuted", report.unmuted))
    if report.archived:
        sections.append(notes("import.report.archived", report.archived))
    if report.restored:
        key = "import.report.renew_restored" if report.renewal_file else "import.report.restored"
        sections.append(notes(key, report.restored))
    if report.already_renewed:  # a renewal file sent twice: left as they are
        sections.append(notes("import.report.already_header", report.already_renewed))
    if report.still_archived:  # the file has no 停用 cell for them: they stay out of service
        sections.append(notes("import.report.still_archived", report.still_archived))
    if report.carriers:
        carrier_lines = [
            t(
                lang,
                "import.report.carrier_line",
                row=note.number,
                card=card(note),
                given=t(lang, f"carrier.{note.given.value}"),
                prefix=note.iccid[:PREFIX_SHOWN],
                inferred=t(lang, f"carrier.{note.inferred.value}"),
            )
            for note in report.carriers[:MAX_NOTES_SHOWN]
        ]
        header = t(lang, "import.report.carrier", count=len(report.carriers))
        sections.append(_Section(header, carrier_lines, len(report.carriers), MAX_NOTES_SHOWN))
    if report.lookalikes:
        # in groups the ICCIDs are masked: the digits would add nothing to the last 6
        lookalike_lines = [
            line(note)
            if is_group
            else t(
                lang,
                "import.report.lookalike_line",
                row=note.number,
                card=card(note),
                fixed=note.digits,
            )
            for note in report.lookalikes[:MAX_NOTES_SHOWN]
        ]
        header = t(lang, "import.report.lookalike", count=len(report.lookalikes))
        sections.append(_Section(header, lookalike_lines, len(report.lookalikes), MAX_NOTES_SHOWN))
    return sections


def _summary(lang: str, report: ImportReport) -> Html:
    if report.renewal_file:
        return t(
            lang,
            "import.report.renew_summary",
            rows=report.rows,
            renewed=report.renewed,
            already=len(report.already_renewed),
            skipped=report.skipped,
            rejected=len(report.rejected),
        )
    return t(
        lang,
        "import.report.summary",
        rows=report.rows,
        added=report.added,
        updated=report.updated,
        unchanged=report.unchanged,
        rejected=len(report.rejected),
    )


def report_text(
    lang: str, report: ImportReport, *, in_chat: bool = True, is_group: bool | None = None
) -> Html:
    """The import's summary, always short enough for one Telegram message: the first rows of
    each kind worth a word (check digits, unmuted cards, carriers, look-alike ICCIDs, older and
    rejected rows), each with its card, then how many more (all of them are in the file or the
    command's output). ``in_chat``: end with how to send the fixed rows back (the file of
    rejected rows goes with the message) and offer the button for older rows; the command line
    says that in its own words. ``is_group``: ICCIDs masked to the last 6 (by default in chat,
    not on the command line)."""
    masked = in_chat if is_group is None else is_group
    head = [_summary(lang, report)]
    if report.older:
        head.append(t(lang, "import.report.older_count", count=len(report.older)))
    if report.duplicates:
        rows = _numbers([row for row, _ in report.duplicates])
        head.append(t(lang, "import.report.duplicates", count=len(report.duplicates), rows=rows))
    if report.older_applied:
        head.append(t(lang, "import.report.older_applied", count=report.older_applied))
    if not report.rejected and not report.older and report.rows == 0:
        head.append(t(lang, "import.report.nothing"))
    sections = _sections(lang, report, masked)
    if report.older:
        key = "import.report.older_button" if in_chat else "import.report.older_cli"
        older_lines = [
            t(
                lang,
                "import.report.older_line",
                row=older.number,
                card=card_text(lang, older.iccid, older.label, is_group=masked),
                file=older.file_expiry.isoformat(),
                ours=older.card_expiry.isoformat(),
            )
            for older in report.older[:MAX_OLDER_SHOWN]
        ]
        sections.append(
            _Section(
                t(lang, "import.report.older_header", count=len(report.older)),
                older_lines,
                len(report.older),
                MAX_OLDER_SHOWN,
                [t(lang, key, count=len(report.older))],
            )
        )
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
        tail = [t(lang, "import.report.rejected_file")] if in_chat else []
        sections.append(
            _Section(
                t(
                    lang,
                    "import.report.renew_rejected_header"
                    if report.renewal_file
                    else "import.report.rejected_header",
                ),
                rejected_lines,
                len(report.rejected),
                MAX_REASONS_SHOWN,
                tail,
            )
        )
    more = t(lang, "import.report.rejected_more", count=max(report.rows, 1))  # the longest
    fixed = [*head, *(line for s in sections for line in (s.header, more, *s.tail))]
    budget = MAX_MESSAGE_CHARS - _length(fixed)
    lines: list[str] = list(head)
    for section in sections:
        shown, budget = _fill(section.lines, budget, section.limit)
        lines += [section.header, *shown]
        if section.total > len(shown):
            lines.append(t(lang, "import.report.rejected_more", count=section.total - len(shown)))
        lines += section.tail
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
