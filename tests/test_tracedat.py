"""trace-cmd's trace.dat read natively (smcwire.sources.tracedat), against trace-cmd's own reports.

The oracle is the real recording of ../shared/traces/qemu/trace-cmd-small (tests/data/tracedat/README.md):
its events read from the binary must equal those read from `trace-cmd report` text of the same file
(tests/data/ftrace/trace-cmd-small-report*.txt.xz) in count, order, line, CPU, pid, task, time and
registers. The same holds for the file converted to version 6 by trace-cmd, for a real version 6
recording of uprobe events on this machine's kernel, and for files rewritten by the test writer
(version 6, version 7 uncompressed, zlib and zstd, big-endian, 32-bit longs). The fast path is held
to a Construct parse of the same pages; the merge of the CPUs to trace-cmd's (and to trace-cmd
itself where it is installed) on ties, times going back and lost events; broken files to errors
per file, never a traceback.
"""

from __future__ import annotations

import gzip
import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from smcwire.cli import cli
from smcwire.model.events import LostEvents, SmcCall, SmcReturn
from smcwire.sources.reader import TraceReader
from smcwire.sources.tracedat import writer
from smcwire.sources.tracedat.file import TraceDat
from smcwire.sources.tracedat.formats import EventFormat, parse_event_format, parse_fields, parse_header_event
from smcwire.sources.tracedat.records import PageDecoder
from smcwire.sources.tracedat.schema import OptionId, record_struct, ring_buffer_event

DATA = Path(__file__).parent / "data"
REAL = DATA / "tracedat/trace-cmd-small.dat"  # version 7, zstd: ../shared/traces/qemu/trace-cmd-small/trace.dat
V6 = DATA / "tracedat/trace-cmd-small-v6.dat.xz"  # the same, `trace-cmd convert --file-version 6`
UPROBE = DATA / "tracedat/smcreplay-uprobe-v6.dat.xz"  # a real version 6 recording (README there)
UPROBE_REPORT = DATA / "tracedat/smcreplay-uprobe-v6-report-t.txt.xz"
REPORT, REPORT_L, REPORT_T = (DATA / f"ftrace/trace-cmd-small-report{s}.txt.xz" for s in ("", "-l", "-t"))
TRACE_CMD = shutil.which("trace-cmd")


def read(path: Path | str) -> tuple[list, object]:
    reader = TraceReader.from_names([str(path)])
    events = list(reader)
    return events, reader.stats[0]


def same(events: list) -> list:
    """Events without their file name, to compare two files' events."""
    return [e._replace(file="") for e in events]


