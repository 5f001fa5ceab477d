"""A trace.dat opened for reading: its headers, options and metadata, and its CPU data page by page.

Version 6 (trace-cmd.dat.v6(5)) is a sequence: the initial format, ``header_page`` and
``header_event``, the ftrace and event formats, kallsyms, printk formats, saved command lines, the
CPU count, options, then ``flyrecord`` and each CPU's data offset and size. Version 7
(trace-cmd.dat.v7(5)) is made of sections, found from the options sections (the first one's offset
follows the compression header; each ends with a DONE option giving the next one's); metadata
sections and options sections may be compressed as one block, a BUFFER section's CPU data as a
sequence of chunks, each a whole number of pages.

Everything is read by offset from a seekable file, a section or a chunk at a time: the metadata is
held in memory (kallsyms only when a probe event needs it), the CPU data a block of pages per CPU.
Anything that stops the file from being read is a ``TraceDatError`` with a one-line reason; CPU
data that cannot be read is reported in the page stream (``Broken``) so that the rest still is.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple

import construct as c

from .formats import (
    EventFormat,
    Field,
    HeaderEvent,
    Kallsyms,
    parse_cmdlines,
    parse_event_format,
    parse_fields,
    parse_header_event,
)
from .schema import (
    FILE_VERSION_SECTIONS,
    SECTION_COMPRESSED,
    V6_FLYRECORD,
    V6_LATENCY,
    V6_OPTIONS,
    OptionId,
    initial_format,
    layouts,
)

ZSTD_MISSING = ("its sections are zstd-compressed (as trace-cmd 3.1 writes by default): install smcwire's "
                "zstd extra, pip install 'smcwire[zstd]' (the zstandard module)")
MAX_CHUNK = 1 << 26  # bytes a compressed chunk may unpack to; trace-cmd writes 10 pages a chunk
_BLOCK_PAGES = 16  # pages read at once from uncompressed CPU data (a chunk of compressed data is 10)


class TraceDatError(ValueError):
    """Why a trace.dat cannot be read, in one line (without the file name)."""


class CpuData(NamedTuple):
    """Where one CPU's ring-buffer pages are in the file."""

    cpu: int
    offset: int
    size: int  # bytes in the file (compressed, for compressed data)


class Buffer(NamedTuple):
    """The flyrecord data of one trace instance."""

    name: str  # "" for the top instance
    clock: str | None
    page_size: int
    cpus: tuple[CpuData, ...]
    compressed: bool


class Block(NamedTuple):
    """Consecutive ring-buffer pages as read or unpacked at once: each ``(start, size)`` in ``buf``,
    which is a whole number of 32-bit words and has ``SLACK`` bytes more after the last page (the
    record loop reads the word after a record header, where the event ID is, without a test)."""

    buf: bytes | bytearray
    pages: list[tuple[int, int]]


SLACK = 8


class Broken(NamedTuple):
    """CPU data that could not be read: a corrupt chunk (the next one is read) or, ``fatal``, the end
    of the file or of the chunk list."""

    reason: str
    fatal: bool


Decompress = Callable[[bytes, int], bytes]


def _decompressor(name: str) -> tuple[Decompress, tuple[type[Exception], ...]]:
    """trace-cmd's compression algorithms (lib/trace-cmd/trace-compress-zlib.c: ``compress2``/``uncompress``,
    a zlib stream; trace-compress-zstd.c: ``ZSTD_compress``/``ZSTD_decompress``, one zstd frame)."""
    if name == "zlib":
        return (lambda data, size: zlib.decompress(data, bufsize=max(size, 1))), (zlib.error,)
    if name == "zstd":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise TraceDatError(ZSTD_MISSING) from None
        unpack = zstandard.ZstdDecompressor().decompress
        return (lambda data, size: unpack(data, max_output_size=size)), (zstandard.ZstdError,)
    raise TraceDatError(f"compressed with {name!r}, which smcwire cannot read (it reads zlib and zstd)")


