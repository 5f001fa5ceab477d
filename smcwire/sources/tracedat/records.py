"""Ring-buffer pages into records, and the records smcwire reads into events: the fast path.

A page (kernel/trace/ring_buffer.c ``struct buffer_data_page``, described by ``header_page``) is
a time stamp, a ``commit`` word and the data; ``commit`` holds the data's length in its low bits
(libtraceevent kbuffer-parse.c ``COMMIT_MASK``, 27 bits) and two flags: bit 31 ``RB_MISSED_EVENTS``,
events were lost before this page, and bit 30 ``RB_MISSED_STORED``, their count is stored as a long
after the data. The data is a sequence of ``struct ring_buffer_event`` (``header_event``): a 32-bit
word of ``type_len`` and ``time_delta``, then

- ``type_len`` 1..28 (data max): a record of ``4 * type_len`` bytes;
- ``type_len`` 0: a record whose length + 4 is in ``array[0]``, its data after it;
- 29, padding: a discarded record of ``array[0]`` bytes after the word, or with a zero delta the
  end of the page's data;
- 30, time extend: ``array[0] << 27 | time_delta`` is added to the time;
- 31, time stamp: the time is ``array[0] << 27 | time_delta``, with the top 5 bits of the current time.

Every record and padding adds its ``time_delta`` to the page's time; the records of a page keep
the time this gives (kbuffer-parse.c ``translate_data()``/``update_pointers()``, which trace-cmd
report uses). A record's data starts with the common fields, ``common_type`` being the event ID.

Each page is decoded in one loop with ``struct`` readers derived from ``header_page`` and
``header_event``; only the records of events smcwire reads (a ``Reader`` per event ID, made from
the event's field table) are decoded further, with one ``struct`` reader per event, derived from
its format: no offset is written here. ``schema.record_struct``/``ring_buffer_event`` parse the same
bytes with Construct, and the tests hold both to agree.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Iterable
from string import Template
from typing import Any, NamedTuple

from ...model.events import Event, LostEvents, SmcCall, SmcReturn
from ...model.memo import Memo
from ..ftrace import _SMC_SITE  # the text reader's test of an SMC probe: both paths agree
from .formats import EventFormat, Field, HeaderEvent, Kallsyms
from .schema import STRUCT_CODES

COMMIT_MASK = (1 << 27) - 1  # kbuffer-parse.c
RB_MISSED_EVENTS = 1 << 31  # ring_buffer.c: events lost before this page
RB_MISSED_STORED = 1 << 30  # ring_buffer.c: their count is stored after the data
TS_MSB = 0xF8 << 56  # kbuffer-parse.c: the bits an absolute time stamp does not hold
MASK64 = (1 << 64) - 1

_CALL_NAMES = (tuple(f"a{i}" for i in range(8)), tuple(f"x{i}" for i in range(8)))
_RET_NAMES = (tuple(f"r{i}" for i in range(8)), tuple(f"x{i}" for i in range(8)))


def struct_for(fields: Iterable[Field], big_endian: bool) -> tuple[struct.Struct, list[Field]]:
    """A ``struct`` reader of integer fields (and fixed arrays of them) at their offsets, and the
    fields in the order their values come (by offset). ValueError for a field that is no integer."""
    order = sorted(fields, key=lambda f: f.offset)
    codes, at = [">" if big_endian else "<"], 0
    for f in order:
        code = STRUCT_CODES.get(f.element_size)
        if code is None or f.array == 0 or f.offset < at:
            raise ValueError(f"{f.name} is not an integer field")
        if f.offset > at:
            codes.append(f"{f.offset - at}x")
        codes.append(f"{f.array or ''}{code.lower() if f.signed else code}")
        at = f.offset + f.size
    return struct.Struct("".join(codes)), order


Bytes = bytes | bytearray
Words = memoryview | array  # a buffer as 32-bit words
_WORD = next(code for code in "IL" if array(code).itemsize == 4)


class Bad(NamedTuple):
    """A record that is not what its format says, or data that is no record: counted malformed. Its
    line is its second field, as an event's is."""

    file: str
    line: int
    reason: str


