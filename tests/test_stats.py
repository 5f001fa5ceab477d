"""Statistics against values computed here, independently of the tracker, from the raw events:
yielding calls rebuilt from the optee tracepoints' param= keys, fast calls from the kprobe and
kretprobe pairs (per CPU, last in first out). Captures: tests/data/explain/README.md."""

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smcwire.codec.decode import decoder
from smcwire.explain.stats import Histogram, StatsCollector
from smcwire.flows.tracker import Tracker
from smcwire.model.events import SmcCall, SmcReturn
from smcwire.render.stats import stats_text
from smcwire.sources.reader import TraceReader

ROOT = Path(__file__).parent.parent
XTEST = ROOT / "tests/data/explain/dbg-xtest-ftrace-10001-14000.txt.xz"  # Linux 6.1, xtest, ETHREAD_LIMIT
KRETPROBE = ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz"  # Linux 6.1, every SMC with its result
NEWKERNEL = ROOT / "tests/data/ftrace/newkernel-kretprobe-ftrace.txt.xz"  # Linux 6.12, GET_THREAD_COUNT = 2
RETURN_FROM_RPC, ETHREAD_LIMIT, M32 = 0x32000003, 1, 0xFFFFFFFF
NAMES = {0x32000012: "OPTEE_SMC_CALL_WITH_RPC_ARG", 0x32000013: "OPTEE_SMC_CALL_WITH_REGD_ARG",
         RETURN_FROM_RPC: "OPTEE_SMC_CALL_RETURN_FROM_RPC"}
RPCS = {0xFFFF0004: "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR", 0xFFFF0005: "OPTEE_SMC_RPC_FUNC_CMD"}


def stats_of(path: Path) -> dict:
    tracker, collector = Tracker("capture", decoder("mainline")), StatsCollector()
    for event in TraceReader.from_names([str(path)]):
        for flow in tracker.feed(event):
            collector.add(flow)
    for flow in tracker.finish():
        collector.add(flow)
    return collector.result(tracker.state)


def events(path: Path):
    return [e for e in TraceReader.from_names([str(path)]) if isinstance(e, (SmcCall, SmcReturn))]


def exact(values: list[int], p: float) -> int:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def close(estimate: int, value: int) -> bool:
    """Within the documented precision (2.2 %), plus rounding to a whole nanosecond."""
    return abs(estimate - value) <= 0.022 * value + 1


def raw_yielding(path: Path) -> dict:
    """Yielding calls from the tracepoints alone: per (pid, task, param), the first begin to the first end
    that is neither an RPC request nor ETHREAD_LIMIT, with the waits between ETHREAD_LIMIT and the retry."""
    chains, durations, rpcs, holding = {}, defaultdict(list), Counter(), set()
    waits, orphans, peak = [], 0, (0, None)
    mid_call = Counter()  # chains whose first begin is a resume: the excerpt starts inside them
    for e in events(path):
        if e.key is None:
            continue
        key = (e.pid, e.task, e.key)
        if isinstance(e, SmcCall):
            chain = chains.setdefault(key, {"a0": e.regs[0], "start": e.ts, "refused": None, "ethread": 0, "wait": 0})
            if chain["refused"] is not None:
                chain["wait"] += e.ts - chain["refused"]
                chain["refused"] = None
            if e.regs[0] != RETURN_FROM_RPC and key not in holding:
                holding.add(key)
            chain["line"] = e.line
            continue
        chain = chains.get(key)
        r0 = e.regs[0] & M32
        if chain is None:
            orphans += 1
            if r0 >> 16 == 0xFFFF and r0 != M32:  # an RPC request opens the chain its resume continues
                rpcs[RPCS[r0]] += 1
                chains[key] = {"a0": None, "start": None, "refused": None, "ethread": 0, "wait": 0}
            continue
        if r0 != ETHREAD_LIMIT and key in holding:  # OP-TEE gave it a thread: the calls inside now count
            peak = max(peak, (len(holding), chain["line"]), key=lambda p: p[0])
        if r0 >> 16 == 0xFFFF and r0 != M32:
            rpcs[RPCS[r0]] += 1
            continue
        holding.discard(key)
        if chain["a0"] is None:  # the chain of an RPC request without its call: counted with the orphans
            del chains[key]
            continue
        if r0 == ETHREAD_LIMIT:
            chain["ethread"] += 1
            chain["refused"] = e.ts
            continue
        if chain["a0"] == RETURN_FROM_RPC:
            mid_call[NAMES[RETURN_FROM_RPC]] += 1
            del chains[key]
            continue
        durations[NAMES[chain.pop("a0")]].append(e.ts - chain["start"])
        if chain["ethread"]:
            waits.append((chain["wait"], chain["ethread"]))
        del chains[key]
    waits += [(c["wait"], c["ethread"]) for c in chains.values() if c["ethread"]]
    open_orphans = sum(c["a0"] is None for c in chains.values())
    return {"durations": durations, "open": Counter(NAMES[c["a0"]] for c in chains.values() if c["a0"] is not None),
            "open_orphans": open_orphans, "rpcs": rpcs, "waits": waits, "orphans": orphans - open_orphans,
            "peak": peak, "mid_call": mid_call}


