"""End-to-end `smcwire analyze` and `smcwire check` speed and memory, as a user runs them.

Generates the trace of bench_parse.py (1,000,000 lines, ~20% optee events among sched, irq and
timer events) and runs, each as its own process (``python -m smcwire …``, start-up included,
output to /dev/null), ``check FILE --format json`` and ``analyze FILE --format jsonl`` (every flow
rendered as JSON). In the same run, the reader alone (the lines read and parsed into events, no
analysis) is the baseline. Peak RSS is each process's own (with the children it waited for).
With ``--big`` it repeats the trace to 10,000,000 lines and shows both sizes side by side: peak
RSS must not grow with the trace. Each figure is the fastest of ``--runs`` runs, as timeit does:
other processes on the machine only ever add time.

    python benchmarks/bench_analyze.py [--lines 1000000] [--runs 3] [--big]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_parse import generate, repeat_to  # noqa: E402

TARGET_RATE = 700_000
READ_ONLY = ("import sys; from smcwire.sources.reader import TraceReader; r = TraceReader.from_names(sys.argv[1:]); "
             "print(sum(1 for _ in r), r.stats[0].lines)")


def timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout's first line of one process."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):  # 1: findings
            raise SystemExit(f"{' '.join(argv)} failed with status {proc.returncode}")
        out.seek(0)
        return seconds, usage.ru_maxrss / 1024, out.readline().decode()


def best(argv: list[str], runs: int) -> tuple[float, float, str]:
    results = [timed(argv) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results), results[0][2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines in the generated trace (default 1e6)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each command; the fastest counts (default 3)")
    ap.add_argument("--big", action="store_true", help="also a 10x longer trace, to compare peak RSS")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.txt"
        generate(path, args.lines)
        sizes = [path]
        if args.big:
            big = Path(tmp) / "trace-10x.txt"
            repeat_to(path, big, path.stat().st_size * 10)
            sizes.append(big)
        ok = True
        py = sys.executable
        for trace in sizes:
            runs = args.runs if trace is path else 1
            base, base_rss, counts = best([py, "-c", READ_ONLY, str(trace)], runs)
            events, lines = (int(x) for x in counts.split())
            print(f"{trace.name}: {lines:,} lines, {events:,} events")
            print(f"  read only  {base:7.2f} s  {lines / base:11,.0f} lines/s  peak RSS {base_rss:4.0f} MB  (baseline)")
            for mode, fmt in (("check", "json"), ("analyze", "jsonl")):
                seconds, rss, _ = best([py, "-m", "smcwire", mode, str(trace), "--format", fmt], runs)
                rate = lines / seconds
                ok &= rate >= TARGET_RATE
                print(f"  {mode:9}  {seconds:7.2f} s  {rate:11,.0f} lines/s  peak RSS {rss:4.0f} MB  "
                      f"{seconds / base:.2f}x the read time   (smcwire {mode} --format {fmt})")
        print(f"target {TARGET_RATE:,} lines/s end to end: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
