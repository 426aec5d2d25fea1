"""Reading an upload in a child process with CPU and memory limits, for the running bot.

Parsing a spreadsheet is CPU work in Python: in a thread it would still hold the GIL and slow
every other chat (the machine may have two cores), and a file built to be expensive (see the
limits in ``bot.bulk.reading``) could take the whole process's memory. So each upload is read
by a fresh process, forked from a small server process that has already imported the parser
(multiprocessing's "forkserver": no copy of the bot's threads, about 10 ms to start), which:

* runs at a lower priority (``nice``), so the bot answers first when both want the CPU;
* has ``RLIMIT_CPU`` (SIGXCPU ends it past the limit) and ``RLIMIT_AS`` (allocations past the
  limit fail with ``MemoryError``) set before it reads a byte of the file;
* sends back the sheet, or the ``InputError`` the file deserves, through a pipe.

Whatever happens to it (killed by a limit, crashed), the bot goes on and the user hears why, in
their language: ``import.file.too_slow`` or ``import.file.too_much_memory``, naming the limit.
At most ``MAX_WORKERS`` uploads are read at once; others wait their turn on the event loop
(not in a thread, so the threads ``asyncio.to_thread`` lends the rest of the bot stay free).
Each upload names its owners (its chat, its user): an owner has at most one upload in flight, so
one chat or one user cannot hold every slot with files built to be slow; a second one is refused
at once with ``import.file.busy``.
The command line reads in its own process and needs none of this.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
import weakref
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bot.bulk.reading import Limits, Sheet, read_sheet
from bot.errors import InputError

log = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_WORKERS = 2
_NICENESS = 10
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["bot.bulk.reading"])  # imported once, not per upload
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)  # per event loop, as an asyncio.Semaphore belongs to one
_BUSY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[Hashable]] = (
    weakref.WeakKeyDictionary()
)  # per event loop: the owners with an upload waiting or being read


@dataclass(frozen=True)
class WorkerLimits:
    # CPU time of the parse: a file of 20,000 rows of ten columns needs about 4 s, 9 s when
    # some known columns have blank cells (looked at again for formulas): twice that, at least
    cpu_seconds: int = 20
    memory_mb: int = 1024  # address space the parse may add to what the worker starts with
    wall_seconds: float = 120  # a worker that neither finishes nor burns CPU is killed too


CHAT_WORKER = WorkerLimits()

# ("sheet", Sheet, None), ("refused", key, params) or ("bug", text, None)
Outcome = tuple[str, Any, Any]


async def read_upload(content: bytes, limits: Limits, owners: Sequence[Hashable] = ()) -> Sheet:
    """An upload read in a worker (``read_sheet_in_worker``), at most ``MAX_WORKERS`` at once
    and one per owner (``InputError("import.file.busy")`` while an owner's previous upload is
    waiting or being read); the event loop goes on meanwhile."""
    loop = asyncio.get_running_loop()
    slots = _SLOTS.setdefault(loop, asyncio.Semaphore(MAX_WORKERS))
    with _claim(_BUSY.setdefault(loop, set()), owners):
        async with slots:
            return await asyncio.to_thread(read_sheet_in_worker, content, limits)


@contextmanager
def _claim(busy: set[Hashable], owners: Sequence[Hashable]) -> Iterator[None]:
    if any(owner in busy for owner in owners):
        raise InputError("import.file.busy")
    mine = set(owners)
    busy.update(mine)
    try:
        yield
    finally:
        busy.difference_update(mine)


def read_sheet_in_worker(
    content: bytes, limits: Limits, worker: WorkerLimits | None = None
) -> Sheet:
    """``read_sheet`` in a child process under ``worker``'s limits (default ``CHAT_WORKER``).
    Blocking, for as long as the child reads. ``InputError`` when the file is refused,
    whichever way."""
    kind, first, second = _run(content, limits, worker or CHAT_WORKER)
    if kind == "sheet":
        sheet: Sheet = first
        return sheet
    if kind == "refused":
        raise InputError(first, **second)
    raise RuntimeError(f"reading the upload failed in the worker: {first}")


def _run(content: bytes, limits: Limits, worker: WorkerLimits) -> Outcome:
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(
        target=_child, args=(sender, content, limits, worker), name="simwatch-read", daemon=True
    )
    try:
        process.start()
    finally:
        sender.close()  # the child has its own copy; EOF once it is gone
    try:
        if not receiver.poll(worker.wall_seconds):
            log.warning("reading an upload took over %s s; stopped", worker.wall_seconds)
            return _too_slow(worker)
        try:
            outcome: Outcome = receiver.recv()
        except EOFError:  # it died without a word: a limit ended it
            process.join()
            return _death(process.exitcode, worker)
        return outcome
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join()
        process.close()


def _too_slow(worker: WorkerLimits) -> Outcome:
    return ("refused", "import.file.too_slow", {"seconds": worker.cpu_seconds})


def _too_big(worker: WorkerLimits) -> Outcome:
    return ("refused", "import.file.too_much_memory", {"mb": worker.memory_mb})


def _death(exitcode: int | None, worker: WorkerLimits) -> Outcome:
    if exitcode == -signal.SIGXCPU:
        log.info("reading an upload hit the CPU limit (%s s)", worker.cpu_seconds)
        return _too_slow(worker)
    if exitcode == -signal.SIGKILL:  # the CPU hard limit, or the kernel out of memory
        log.warning("the worker reading an upload was killed")
        return _too_big(worker)
    if exitcode is not None and exitcode < 0:  # another signal: a limit, not the file's fault
        log.warning("the worker reading an upload was ended by signal %s", -exitcode)
        return _too_slow(worker)
    log.warning("the worker reading an upload ended with status %s", exitcode)
    return ("refused", "import.file.damaged", {})


def _address_space() -> int:
    """The process's current virtual size, in bytes (Linux); 0 where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _confine(worker: WorkerLimits) -> None:
    os.nice(_NICENESS)
    # soft: SIGXCPU, which ends the process; hard: SIGKILL, should it go on regardless
    cpu = worker.cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    memory = _address_space() + worker.memory_mb * MB
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ValueError, OSError) as exc:  # not every system lets the address space be limited
        log.warning("no memory limit for reading uploads: %s", exc)


def _child(sender: Connection, content: bytes, limits: Limits, worker: WorkerLimits) -> None:
    """The worker process: confine itself, read, answer once."""
    outcome: Outcome
    try:
        _confine(worker)
        try:
            outcome = ("sheet", read_sheet(content, limits), None)
        except InputError as exc:
            outcome = ("refused", exc.key, exc.params)
        except MemoryError:
            outcome = _too_big(worker)
        except Exception as exc:  # a bug: the bot's error handler should hear of it
            outcome = ("bug", repr(exc), None)
        try:
            sender.send(outcome)
        except MemoryError:  # the sheet fitted, its copy for the pipe did not
            del outcome
            sender.send(_too_big(worker))
    finally:
        sender.close()
