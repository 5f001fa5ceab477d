"""OP-TEE thread rules (abi.md §7.5 check 16, §8, §12).

optee_os has CFG_NUM_THREADS threads (GET_THREAD_COUNT) and answers ETHREAD_LIMIT to a new
yielding call when none is free (S3; Xen per guest, X5). Linux before 6.8 keeps no count: it
sleeps after ETHREAD_LIMIT and retries the same call, which is routine (hundreds of times in the
6.1 captures). Since 6.8 it asks GET_THREAD_COUNT at probe and waits *before* the SMC when no
thread is free, so a lone >= 6.8 kernel should see next to no ETHREAD_LIMIT.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi.optee import OPTEE_SMC_RETURN_ETHREAD_LIMIT
from ..abi.profiles import Profile
from ..flows.model import Finding, Flow
from ..flows.state import TraceState, Where
from .base import Check, at, call_where, in_segment, lost_marker, name, ret_where, who
from .catalog import RULES_BY_ID

GET_THREAD_COUNT = "OPTEE_SMC_GET_THREAD_COUNT"


def driver_generation(state: TraceState) -> str | None:
    """"6.8+" when the probe asked GET_THREAD_COUNT, "pre-6.8" when the capture shows a probe (its
    EXCHANGE_CAPABILITIES) without it, None when the capture cannot tell."""
    if GET_THREAD_COUNT in state.calls_seen:
        return "6.8+"
    return "pre-6.8" if state.exchange_seen is not None else None


class ThreadsExceeded(Check):
    """More yielding calls in flight than GET_THREAD_COUNT reported."""

    rule = RULES_BY_ID["SMC060"]
    traits = frozenset[str]()  # judged at the end only

    def finish(self, state: TraceState) -> Iterable[Finding]:
        count = in_segment(state.thread_count, state.peak_in_flight_segment)
        peak, where = state.peak_in_flight, state.peak_in_flight_at
        if count is None or where is None or peak <= count.value:
            return ()
        gap = lost_marker(state, where[0], (), before=where[1])
        if gap is not None:
            return (self.finding(f"{peak} yielding calls seemed in flight at once (the last entered at {at(where)}), "
                                 f"more than the {count.value} threads GET_THREAD_COUNT answered at "
                                 f"{at(count.evidence[0])}, but events were lost before ({at(gap)}): a call counted "
                                 "in flight may have ended among them.", where, None, "info"),)
        return (self.finding(f"{peak} yielding calls were in flight at once (the last entered at {at(where)}), but "
                             f"GET_THREAD_COUNT answered {count.value} at {at(count.evidence[0])}: OP-TEE answers "
                             "ETHREAD_LIMIT to the extra calls (S3; Xen per guest, X5). A Linux >= 6.8 driver counts "
                             "its threads and waits before the SMC, so another client or a broken count took them.",
                             where, None, evidence=count.evidence[:1]),)

    def unmet(self, state: TraceState) -> str | None:
        return "the OP-TEE thread count (a GET_THREAD_COUNT answer; Linux < 6.8 does not ask)" \
            if state.thread_count is None else None


class EthreadLimitStorm(Check):
    """ETHREAD_LIMIT answers over the capture: count, busiest second, longest wait for a thread."""

    rule = RULES_BY_ID["SMC061"]
    traits = frozenset({"ethread_limit"})
    _WINDOW = 64  # seconds of per-second counts kept (flows complete up to a wait later)

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._flows = 0  # flows that met ETHREAD_LIMIT
        self._per_second: dict[int, int] = {}
        self._peak: tuple[int, int] = (0, 0)  # (answers in one second, that second)
        self._longest: tuple[int, Flow | None, list[Where]] = (-1, None, [])  # (wait ns, flow, its refusals)

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        if not flow.retries and (flow.last.answer is None or flow.last.answer.status != OPTEE_SMC_RETURN_ETHREAD_LIMIT):
            return ()
        self._flows += 1
        wait, refusals = 0, []
        for step, after in zip(flow.steps, [*flow.steps[1:], None], strict=True):
            if step.answer is None or step.answer.is_rpc or step.answer.status != OPTEE_SMC_RETURN_ETHREAD_LIMIT:
                continue
            refusals.append(ret_where(step))
            if step.end is not None:
                self._count_second(step.end // 1_000_000_000)
                if after is not None and after.start is not None:
                    wait += after.start - step.end
        if wait > self._longest[0]:
            self._longest = (wait, flow, refusals[:3])
        return ()

    def _count_second(self, second: int) -> None:
        counts = self._per_second
        counts[second] = counts.get(second, 0) + 1
        if counts[second] > self._peak[0]:
            self._peak = (counts[second], second)
        if len(counts) > self._WINDOW:
            newest = max(counts)
            for old in [s for s in counts if s < newest - self._WINDOW]:
                del counts[old]

    def finish(self, state: TraceState) -> Iterable[Finding]:
        wait, flow, refusals = self._longest
        if not state.ethread_limit or flow is None:
            return ()
        peak = f"; at most {self._peak[0]} in one second (t = {self._peak[1]} s)" if self._peak[0] > 1 else ""
        entered = f"{name(flow)} entered at {at(call_where(flow.first))} by {who(flow)}"
        longest = f"the longest wait for a free thread was {wait / 1e6:.3f} ms, by {entered} ({flow.retries} " \
                  "retries)" if flow.retries else f"{entered} was not retried in the capture"
        text = f"OP-TEE answered ETHREAD_LIMIT {_times(state.ethread_limit)} to {_times(self._flows, 'call')}" \
               f"{peak}; {longest}."
        count = in_segment(state.thread_count, flow.segment)
        generation = driver_generation(state) if count is not None or state.thread_count is None else None
        if count is not None:
            return (self.finding(f"{text} GET_THREAD_COUNT answered {count.value} at {at(count.evidence[0])}, so the "
                                 "driver (Linux >= 6.8) waits for a free thread before the SMC: something else holds "
                                 "OP-TEE threads (another client, a guest, or threads stuck in RPCs).",
                                 call_where(flow.first), flow, evidence=refusals),)
        why = {"6.8+": "GET_THREAD_COUNT failed, so Linux >= 6.8 keeps no thread count and retries like older "
                       "drivers: routine",
               "pre-6.8": "the probe asked no GET_THREAD_COUNT (a driver before Linux 6.8, e.g. 6.1): it keeps no "
                          "thread count, sleeps and retries the same call, which is routine"}.get(
            generation or "", "the driver's version is not in the capture; before Linux 6.8 this is routine "
                              "(no thread count, sleep and retry)")
        return (self.finding(f"{text} {why[0].upper()}{why[1:]}.", call_where(flow.first), flow, "info",
                             evidence=refusals),)


def _times(n: int, what: str = "time") -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


CHECKS = (ThreadsExceeded, EthreadLimitStorm)
