"""Capability rules (abi.md §5, §7.1, §7.5 checks 8, 11-14).

The capabilities come from EXCHANGE_CAPABILITIES (``state.sec_caps``, when the capture has the
fast calls and their results) or, for dynamic shared memory, from the driver's probe messages
(``dynamic shared memory is enabled``). Linux chooses its calls from them (``smc_abi.c``): RPC_ARG
or REGD_ARG only with SEC_CAP_RPC_ARG, REGD_ARG only for registered (dynamic) shared memory, the
async-notification calls only with SEC_CAP_ASYNC_NOTIF, ENABLE_SHM_CACHE only when
``rpc_param_count`` is 0.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi.optee import NSEC_CAP_VALID, OPTEE_SMC_RETURN_EBUSY, OPTEE_SMC_RETURN_OK, SEC_CAP_BITS
from ..abi.profiles import Profile
from ..flows.model import Finding, Flow
from ..flows.state import Fact, TraceState, Where
from .base import (
    CALL_WITH_ARG,
    CALL_WITH_REGD_ARG,
    CALL_WITH_RPC_ARG,
    CALLS_UID,
    M32,
    Check,
    answered,
    at,
    call_where,
    in_segment,
    lost_marker,
    name,
    ret_where,
    who,
)
from .catalog import RULES_BY_ID

EXCHANGE = "OPTEE_SMC_EXCHANGE_CAPABILITIES"
ENABLE_ASYNC_NOTIF = "OPTEE_SMC_ENABLE_ASYNC_NOTIF"
GET_ASYNC_NOTIF_VALUE = "OPTEE_SMC_GET_ASYNC_NOTIF_VALUE"
DISABLE_SHM_CACHE = "OPTEE_SMC_DISABLE_SHM_CACHE"
ENABLE_SHM_CACHE = "OPTEE_SMC_ENABLE_SHM_CACHE"
SYSTEM_CALLS = frozenset({"OPTEE_SMC_CALL_SYSTEM_WITH_ARG", "OPTEE_SMC_CALL_SYSTEM_WITH_RPC_ARG",
                          "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG"})  # the sysinv-* proposals
RPC_ARG_CALLS = frozenset({CALL_WITH_RPC_ARG, CALL_WITH_REGD_ARG, "OPTEE_SMC_CALL_SYSTEM_WITH_RPC_ARG",
                           "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG"})
REGD_CALLS = frozenset({CALL_WITH_REGD_ARG, "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG"})
RPC_ARG = SEC_CAP_BITS["OPTEE_SMC_SEC_CAP_RPC_ARG"]
DYNAMIC_SHM = SEC_CAP_BITS["OPTEE_SMC_SEC_CAP_DYNAMIC_SHM"]
ASYNC_NOTIF = SEC_CAP_BITS["OPTEE_SMC_SEC_CAP_ASYNC_NOTIF"]
NO_EXCHANGE = "an EXCHANGE_CAPABILITIES answer (the driver probe is not in the capture)"


def caps_text(caps: Fact) -> str:
    return f"EXCHANGE_CAPABILITIES answered SEC caps {caps.value:#x} at {at(caps.evidence[0])}"


class CallBeforeExchange(Check):
    """A call whose use depends on the capabilities, made after a probe's CALLS_UID but before its
    EXCHANGE_CAPABILITIES. Judged by trace lines, since flows may complete out of order (an entry
    probe without a return probe closes a fast call only at its CPU's next SMC), so suspects wait
    for the end of the capture."""

    rule = RULES_BY_ID["SMC040"]
    _DEPENDENT = frozenset({CALL_WITH_ARG, CALL_WITH_RPC_ARG, CALL_WITH_REGD_ARG, ENABLE_ASYNC_NOTIF,
                            GET_ASYNC_NOTIF_VALUE, ENABLE_SHM_CACHE, "OPTEE_SMC_GET_SHM_CONFIG",
                            "OPTEE_SMC_GET_PROTMEM_CONFIG"}) | SYSTEM_CALLS
    functions = _DEPENDENT | {CALLS_UID, EXCHANGE}
    _KEEP = 16  # lines remembered per file, suspects kept

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._uids: dict[str, list[int]] = {}  # file -> lines of its latest CALLS_UID calls
        self._exchanges: dict[str, list[int]] = {}  # file -> lines of its latest EXCHANGE_CAPABILITIES calls
        self._suspects: list[tuple[Flow, Where]] = []  # (flow, the CALLS_UID before it) with no exchange between

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        if flow.function in (CALLS_UID, EXCHANGE):
            file, line = call_where(flow.first)
            lines = (self._uids if flow.function == CALLS_UID else self._exchanges).setdefault(file, [])
            lines.append(line)
            del lines[:-self._KEEP]
            self._suspects = [(f, p) for f, _ in self._suspects if (p := self._probe(f)) is not None]
        elif self._uids and len(self._suspects) < self._KEEP and (probe := self._probe(flow)) is not None:
            self._suspects.append((flow, probe))
        return ()

    def _probe(self, flow: Flow) -> Where | None:
        """The CALLS_UID that opened the probe ``flow`` is in, if no EXCHANGE_CAPABILITIES came since."""
        file, line = call_where(flow.first)
        uid = max((u for u in self._uids.get(file, ()) if u < line), default=None)
        if uid is None or any(uid < e < line for e in self._exchanges.get(file, ())):
            return None
        return file, uid

    def finish(self, state: TraceState) -> Iterable[Finding]:
        out = []
        for flow, probe in self._suspects:
            where = call_where(flow.first)
            text = f"{name(flow)} at {at(where)} by {who(flow)} comes after the probe's CALLS_UID at {at(probe)} but " \
                   "before EXCHANGE_CAPABILITIES"
            gap = lost_marker(state, where[0], (), after=probe[1])  # a CPU's marker comes before its next event
            jump = next(((f, line) for f, line, *_ in state.discontinuities_at
                         if f == where[0] and probe[1] < line <= where[1]), None)
            if gap is not None:
                out.append(self.finding(f"{text}, but events were lost in between ({at(gap)}), so the exchange may "
                                        "be among them.", where, flow, "info"))
            elif jump is not None:
                out.append(self.finding(f"{text}, but the trace's time went back in between ({at(jump)}: two captures "
                                        "in one file, or a garbled timestamp), so the exchange may be missing.",
                                        where, flow, "info"))
            else:
                out.append(self.finding(f"{text}: the normal world cannot know yet whether OP-TEE supports it (Linux "
                                        f"makes no such call before the exchange); {answered(flow.first)}.", where,
                                        flow))
        self._suspects.clear()
        return out


class RpcArgWithoutCap(Check):
    """CALL_WITH_RPC_ARG / CALL_WITH_REGD_ARG without SEC_CAP_RPC_ARG (check 8)."""

    rule = RULES_BY_ID["SMC041"]
    functions = RPC_ARG_CALLS

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        caps = in_segment(state.sec_caps, flow.segment)
        if caps is None or caps.value & RPC_ARG:
            return ()
        where = call_where(flow.first)
        return (self.finding(f"{name(flow)} at {at(where)} by {who(flow)} needs OPTEE_SMC_SEC_CAP_RPC_ARG (0x40), but "
                             f"{caps_text(caps)}: Linux uses these calls only when OP-TEE reports it, "
                             "optee_os before 3.17 answers EBADCMD (S2) and Xen does not forward them (X1, X4); "
                             f"{answered(flow.first)}.", where, flow),)

    def unmet(self, state: TraceState) -> str | None:
        return NO_EXCHANGE if state.sec_caps is None else None


class RegdArgWithoutDynamicShm(Check):
    """CALL_WITH_REGD_ARG without dynamic shared memory, judged from the SEC caps or, without them,
    from the driver's probe messages; decided at the end when that evidence comes later."""

    rule = RULES_BY_ID["SMC042"]
    functions = REGD_CALLS

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._read = 0  # state.messages scanned for the driver's "initialized driver"
        self._probed: Where | None = None
        self._pending: tuple[Flow, int] | None = None  # the first undecided flow, and how many there were

    def _verdict(self, state: TraceState, segment: int) -> tuple[bool, Where] | None:
        """(dynamic SHM negotiated?, the line that tells), or None if unknown."""
        caps = in_segment(state.sec_caps, segment)
        if caps is not None:
            return bool(caps.value & DYNAMIC_SHM), caps.evidence[0]
        if len(state.messages) > self._read:
            for message in state.messages[self._read:]:
                if message.what == "initialized" and self._probed is None:
                    self._probed = (message.file, message.line)
            self._read = len(state.messages)
        if self._probed is None:
            return None
        dmesg = state.capabilities_from_dmesg.get("dynamic_shm")
        return (True, dmesg) if dmesg is not None else (False, self._probed)

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        verdict = self._verdict(state, flow.segment)
        if verdict is None:
            first, count = self._pending or (flow, 0)
            self._pending = (first, count + 1)
            return ()
        return () if verdict[0] else (self._finding(flow, verdict[1], 1, state),)

    def finish(self, state: TraceState) -> Iterable[Finding]:
        if self._pending is None:
            return ()
        flow, count = self._pending
        verdict = self._verdict(state, flow.segment)
        if verdict is None or verdict[0]:
            return ()
        return (self._finding(flow, verdict[1], count, state),)

    def _finding(self, flow: Flow, evidence: Where, count: int, state: TraceState) -> Finding:
        """The finding, with the evidence at line ``evidence`` (the SEC caps, or the driver's probe
        without "dynamic shared memory is enabled")."""
        where = call_where(flow.first)
        more = f" (and {count - 1} more such calls)" if count > 1 else ""
        caps = in_segment(state.sec_caps, flow.segment)
        why = caps_text(caps) if caps is not None else (
            f"the driver's probe (\"initialized driver\" at {at(evidence)}) never said \"dynamic shared memory is "
            "enabled\"")
        return self.finding(f"{name(flow)} at {at(where)} by {who(flow)}{more} names registered shared memory, "
                            f"but dynamic shared memory was not negotiated: {why}. Linux registers shared "
                            "memory, and so uses CALL_WITH_REGD_ARG, only with OPTEE_SMC_SEC_CAP_DYNAMIC_SHM; an "
                            "optee_os without CFG_CORE_DYN_SHM knows no registered cookie and answers EBADADDR "
                            f"(S8); {answered(flow.first)}.", where, flow, evidence=(evidence,))


class NsecCapsUnknownBits(Check):
    """EXCHANGE_CAPABILITIES offering undefined normal-world capability bits (check 11)."""

    rule = RULES_BY_ID["SMC043"]
    functions = frozenset({EXCHANGE})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        call = flow.first.call
        valid = self.profile.nsec_caps_mask if self.profile.nsec_caps_mask is not None else NSEC_CAP_VALID
        if call is None or not call.regs[1] & M32 & ~valid:
            return ()
        nsec = call.regs[1] & M32
        where = call_where(flow.first)
        return (self.finding(f"EXCHANGE_CAPABILITIES at {at(where)} by {who(flow)} offers NSEC caps {nsec:#x}: bits "
                             f"{nsec & ~valid:#x} are undefined (only OPTEE_SMC_NSEC_CAP_UNIPROCESSOR, bit 0, "
                             "exists), so optee_os answers ENOTAVAIL (S12, tee_entry_exchange_capabilities) and "
                             f"Linux fails the probe with \"capabilities mismatch\"; {answered(flow.first)}.",
                             where, flow),)


class ExchangeA3Mbz(Check):
    """EXCHANGE_CAPABILITIES answered OK with a3 bits 31:8 set (check 14)."""

    rule = RULES_BY_ID["SMC044"]
    functions = frozenset({EXCHANGE})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        answer = flow.first.answer
        if answer is None or answer.status != OPTEE_SMC_RETURN_OK or "rpc_param_count" not in answer.fields \
                or len(answer.regs) < 4 or not (answer.regs[3] & M32) >> 8:
            return ()
        where = ret_where(flow.first)
        return (self.finding(f"EXCHANGE_CAPABILITIES answered a3 = {answer.regs[3] & M32:#x} at {at(where)}: bits "
                             "31:8 are reserved and must be zero (only bits 7:0, the RPC parameter count, are "
                             "defined); Linux reads the count as (u8)a3.", where, flow),)


class ShmCacheWithRpcArg(Check):
    """ENABLE_SHM_CACHE although RPC_ARG with a preallocated RPC argument was negotiated (check 12)."""

    rule = RULES_BY_ID["SMC045"]
    functions = frozenset({ENABLE_SHM_CACHE})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        caps, count = in_segment(state.sec_caps, flow.segment), in_segment(state.rpc_param_count, flow.segment)
        if caps is None or not caps.value & RPC_ARG or count is None or count.value == 0:
            return ()
        where = call_where(flow.first)
        return (self.finding(f"ENABLE_SHM_CACHE was issued at {at(where)} by {who(flow)}, although {caps_text(caps)} "
                             "with RPC_ARG "
                             f"and {count.value} RPC parameters: Linux enables the cache only when rpc_param_count "
                             "is 0, and with a preallocated RPC argument optee_os drops its cached buffer on every "
                             f"call (call_entry_std); {answered(flow.first)}.", where, flow),)

    def unmet(self, state: TraceState) -> str | None:
        return NO_EXCHANGE if state.sec_caps is None else None


class DisableShmCacheLoop(Check):
    """A DISABLE_SHM_CACHE loop that stops while OP-TEE still answers OK (a buffer to free) or EBUSY
    (retry): the normal world must call it until ENOTAVAIL (check 12)."""

    rule = RULES_BY_ID["SMC046"]
    _KEEP_GOING = frozenset({OPTEE_SMC_RETURN_OK, OPTEE_SMC_RETURN_EBUSY})

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._open: dict[tuple[int | None, str | None], Flow] = {}  # task -> its DISABLE_SHM_CACHE to repeat

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        key = (flow.pid, flow.task)
        if flow.function == DISABLE_SHM_CACHE:
            result = flow.result
            if result is not None and result.status in self._KEEP_GOING:
                self._open[key] = flow
            else:
                self._open.pop(key, None)
            return ()
        if flow.function == GET_ASYNC_NOTIF_VALUE or key not in self._open:  # the IRQ may come in between
            return ()
        last = self._open.pop(key)
        return (self.finding(f"DISABLE_SHM_CACHE at {at(call_where(last.first))} by {who(last)} was answered "
                             f"{last.result_name} at {at(ret_where(last.first))}, and the task went on with "
                             f"{name(flow)} at {at(call_where(flow.first))}: the loop must go on until ENOTAVAIL "
                             "(OK hands back a cached buffer to free; EBUSY means a thread is busy, S13), else "
                             "OP-TEE keeps cached buffers the kernel never frees.", call_where(flow.first), flow),)

    def finish(self, state: TraceState) -> Iterable[Finding]:
        out = [self.finding(f"DISABLE_SHM_CACHE at {at(call_where(f.first))} by {who(f)} was answered "
                            f"{f.result_name} and the capture ends there: whether the loop went on to ENOTAVAIL is "
                            "not in the trace.", call_where(f.first), f, "info") for f in self._open.values()]
        self._open.clear()
        return out


class AsyncNotifWithoutCap(Check):
    """ENABLE_ASYNC_NOTIF / GET_ASYNC_NOTIF_VALUE without SEC_CAP_ASYNC_NOTIF (check 13)."""

    rule = RULES_BY_ID["SMC047"]
    functions = frozenset({ENABLE_ASYNC_NOTIF, GET_ASYNC_NOTIF_VALUE})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        caps = in_segment(state.sec_caps, flow.segment)
        if caps is None or caps.value & ASYNC_NOTIF:
            return ()
        where = call_where(flow.first)
        return (self.finding(f"{name(flow)} at {at(where)} by {who(flow)} needs OPTEE_SMC_SEC_CAP_ASYNC_NOTIF (0x20), "
                             f"but {caps_text(caps)}: an optee_os without CFG_CORE_ASYNC_NOTIF answers "
                             f"UNKNOWN_FUNCTION (S17); {answered(flow.first)}.", where, flow),)

    def unmet(self, state: TraceState) -> str | None:
        return NO_EXCHANGE if state.sec_caps is None else None


class AsyncNotifA2Mbz(Check):
    """GET_ASYNC_NOTIF_VALUE answered OK with a2 bits 31:2 set (check 13)."""

    rule = RULES_BY_ID["SMC048"]
    functions = frozenset({GET_ASYNC_NOTIF_VALUE})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        answer = flow.first.answer
        if answer is None or answer.status != OPTEE_SMC_RETURN_OK or len(answer.regs) < 3 \
                or not (answer.regs[2] & M32) >> 2:
            return ()
        where = ret_where(flow.first)
        return (self.finding(f"GET_ASYNC_NOTIF_VALUE answered a2 = {answer.regs[2] & M32:#x} at {at(where)}: only "
                             "bit 0 (VALID) and bit 1 (PENDING) are defined, bits 31:2 must be zero.", where, flow),)


CHECKS = (CallBeforeExchange, RpcArgWithoutCap, RegdArgWithoutDynamicShm, NsecCapsUnknownBits, ExchangeA3Mbz,
          ShmCacheWithRpcArg, DisableShmCacheLoop, AsyncNotifWithoutCap, AsyncNotifA2Mbz)
