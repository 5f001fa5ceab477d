"""Property tests: whatever bytes reach a parser (real trace lines flipped, cut, duplicated, joined,
reordered; CR/LF mixed; invalid UTF-8; NUL bytes; long lines; numbers past 64 bits; missing or
negative time stamps), reading raises nothing but ``InputFileError``, the line accounting adds up
(``lines == event_lines + foreign + malformed``), and the analysis of what was read completes.
Decoding takes any register values."""

import io
import lzma
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smcwire.abi.profiles import get_profile
from smcwire.codec.decode import decode_call, decode_return
from smcwire.pipeline import Analysis, Capture
from smcwire.sources.formats import format_names
from smcwire.sources.io import Input, InputFileError

ROOT = Path(__file__).parent.parent
STDIN = Input("<stdin>", None)


def _lines(path: Path, count: int = 400) -> list[bytes]:
    data = path.read_bytes()
    return (lzma.decompress(data) if path.suffix == ".xz" else data).split(b"\n")[:count]


REAL = [line for path in (
    ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz", ROOT / "traces/qemu-dbg-kretprobe/dmesg.txt",
    ROOT / "traces/qemu-misconf-nobl32/tfa-console.log", ROOT / "tests/data/legacy-os-kretprobe-ftrace.txt.xz",
    *sorted((ROOT / "tests/data/consoles").glob("*")),
) if path.is_file() and path.suffix != ".md" for line in _lines(path)]

NASTY = [b"\x00", b"\xff\xfe", b"\r", b"\r\n", b"0x" + b"f" * 40, b"-1", b"99999999999999999999999", b"(",
         b")", b"[", b"]", b":", b"=", b",", b" ", b"\t", b"optee_invoke_fn_begin: ", b"param=", b"a0=", b"r0=",
         b"CPU:0 [LOST ", b"NOTICE:  ", b"E/TC:0 0 ", b"[    1.000000] optee: ", b"x0 ", b"\xc3\x28"]


@st.composite
def damaged_line(draw: st.DrawFn) -> bytes:
    line = bytearray(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(line)))
        if op == 0 and line:  # flip a byte
            line[min(at, len(line) - 1)] ^= draw(st.integers(1, 255))
        elif op == 1:  # cut
            del line[at:]
        elif op == 2:  # insert something nasty
            line[at:at] = draw(st.sampled_from(NASTY))
        elif op == 3:  # a time stamp gone negative or huge
            line = bytearray(bytes(line).replace(b".", b"-", 1) if draw(st.booleans()) else bytes(line) + b"9" * 30)
        else:  # drop a span
            del line[at:at + draw(st.integers(1, 20))]
    return bytes(line)


@st.composite
def damaged_file(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.one_of(damaged_line(), st.sampled_from(REAL), st.binary(max_size=80)), max_size=40))
    if lines and draw(st.booleans()):  # duplicated and reordered lines
        lines = lines + draw(st.permutations(lines))[: draw(st.integers(0, len(lines)))]
    ends = draw(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n"]), min_size=1, max_size=3))
    data = b"".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    if draw(st.booleans()):  # joined: a line end lost
        data = data.replace(ends[0], b" ", 1)
    return data


def _analyse(data: bytes, input_format: str | None) -> Analysis:
    """The analysis of ``data`` given on stdin (the reader's whole path: detection, decompression)."""
    stdin, sys.stdin = sys.stdin, io.TextIOWrapper(io.BytesIO(data))
    try:
        analysis = Analysis(Capture("<stdin>", (STDIN,)), get_profile(), input_format=input_format, prefetch=False)
        for _ in analysis.flows():
            pass
    finally:
        sys.stdin = stdin
    return analysis


@pytest.mark.parametrize("input_format", [None, *format_names()])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=damaged_file())
def test_damaged_input_is_read_and_accounted(input_format, data):
    try:
        analysis = _analyse(data, input_format)
    except InputFileError:
        return
    (stats,) = analysis.files
    assert stats.lines == stats.event_lines + stats.foreign + stats.malformed
    if b"\r" not in data and stats.compression is None:  # (lone CRs may end lines too; compressed: its content)
        assert stats.lines == data.count(b"\n") + (not data.endswith(b"\n") and bool(data))
    analysis.features()


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes(data):
    try:
        analysis = _analyse(data, None)
    except InputFileError:
        return
    assert all(s.lines == s.event_lines + s.foreign + s.malformed for s in analysis.files)


@settings(max_examples=500, deadline=None)
@given(call=st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=8),
       ret=st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=8),
       rpc=st.one_of(st.none(), st.integers(0, 0xFFFF)))
def test_any_register_values_decode(call, ret, rpc):
    decoded = decode_call(call, rpc=rpc)
    answer = decode_return(decoded, ret)
    assert decoded.regs == tuple(call) and answer.regs == tuple(ret)
    assert all(0 <= v < 1 << 64 for v in (*decoded.fields.values(), *answer.fields.values()))