# (buffer, data offset, length, line, time, CPU) -> the record's event, Bad, or None (foreign after all)
Reader = Callable[[Bytes, Any, int, int, int, int], "Event | Bad | None"]
Note = tuple[int, Reader, Any, int]  # (record index, reader, data offset, length)


class PageDecoder:
    """Pages into the times of their records and notes on those that are not foreign, with the
    layouts ``header_page``, ``header_event`` and the ``common_type`` field describe."""

    def __init__(self, header_page: tuple[Field, ...], header_event: HeaderEvent, type_field: Field,
                 big_endian: bool, readers: dict[int, Reader | None], file: str) -> None:
        fields = {f.name: f for f in header_page}
        try:
            timestamp, commit, data = fields["timestamp"], fields["commit"], fields["data"]
        except KeyError as e:
            raise ValueError(f"header_page has no {e.args[0]!r} field") from None
        self.header, order = struct_for((timestamp, commit._replace(signed=False)), big_endian)
        self.ts_index = order.index(timestamp)
        self.data_offset = data.offset
        byte_order = ">" if big_endian else "<"
        self.long = struct.Struct(byte_order + STRUCT_CODES[commit.size])
        bits = header_event.type_len_bits, header_event.time_delta_bits, header_event.array_bits
        if bits[0] + bits[1] != 32 or bits[2] != 32:
            raise ValueError(f"ring-buffer record header of {bits[0]}+{bits[1]} bits")
        if type_field.size not in (1, 2) or type_field.offset % 4 + type_field.size > 4:
            raise ValueError(f"common_type of {type_field.size} bytes at offset {type_field.offset}")
        self.event_type, _ = struct_for((type_field._replace(signed=False),), big_endian)
        self.native = big_endian == (sys.byteorder == "big")
        self.walk = _walker(header_event, type_field, big_endian)
        # the reader of every event ID (a list, faster than a dict): None for foreign events
        self.readers: list[Reader | None] = [self.unknown] * (1 << (8 * type_field.size))
        for ident, reader in readers.items():
            if 0 <= ident < len(self.readers):
                self.readers[ident] = reader
        self.file = file

    def words(self, buf: Bytes) -> Words:
        """``buf`` as 32-bit words in the file's byte order: a view when it is the machine's, else a copy."""
        if self.native:
            return memoryview(buf).cast(_WORD)  # type: ignore[call-overload]
        words = array(_WORD)
        words.frombytes(buf)
        words.byteswap()
        return words

    def event_id(self, buf: Bytes, data: int) -> int:
        """The event ID of the record whose data is at ``data``."""
        return self.event_type.unpack_from(buf, data)[0]  # type: ignore[no-any-return]

    def unknown(self, buf: Bytes, data: int, length: int, line: int, ts: int, cpu: int) -> Bad:
        """The reader of a record whose event ID the file has no format for."""
        return Bad(self.file, line, f"CPU {cpu}: a record of event ID {self.event_id(buf, data)}, which has no format")

    def lost(self, buf: Bytes, count: int, length: int, line: int, ts: int, cpu: int) -> LostEvents:
        """The reader of the pseudo-record of the events lost before a page (``count``, or -1)."""
        return LostEvents(self.file, line, cpu, count if count > 0 else None)

    def broken(self, buf: Bytes, reason: str, length: int, line: int, ts: int, cpu: int) -> Bad:
        """The reader of the pseudo-record of data that is no record."""
        return Bad(self.file, line, f"CPU {cpu}: {reason}")

    def __call__(self, buf: Bytes, words: Words, base: int, size: int, last: int, times: list[int],
                 notes: list[Note]) -> tuple[int, bool]:
        """Append the times of the records of the page of ``size`` bytes at ``base`` in ``buf`` (``words``:
        the same as 32-bit words) to ``times`` (kbuffer-parse.c ``kbuffer_load_subbuffer()``,
        ``translate_data()``), and a note to ``notes`` for each that is not foreign: ``(index in times,
        reader, data offset, length)``, the reader ``unknown`` for an event ID without a format; and
        two kinds of pseudo-records, so that they take their line: ``lost`` (the number of events lost,
        or -1, in place of the offset) before the first record, ``broken`` (why, in place of the
        offset) for data that is no record. ``last``, the time of the CPU's previous record, is the
        time of a page too short for its header. Returns the number of records, and whether a time
        went back (the page starts before ``last``, or an absolute time stamp sets an earlier time)."""
        if size < self.data_offset:
            notes.append((len(times), self.broken, f"page of {size} bytes, shorter than its header", 0))
            times.append(last)
            return 0, False
        head = self.header.unpack_from(buf, base)
        ts, commit = head[self.ts_index], head[1 - self.ts_index]
        back = ts < last
        start = base + self.data_offset
        end = start + (commit & COMMIT_MASK)
        problem = None
        first, marker = len(times), len(notes)
        lost = commit & RB_MISSED_EVENTS
        if lost:  # trace-cmd report prints "CPU:N [M EVENTS DROPPED]" before the first record
            lost = -1
            if commit & RB_MISSED_STORED and end + self.long.size <= base + size:
                lost = self.long.unpack_from(buf, end)[0]
            notes.append((first, self.lost, lost, 0))
            times.append(ts)
        if end > base + size:
            problem, end = f"page data of {end - start} bytes in a page of {size}", base + size
        w, data, ts, back, stopped = self.walk(words, start >> 2, end >> 2, ts, back, times, notes, self.readers)
        problem = problem or stopped
        if w > end >> 2 and len(times) > first:  # the last record runs past the page data: it is no record
            problem = f"record of {(w - data) << 2} bytes runs past the page data"
            times.pop()
            if notes and notes[-1][0] == len(times):
                notes.pop()
        records = len(times) - first
        if lost:
            records -= 1
            if records:
                times[first] = times[first + 1]  # the marker's line comes right before the first record's
            else:  # no record to print it before: trace-cmd prints none
                del notes[marker], times[first]
        if problem is not None:
            notes.append((len(times), self.broken, problem, 0))
            times.append(ts)
        return records, back


