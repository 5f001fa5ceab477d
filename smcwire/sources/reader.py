"""Reading inputs into events, with every line accounted for.

Each line of each file ends up in exactly one bucket: it went into an event (``event_lines``),
it is foreign (recognised as not ours: other tracepoints, headers, other programs' output), or
it is malformed (looked like ours but did not parse; a ``file:line: reason`` diagnostic is kept
for the first ``MAX_DIAGNOSTICS``). ``lines == event_lines + foreign + malformed`` always.

A trace-cmd ``trace.dat`` (recognised by its magic, compressed or not, whatever ``input_format``
says) is read by ``tracedat``: its lines are those ``trace-cmd report`` would print.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, BinaryIO

from ..model.events import KIND_OF, Event
from . import io
from .base import Malformed
from .formats import CONSOLE, ConsoleParser, choose
from .io import (
    Batch,
    Input,
    InputFileError,
    LineTooLong,
    Opened,
    expand_inputs,
    read_lines,
)

MAX_DIAGNOSTICS = 20
SNIFF_LINES = 64


@dataclass
class FileStats:
    """What one input held."""

    file: str
    format: str = "?"
    compression: str | None = None
    lines: int = 0
    event_lines: int = 0
    foreign: int = 0
    malformed: int = 0
    events: Counter[str] = field(default_factory=Counter)
    lost_markers: int = 0
    binary_lines: int = 0  # lines with NUL bytes
    diagnostics: list[str] = field(default_factory=list)  # first MAX_DIAGNOSTICS malformed lines
    error: str | None = None  # the file could not be read to its end
    trace_dat: dict[str, Any] | None = None  # a trace.dat's version, compression, CPUs, records per CPU…

    def malformed_line(self, lineno: int, reason: str) -> None:
        self.malformed += 1
        if len(self.diagnostics) < MAX_DIAGNOSTICS:
            self.diagnostics.append(f"{self.file}:{lineno}: {reason}")


@dataclass
class Progress:
    """How far reading has got, for a progress display: updated after each batch of lines."""

    total_bytes: int | None  # the inputs' size on disk; None when one is stdin or followed
    done_bytes: int = 0  # on disk: the files read, and the position in the current one
    lines: int = 0
    events: int = 0


class TraceReader:
    """Iterate the events of several inputs, in order; ``stats`` and ``progress`` fill as files are read."""

    def __init__(self, inputs: Iterable[str | Input], input_format: str | None = None) -> None:
        self.inputs = [i if isinstance(i, Input) else expand_inputs([i])[0] for i in inputs]
        self.input_format = input_format
        self.stats: list[FileStats] = []
        self.progress = Progress(_disk_size(self.inputs))

    @classmethod
    def from_names(cls, names: Iterable[str], input_format: str | None = None) -> TraceReader:
        """Inputs as given on a command line: files, directories, ``-``."""
        return cls(expand_inputs(names), input_format)

    def __iter__(self) -> Iterator[Event]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Event]]:
        """The events in lists, in order: what one batch of lines of one file held (none empty)."""
        for inp in self.inputs:
            try:
                yield from self.read(inp)
            except InputFileError as e:  # recorded per file; the other inputs are still read
                if not self.stats or self.stats[-1].file != inp.name:
                    self.stats.append(FileStats(inp.name))
                self.stats[-1].error = str(e)

    @property
    def errors(self) -> list[str]:
        """One line per input that could not be read to its end."""
        return [s.error for s in self.stats if s.error]

    def read(self, inp: Input) -> Iterator[list[Event]]:
        stats = FileStats(inp.name)
        self.stats.append(stats)
        opened = inp.open()
        stats.compression = opened.compression
        done_before = self.progress.done_bytes
        if inp.until is None and io.is_tracedat(opened.stream):
            yield from self._read_tracedat(inp, opened, stats, done_before)
            return
        with opened.disk, opened.stream:  # a decompressor does not close the file it reads
            batches = read_lines(opened.stream, inp.name, inp.until)
            read_ahead: list[Batch | LineTooLong] = []  # the batches that hold the head, to read again
            head: list[bytes] = []
            for batch in batches:
                read_ahead.append(batch)
                if type(batch) is Batch:
                    head += batch.lines[:SNIFF_LINES - len(head)]
                if len(head) >= SNIFF_LINES or (inp.until is not None and (self.input_format is not None or head)):
                    break  # a followed input is told by what it holds now: it may wait long for more
            parser = choose(head, self.input_format)(inp.name)
            stats.format = parser.name
            feed = parser.feed
            # A file read by one parser may still go on as a console log (a trace followed by dmesg):
            # its foreign lines that do not start like a trace line (ftrace pads the task to 16
            # columns, so its lines start with a blank) are offered to every family.
            console = ConsoleParser(inp.name) if self.input_format is None and parser.name != CONSOLE else None
            by_type: Counter[type] = Counter()  # events given out, by type (by kind at the end)
            events: list[Event] = []  # of the batch of lines being read
            lineno = foreign = event_lines = binary = counted = 0  # counted: lines in progress.lines
            try:
                for batch in chain(read_ahead, batches):
                    if type(batch) is LineTooLong:
                        lineno += 1
                        stats.malformed_line(lineno, f"line of {batch.length} bytes is too long (limit {io.MAX_LINE})")
                        continue
                    binary += batch.nul_lines  # type: ignore[union-attr]
                    for line in batch.lines:  # type: ignore[union-attr]
                        lineno += 1
                        out = feed(lineno, line)
                        if out is None:
                            if console is not None and line and line[0] not in _TRACE_STARTS:
                                out = console.feed(lineno, line)
                            if out is None:
                                foreign += 1
                                continue
                        if type(out) is Malformed:
                            stats.malformed_line(lineno, out.reason)  # type: ignore[union-attr]
                            continue
                        event_lines += 1
                        events += out  # type: ignore[arg-type]
                    if events:  # given out at once: a followed input may wait long for its next batch
                        by_type.update(map(type, events))
                        self._advance(lineno - counted, len(events), opened, done_before)
                        counted = lineno
                        yield events
                        events = []
                events += (*parser.finish(), *(console.finish() if console is not None else ()))
                self._advance(lineno - counted, len(events), opened, done_before)
                if events:
                    by_type.update(map(type, events))
                    yield events
            finally:
                stats.lines, stats.foreign, stats.event_lines, stats.binary_lines = lineno, foreign, event_lines, binary
                for cls, n in by_type.items():
                    stats.events[KIND_OF[cls]] += n
                stats.lost_markers = stats.events["lost_events"]

    def _read_tracedat(self, inp: Input, opened: Opened, stats: FileStats, done_before: int) -> Iterator[list[Event]]:
        from .tracedat.reader import read_tracedat  # Construct is imported for trace.dat files only

        stats.format = "trace.dat"
        progress = self.progress

        def advance(lines: int, events: int, fraction: float) -> None:
            progress.lines += lines
            progress.events += events
            if opened.size is not None:
                progress.done_bytes = done_before + int(opened.size * fraction)

        with opened.disk, opened.stream:  # a decompressor does not close the file it reads
            yield from read_tracedat(inp.name, opened, stats, advance)

    def _advance(self, lines: int, events: int, opened: Opened, done_before: int) -> None:
        """Progress by a batch: its lines and events, and the position in the file on disk."""
        progress = self.progress
        progress.lines += lines
        progress.events += events
        if opened.size is not None:
            progress.done_bytes = done_before + _tell(opened.disk)


_TRACE_STARTS = frozenset(b" #")


def _disk_size(inputs: list[Input]) -> int | None:
    """The inputs' total size on disk, None when one has no fixed size (stdin, a followed file)."""
    total = 0
    for inp in inputs:
        if inp.path is None or inp.until is not None:
            return None
        try:
            total += inp.path.stat().st_size
        except OSError:  # reported when it is read
            pass
    return total


def _tell(disk: BinaryIO) -> int:
    try:
        return disk.tell()
    except (OSError, ValueError):
        return 0
