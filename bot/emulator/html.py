"""Telegram's ``parse_mode="HTML"`` parser: same accepted tags, same errors, same entities.

Follows tdlib's ``parse_html`` (td/telegram/MessageEntity.cpp): tags are matched as a
stack, only the documented tags are allowed, and errors are reported with byte offsets
into the UTF-8 source. The result is the text a user sees plus Bot API entities whose
offsets count UTF-16 code units.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.emulator.text import utf16_len

ALLOWED_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre",
        "tg-spoiler", "span", "blockquote", "tg-emoji",
    }
)  # fmt: skip

_SIMPLE_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}

_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACE = frozenset(" \t\r\n\v\f\0")  # td's is_space()
_URL_WITH_SCHEME = re.compile(r"^(?:https?|tg|ton)://\S+$", re.IGNORECASE)
_BARE_DOMAIN = re.compile(r"^[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?:[/?#]\S*)?$")
_MENTION_URL = re.compile(r"^tg://user\?id=(\d+)$", re.IGNORECASE)

UserResolver = Callable[[int], dict[str, Any] | None]


class HtmlParseError(ValueError):
    """The HTML was rejected; ``str(error)`` is Telegram's reason after "can't parse entities: "."""


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    piece_index: int  # where the tag's content starts in the output pieces


@dataclass
class _Decoded:
    char: str
    end: int
    terminated: bool  # ended with ";"


def _decode_entity(source: str, pos: int) -> _Decoded | None:
    """Decode the character reference at ``source[pos] == "&"``; ``None`` if there is none."""
    end = pos + 1
    length = len(source)
    if source.startswith("#", end):
        end += 1
        base, digits = 10, "0123456789"
        if source.startswith("x", end):
            end += 1
            base, digits = 16, "0123456789abcdefABCDEF"
        start = end
        while end < length and source[end] in digits:
            end += 1
        if end == start or end - pos >= 10:
            return None
        code = int(source[start:end], base)
        if code == 0 or code >= 0x10FFFF:
            return None
        char = chr(code)
    else:
        while end < length and source[end].isascii() and source[end].isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(source[pos + 1 : end])
        if named is None:
            return None
        char = named
    terminated = source.startswith(";", end)
    return _Decoded(char, end + 1 if terminated else end, terminated)


def _valid_url(url: str) -> str | None:
    """The URL a ``text_link`` would carry, or ``None`` if Telegram would drop the link."""
    url = url.strip()
    if _URL_WITH_SCHEME.match(url):
        return url
    if _BARE_DOMAIN.match(url):
        return "http://" + url
    return None


