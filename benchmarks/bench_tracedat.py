"""Reading a large trace.dat against reading the same trace as ``trace-cmd report`` text, in one run.

The trace is generated as bench_parse.py generates its text: 20% ``optee_invoke_fn_begin``/``_end``
pairs (call chains with RPC round trips and ETHREAD_LIMIT retries, repeating ``param=`` pointers)
among sched_switch, sched_wakeup, irq_handler_entry/exit, hrtimer_start and hrtimer_expire_entry
records on 4 CPUs. The records are packed into ring-buffer pages by the test writer
(``smcwire.sources.tracedat.writer``) with the event formats of the shipped real files: the optee
tracepoints of Linux 6.1 (tests/data/tracedat/trace-cmd-small-v6.dat.xz) and the sched, irq and
timer events of Linux 6.18 (smcreplay-uprobe-v6.dat.xz, the optee IDs moved past theirs), into a
version 7 file (zstd, as trace-cmd writes it, when the zstandard module is installed, else zlib).
The text is what ``trace-cmd report`` prints for that file when trace-cmd is installed (Debian's
reads no zlib), else this script's rendering of the same report layout (``--text rendered``: the
events' print formats, without libtraceevent's plugins).

Both are read by ``TraceReader`` in fresh child processes (fastest of ``--runs``, peak RSS of
each), and must give the same number of lines and SMC events. Reported: records (lines) and SMC
events per second for each, and the binary/text speed ratio.

    python benchmarks/bench_tracedat.py [--records 1000000] [--runs 3] [--compression zlib|zstd|none]
                                        [--text trace-cmd|rendered]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).parent))
from bench_parse import child as read_and_report  # noqa: E402

if TYPE_CHECKING:
    from smcwire.sources.tracedat.file import TraceDat
    from smcwire.sources.tracedat.formats import EventFormat
    from smcwire.sources.tracedat.writer import Metadata

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests/data/tracedat"
CPUS = 4
TASKS = [("xtest", 412), ("tee-supplicant", 301), ("kworker/1:2", 57), ("irq/17-optee_no", 100),
         ("<idle>", 0), ("rcu_sched", 14), ("ksoftirqd/0", 12), ("systemd-journal", 188)]
OPTEE_TASKS = TASKS[:4]
PARAMS = {pid: [0xFFFF800008000000 + random.Random(pid * 8 + i).getrandbits(20) * 16 for i in range(8)]
          for _, pid in OPTEE_TASKS}
CALLS = ([(0x32000013, 0xFFFF5BF3, 0x46328000 + 0x180 * i, 0x180 * (i % 4), 0, 0, 0, 0) for i in range(40)]
         + [(0x32000012, 0, 0x4632C000 + 0x1000 * i, 0, 0, 0, 0, 0) for i in range(20)])
ETHREAD_LIMIT = (1, 0xE597B220, 0x8000000100, 0)
OTHERS = ("sched_switch", "sched_wakeup", "irq_handler_entry", "irq_handler_exit", "hrtimer_start",
          "hrtimer_expire_entry")


def _open_dat(path: Path) -> TraceDat:
    from smcwire.sources.tracedat.file import TraceDat

    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - read while the TraceDat is used
    with lzma.open(path) as f:
        shutil.copyfileobj(f, tmp)
    size = tmp.tell()
    return TraceDat(tmp, size)


def metadata() -> tuple[Metadata, dict[str, EventFormat]]:
    """The header texts and optee formats of the Linux 6.1 file, the other events' formats of the
    Linux 6.18 file, as one Metadata; and each event's format by name."""
    from smcwire.sources.tracedat.formats import parse_event_format
    from smcwire.sources.tracedat.schema import OptionId
    from smcwire.sources.tracedat.writer import metadata_of

    optee = _open_dat(DATA / "trace-cmd-small-v6.dat.xz")
    host = _open_dat(DATA / "smcreplay-uprobe-v6.dat.xz")
    meta = metadata_of(optee)
    chosen: dict[str, list[bytes]] = {}
    formats = {}
    for system in host.metadata(OptionId.EVENT_FORMATS):
        for text in system.formats:
            fmt = parse_event_format(system.system, text.decode())
            if fmt.name in OTHERS:
                chosen.setdefault(system.system, []).append(text)
                formats[fmt.name] = fmt
    next_id = max(host.formats) + 1
    for _, texts in meta.event_systems:
        for i, text in enumerate(texts):
            fmt = parse_event_format("optee", text.decode())
            text = text.replace(f"ID: {fmt.id}\n".encode(), f"ID: {next_id + i}\n".encode())
            texts[i] = text
            formats[fmt.name] = parse_event_format("optee", text.decode())
    cmdlines = "".join(f"{pid} {comm}\n" for comm, pid in TASKS if pid).encode()
    systems = [*meta.event_systems, *chosen.items()]
    return meta._replace(event_systems=systems, ftrace_events=[], kallsyms=b"", printk=b"", cmdlines=cmdlines,
                         uname="Linux bench 6.1.0 aarch64", version="smcwire bench"), formats


