"""Call flows as a timeline: the Trace Event Format JSON that ui.perfetto.dev and chrome://tracing open.

The format is Google's "Trace Event Format" (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU),
in its JSON object form: ``{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}``,
one event a line. ``ts`` and ``dur`` are microseconds as the format defines them (floats: the
trace's nanoseconds / 1000); ``displayTimeUnit`` only asks the viewer to show nanoseconds
(chrome://tracing; Perfetto's trace processor ignores the key since v22, "which more closely
matches the behaviour of catapult", its ``json_display_time_unit`` stat says; older versions
read it as the unit of ``ts``). ``otherData`` holds, per capture, the flows drawn and skipped.

Each capture becomes two processes:

- the normal world: a track (thread) per CPU, with a slice per SMC from entry to return (the time
  the CPU spent in the secure world), and a track per task (``comm-pid``), with a slice per call
  flow from its first entry to its last event (its final return, unless the trace ends inside
  it), named by its function (args: decoded fields, result, flow index, ``file:line``…), and
  within it a slice per RPC round trip (the normal world serving it; args: the request's and the
  reply's fields);
- OP-TEE: a track per OP-TEE thread, with a slice per SMC of the flows that ran on it; flows
  whose thread is unknown (fast calls, yielding calls without RPC) and attempts refused with
  ETHREAD_LIMIT (they hold no thread) go to "OP-TEE (thread unknown)". Counters: the yielding
  calls in flight (a call holds a thread from the entry of the attempt OP-TEE accepted to its
  final return, or to the capture's end when the trace ends inside it) and, when the capture
  has it, the thread count (GET_THREAD_COUNT).

A finding is an instant event (args: rule, severity, message, ``file:line``, evidence): on its
flow's task track at the flow's start; else, process-wide at the time of its trace line; else
(no time known) global, at the capture's first time stamp.

Arrows link a flow's slice to each of its SMC slices on the OP-TEE track, as flow events
``s``/``f`` (the format's "flow events"; Perfetto's "other formats" documentation lists them).
A slice can start several arrows only this way: the v2 form (``bind_id`` with ``flow_in`` /
``flow_out`` on the slice) puts one id on a slice, and an id ended more than once is undefined.
An ``s`` or ``f`` binds to the slice that encloses it on its thread (``"bp": "e"`` says so for
``f``), and Perfetto takes the innermost slice open when it reads the event (equal time stamps in
file order): each is written right after its slice, at the slice's start.

The format requires the complete events of a thread to nest (Perfetto puts the rest on overflow
tracks). Slices of one track that overlap without nesting (fast calls of two CPUs on the thread
unknown track) go to an extra lane, a track named ``<track> #2``. Flows complete out of start
order, so the writer holds the events of every capture in memory (one small tuple per event, its
args included, and the time of each SMC line for the findings) and sorts them by time, longest
first, before writing: time stamps never decrease on a track and a parent precedes its children.
Flows without a timed entry or a timed return are not drawn: ``skipped_flows`` counts them. The
same input gives the same bytes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any, NamedTuple, TextIO

from ..abi.optee import OPTEE_SMC_RETURN_ETHREAD_LIMIT
from ..flows.model import Finding, Flow, Step
from ..flows.state import TraceState
from ..flows.tracker import RETURN_FROM_RPC

Args = dict[str, Any]
Track = tuple[int, int, tuple[Any, ...], str]  # (world: 0 normal / 1 OP-TEE, group, sort key, name)

NORMAL, OPTEE = 0, 1
UNKNOWN_THREAD: Track = (OPTEE, 1, (), "OP-TEE (thread unknown)")
# order at equal start and end: flow, RPC, SMC on OP-TEE, SMC on the CPU, instant, counter
_FLOW, _RPC, _OPTEE_STEP, _CPU_STEP, _INSTANT, _COUNTER = range(6)
_CATEGORY = {_FLOW: "call", _RPC: "rpc", _OPTEE_STEP: "smc", _CPU_STEP: "smc"}  # of the slices


class CaptureSummary(NamedTuple):
    """What a capture's timeline holds; also written in ``otherData``."""

    capture: str
    flows: int  # flows given
    drawn: int  # flows drawn as slices
    skipped_flows: int  # flows without a timed entry or a timed return
    findings: int
    peak_in_flight: int  # the counter's maximum
    thread_count: int | None