# The record loop, generated for a file's layout (as codec/reader.py generates register readers and
# Construct compiles parsers): the bit fields of the record header and the event ID are read with
# the shifts and masks of the file's ``header_event``, byte order and ``common_type``, written in as
# constants. It walks 32-bit words (the buffers are whole words, with slack after the last page, so
# that the word of the event ID can be read before the record's length is checked) and returns where
# it stopped, the last record's data word, the time, whether a time went back, and why it stopped
# early (None when it did not).
_WALK = Template("""
def walk(words, w, end_w, ts, back, times, notes, readers):
    append = times.append
    start_w = data = w
    problem = None
    while w < end_w:
        h = words[w]
        type_len = $type_len
        if 0 < type_len <= $data_max:  # a record of type_len words: the common case, all here
            ts += $delta
            data = w + 1
            reader = readers[$event_id]
            if reader is not None:
                notes.append((len(times), reader, data << 2, type_len << 2))
            append(ts)
            w = data + type_len
            continue
        if type_len == 0:  # a record whose length + 4 is in array[0]
            length = words[w + 1] if w + 1 < end_w else 0
            if length < 4:
                problem = f"record length {length} at byte {4 * (w - start_w)} of the page data"
                break
            ts += $delta
            data = w + 2
            w = data + ((length - 1) >> 2)  # array[0] - 4 bytes, rounded up to words
        elif type_len == $padding:
            delta = $delta
            ts += delta
            if not delta or w + 1 >= end_w:
                break  # a null event: the rest of the page is padding
            w += 1 + ((words[w + 1] + 3) >> 2)
            if w > end_w:  # padding to the end of the page and past it: the end
                w = end_w
                break
            continue
        else:  # time extend ($time_extend), time stamp
            if w + 1 >= end_w:
                problem = "time extend cut at the end of the page data"
                break
            high = (words[w + 1] << $time_delta_bits) + $delta
            if type_len == $time_extend:
                ts += high
            else:
                high |= ts & $ts_msb
                back = back or high < ts
                ts = high
            w += 2
            continue
        reader = readers[$event_id]
        if reader is not None:
            notes.append((len(times), reader, data << 2, (w - data) << 2))
        append(ts)
    return w, data, ts, back, problem
""")


