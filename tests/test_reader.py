"""Inputs and line accounting: compression, directories, stdin, hostile lines."""

import bz2
import gzip
import io
import lzma
import shutil
import sys

import pytest

from smcwire.sources import io as sio
from smcwire.sources.reader import TraceReader

PROBE = "traces/qemu-dbg-probe/ftrace.txt"  # 46 lines: 12 header lines, 34 optee events


def _read(names, fmt=None):
    reader = TraceReader.from_names(names, fmt)
    events = list(reader)
    return events, reader.stats


def _balanced(stats):
    return all(s.lines == s.event_lines + s.foreign + s.malformed for s in stats)


def test_plain_trace_accounting():
    events, (stats,) = _read([PROBE])
    assert stats.format == "ftrace" and stats.lines == 46
    assert stats.events == {"smc_call": 17, "smc_return": 17}  # traces/README.md: 17 begins
    assert (stats.event_lines, stats.foreign, stats.malformed) == (34, 12, 0)
    assert [e.line for e in events][:2] == [13, 14]


@pytest.mark.parametrize("suffix, opener", [(".gz", gzip.open), (".xz", lzma.open), (".bz2", bz2.open),
                                            ("", gzip.open)])  # detected by magic bytes, not by name
def test_compressed_inputs(tmp_path, suffix, opener):
    target = tmp_path / f"probe{suffix}"
    with open(PROBE, "rb") as src, opener(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain, _ = _read([PROBE])
    events, (stats,) = _read([str(target)])
    assert [e._replace(file="") for e in events] == [e._replace(file="") for e in plain]
    assert stats.compression == {"gz": "gzip", "xz": "xz", "bz2": "bzip2"}.get(suffix[1:], "gzip")


def test_zstd_without_module_is_a_clear_error(tmp_path, monkeypatch):
    target = tmp_path / "t.zst"
    target.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    events, (stats,) = _read([str(target)])
    assert events == [] and stats.error == f"{target}: zstd-compressed; install the 'zstandard' module to read it"


def test_corrupt_compressed_input_does_not_stop_the_others(tmp_path):
    target = tmp_path / "bad.xz"
    target.write_bytes(lzma.compress(open(PROBE, "rb").read())[:300])
    reader = TraceReader.from_names([str(target), PROBE])
    events = list(reader)
    bad, good = reader.stats
    assert bad.error.startswith(f"{target}: cannot read") and reader.errors == [bad.error]
    assert good.error is None and len(events) - bad.event_lines == 34


def test_directory_and_missing_file(tmp_path):
    (tmp_path / "b").mkdir()
    shutil.copy(PROBE, tmp_path / "b" / "2.txt")
    shutil.copy(PROBE, tmp_path / "1.txt")
    _, stats = _read([str(tmp_path)])
    assert [s.file for s in stats] == [str(tmp_path / "1.txt"), str(tmp_path / "b" / "2.txt")]
    with pytest.raises(sio.InputFileError, match="nope.txt: no such file or directory"):
        TraceReader.from_names([str(tmp_path / "nope.txt")])


def test_stdin(monkeypatch):
    data = open(PROBE, "rb").read()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    events, (stats,) = _read(["-"])
    assert stats.file == "<stdin>" and len(events) == 34


def test_hostile_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(sio, "MAX_LINE", 4096)
    lines = open(PROBE, "rb").read().split(b"\n")
    body = lines[12:46]
    hostile = b"\n".join([b"\x00\xff\xfe garbage", b"y" * 10000, *[b + b"\r" for b in body], body[0][:110]])
    target = tmp_path / "hostile.txt"
    target.write_bytes(hostile)  # CRLF lines, a NUL line, a too-long line, a truncated last line
    events, (stats,) = _read([str(target)], "ftrace")
    assert len(events) == 34 and _balanced([stats])
    assert stats.lines == 37 and stats.binary_lines == 1
    assert any("line of 10000 bytes is too long" in d for d in stats.diagnostics)
    assert stats.malformed == 2  # the long line, and the begin line cut in its arguments


def test_empty_file(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    events, (stats,) = _read([str(tmp_path / "empty")])
    assert events == [] and stats.lines == 0 and _balanced([stats])


@pytest.mark.parametrize("crlf", [False, True])
def test_lines_across_chunks(monkeypatch, crlf):
    """Lines are split from MAX_LINE-byte chunks: lines spanning chunk edges, and lines just under,
    at and over the limit, come out as a plain split would give them (over-long ones as LineTooLong)."""
    monkeypatch.setattr(sio, "MAX_LINE", 64)
    end = b"\r\n" if crlf else b"\n"
    lengths = [0, 5, 62, 63, 64, 65, 200, 1, 130, 63, 0, 7]
    data = end.join(bytes([97 + i % 26]) * n for i, n in enumerate(lengths)) + end + b"tail"
    got = []
    for batch in sio.read_lines(io.BufferedReader(io.BytesIO(data)), "x"):
        got += [batch] if isinstance(batch, sio.LineTooLong) else batch.lines
    want = [sio.LineTooLong(n) if n >= 64 else bytes([97 + i % 26]) * n for i, n in enumerate(lengths)]
    assert got == [*want, b"tail"]