class _Item(NamedTuple):
    """One event before it gets its track: times in nanoseconds (``end == start`` for instants)."""

    start: int
    end: int
    rank: int
    seq: int
    track: Track | None  # None: process- or global-scope instants and counters
    ph: str
    name: str
    args: Args
    parent: int | None = None  # the seq of the slice it belongs in (same track)
    arrows: tuple[int, ...] = ()  # flow-event ids: starts (``s``) of a flow slice, the end (``f``) of a step
    scope: str | None = None  # of instants: "t", "p", "g"


def _hex(fields: dict[str, int]) -> dict[str, str]:
    return {k: f"{v:#x}" for k, v in fields.items()}


def _at(step_event: Any) -> str:
    return f"{step_event.file}:{step_event.line}"


def _refused(step: Step) -> bool:
    """An attempt OP-TEE answered ETHREAD_LIMIT: it held no thread."""
    answer = step.answer
    return answer is not None and not answer.is_rpc and answer.status == OPTEE_SMC_RETURN_ETHREAD_LIMIT


class CaptureTimeline:
    """The events of one capture; ``add_flow`` as flows complete, then ``finish`` once."""

    def __init__(self, writer: PerfettoWriter, name: str) -> None:
        self.writer = writer
        self.name = name
        self.items: list[_Item] = []
        self.flows = 0
        self.skipped = 0
        self.drawn: dict[int, tuple[Track, int, int]] = {}  # flow index -> (task track, slice seq, start)
        self.line_ts: dict[tuple[str, int], int] = {}  # (file, line) of SMC events -> time
        self.holds: list[tuple[int, int | None]] = []  # (start, end or None: to the capture's end) per held thread
        self.first: int | None = None  # earliest and latest time stamps seen
        self.last: int | None = None
        self.summary: CaptureSummary | None = None

    def _item(self, start: int, end: int, rank: int, track: Track | None, ph: str, name: str, args: Args,
              **more: Any) -> int:
        seq = len(self.items)
        self.items.append(_Item(start, end, rank, seq, track, ph, name, args, **more))
        return seq

    def _seen(self, ts: int) -> None:
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts

    def add_flow(self, flow: Flow) -> None:
        """Adds the slices of a completed flow (or counts it skipped when its times are unknown)."""
        self.flows += 1
        latest: int | None = None  # the flow's last time stamp: after its end when the trace cuts a resume
        for step in flow.steps:
            for event in (step.call, step.ret):
                if event is not None and event.ts is not None:
                    self.line_ts[(event.file, event.line)] = event.ts
                    self._seen(event.ts)
                    latest = event.ts if latest is None else max(latest, event.ts)
        self._holds(flow)
        start = flow.start
        if start is None or flow.end is None or latest is None or latest < start:
            self.skipped += 1
            return
        end = latest
        task = flow.task or "?"
        track: Track = (NORMAL, 1, (task, -1 if flow.pid is None else flow.pid),
                        f"{task}-{'?' if flow.pid is None else flow.pid}")
        name = flow.function or (f"{flow.a0:#010x}" if flow.a0 is not None else "(return only)")
        first = flow.first.decoded
        result = flow.result
        args: Args = {"flow": flow.index, "at": f"{flow.file}:{flow.first_line}", "function": name,
                      "fields": _hex(first.fields) if first is not None else {}}
        if flow.result_name is not None:
            args["result"] = flow.result_name
        values = {k: v for k, v in result.fields.items() if k != "status"} if result is not None else {}
        if values:  # a result that is a value (UID words, revision…), not only a status
            args["result_fields"] = _hex(values)
        for key, value in (("thread", flow.thread), ("retries", flow.retries or None),
                           ("incomplete", flow.incomplete), ("findings", flow.findings or None)):
            if value is not None:
                args[key] = value
        args.update(cpu=flow.cpus, secure_ns=flow.secure_ns, normal_ns=flow.normal_ns)
        seq = self._item(start, end, _FLOW, track, "X", name, args)
        self.drawn[flow.index] = (track, seq, start)
        for trip in flow.rpcs:
            served, reply = trip.request.end, trip.reply.start if trip.reply is not None else None
            if served is None or reply is None or reply < served:
                continue
            rpc = trip.function or f"RPC {0xFFFF0000 | trip.func:#x}"
            rpc_args: Args = {"flow": flow.index, "fields": _hex(trip.fields), "reply_fields": _hex(trip.reply_fields)}
            if trip.thread is not None:
                rpc_args["thread"] = trip.thread
            if trip.request.ret is not None:
                rpc_args["at"] = _at(trip.request.ret)
            if trip.reply is not None and trip.reply.call is not None:
                rpc_args["reply_at"] = _at(trip.reply.call)
            self._item(served, reply, _RPC, track, "X", rpc, rpc_args, parent=seq)
        arrows: list[int] = []
        for step in flow.steps:
            call, ret = step.call, step.ret
            if call is None or ret is None or call.ts is None or ret.ts is None or ret.ts < call.ts:
                continue
            step_name = step.decoded.name if step.decoded is not None and step.decoded.name else f"{call.regs[0]:#010x}"
            step_args: Args = {"flow": flow.index, "at": _at(call), "return_at": _at(ret)}
            if step.answer is not None and step.answer.status_name is not None:
                step_args["answer"] = step.answer.status_name
            cpu = call.cpu if call.cpu is not None else ret.cpu
            cpu_track: Track = (NORMAL, 0, (1 << 30 if cpu is None else cpu,), f"CPU {'?' if cpu is None else cpu}")
            self._item(call.ts, ret.ts, _CPU_STEP, cpu_track, "X", step_name, step_args)
            thread = flow.thread if not _refused(step) else None
            optee: Track = UNKNOWN_THREAD if thread is None else (OPTEE, 0, (thread,), f"OP-TEE thread {thread}")
            arrow = next(self.writer.arrow_ids)
            arrows.append(arrow)
            self._item(call.ts, ret.ts, _OPTEE_STEP, optee, "X", step_name, {**step_args, "cpu": cpu},
                       arrows=(arrow,))
        if arrows:
            self.items[seq] = self.items[seq]._replace(arrows=tuple(arrows))

    def _holds(self, flow: Flow) -> None:
        """The spans in which the flow held an OP-TEE thread: from the entry of each yielding
        attempt (not a resume) to the end of its chain, unless OP-TEE refused it (ETHREAD_LIMIT)."""
        if flow.fast:
            return
        start: int | None = None
        for step in flow.steps:
            call = step.call
            if start is None and call is not None and call.ts is not None and \
                    call.regs[0] & 0xFFFFFFFF != RETURN_FROM_RPC:
                start = call.ts
            answer = step.answer
            if start is not None and answer is not None and not answer.is_rpc:
                if not _refused(step) and step.ret is not None and step.ret.ts is not None:
                    self.holds.append((start, step.ret.ts))
                start = None
        if start is not None:  # no final answer: held to the capture's end, or to the flow's last time
            end = flow.end if flow.end is not None else start
            self.holds.append((start, None if flow.incomplete == "trace end" else end))

    def finish(self, findings: Iterable[Finding], state: TraceState | None) -> CaptureSummary:
        """Adds the findings and the counters (read once the flows are all in); call it once."""
        if self.summary is not None:
            raise ValueError(f"capture {self.name} finished twice")
        first = self.first if self.first is not None else 0
        count = 0
        for f in findings:
            count += 1
            args: Args = {"rule": f.rule, "severity": f.severity, "message": f.message, "at": f"{f.file}:{f.line}"}
            if f.flow is not None:
                args["flow"] = f.flow
            if f.evidence:
                args["evidence"] = [f"{file}:{line}" for file, line in f.evidence]
            name = f"{f.rule} {f.severity}"
            drawn = self.drawn.get(f.flow) if f.flow is not None else None
            ts = self.line_ts.get((f.file, f.line))
            if drawn is not None:
                track, seq, start = drawn
                self._item(start, start, _INSTANT, track, "i", name, args, parent=seq, scope="t")
            elif ts is not None:
                self._item(ts, ts, _INSTANT, None, "i", name, args, scope="p")
            else:
                self._item(first, first, _INSTANT, None, "i", name, args, scope="g")
        peak = self._counters(state)
        thread_count = state.thread_count.value if state is not None and state.thread_count is not None else None
        self.summary = CaptureSummary(self.name, self.flows, len(self.drawn), self.skipped, count, peak, thread_count)
        return self.summary

    def _counters(self, state: TraceState | None) -> int:
        """The in-flight counter (a sample wherever it changes) and the thread count; the peak."""
        if self.first is None or self.last is None:
            return 0
        last = self.last
        changes: dict[int, int] = {self.first: 0}
        for start, end in self.holds:
            stop = last if end is None else end
            if stop <= start:
                continue
            changes[start] = changes.get(start, 0) + 1
            changes[stop] = changes.get(stop, 0) - 1
        value = peak = 0
        for ts in sorted(changes):
            value += changes[ts]
            peak = max(peak, value)
            self._item(ts, ts, _COUNTER, None, "C", "yielding calls", {"in flight": value})
        if state is not None and state.thread_count is not None:
            for ts in sorted({self.first, last}):
                self._item(ts, ts, _COUNTER, None, "C", "OP-TEE threads", {"available": state.thread_count.value})
        return peak