@pytest.fixture(scope="module")
def xtest():
    return stats_of(XTEST), raw_yielding(XTEST)


def test_calls_and_percentiles(xtest):
    result, raw = xtest
    assert json.loads(json.dumps(result)) == result
    for name, durations in raw["durations"].items():
        stats = result["functions"][name]
        assert stats["calls"] == len(durations) + raw["open"][name]
        assert stats["results"] == {"OK": len(durations), **({"incomplete": raw["open"][name]}
                                                             if raw["open"][name] else {})}
        latency = stats["latency_ns"]
        assert (latency["count"], latency["min"], latency["max"]) == (len(durations), min(durations), max(durations))
        for p in (50, 90, 99):
            assert close(latency[f"p{p}"], exact(durations, p)), (name, p)
    assert result["functions"]["OPTEE_SMC_CALL_WITH_REGD_ARG"]["calls"] == 52


def test_rpcs_ethread_concurrency_incomplete(xtest):
    result, raw = xtest
    by_function = result["rpcs"]["by_function"]
    assert {name: r["count"] for name, r in by_function.items()} == dict(raw["rpcs"])
    assert result["rpcs"]["total"] == sum(raw["rpcs"].values()) == 1882  # 1 from a call begun before the excerpt
    ethread = result["ethread_limit"]
    assert ethread["answers"] == sum(n for _, n in raw["waits"]) == 20
    assert ethread["flows"] == len(raw["waits"])
    assert ethread["longest_wait_ns"] == max(w for w, _ in raw["waits"])
    assert result["concurrency"]["peak"] == raw["peak"][0] == 2  # with 2 threads; a refused call holds none
    assert result["concurrency"]["peak_at"]["line"] == raw["peak"][1]
    assert result["incomplete"] == {"trace end": sum(raw["open"].values()) + raw["open_orphans"],
                                    "no begin": raw["orphans"] + sum(raw["mid_call"].values())}


def test_fast_calls_from_kprobes():
    """Fast calls: kprobe entry and kretprobe return, paired per CPU, last in first out."""
    durations, stacks = defaultdict(list), defaultdict(list)
    for e in events(KRETPROBE):
        if e.origin == "kprobe":
            stacks[e.cpu].append(e)
        elif e.origin == "kretprobe":
            call = stacks[e.cpu].pop()
            if call.regs[0] >> 31:
                durations[call.regs[0]].append(e.ts - call.ts)
    result = stats_of(KRETPROBE)
    names = {0xBF00FF01: "OPTEE_SMC_CALLS_UID", 0xB2000009: "OPTEE_SMC_EXCHANGE_CAPABILITIES",
             0xB2000011: "OPTEE_SMC_GET_ASYNC_NOTIF_VALUE", 0xB200000A: "OPTEE_SMC_DISABLE_SHM_CACHE"}
    for a0, name in names.items():
        stats = result["functions"][name]
        assert stats["calls"] == len(durations[a0]) and stats["latency_ns"]["max"] == max(durations[a0])
        assert close(stats["latency_ns"]["p50"], exact(durations[a0], 50))
    assert result["functions"]["OPTEE_SMC_DISABLE_SHM_CACHE"]["results"] == {"ENOTAVAIL": 1}
    assert result["functions"]["OPTEE_SMC_CALLS_UID"]["results"] == {"value": 1}
    yielding = raw_yielding(KRETPROBE)  # every yielding SMC is also a kprobe line: counted once
    assert result["functions"]["OPTEE_SMC_CALL_WITH_REGD_ARG"]["calls"] == len(
        yielding["durations"]["OPTEE_SMC_CALL_WITH_REGD_ARG"]) == 15
    assert result["smcs"] == 271  # trace README: 271 entry and 271 return probe lines


def test_thread_count_from_state():
    result = stats_of(NEWKERNEL)
    assert result["concurrency"]["thread_count"] == 2
    assert result["concurrency"]["thread_count_at"]["line"] == 20
    assert result["concurrency"]["peak"] == 2


def test_text(xtest):
    text = stats_text(xtest[0])
    assert "ETHREAD_LIMIT: 20 answers in 12 flows, longest wait" in text
    assert f"peak concurrency: 2 yielding calls in flight (dbg-xtest-ftrace-10001-14000.txt.xz:{xtest[1]['peak'][1]})" \
        in text
    assert "CALL_WITH_REGD_ARG" in text and "FOREIGN_INTR" in text


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300))
def test_histogram_precision(values):
    histogram = Histogram()
    for v in values:
        histogram.add(v)
    summary = histogram.summary()
    assert (summary["count"], summary["min"], summary["max"]) == (len(values), min(values), max(values))
    for p in (50, 90, 99):
        assert close(summary[f"p{p}"], exact(values, p))
