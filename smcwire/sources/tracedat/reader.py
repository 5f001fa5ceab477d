"""A trace.dat into events, in the order and on the lines of ``trace-cmd report``.

``trace-cmd report`` prints ``cpus=N``, then every record of every CPU merged by time: the CPU whose
next record has the smallest time goes first, the lowest CPU on a tie (trace-input.c
``tracecmd_iterate_events_multi()``), each record one line, preceded by ``CPU:N [M EVENTS DROPPED]``
when the ring buffer lost events before its page. smcwire merges the same way, so an event's
``line`` is the line ``trace-cmd report`` prints it on (``trace-cmd report trace.dat | sed -n
LINEp``), and the file's accounting is the report's: ``lines`` counts ``cpus=N`` (foreign), every
record and every dropped-events marker; ``lines = event_lines + foreign + malformed``.

Malformed (``Bad``): a record of an event ID the file has no format for, a record too short for its format,
a page whose data does not parse (one pseudo-record for the rest of the page), a compressed chunk
that does not decompress (one pseudo-record, the next chunk is read). CPU data cut by the end of
the file ends that CPU's records; the file's error says so once the other CPUs are read.

Merging costs next to nothing per foreign record. Each CPU holds one decoded segment (the records
of a block of pages: a compressed chunk, or 16 pages read at once) and the next one; when their
times do not go back, the CPU whose segment ends first (time, then CPU) bounds a window: the
records of every segment up to that end come before any later record in the merge, so the window
is taken at once, each of its events on the line given by its rank among the window's times. When
times go back, the merge goes a run at a time (the records of the CPU at the head that come before
the other CPUs' next ones), exactly as trace-cmd merges.
"""

from __future__ import annotations

import lzma
import shutil
import tempfile
import zlib
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, repeat
from operator import add, eq, itemgetter
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from ...model.events import KIND_OF, Event
from ..io import InputFileError, Opened
from .file import Broken, CpuData, TraceDat, TraceDatError
from .formats import Field
from .records import MASK64, Bad, Bytes, Context, Note, PageDecoder, readers_for

if TYPE_CHECKING:
    from ..reader import FileStats

BATCH_EVENTS = 1024  # events given out at once
BATCH_LINES = 1 << 16  # or records read, for progress
_COMMON_TYPE = Field("common_type", "unsigned short", 0, 2, False)  # when no format says otherwise
_SPOOL = 1 << 20

Advance = Callable[[int, int, float], None]  # lines, events, fraction of the CPU data read


def seekable(opened: Opened, name: str) -> tuple[BinaryIO, int, str | None]:
    """The decompressed input as a seekable file, its size, and why it could not be read to its end:
    an uncompressed file on disk as it is, anything else (gzip, xz, stdin) copied to a temporary
    file, a block at a time (a trace.dat is read by offset: the CPUs' pages are merged by time)."""
    stream = opened.stream
    if opened.compression is None and opened.size is not None and stream.seekable():
        return stream, opened.size, None
    spool: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller
    error = None
    try:
        shutil.copyfileobj(stream, spool, _SPOOL)
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as e:  # corrupt or cut: the rest is read
        error = f"cannot read: {e}"
    size = spool.tell()
    spool.seek(0)
    return spool, size, error


class _Segment(NamedTuple):
    """The records of one block of a CPU's pages: their times (as ``trace-cmd report`` prints them),
    the notes on those that are not foreign (``records.PageDecoder``), and whether a time goes back
    from the previous record's (of this block or the one before)."""

    buf: Bytes
    times: list[int]
    notes: list[Note]
    back: bool


