"""Trace lines parsed per second on a generated ftrace file, against two baselines in the same run.

The file is the kernel's ``trace`` text (formats.md §1.1-§1.2, 5 irq-info flags, new pid width):
20% ``optee_invoke_fn_begin``/``_end`` pairs with hashed ``param=`` pointers among sched_switch,
sched_wakeup, irq_handler_entry/exit and hrtimer lines, as a busy board records them. Values repeat
as in the real captures (dbg-xtest: 53,970 optee events, 110 distinct value lists, 663 ``param=``
values): per task a few stack addresses, message buffers from a pool, RPC returns and re-entries.

Measured in the same run, on the same file:
- smcwire: ``TraceReader`` over the file (format detection, line accounting, events produced),
  in a child process so that its peak RSS is its own;
- ``grep -c optee_invoke_fn`` (counts lines, parses nothing: the floor of any text tool);
- a plain line-by-line Python parser: one regex match per line, a tuple per optee event.

smcwire and grep report the fastest of ``--runs`` runs, as timeit does: other processes on the
machine only ever add time.

    python benchmarks/bench_parse.py [--lines 1000000] [--runs 3] [--gb]

``--gb`` also parses a ~1 GB file built by repeating the generated one (streamed to disk) and
reports its peak RSS, which must stay under 100 MB: parsing streams.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TARGET_RATE = 1_000_000  # lines/s
TARGET_RSS_MB = 100

HEADER = """\
# tracer: nop
#
# entries-in-buffer/entries-written: {n}/{n}   #P:4
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""
TASKS = [("xtest", 412), ("tee-supplicant", 301), ("kworker/1:2", 57), ("irq/17-optee_no", 100),
         ("<idle>", 0), ("rcu_sched", 14), ("ksoftirqd/0", 12), ("systemd-journal", 188)]
OPTEE_TASKS = TASKS[:4]
PARAMS = {pid: [f"00000000{random.Random(pid * 8 + i).getrandbits(32):08x}" for i in range(8)]
          for _, pid in OPTEE_TASKS}
CALLS = ([f"32000013, ffff5bf3, {0x46328000 + 0x180 * i:x}, {0x180 * (i % 4):x}, 0, 0, 0, 0" for i in range(40)]
         + [f"32000012, 0, {0x4632c000 + 0x1000 * i:x}, 0, 0, 0, 0, 0" for i in range(20)])
ETHREAD_LIMIT = "1, e597b220, 8000000100, 0"


def _chain(rng: random.Random) -> list[tuple[str, str]]:
    """The (begin args, end values) pairs of one yielding call as Linux and OP-TEE exchange them
    (abi.md §4): the call, RPC round trips on one OP-TEE thread resumed with its a3, the result;
    now and then refused with ETHREAD_LIMIT first and retried with the same arguments."""
    call, thread = rng.choice(CALLS), rng.randrange(2)
    pairs = [(call, ETHREAD_LIMIT)] * (rng.random() < 0.05)
    args = call
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        pairs.append((args, f"{rng.choice(('ffff0004', 'ffff0005'))}, 0, 0, {thread:x}"))
        args = f"32000003, 0, 0, {thread:x}, 0, 0, 0, 0"
    pairs.append((args, "0, 0, 0, 0"))
    return pairs


def _line(rng: random.Random, ts: int, comm: str, pid: int, event: str, body: str) -> str:
    """One event line exactly as trace_print_context() prints it (formats.md §1.2)."""
    flags = rng.choice(("d..2.", ".....", "dNh1.", "..s1.", "d.h3."))
    return f"{comm:>16}-{pid:<7d} [{rng.randrange(4):03d}] {flags} {ts // 10**6:5d}.{ts % 10**6:06d}: {event}: {body}\n"


