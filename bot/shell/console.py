"""The terminal side: reading what the person types (or a script) and printing the chat.

Lines are read on a daemon thread so the event loop (the emulator, the bot's polling, its
JobQueue) keeps running while someone thinks; a daemon thread blocked in ``input()`` never
delays the exit after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TextIO

ECHO = "> "  # in scripts, each input line is echoed so the output reads as a conversation
COMMENT = "#"


class Console:
    """Input and output streams; ``interactive`` shows prompts, a script echoes its lines."""

    def __init__(self, stdin: TextIO, stdout: TextIO, *, interactive: bool) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.interactive = interactive
        # input() gives line editing and history (with readline), but only on the real terminal
        self._use_input = interactive and stdin is sys.stdin and stdout is sys.stdout

    async def read_line(self, prompt: str) -> str | None:
        """The next line to act on, without its newline; None at the end of the input.

        Scripts skip blank lines and ``#`` comments and echo the rest as ``> line``.
        """
        while True:
            line = await self._read_raw(prompt)
            if line is None:
                return None
            if self.interactive:
                return line
            text = line.strip()
            if not text or text.startswith(COMMENT):
                continue
            self.write([ECHO + text])
            return text

    async def _read_raw(self, prompt: str) -> str | None:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[str | None] = loop.create_future()

        def deliver(value: str | None) -> None:
            if not result.done():
                result.set_result(value)

        def read() -> None:
            value = self._read_blocking(prompt)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (Ctrl-C)
                loop.call_soon_threadsafe(deliver, value)

        threading.Thread(target=read, name="simwatch-shell-input", daemon=True).start()
        return await result

    def _read_blocking(self, prompt: str) -> str | None:
        if self._use_input:
            try:
                return input(prompt)
            except EOFError:
                return None
        if self.interactive:
            self.stdout.write(prompt)
            self.stdout.flush()
        line = self.stdin.readline()
        return line.rstrip("\r\n") if line else None

    def write(self, lines: Iterable[str]) -> None:
        for line in lines:
            print(line, file=self.stdout)
        self.stdout.flush()

    def write_blocks(self, blocks: Iterable[list[str]]) -> None:
        """Blocks (one per message or notice) separated by blank lines, then one blank line
        that ends the answer to one input (also when there was none)."""
        self.write(_with_blank_lines(blocks))


def _with_blank_lines(blocks: Iterable[list[str]]) -> Iterator[str]:
    wrote = False
    for block in blocks:
        if block:
            yield from block
            yield ""
            wrote = True
    if not wrote:
        yield ""


def enable_line_editing() -> None:
    """Arrow keys and history for ``input()`` where the readline module exists."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - importing it is what turns it on


@contextlib.contextmanager
def terminal_kept(stream: TextIO) -> Iterator[None]:
    """Leave the terminal as it was found: Ctrl-C can end the shell while readline, on the
    input thread, has the terminal in its own mode."""
    try:
        import termios
    except ImportError:  # Windows
        yield
        return
    try:
        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):  # not a terminal: a script, a test
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