class _Cpu:
    """One CPU's records, a decoded segment at a time (and the next one), and where the merge is."""

    __slots__ = ("cpu", "order", "blocks", "decoder", "convert", "errors", "segment", "times", "n", "i", "k",
                 "sorted", "continues", "count", "last", "upcoming")

    def __init__(self, order: int, data: CpuData, dat: TraceDat, decoder: PageDecoder,
                 convert: Callable[[int], int] | None, errors: list[str]) -> None:
        self.cpu, self.order = data.cpu, order
        self.blocks = dat.blocks(data)
        self.decoder, self.convert, self.errors = decoder, convert, errors
        self.count = 0  # records (of every kind) read
        self.last = 0  # time of the last record decoded (before conversion)
        self.segment = _Segment(b"", [], [], False)
        self.times: list[int] = []
        self.n = self.i = self.k = 0  # records in the segment, the next one to merge, the next note
        self.sorted = self.continues = True  # the segment's times do not decrease, nor to the next one
        self.upcoming = self._decode()

    def _decode(self) -> _Segment | None:
        """The next block's records."""
        for block in self.blocks:
            times: list[int] = []
            notes: list[Note] = []
            back = False
            if isinstance(block, Broken):
                if block.fatal:
                    self.errors.append(block.reason)
                    return None
                notes.append((0, self.decoder.broken, block.reason, 0))
                times.append(self.last)
                buf: Bytes = b""
            else:
                buf, decode = block.buf, self.decoder
                words = decode.words(buf)
                for start, size in block.pages:
                    records, went_back = decode(buf, words, start, size, self.last, times, notes)
                    self.count += records
                    back = back or went_back
                    if times:
                        self.last = times[-1]
            if not times:
                continue
            return _Segment(buf, times if self.convert is None else [self.convert(t) for t in times], notes, back)
        return None

    def load(self) -> bool:
        """Move to the next segment; False at the end of the CPU's data."""
        if self.upcoming is None:
            return False
        self.segment = self.upcoming
        self.times = self.segment.times
        self.n, self.i, self.k = len(self.times), 0, 0
        self.upcoming = self._decode()
        self.sorted = not self.segment.back
        self.continues = self.upcoming is None or not self.upcoming.back
        return True


