"""System-thread rules, per ABI profile (abi.md §8).

mainline: Linux >= 6.8 asks GET_THREAD_COUNT at probe and lets a session become a system session
(SCMI over OP-TEE) only when the count is above 1, reserving one thread for it; no ABI change.
sysinv-*: the 2023 proposals, never merged: a system invocation (0x32000014, or a call-with-arg ID
with flag 0x8000) runs on a thread OP-TEE provisions when it reports SEC_CAP_SYSTEM_THREAD
(bit 7); v2 also reserves one with RESERVE_SYS_THREAD.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi.optee import OPTEE_SMC_RETURN_OK
from ..abi.profiles import Profile
from ..abi.proposals import SEC_CAP_BITS_SYSINV
from ..flows.model import Finding, Flow
from ..flows.state import TraceState, Where
from .base import Check, answered, at, call_where, in_segment, name, ret_where, who
from .capabilities import NO_EXCHANGE, SYSTEM_CALLS, caps_text
from .catalog import RULES_BY_ID
from .threads import GET_THREAD_COUNT

SYSTEM_THREAD = SEC_CAP_BITS_SYSINV["OPTEE_SMC_SEC_CAP_SYSTEM_THREAD"]
RESERVE = "OPTEE_SMC_CALL_RESERVE_SYS_THREAD"


class SystemThreadUnavailable(Check):
    """mainline: GET_THREAD_COUNT gives Linux >= 6.8 no thread to reserve for system sessions."""

    rule = RULES_BY_ID["SMC080"]
    functions = frozenset({GET_THREAD_COUNT})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        answer = flow.first.answer
        count = answer.fields.get("thread_count") if answer is not None else None
        if answer is None or answer.status != OPTEE_SMC_RETURN_OK or count is None or count > 1:
            return ()  # a failed GET_THREAD_COUNT is explained by SMC072
        where = ret_where(flow.first)
        return (self.finding(f"System sessions cannot get a reserved thread: GET_THREAD_COUNT returned {count} at "
                             f"{at(where)}, and Linux >= 6.8 reserves one only when the count is above 1 "
                             "(tee_client_system_session fails), so SCMI over OP-TEE can deadlock when that thread "
                             "waits in an RPC.", where, flow),)


class SysinvWithoutCap(Check):
    """sysinv-*: a system invocation although OP-TEE did not report SEC_CAP_SYSTEM_THREAD."""

    rule = RULES_BY_ID["SMC081"]
    functions = SYSTEM_CALLS

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        caps = in_segment(state.sec_caps, flow.segment)
        if caps is None or caps.value & SYSTEM_THREAD:
            return ()
        where = call_where(flow.first)
        return (self.finding(f"System invocation {name(flow)} at {at(where)} by {who(flow)} needs "
                             f"OPTEE_SMC_SEC_CAP_SYSTEM_THREAD (bit 7), but {caps_text(caps)}: the proposal lets the "
                             "driver use it only with that capability, and an OP-TEE without it does not know the ID "
                             "(mainline optee_os answers EBADCMD to a yielding ID it does not know, S2); "
                             f"{answered(flow.first)}.", where, flow),)

    def unmet(self, state: TraceState) -> str | None:
        return NO_EXCHANGE if state.sec_caps is None else None


class SystemThreadUnused(Check):
    """sysinv-*: system threads provisioned but no system invocation in the whole capture."""

    rule = RULES_BY_ID["SMC082"]
    functions = SYSTEM_CALLS | {RESERVE}

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._reserved: Where | None = None
        self._used = False

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        if flow.function != RESERVE:
            self._used = True
        elif self._reserved is None and flow.result is not None and flow.result.status == OPTEE_SMC_RETURN_OK:
            self._reserved = ret_where(flow.last)
        return ()

    def finish(self, state: TraceState) -> Iterable[Finding]:
        if self._used:
            return ()
        if self._reserved is not None:
            return (self.finding(f"RESERVE_SYS_THREAD was answered OK at {at(self._reserved)}, but no system "
                                 "invocation follows in the capture: the reserved thread is withheld from every "
                                 "other call for nothing.", self._reserved),)
        caps = state.sec_caps
        if caps is not None and caps.value & SYSTEM_THREAD:
            return (self.finding(f"{caps_text(caps)}, with SEC_CAP_SYSTEM_THREAD: OP-TEE provisions threads for "
                                 "system invocations, but none follows in the capture, so they stay idle.",
                                 caps.evidence[0], None, "info"),)
        return ()


CHECKS = (SystemThreadUnavailable, SysinvWithoutCap, SystemThreadUnused)
