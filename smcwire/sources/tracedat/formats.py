"""The text a trace.dat embeds: format descriptions, saved command lines, kallsyms.

The kernel describes its binary records in text (kernel/trace/trace_events.c ``f_show()``,
``ring_buffer_print_page_header()``, ``ring_buffer_print_entry_header()``), and trace-cmd copies
those files into the trace.dat as they are (trace-cmd.dat(5)):

- ``events/header_page``: the ring-buffer page header, one ``field:`` line per member
  (``field: u64 timestamp;	offset:0;	size:8;	signed:0;``);
- ``events/header_event``: the record header's bit fields and special ``type_len`` values
  (``type_len    :    5 bits``, ``padding     : type == 29``, ``data max type_len  == 28``);
- ``events/<system>/<event>/format``: ``name:``, ``ID:``, ``format:`` with one ``field:`` line per
  member (``field:u32 args[8];	offset:16;	size:32;	signed:0;``), then ``print fmt:``;
- ``saved_cmdlines``: ``<pid> <comm>`` lines; ``/proc/kallsyms``: ``<address> <type> <name> [<module>]``.

A field line gives the C declaration, the offset and size in bytes and the signedness; the
declaration ends with the member's name, and ``[N]`` for a fixed array (``__data_loc`` and ``[]``
members are dynamic: offset and length are stored in the record).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import NamedTuple


class Field(NamedTuple):
    """One ``field:`` line of a format description."""

    name: str
    type: str  # the C declaration without the name and array suffix ("unsigned long", "u32")
    offset: int
    size: int  # bytes, all elements of an array
    signed: bool
    array: int | None = None  # elements of a fixed array; 0 for a dynamic one; None for a scalar

    @property
    def element_size(self) -> int:
        return self.size // self.array if self.array else self.size


class EventFormat(NamedTuple):
    """An event's ``format`` file: its system, name, ID and field table."""

    system: str
    name: str
    id: int
    fields: tuple[Field, ...]
    print_fmt: str

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


class HeaderEvent(NamedTuple):
    """``header_event``: the widths of ``struct ring_buffer_event``'s members and the special
    ``type_len`` values (kernel/trace/ring_buffer.c ``ring_buffer_print_entry_header()``)."""

    type_len_bits: int  # 5
    time_delta_bits: int  # 27
    array_bits: int  # 32
    padding: int  # RINGBUF_TYPE_PADDING, 29
    time_extend: int  # RINGBUF_TYPE_TIME_EXTEND, 30
    time_stamp: int  # RINGBUF_TYPE_TIME_STAMP, 31
    data_max: int  # RINGBUF_TYPE_DATA_TYPE_LEN_MAX, 28


_FIELD = re.compile(r"field:\s*(?P<decl>[^;]*?)\s*;\s*offset:\s*(?P<offset>\d+)\s*;\s*size:\s*(?P<size>\d+)\s*;"
                    r"(?:\s*signed:\s*(?P<signed>\d+)\s*;)?")
_DECL = re.compile(r"(?P<type>.*?)\s*\b(?P<name>\w+)\s*(?:\[(?P<count>[^\]]*)\])?$")


def parse_fields(text: str) -> tuple[Field, ...]:
    """The ``field:`` lines of a format description, in order."""
    out = []
    for m in _FIELD.finditer(text):
        decl = _DECL.match(m["decl"])
        if decl is None:
            raise ValueError(f"field declaration {m['decl']!r} names no member")
        kind, count = decl["type"], decl["count"]
        if kind.startswith("__data_loc"):
            n: int | None = 0
        elif count is None:
            n = None
        else:
            n = int(count) if count.strip().isdigit() else 0
        out.append(Field(decl["name"], kind, int(m["offset"]), int(m["size"]), m["signed"] == "1", n))
    return tuple(out)


_NAME = re.compile(r"^name:\s*(\S+)\s*$", re.MULTILINE)
_ID = re.compile(r"^ID:\s*(\d+)\s*$", re.MULTILINE)
_PRINT_FMT = re.compile(r"^print fmt:\s*(.*)$", re.MULTILINE | re.DOTALL)


def parse_event_format(system: str, text: str) -> EventFormat:
    """An event's ``format`` file; ValueError when it has no name or ID."""
    name, ident = _NAME.search(text), _ID.search(text)
    if name is None or ident is None:
        raise ValueError(f"event format in system {system!r} without {'name' if name is None else 'ID'}")
    fmt = _PRINT_FMT.search(text)
    return EventFormat(system, name[1], int(ident[1]), parse_fields(text), fmt[1].strip() if fmt else "")


_BITS = re.compile(r"^\s*(\w+)\s*:\s*(\d+)\s*bits\s*$", re.MULTILINE)
_TYPE = re.compile(r"^\s*(\w+)\s*:\s*type\s*==\s*(\d+)\s*$", re.MULTILINE)
_DATA_MAX = re.compile(r"data max type_len\s*==\s*(\d+)")


def parse_header_event(text: str) -> HeaderEvent:
    """``header_event``; ValueError for the pre-2.6.31 layout (``type : 2 bits``, ``len : 3 bits``)."""
    bits = {m[1]: int(m[2]) for m in _BITS.finditer(text)}
    types = {m[1]: int(m[2]) for m in _TYPE.finditer(text)}
    data_max = _DATA_MAX.search(text)
    try:
        return HeaderEvent(bits["type_len"], bits["time_delta"], bits["array"], types["padding"],
                           types["time_extend"], types["time_stamp"], int(data_max[1]) if data_max else 0)
    except KeyError as e:
        raise ValueError(f"header_event without {e.args[0]} (the ring buffer of Linux 2.6.30 and older?)") from None


def parse_cmdlines(text: str) -> dict[int, str]:
    """``saved_cmdlines``: pid -> comm."""
    out = {}
    for line in text.splitlines():
        pid, _, comm = line.partition(" ")
        if pid.isdigit():
            out[int(pid)] = comm
    return out


class Kallsyms:
    """``/proc/kallsyms`` of the traced machine: the function an address is in."""

    def __init__(self, text: str) -> None:
        symbols = []
        for line in text.splitlines():
            parts = line.split(maxsplit=3)
            if len(parts) >= 3:
                try:
                    symbols.append((int(parts[0], 16), parts[2]))
                except ValueError:
                    continue
        symbols.sort()
        self.addresses = [a for a, _ in symbols]
        self.names = [n for _, n in symbols]

    def name(self, address: int) -> str | None:
        """The symbol at or before ``address``; None below the first (or with an empty kallsyms)."""
        i = bisect_right(self.addresses, address)
        return self.names[i - 1] if i else None