class _Merge:
    """The CPUs merged as ``trace-cmd report`` merges them, into events and the line accounting."""

    def __init__(self, cpus: list[_Cpu], stats: FileStats) -> None:
        self.stats = stats
        self.active = [c for c in cpus if c.load()]
        self.line = 1  # "cpus=N"
        self.event_lines = 0
        self.events: list[Event] = []

    def step(self) -> None:
        """Merge the next window, or run."""
        active = self.active
        if len(active) == 1:
            self._run(active[0], active[0].n)
        elif all(c.sorted for c in active) and (bound := min(active, key=_segment_end)).continues:
            self._window(bound)
        else:
            heads = sorted((c.times[c.i], c.order, c) for c in active)
            self._run(heads[0][2], _run_end(heads[0][2], heads[1][0], heads[1][1]))

    def _run(self, cpu: _Cpu, end: int) -> None:
        """The records of ``cpu``'s segment up to ``end``, which come before any other CPU's."""
        notes, k = cpu.segment.notes, cpu.k
        stop = bisect_left(notes, (end,), k)  # the notes of records before ``end``
        base, buf, times = self.line + 1 - cpu.i, cpu.segment.buf, cpu.times
        self._take([read(buf, data, length, base + j, times[j], cpu.cpu) for j, read, data, length in notes[k:stop]])
        self.line += end - cpu.i
        self._advance(cpu, end, stop)

    def _window(self, bound: _Cpu) -> None:
        """The records of every CPU's segment up to the end of ``bound``'s, which is the first to end.
        A record's line is the window's first line plus the window's records before it: its rank in
        the window's times, sorted (one bisection); when another record has the same time, the records
        before it in its own segment and, in each other one, those up to its time (a lower CPU: ties
        come first) or before it (a higher one)."""
        last, order = bound.times[-1], bound.order
        active = self.active
        ends = [c.n if c is bound else (bisect_right if c.order < order else bisect_left)(c.times, last, c.i, c.n)
                for c in active]
        merged = sorted(chain.from_iterable(c.times[c.i:end] for c, end in zip(active, ends, strict=True)))
        size = len(merged)
        merged.append(-1)  # after the last: a time no record has
        first = self.line + 1
        found: list[Event | Bad | None] = []
        for c, end in zip(active, ends, strict=True):
            notes, k = c.segment.notes, c.k
            stop = bisect_left(notes, (end,), k)  # the notes of records before ``end``
            if stop == k:
                continue
            mine = notes[k:stop]
            times = list(map(c.times.__getitem__, [note[0] for note in mine]))
            rank = list(map(bisect_left, repeat(merged), times, repeat(0), repeat(size)))
            lines: Iterable[int] = map(add, rank, repeat(first))
            if any(map(eq, map(merged.__getitem__, map(add, rank, repeat(1))), times)):  # the next has its time
                lines = [self._tied_line(c, note[0], ts, active, ends) for note, ts in zip(mine, times, strict=True)]
            buf, cpu = c.segment.buf, c.cpu
            found += [read(buf, data, length, at, ts, cpu)
                      for (_, read, data, length), ts, at in zip(mine, times, lines, strict=True)]
            c.k = stop
        self._take(found)
        self.line += size
        for c, end in zip(list(active), ends, strict=True):
            self._advance(c, end, c.k)

    def _tied_line(self, cpu: _Cpu, j: int, ts: int, active: list[_Cpu], ends: list[int]) -> int:
        """The line of record ``j`` of ``cpu`` at time ``ts`` in the window, which has other records at
        that time: as trace-cmd merges, the lower CPU's first, a CPU's in order."""
        line = self.line + 1 + j - cpu.i
        for c, end in zip(active, ends, strict=True):
            if c is not cpu:
                line += (bisect_right if c.order < cpu.order else bisect_left)(c.times, ts, c.i, end) - c.i
        return line

    def _take(self, found: list[Event | Bad | None]) -> None:
        """What the records of a window or run read to (events, Bad, None for foreign ones), given out
        in line order: an event's line, as a Bad's, is its second field; lines are unique."""
        if None in found:
            found = [out for out in found if out is not None]
        if len(found) > 1:
            found.sort(key=_line)
        if Bad in map(type, found):  # rare
            for out in found:
                if type(out) is Bad:
                    self.stats.malformed_line(out.line, out.reason)  # type: ignore[union-attr]
            found = [out for out in found if type(out) is not Bad]
        self.event_lines += len(found)
        self.events.extend(found)  # type: ignore[arg-type]

    def _advance(self, cpu: _Cpu, end: int, k: int) -> None:
        cpu.i, cpu.k = end, k
        if end >= cpu.n and not cpu.load():
            self.active.remove(cpu)


def read_tracedat(name: str, opened: Opened, stats: FileStats, advance: Advance) -> Iterator[list[Event]]:
    """The events of a trace.dat, a batch at a time, filling ``stats``; InputFileError when the file
    cannot be read, or, after its events, when it could not be read to its end."""
    raw, size, spool_error = seekable(opened, name)
    try:
        yield from _read(name, raw, size, spool_error, stats, advance)
    finally:
        if raw is not opened.stream:
            raw.close()


