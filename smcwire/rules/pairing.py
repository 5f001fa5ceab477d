"""Pairing rules: every SMC entry has its return, every return its entry, and a CPU runs one SMC
at a time.

The optee tracepoints bracket every ``invoke_fn`` of ``optee_smc_do_call_with_arg`` (Linux
``optee_trace.h``), and a return probe fires once per entry probe; so outside lost-event gaps, the
capture's edges (a CPU's events beginning later in an overwritten ring buffer among them) and
discontinuities (time going back), a missing half means the trace is not what the driver did. The
tracker says which gap cut a step (``Step.gap``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import NamedTuple

from ..abi.profiles import Profile
from ..flows.model import Finding, Flow, Step
from ..flows.state import TraceState, Where
from .base import JUMP, OVERWRITTEN, Check, at, call_where, discontinuity, lost_marker, name, ret_where, who
from .catalog import RULES_BY_ID

_IRQ_CALL = 0xB2000011  # OPTEE_SMC_GET_ASYNC_NOTIF_VALUE, which Linux issues from hard IRQ context
_SAME_SMC_NS = 1000  # one SMC printed twice (a log holding several reports of one trace) starts within 1 us


class _Span(NamedTuple):
    """One SMC on a CPU, from entry to return (sorted by ``start``)."""

    start: int
    end: int
    pid: int | None
    task: str | None
    function: str
    a0: int | None
    where: Where
    flow: int

    def twin(self, other: _Span) -> bool:
        """Whether both are one SMC seen twice: same task and function, same start."""
        return self.pid == other.pid and self.function == other.function and \
            abs(self.start - other.start) < _SAME_SMC_NS


class BeginWithoutEnd(Check):
    """An SMC entry without its return (abi.md §7.1: each begin is followed by its end)."""

    rule = RULES_BY_ID["SMC001"]
    traits = frozenset({"unreturned"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        last = flow.last
        cut = last.gap
        if last.call is None or last.ret is not None or cut == "no return probe" or flow.incomplete == "missing begin":
            return ()  # a flow whose begin is missing is judged by that (SMC002, SMC020)
        where = call_where(last)
        what = f"{name(flow)} entered at {at(where)} by {who(flow)} has no return"
        gap = lost_marker(state, where[0], flow.cpus, after=where[1])
        if cut == "trace end":
            return (self.finding(f"{what}: the capture ended while it was in the secure world (a capture "
                                 "artefact, unless that CPU never came back).", where, flow, "info"),)
        jump = discontinuity(cut)
        if jump is not None:
            return (self.finding(f"{what} before the discontinuity at {jump}: {JUMP}, so the flow is cut, not "
                                 "misused.", where, flow, "info"),)
        if cut == "trace start":
            return (self.finding(f"{what}: {OVERWRITTEN}.", where, flow, "info"),)
        if cut == "lost events" or gap is not None:
            lost = f" ({at(gap)})" if gap is not None else ""
            return (self.finding(f"{what}: events were lost on its CPU{lost}, so the flow is incomplete, "
                                 "not misused.", where, flow, "info"),)
        return (self.finding(f"{what}, yet the same call was entered again: the end event is missing "
                             "from an otherwise complete trace, or the driver re-entered the SMC before it "
                             "returned.", where, flow),)


class EndWithoutBegin(Check):
    """An SMC return without its entry. Before a CPU's first entry in a file it is the capture's
    start cutting a call in two (each CPU has its own ring buffer)."""

    rule = RULES_BY_ID["SMC002"]
    traits = frozenset({"unentered"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        first = flow.first
        if first.call is not None:
            return tuple(self._mid_chain(flow, step, state) for step in flow.steps[1:] if step.call is None)
        ret = first.ret
        assert ret is not None
        where = ret_where(first)
        what = f"the SMC return (a0 = {ret.regs[0]:#x}) at {at(where)} by {who(flow)} has no entry"
        gap = lost_marker(state, where[0], flow.cpus, before=where[1])
        cut = first.gap
        if cut == "lost events" or gap is not None:
            lost = f" ({at(gap)})" if gap is not None else ""
            return (self.finding(f"{what}: events were lost on its CPU{lost}, so the flow is incomplete, "
                                 "not misused.", where, flow, "info"),)
        jump = discontinuity(cut)
        if jump is not None:
            return (self.finding(f"{what}: it follows the discontinuity at {jump} ({JUMP}) before any other SMC "
                                 f"of its {'task' if ret.key else 'CPU'}, so the call began before it: the flow is "
                                 "cut, not misused.", where, flow, "info"),)
        if cut == "trace start":
            return (self.finding(f"{what}: {OVERWRITTEN}.", where, flow, "info"),)
        if cut != "missing begin":
            whose = f"{flow.task}-{flow.pid}" if ret.key else f"an SMC entry of CPU {ret.cpu}"
            return (self.finding(f"{what}: it comes before the first SMC of {whose} in this file, so the capture "
                                 "began inside the call (a capture artefact).", where, flow, "info"),)
        whose = "that task's earlier SMCs" if ret.key else "that CPU's earlier entries"
        return (self.finding(f"{what}, although the trace holds {whose}: the begin event is missing from an "
                             "otherwise complete trace.", where, flow),)

    def _mid_chain(self, flow: Flow, step: Step, state: TraceState) -> Finding:
        """A return inside a call's chain whose resume (RETURN_FROM_RPC) begin is missing."""
        assert step.ret is not None
        where = ret_where(step)
        what = (f"the SMC return (a0 = {step.ret.regs[0]:#x}) at {at(where)} by {who(flow)} answers {name(flow)} "
                f"entered at {at(call_where(flow.first))}, but the RETURN_FROM_RPC that resumed it is not in the trace")
        gap = lost_marker(state, where[0], flow.cpus, before=where[1])
        if step.gap == "lost events" or gap is not None:
            lost = f" ({at(gap)})" if gap is not None else ""
            return self.finding(f"{what}: events were lost on its CPU{lost}, so the flow is incomplete, not "
                                "misused.", where, flow, "info")
        if step.gap == "trace start":
            return self.finding(f"{what}: {OVERWRITTEN}.", where, flow, "info")
        return self.finding(f"{what}: the begin event is missing from an otherwise complete trace.", where, flow)


