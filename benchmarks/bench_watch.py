"""`smcwire watch` on an endless pipe: memory stays flat over an hour's worth of SMC traffic.

Generates the trace mix of bench_parse.py (20% optee events, consistent RPC chains, time always
going forward) with ``--hours`` × 3,600,000 optee events (a busy board: 1,000 SMCs a second),
feeds it through a named pipe to ``smcwire watch FIFO --format jsonl`` (output to /dev/null) as
``trace_pipe`` would, samples the watcher's resident memory (VmRSS) every half second, and
stops it with Ctrl-C once the pipe is drained. Prints the RSS at each tenth of the run.

    python benchmarks/bench_watch.py [--hours 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_parse import generate  # noqa: E402

EVENTS_PER_HOUR = 3_600_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=1.0, help="hours of SMC traffic at 1,000 SMCs/s (default 1)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.txt"
        lines = int(args.hours * EVENTS_PER_HOUR * 5)  # one line in five is an optee event
        t0 = time.perf_counter()
        events = generate(trace, lines)
        print(f"generated {lines:,} lines, {events:,} optee events in {time.perf_counter() - t0:.0f} s")
        fifo = Path(tmp) / "trace_pipe"
        os.mkfifo(fifo)
        watch = subprocess.Popen([sys.executable, "-m", "smcwire", "watch", str(fifo), "--format", "jsonl"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        done = threading.Event()

        def feed() -> None:
            with fifo.open("wb") as pipe, trace.open("rb") as src:
                while chunk := src.read(1 << 20):
                    pipe.write(chunk)
                done.set()
                watch.wait()  # the writer stays open, as trace_pipe does: watch sees no end of file

        feeder = threading.Thread(target=feed, daemon=True)
        t0 = time.perf_counter()
        feeder.start()
        samples: list[tuple[float, float]] = []
        while not done.is_set():
            samples.append((time.perf_counter() - t0, rss_mb(watch.pid)))
            time.sleep(0.5)
        time.sleep(1.0)  # what is still in the pipe's buffer
        samples.append((time.perf_counter() - t0, rss_mb(watch.pid)))
        watch.send_signal(signal.SIGINT)
        summary = watch.communicate(timeout=120)[1]
        seconds = samples[-1][0]
        print(f"watch read {lines:,} lines in {seconds:.1f} s ({lines / seconds:,.0f} lines/s), "
              f"exit {watch.returncode}")
        for i in range(1, 11):
            at, rss = samples[max(0, i * len(samples) // 10 - 1)]
            print(f"  {i * 10:3d}% of the run ({at:6.1f} s): RSS {rss:5.1f} MB")
        print(f"  peak RSS {max(r for _, r in samples):.1f} MB")
        print("\n".join(summary.splitlines()[:3]))


if __name__ == "__main__":
    main()
