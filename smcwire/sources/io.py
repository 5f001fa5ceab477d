"""Opening inputs: paths, directories, ``-`` for stdin, and compressed files, read as raw lines.

Compression is recognised by the file's magic bytes, not its name: gzip, xz, bzip2 from the
standard library, zstd when the ``zstandard`` module is importable. So is a trace-cmd ``trace.dat``
(``is_tracedat``), compressed or not: it is read by ``tracedat``, not as lines.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import select
import stat
import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, NamedTuple

MAX_LINE = 1 << 20  # longer lines are cut and reported malformed, so memory stays bounded
_READ = 1 << 16

COMPRESSIONS = (  # magic bytes, name
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


TRACEDAT_MAGIC = b"\x17\x08\x44tracing"  # trace-cmd.dat(5): 0x17 0x08 0x44, then "tracing"


class InputFileError(OSError):
    """An input that cannot be opened or decompressed; the message names the file."""


class Opened(NamedTuple):
    """An input opened for reading."""

    stream: BinaryIO  # the decompressed bytes
    compression: str | None
    size: int | None  # on disk; None for stdin
    disk: BinaryIO  # the file as stored: its tell() is how far reading has got, for progress


@dataclass(frozen=True)
class Input:
    """One input: its display name (the path, or ``<stdin>``) and how to open it. ``until`` set,
    the input is followed as it grows (``tail -f``, ``trace_pipe``) until that event is set."""

    name: str
    path: Path | None  # None for stdin
    until: threading.Event | None = field(default=None, compare=False)

    def open(self) -> Opened:
        try:
            raw: BinaryIO = sys.stdin.buffer if self.path is None else open(self.path, "rb")  # noqa: SIM115
        except OSError as e:
            raise InputFileError(f"{self.name}: cannot open: {e.strerror}") from None
        size = os.fstat(raw.fileno()).st_size if self.path is not None else None
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type,type-var]
        head = buffered.peek(8)[:8] if self.until is None else b""  # a followed input may not have 8 bytes yet
        for magic, kind in COMPRESSIONS:
            if head.startswith(magic):
                return Opened(_decompress(buffered, kind, self.name), kind, size, buffered)
        return Opened(buffered, None, size, buffered)


def is_tracedat(stream: BinaryIO) -> bool:
    """Whether the (decompressed) stream starts with trace.dat's magic; it is not consumed."""
    peek = getattr(stream, "peek", None)
    try:
        return peek is not None and peek(len(TRACEDAT_MAGIC))[:len(TRACEDAT_MAGIC)] == TRACEDAT_MAGIC
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError):  # corrupt: read_lines reports it
        return False


def _decompress(stream: BinaryIO, kind: str, name: str) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(stream)  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(stream)  # type: ignore[return-value]
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        raise InputFileError(f"{name}: zstd-compressed; install the 'zstandard' module to read it") from None
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(stream))  # type: ignore[return-value]


def expand_inputs(names: Iterable[str]) -> list[Input]:
    """Inputs from command-line names: files, every file below a directory (sorted), ``-`` = stdin."""
    out: list[Input] = []
    for name in names:
        if name == "-":
            out.append(Input("<stdin>", None))
            continue
        path = Path(name)
        if path.is_dir():
            out.extend(Input(str(p), p) for p in sorted(path.rglob("*")) if p.is_file())
        elif path.exists():
            out.append(Input(name, path))
        else:
            raise InputFileError(f"{name}: no such file or directory")
    return out


class LineTooLong(NamedTuple):
    """Placeholder yielded instead of a line longer than MAX_LINE: its length in bytes."""

    length: int


class Batch(NamedTuple):
    """Consecutive lines, without their endings, and how many of them hold a NUL byte."""

    lines: list[bytes]
    nul_lines: int


_LONE_CR = re.compile(rb"\r(?![\r\n])")
_BATCH = 4096  # lines per batch of a CR-only file


def read_lines(stream: BinaryIO, name: str, until: threading.Event | None = None) -> Iterator[Batch | LineTooLong]:
    """Raw lines without their ending, in batches. Lines end at ``\n`` (as ``grep -n`` counts
    them; ``\r``s before it are dropped) or, in a file whose start shows lone ``\r`` line ends
    (old Mac-style and CR-only serial captures), at a lone ``\r`` too. A line over ``MAX_LINE``
    bytes is skipped to its end and given as ``LineTooLong``, between batches. With ``until``, the
    stream is followed as it grows, each batch what one read found, until ``until`` is set."""
    try:
        if until is not None:
            yield from _followed_batches(stream, until)
            return
        head = stream.peek(_READ)[:_READ - 1] if hasattr(stream, "peek") else b""
        yield from _cr_batches(stream) if _LONE_CR.search(head) else _lf_batches(stream)
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as e:  # corrupt compressed data
        raise InputFileError(f"{name}: cannot read: {e}") from None


