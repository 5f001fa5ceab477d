"""End-to-end `smcwire analyze` and `smcwire check` speed and memory.

Generates the trace of bench_parse.py (1,000,000 lines, ~20% optee events among sched, irq and
timer events), runs in child processes (so each peak RSS is its own) the analysis the two
commands do (read → track flows → rules; `analyze` also renders every flow as JSON, as
`--format jsonl` does) and, in the same run, the reader alone as the baseline. With `--big` it
repeats the trace to 10,000,000 lines and shows both sizes side by side: peak RSS must not grow
with the trace.

    python benchmarks/bench_analyze.py [--lines 1000000] [--big]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_parse import generate, repeat_to  # noqa: E402

TARGET_RATE = 700_000


def child(mode: str, path: str) -> None:
    """Run one mode on ``path`` and print its figures as JSON (in a fresh process)."""
    from smcwire.abi.profiles import get_profile
    from smcwire.pipeline import Analysis, captures
    from smcwire.render.flows import flow_json
    from smcwire.sources.reader import TraceReader

    t0 = time.perf_counter()
    flows = findings = 0
    if mode == "read":
        reader = TraceReader.from_names([path])
        events = sum(1 for _ in reader)
        lines = reader.stats[0].lines
    else:
        analysis = Analysis(captures([path])[0], get_profile())
        for flow in analysis.flows():
            flows += 1
            if mode == "analyze":
                json.dumps(flow_json(flow))
        findings = len(analysis.findings)
        lines, events = analysis.files[0].lines, sum(analysis.files[0].events.values())
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"lines": lines, "events": events, "flows": flows, "findings": findings,
                      "seconds": seconds, "rss_mb": rss}))


def run(mode: str, path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines in the generated trace (default 1e6)")
    ap.add_argument("--big", action="store_true", help="also a 10x longer trace, to compare peak RSS")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.txt"
        generate(path, args.lines)
        sizes = [path]
        if args.big:
            big = Path(tmp) / "trace-10x.txt"
            repeat_to(path, big, path.stat().st_size * 10)
            sizes.append(big)
        ok = True
        for trace in sizes:
            base = run("read", trace)
            print(f"{trace.name}: {base['lines']:,} lines, {base['events']:,} events")
            print(f"  read only  {base['seconds']:7.2f} s  {base['lines'] / base['seconds']:11,.0f} lines/s  "
                  f"peak RSS {base['rss_mb']:.0f} MB  (baseline)")
            for mode in ("check", "analyze"):
                r = run(mode, trace)
                rate = r["lines"] / r["seconds"]
                ok &= rate >= TARGET_RATE
                print(f"  {mode:9}  {r['seconds']:7.2f} s  {rate:11,.0f} lines/s  peak RSS {r['rss_mb']:.0f} MB  "
                      f"{r['flows']:,} flows, {r['findings']:,} findings, "
                      f"{r['seconds'] / base['seconds']:.2f}x the read time")
        print(f"target {TARGET_RATE:,} lines/s end to end: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