class PerfettoWriter:
    """Collects the timelines of captures, then writes one Trace Event Format file.

    ``timeline = writer.capture(name)``; ``timeline.add_flow(flow)`` for each flow to show (as
    ``Analysis.flows()`` yields them); ``timeline.finish(analysis.findings, analysis.state)``;
    after the last capture, ``writer.write(out)`` (a text file, UTF-8)."""

    def __init__(self) -> None:
        self.timelines: list[CaptureTimeline] = []
        self.arrow_ids = itertools.count(1)  # flow-event ids, unique in the file

    def capture(self, name: str) -> CaptureTimeline:
        """Starts the timeline of a capture (its two processes)."""
        timeline = CaptureTimeline(self, name)
        self.timelines.append(timeline)
        return timeline

    def add_capture(self, name: str, flows: Iterable[Flow], findings: Iterable[Finding],
                    state: TraceState | None) -> CaptureSummary:
        """A capture at once: its flows (consumed first), then its findings and state."""
        timeline = self.capture(name)
        for flow in flows:
            timeline.add_flow(flow)
        return timeline.finish(findings, state)

    def write(self, out: TextIO) -> None:
        """Writes the JSON document: names first, then each capture's events in time order."""
        unfinished = [t.name for t in self.timelines if t.summary is None]
        if unfinished:
            raise ValueError(f"capture not finished: {', '.join(unfinished)}")
        lanes = [_lanes(t.items) for t in self.timelines]
        pids = 2 * len(self.timelines)
        tids: list[dict[tuple[Track, int], int]] = []
        names: list[Args] = []
        next_tid = pids + 1  # thread ids are global in Perfetto: none equals a process id
        for n, (timeline, (_, tracks)) in enumerate(zip(self.timelines, lanes, strict=True)):
            mine: dict[tuple[Track, int], int] = {}
            for world, label in ((NORMAL, "Normal world"), (OPTEE, "OP-TEE")):
                pid = 2 * n + world + 1
                names.append({"name": "process_name", "ph": "M", "pid": pid,
                              "args": {"name": f"{label} ({timeline.name})"}})
                names.append({"name": "process_sort_index", "ph": "M", "pid": pid, "args": {"sort_index": pid}})
            for index, (track, lane) in enumerate(sorted(tracks)):
                mine[(track, lane)] = tid = next_tid
                next_tid += 1
                pid = 2 * n + track[0] + 1
                label = track[3] if lane == 0 else f"{track[3]} #{lane + 1}"
                names.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": label}})
                names.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                              "args": {"sort_index": index}})
            tids.append(mine)
        out.write('{"traceEvents":[\n')
        sep = ""
        for event in names:
            out.write(sep + _dumps(event))
            sep = ",\n"
        for n, (order, _) in enumerate(lanes):
            for item, lane in order:
                for event in _events(item, 2 * n + 1, tids[n].get((item.track, lane)) if item.track else None):
                    out.write(sep + _dumps(event))
                    sep = ",\n"
        other = {"generator": "smcwire", "captures": [t.summary._asdict() for t in self.timelines if t.summary]}
        out.write(f'\n],"displayTimeUnit":"ns","otherData":{_dumps(other)}}}\n')


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _lanes(items: list[_Item]) -> tuple[list[tuple[_Item, int]], set[tuple[Track, int]]]:
    """The items in writing order, each with its lane, and the (track, lane) pairs used.

    A lane is a stack of open slices, popped as Perfetto pops them (intervals closed on the left,
    open on the right; instants at one time stack): an item goes to its parent's lane when it
    nests there, else to the first lane where it nests or stands alone."""
    order = sorted(items, key=lambda i: (i.start, -i.end, i.rank, i.seq))
    stacks: dict[Track, list[list[tuple[int, bool]]]] = {}
    lane_of: dict[int, int] = {}
    placed: list[tuple[_Item, int]] = []
    used: set[tuple[Track, int]] = set()
    for item in order:
        if item.track is None:
            placed.append((item, 0))
            continue
        lanes = stacks.setdefault(item.track, [])
        preferred = lane_of.get(item.parent) if item.parent is not None else None
        candidates = ([preferred] if preferred is not None else []) + [k for k in range(len(lanes)) if k != preferred]
        instant = item.end == item.start
        for lane in candidates:
            stack = lanes[lane]
            while stack and (stack[-1][0] < item.start or
                             (stack[-1][0] == item.start and not (stack[-1][1] and instant))):
                stack.pop()
            if not stack or stack[-1][0] >= item.end:
                break
        else:
            lanes.append([])
            lane = len(lanes) - 1
        lanes[lane].append((item.end, instant))
        lane_of[item.seq] = lane
        placed.append((item, lane))
        used.add((item.track, lane))
    return placed, used