def _walker(header_event: HeaderEvent, type_field: Field, big_endian: bool) -> Callable[..., tuple[Any, ...]]:
    """The record loop of a file (``_WALK``)."""
    type_len_bits, time_delta_bits = header_event.type_len_bits, header_event.time_delta_bits
    delta_mask = (1 << time_delta_bits) - 1
    if big_endian:  # bit fields allocated from the high bits
        type_len, delta = f"h >> {time_delta_bits}", f"h & {delta_mask:#x}"
    else:
        type_len, delta = f"h & {(1 << type_len_bits) - 1:#x}", f"h >> {type_len_bits}"
    word, within = divmod(type_field.offset, 4)
    shift = 8 * (4 - within - type_field.size if big_endian else within)
    event_id = f"words[data{f' + {word}' if word else ''}]{f' >> {shift}' if shift else ''}"
    if shift + 8 * type_field.size < 32:
        event_id = f"({event_id}) & {(1 << (8 * type_field.size)) - 1:#x}"
    source = _WALK.substitute(
        type_len=type_len, delta=f"({delta})", data_max=header_event.data_max, padding=header_event.padding,
        time_extend=header_event.time_extend, time_delta_bits=time_delta_bits, ts_msb=f"{TS_MSB:#x}",
        event_id=event_id)
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - source generated from the file's header_event and common_type
    return namespace["walk"]  # type: ignore[no-any-return]


class Context(NamedTuple):
    """What the event readers share: the file name for events, pids to command names, the byte order,
    kallsyms for probe sites."""

    file: str
    comms: dict[int, str]
    big_endian: bool
    kallsyms: Callable[[], Kallsyms | None]


def readers_for(formats: Iterable[EventFormat], ctx: Context) -> dict[int, Reader | None]:
    """A reader for every event ID smcwire reads, None for every other ID the file describes."""
    return {fmt.id: _reader(fmt, ctx) for fmt in formats}


def _reader(fmt: EventFormat, ctx: Context) -> Reader | None:
    if fmt.name in ("optee_invoke_fn_begin", "optee_invoke_fn_end"):
        return _tracepoint_reader(fmt, ctx)
    is_return = fmt.field("__probe_ret_ip") is not None
    site = fmt.field("__probe_func" if is_return else "__probe_ip")
    if site is None:
        return None
    return _probe_reader(fmt, ctx, is_return, site)


def _malformed(fmt: EventFormat, ctx: Context, reason: str) -> Reader:
    """The reader of an event whose format smcwire cannot read: every record is Bad."""
    why = f"{fmt.name}: {reason}"
    return lambda buf, data, length, line, ts, cpu: Bad(ctx.file, line, why)


def _short(fmt: EventFormat, ctx: Context, line: int, length: int, size: int) -> Bad:
    return Bad(ctx.file, line, f"{fmt.name}: a record of {length} bytes, its format needs {size}")


def _tasks(comms: dict[int, str]) -> Memo[int, str | None]:
    """pid -> the command name ``trace-cmd report`` shows (libtraceevent ``find_cmdline()``): "<idle>"
    for pid 0, none ("<...>") for a pid the saved command lines lack."""
    return Memo(lambda pid: "<idle>" if pid == 0 else comms.get(pid))


def _key(param: int) -> str:
    """``param=%p`` as libtraceevent prints it: C's ``%p``, "0x…" or "(nil)"."""
    return f"{param:#x}" if param else "(nil)"


