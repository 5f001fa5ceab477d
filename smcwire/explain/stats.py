"""The numbers of one capture: calls and latency per function, RPCs per type, ETHREAD_LIMIT waits,
peak concurrency against the thread count, incomplete flows.

``StatsCollector.add`` takes each flow as it completes; memory is bounded by the number of distinct
functions and RPC types, not by the trace. Latencies go into log-scaled histograms (``Histogram``).

``StatsCollector.result(state)`` is JSON-ready (durations in nanoseconds; ``{"file", "line"}``
objects point at the trace)::

    {"version": 1,
     "flows": N, "smcs": N,                       # logical calls, and the SMCs they made
     "functions": {NAME: {                        # by the flow's first function, most calls first
         "calls": N, "smcs": N,
         "results": {STATUS: N},                  # final a0 by name ("RETURN_OK", "ENOTAVAIL"…), "value" for
                                                  # functions that return values, "incomplete" for cut flows
         "latency_ns": PERCENTILES | null,        # entry to final return of complete flows, RPCs included
         "secure_ns": N, "normal_ns": N}},        # totals inside SMCs / serving RPCs and waiting, complete flows
     "rpcs": {"total": N, "unanswered": N,
              "by_function": {RPC: {"count": N, "unanswered": N,
                                    "service_ns": PERCENTILES | null}}},  # request returned -> reply issued
     "ethread_limit": {"answers": N, "flows": N,  # ETHREAD_LIMIT answers, flows that got one
                       "longest_wait_ns": N | null, "longest_wait_at": WHERE | null},  # one flow's total wait
     "concurrency": {"peak": N, "peak_at": WHERE | null,   # yielding calls entered and not yet answered
                     "thread_count": N | null, "thread_count_at": WHERE | null},  # GET_THREAD_COUNT
     "incomplete": {REASON: N},                   # "trace end", "no begin", "lost events", "no return probe"…
     "lost_events": N,                            # [LOST N EVENTS] markers
     "percentiles": "…"}                          # how precise the percentiles are (Histogram)
    PERCENTILES = {"count", "min", "p50", "p90", "p99", "max", "mean"}

The RPC command number (OPTEE_RPC_CMD_*) of an RPC CMD is in the optee_msg_arg in shared
memory, which register traces do not show, so RPCs are counted per RPC function only.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..abi.optee import OPTEE_SMC_RETURN_ETHREAD_LIMIT, OPTEE_SMC_RETURN_UNKNOWN_FUNCTION, OPTEE_SMC_RPC_VAL
from ..codec.decode import Return
from ..flows.model import Flow
from ..flows.state import TraceState, Where
from .evidence import short

PRECISION = ("nearest-rank percentiles over log-scaled buckets (16 per power of two): within 2.2 % of the "
             "exact value; count, min, max and mean are exact")


class Histogram:
    """Non-negative integers in log-scaled buckets, 16 per power of two. A percentile is the
    geometric middle of the bucket holding the nearest-rank value, clamped to [min, max], so it
    is within 2**(1/32) - 1 = 2.2 % of the exact value; count, min, max and the sum are exact."""

    SUB = 16
    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = self.total = 0
        self.min = self.max = 0

    def add(self, value: int) -> None:
        self.buckets[int(math.log2(value) * self.SUB) if value > 0 else -1] += 1
        self.min = value if not self.count else min(self.min, value)
        self.max = max(self.max, value)
        self.count += 1
        self.total += value

    def percentile(self, p: float) -> int:
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                middle = 0.0 if index < 0 else 2 ** ((index + 0.5) / self.SUB)
                return round(min(max(middle, self.min), self.max))
        return self.max

    def summary(self) -> dict[str, int] | None:
        if not self.count:
            return None
        return {"count": self.count, "min": self.min, "p50": self.percentile(50), "p90": self.percentile(90),
                "p99": self.percentile(99), "max": self.max, "mean": round(self.total / self.count)}


@dataclass(slots=True)
class _Function:
    calls: int = 0
    smcs: int = 0
    results: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=Histogram)
    secure_ns: int = 0
    normal_ns: int = 0


@dataclass(slots=True)
class _Rpc:
    count: int = 0
    unanswered: int = 0
    service: Histogram = field(default_factory=Histogram)


def _result_key(result: Return) -> str:
    """A final answer by its status name; "value" for functions that answer with values."""
    if result.status == OPTEE_SMC_RETURN_UNKNOWN_FUNCTION:
        return "UNKNOWN_FUNCTION"
    if "status" not in result.fields:
        return "value"
    return short(result.status_name) if result.status_name else f"{result.status:#x}"


def _where(where: Where | None) -> dict[str, Any] | None:
    return None if where is None else {"file": where[0], "line": where[1]}


class StatsCollector:
    """Counts flows as they complete; ``result`` adds what the tracker's state knows."""

    def __init__(self) -> None:
        self.flows = self.smcs = 0
        self.functions: dict[str, _Function] = {}
        self.rpcs: dict[str, _Rpc] = {}
        self.ethread_answers = self.ethread_flows = 0
        self.longest_wait: tuple[int, Where] | None = None
        self.incomplete: Counter[str] = Counter()

    def add(self, flow: Flow) -> None:
        self.flows += 1
        self.smcs += len(flow.steps)
        name = flow.function or (f"{flow.a0:#010x}" if flow.a0 is not None else "(return without entry)")
        stats = self.functions.setdefault(name, _Function())
        stats.calls += 1
        stats.smcs += len(flow.steps)
        result = flow.result
        if flow.incomplete is not None:
            self.incomplete[flow.incomplete] += 1
            stats.results["incomplete"] += 1
        elif result is not None:
            stats.results[_result_key(result)] += 1
        duration = flow.duration
        if flow.incomplete is None and duration is not None:
            stats.latency.add(duration)
            stats.secure_ns += flow.secure_ns
            stats.normal_ns += flow.normal_ns
        for trip in flow.rpcs:
            rpc = self.rpcs.setdefault(trip.function or f"{OPTEE_SMC_RPC_VAL(trip.func):#x}", _Rpc())
            rpc.count += 1
            rpc.unanswered += trip.reply is None
            if trip.normal_ns is not None:
                rpc.service.add(trip.normal_ns)
        if flow.retries:
            self._waits(flow)

    def _waits(self, flow: Flow) -> None:
        """ETHREAD_LIMIT answers of a yielding flow and the time it waited before each retry."""
        answers = wait = 0
        for step, after in zip(flow.steps, [*flow.steps[1:], None], strict=True):
            answer = step.answer
            if answer is None or answer.is_rpc or answer.status != OPTEE_SMC_RETURN_ETHREAD_LIMIT:
                continue
            answers += 1
            if after is not None and after.start is not None and step.end is not None:
                wait += after.start - step.end
        if answers:
            self.ethread_answers += answers
            self.ethread_flows += 1
            if self.longest_wait is None or wait > self.longest_wait[0]:
                self.longest_wait = (wait, (flow.file, flow.first_line))

    def result(self, state: TraceState) -> dict[str, Any]:
        """The statistics as a JSON-ready dict (layout in the module docstring)."""
        functions = sorted(self.functions.items(), key=lambda kv: (-kv[1].calls, kv[0]))
        rpcs = sorted(self.rpcs.items(), key=lambda kv: (-kv[1].count, kv[0]))
        count = state.thread_count
        return {
            "version": 1,
            "flows": self.flows,
            "smcs": self.smcs,
            "functions": {name: {"calls": f.calls, "smcs": f.smcs, "results": dict(f.results.most_common()),
                                 "latency_ns": f.latency.summary(), "secure_ns": f.secure_ns,
                                 "normal_ns": f.normal_ns} for name, f in functions},
            "rpcs": {"total": sum(r.count for _, r in rpcs), "unanswered": sum(r.unanswered for _, r in rpcs),
                     "by_function": {name: {"count": r.count, "unanswered": r.unanswered,
                                            "service_ns": r.service.summary()} for name, r in rpcs}},
            "ethread_limit": {"answers": self.ethread_answers, "flows": self.ethread_flows,
                              "longest_wait_ns": self.longest_wait[0] if self.longest_wait else None,
                              "longest_wait_at": _where(self.longest_wait[1] if self.longest_wait else None)},
            "concurrency": {"peak": state.peak_in_flight, "peak_at": _where(state.peak_in_flight_at),
                            "thread_count": count.value if count is not None else None,
                            "thread_count_at": _where(count.evidence[0] if count is not None else None)},
            "incomplete": dict(self.incomplete.most_common()),
            "lost_events": len(state.lost),
            "percentiles": PRECISION,
        }