def _packer(fmt: EventFormat) -> Callable[[dict], bytes]:
    """values (by field name, strings for char arrays and __data_loc) -> record bytes."""
    codes, names, at, dynamic = ["<"], [], 0, None
    for f in sorted(fmt.fields, key=lambda f: f.offset):
        if f.offset > at:
            codes.append(f"{f.offset - at}x")
        if f.type.startswith("__data_loc"):
            codes.append("I")
            dynamic = f.name
        elif f.array and f.type.startswith("char"):
            codes.append(f"{f.size}s")
        else:
            size = f.element_size
            code = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
            codes.append(f"{f.array or ''}{code.lower() if f.signed else code}")
        names.append(f)
        at = f.offset + f.size
    fixed = struct.Struct("".join(codes))

    def pack(values: dict) -> bytes:
        out = []
        for f in names:
            v = values.get(f.name, 0)
            if f.name == dynamic:
                out.append((len(v) + 1) << 16 | fixed.size)
            elif f.array and not f.type.startswith("char"):
                out.extend(v)
            elif isinstance(v, str):
                out.append(v.encode())
            else:
                out.append(v)
        tail = (values[dynamic].encode() + b"\0") if dynamic else b""
        return fixed.pack(*out) + tail

    return pack


def _chain(rng: random.Random) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    call, thread = rng.choice(CALLS), rng.randrange(2)
    pairs = [(call, ETHREAD_LIMIT)] * (rng.random() < 0.05)
    args = call
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        pairs.append((args, (rng.choice((0xFFFF0004, 0xFFFF0005)), 0, 0, thread)))
        args = (0x32000003, 0, 0, thread, 0, 0, 0, 0)
    pairs.append((args, (0, 0, 0, 0)))
    return pairs


def _body(name: str, v: dict) -> str:
    """The event's text in the report (its print fmt, without libtraceevent's plugins)."""
    if name == "optee_invoke_fn_begin":
        return f"param={v['param']:#x} ({', '.join(f'{x:x}' for x in v['args'])})"
    if name == "optee_invoke_fn_end":
        return f"param={v['param']:#x} ret ({', '.join(f'{x:x}' for x in v['rets'])})"
    if name == "sched_switch":
        return (f"prev_comm={v['prev_comm']} prev_pid={v['prev_pid']} prev_prio=120 prev_state=S ==> "
                f"next_comm={v['next_comm']} next_pid={v['next_pid']} next_prio=120")
    if name == "sched_wakeup":
        return f"comm={v['comm']} pid={v['pid']} prio=120 target_cpu={v['target_cpu']:03d}"
    if name == "irq_handler_entry":
        return "irq=11 name=arch_timer"
    if name == "irq_handler_exit":
        return "irq=11 ret=handled"
    if name == "hrtimer_start":
        return (f"hrtimer={v['hrtimer']:#x} function={v['function']:#x} expires={v['expires']} "
                f"softexpires={v['softexpires']} mode=ABS|PINNED|HARD was_armed=0")
    return f"hrtimer={v['hrtimer']:#x} function={v['function']:#x} now={v['now']}"


def generate(dat_path: Path, text_path: Path | None, records: int, compression: str) -> int:
    """Write the trace.dat (and, for ``text_path``, the rendered report); return the SMC events."""
    from smcwire.sources.tracedat.formats import parse_fields, parse_header_event
    from smcwire.sources.tracedat.writer import PageWriter, write

    meta, formats = metadata()
    header_page, header_event = parse_fields(meta.header_page.decode()), parse_header_event(meta.header_event.decode())
    writers = [PageWriter(header_page, header_event, False, meta.page_size) for _ in range(CPUS)]
    packers = {name: _packer(fmt) for name, fmt in formats.items()}
    ids = {name: fmt.id for name, fmt in formats.items()}
    rng = random.Random(1)
    ts, smcs, written = 1_000_000_000, 0, 0
    chains: dict[int, tuple[int, list]] = {}
    text = text_path.open("w") if text_path is not None else None
    if text is not None:
        text.write(f"cpus={CPUS}\n")

    def emit(cpu: int, comm: str, pid: int, name: str, values: dict) -> None:
        values["common_type"], values["common_pid"] = ids[name], pid
        writers[cpu].add(ts, packers[name](values))
        if text is not None:
            pad = " " * max(20 - len(name), 0)
            text.write(f"{comm:>16}-{pid:<5d} [{cpu:03d}] {ts // 10**9:5d}.{(ts + 500) // 1000 % 10**6:06d}: "
                       f"{name}: {pad}{_body(name, values)}\n")

    while written < records:
        ts += rng.randrange(1000, 40000)
        cpu = rng.randrange(CPUS)
        if rng.random() < 1 / 9 and written + 2 <= records:
            comm, pid = rng.choice(OPTEE_TASKS)
            if not chains.get(pid, (0, []))[1]:
                chains[pid] = (rng.choice(PARAMS[pid]), _chain(rng))
            param, pairs = chains[pid]
            args, rets = pairs.pop(0)
            emit(cpu, comm, pid, "optee_invoke_fn_begin", {"param": param, "args": args})
            ts += rng.randrange(5000, 900000)
            emit(cpu, comm, pid, "optee_invoke_fn_end", {"param": param, "rets": rets})
            smcs, written = smcs + 2, written + 2
            continue
        comm, pid = rng.choice(TASKS)
        name = OTHERS[rng.randrange(len(OTHERS))]
        other, opid = rng.choice(TASKS)
        values = {"prev_comm": comm, "prev_pid": pid, "prev_prio": 120, "prev_state": 1, "next_comm": other,
                  "next_pid": opid, "next_prio": 120, "comm": other, "pid": opid, "prio": 120,
                  "target_cpu": rng.randrange(CPUS), "irq": 11, "name": "arch_timer", "ret": 1,
                  "hrtimer": 0xFFFF000012340000 + rng.getrandbits(16) * 64, "function": 0xFFFF800008123450,
                  "expires": ts + 4_000_000, "softexpires": ts + 4_000_000, "mode": 10, "now": ts + 17}
        emit(cpu, comm, pid, name, values)
        written += 1
    if text is not None:
        text.close()
    with dat_path.open("wb") as out:
        write(out, meta, [w.finish() for w in writers], 7, compression)
    return smcs


