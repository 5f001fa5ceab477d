"""trace-cmd's ``trace.dat``, file format versions 6 and 7, as Construct schemas.

Sources: the manual pages trace-cmd.dat.v6(5) and trace-cmd.dat.v7(5) (trace-cmd
``Documentation/trace-cmd/``), and where they are silent or differ, what trace-cmd 3.1.6 writes and
``lib/trace-cmd/trace-input.c`` (trace-cmd 3.4) reads:

- a v7 section header's size is 8 bytes (``read_section_header()``: ``read2`` id, ``read2`` flags,
  ``read4`` description, ``read8`` size; the v7 manual says 4);
- a v7 ``BUFFER`` option holds the instance's page size before its CPU count (trace-cmd commit
  ac3ee689, "Introduce buffer page size per instance", 2022, before the first v7 release);
- a v6 options list ends with a bare id 0, a v7 one with a ``DONE`` option whose 8 bytes are the
  offset of the next options section (0: none).

Every number after the initial format is in the file's byte order, hence ``Layouts(big_endian)``.
The ring buffer's own layouts (``struct buffer_data_page``, ``struct ring_buffer_event``, event
records) are described by the file's text (``formats.py``); ``record_struct`` and
``ring_buffer_event`` make Construct structs of them, the reference for the fast path of
``records.py``.
"""

from __future__ import annotations

from enum import IntEnum
from functools import cache

import construct as c

from ..io import TRACEDAT_MAGIC as MAGIC
from .formats import Field, HeaderEvent

FILE_VERSION_SECTIONS = 7  # trace-input.c: files from version 7 on are made of sections


class OptionId(IntEnum):
    """``enum tracecmd_option_id`` (trace-cmd lib/trace-cmd/include/private/trace-cmd-private.h); from
    version 7 the sections carry the option id of their content."""

    DONE = 0
    DATE = 1
    CPUSTAT = 2
    BUFFER = 3
    TRACECLOCK = 4
    UNAME = 5
    HOOK = 6
    OFFSET = 7
    CPUCOUNT = 8
    VERSION = 9
    PROCMAPS = 10
    TRACEID = 11
    TIME_SHIFT = 12
    GUEST = 13
    TSC2NSEC = 14
    STRINGS = 15
    HEADER_INFO = 16
    FTRACE_EVENTS = 17
    EVENT_FORMATS = 18
    KALLSYMS = 19
    PRINTK = 20
    CMDLINES = 21
    BUFFER_TEXT = 22


SECTION_COMPRESSED = 1  # TRACECMD_SEC_FL_COMPRESS, the only section flag

# The start of every file: the magic, the version as text ("6\0", "7\0"), the byte order (0 little,
# 1 big) and the size of the recording user space's long (4 or 8).
initial_format = c.Struct(
    "magic" / c.Const(MAGIC),
    "version" / c.CString("ascii"),
    "endian" / c.Int8ub,
    "long_size" / c.Int8ub,
)

# Version 6 marks what follows the CPU count and the options with 10-byte words.
V6_OPTIONS = b"options  \0"
V6_LATENCY = b"latency  \0"
V6_FLYRECORD = b"flyrecord\0"

_SIZED_TEXT = c.GreedyBytes  # the format texts stay bytes: decoded where they are parsed