def _other(rng: random.Random, ts: int) -> str:
    comm, pid = rng.choice(TASKS)
    kind = rng.randrange(6)
    if kind == 0:
        nxt, npid = rng.choice(TASKS)
        body = (f"prev_comm={comm} prev_pid={pid} prev_prio=120 prev_state=S ==> "
                f"next_comm={nxt} next_pid={npid} next_prio=120")
        return _line(rng, ts, comm, pid, "sched_switch", body)
    if kind == 1:
        wc, wpid = rng.choice(TASKS)
        body = f"comm={wc} pid={wpid} prio=120 target_cpu=00{rng.randrange(4)}"
        return _line(rng, ts, comm, pid, "sched_wakeup", body)
    if kind == 2:
        return _line(rng, ts, comm, pid, "irq_handler_entry", "irq=11 name=arch_timer")
    if kind == 3:
        return _line(rng, ts, comm, pid, "irq_handler_exit", "irq=11 ret=handled")
    if kind == 4:
        body = (f"hrtimer={rng.getrandbits(32):016x} function=tick_nohz_handler expires={ts * 1000} "
                f"softexpires={ts * 1000} mode=ABS|PINNED|HARD")
        return _line(rng, ts, comm, pid, "hrtimer_start", body)
    body = f"hrtimer={rng.getrandbits(32):016x} now={ts * 1000 + 17} function=tick_nohz_handler/0x0"
    return _line(rng, ts, comm, pid, "hrtimer_expire_entry", body)


def generate(path: Path, lines: int) -> int:
    """Write the trace; return the number of optee event lines in it."""
    rng = random.Random(1)
    ts, optee, written = 1_000_000, 0, 0
    chains: dict[int, tuple[str, list[tuple[str, str]]]] = {}  # pid -> its call in progress
    with path.open("w") as f:
        f.write(HEADER.format(n=lines - HEADER.count("\n")))
        written = HEADER.count("\n")
        while written < lines:
            ts += rng.randrange(1, 40)
            if rng.random() < 1 / 9 and written + 2 <= lines:  # a begin/end pair: 2 lines of 10
                comm, pid = rng.choice(OPTEE_TASKS)
                if not chains.get(pid, ("", []))[1]:
                    chains[pid] = (rng.choice(PARAMS[pid]), _chain(rng))
                param, pairs = chains[pid]
                args, values = pairs.pop(0)
                f.write(_line(rng, ts, comm, pid, "optee_invoke_fn_begin", f"param={param} ({args})"))
                ts += rng.randrange(5, 900)
                f.write(_line(rng, ts, comm, pid, "optee_invoke_fn_end", f"param={param} ret ({values})"))
                optee, written = optee + 2, written + 2
            else:
                f.write(_other(rng, ts))
                written += 1
    return optee


def repeat_to(src: Path, dst: Path, size: int) -> None:
    """``dst``: ``src`` repeated until it is at least ``size`` bytes, copied in chunks."""
    with dst.open("wb") as out:
        while out.tell() < size:
            with src.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)


def child(path: str) -> None:
    """Run in a fresh interpreter: parse with smcwire, print time, counts and peak RSS as JSON. The
    input families are imported before the clock starts (a one-off ~40 ms, not a per-line cost)."""
    from smcwire.sources.formats import parsers
    from smcwire.sources.reader import TraceReader

    parsers()
    t0 = time.perf_counter()
    reader = TraceReader.from_names([path])
    events = sum(1 for _ in reader)
    seconds = time.perf_counter() - t0
    st = reader.stats[0]
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "events": events, "lines": st.lines, "format": st.format,
                      "foreign": st.foreign, "malformed": st.malformed, "error": st.error, "rss_mb": rss_kb / 1024}))


def smcwire_parse(path: Path, runs: int) -> dict[str, float]:
    """The fastest of ``runs`` parses, each in a fresh child process."""
    results = []
    for _ in range(runs):
        cmd = [sys.executable, __file__, "--child", str(path)]
        results.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    return min(results, key=lambda r: r["seconds"])


