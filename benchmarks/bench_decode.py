"""Register sets decoded per second on a realistic mix, against a baseline in the same run.

The mix is the call/return pairs of the shipped real kretprobe capture (OP-TEE 4.10, Linux 6.1:
yielding calls with their RPC round trips, fast calls, async notifications), repeated to the
requested count. Each pair is two decodes: the call and the return answering it. The decoder
remembers whole decodes by register values (a real trace repeats a few hundred register sets), so
the repeated mix mostly hits that memo; the same mix is also timed with every set decoded anew
(the decoder's memo bypassed), the cost of a trace whose register sets never repeat.

Baseline, timed in the same run: the Construct parse of the same call registers with the
function's layout (what a decoder that re-ran Construct per call would cost). The figure of
merit is smcwire's register sets per second; the ratio to the baseline shows the fast path's
gain on this machine, whatever its speed.

    python benchmarks/bench_decode.py [--sets 1000000]
"""

from __future__ import annotations

import argparse
import lzma
import re
import time
from pathlib import Path

from smcwire.abi.regs import pack
from smcwire.codec.decode import decoder

TRACE = Path(__file__).parent.parent / "traces/qemu-dbg-kretprobe/ftrace.txt.xz"
_LINE = re.compile(r"-\d+\s+\[\d+\].*?(optee_smccc_smc(?:_ret)?): (.*)$")
_REG = re.compile(r"\b([ar]\d)=0x([0-9a-f]+)")


def real_mix() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    pairs, call = [], None
    for line in lzma.open(TRACE, "rt"):
        m = _LINE.search(line)
        if not m:
            continue
        regs = dict(_REG.findall(m.group(2)))
        if m.group(1) == "optee_smccc_smc":
            call = tuple(int(regs[f"a{i}"], 16) for i in range(8))
        elif call is not None:
            pairs.append((call, tuple(int(regs[f"r{i}"], 16) for i in range(4))))
            call = None
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", type=int, default=1_000_000, help="register sets to decode (default 1e6)")
    args = ap.parse_args()
    mix = real_mix()
    pairs = (mix * (args.sets // (2 * len(mix)) + 1))[: args.sets // 2]
    d = decoder("mainline")

    t0 = time.perf_counter()
    for call_regs, ret_regs in pairs:
        d.ret(d.call(call_regs), ret_regs)
    fast = time.perf_counter() - t0
    rate = 2 * len(pairs) / fast
    t0 = time.perf_counter()
    for call_regs, ret_regs in pairs:
        d._ret(d._call(call_regs, None), ret_regs)  # the memo bypassed: every set decoded anew
    cold_rate = 2 * len(pairs) / (time.perf_counter() - t0)

    sample = pairs[: max(1, len(pairs) // 50)]
    layouts = [(d.call(c).layout.struct, pack(c)) for c, _ in sample]
    t0 = time.perf_counter()
    for struct, data in layouts:
        struct.parse(data)
    base_rate = len(layouts) / (time.perf_counter() - t0)

    print(f"mix: {len(mix)} real call/return pairs from {TRACE.name}, {2 * len(pairs):,} register sets")
    print(f"smcwire decode:       {rate:12,.0f} register sets/s  ({fast:.2f} s; repeated sets come from the memo)")
    print(f"  every set anew:     {cold_rate:12,.0f} register sets/s  (the memo bypassed)")
    print(f"construct parse only: {base_rate:12,.0f} register sets/s  (baseline, calls only)")
    print(f"ratio: {rate / base_rate:.1f}x the baseline ({cold_rate / base_rate:.1f}x with every set anew); "
          f"target 500,000/s: {'met' if min(rate, cold_rate) >= 500_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
