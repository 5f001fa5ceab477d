"""trace.dat files built with the schemas that read them: for tests and benchmarks.

``write`` lays a file out as trace-cmd 3.1 does (trace-output.c): version 6 as the sequence of
trace-cmd.dat.v6(5); version 7 as the metadata sections, an options section pointing at them, the
BUFFER section (its CPU data page-aligned, raw or in compressed chunks of ``CHUNK_PAGES`` pages),
a second options section with the BUFFER option, and the strings section of the sections'
descriptions. ``PageWriter`` packs records into ring-buffer pages as the kernel does (time deltas,
time extends, ``type_len`` or a length word). The files are read by ``trace-cmd report`` as well
(a test checks it where trace-cmd is installed).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, NamedTuple

from .file import Block, TraceDat
from .formats import Field, HeaderEvent
from .schema import (
    SECTION_COMPRESSED,
    V6_FLYRECORD,
    V6_OPTIONS,
    OptionId,
    initial_format,
    layouts,
    record_struct,
)

CHUNK_PAGES = 10  # trace-cmd's PAGES_IN_CHUNK


class Metadata(NamedTuple):
    """What a trace.dat holds besides its CPU data, as its texts."""

    page_size: int
    long_size: int
    big_endian: bool
    header_page: bytes
    header_event: bytes
    ftrace_events: list[bytes]
    event_systems: list[tuple[str, list[bytes]]]
    kallsyms: bytes
    printk: bytes
    cmdlines: bytes
    clock: str = "local"
    uname: str = ""
    version: str = ""


def metadata_of(dat: TraceDat) -> Metadata:
    """The metadata of an opened trace.dat, to write it again."""
    def text(ident: OptionId) -> bytes:
        return dat.metadata(ident) or b""

    info = dat.metadata(OptionId.HEADER_INFO)
    systems = dat.metadata(OptionId.EVENT_FORMATS) or []
    return Metadata(
        dat.page_size, dat.long_size, dat.big_endian, info.header_page, info.header_event,
        list(dat.metadata(OptionId.FTRACE_EVENTS) or []), [(s.system, list(s.formats)) for s in systems],
        text(OptionId.KALLSYMS), text(OptionId.PRINTK), text(OptionId.CMDLINES),
        dat.clock or "local", dat.uname or "", dat.tracer_version or "",
    )


def cpu_data_of(dat: TraceDat) -> list[bytes]:
    """Each CPU's pages, uncompressed."""
    assert dat.buffer is not None
    return [b"".join(bytes(b.buf[start:start + size]) for b in dat.blocks(cpu) if isinstance(b, Block)
                     for start, size in b.pages) for cpu in dat.buffer.cpus]


def _compressor(name: str) -> Callable[[bytes], bytes]:
    if name == "zlib":
        return lambda data: zlib.compress(data, 9)
    if name == "zstd":
        import zstandard  # type: ignore[import-not-found]

        return zstandard.ZstdCompressor(level=3).compress  # type: ignore[no-any-return]
    raise ValueError(f"no compressor {name!r}")


class _Out:
    """The output file, with the file's byte order."""

    def __init__(self, out: BinaryIO, big_endian: bool) -> None:
        self.out, self.lay = out, layouts(big_endian)

    def write(self, data: bytes) -> int:
        at = self.out.tell()
        self.out.write(data)
        return at

    def at(self) -> int:
        return self.out.tell()

    def patch(self, offset: int, data: bytes) -> None:
        end = self.out.tell()
        self.out.seek(offset)
        self.out.write(data)
        self.out.seek(end)

    def align(self, page_size: int) -> None:
        pad = -self.out.tell() % page_size
        self.out.write(b"\0" * pad)


def write(out: BinaryIO, meta: Metadata, cpus: list[bytes], version: int = 7, compression: str = "none") -> None:
    """A trace.dat of ``meta`` and each CPU's pages (``cpus``), version 6 or 7 (``compression``
    "none", "zlib" or "zstd")."""
    o = _Out(out, meta.big_endian)
    lay = o.lay
    o.write(initial_format.build({"version": str(version), "endian": int(meta.big_endian),
                                  "long_size": meta.long_size}))
    o.write(lay.page_size.build(meta.page_size))
    parts = {
        OptionId.HEADER_INFO: lay.header_info.build({"header_page": meta.header_page,
                                                     "header_event": meta.header_event}),
        OptionId.FTRACE_EVENTS: lay.ftrace_events.build(meta.ftrace_events),
        OptionId.EVENT_FORMATS: lay.event_formats.build([{"system": s, "formats": f} for s, f in meta.event_systems]),
        OptionId.KALLSYMS: lay.kallsyms.build(meta.kallsyms),
        OptionId.PRINTK: lay.printk.build(meta.printk),
        OptionId.CMDLINES: lay.cmdlines.build(meta.cmdlines),
    }
    options = [
        (OptionId.TRACECLOCK, f"[{meta.clock}]\0".encode()),
        (OptionId.UNAME, f"{meta.uname}\0".encode()),
        (OptionId.VERSION, f"{meta.version}\0".encode()),
        (OptionId.CPUCOUNT, lay.cpu_count.build(len(cpus))),
    ]
    if version == 6:
        _write_v6(o, meta, cpus, parts, options)
    else:
        _write_v7(o, meta, cpus, parts, options, compression)


