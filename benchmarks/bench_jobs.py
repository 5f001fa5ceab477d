"""Many captures at once: the wall time of ``--jobs 1`` and ``--jobs 2`` in the same run, and their ratio.

Generates the trace of bench_parse.py (``--lines``, default 100,000: ~20% optee events among sched,
irq and timer events, 13 MB) and gives it ``--files`` names (default 32; hard links: the same
content, each a capture of its own), then runs, each as its own process (``python -m smcwire …``,
start-up included, output to a file), ``check FILE… --format json`` and ``analyze FILE… --format
jsonl`` with ``--jobs 1`` and ``--jobs 2``, and checks that both print the same bytes. The baseline
in the same run: two ``--jobs 1`` processes at once, each on half the files (what splitting the list
by hand gives, the machine's own parallel speed-up). Each figure is the fastest of ``--runs`` runs,
as timeit does: other processes on the machine only ever add time; the commands run alternately.

``--jobs 1`` is not one core: it reads each file of 4 MB or more in a forked child process while it
tracks flows (``sources/prefetch.py``); worker processes read their captures themselves.

    python benchmarks/bench_jobs.py [--files 32] [--lines 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_parse import generate  # noqa: E402


def timed(*argvs: list[str], out: Path) -> float:
    """Wall seconds of processes run at once; their stdout to ``out``, one after the other's."""
    parts = [out.with_suffix(f".part{i}") for i in range(len(argvs))]
    with ExitStack() as files:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(argv, stdout=files.enter_context(part.open("wb")), stderr=subprocess.DEVNULL)
                 for argv, part in zip(argvs, parts, strict=True)]
        statuses = [p.wait() for p in procs]
        seconds = time.perf_counter() - t0
    if any(status not in (0, 1) for status in statuses):  # 1: findings
        raise SystemExit(f"{' '.join(argvs[0][:4])} … failed with status {statuses}")
    out.write_bytes(b"".join(part.read_bytes() for part in parts))
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=32, help="captures (default 32)")
    ap.add_argument("--lines", type=int, default=100_000, help="lines per capture (default 100,000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each command; the fastest counts (default 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "trace-00.txt"
        generate(first, args.lines)
        files = [str(first)]
        for i in range(1, args.files):
            files.append(str(Path(tmp) / f"trace-{i:02d}.txt"))
            os.link(first, files[-1])
        print(f"{args.files} captures of {args.lines:,} lines ({first.stat().st_size / 1e6:.0f} MB each), "
              f"{len(os.sched_getaffinity(0))} usable cores, load average {os.getloadavg()[0]:.2f} at the start")
        total = args.files * args.lines
        half = len(files) // 2
        for mode, fmt in (("check", "json"), ("analyze", "jsonl")):
            command = [sys.executable, "-m", "smcwire", mode, "--format", fmt]
            runs = {  # name: the processes run at once
                "--jobs 1": [[*command, "--jobs", "1", *files]],
                "--jobs 2": [[*command, "--jobs", "2", *files]],
                "2 x --jobs 1": [[*command, "--jobs", "1", *part] for part in (files[:half], files[half:])],
            }
            outs = {name: Path(tmp) / f"{mode}-{i}.out" for i, name in enumerate(runs)}
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.runs):  # alternately: a load that comes and goes weighs on all alike
                for name, argvs in runs.items():
                    times[name].append(timed(*argvs, out=outs[name]))
            best = {name: min(t) for name, t in times.items()}
            print(f"{mode} --format {fmt}, fastest of {args.runs} runs:")
            for name, seconds in best.items():
                note = "  (each on half the files, at once)" if name.startswith("2 x") else ""
                print(f"  {name:13} {seconds:6.2f} s  {total / seconds:11,.0f} lines/s  "
                      f"{best['--jobs 1'] / seconds:.2f}x{note}")
            same = outs["--jobs 1"].read_bytes() == outs["--jobs 2"].read_bytes()
            print(f"  --jobs 1 and --jobs 2: {'the same output' if same else 'OUTPUTS DIFFER'}")


if __name__ == "__main__":
    main()
