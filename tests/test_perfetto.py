"""The Perfetto / Chrome timeline (``smcwire.render.perfetto``): every export of the shipped captures
and of the rule-trigger traces passes a validator of the Trace Event Format's rules, and its
slices, instants, counters and arrows hold the values of the flow objects, findings and state."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smcwire.abi.profiles import get_profile
from smcwire.codec.decode import decoder
from smcwire.flows.model import Finding, Flow, Step
from smcwire.flows.state import Fact, TraceState
from smcwire.model.events import SmcCall, SmcReturn
from smcwire.pipeline import Analysis, captures
from smcwire.render.perfetto import PerfettoWriter

ROOT = Path(__file__).parent.parent
REAL = sorted(p for p in (ROOT / "traces").iterdir() if p.is_dir())
RULES = sorted((ROOT / "tests/data/rules").glob("*.xz"))
KRET = ROOT / "traces/qemu-dbg-kretprobe"
KPROBE_ONLY_ENTRY = ROOT / "tests/data/ftrace/dbg-kprobe-ftrace.txt.xz"  # entries without returns: untimed flows
NEWKERNEL = ROOT / "tests/data/ftrace/newkernel-kretprobe-ftrace.txt.xz"  # GET_THREAD_COUNT answered 2
LEGACY = ROOT / "tests/data/legacy-os-kretprobe-ftrace.txt.xz"  # SMC032: a finding of the capture, not of a flow
ALL = REAL + RULES + [KPROBE_ONLY_ENTRY, NEWKERNEL, LEGACY]


# --- the validator -------------------------------------------------------------------------------
PHASES = {"X", "B", "E", "i", "I", "C", "M", "s", "t", "f"}
METADATA = {"process_name": "name", "thread_name": "name", "process_sort_index": "sort_index",
            "thread_sort_index": "sort_index"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _ns(us: float) -> int:
    return round(us * 1000)


def validate(doc: Any) -> list[str]:
    """The Trace Event Format's rules broken by ``doc`` (a JSON object form), one message each.

    Fields per phase (X: name, ts, dur >= 0, pid, tid; C: name, ts, pid, numeric args; i: a scope s
    of g/p/t, with pid, and tid for t; M: a known name and its arg; s/t/f: name, cat, id, ts, pid,
    tid), B/E balanced per thread, every pid and (pid, tid) used named by metadata, a tid in one
    process only, time stamps non-decreasing per track, the slices of a thread nested or disjoint
    (as Perfetto reads them: closed on the left, open on the right), and flow events paired by id
    (one s, one f, in time order), each inside a slice of its thread."""
    errors: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        return ["not a JSON object with a traceEvents list"]
    if doc.get("displayTimeUnit", "ms") not in ("ms", "ns"):
        errors.append(f"displayTimeUnit {doc['displayTimeUnit']!r}")
    process_names: dict[int, str] = {}
    thread_names: dict[tuple[int, int], str] = {}
    pid_of_tid: dict[int, int] = {}
    used_pids: set[int] = set()
    used_threads: set[tuple[int, int]] = set()
    last_ts: dict[tuple[Any, ...], float] = {}
    stacks: dict[tuple[int, int], list[tuple[int, int]]] = {}  # open slices per thread: (start, end) in ns
    begins: dict[tuple[int, int], list[str]] = {}
    flows: dict[Any, list[tuple[str, float, str, str, int]]] = {}  # id -> (ph, ts, name, cat, index)
    for n, e in enumerate(doc["traceEvents"]):
        where = f"event {n}"
        if not isinstance(e, dict) or e.get("ph") not in PHASES:
            errors.append(f"{where}: no known ph")
            continue
        ph = e["ph"]
        pid, tid, ts = e.get("pid"), e.get("tid"), e.get("ts")
        if pid is not None and not isinstance(pid, int) or tid is not None and not isinstance(tid, int):
            errors.append(f"{where}: pid/tid not integers")
            continue
        if tid is not None and pid is not None and pid_of_tid.setdefault(tid, pid) != pid:
            errors.append(f"{where}: tid {tid} in two processes")
        if ph == "M":
            arg = METADATA.get(e.get("name"))
            value = (e.get("args") or {}).get(arg) if arg else None
            if arg is None or pid is None or (e["name"].startswith("thread") and tid is None):
                errors.append(f"{where}: bad metadata event {e.get('name')!r}")
            elif arg == "name" and not (isinstance(value, str) and value):
                errors.append(f"{where}: {e['name']} without a name")
            elif arg == "sort_index" and not isinstance(value, int):
                errors.append(f"{where}: {e['name']} without an integer sort_index")
            elif e["name"] == "process_name":
                if process_names.setdefault(pid, value) != value:
                    errors.append(f"{where}: process {pid} named twice")
            elif e["name"] == "thread_name":
                if thread_names.setdefault((pid, tid), value) != value:
                    errors.append(f"{where}: thread {tid} named twice")
            continue
        if not isinstance(e.get("name"), str) or not _number(ts):
            errors.append(f"{where}: {ph} without name or numeric ts")
            continue
        scope = e.get("s") if ph in "iI" else "t"
        if ph in "iI" and scope not in ("g", "p", "t"):
            errors.append(f"{where}: instant without scope s")
            continue
        needs_tid = ph in "XBEstf" or scope == "t" and ph in "iI"
        if (ph != "C" and scope != "g" or ph == "C") and pid is None or needs_tid and tid is None:
            errors.append(f"{where}: {ph} without pid/tid")
            continue
        if pid is not None:
            used_pids.add(pid)
        if tid is not None:
            used_threads.add((pid, tid))
        track = (pid, tid) if tid is not None else (pid, ph, e["name"] if ph == "C" else scope)
        if ts < last_ts.get(track, -math.inf):
            errors.append(f"{where}: ts {ts} goes back on track {track}")
        last_ts[track] = ts
        if ph == "C":
            args = e.get("args")
            if not isinstance(args, dict) or not args or not all(_number(v) for v in args.values()):
                errors.append(f"{where}: counter args not numeric")
            continue
        if ph in "BE":
            stack = begins.setdefault((pid, tid), [])
            if ph == "B":
                stack.append(e["name"])
            elif not stack:
                errors.append(f"{where}: E without B")
            else:
                stack.pop()
            continue
        if ph in "stf":
            if not isinstance(e.get("cat"), str) or "id" not in e or e.get("bp", "e") != "e":
                errors.append(f"{where}: flow event without cat/id, or a bp other than e")
                continue
            stack = stacks.get((pid, tid), [])
            while stack and stack[-1][1] < _ns(ts):
                stack.pop()
            if not stack or stack[-1][0] > _ns(ts):
                errors.append(f"{where}: flow event {e['id']} in no slice of its thread")
            flows.setdefault(e["id"], []).append((ph, ts, e["name"], e["cat"], n))
            continue
        # X, and thread-scoped instants (Perfetto's zero-duration slices)
        dur = e.get("dur", 0) if ph in "iI" else e.get("dur")
        if not _number(dur) or dur < 0:
            errors.append(f"{where}: X without a duration >= 0")
            continue
        if scope != "t":
            continue
        start, end = _ns(ts), _ns(ts) + _ns(dur)
        stack = stacks.setdefault((pid, tid), [])
        instant = end == start
        while stack and (stack[-1][1] < start or stack[-1][1] == start and not (stack[-1][0] == start and instant)):
            stack.pop()
        if stack and stack[-1][1] < end:
            errors.append(f"{where}: slice [{start}, {end}] overlaps [{stack[-1][0]}, {stack[-1][1]}] without nesting")
        stack.append((start, end))
    for (pid, tid), stack in begins.items():
        if stack:
            errors.append(f"thread {pid}/{tid}: B without E: {stack}")
    errors += [f"pid {pid} has no process_name" for pid in sorted(used_pids - process_names.keys())]
    errors += [f"thread {pid}/{tid} has no thread_name" for pid, tid in sorted(used_threads - thread_names.keys())]
    for flow_id, events in flows.items():
        phases = [ph for ph, *_ in events]
        if phases.count("s") != 1 or phases.count("f") != 1 or phases[0] != "s" or phases[-1] != "f":
            errors.append(f"flow {flow_id}: not one s then one f: {phases}")
        elif events[0][1] > events[-1][1] or len({(name, cat) for _, _, name, cat, _ in events}) != 1:
            errors.append(f"flow {flow_id}: f before s, or another name/cat")
    return errors


def test_validator_rejects_broken_events():
    meta = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "p"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "t"}}]

    def problems(*events: dict[str, Any]) -> list[str]:
        return validate({"traceEvents": meta + list(events)})

    x = {"name": "a", "ph": "X", "ts": 10.0, "dur": 5.0, "pid": 1, "tid": 2}
    assert problems(x) == []
    assert validate([x]) == ["not a JSON object with a traceEvents list"]
    assert problems({**x, "dur": -1.0}) == ["event 2: X without a duration >= 0"]
    assert problems({k: v for k, v in x.items() if k != "dur"}) == ["event 2: X without a duration >= 0"]
    assert problems({k: v for k, v in x.items() if k != "tid"}) == ["event 2: X without pid/tid"]
    assert problems({**x, "ts": "10"}) == ["event 2: X without name or numeric ts"]
    assert problems({**x, "tid": 3}) == ["thread 1/3 has no thread_name"]
    assert problems({**x, "pid": 4}) == ["event 2: tid 2 in two processes", "pid 4 has no process_name",
                                          "thread 4/2 has no thread_name"]
    assert problems(x, {**x, "ts": 9.0, "dur": 0.0}) == ["event 3: ts 9.0 goes back on track (1, 2)"]
    assert problems(x, {**x, "ts": 12.0}) == ["event 3: slice [12000, 17000] overlaps [10000, 15000] without nesting"]
    assert problems(x, {**x, "ts": 12.0, "dur": 3.0}, {**x, "ts": 15.0}) == []  # nested, then touching
    assert problems({"name": "c", "ph": "C", "ts": 1.0, "pid": 1, "args": {"n": "1"}}) == [
        "event 2: counter args not numeric"]
    assert problems({"name": "c", "ph": "C", "ts": 1.0, "pid": 1, "args": {"n": True}}) == [
        "event 2: counter args not numeric"]
    assert problems({"name": "i", "ph": "i", "ts": 1.0, "pid": 1, "tid": 2}) == ["event 2: instant without scope s"]
    assert problems({"name": "i", "ph": "i", "ts": 1.0, "s": "g"}) == []
    assert problems({"name": "i", "ph": "i", "ts": 1.0, "s": "p"}) == ["event 2: i without pid/tid"]
    assert problems({"name": "B", "ph": "B", "ts": 1.0, "pid": 1, "tid": 2}) == ["thread 1/2: B without E: ['B']"]
    assert problems({"name": "B", "ph": "E", "ts": 1.0, "pid": 1, "tid": 2}) == ["event 2: E without B"]
    assert problems({"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": 2, "args": {"sort_index": "1"}}) == [
        "event 2: thread_sort_index without an integer sort_index"]
    assert problems({"name": "thread_label", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "x"}}) == [
        "event 2: bad metadata event 'thread_label'"]
    assert problems({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "q"}}) == [
        "event 2: process 1 named twice"]
    flow_s = {"name": "SMC", "cat": "flow", "ph": "s", "id": 7, "ts": 10.0, "pid": 1, "tid": 2}
    flow_f = {**flow_s, "ph": "f", "ts": 12.0, "bp": "e"}
    assert problems(x, flow_s, flow_f) == []
    assert problems(x, flow_s) == ["flow 7: not one s then one f: ['s']"]
    assert problems(x, flow_f) == ["flow 7: not one s then one f: ['f']"]
    assert problems(x, flow_s, {**flow_f, "name": "other"}) == ["flow 7: f before s, or another name/cat"]
    assert problems(x, flow_s, {**flow_f, "ts": 20.0}) == ["event 4: flow event 7 in no slice of its thread"]
    assert problems(x, flow_s, {**flow_f, "bp": "x"}) == ["event 4: flow event without cat/id, or a bp other than e",
                                                         "flow 7: not one s then one f: ['s']"]
    assert problems({"ph": "Q"}) == ["event 2: no known ph"]


# --- exports of the real captures ----------------------------------------------------------------
class Export:
    """One capture analysed and written: the flows, findings and state it came from, and the file."""

    def __init__(self, *paths: Path) -> None:
        writer = PerfettoWriter()
        self.analyses: list[Analysis] = []
        self.flows: list[list[Flow]] = []
        for path in paths:
            analysis = Analysis(captures([str(path)])[0], get_profile(), prefetch=False)
            timeline = writer.capture(analysis.capture.name)
            flows = []
            for flow in analysis.flows():
                timeline.add_flow(flow)
                flows.append(flow)
            timeline.finish(analysis.findings, analysis.state)
            self.analyses.append(analysis)
            self.flows.append(flows)
        out = io.StringIO()
        writer.write(out)
        self.text = out.getvalue()
        self.doc = json.loads(self.text)
        self.events = self.doc["traceEvents"]
        self.threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in self.events if e["name"] == "thread_name"}
        self.processes = {e["pid"]: e["args"]["name"] for e in self.events if e["name"] == "process_name"}

    def track(self, e: dict[str, Any]) -> str:
        return self.threads[(e["pid"], e["tid"])]

    def slices(self, flow: int, pid: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ph"] == "X" and e["args"].get("flow") == flow
                and (pid is None or e["pid"] == pid)]


@pytest.fixture(scope="module")
def exports() -> dict[Path, Export]:
    return {path: Export(path) for path in ALL}


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_exports_are_valid_trace_event_files(exports, path):
    export = exports[path]
    assert validate(export.doc) == []
    assert export.doc["displayTimeUnit"] == "ns"
    assert not [e for e in export.events if e["ph"] in "BE"]
    assert set(export.processes.values()) == {f"Normal world ({export.analyses[0].capture.name})",
                                              f"OP-TEE ({export.analyses[0].capture.name})"}


def test_first_flow_of_the_kretprobe_capture():
    export = Export(KRET)
    flow = export.flows[0][0]
    assert (flow.index, flow.function, flow.start, flow.end, flow.cpus, flow.task, flow.pid) == (
        1, "OPTEE_SMC_CALLS_UID", 1_521_082_000, 1_523_259_000, [0], "init", 1)
    task, cpu, optee = sorted(export.slices(1), key=lambda e: (e["pid"], export.track(e) != "init-1"))
    assert (task["name"], task["ts"], task["dur"], export.track(task)) == ("OPTEE_SMC_CALLS_UID", 1521082.0, 2177.0,
                                                                          "init-1")
    assert task["args"]["at"] == f"{KRET}/ftrace.txt.xz:13"
    assert task["args"]["result_fields"] == {"uid_0": "0x384fb3e0", "uid_1": "0xe7f811e3", "uid_2": "0xaf630002",
                                             "uid_3": "0xa5d5c51b"}
    assert (export.track(cpu), cpu["ts"], cpu["dur"]) == ("CPU 0", 1521082.0, 2177.0)
    assert (export.track(optee), optee["ts"], optee["dur"]) == ("OP-TEE (thread unknown)", 1521082.0, 2177.0)
    assert export.processes[cpu["pid"]] == f"Normal world ({KRET})"
    assert export.processes[optee["pid"]] == f"OP-TEE ({KRET})"
    # flow 7: CALL_WITH_RPC_ARG, one FOREIGN_INTR served in 84 us, on OP-TEE thread 0
    flow = export.flows[0][6]
    (trip,) = flow.rpcs
    assert (flow.index, flow.thread, trip.function, trip.normal_ns) == (7, 0, "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR", 84_000)
    (rpc,) = [e for e in export.slices(7) if e["name"] == trip.function]
    assert (export.track(rpc), rpc["ts"], rpc["dur"]) == ("init-1", trip.request.end / 1000, 84.0)
    secure = [e for e in export.slices(7) if export.track(e) == "OP-TEE thread 0"]
    assert [(e["name"], e["ts"], e["dur"]) for e in secure] == [
        (s.decoded.name, s.call.ts / 1000, (s.ret.ts - s.call.ts) / 1000) for s in flow.steps]
    assert [e["name"] for e in secure] == ["OPTEE_SMC_CALL_WITH_RPC_ARG", "OPTEE_SMC_CALL_RETURN_FROM_RPC"]


def _hex(fields: dict[str, int]) -> dict[str, str]:
    return {k: f"{v:#x}" for k, v in fields.items()}


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_slices_hold_the_values_of_the_flows(exports, path):
    export = exports[path]
    normal, optee = sorted(export.processes)
    skipped = 0
    for flow in export.flows[0]:
        if flow.start is None or flow.end is None:
            skipped += 1
            assert export.slices(flow.index) == []
            continue
        task_name = f"{flow.task or '?'}-{'?' if flow.pid is None else flow.pid}"
        mine = [e for e in export.slices(flow.index, normal) if export.track(e) == task_name]
        (top,) = [e for e in mine if e["args"].get("function")]
        last = max(e.ts for s in flow.steps for e in (s.call, s.ret) if e is not None and e.ts is not None)
        assert last == flow.end or flow.incomplete == "trace end"  # a resume the trace cut
        assert (top["ts"], top["dur"]) == (flow.start / 1000, (last - flow.start) / 1000)
        assert top["args"]["fields"] == _hex(flow.first.decoded.fields if flow.first.decoded else {})
        assert top["args"].get("result") == flow.result_name and top["args"].get("thread") == flow.thread
        assert top["args"]["at"] == f"{flow.file}:{flow.first_line}"
        answered = [t for t in flow.rpcs if t.reply is not None and t.reply.start is not None
                    and t.request.end is not None]
        rpcs = [e for e in mine if e is not top]
        assert [(e["name"], e["ts"], e["args"]["fields"], e["args"]["reply_fields"]) for e in rpcs] == [
            (t.function, t.request.end / 1000, _hex(t.fields), _hex(t.reply_fields)) for t in answered]
        assert all(top["ts"] <= e["ts"] and e["ts"] + e["dur"] <= top["ts"] + top["dur"] for e in rpcs)
        timed = [s for s in flow.steps if s.call and s.ret and s.call.ts is not None and s.ret.ts is not None]
        cpu = [e for e in export.slices(flow.index, normal) if export.track(e).startswith("CPU ")]
        assert [(export.track(e), e["ts"], e["dur"]) for e in cpu] == [
            (f"CPU {s.call.cpu}", s.call.ts / 1000, (s.ret.ts - s.call.ts) / 1000) for s in timed]
        secure = export.slices(flow.index, optee)
        thread = "OP-TEE (thread unknown)" if flow.thread is None else f"OP-TEE thread {flow.thread}"
        assert [(e["name"], e["ts"]) for e in secure] == [(s.decoded.name, s.call.ts / 1000) for s in timed]
        refused = {export.track(e) for e in secure if e["args"].get("answer") == "OPTEE_SMC_RETURN_ETHREAD_LIMIT"}
        assert {export.track(e) for e in secure} - refused <= {thread}
        assert refused <= {"OP-TEE (thread unknown)"}  # a refused attempt holds no thread
    (summary,) = export.doc["otherData"]["captures"]
    assert (summary["flows"], summary["skipped_flows"], summary["drawn"]) == (
        len(export.flows[0]), skipped, len(export.flows[0]) - skipped)


def test_untimed_flows_are_counted_not_drawn(exports):
    (summary,) = exports[KPROBE_ONLY_ENTRY].doc["otherData"]["captures"]
    assert summary["skipped_flows"] == 9 and summary["drawn"] == 21


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_arrows_join_a_flow_to_its_secure_slices(exports, path):
    export = exports[path]
    normal, optee = sorted(export.processes)
    by_id: dict[int, dict[str, dict[str, Any]]] = {}
    for n, e in enumerate(export.events):
        if e["ph"] in "sf":
            bound = export.events[n - 1] if e["ph"] == "f" else next(
                x for x in reversed(export.events[:n]) if x["ph"] == "X")
            assert (bound["ts"], bound["pid"], bound["tid"]) == (e["ts"], e["pid"], e["tid"])  # its slice's start
            by_id.setdefault(e["id"], {})[e["ph"]] = bound
    arrows = Counter()
    for ends in by_id.values():
        assert ends["s"]["pid"] == normal and ends["f"]["pid"] == optee
        assert ends["s"]["args"]["flow"] == ends["f"]["args"]["flow"]
        arrows[ends["s"]["args"]["flow"]] += 1
    assert arrows == Counter({f.index: len(export.slices(f.index, optee)) for f in export.flows[0]
                              if export.slices(f.index, optee)})


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_an_instant_per_finding(exports, path):
    export = exports[path]
    analysis = export.analyses[0]
    instants = [e for e in export.events if e["ph"] == "i"]
    assert Counter((e["args"]["rule"], e["args"]["severity"], e["args"]["message"], e["args"]["at"])
                   for e in instants) == Counter((f.rule, f.severity, f.message, f"{f.file}:{f.line}")
                                                 for f in analysis.findings)
    flows = {f.index: f for f in export.flows[0]}
    for e in instants:
        flow = flows.get(e["args"].get("flow"))
        if flow is not None and flow.start is not None and flow.end is not None:
            assert (e["s"], e["ts"]) == ("t", flow.start / 1000)
            assert export.track(e) == f"{flow.task}-{flow.pid}"
        else:
            assert e["s"] in ("p", "g")


def test_capture_findings_sit_at_their_trace_line(exports):
    export = exports[LEGACY]
    (finding,) = export.analyses[0].findings
    assert finding.flow is None and finding.rule == "SMC032"
    (instant,) = [e for e in export.events if e["ph"] == "i"]
    at = {(e.file, e.line): e.ts for f in export.flows[0] for s in f.steps for e in (s.call, s.ret) if e is not None}
    assert (instant["s"], instant["ts"]) == ("p", at[(finding.file, finding.line)] / 1000)


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_in_flight_counter_peaks_at_the_states_peak(exports, path):
    export = exports[path]
    state = export.analyses[0].state
    counter = [e for e in export.events if e["ph"] == "C" and e["name"] == "yielding calls"]
    assert max(e["args"]["in flight"] for e in counter) == state.peak_in_flight
    assert export.doc["otherData"]["captures"][0]["peak_in_flight"] == state.peak_in_flight
    threads = [e["args"]["available"] for e in export.events if e["ph"] == "C" and e["name"] == "OP-TEE threads"]
    assert threads == ([state.thread_count.value] * 2 if state.thread_count else [])
    assert {e["pid"] for e in counter} == {max(export.processes)}


def test_thread_count_counter():
    export = Export(NEWKERNEL)
    assert export.analyses[0].state.thread_count.value == 2
    assert [e["args"] for e in export.events if e["name"] == "OP-TEE threads"] == [{"available": 2}] * 2


def test_the_same_input_gives_the_same_bytes():
    """Twice in this process, and in two processes with other string hashes (set and dict orders)."""
    assert Export(*REAL, *RULES).text == Export(*REAL, *RULES).text
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import test_perfetto as t; "
            "sys.stdout.write(t.Export(*[Path(p) for p in sys.argv[2:]]).text)")
    texts = [subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), *map(str, REAL + RULES)],
                            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed},
                            cwd=ROOT).stdout for seed in ("1", "2")]
    assert texts[0] == texts[1] == Export(*REAL, *RULES).text


def test_several_captures_in_one_file():
    export = Export(*REAL, *RULES)
    assert validate(export.doc) == []
    assert len(export.processes) == 2 * len(REAL + RULES)
    assert [c["capture"] for c in export.doc["otherData"]["captures"]] == [a.capture.name for a in export.analyses]
    tids = [e["tid"] for e in export.events if e["name"] == "thread_name"]
    assert len(tids) == len(set(tids)) and not set(tids) & set(export.processes)


# --- built flows: overlaps, missing times --------------------------------------------------------
DECODER = decoder("mainline")


def _fast(index: int, cpu: int, start: int | None, end: int | None, task: str = "init") -> Flow:
    regs = (0xBF00FF01, 0, 0, 0, 0, 0, 0, 0)  # OPTEE_SMC_CALLS_UID
    call = SmcCall("t.txt", 2 * index, start, cpu, 1, 1, task, regs, origin="kprobe")
    ret = SmcReturn("t.txt", 2 * index + 1, end, cpu, 1, 1, task, (0x384FB3E0, 0xE7F811E3, 0xAF630002, 0xA5D5C51B),
                    origin="kretprobe")
    decoded = DECODER.call(regs)
    return Flow(index, "t.txt", [Step(call, ret, decoded, DECODER.ret(decoded, ret.regs))], task=task, pid=1,
                cpus=[cpu])


def _write(writer: PerfettoWriter) -> dict[str, Any]:
    out = io.StringIO()
    writer.write(out)
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def test_overlapping_slices_of_one_track_go_to_lanes():
    """Two CPUs' fast calls overlap on the thread-unknown track (and, one task, on its track)."""
    writer = PerfettoWriter()
    finding = Finding("SMC070", "error", "no OP-TEE", "t.txt", 4, flow=2)
    summary = writer.add_capture("t.txt", [_fast(1, 0, 1000, 5000), _fast(2, 1, 3000, 8000), _fast(3, 0, 6000, 7000)],
                                 [finding], TraceState(thread_count=Fact(1, [("t.txt", 1)], "dmesg")))
    assert summary.drawn == 3 and summary.thread_count == 1 and summary.peak_in_flight == 0
    doc = _write(writer)
    assert validate(doc) == []
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    lanes = [(names[(e["pid"], e["tid"])], e["ts"]) for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == 2]
    assert lanes == [("OP-TEE (thread unknown)", 1.0), ("OP-TEE (thread unknown) #2", 3.0),
                     ("OP-TEE (thread unknown)", 6.0)]
    (instant,) = [e for e in doc["traceEvents"] if e["ph"] == "i"]
    assert (names[(instant["pid"], instant["tid"])], instant["ts"]) == ("init-1 #2", 3.0)  # on its flow's lane
    # written without lanes, the same events break the nesting rule
    for e in doc["traceEvents"]:
        if e["ph"] != "M" and e.get("tid") is not None and names[(e["pid"], e["tid"])].endswith("#2"):
            e["tid"] = next(tid for (pid, tid), name in names.items() if name == names[(e["pid"], e["tid"])][:-3])
    assert any("without nesting" in problem for problem in validate(doc))


