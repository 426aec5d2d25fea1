"""The bot's Telegram HTML (``<b>``, ``<code>``, ``<a>`` …) as WeCom markdown.

Text inside the HTML (the catalogue's words and, escaped in them, labels, notes and names) has
the characters that mean something in WeCom's markdown replaced by look-alikes that don't, so a
label can never become a format, a link, a quote, a heading, a ``<font>`` or a mention. Fewer
are replaced than for the push robots (``bot.robots.render``): this text is the whole screen,
read by the person who typed it, and ``(``, ``!`` or ``://`` in it must stay as they are.
"""

from __future__ import annotations

from html import escape
from html.parser import HTMLParser

_NEUTRAL = str.maketrans({"*": "＊", "`": "'", "[": "［", "]": "］", "<": "‹", ">": "›"})
_LINE_START = str.maketrans({"#": "＃", "-": "－"})  # a heading, a list item
_BACK = str.maketrans("＊［］‹›＃－", "*[]<>#-")

_MARKS = {"b": "**", "strong": "**", "code": "`", "pre": "`"}
_DROPPED = {"tg-spoiler", "span", "i", "em", "u", "ins", "s", "strike", "del", "tg-emoji"}


def _safe(text: str) -> str:
    lines = text.translate(_NEUTRAL).split("\n")
    return "\n".join(line[:1].translate(_LINE_START) + line[1:] for line in lines)


def shown(markdown: str) -> str:
    """What a person reads of the markdown this module writes (for tests and the shell)."""
    plain = markdown.replace("**", "").replace("`", "")
    return plain.translate(_BACK)


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.plain: list[str] = []
        self._links: list[tuple[int, str | None]] = []  # where each <a> started, its URL

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _MARKS:
            self.out.append(_MARKS[tag])
        elif tag == "a":
            href = dict(attrs).get("href")
            url = href if href and href.startswith(("http://", "https://")) else None
            self._links.append((len(self.out), url))
        elif tag == "blockquote":
            self.out.append("> ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _MARKS:
            self.out.append(_MARKS[tag])
        elif tag == "a" and self._links:
            start, url = self._links.pop()
            if url is not None:  # a mention (tg://user) or odd link: just its text
                inner = "".join(self.out[start:])
                del self.out[start:]
                self.out.append(f"[{inner}]({url.replace(')', '%29')})")

    def handle_data(self, data: str) -> None:
        self.out.append(_safe(data))
        self.plain.append(data)


def convert(html: str) -> tuple[str, str]:
    """``html`` (the subset the bot sends) as WeCom markdown, and as the plain text a reader
    sees of it (for card titles, which take no markup): one parse for both."""
    converter = _Converter()
    converter.feed(html)
    converter.close()
    return "".join(converter.out).replace("****", ""), "".join(converter.plain)


def to_markdown(html: str) -> str:
    return convert(html)[0]


def to_plain(html: str) -> str:
    return convert(html)[1]


def text_markdown(text: str) -> str:
    """Plain text (a notice, a button's label) as WeCom markdown that shows it as it is."""
    return to_markdown(escape(text, quote=False))
