"""Text measuring the way Telegram does it: offsets and lengths in UTF-16 code units."""

from __future__ import annotations

import re
from typing import Any

# td's is_space(): what Telegram trims from both ends of a message text.
WHITESPACE = " \t\r\n\v\f"

# A bot command is "/" + up to 32 word characters (optionally "@botname") at a word start.
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,32})?(?![A-Za-z0-9_])")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: characters outside the BMP count twice."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def command_entities(text: str) -> list[dict[str, Any]]:
    """``bot_command`` entities Telegram attaches to a user's message text."""
    return [
        {
            "type": "bot_command",
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group()),
        }
        for match in _COMMAND.finditer(text)
    ]


def trim_formatted(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim whitespace from both ends like Telegram, shifting and clipping the entities."""
    left_trimmed = text.lstrip(WHITESPACE)
    shift = utf16_len(text) - utf16_len(left_trimmed)
    trimmed = left_trimmed.rstrip(WHITESPACE)
    total = utf16_len(trimmed)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(int(entity["offset"]) - shift, 0)
        end = min(int(entity["offset"]) + int(entity["length"]) - shift, total)
        if end > start:  # Telegram drops entities left empty by trimming
            kept.append({**entity, "offset": start, "length": end - start})
    return trimmed, kept