class _Bounded:
    """The file for Construct's ``parse_stream``: a read past the end of the file is short at once, so
    that a corrupt size is an error, not an allocation."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self.raw, self.size = raw, size

    def read(self, n: int = -1) -> bytes:
        left = max(self.size - self.raw.tell(), 0)
        return self.raw.read(left if n < 0 else min(n, left))

    def tell(self) -> int:
        return self.raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)


class TraceDat:
    """The headers, options and metadata of a trace.dat, and its CPU data as blocks of pages (``blocks``)."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self.raw = raw
        self.size = size
        self.stream = _Bounded(raw, size)
        self.version = 0
        self.big_endian = False
        self.layouts = layouts(False)
        self.long_size = 0
        self.page_size = 0
        self.compression: tuple[str, str] | None = None  # (algorithm, its version) of a v7 file
        self.clock: str | None = None
        self.cpu_count: int | None = None  # the CPUCOUNT option or v6's CPU count
        self.uname: str | None = None
        self.tracer_version: str | None = None  # of trace-cmd, the VERSION option
        self.ts_offset = 0  # ns added to every time stamp (DATE and OFFSET options)
        self.tsc2nsec: tuple[int, int] | None = None  # (mult, shift) of the TSC2NSEC option
        self.header_page: tuple[Field, ...] = ()
        self.header_event: HeaderEvent | None = None
        self.formats: dict[int, EventFormat] = {}
        self.format_errors: list[str] = []
        self.cmdlines: dict[int, str] = {}
        self.buffer: Buffer | None = None  # the top instance's flyrecord data
        self.notes: list[str] = []  # what the file holds that is not read
        self.read_bytes = 0  # CPU data read so far, in the file
        self._parts: dict[OptionId, int] = {}  # where each metadata part is (v7: its section)
        self._kallsyms: Kallsyms | None = None
        self._decompress: Decompress | None = None
        self._decompress_errors: tuple[type[Exception], ...] = ()
        self._step = "the initial format"
        try:
            self._read()
        except TraceDatError:
            raise
        except (c.ConstructError, ValueError, UnicodeDecodeError, OverflowError) as e:
            raise TraceDatError(f"cannot read {self._step}: {_reason(e)}") from None
        except Exception as e:
            if not isinstance(e, self._decompress_errors):  # the algorithm's own error
                raise
            raise TraceDatError(f"cannot read {self._step}: it does not decompress ({e})") from None

    # --- headers ---------------------------------------------------------------------------------

    def _read(self) -> None:
        self.raw.seek(0)
        head = initial_format.parse_stream(self.stream)
        version = head.version
        if not version.isdigit() or int(version) not in (6, FILE_VERSION_SECTIONS):
            raise TraceDatError(f"trace-cmd file version {version!r}: smcwire reads versions 6 and 7")
        self.version, self.big_endian, self.long_size = int(version), head.endian == 1, head.long_size
        self.layouts = layouts(self.big_endian)
        self.page_size = self.layouts.page_size.parse_stream(self.stream)
        if self.version >= FILE_VERSION_SECTIONS:
            self._read_sections()
        else:
            self._read_v6()
        if self.header_event is None:
            raise TraceDatError("no header_page/header_event: the ring-buffer layout is unknown")

    def _read_v6(self) -> None:
        lay, parse, at = self.layouts, self._parse_stream, self._parts
        at[OptionId.HEADER_INFO] = self.raw.tell()
        self._header_info(parse(lay.header_info, "header_page and header_event"))
        at[OptionId.FTRACE_EVENTS] = self.raw.tell()
        self._ftrace_events(parse(lay.ftrace_events, "the ftrace event formats"))
        at[OptionId.EVENT_FORMATS] = self.raw.tell()
        self._event_formats(parse(lay.event_formats, "the event formats"))
        at[OptionId.KALLSYMS] = self.raw.tell()
        self._skip(parse(lay.u32, "kallsyms"), "kallsyms")
        at[OptionId.PRINTK] = self.raw.tell()
        self._skip(parse(lay.u32, "the printk formats"), "the printk formats")
        at[OptionId.CMDLINES] = self.raw.tell()
        self._cmdlines(parse(lay.cmdlines, "the saved command lines"))
        self.cpu_count = parse(lay.cpus, "the CPU count")
        self._step = "the options"
        mark = self.stream.read(10)
        if mark == V6_OPTIONS:
            for option in parse(lay.options_v6, "the options")[:-1]:
                self._option(option.id, option.data)
            mark = self.stream.read(10)
        if mark == V6_LATENCY:
            raise TraceDatError("a latency trace (the text of the `trace` file): `trace-cmd report` prints it")
        if mark != V6_FLYRECORD:
            raise TraceDatError(f"no 'flyrecord' after the options (found {mark!r})")
        cpus = [parse(lay.flyrecord_cpu, "the CPU data offsets") for _ in range(self.cpu_count or 0)]
        self.buffer = Buffer("", self.clock, self.page_size,
                             tuple(CpuData(i, cpu.offset, cpu.size) for i, cpu in enumerate(cpus)), False)

    def _read_sections(self) -> None:
        lay = self.layouts
        compression = self._parse_stream(lay.compression, "the compression header")
        if compression.name != "none":
            self.compression = (compression.name, compression.version)
            self._decompress, self._decompress_errors = _decompressor(compression.name)
        else:
            self.compression = ("none", compression.version)
        buffers: list[tuple[int, bytes]] = []
        offset, seen = compression.options_offset, set()
        while offset and offset not in seen:
            seen.add(offset)
            self._step = f"the options section at byte {offset}"
            options = lay.options.parse(self._section(offset, OptionId.DONE)[0])
            offset = 0
            for option in options:
                if option.id == OptionId.DONE:
                    offset = lay.done.parse(option.data)
                elif option.id in (OptionId.BUFFER, OptionId.BUFFER_TEXT):
                    buffers.append((option.id, option.data))
                else:
                    self._option(option.id, option.data)
        for ident, read in ((OptionId.HEADER_INFO, self._header_info), (OptionId.FTRACE_EVENTS, self._ftrace_events),
                            (OptionId.EVENT_FORMATS, self._event_formats), (OptionId.CMDLINES, self._cmdlines)):
            if ident in self._parts:
                read(self.metadata(ident))
        for kind, data in buffers:
            self._buffer(kind, data)

    def _seek(self, offset: int) -> None:
        if not 0 <= offset < self.size:
            raise TraceDatError(f"cannot read {self._step}: it would start at byte {offset}, the file has {self.size}")
        self.raw.seek(offset)

    def _section(self, offset: int, ident: int) -> tuple[bytes, bool]:
        """A v7 section's data (decompressed) and whether it was compressed."""
        lay = self.layouts
        self._seek(offset)
        header = lay.section_header.parse_stream(self.stream)
        if header.id != ident:
            raise TraceDatError(f"cannot read {self._step}: a section of id {header.id}, not {OptionId(ident).name}")
        if not header.flags & SECTION_COMPRESSED:
            return self._read_exactly(header.size), False
        block = lay.compressed_block.parse_stream(self.stream)
        return self._unpack(self._read_exactly(block.compressed_size), block.size), True

    def metadata(self, ident: OptionId) -> Any:
        """A metadata part (HEADER_INFO, FTRACE_EVENTS, EVENT_FORMATS, KALLSYMS, PRINTK, CMDLINES) parsed
        with its schema; None when the file has none."""
        at = self._parts.get(ident)
        if at is None:
            return None
        schema = {OptionId.HEADER_INFO: self.layouts.header_info, OptionId.FTRACE_EVENTS: self.layouts.ftrace_events,
                  OptionId.EVENT_FORMATS: self.layouts.event_formats, OptionId.KALLSYMS: self.layouts.kallsyms,
                  OptionId.PRINTK: self.layouts.printk, OptionId.CMDLINES: self.layouts.cmdlines}[ident]
        if self.version >= FILE_VERSION_SECTIONS:
            self._step = f"the {ident.name} section at byte {at}"
            return schema.parse(self._section(at, ident)[0])
        self.raw.seek(at)
        return self._parse_stream(schema, ident.name)

    def _unpack(self, data: bytes, size: int) -> bytes:
        if self._decompress is None:
            raise TraceDatError(f"cannot read {self._step}: compressed, but the file names no algorithm")
        if size > MAX_CHUNK:
            raise TraceDatError(f"cannot read {self._step}: a compressed block of {size} bytes")
        out = self._decompress(data, size)
        if len(out) != size:
            raise TraceDatError(f"cannot read {self._step}: it decompresses to {len(out)} bytes instead of {size}")
        return out

    def _option(self, ident: int, data: bytes) -> None:
        """One option (trace-input.c ``handle_options()``): what changes time stamps, what the summary shows,
        and where the v7 sections are."""
        lay = self.layouts
        if ident == OptionId.DATE:  # the time stamps' offset to the time of day, in µs ("0x…")
            self.ts_offset += _c_integer(data) * 1000
        elif ident == OptionId.OFFSET:
            self.ts_offset += _c_integer(data)
        elif ident == OptionId.TSC2NSEC:
            tsc = lay.tsc2nsec.parse(data)
            self.tsc2nsec = (tsc.mult, tsc.shift)
        elif ident == OptionId.TRACECLOCK:  # the trace_clock file: "[local] global counter …"
            text = _text(data)
            self.clock = text[text.find("[") + 1:text.find("]")] if "[" in text else text.strip() or None
        elif ident == OptionId.UNAME:
            self.uname = _text(data).rstrip("\0")
        elif ident == OptionId.VERSION:
            self.tracer_version = _text(data).rstrip("\0")
        elif ident == OptionId.CPUCOUNT:
            self.cpu_count = lay.cpu_count.parse(data)
        elif ident == OptionId.BUFFER:  # v6: a trace instance other than the top one
            buffer = lay.buffer_v6.parse(data)
            self.notes.append(f"trace instance {buffer.name!r} not read (smcwire reads the top instance)")
        elif ident == OptionId.TIME_SHIFT:
            self.notes.append("guest time stamps are not synchronised with the host's (TIME_SHIFT option)")
        elif OptionId.HEADER_INFO <= ident <= OptionId.CMDLINES:
            self._parts[OptionId(ident)] = lay.section_offset.parse(data)

    def _buffer(self, ident: int, data: bytes) -> None:
        lay = self.layouts
        if ident == OptionId.BUFFER_TEXT:
            raise TraceDatError("a latency trace (the text of the `trace` file): `trace-cmd report` prints it")
        option = lay.buffer.parse(data)
        if option.name:
            self.notes.append(f"trace instance {option.name!r} not read (smcwire reads the top instance)")
            return
        self._step = f"the BUFFER section at byte {option.offset}"
        self._seek(option.offset)
        header = lay.section_header.parse_stream(self.stream)
        if header.id != OptionId.BUFFER:
            raise TraceDatError(f"cannot read {self._step}: a section of id {header.id}, not BUFFER")
        compressed = bool(header.flags & SECTION_COMPRESSED)
        if compressed and self._decompress is None:
            raise TraceDatError(f"cannot read {self._step}: compressed, but the file names no algorithm")
        # trace-input.c handle_buffer_option(): CPUs given out of order go to their index
        cpus = sorted((CpuData(cpu.cpu, cpu.offset, cpu.size) for cpu in option.cpu_data), key=lambda d: d.cpu)
        self.buffer = Buffer("", option.clock, option.page_size or self.page_size, tuple(cpus), compressed)
        if self.clock is None:
            self.clock = option.clock

    def _header_info(self, info: Any) -> None:
        self.header_page = parse_fields(_text(info.header_page))
        self.header_event = parse_header_event(_text(info.header_event))

    def _ftrace_events(self, formats: list[bytes]) -> None:
        self._add_formats("ftrace", formats)

    def _event_formats(self, systems: Any) -> None:
        for system in systems:
            self._add_formats(system.system, system.formats)

    def _add_formats(self, system: str, texts: list[bytes]) -> None:
        for text in texts:
            try:
                fmt = parse_event_format(system, _text(text))
            except ValueError as e:
                self.format_errors.append(str(e))
                continue
            self.formats[fmt.id] = fmt

    def _cmdlines(self, text: bytes) -> None:
        self.cmdlines = parse_cmdlines(_text(text))

    # --- helpers ---------------------------------------------------------------------------------

    def _parse_stream(self, schema: c.Construct, what: str) -> Any:
        self._step = what
        return schema.parse_stream(self.stream)

    def _read_exactly(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) < n:
            raise TraceDatError(f"cannot read {self._step}: truncated ({n} bytes expected, {len(data)} before "
                                "the end of the file)")
        return data

    def _skip(self, n: int, what: str) -> None:
        left = self.size - self.raw.tell()
        if n > left:
            raise TraceDatError(f"cannot read {what}: truncated ({n} bytes expected, {left} before the end of "
                                "the file)")
        self.raw.seek(n, 1)

    def kallsyms(self) -> Kallsyms | None:
        """The traced machine's kallsyms, read on first use (empty when the file has none or it does
        not read)."""
        if self._kallsyms is None:
            try:
                text = self.metadata(OptionId.KALLSYMS) or b""
            except (c.ConstructError, TraceDatError, *self._decompress_errors):
                text = b""
            self._kallsyms = Kallsyms(_text(text))
        return self._kallsyms

    # --- CPU data --------------------------------------------------------------------------------

    def blocks(self, data: CpuData) -> Iterator[Block | Broken]:
        """One CPU's ring-buffer pages, in order, a block at a time (the last page may be short in a
        cut file)."""
        assert self.buffer is not None
        if self.buffer.compressed:
            return self._chunked_pages(data)
        return self._raw_pages(data)

    def _raw_pages(self, data: CpuData) -> Iterator[Block | Broken]:
        page_size = self.buffer.page_size  # type: ignore[union-attr]
        pos, end = data.offset, data.offset + data.size
        available = min(end, self.size)
        while pos < available:
            self.raw.seek(pos)
            want = min(available - pos, page_size * _BLOCK_PAGES)
            block = bytearray((want + SLACK + 3) & ~3)  # whole 32-bit words
            got = self.raw.readinto(memoryview(block)[:want])  # type: ignore[attr-defined]
            if not got:
                break
            self.read_bytes += got
            pos += got
            yield Block(block, [(at, min(page_size, got - at)) for at in range(0, got, page_size)])
        if pos < end:
            yield Broken(f"CPU {data.cpu}: truncated: its data ends at byte {end}, the file at byte {self.size}",
                         True)

    def _chunked_pages(self, data: CpuData) -> Iterator[Block | Broken]:
        page_size = self.buffer.page_size  # type: ignore[union-attr]
        lay = self.layouts
        # trace-cmd before 3.2 wrote the size without the chunk count's 4 bytes (commit 4b921329,
        # "Fix tracecmd_compress_copy_from() write size return"); its reader goes by the chunks' sizes
        end = data.offset + 4 + data.size
        pos = data.offset + 4
        if pos > self.size:
            yield Broken(f"CPU {data.cpu}: truncated: its data would start at byte {data.offset}, the file has "
                         f"{self.size}", True)
            return
        self.raw.seek(data.offset)
        head = self.raw.read(4)
        if len(head) < 4:
            yield Broken(f"CPU {data.cpu}: truncated: no chunk count at byte {data.offset}", True)
            return
        count = lay.chunk_count.parse(head)
        for number in range(1, count + 1):
            self.raw.seek(pos)
            block = self.raw.read(8)
            where = f"CPU {data.cpu}: compressed chunk {number} of {count} at byte {pos}"
            if len(block) < 8:
                yield Broken(f"{where}: truncated", True)
                return
            chunk = lay.compressed_block.parse(block)
            if pos + 8 + chunk.compressed_size > end:
                why = "truncated" if pos + 8 + chunk.compressed_size > self.size else "runs past the CPU data"
                yield Broken(f"{where}: {why} ({chunk.compressed_size} bytes)", True)
                return
            raw = self.raw.read(chunk.compressed_size)
            if len(raw) < chunk.compressed_size:
                yield Broken(f"{where}: truncated ({chunk.compressed_size} bytes, {len(raw)} in the file)", True)
                return
            pos += 8 + chunk.compressed_size
            self.read_bytes += 8 + chunk.compressed_size
            if chunk.size > MAX_CHUNK or chunk.size % page_size:
                yield Broken(f"{where}: unpacks to {chunk.size} bytes, not a whole number of pages", False)
                continue
            try:
                pages = self._decompress(raw, chunk.size)  # type: ignore[misc]
            except self._decompress_errors as e:
                yield Broken(f"{where}: does not decompress ({e})", False)
                continue
            if len(pages) != chunk.size:
                yield Broken(f"{where}: unpacks to {len(pages)} bytes instead of {chunk.size}", False)
                continue
            pages += bytes(SLACK + -chunk.size % 4)
            yield Block(pages, [(at, page_size) for at in range(0, chunk.size, page_size)])


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _c_integer(data: bytes) -> int:
    """A number written as C's ``strtoll(s, NULL, 0)`` reads it: decimal, ``0x`` hex or ``0`` octal;
    0 for no number."""
    text = _text(data).strip("\0 \t\n")
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    try:
        if text[:2].lower() == "0x":
            return sign * int(text[2:], 16)
        if text[:1] == "0" and len(text) > 1:
            return sign * int(text[1:], 8)
        return sign * int(text)
    except ValueError:
        return 0


def _reason(error: Exception) -> str:
    """A one-line reason from a Construct or decoding error."""
    text = str(error).strip().splitlines()
    reason = text[-1] if text else type(error).__name__
    return reason if len(reason) <= 160 else reason[:157] + "..."

