"""Hostile inputs: memory stays bounded and time grows linearly.

Runs ``smcwire check FILE --format json`` (each in its own process; peak RSS its own) on:
- a 10 MB line among real trace lines (cut and reported malformed, never held whole);
- one real optee line repeated to ``--gb`` GB (default 1);
- 100 MB of random bytes;
- the generated trace of bench_parse.py at 1e5, 1e6 and 1e7 lines, to show time per line does
  not grow with the trace (no quadratic behaviour).

    python benchmarks/bench_hostile.py [--gb 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_analyze import timed  # noqa: E402
from bench_parse import generate, repeat_to  # noqa: E402

LINE = (b"  tee-supplicant-301     [001] d.h3.     1.000353: optee_invoke_fn_begin: param=000000008c74098e "
        b"(32000013, ffff5bf3, 46328f00, 300, 0, 0, 0, 0)\n")


def write_repeated(path: Path, line: bytes, size: int) -> None:
    block = line * ((1 << 20) // len(line) + 1)
    with path.open("wb") as out:
        while out.tell() < size:
            out.write(block)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0, help="size of the repeated-line file (default 1 GB)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases: list[tuple[str, Path]] = []
        long_line = Path(tmp) / "long-line.txt"
        long_line.write_bytes(LINE * 10 + b"x" * (10 << 20) + b"\n" + LINE * 10)
        cases.append(("a 10 MB line", long_line))
        repeated = Path(tmp) / "repeated.txt"
        write_repeated(repeated, LINE, int(args.gb * (1 << 30)))
        cases.append((f"one line repeated to {args.gb:g} GB", repeated))
        noise = Path(tmp) / "random.bin"
        with noise.open("wb") as out:
            for _ in range(100):
                out.write(os.urandom(1 << 20))
        cases.append(("100 MB of random bytes", noise))
        small = Path(tmp) / "trace-1e5.txt"
        generate(small, 100_000)
        mid = Path(tmp) / "trace-1e6.txt"
        generate(mid, 1_000_000)
        big = Path(tmp) / "trace-1e7.txt"
        repeat_to(mid, big, mid.stat().st_size * 10)
        cases += [("generated trace, 1e5 lines", small), ("generated trace, 1e6 lines", mid),
                  ("generated trace, 1e7 lines", big)]
        print(f"{'input':34} {'size':>9} {'seconds':>8} {'MB/s':>7} {'peak RSS':>9}")
        for label, path in cases:
            size = path.stat().st_size
            seconds, rss, _ = timed([sys.executable, "-m", "smcwire", "check", str(path), "--format", "json"])
            print(f"{label:34} {size / 1e6:7.1f}MB {seconds:8.2f} {size / 1e6 / seconds:7.1f} {rss:7.0f}MB")


if __name__ == "__main__":
    main()
