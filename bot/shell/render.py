"""What the bot did, as lines in a terminal: messages, edits, numbered buttons, notices, files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.emulator import ChatEvent
from bot.shell.texts import say

INDENT = "  "
DELETED_PREVIEW = 30  # characters of a deleted message to recall which one it was


@dataclass(frozen=True)
class KeyButton:
    """An inline button; ``data`` is its callback data, None for a link the shell can't press."""

    text: str
    data: str | None


def keyboard_of(markup: dict[str, Any] | None) -> list[list[KeyButton]]:
    """The inline keyboard of a message's ``reply_markup`` (empty if it has none)."""
    if not markup:
        return []
    rows: list[list[KeyButton]] = []
    for row in markup.get("inline_keyboard") or []:
        buttons = [
            KeyButton(str(button.get("text", "")), _callback_data(button))
            for button in row
            if isinstance(button, dict)
        ]
        if buttons:
            rows.append(buttons)
    return rows


def _callback_data(button: dict[str, Any]) -> str | None:
    data = button.get("callback_data")
    return data if isinstance(data, str) else None


def pressable(markup: dict[str, Any] | None) -> list[str]:
    """Callback data of the buttons, in the order they are numbered: ``[1]`` is ``[0]``."""
    return [b.data for row in keyboard_of(markup) for b in row if b.data is not None]


def keyboard_lines(markup: dict[str, Any] | None) -> list[str]:
    """One line per keyboard row: ``[1] 🔄 续费  [2] ✏️ 编辑``; links show as ``[🔗 text]``."""
    lines: list[str] = []
    number = 0
    for row in keyboard_of(markup):
        labels: list[str] = []
        for button in row:
            if button.data is None:
                labels.append(f"[🔗 {button.text}]")
            else:
                number += 1
                labels.append(f"[{number}] {button.text}")
        lines.append(INDENT + "  ".join(labels))
    return lines


def _preview(text: str | None) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first if len(first) <= DELETED_PREVIEW else first[: DELETED_PREVIEW - 1] + "…"


def event_lines(event: ChatEvent, lang: str, saved_to: Path | None = None) -> list[str]:
    """The lines a reader of the chat would see for ``event`` (none for a silent answer)."""
    if event.kind == "callback_answer":
        if not event.text:
            return []  # only stops the button's spinner
        return [say(lang, "alert" if event.show_alert else "toast", text=event.text)]
    if event.kind == "delete":
        return [say(lang, "deleted", text=_preview(event.text))]
    lines: list[str] = []
    if event.file is not None and event.kind in ("document", "photo"):
        name = event.file.filename or event.file.file_path.rsplit("/", 1)[-1]
        lines.append(say(lang, event.kind, name=name, size=event.file.size))
        if saved_to is not None:
            lines.append(say(lang, "saved_to", path=saved_to))
    if event.text:
        lines.extend(event.text.splitlines() or [""])
    if event.kind == "edit":
        marker = say(lang, "edited")
        lines = [f"{marker} {lines[0]}", *lines[1:]] if lines else [marker]
    return lines + keyboard_lines(event.reply_markup) + reply_box_lines(event.reply_markup, lang)


def reply_box_lines(markup: dict[str, Any] | None, lang: str) -> list[str]:
    """ForceReply opens the reply box (the shell's next line answers it as a reply)."""
    if not markup or markup.get("force_reply") is not True:
        return []
    hint = str(markup.get("input_field_placeholder") or "")
    return [INDENT + say(lang, "reply_box", placeholder=hint)]
