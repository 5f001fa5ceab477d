"""Opening inputs: paths, directories, ``-`` for stdin, and compressed files, read as raw lines.

Compression is recognised by the file's magic bytes, not its name: gzip, xz, bzip2 from the
standard library, zstd when the ``zstandard`` module is importable.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

MAX_LINE = 1 << 20  # longer lines are cut and reported malformed, so memory stays bounded
_READ = 1 << 16

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class InputFileError(OSError):
    """An input that cannot be opened or decompressed; the message names the file."""


@dataclass(frozen=True)
class Input:
    """One input: its display name (the path, or ``<stdin>``) and how to open it."""

    name: str
    path: Path | None  # None for stdin

    def open(self) -> tuple[BinaryIO, str | None, int | None]:
        """The decompressed byte stream, the compression name (or None) and the on-disk size."""
        try:
            raw: BinaryIO = sys.stdin.buffer if self.path is None else open(self.path, "rb")  # noqa: SIM115
        except OSError as e:
            raise InputFileError(f"{self.name}: cannot open: {e.strerror}") from None
        size = os.fstat(raw.fileno()).st_size if self.path is not None else None
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type,type-var]
        head = buffered.peek(8)[:8]
        for magic, kind in _MAGIC:
            if head.startswith(magic):
                return _decompress(buffered, kind, self.name), kind, size
        return buffered, None, size


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


def read_lines(stream: BinaryIO, name: str) -> Iterator[bytes | LineTooLong]:
    """Raw lines without their ending (``\\n``, ``\\r\\n``, trailing ``\\r``s), one by one; a line
    over ``MAX_LINE`` bytes is skipped to its end and given as ``LineTooLong``."""
    readline = stream.readline
    try:
        while True:
            line = readline(MAX_LINE)
            if not line:
                return
            if len(line) == MAX_LINE and not line.endswith(b"\n"):
                length = len(line)
                while True:
                    rest = readline(_READ)
                    length += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield LineTooLong(length - (1 if rest.endswith(b"\n") else 0))
                continue
            yield line.rstrip(b"\r\n")
    except (OSError, EOFError, lzma.LZMAError, ValueError) as e:  # corrupt compressed data
        raise InputFileError(f"{name}: cannot read: {e}") from None