def child(path: str) -> None:
    """In a fresh interpreter: bench_parse's reading measurement, with Construct and the trace.dat
    reader imported before the clock starts, as the line parsers are."""
    from smcwire.sources.tracedat import reader  # noqa: F401

    read_and_report(path)


def measure(path: Path, runs: int) -> dict:
    results = []
    for _ in range(runs):
        cmd = [sys.executable, __file__, "--child", str(path)]
        results.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    return min(results, key=lambda r: r["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records in the trace (default 1e6)")
    ap.add_argument("--runs", type=int, default=3, help="report the fastest of N runs (default 3)")
    ap.add_argument("--compression", choices=("zlib", "zstd", "none"), default=None,
                    help="of the trace.dat's sections and CPU data (default zstd, as trace-cmd writes, when the "
                    "zstandard module is installed, else zlib)")
    ap.add_argument("--text", choices=("trace-cmd", "rendered"), default=None,
                    help="the text: `trace-cmd report` of the file (default when trace-cmd is installed and "
                    "reads the compression) or rendered here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        child(args.child)
        return
    if args.generate:  # in a child too, so that the readers' peak RSS is not the generator's
        dat, txt = args.generate
        print(generate(Path(dat), Path(txt) if txt != "-" else None, args.records, args.compression))
        return
    if args.compression is None:
        args.compression = "zstd" if importlib.util.find_spec("zstandard") else "zlib"
    source = args.text or ("trace-cmd" if shutil.which("trace-cmd") and args.compression != "zlib" else "rendered")
    with tempfile.TemporaryDirectory(prefix="smcwire-bench-") as tmp:
        dat, txt = Path(tmp) / "trace.dat", Path(tmp) / "report.txt"
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--records", str(args.records), "--compression", args.compression,
               "--generate", str(dat), str(txt) if source == "rendered" else "-"]
        smcs = int(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        if source == "trace-cmd":
            with txt.open("w") as out:
                subprocess.run(["trace-cmd", "report", "-i", str(dat)], stdout=out, stderr=subprocess.DEVNULL,
                               check=True)
        print(f"generated in {time.perf_counter() - t0:.1f} s: {args.records:,} records, {smcs:,} optee events; "
              f"trace.dat {dat.stat().st_size / 2**20:.1f} MB (version 7, {args.compression}), text "
              f"{txt.stat().st_size / 2**20:.1f} MB ({'trace-cmd report' if source == 'trace-cmd' else 'rendered'})")
        binary, text = measure(dat, args.runs), measure(txt, args.runs)
        assert binary["error"] is None and text["error"] is None, (binary, text)
        assert binary["events"] == text["events"] == smcs and binary["lines"] == text["lines"], (binary, text, smcs)
        for label, r in (("trace.dat", binary), ("report text", text)):
            print(f"{label:12} {r['seconds']:6.3f} s  {r['lines'] / r['seconds']:12,.0f} records/s  "
                  f"{r['events'] / r['seconds']:10,.0f} SMC events/s  peak RSS {r['rss_mb']:.0f} MB")
        ratio = text["seconds"] / binary["seconds"]
        print(f"trace.dat / text speed: {ratio:.2f}x per record and per SMC event "
              f"({'at least as fast' if ratio >= 1 else 'SLOWER'})")
    sys.exit(0 if ratio >= 1 else 1)


if __name__ == "__main__":
    main()