class _Parser:
    def __init__(self, source: str, *, strict: bool, resolve_user: UserResolver | None) -> None:
        self.source = source
        self.strict = strict
        self.resolve_user = resolve_user
        self.pieces: list[str] = []
        self.utf16 = 0
        self.entities: list[dict[str, Any]] = []
        self.stack: list[_OpenTag] = []
        self.pos = 0

    def byte_offset(self, index: int) -> int:
        return len(self.source[:index].encode("utf-8"))

    def char(self, index: int) -> str:
        # Like td's NUL-terminated buffer: reading past the end yields "".
        return self.source[index] if index < len(self.source) else ""

    def emit(self, text: str) -> None:
        self.pieces.append(text)
        self.utf16 += utf16_len(text)

    def parse(self) -> tuple[str, list[dict[str, Any]]]:
        source = self.source
        while self.pos < len(source):
            char = source[self.pos]
            if char == "&":
                self.ampersand()
            elif char == "<":
                if self.char(self.pos + 1) == "/":
                    self.end_tag()
                else:
                    self.start_tag()
            else:
                self.emit(char)
                self.pos += 1
        if self.stack:
            name = self.stack[-1].name
            raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{name}"')
        text = "".join(self.pieces)
        if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
            raise HtmlParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        self.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return text, self.entities

    def ampersand(self) -> None:
        decoded = _decode_entity(self.source, self.pos)
        if decoded is not None and (decoded.terminated or not self.strict):
            self.emit(decoded.char)
            self.pos = decoded.end
            return
        if self.strict:
            # Telegram would show a bare "&" literally; strict mode flags the missing escape.
            raise HtmlParseError(
                f'Unescaped "&" at byte offset {self.byte_offset(self.pos)} '
                "(emulator strict mode: escape it as &amp;)"
            )
        self.emit("&")
        self.pos += 1

    def skip_spaces(self) -> None:
        while self.char(self.pos) in _SPACE and self.pos < len(self.source):
            self.pos += 1

    def start_tag(self) -> None:
        begin = self.pos
        at = self.byte_offset(begin)
        self.pos += 1
        while self.pos < len(self.source) and self.source[self.pos] not in _SPACE | {">"}:
            self.pos += 1
        if self.pos >= len(self.source):
            raise HtmlParseError(f"Unclosed start tag at byte offset {at}")
        name = self.source[begin + 1 : self.pos].lower()
        if name not in ALLOWED_TAGS:
            raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {at}')
        argument = ""
        while self.char(self.pos) != ">":
            self.skip_spaces()
            if self.pos >= len(self.source):
                raise HtmlParseError(f"Unclosed start tag at byte offset {at}")
            if self.source[self.pos] == ">":
                break
            argument = self.attribute(name, at, argument)
        self.pos += 1  # the ">"
        if name == "span" and argument != "spoiler":
            raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
        self.stack.append(_OpenTag(name, argument, self.utf16, len(self.pieces)))

    def attribute(self, tag: str, at: int, argument: str) -> str:
        """Parse one ``name=value`` and return the tag's (possibly updated) argument."""
        name_begin = self.pos
        while self.pos < len(self.source) and self.source[self.pos] not in _SPACE | {"=", ">"}:
            self.pos += 1
        name = self.source[name_begin : self.pos]
        if not name:
            raise HtmlParseError(f'Empty attribute name in the tag "{tag}" at byte offset {at}')
        self.skip_spaces()
        if self.char(self.pos) != "=":
            if tag == "blockquote" and name.lower() == "expandable":
                return "expandable"  # the only value-less attribute Telegram knows
            raise HtmlParseError(
                "Expected equal sign in declaration of an attribute of the tag "
                f'"{tag}" at byte offset {at}'
            )
        self.pos += 1
        self.skip_spaces()
        if self.pos >= len(self.source):
            raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {at}')
        value = self.attribute_value()
        if self.pos >= len(self.source):
            raise HtmlParseError(f"Unclosed start tag at byte offset {at}")
        if tag == "a" and name == "href":
            return value
        if tag == "code" and name == "class" and value.startswith("language-"):
            return value.removeprefix("language-")
        if tag == "span" and name == "class" and value.startswith("tg-"):
            return value.removeprefix("tg-")
        if tag == "tg-emoji" and name == "emoji-id":
            return value
        return argument

    def attribute_value(self) -> str:
        quote = self.source[self.pos]
        if quote not in "'\"":
            # An unquoted name token: letters, digits, periods and hyphens; case-insensitive.
            begin = self.pos
            while self.char(self.pos).isascii() and (
                self.char(self.pos).isalnum() or self.char(self.pos) in ".-"
            ):
                self.pos += 1
            if self.pos < len(self.source) and self.source[self.pos] not in _SPACE | {">"}:
                raise HtmlParseError(
                    f"Unexpected end of name token at byte offset {self.byte_offset(begin)}"
                )
            return self.source[begin : self.pos].lower()
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.source) and self.source[self.pos] != quote:
            if self.source[self.pos] == "&":
                decoded = _decode_entity(self.source, self.pos)
                if decoded is not None:
                    chars.append(decoded.char)
                    self.pos = decoded.end
                    continue
            chars.append(self.source[self.pos])
            self.pos += 1
        if self.pos < len(self.source):
            self.pos += 1  # the closing quote
        return "".join(chars)

    def end_tag(self) -> None:
        begin = self.pos
        at = self.byte_offset(begin)
        if not self.stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {at}")
        self.pos += 2
        while self.pos < len(self.source) and self.source[self.pos] not in _SPACE | {">"}:
            self.pos += 1
        end_name = self.source[begin + 2 : self.pos]
        self.skip_spaces()
        if self.char(self.pos) != ">":
            raise HtmlParseError(f"Unclosed end tag at byte offset {at}")
        self.pos += 1
        opened = self.stack.pop()
        if end_name and end_name.lower() != opened.name:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {at}, expected "</{opened.name}>", '
                f'found "</{end_name}>"'
            )
        if self.utf16 > opened.utf16_offset:
            self.close_entity(opened)

    def close_entity(self, opened: _OpenTag) -> None:
        offset = opened.utf16_offset
        span: dict[str, Any] = {"offset": offset, "length": self.utf16 - offset}
        name = opened.name
        if name in _SIMPLE_ENTITY:
            self.entities.append({"type": _SIMPLE_ENTITY[name], **span})
        elif name == "blockquote":
            kind = "expandable_blockquote" if opened.argument == "expandable" else "blockquote"
            self.entities.append({"type": kind, **span})
        elif name == "tg-emoji":
            if opened.argument:
                self.entities.append(
                    {"type": "custom_emoji", **span, "custom_emoji_id": opened.argument}
                )
        elif name == "a":
            self.link_entity(opened, span)
        elif name == "code":
            self.entities.append({"type": "code", **span, "language": opened.argument})
        else:  # pre: absorbs a <code class="language-…"> spanning exactly its content
            pre: dict[str, Any] = {"type": "pre", **span}
            last = self.entities[-1] if self.entities else None
            if (
                last is not None
                and last["type"] == "code"
                and (last["offset"], last["length"]) == (offset, span["length"])
            ):
                self.entities.pop()
                if last.get("language"):
                    pre["language"] = last["language"]
            self.entities.append(pre)

    def link_entity(self, opened: _OpenTag, span: dict[str, Any]) -> None:
        url = opened.argument or "".join(self.pieces[opened.piece_index :])
        mention = _MENTION_URL.match(url.strip())
        if mention:
            user = self.resolve_user(int(mention.group(1))) if self.resolve_user else None
            if user is not None:
                self.entities.append({"type": "text_mention", **span, "user": user})
            return
        valid = _valid_url(url)
        if valid is not None:  # Telegram silently drops links with unusable URLs
            self.entities.append({"type": "text_link", **span, "url": valid})


def parse_html(
    source: str, *, strict: bool = False, resolve_user: UserResolver | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Return ``(visible_text, entities)`` or raise :class:`HtmlParseError`.

    ``strict`` additionally rejects a bare ``&`` (Telegram shows it literally, but it
    always means the bot forgot to escape user text). ``resolve_user`` turns
    ``tg://user?id=N`` links into ``text_mention`` entities.
    """
    text, entities = _Parser(source, strict=strict, resolve_user=resolve_user).parse()
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    return text, entities
