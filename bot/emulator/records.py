"""Plain records of what happened on the emulated Bot API: calls, messages, files, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bot.emulator.markup import Button, buttons_of

JsonDict = dict[str, Any]

EventKind = Literal["message", "edit", "delete", "document", "photo", "callback_answer"]
MessageKind = Literal["text", "document", "photo"]


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a ``multipart/form-data`` request."""

    field: str
    filename: str
    mime_type: str
    content: bytes


@dataclass(frozen=True)
class StoredFile:
    """A file the emulator can serve through ``getFile`` and the file download URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    kind: Literal["document", "photo"] = "document"
    filename: str | None = None
    mime_type: str | None = None
    width: int | None = None  # photos only
    height: int | None = None

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.content)


@dataclass
class ApiCall:
    """One HTTP request to the Bot API and the answer it got (``None`` while in flight)."""

    method: str
    params: JsonDict
    time: float
    http_method: str = "POST"
    files: dict[str, UploadedFile] = field(default_factory=dict)
    status: int | None = None
    response: JsonDict | None = None
    fault: str | None = None  # injected fault kind, or "rate_limit"

    @property
    def ok(self) -> bool:
        """Whether the answer was ``{"ok": true, ...}``."""
        return self.response is not None and self.response.get("ok") is True

    @property
    def result(self) -> Any:
        """The ``result`` of a successful answer (``None`` otherwise)."""
        return None if self.response is None else self.response.get("result")

    @property
    def description(self) -> str | None:
        """The error ``description`` of a failed answer."""
        return None if self.response is None else self.response.get("description")


@dataclass
class BotMessage:
    """A message the bot sent, in its current state (edits applied)."""

    chat_id: int
    message_id: int
    date: int
    kind: MessageKind = "text"
    text: str | None = None  # what the user sees: tags stripped, entities unescaped
    caption: str | None = None
    entities: list[JsonDict] = field(default_factory=list)  # of text, or of caption
    raw_text: str | None = None  # text or caption exactly as the bot sent it
    parse_mode: str | None = None
    reply_markup: JsonDict | None = None
    file: StoredFile | None = None
    edit_date: int | None = None
    reply_to_message_id: int | None = None

    @property
    def content(self) -> str | None:
        """Text of a text message, caption of a media message."""
        return self.text if self.kind == "text" else self.caption

    @property
    def buttons(self) -> list[list[Button]]:
        """Rows of ``(text, callback_data or url)`` of the attached keyboard."""
        return buttons_of(self.reply_markup)


@dataclass(frozen=True)
class ChatEvent:
    """Something the bot did that a user in the chat would notice."""

    kind: EventKind
    chat_id: int
    message_id: int | None
    text: str | None = None  # message text / caption / callback answer text
    raw_text: str | None = None
    reply_markup: JsonDict | None = None
    buttons: list[list[Button]] = field(default_factory=list)
    file: StoredFile | None = None
    show_alert: bool = False  # callback answers only
    url: str | None = None  # callback answers only
    callback_query_id: str | None = None
    time: float = 0.0

    @property
    def content(self) -> bytes | None:
        """Bytes of the document / photo, if any."""
        return None if self.file is None else self.file.content

    @property
    def filename(self) -> str | None:
        """File name of the document / photo, if any."""
        return None if self.file is None else self.file.filename