def _batch(lines: list[bytes], chunk: bytes) -> Batch:
    return Batch(lines, sum(0 in line for line in lines) if b"\x00" in chunk else 0)


def _lf_batches(stream: BinaryIO) -> Iterator[Batch | LineTooLong]:
    """The lines of each chunk of ``MAX_LINE`` bytes: a line inside a chunk is shorter than the
    limit, so only one that spans chunks (the first of a chunk) can be over it."""
    limit = MAX_LINE
    read = getattr(stream, "read1", stream.read)
    pending = b""  # the unfinished last line of the previous chunk
    long = 0  # bytes so far of an over-long line being skipped
    while chunk := read(limit):
        if long:
            end = chunk.find(b"\n")
            if end < 0:
                long += len(chunk)
                continue
            yield LineTooLong(long + len(chunk[:end].rstrip(b"\r")))
            long, chunk = 0, chunk[end + 1:]
        lines = chunk.split(b"\n")
        if pending:
            lines[0] = pending + lines[0]
        pending = lines.pop()
        if lines:
            if len(lines[0]) >= limit and len(lines[0].rstrip(b"\r")) >= limit:
                yield LineTooLong(len(lines[0].rstrip(b"\r")))
                del lines[0]
            if b"\r" in chunk or (lines and lines[0][-1:] == b"\r"):
                lines = [line.rstrip(b"\r") for line in lines]
            yield _batch(lines, chunk)
        if len(pending) >= limit and len(pending.rstrip(b"\r")) >= limit:
            long, pending = len(pending), b""
    if long:
        yield LineTooLong(long)
    elif pending:
        yield _batch([pending.rstrip(b"\r")], pending)


FOLLOW_POLL = 0.2  # seconds between looks at a followed input that has nothing new


def _followed_batches(stream: BinaryIO, until: threading.Event) -> Iterator[Batch | LineTooLong]:
    """The complete lines of each read of a growing file or a pipe (``trace_pipe`` blocks until it
    has data: ``select`` waits for it, so that ``until`` is seen within ``FOLLOW_POLL``)."""
    fd = stream.fileno()
    regular = stat.S_ISREG(os.fstat(fd).st_mode)
    pending = b""
    while not until.is_set():
        if not regular and not select.select([fd], [], [], FOLLOW_POLL)[0]:
            continue
        chunk = os.read(fd, MAX_LINE)
        if not chunk:
            if not regular:
                break  # the writer closed the pipe
            if os.fstat(fd).st_size < os.lseek(fd, 0, os.SEEK_CUR):  # truncated (rewritten): from its start
                os.lseek(fd, 0, os.SEEK_SET)
                pending = b""
            until.wait(FOLLOW_POLL)
            continue
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        if len(pending) >= MAX_LINE:
            yield LineTooLong(len(pending))
            pending = b""
        if lines:
            yield _batch([line.rstrip(b"\r") for line in lines], chunk)
    if pending:
        yield _batch([pending.rstrip(b"\r")], pending)


def _cr_batches(stream: BinaryIO) -> Iterator[Batch | LineTooLong]:
    batch: list[bytes] = []
    for line in _cr_lines(stream):
        if type(line) is LineTooLong:
            if batch:
                yield _batch(batch, b"\x00")
                batch = []
            yield line
            continue
        batch.append(line)  # type: ignore[arg-type]
        if len(batch) == _BATCH:
            yield _batch(batch, b"\x00")
            batch = []
    if batch:
        yield _batch(batch, b"\x00")


def _cr_lines(stream: BinaryIO) -> Iterator[bytes | LineTooLong]:
    readline = stream.readline
    pending = b""  # the unfinished last piece of a CR-only chunk
    for line in iter(partial(readline, MAX_LINE), b""):
        if len(line) == MAX_LINE and line[-1] != 10:
            if b"\r" in line:  # split the chunk, keep its unfinished piece
                *pieces, pending = (pending + line).split(b"\r")
                yield from pieces
                if len(pending) < MAX_LINE:
                    continue
                line, pending = pending, b""
            yield _skip_long(readline, len(line))
            continue
        body = (pending + line).rstrip(b"\r\n")
        pending = b""
        yield from body.split(b"\r")
    if pending:
        yield pending


def _skip_long(readline: Callable[[int], bytes], length: int) -> LineTooLong:
    """Read past the rest of an over-long line; its whole length."""
    while True:
        rest = readline(_READ)
        if not rest or rest.endswith(b"\n"):
            return LineTooLong(length + len(rest.rstrip(b"\r\n")))
        length += len(rest)