def test_flows_without_times_are_skipped_not_fatal():
    writer = PerfettoWriter()
    findings = [Finding("SMC001", "error", "no return", "t.txt", 2, flow=1),
                Finding("SMC002", "error", "no entry", "u.txt", 9)]
    summary = writer.add_capture("t.txt", [_fast(1, 0, None, None), _fast(2, 0, 5000, None)], findings, None)
    assert (summary.flows, summary.drawn, summary.skipped_flows, summary.findings) == (2, 0, 2, 2)
    doc = _write(writer)
    assert validate(doc) == []
    instants = {e["name"]: (e["s"], e["ts"]) for e in doc["traceEvents"] if e["ph"] == "i"}
    # flow 2 is untimed but its entry line has a time; flow 1's line has none: global, at the capture's first time
    assert instants == {"SMC001 error": ("g", 5.0), "SMC002 error": ("g", 5.0)}
    assert doc["otherData"]["captures"][0]["skipped_flows"] == 2


def test_an_empty_capture_is_still_a_valid_file():
    writer = PerfettoWriter()
    writer.add_capture("empty.txt", [], [Finding("SMC070", "error", "x", "empty.txt", 1)], None)
    doc = _write(writer)
    assert validate(doc) == []
    assert [(e["ph"], e["s"], e["ts"]) for e in doc["traceEvents"] if e["ph"] != "M"] == [("i", "g", 0.0)]


def test_write_wants_finished_captures():
    writer = PerfettoWriter()
    writer.capture("t.txt").add_flow(_fast(1, 0, 1000, 2000))
    with pytest.raises(ValueError, match="capture not finished: t.txt"):
        writer.write(io.StringIO())
    writer.timelines[0].finish([], None)
    with pytest.raises(ValueError, match="finished twice"):
        writer.timelines[0].finish([], None)