def _write_v6(o: _Out, meta: Metadata, cpus: list[bytes], parts: dict[OptionId, bytes],
              options: list[tuple[OptionId, bytes]]) -> None:
    lay = o.lay
    for part in parts.values():
        o.write(part)
    o.write(lay.cpus.build(len(cpus)) + V6_OPTIONS)
    o.write(lay.options_v6.build([*({"id": i, "data": d} for i, d in options), {"id": OptionId.DONE, "data": None}]))
    o.write(V6_FLYRECORD)
    table = o.write(b"\0" * 16 * len(cpus))
    o.write(lay.u64.build(len(meta.clock) + 2) + f"[{meta.clock}]".encode())  # trace-output.c save_clock()
    for i, data in enumerate(cpus):
        o.align(meta.page_size)
        o.patch(table + 16 * i, lay.flyrecord_cpu.build({"offset": o.at(), "size": len(data)}))
        o.write(data)


def _write_v7(o: _Out, meta: Metadata, cpus: list[bytes], parts: dict[OptionId, bytes],
              options: list[tuple[OptionId, bytes]], compression: str) -> None:
    lay = o.lay
    compress = None if compression == "none" else _compressor(compression)
    strings: list[bytes] = []

    def describe(text: str) -> int:
        at = sum(len(s) for s in strings)
        strings.append(text.encode() + b"\0")
        return at

    def section(ident: int, text: str, data: bytes, packed: bool = True) -> int:
        flags = 0
        if compress is not None and packed:
            data = lay.compressed_block.build({"compressed_size": len(z := compress(data)), "size": len(data)}) + z
            flags = SECTION_COMPRESSED
        return o.write(lay.section_header.build({"id": ident, "flags": flags, "description": describe(text),
                                                 "size": len(data)}) + data)

    o.write(lay.compression.build({"name": compression, "version": "1" if compress else "",
                                   "options_offset": 0}))
    options_offset_at = o.at() - 8
    located = [(ident, lay.section_offset.build(section(ident, ident.name.lower(), part)))
               for ident, part in parts.items()]
    first = _options_section(lay, [*located, *options], next_offset=0)
    first_at = section(OptionId.DONE, "options", first, packed=False)
    o.patch(options_offset_at, lay.u64.build(first_at))
    # BUFFER section: the header now, its size once the CPU data is written
    buffer_at = o.write(lay.section_header.build({"id": OptionId.BUFFER, "flags": SECTION_COMPRESSED if compress else 0,
                                                  "description": describe("buffer flyrecord "), "size": 0}))
    cpu_table = []
    for i, data in enumerate(cpus):
        o.align(meta.page_size)
        start = o.at()
        if compress is None:
            o.write(data)
        else:
            chunk = meta.page_size * CHUNK_PAGES
            blocks = [data[k:k + chunk] for k in range(0, len(data), chunk)]
            o.write(lay.chunk_count.build(len(blocks)))
            for block in blocks:
                z = compress(block)
                o.write(lay.compressed_block.build({"compressed_size": len(z), "size": len(block)}) + z)
        cpu_table.append({"cpu": i, "offset": start, "size": o.at() - start})
    o.patch(buffer_at + 8, lay.u64.build(o.at() - buffer_at - lay.section_header.sizeof()))
    buffer = lay.buffer.build({"offset": buffer_at, "name": "", "clock": meta.clock, "page_size": meta.page_size,
                               "cpus": len(cpus), "cpu_data": cpu_table})
    second_at = section(OptionId.DONE, "options", _options_section(lay, [(OptionId.BUFFER, buffer)], 0), packed=False)
    o.patch(first_at + lay.section_header.sizeof() + len(first) - 8, lay.u64.build(second_at))
    section(OptionId.STRINGS, "strings", b"".join(strings), packed=True)