def _tracepoint_reader(fmt: EventFormat, ctx: Context) -> Reader:
    """``optee_invoke_fn_begin``: ``void *param; u32 args[8]``; ``optee_invoke_fn_end``: ``void *param;
    unsigned long rets[4]`` (drivers/tee/optee/optee_trace.h), read by their names from the format."""
    begin = fmt.name == "optee_invoke_fn_begin"
    values, expected = ("args", 8) if begin else ("rets", 4)
    pid, param, regs = fmt.field("common_pid"), fmt.field("param"), fmt.field(values)
    missing = next((n for n, f in (("common_pid", pid), ("param", param), (values, regs)) if f is None), None)
    if missing is not None or pid is None or param is None or regs is None:
        return _malformed(fmt, ctx, f"the format has no {missing} field")
    if regs.array != expected:
        what = "arguments" if begin else "return values"
        return _malformed(fmt, ctx, f"{regs.array or 'a variable number of'} {what}, expected {expected}")
    try:
        reader, order = struct_for([pid, param, regs], ctx.big_endian)
    except ValueError as e:
        return _malformed(fmt, ctx, str(e))
    unpack, size = reader.unpack_from, reader.size
    spans = _spans(order)
    pid_at, param_at, (first, last) = spans["common_pid"][0], spans["param"][0], spans[values]
    tasks, keys, file = _tasks(ctx.comms), Memo(_key), ctx.file
    new = tuple.__new__  # the event without NamedTuple's __new__: every field given, in order
    if begin:
        def read(buf: Bytes, data: int, length: int, line: int, ts: int, cpu: int) -> Event | Bad:
            if length < size:
                return _short(fmt, ctx, line, length, size)
            v = unpack(buf, data)
            p = v[pid_at]
            return new(SmcCall, (file, line, ts, cpu, p, None, tasks[p], v[first:last], keys[v[param_at]],  # type: ignore[return-value]
                                 "tracepoint"))
    else:
        def read(buf: Bytes, data: int, length: int, line: int, ts: int, cpu: int) -> Event | Bad:
            if length < size:
                return _short(fmt, ctx, line, length, size)
            v = unpack(buf, data)
            p = v[pid_at]
            return new(SmcReturn, (file, line, ts, cpu, p, None, tasks[p], v[first:last], keys[v[param_at]],  # type: ignore[return-value]
                                   "tracepoint", ()))

    def read_signed(buf: Bytes, data: int, length: int, line: int, ts: int, cpu: int) -> Event | Bad:
        event: Any = read(buf, data, length, line, ts, cpu)
        if type(event) is Bad:
            return event  # type: ignore[no-any-return]
        return event._replace(regs=tuple(x & MASK64 for x in event.regs))  # type: ignore[no-any-return]

    return read_signed if regs.signed else read


def _spans(order: list[Field]) -> dict[str, tuple[int, int]]:
    """Where each field's values are in what ``struct_for``'s reader returns."""
    out, at = {}, 0
    for f in order:
        n = f.array or 1
        out[f.name] = (at, at + n)
        at += n
    return out


def _registers(names: set[str], candidates: tuple[str, ...]) -> list[str] | None:
    """``candidates[0]``, ``candidates[1]`` … up to the first missing one; None if none is there."""
    out = []
    for name in candidates:
        if name not in names:
            break
        out.append(name)
    return out or None