def _events(item: _Item, pid: int, tid: int | None) -> list[Args]:
    """The JSON events of an item; ``pid`` is its capture's normal-world process."""
    ts = item.start / 1000
    if item.ph == "C":
        return [{"name": item.name, "ph": "C", "ts": ts, "pid": pid + OPTEE, "args": item.args}]
    if item.track is None:  # a process- or global-scope instant
        return [{"name": item.name, "cat": "finding", "ph": "i", "ts": ts, "s": item.scope, "pid": pid,
                 "args": item.args}]
    assert tid is not None
    pid += item.track[0]
    if item.ph == "i":
        return [{"name": item.name, "cat": "finding", "ph": "i", "ts": ts, "s": item.scope, "pid": pid, "tid": tid,
                 "args": item.args}]
    dur = (item.end - item.start) / 1000
    events = [{"name": item.name, "cat": _CATEGORY[item.rank], "ph": "X", "ts": ts, "dur": dur, "pid": pid, "tid": tid,
               "args": item.args}]
    # flow events: a flow's slice starts an arrow per SMC slice on OP-TEE, which ends it
    phase, bind = ("s", {}) if item.rank == _FLOW else ("f", {"bp": "e"})
    for arrow in item.arrows:
        events.append({"name": "SMC", "cat": "flow", "ph": phase, "id": arrow, "ts": ts, "pid": pid, "tid": tid,
                       **bind})
    return events