def grep_count(path: Path, runs: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(["grep", "-c", "optee_invoke_fn", str(path)], check=False, capture_output=True, text=True)
        best, count = min(best, time.perf_counter() - t0), int(out.stdout)
    return best, count


_PLAIN = re.compile(r"\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+(\d+)\.(\d+): (optee_invoke_fn_\w+): "
                    r"param=(\S+) (?:ret )?\(([^)]*)\)")


def plain_events(path: Path, prefilter: bool = False) -> Iterator[tuple[object, ...]]:
    """The straightforward parser: a regex match per line (or, with ``prefilter``, per line that
    names an optee event), a tuple per optee event. It reads only the optee tracepoints of this
    one layout, accounts for no line and reports nothing malformed."""
    with path.open() as f:
        for line in f:
            if prefilter and "optee_invoke_fn" not in line:
                continue
            m = _PLAIN.match(line)
            if m:
                comm, pid, cpu, secs, usecs, event, param, values = m.groups()
                regs = tuple(int(v, 16) for v in values.split(", "))
                yield comm, int(pid), int(cpu), int(secs) * 10**9 + int(usecs) * 1000, event, param, regs


def plain_parse(path: Path, prefilter: bool = False) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = sum(1 for _ in plain_events(path, prefilter))
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines in the generated trace (default 1e6)")
    ap.add_argument("--runs", type=int, default=3, help="smcwire and grep: report the fastest of N runs (default 3)")
    ap.add_argument("--gb", action="store_true", help="also parse a ~1 GB file and report its peak RSS")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="smcwire-bench-") as tmp:
        path = Path(tmp) / "trace.txt"
        optee = generate(path, args.lines)
        size_mb = path.stat().st_size / 2**20
        ours = smcwire_parse(path, args.runs)
        grep_s, grep_n = grep_count(path, args.runs)
        plain_s, plain_n = plain_parse(path)
        fast_s, fast_n = plain_parse(path, prefilter=True)
        rate = ours["lines"] / ours["seconds"]
        assert ours["events"] == optee == grep_n == plain_n == fast_n, (ours, optee, grep_n, plain_n, fast_n)
        print(f"trace: {ours['lines']:,} lines, {size_mb:.0f} MB, {optee:,} optee events "
              f"({100 * optee / ours['lines']:.0f}%), read as {ours['format']}")
        print(f"smcwire       {ours['seconds']:6.3f} s  {rate:12,.0f} lines/s  "
              f"{ours['events']:,} events  peak RSS {ours['rss_mb']:.0f} MB")
        print(f"grep -c       {grep_s:6.3f} s  {ours['lines'] / grep_s:12,.0f} lines/s  "
              f"smcwire/grep time ratio {ours['seconds'] / grep_s:.1f}")
        print(f"plain regex   {plain_s:6.3f} s  {ours['lines'] / plain_s:12,.0f} lines/s  "
              f"smcwire speedup {plain_s / ours['seconds']:.2f}x")
        print(f"prefiltered   {fast_s:6.3f} s  {ours['lines'] / fast_s:12,.0f} lines/s  "
              f"smcwire speedup {fast_s / ours['seconds']:.2f}x (a substring test, then the regex)")
        ok = rate >= TARGET_RATE
        print(f"target {TARGET_RATE:,} lines/s: {'met' if ok else 'MISSED'}")
        if args.gb:
            big = Path(tmp) / "trace-1g.txt"
            repeat_to(path, big, 1 << 30)
            path.unlink()
            r = smcwire_parse(big, 1)
            rss_ok = r["rss_mb"] < TARGET_RSS_MB
            print(f"1 GB: {big.stat().st_size / 2**30:.2f} GiB, {r['lines']:,} lines, {r['events']:,} events in "
                  f"{r['seconds']:.1f} s ({r['lines'] / r['seconds']:,.0f} lines/s), peak RSS {r['rss_mb']:.0f} MB: "
                  f"{'under' if rss_ok else 'OVER'} {TARGET_RSS_MB} MB")
            ok = ok and rss_ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