class Layouts:
    """The binary layouts of one byte order, named as trace-cmd.dat(5) names them."""

    def __init__(self, big_endian: bool) -> None:
        u16, u32, u64 = (c.Int16ub, c.Int32ub, c.Int64ub) if big_endian else (c.Int16ul, c.Int32ul, c.Int64ul)
        self.u32, self.u64 = u32, u64
        self.page_size = u32
        # v7, after the page size: the compression algorithm ("none" for none) and the first options section.
        self.compression = c.Struct(
            "name" / c.CString("ascii"),
            "version" / c.CString("ascii"),
            "options_offset" / u64,
        )
        # v7: every section starts with this header; a compressed section's data is one compressed_block.
        self.section_header = c.Struct(
            "id" / u16,
            "flags" / u16,
            "description" / u32,  # offset of its description in the strings sections
            "size" / u64,  # bytes in the file after this header
        )
        self.compressed_block = c.Struct(
            "compressed_size" / u32,
            "size" / u32,  # uncompressed; for a chunk of CPU data a multiple of the page size
        )
        # v7 CPU data of a compressed BUFFER section: a chunk count, then each chunk as a compressed_block
        # followed by its data.
        self.chunk_count = u32
        # An option: in a v7 options section (the last one DONE), in v6 after "options  \0" (the last one
        # a bare id 0: options_v6).
        self.option = c.Struct(
            "id" / u16,
            "size" / u32,
            "data" / c.Bytes(c.this.size),
        )
        self.options = c.RepeatUntil(lambda opt, _, __: opt["id"] == OptionId.DONE, self.option)
        self.options_v6 = c.RepeatUntil(
            lambda opt, _, __: opt["id"] == OptionId.DONE,
            c.Struct("id" / u16, "data" / c.If(c.this.id != OptionId.DONE, c.Prefixed(u32, c.GreedyBytes))),
        )
        self.done = u64  # DONE: the offset of the next options section, 0 for none
        self.section_offset = u64  # HEADER_INFO … CMDLINES: the offset of their section
        self.cpu_count = u32  # CPUCOUNT
        self.tsc2nsec = c.Struct("mult" / u32, "shift" / u32, "offset" / u64)
        # BUFFER (v7): the flyrecord data of one trace instance ("" = the top one).
        self.buffer = c.Struct(
            "offset" / u64,  # of its BUFFER section
            "name" / c.CString("utf8"),
            "clock" / c.CString("utf8"),
            "page_size" / u32,
            "cpus" / u32,
            "cpu_data" / c.Array(c.this.cpus, c.Struct("cpu" / u32, "offset" / u64, "size" / u64)),
        )
        self.buffer_v6 = c.Struct("offset" / u64, "name" / c.CString("utf8"))
        # The metadata, in this order in a v6 file, each in its own section in a v7 file.
        self.header_info = c.Struct(
            c.Const(b"header_page\0"),
            "header_page" / c.Prefixed(u64, _SIZED_TEXT),
            c.Const(b"header_event\0"),
            "header_event" / c.Prefixed(u64, _SIZED_TEXT),
        )
        self.ftrace_events = c.PrefixedArray(u32, c.Prefixed(u64, _SIZED_TEXT))
        self.event_formats = c.PrefixedArray(u32, c.Struct(
            "system" / c.CString("utf8"),
            "formats" / c.PrefixedArray(u32, c.Prefixed(u64, _SIZED_TEXT)),
        ))
        self.kallsyms = c.Prefixed(u32, _SIZED_TEXT)
        self.printk = c.Prefixed(u32, _SIZED_TEXT)
        self.cmdlines = c.Prefixed(u64, _SIZED_TEXT)
        # v6, after the command lines: the CPU count, then the 10-byte words and the options.
        self.cpus = u32
        self.flyrecord_cpu = c.Struct("offset" / u64, "size" / u64)  # "flyrecord\0", then one per CPU


@cache
def layouts(big_endian: bool) -> Layouts:
    return Layouts(big_endian)


STRUCT_CODES = {1: "B", 2: "H", 4: "L", 8: "Q"}  # unsigned integers by size, for struct and FormatField


def _integer(size: int, signed: bool, big_endian: bool) -> c.Construct | None:
    code = STRUCT_CODES.get(size)
    if code is None:
        return None
    return c.FormatField(">" if big_endian else "<", code.lower() if signed else code)


def record_struct(fields: tuple[Field, ...], big_endian: bool) -> c.Struct:
    """A Construct struct of a field table (a page header, an event record): each member at its
    offset, integers (and fixed arrays of them) by size and signedness, anything else as bytes."""
    members: list[c.Construct] = []
    at = 0
    for f in sorted(fields, key=lambda f: f.offset):
        if f.offset < at:  # an overlapping member (header_page's "overwrite" inside "commit")
            continue
        if f.offset > at:
            members.append(c.Padding(f.offset - at))
        element = _integer(f.element_size, f.signed, big_endian)
        if element is None:
            members.append(f.name / c.Bytes(f.size))
        elif f.array:
            members.append(f.name / c.Array(f.array, element))
        else:
            members.append(f.name / element)
        at = f.offset + f.size
    return c.Struct(*members)


def ring_buffer_event(header: HeaderEvent, big_endian: bool) -> c.Construct:
    """``struct ring_buffer_event`` (include/linux/ring_buffer.h): ``u32 type_len:5, time_delta:27;``
    then ``u32 array[]``. The bit fields are allocated from the low bits on a little-endian machine,
    from the high bits on a big-endian one; ``array[0]`` is parsed too (a record of type_len 0 keeps
    its length there, padding its size, a time extend or stamp the high bits of the time)."""
    bits = [
        "type_len" / c.BitsInteger(header.type_len_bits),
        "time_delta" / c.BitsInteger(header.time_delta_bits),
    ]
    word = c.BitStruct(*bits) if big_endian else c.ByteSwapped(c.BitStruct(*reversed(bits)))
    return c.Struct("header" / word, "array0" / (c.Int32ub if big_endian else c.Int32ul))