class NestedEntry(Check):
    """An SMC entered on a CPU between another SMC's entry and return on that CPU. The only
    legitimate case is Linux's hard-IRQ GET_ASYNC_NOTIF_VALUE, which runs as soon as the outer SMC
    has left the secure world with FOREIGN_INTR, before its return probe fires."""

    rule = RULES_BY_ID["SMC003"]
    _KEEP = 64  # recent SMCs remembered per CPU

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._recent: dict[tuple[str, int | None], list[_Span]] = {}  # (file, CPU) -> recent SMCs
        self._segment = 0  # times compare within a segment: flows come segment after segment

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        if flow.segment != self._segment:
            self._segment = flow.segment
            self._recent.clear()
        out = []
        function, a0 = name(flow), flow.a0
        for step in flow.steps:
            call, ret = step.call, step.ret
            if call is None or ret is None or call.ts is None or ret.ts is None or call.cpu != ret.cpu:
                continue
            span = _Span(call.ts, ret.ts, call.pid, call.task, function, a0, (call.file, call.line), flow.index)
            spans = self._recent.get((call.file, call.cpu))
            if spans is None:
                spans = self._recent[call.file, call.cpu] = []
            i = bisect_left(spans, (call.ts,))
            for other in (spans[i - 1] if i else None, spans[i] if i < len(spans) else None):
                if other is not None and other.flow != flow.index and other.start < span.end \
                        and span.start < other.end and not other.twin(span):
                    outer, inner = (other, span) if other.start <= span.start else (span, other)
                    if inner.a0 != _IRQ_CALL:
                        out.append(self._nested(outer, inner, call.cpu, flow, state))
                    break
            spans.insert(i, span)
            if len(spans) > self._KEEP:
                del spans[0]
        return out

    def _nested(self, outer: _Span, inner: _Span, cpu: int | None, flow: Flow, state: TraceState) -> Finding:
        text = (f"{inner.function} entered at {at(inner.where)} on CPU {cpu} while {outer.function} entered at "
                f"{at(outer.where)} on that CPU had not returned")
        gap = lost_marker(state, inner.where[0], (cpu,), after=outer.where[1], before=inner.where[1])
        if gap is not None:
            return self.finding(f"{text}, but events were lost in between ({at(gap)}): its return, and the events "
                                "that pair these, may be among them.", inner.where, flow, "info")
        if outer.pid == inner.pid:
            return self.finding(f"{text}, both by {inner.task}-{inner.pid}: one task cannot issue an SMC inside "
                                "its own SMC outside the async-notification IRQ, so a return is missing or the "
                                "probes are misplaced.", inner.where, flow)
        return self.finding(f"{text}: {outer.task}-{outer.pid} was switched out between its trace point and its "
                            "SMC, so its duration includes the other call.", inner.where, flow, "info")


CHECKS = (BeginWithoutEnd, EndWithoutBegin, NestedEntry)