@pytest.fixture(scope="module")
def v6_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The version 6 file, uncompressed (TraceDat reads a seekable file)."""
    out = tmp_path_factory.mktemp("tracedat") / "v6.dat"
    with lzma.open(V6) as f:
        out.write_bytes(f.read())
    return out


def opened(path: Path) -> TraceDat:
    f = path.open("rb")
    return TraceDat(f, path.stat().st_size)


# --- the oracle ---------------------------------------------------------------------------------


def test_real_file_equals_trace_cmd_report_to_the_nanosecond():
    pytest.importorskip("zstandard")
    binary, stats = read(REAL)
    text, text_stats = read(REPORT_T)
    assert len(binary) == 450 and same(binary) == same(text)  # order, line, CPU, pid, task, ts (ns), regs, key
    first = binary[0]
    assert first == SmcCall(str(REAL), 2, 3_548_388_928, 0, 105, None, "sh", (0x32000012, 0, 0x46189000, 0, 0, 0, 0, 0),
                            "0xffff8000082ab508", "tracepoint")
    # the accounting is the report's: "cpus=2" and 3 tracing_mark_write lines are foreign
    for field in ("lines", "event_lines", "foreign", "malformed", "events"):
        assert getattr(stats, field) == getattr(text_stats, field), field
    assert (stats.lines, stats.event_lines, stats.foreign, stats.malformed) == (454, 450, 4, 0)
    assert stats.format == "trace.dat" and stats.error is None
    assert stats.trace_dat == {**stats.trace_dat, "version": 7, "compression": "zstd 1.5.4", "cpus": 2,
                               "records_per_cpu": {"0": 367, "1": 86}, "clock": "local", "page_size": 4096,
                               "long_size": 8, "endian": "little", "trace_cmd": "3.1.6 not-a-git-repo", "notes": []}


def test_real_file_equals_the_default_and_latency_reports():
    pytest.importorskip("zstandard")
    binary, _ = read(REAL)
    default, _ = read(REPORT)  # times in µs, rounded as libtraceevent prints them
    assert [e._replace(file="", ts=(e.ts + 500) // 1000 * 1000) for e in binary] == same(default)
    latency, _ = read(REPORT_L)  # `-l`: the command name cut to 8 characters
    assert [e._replace(file="", ts=(e.ts + 500) // 1000 * 1000, task=e.task[:8]) for e in binary] == same(latency)


def test_version_6_converted_by_trace_cmd_equals_the_report():
    binary, stats = read(V6)  # inside xz: read from a temporary copy
    text, _ = read(REPORT_T)
    assert same(binary) == same(text)
    assert stats.compression == "xz" and stats.trace_dat["version"] == 6 and stats.trace_dat["compression"] == "none"
    assert stats.trace_dat["records_per_cpu"] == {"0": 367, "1": 86}


def test_real_version_6_uprobe_recording_equals_its_report():
    binary, stats = read(UPROBE)
    text, text_stats = read(UPROBE_REPORT)
    assert same(binary) == same(text) and len(binary) == 80
    assert (stats.lines, stats.foreign) == (text_stats.lines, text_stats.foreign) == (129, 49)
    calls = [e for e in binary if isinstance(e, SmcCall)]
    returns = [e for e in binary if isinstance(e, SmcReturn)]
    assert {e.origin for e in calls} == {"kprobe"} and {e.origin for e in returns} == {"kretprobe"}
    # the first SMC the replay issues is CALLS_UID, answered with the OP-TEE UID (traces/qemu-dbg-kretprobe)
    assert calls[0].regs == (0xBF00FF01, 0, 0, 0, 0, 0, 0, 0) and calls[0].task == "smcreplay"
    assert returns[0].regs == (0x384FB3E0, 0xE7F811E3, 0xAF630002, 0xA5D5C51B)


# --- the fast path against Construct -----------------------------------------------------------


def construct_records(dat: TraceDat) -> list[list[tuple[int, int, bytes]]]:
    """Each CPU's records as (time, event ID, data), walked with the Construct structs of the file's
    header_page and header_event (kbuffer-parse.c's rules, written again here)."""
    event = dat.header_event
    header = ring_buffer_event(event, dat.big_endian)
    page_header = record_struct(dat.header_page, dat.big_endian)
    start = next(f.offset for f in dat.header_page if f.name == "data")
    common_type = record_struct(tuple(f for f in next(iter(dat.formats.values())).fields if f.name == "common_type"),
                                dat.big_endian)
    out = []
    for data in writer.cpu_data_of(dat):
        records = []
        for at in range(0, len(data), dat.buffer.page_size):
            page = data[at:at + dat.buffer.page_size] + bytes(8)
            head = page_header.parse(page)
            ts, pos, end = head.timestamp, start, start + (head.commit & ((1 << 27) - 1))
            while pos < end:
                e = header.parse(page[pos:pos + 8])
                kind, delta = e.header.type_len, e.header.time_delta
                if kind == event.padding:
                    ts += delta
                    if not delta:
                        break
                    pos += 4 + e.array0
                    continue
                if kind in (event.time_extend, event.time_stamp):
                    high = (e.array0 << event.time_delta_bits) + delta
                    ts = ts + high if kind == event.time_extend else high | (ts & (0xF8 << 56))
                    pos += 8
                    continue
                ts += delta
                length, skip = (4 * kind, 4) if kind else (e.array0 - 4, 8)
                payload = page[pos + skip:pos + skip + length]
                records.append((ts, common_type.parse(payload).common_type, payload))
                pos += skip + (length + 3) // 4 * 4
        out.append(records)
    return out


def fast_records(dat: TraceDat) -> list[list[tuple[int, int, bytes]]]:
    """The same, from the fast path: every event ID given a reader that returns the record."""
    type_field = next(f for fmt in dat.formats.values() for f in fmt.fields if f.name == "common_type")

    def keep(buf, data, length, line, ts, cpu):
        return bytes(buf[data:data + length])

    decoder = PageDecoder(dat.header_page, dat.header_event, type_field, dat.big_endian,
                          {ident: keep for ident in dat.formats}, "x")
    out = []
    for cpu in dat.buffer.cpus:
        records, last = [], 0
        for block in dat.blocks(cpu):
            times, notes = [], []
            words = decoder.words(block.buf)
            for start, size in block.pages:
                decoder(block.buf, words, start, size, last, times, notes)
                last = times[-1] if times else last
            records += [(times[j], decoder.event_id(block.buf, data), read(block.buf, data, length, 0, 0, 0))
                        for j, read, data, length in notes]
        out.append(records)
    return out


@pytest.mark.parametrize("name", ["v6", "uprobe", "big-endian", "long-4"])
def test_fast_path_equals_construct(name, v6_file, tmp_path):
    path = {"v6": v6_file, "uprobe": unpacked(UPROBE, tmp_path), "big-endian": big_endian_copy(v6_file, tmp_path),
            "long-4": long_size_4_copy(v6_file, tmp_path)}[name]
    dat = opened(path)
    expected = construct_records(dat)
    assert fast_records(opened(path)) == expected and sum(map(len, expected)) in (453, 128)
    # the fields of the records read into events, parsed by Construct from their formats, are the events'
    by_id = {fmt.id: fmt for fmt in dat.formats.values()}
    parsed = [(by_id[ident], record_struct(by_id[ident].fields, dat.big_endian).parse(payload))
              for records in expected for _, ident, payload in records]
    values = [(v.common_pid, f"{v.param:#x}", tuple(v.get("args") or v.get("rets"))) if "param" in v else
              (v.common_pid, None, tuple(v[f"r{i}"] for i in range(4)) if "r0" in v else
               tuple(v[f"a{i}"] for i in range(8)))
              for fmt, v in parsed if fmt.name.startswith(("optee_invoke", "optee_smccc"))]
    events = read(path)[0]
    assert len(values) == len(events) == (80 if name == "uprobe" else 450)
    assert sorted(values) == sorted((e.pid, e.key, e.regs) for e in events)


def test_the_uprobe_recording_has_a_time_extend(tmp_path):
    dat = opened(unpacked(UPROBE, tmp_path))
    kinds = set()
    header = ring_buffer_event(dat.header_event, dat.big_endian)
    for data in writer.cpu_data_of(dat):
        for at in range(0, len(data), 4096):
            pos, end = 16, 16 + (int.from_bytes(data[at + 8:at + 16], "little") & ((1 << 27) - 1))
            while pos < end:
                e = header.parse(data[at + pos:at + pos + 8] + bytes(8))
                kind = e.header.type_len
                kinds.add(kind)
                if kind == dat.header_event.padding and not e.header.time_delta:
                    break
                sized = kind in (0, dat.header_event.padding)  # array[0] is the size
                pos += 8 if kind >= dat.header_event.time_extend else 4 + (e.array0 if sized else 4 * kind)
    assert dat.header_event.time_extend in kinds  # the replay sleeps 200 ms, more than 2^27 ns


def test_page_walk_of_every_record_type(formats):
    """A page with a discarded record (padding of array[0] bytes after its header word, array[0]
    included, that adds its delta), a record longer than data max
    (its length in array[0]), a time extend, an absolute time stamp going back and null padding."""
    meta, by_name = formats
    header_page, event = parse_fields(meta.header_page.decode()), parse_header_event(meta.header_event.decode())
    word = ring_buffer_event(event, False)

    def head(type_len: int, delta: int, array0: int | None = None) -> bytes:
        built = word.build({"header": {"type_len": type_len, "time_delta": delta}, "array0": array0 or 0})
        return built if array0 is not None else built[:4]

    begin = optee_record(by_name["optee_invoke_fn_begin"], 7, 0x10, [0x32000004, *[0] * 7])
    end = optee_record(by_name["optee_invoke_fn_end"], 7, 0x10, [0, 0, 0, 0])
    big = print_record(by_name["print"], 7) + bytes(192)
    data = (head(len(begin) // 4, 5) + begin + head(event.padding, 7, 16) + bytes(12)
            + head(0, 3, len(big) + 4) + big + head(event.time_extend, 1, 2) + head(len(end) // 4, 0) + end
            + head(event.time_stamp, 10, 0) + head(len(begin) // 4, 2) + begin + head(event.padding, 0))
    t0 = 1000
    page = record_struct(header_page, False).build({"timestamp": t0, "commit": len(data),
                                                    "data": data + bytes(meta.page_size - 16 - len(data))})
    keep = {by_name[name].id: (lambda buf, d, length, line, ts, cpu: bytes(buf[d:d + length]))
            for name in ("optee_invoke_fn_begin", "optee_invoke_fn_end")}
    type_field = by_name["print"].field("common_type")
    decoder = PageDecoder(header_page, event, type_field, False, {**keep, by_name["print"].id: None}, "x")
    times, notes = [], []
    buf = page + bytes(8)
    records, back = decoder(buf, decoder.words(buf), 0, meta.page_size, 0, times, notes)
    extended = t0 + 5 + 7 + 3 + (2 << event.time_delta_bits) + 1
    assert records == 4 and back and times == [t0 + 5, t0 + 15, extended, 12]
    assert [(j, read(buf, d, length, 0, 0, 0)) for j, read, d, length in notes] == [(0, begin), (2, end), (3, begin)]


# --- rewritten files: versions, compression, byte order, long size ------------------------------


def unpacked(path: Path, tmp: Path) -> Path:
    out = tmp / path.name.removesuffix(".xz")
    with lzma.open(path) as f:
        out.write_bytes(f.read())
    return out


def rewrite(src: Path, out: Path, version: int, compression: str) -> Path:
    dat = opened(src)
    with out.open("wb") as f:
        writer.write(f, writer.metadata_of(dat), writer.cpu_data_of(dat), version, compression)
    return out


def big_endian_copy(src: Path, tmp: Path) -> Path:
    """The file as a big-endian machine would have written it: every record rebuilt with Construct
    from its format, in the other byte order."""
    dat = opened(src)
    meta = writer.metadata_of(dat)._replace(big_endian=True)
    by_id = {fmt.id: fmt for fmt in dat.formats.values()}
    cpus = []
    for records in construct_records(dat):
        pages = writer.PageWriter(dat.header_page, dat.header_event, True, dat.page_size)
        for ts, ident, payload in records:
            fields = by_id[ident].fields
            little, big = record_struct(fields, False), record_struct(fields, True)
            fixed = little.sizeof() if all(f.array != 0 for f in fields) else len(payload)
            rebuilt = big.build(little.parse(payload)) if fixed <= len(payload) else payload
            pages.add(ts, rebuilt + payload[len(rebuilt):])
        cpus.append(pages.finish())
    out = tmp / "big-endian.dat"
    with out.open("wb") as f:
        writer.write(f, meta, cpus, 7, "zlib")
    return out


def long_size_4_copy(src: Path, tmp: Path) -> Path:
    """The file as a 32-bit kernel would have written it: a 4-byte commit, the data at offset 12."""
    dat = opened(src)
    meta = writer.metadata_of(dat)
    text = meta.header_page.decode()
    text = text.replace("local_t commit;\toffset:8;\tsize:8;", "local_t commit;\toffset:8;\tsize:4;")
    text = text.replace("char data;\toffset:16;\tsize:4080;", "char data;\toffset:12;\tsize:4084;")
    header_page = parse_fields(text)
    cpus = []
    for records in construct_records(dat):
        pages = writer.PageWriter(header_page, dat.header_event, False, dat.page_size)
        for ts, _, payload in records:
            pages.add(ts, payload)
        cpus.append(pages.finish())
    out = tmp / "long-4.dat"
    with out.open("wb") as f:
        writer.write(f, meta._replace(header_page=text.encode(), long_size=4), cpus, 6)
    return out


@pytest.mark.parametrize(("version", "compression"), [(6, "none"), (7, "none"), (7, "zlib"), (7, "zstd")])
def test_rewritten_files_read_the_same(version, compression, v6_file, tmp_path):
    if compression == "zstd":
        pytest.importorskip("zstandard")
    out = rewrite(v6_file, tmp_path / "out.dat", version, compression)
    events, stats = read(out)
    assert same(events) == same(read(REPORT_T)[0]) and stats.lines == 454
    assert stats.trace_dat["version"] == version
    assert stats.trace_dat["compression"] == ("none" if compression == "none" else f"{compression} 1")


def test_big_endian_and_32_bit_files_read_the_same(v6_file, tmp_path):
    expected = same(read(REPORT_T)[0])
    big, stats = read(big_endian_copy(v6_file, tmp_path))
    assert same(big) == expected and stats.trace_dat["endian"] == "big"
    small, stats = read(long_size_4_copy(v6_file, tmp_path))
    assert same(small) == expected and stats.trace_dat["long_size"] == 4


def test_compressed_wrappers_and_stdin(v6_file, tmp_path):
    expected = same(read(v6_file)[0])
    gz = tmp_path / "trace.dat.gz"
    gz.write_bytes(gzip.compress(v6_file.read_bytes()))
    events, stats = read(gz)
    assert same(events) == expected and stats.compression == "gzip"
    result = CliRunner().invoke(cli, ["parse", "-", "--format", "jsonl", "-q"], input=v6_file.read_bytes())
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 450


def test_input_format_does_not_apply_to_a_trace_dat(v6_file):
    reader = TraceReader.from_names([str(v6_file)], input_format="console")
    assert len(list(reader)) == 450 and reader.stats[0].format == "trace.dat"


# --- the merge: ties, times going back, lost events ---------------------------------------------


@pytest.fixture(scope="module")
def formats(v6_file: Path) -> tuple[writer.Metadata, dict[str, EventFormat]]:
    dat = opened(v6_file)
    return writer.metadata_of(dat), {fmt.name: fmt for fmt in dat.formats.values()}


def optee_record(fmt: EventFormat, pid: int, param: int, values: list[int]) -> bytes:
    """An optee tracepoint record built with Construct from its format."""
    name = "args" if fmt.name.endswith("begin") else "rets"
    return record_struct(fmt.fields, False).build({"common_type": fmt.id, "common_flags": 0,
                                                   "common_preempt_count": 0, "common_pid": pid, "param": param,
                                                   name: values})


def print_record(fmt: EventFormat, pid: int) -> bytes:
    """A trace_marker write (ftrace:print), foreign."""
    return record_struct(fmt.fields, False).build({"common_type": fmt.id, "common_flags": 0,
                                                   "common_preempt_count": 0, "common_pid": pid, "ip": 0,
                                                   "buf": b""}) + b"smcw\n\0\0\0"


def synthetic(formats, path: Path, cpus: list[list[tuple]], meta_changes: dict | None = None) -> Path:
    """A trace.dat of records given per CPU as (time, kind, options): kind "begin" (a call whose a0 is
    the time), "end", "print"; options "lost" (events lost before it) and "absolute" (a time stamp)."""
    meta, by_name = formats
    header_page, header_event = parse_fields(meta.header_page.decode()), parse_header_event(meta.header_event.decode())
    data = []
    for n, records in enumerate(cpus):
        pages = writer.PageWriter(header_page, header_event, False, meta.page_size)
        for ts, kind, *options in records:
            if kind == "print":
                payload = print_record(by_name["print"], 100 + n)
            elif kind == "begin":
                call = [ts & 0xFFFFFFFF, *[0] * 7]
                payload = optee_record(by_name["optee_invoke_fn_begin"], 100 + n, 0x1000 + n, call)
            else:
                payload = optee_record(by_name["optee_invoke_fn_end"], 100 + n, 0x1000 + n, [0, 0, 0, ts])
            lost = next((o[1] for o in options if o[0] == "lost"), None)
            pages.add(ts, payload, lost=lost, absolute=("absolute",) in options)
        data.append(pages.finish())
    with path.open("wb") as f:
        writer.write(f, meta._replace(**(meta_changes or {})), data, 6)
    return path


def trace_cmd_order(cpus: list[list[tuple]]) -> list[tuple[int, int, str]]:
    """(CPU, time, kind) of every line after "cpus=N", merged as trace-input.c
    tracecmd_iterate_events_multi() does: the CPU with the smallest next time, the lowest on a tie;
    a "lost" marker line before the first record of its page."""
    heads, out = [0] * len(cpus), []
    while True:
        best = None
        for c, records in enumerate(cpus):
            if heads[c] < len(records) and (best is None or records[heads[c]][0] < cpus[best][heads[best]][0]):
                best = c
        if best is None:
            return out
        ts, kind, *options = cpus[best][heads[best]]
        if any(o[0] == "lost" for o in options):
            out.append((best, ts, "lost"))
        out.append((best, ts, kind))
        heads[best] += 1


CASES = {
    "ties": [[(10, "begin"), (20, "print"), (20, "end"), (30, "begin"), (30, "end")],
             [(10, "print"), (20, "begin"), (20, "end"), (25, "print")],
             [(10, "begin"), (10, "end"), (30, "print"), (30, "begin"), (40, "end")]],
    "back": [[(100, "begin"), (200, "end"), (150, "begin", ("absolute",)), (160, "end"), (300, "print")],
             [(120, "print"), (130, "begin"), (170, "end"), (400, "begin"), (410, "end")]],
    "lost": [[(10, "begin"), (20, "end"), (30, "begin", ("lost", 7)), (40, "end"), (50, "begin", ("lost", -1)),
              (60, "end")],
             [(15, "print"), (35, "begin"), (45, "end")]],
    "extend": [[(1, "begin"), (1 << 28, "end"), ((1 << 40) + 5, "print")], [(2, "print"), (1 << 29, "begin")]],
    "one CPU going back": [[(100, "begin"), (200, "end"), (150, "begin", ("absolute",)), (160, "end")]],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_merge_is_trace_cmds(case, formats, tmp_path):
    cpus = [[(ts + 1_000_000_000, kind, *options) for ts, kind, *options in records] for records in CASES[case]]
    path = synthetic(formats, tmp_path / "merge.dat", cpus)
    events, stats = read(path)
    order = trace_cmd_order(cpus)
    expected = [(line, cpu, ts, kind) for line, (cpu, ts, kind) in enumerate(order, 2) if kind != "print"]
    got = [(e.line, e.cpu, getattr(e, "ts", None),
            "lost" if isinstance(e, LostEvents) else "begin" if isinstance(e, SmcCall) else "end") for e in events]
    assert [(line, cpu, kind) for line, cpu, _, kind in got] == [(line, cpu, kind) for line, cpu, _, kind in expected]
    assert [ts for _, _, ts, kind in got if kind != "lost"] == [ts for _, _, ts, kind in expected if kind != "lost"]
    assert stats.lines == 1 + len(order) and stats.foreign == 1 + sum(kind == "print" for _, _, kind in order)
    lost = [e.lost for e in events if isinstance(e, LostEvents)]
    assert lost == ([7, None] if case == "lost" else []) and stats.lost_markers == len(lost)
    if TRACE_CMD:  # and trace-cmd itself reports the same lines
        report = tmp_path / "report.txt"
        report.write_text(subprocess.run([TRACE_CMD, "report", "-t", "-i", str(path)], capture_output=True,
                                         text=True, check=True).stdout)
        assert same(read(report)[0]) == same(events)


# --- events smcwire reads from probes ------------------------------------------------------------


KPROBE_FORMAT = """name: my_probe
ID: {id}
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;
{fields}
print fmt: "(%lx)", REC->__probe_ip
"""


def kprobe_file(formats, tmp_path: Path, fields: list[str], values: list[dict], kallsyms: bytes) -> Path:
    """A file of one kprobe event named ``my_probe`` (its name says nothing of SMC) with these fields
    (u64 or s32 by the name's prefix), whose records hold ``values``."""
    meta, _ = formats
    lines = []
    for i, name in enumerate(fields):
        kind, size, signed = ("s32", 4, 1) if name.startswith("s") else ("u64", 8, 0)
        lines.append(f"\tfield:{kind} {name.lstrip('s')};\toffset:{16 + 8 * i};\tsize:{size};\tsigned:{signed};")
    text = KPROBE_FORMAT.format(id=3000, fields="\n".join(lines)).encode()
    fmt = parse_event_format("kprobes", text.decode())
    pages = writer.PageWriter(parse_fields(meta.header_page.decode()), parse_header_event(meta.header_event.decode()),
                              False, meta.page_size)
    for n, v in enumerate(values):
        pages.add(1000 + n, record_struct(fmt.fields, False).build(
            {"common_type": 3000, "common_flags": 0, "common_preempt_count": 0, "common_pid": 7, **v}))
    path = tmp_path / "kprobe.dat"
    with path.open("wb") as f:
        writer.write(f, meta._replace(event_systems=[("kprobes", [text])], kallsyms=kallsyms,
                                      cmdlines=b"7 tee-supplicant\n"), [pages.finish()], 7, "zlib")
    return path


def test_probe_on_an_smc_entry_found_in_kallsyms(formats, tmp_path):
    names = [f"a{i}" for i in range(8)]
    kallsyms = (b"ffff800008120000 t optee_smccc_smc\t[optee]\nffff800008120100 t optee_do_bottom_half\t[optee]\n"
                b"ffff800008130000 T do_sys_openat2\n")
    values = [{"__probe_ip": 0xFFFF800008120000, **dict.fromkeys(names, 0), "a0": 0xB2000009},
              {"__probe_ip": 0xFFFF800008130000, **dict.fromkeys(names, 0)}]
    events, stats = read(kprobe_file(formats, tmp_path, names, values, kallsyms))
    assert events == [SmcCall(str(tmp_path / "kprobe.dat"), 2, 1000, 0, 7, None, "tee-supplicant",
                              (0xB2000009, 0, 0, 0, 0, 0, 0, 0), None, "kprobe")]
    assert (stats.lines, stats.event_lines, stats.foreign) == (3, 1, 2)  # the probe on do_sys_openat2 is foreign


def test_probe_fields_read_as_the_text_reader_reads_them(formats, tmp_path):
    kallsyms = b"ffff800008120000 t optee_smccc_smc\n"
    # too few SMC arguments: malformed, as the text line would be
    _, stats = read(kprobe_file(formats, tmp_path, ["a0", "a1"], [{"__probe_ip": 0xFFFF800008120000, "a0": 1,
                                                                   "a1": 2}], kallsyms))
    assert stats.malformed == 1 and "SMC arguments 0..7 expected, only 2 found" in stats.diagnostics[0]
    # a signed field: its value as the kernel prints it (decimal), read back modulo 2^64
    names = ["sa0", *[f"a{i}" for i in range(1, 8)]]
    events, _ = read(kprobe_file(formats, tmp_path, names, [{"__probe_ip": 0xFFFF800008120000, "a0": -1,
                                                            **{f"a{i}": i for i in range(1, 8)}}], kallsyms))
    assert events[0].regs == ((1 << 64) - 1, 1, 2, 3, 4, 5, 6, 7)


# --- broken files: errors per file, with the accounting so far -----------------------------------


def test_cut_files_are_reported_with_what_they_held(v6_file, tmp_path):
    data = v6_file.read_bytes()
    dat = opened(v6_file)
    cpu1 = dat.buffer.cpus[1]
    cases = {  # where the file is cut -> (events read, the error's start)
        100: (0, "cannot read header_page"),
        len(data) // 4: (0, "cannot read"),  # inside kallsyms
        cpu1.offset + 10: (450 - 100, "CPU 1: truncated"),  # CPU 0 read, CPU 1's only page cut
    }
    for size, (count, error) in cases.items():
        cut = tmp_path / f"cut-{size}.dat"
        cut.write_bytes(data[:size])
        events, stats = read(cut)
        assert stats.error.startswith(f"{cut}: {error}"), (size, stats.error)
        assert stats.lines == stats.event_lines + stats.foreign + stats.malformed
        assert len(events) >= count if count else not events, size
    result = CliRunner().invoke(cli, ["parse", "--summary", str(tmp_path / f"cut-{cpu1.offset + 10}.dat")])
    assert result.exit_code == 2 and "CPU 1: truncated" in result.stderr.splitlines()[-1]
    assert "smc_call 183, smc_return 183" in result.stdout  # what CPU 0 held


def test_corrupt_compressed_chunk_is_malformed_and_the_rest_is_read(v6_file, tmp_path):
    out = rewrite(v6_file, tmp_path / "zlib.dat", 7, "zlib")
    dat = opened(out)
    chunk = dat.buffer.cpus[0].offset + 4 + 8  # CPU 0's first chunk's data
    data = bytearray(out.read_bytes())
    data[chunk + 20:chunk + 40] = bytes(20)
    out.write_bytes(bytes(data))
    events, stats = read(out)
    assert stats.error is None and stats.malformed == 1
    assert "CPU 0: compressed chunk 1 of 1" in stats.diagnostics[0] and "does not decompress" in stats.diagnostics[0]
    assert {e.cpu for e in events} == {1} and stats.trace_dat["records_per_cpu"] == {"0": 0, "1": 86}
    assert stats.lines == stats.event_lines + stats.foreign + stats.malformed


def test_corrupt_metadata_section_is_an_error(v6_file, tmp_path):
    out = rewrite(v6_file, tmp_path / "zlib.dat", 7, "zlib")
    dat = opened(out)
    at = dat._parts[OptionId.EVENT_FORMATS] + 16 + 8 + 10  # inside the compressed event formats
    data = bytearray(out.read_bytes())
    data[at:at + 30] = b"\xff" * 30
    out.write_bytes(bytes(data))
    events, stats = read(out)
    assert not events and stats.error.startswith(f"{out}: cannot read the EVENT_FORMATS section")
    assert "does not decompress" in stats.error


def test_unknown_event_ids_and_broken_pages_are_malformed(formats, tmp_path):
    cpus = [[(10, "begin"), (20, "end")]]
    path = synthetic(formats, tmp_path / "unknown.dat", cpus)
    data = bytearray(path.read_bytes())
    dat = opened(path)
    page = dat.buffer.cpus[0].offset
    data[page + 16 + 4:page + 16 + 6] = (999).to_bytes(2, "little")  # the first record's common_type
    data[page + 8:page + 12] = (0x1800).to_bytes(4, "little")  # commit: more data than the page holds
    path.write_bytes(bytes(data))
    events, stats = read(path)
    assert [type(e) for e in events] == [SmcReturn] and stats.malformed == 2
    assert stats.diagnostics[0].endswith(":2: CPU 0: a record of event ID 999, which has no format")
    assert "page data of" in stats.diagnostics[1]


def test_zstd_missing_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import zstandard raises ImportError
    events, stats = read(REAL)
    assert not events and "pip install 'smcwire[zstd]'" in stats.error and stats.error.startswith(f"{REAL}: ")


def test_not_a_trace_dat_after_the_magic(tmp_path):
    blob = tmp_path / "trace.dat"
    blob.write_bytes(b"\x17\x08\x44tracing6\x00" + bytes(range(256)) * 4)
    result = CliRunner().invoke(cli, ["parse", "--summary", str(blob)])
    assert result.exit_code == 2 and f"Error: {blob}: cannot read header_page and header_event" in result.stderr
    blob.write_bytes(b"\x17\x08\x44tracing9\x00\x00\x08")
    assert read(blob)[1].error == f"{blob}: trace-cmd file version '9': smcwire reads versions 6 and 7"


# --- the commands ---------------------------------------------------------------------------------


def test_parse_summary_shows_the_trace_dat(v6_file):
    result = CliRunner().invoke(cli, ["parse", "--summary", "--format", "json", str(V6)])
    assert result.exit_code == 0
    [info] = json.loads(result.stdout)
    assert info["format"] == "trace.dat" and info["lines"] == 454 and info["events"] == {"smc_call": 225,
                                                                                          "smc_return": 225}
    assert info["trace_dat"]["version"] == 6 and info["trace_dat"]["records_per_cpu"] == {"0": 367, "1": 86}
    table = CliRunner().invoke(cli, ["parse", "--summary", str(V6)]).stdout
    assert (f"{V6}: trace-cmd file version 6, not compressed, 2 CPUs (cpu0 367 records, cpu1 86), clock local, "
            "page size 4096, recorded on Linux (none) 6.1.0-56-arm64 aarch64") in table


def flows(path: Path) -> list[dict]:
    result = CliRunner().invoke(cli, ["analyze", str(path), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    for flow in out:
        flow.pop("file"), flow.pop("capture", None)
    return out


def test_analyze_and_check_give_what_the_report_gives(v6_file):
    binary, text = flows(v6_file), flows(REPORT_T)
    assert binary == text and len(binary) == 20  # 20 calls (traces/qemu README: 5 + 15 yielding calls)
    for path in (v6_file, REPORT_T):
        result = CliRunner().invoke(cli, ["check", str(path), "--format", "json"])
        assert result.exit_code == 0 and json.loads(result.stdout)["summary"]["by_severity"] == {}


# --- trace-cmd itself, where it is installed ------------------------------------------------------


@pytest.mark.skipif(TRACE_CMD is None, reason="trace-cmd is not installed")
@pytest.mark.parametrize(("version", "compression"), [(6, "none"), (7, "none"), (7, "zstd")])
def test_trace_cmd_reads_the_rewritten_files(version, compression, v6_file, tmp_path):
    if compression == "zstd":
        pytest.importorskip("zstandard")
    out = rewrite(v6_file, tmp_path / "out.dat", version, compression)
    report = subprocess.run([TRACE_CMD, "report", "-t", "-i", str(out)], capture_output=True, text=True, check=True)
    assert report.stdout == lzma.open(REPORT_T, "rt").read()


@pytest.mark.skipif(TRACE_CMD is None, reason="trace-cmd is not installed")
def test_trace_cmd_convert_to_version_6(tmp_path):
    pytest.importorskip("zstandard")
    out = tmp_path / "v6.dat"
    subprocess.run([TRACE_CMD, "convert", "-i", str(REAL), "-o", str(out), "--file-version", "6"],
                   capture_output=True, check=True)
    assert same(read(out)[0]) == same(read(REAL)[0])