def _probe_reader(fmt: EventFormat, ctx: Context, is_return: bool, site: Field) -> Reader | None:
    """A kprobe, kretprobe, uprobe or fprobe event whose fields hold SMC registers, as the text reader
    reads them (ftrace.py ``_probe``): entry ``a0``…``a7`` (or ``x0``…), return ``r0``…``r3`` (or
    ``x0``…) with the entry's ``a0``… it also fetched. The probe must be on an SMC entry: its event
    name says so, or its site (the function of ``__probe_ip``, ``__probe_func`` on return) in kallsyms."""
    names = {f.name for f in fmt.fields}
    if is_return or "r0" in names:
        ret = _registers(names, _RET_NAMES[0] if "r0" in names else _RET_NAMES[1])
        if ret is None:
            if "a0" not in names:
                return None
            return _smc_only(fmt, ctx, site, _malformed(fmt, ctx, "return probe with a0= but no r0= result fields"))
        if len(ret) < 4:
            why = f"result registers 0..3 expected, only {len(ret)} found"
            return _smc_only(fmt, ctx, site, _malformed(fmt, ctx, why))
        call = _registers(names, _CALL_NAMES[0]) or []
        wanted, entry, origin, count = [*ret, *call], False, "kretprobe" if is_return else "kprobe", len(ret)
    else:
        regs = _registers(names, _CALL_NAMES[0]) or _registers(names, _CALL_NAMES[1])
        if regs is None:
            return None
        if len(regs) != 8:
            why = f"SMC arguments 0..7 expected, only {len(regs)} found"
            return _smc_only(fmt, ctx, site, _malformed(fmt, ctx, why))
        wanted, entry, origin, count = regs, True, "kprobe", 8
    by_name = {f.name: f for f in fmt.fields}
    fields = [by_name[n] for n in wanted]
    for f in fields:
        if f.array is not None or f.element_size not in STRUCT_CODES:
            return _smc_only(fmt, ctx, site, _malformed(fmt, ctx, f"{f.name} is not a register value"))
    pid = fmt.field("common_pid")
    try:
        reader, order = struct_for([*fields, *([pid] if pid else [])], ctx.big_endian)
    except ValueError as e:
        return _smc_only(fmt, ctx, site, _malformed(fmt, ctx, str(e)))
    spans = _spans(order)
    at = [spans[n][0] for n in wanted]
    pid_at = spans["common_pid"][0] if pid is not None else None
    signed = any(f.signed for f in fields)
    tasks, file, unpack, size = _tasks(ctx.comms), ctx.file, reader.unpack_from, reader.size

    def read(buf: Bytes, data: int, length: int, line: int, ts: int, cpu: int) -> Event | Bad:
        if length < size:
            return _short(fmt, ctx, line, length, size)
        v = unpack(buf, data)
        values = tuple(v[i] & MASK64 for i in at) if signed else tuple(v[i] for i in at)
        p = v[pid_at] if pid_at is not None else None
        who = (p, None, tasks[p] if p is not None else None)
        if entry:
            return SmcCall(file, line, ts, cpu, *who, values, None, origin)
        return SmcReturn(file, line, ts, cpu, *who, values[:count], None, origin, values[count:])

    return _smc_only(fmt, ctx, site, read)


def _smc_only(fmt: EventFormat, ctx: Context, site: Field, inner: Reader | None) -> Reader | None:
    """``inner`` for a probe on an SMC entry: as it is when the event's name says so; else a reader
    that looks the probed function up in kallsyms, the record foreign when it is no SMC entry."""
    if inner is None or _SMC_SITE.search(fmt.name.encode()) is not None:
        return inner
    try:
        reader, _ = struct_for([site._replace(signed=False)], ctx.big_endian)
    except ValueError:
        return None
    unpack, size = reader.unpack_from, reader.size
    smc_sites: Memo[int, bool] = Memo(lambda address: _is_smc_site(ctx, address))

    def read(buf: Bytes, data: int, length: int, line: int, ts: int, cpu: int) -> Event | Bad | None:
        if length < size:
            return _short(fmt, ctx, line, length, size)
        return inner(buf, data, length, line, ts, cpu) if smc_sites[unpack(buf, data)[0]] else None

    return read


def _is_smc_site(ctx: Context, address: int) -> bool:
    kallsyms = ctx.kallsyms()
    name = kallsyms.name(address) if kallsyms is not None else None
    return name is not None and _SMC_SITE.search(name.encode()) is not None