def _options_section(lay: Any, options: Iterable[tuple[int, bytes]], next_offset: int) -> bytes:
    """An options section's data: the options, then DONE with the next section's offset."""
    items = [{"id": i, "size": len(d), "data": d} for i, d in options]
    items.append({"id": OptionId.DONE, "size": 8, "data": lay.u64.build(next_offset)})
    return lay.options.build(items)  # type: ignore[no-any-return]


class PageWriter:
    """Records into ring-buffer pages (kernel/trace/ring_buffer.c): each page a time stamp, a commit
    word and records, each record's header its ``type_len`` (data length / 4, or 0 and the length + 4
    in ``array[0]`` past ``data max``) and its delta to the previous time; a time extend first when
    the delta needs more than ``time_delta`` bits, an absolute time stamp when asked (or when time
    goes back). The headers are ``schema.ring_buffer_event``'s layout (a test parses them with it)."""

    def __init__(self, header_page: tuple[Field, ...], header_event: HeaderEvent, big_endian: bool,
                 page_size: int) -> None:
        fields = {f.name: f for f in header_page}
        self.page_header = record_struct((fields["timestamp"], fields["commit"]), big_endian)
        self.long = struct.Struct((">" if big_endian else "<") + {4: "I", 8: "Q"}[fields["commit"].size])
        self.data_offset = fields["data"].offset
        self.capacity = page_size - self.data_offset - self.long.size  # room for a lost-events count
        self.page_size = page_size
        self.event = header_event
        self.words = struct.Struct(">II" if big_endian else "<II")
        self.word = struct.Struct(">I" if big_endian else "<I")
        # where type_len and time_delta are in the header word (from the low bits on a little-endian machine)
        self.type_len_shift = header_event.time_delta_bits if big_endian else 0
        self.time_delta_shift = 0 if big_endian else header_event.type_len_bits
        self.pages: list[bytes] = []
        self.data: list[bytes] = []
        self.used = 0
        self.start = self.last = 0
        self.lost: int | None = None  # events lost before the page being written (-1: how many unknown)

    def _header(self, type_len: int, delta: int) -> int:
        return type_len << self.type_len_shift | delta << self.time_delta_shift

    def add(self, ts: int, payload: bytes, lost: int | None = None, absolute: bool = False) -> None:
        """A record of ``payload`` (padded to 4 bytes) at time ``ts``; ``lost``: events were lost before
        it (how many, -1 for unknown), it starts a page; ``absolute``: an absolute time stamp before it."""
        payload += b"\0" * (-len(payload) % 4)
        e = self.event
        small = len(payload) // 4 <= e.data_max
        size = 4 + len(payload) + (0 if small else 4)
        delta = ts - self.last
        absolute = absolute or delta < 0
        extend = 0 if absolute else delta >> e.time_delta_bits
        if not self.data or lost is not None or self.used + size + (8 if extend or absolute else 0) > self.capacity:
            self.flush()
            self.start = self.last = ts
            self.lost = lost
            delta = extend = 0
            absolute = False
        mask = (1 << e.time_delta_bits) - 1
        if absolute:  # RINGBUF_TYPE_TIME_STAMP: the time's low bits in the delta, the next 32 in array[0]
            self.data.append(self.words.pack(self._header(e.time_stamp, ts & mask), (ts >> e.time_delta_bits)
                                             & 0xFFFFFFFF))
            self.used += 8
            delta = 0
        elif extend:
            self.data.append(self.words.pack(self._header(e.time_extend, delta & mask), extend))
            self.used += 8
            delta = 0
        if small:
            self.data.append(self.word.pack(self._header(len(payload) // 4, delta)) + payload)
        else:
            self.data.append(self.words.pack(self._header(0, delta), len(payload) + 4) + payload)
        self.used += size
        self.last = ts

    def flush(self) -> None:
        """Close the page being written."""
        if self.data:
            commit = self.used
            body = b"".join(self.data)
            if self.lost is not None:  # RB_MISSED_EVENTS, and RB_MISSED_STORED with the count after the data
                commit |= 1 << 31
                if self.lost >= 0:
                    commit |= 1 << 30
                    body += self.long.pack(self.lost)
            head = self.page_header.build({"timestamp": self.start, "commit": commit})
            head += b"\0" * (self.data_offset - len(head))
            self.pages.append(head + body + b"\0" * (self.page_size - len(head) - len(body)))
        self.data, self.used, self.lost = [], 0, None

    def finish(self) -> bytes:
        """The pages written, as one CPU's data."""
        self.flush()
        return b"".join(self.pages)