def _read(name: str, raw: BinaryIO, size: int, spool_error: str | None, stats: FileStats,
          advance: Advance) -> Iterator[list[Event]]:
    try:
        dat = TraceDat(raw, size)
        type_field = next((f for fmt in dat.formats.values() for f in fmt.fields if f.name == "common_type"),
                          _COMMON_TYPE)
        readers = readers_for(dat.formats.values(), Context(name, dat.cmdlines, dat.big_endian, dat.kallsyms))
        decoder = PageDecoder(dat.header_page, dat.header_event, type_field, dat.big_endian,  # type: ignore[arg-type]
                              readers, name)
    except (TraceDatError, ValueError) as e:
        raise InputFileError(f"{name}: {spool_error or e}") from None
    cpu_data = dat.buffer.cpus if dat.buffer is not None else ()
    errors: list[str] = []
    stats.trace_dat = info = _details(dat, len(cpu_data))
    total = sum(d.size for d in cpu_data) or 1
    by_type: Counter[type] = Counter()
    counted = 1
    cpus: list[_Cpu] = []
    merge = None
    try:
        cpus.extend(_Cpu(order, data, dat, decoder, _converter(dat), errors) for order, data in enumerate(cpu_data))
        merge = _Merge(cpus, stats)
        while merge.active:
            merge.step()
            if len(merge.events) >= BATCH_EVENTS or merge.line - counted >= BATCH_LINES:
                events, merge.events = merge.events, []
                by_type.update(map(type, events))
                advance(merge.line - counted, len(events), dat.read_bytes / total)
                counted = merge.line
                yield events
        events, merge.events = merge.events, []
        by_type.update(map(type, events))
        advance(merge.line - counted, len(events), 1.0)
        if events:
            yield events
    finally:
        stats.lines = merge.line if merge is not None else 1
        stats.event_lines = merge.event_lines if merge is not None else 0
        stats.foreign = stats.lines - stats.event_lines - stats.malformed
        for cls, n in by_type.items():
            stats.events[KIND_OF[cls]] += n
        stats.lost_markers = stats.events["lost_events"]
        info["records_per_cpu"] = {str(c.cpu): c.count for c in cpus}
    if spool_error or errors:
        raise InputFileError(f"{name}: {spool_error or '; '.join(errors)}")


_line: Callable[[Any], int] = itemgetter(1)


def _segment_end(cpu: _Cpu) -> tuple[int, int]:
    return cpu.times[-1], cpu.order


def _run_end(cpu: _Cpu, bound: int, bound_order: int) -> int:
    """Where the run of ``cpu`` (the CPU at the head) ends: its first record from ``cpu.i`` on that
    comes after the other CPUs' next record (time ``bound``, CPU ``bound_order``), or the segment's end."""
    times, i, n = cpu.times, cpu.i, cpu.n
    before_on_tie = cpu.order < bound_order
    if cpu.sorted:
        return (bisect_right if before_on_tie else bisect_left)(times, bound, i + 1, n)
    end = i + 1
    while end < n and (times[end] < bound or (before_on_tie and times[end] == bound)):
        end += 1
    return end


def _converter(dat: TraceDat) -> Callable[[int], int] | None:
    """A record's time as ``trace-cmd report`` prints it (trace-input.c ``timestamp_calc()``): TSC
    cycles to ns with the TSC2NSEC option's multiplier and shift (``mul_u64_u32_shr()``), plus the
    DATE and OFFSET options' offset; None when neither applies."""
    offset = dat.ts_offset
    if dat.tsc2nsec is not None:
        mult, shift = dat.tsc2nsec

        def convert(ts: int) -> int:
            low, high = ts & 0xFFFFFFFF, ts >> 32
            out = (low * mult) >> shift
            if high:
                out += (high * mult) << (32 - shift)
            return ((out & MASK64) + offset) & MASK64

        return convert
    if offset:
        return lambda ts: (ts + offset) & MASK64
    return None


def _details(dat: TraceDat, cpus: int) -> dict[str, Any]:
    """What ``parse --summary`` shows of a trace.dat."""
    return {
        "version": dat.version,
        "compression": " ".join(dat.compression) if dat.compression and dat.compression[0] != "none" else "none",
        "cpus": cpus,
        "records_per_cpu": {},
        "clock": dat.clock,
        "page_size": dat.buffer.page_size if dat.buffer else dat.page_size,
        "long_size": dat.long_size,
        "endian": "big" if dat.big_endian else "little",
        "uname": dat.uname,
        "trace_cmd": dat.tracer_version,
        "notes": [*dat.notes, *(f"event format not read: {e}" for e in dat.format_errors)],
    }
