"""RPC round-trip rules (abi.md §4, §7.5 checks 5, 6, 18).

OP-TEE suspends a thread on each RPC and returns its id in a3; RETURN_FROM_RPC must pass that a3
back, and optee_os resumes only a thread that is SUSPENDED with a3 < CFG_NUM_THREADS, answering
ERESUME otherwise (S4, ``thread_resume_from_rpc``; Xen X10). A thread whose RPC is never answered
stays suspended: one of CFG_NUM_THREADS threads is gone until reboot.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi.optee import OPTEE_SMC_RETURN_ERESUME, OPTEE_SMC_RPC_FUNC_FOREIGN_INTR
from ..abi.profiles import Profile
from ..flows.model import Finding, Flow, RpcTrip
from ..flows.state import TraceState, Where
from .base import (
    JUMP,
    M32,
    OVERWRITTEN,
    RETURN_FROM_RPC,
    Check,
    answered,
    at,
    call_where,
    discontinuity,
    lost_marker,
    name,
    ret_where,
    status_of,
    who,
)
from .catalog import RULES_BY_ID


def _rpc(trip: RpcTrip) -> str:
    return f"RPC {trip.function or hex(0xFFFF0000 | trip.func)} from OP-TEE thread {trip.thread} " \
           f"at {at(ret_where(trip.request))}"


def _lost_between(state: TraceState, trip: RpcTrip, flow: Flow) -> Where | None:
    """A LOST marker between an RPC request and the RETURN_FROM_RPC taken as its answer."""
    request, reply = trip.request.ret, trip.reply
    if request is None or reply is None or reply.call is None:
        return None
    return lost_marker(state, request.file, flow.cpus, after=request.line, before=reply.call.line)


class ResumeWithoutRpc(Check):
    """A flow that starts with RETURN_FROM_RPC: no RPC request of this call precedes the resume."""

    rule = RULES_BY_ID["SMC020"]
    traits = frozenset({"resume", "thread"})  # judges resumes, notes the threads of the other calls

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._threads: set[int] = set()  # OP-TEE thread ids seen in RPC requests of the segment
        self._segment = 0

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        if flow.segment != self._segment:
            self._segment = flow.segment
            self._threads.clear()
        if flow.function != RETURN_FROM_RPC:
            if flow.thread is not None:
                self._threads.add(flow.thread)
            return ()
        first = flow.first
        assert first.decoded is not None
        thread = first.decoded.fields.get("thread_id")
        where = call_where(first)
        status = status_of(first)
        answer = answered(first)
        text = f"RETURN_FROM_RPC at {at(where)} by {who(flow)} resumes OP-TEE thread {thread}, but no RPC request " \
               f"of this call precedes it"
        if status == OPTEE_SMC_RETURN_ERESUME:
            return (self.finding(f"{text}; {answer}: thread {thread} was not suspended (optee_os "
                                 "thread_resume_from_rpc resumes only a SUSPENDED thread with a3 < CFG_NUM_THREADS, "
                                 "S4; Xen X10).", where, flow),)
        gap = lost_marker(state, where[0], flow.cpus, before=where[1])
        if flow.incomplete == "lost events" or gap is not None:
            return (self.finding(f"{text}: events were lost before it ({at(gap) if gap else 'on its CPU'}), "
                                 "so the RPC request is probably among them.", where, flow, "info"),)
        jump = discontinuity(flow.incomplete)
        if jump is not None:
            return (self.finding(f"{text}; {answer}: its task's SMCs before it precede the discontinuity at {jump} "
                                 f"({JUMP}), so the RPC request is probably before it.", where, flow, "info"),)
        if flow.incomplete != "missing begin" or thread not in self._threads:
            return (self.finding(f"{text}; {answer}: the RPC that suspended thread {thread} predates the "
                                 "capture (a capture artefact).", where, flow, "info"),)
        return (self.finding(f"{text}; {answer}, although the trace shows thread {thread}'s earlier RPCs: the "
                             "request that suspended it this time is missing.", where, flow, "warning"),)


class ResumeThreadMismatch(Check):
    """RETURN_FROM_RPC whose a3 is not the thread id of the RPC it answers (check 5)."""

    rule = RULES_BY_ID["SMC021"]
    traits = frozenset({"resume_altered"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        out = []
        for trip in flow.rpcs:
            reply = trip.reply
            if reply is None or reply.decoded is None or trip.thread is None:
                continue
            resumed = reply.decoded.fields.get("thread_id")
            if resumed is None or resumed == trip.thread:
                continue
            text = f"RETURN_FROM_RPC at {at(call_where(reply))} by {who(flow)} passes a3 = {resumed}, but it " \
                   f"answers the {_rpc(trip)}"
            gap = _lost_between(state, trip, flow)
            if gap is not None:
                out.append(self.finding(f"{text}; events were lost in between ({at(gap)}), so it may answer a later "
                                        "RPC among them.", call_where(reply), flow, "info"))
                continue
            consequence = "OP-TEE answers ERESUME when that thread is not suspended (thread_resume_from_rpc, S4; " \
                          "Xen X10), and resumes the wrong call when it is"
            out.append(self.finding(f"{text}: {consequence}; {answered(reply)}.", call_where(reply), flow))
        return out


class ResumeInfoNotPreserved(Check):
    """RETURN_FROM_RPC that changes resume registers the normal world can see (check 6): a6 and a7
    must stay as the call set them (a7 names the guest under virtualization, S15), and a
    FOREIGN_INTR reply must pass a1-a2 back unchanged ("a1-a7 preserved")."""

    rule = RULES_BY_ID["SMC022"]
    traits = frozenset({"resume_altered"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        base = flow.first.call
        if not flow.rpcs or base is None:
            return ()
        out = []
        kept = base.regs[6:8]
        for trip in flow.rpcs:
            reply, request = trip.reply, trip.request.ret
            if reply is None or reply.call is None or request is None:
                continue
            regs = reply.call.regs
            intr = trip.func == OPTEE_SMC_RPC_FUNC_FOREIGN_INTR
            if regs[6:8] == kept and (not intr or regs[1:3] == request.regs[1:3]):
                continue
            changed = [] if regs[6:8] == kept else [
                f"a{i} = {regs[i] & M32:#x} where the call at {base.file}:{base.line} had {base.regs[i] & M32:#x}"
                for i in (6, 7) if i < len(regs) and i < len(base.regs) and (regs[i] ^ base.regs[i]) & M32]
            if intr and len(request.regs) > 2 and \
                    ((regs[1] ^ request.regs[1]) | (regs[2] ^ request.regs[2])) & M32:
                changed.append(f"a1:a2 = {regs[1] & M32:#x}:{regs[2] & M32:#x} where the request had "
                               f"{request.regs[1] & M32:#x}:{request.regs[2] & M32:#x}")
            gap = _lost_between(state, trip, flow) if changed else None
            if gap is not None:
                out.append(self.finding(
                    f"RETURN_FROM_RPC at {at(call_where(reply))} by {who(flow)}, answering the {_rpc(trip)}, changes "
                    f"resume information ({'; '.join(changed)}), but events were lost in between ({at(gap)}), so it "
                    "may answer a later RPC among them.", call_where(reply), flow, "info"))
            elif changed:
                out.append(self.finding(
                    f"RETURN_FROM_RPC at {at(call_where(reply))} by {who(flow)}, answering the {_rpc(trip)}, "
                    f"changes resume information: {'; '.join(changed)}. optee_smc.h requires a3-a7 (a1-a7 after "
                    "FOREIGN_INTR) to be passed back as OP-TEE left them; with virtualization a7 selects the "
                    "guest (S15).", call_where(reply), flow))
        return out


class RpcUnanswered(Check):
    """A flow that ends on an RPC request: the normal world never resumed the thread."""

    rule = RULES_BY_ID["SMC023"]
    traits = frozenset({"incomplete"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        answer = flow.last.answer
        if answer is None or not answer.is_rpc or flow.incomplete is None or not flow.rpcs:
            return ()
        trip = flow.rpcs[-1]
        where = ret_where(flow.last)
        text = f"{name(flow)} entered at {at(call_where(flow.first))} by {who(flow)} ended on the {_rpc(trip)}"
        if flow.incomplete == "unanswered":
            return (self.finding(f"{text}: the task's next SMC was not its RETURN_FROM_RPC, so OP-TEE thread "
                                 f"{trip.thread} stays suspended and is lost to every later call (optee_os "
                                 "thread_rpc).", where, flow),)
        if flow.incomplete == "trace start":
            return (self.finding(f"{text}, and its task's next SMC was no RETURN_FROM_RPC: {OVERWRITTEN}.", where,
                                 flow, "info"),)
        why = "the capture stopped while" if flow.incomplete == "trace end" else \
            f"the trace shows no RETURN_FROM_RPC for it ({flow.incomplete}):"
        return (self.finding(f"{text}, and {why} OP-TEE thread {trip.thread} was suspended, waiting for the normal "
                             "world (a capture artefact).", where, flow, "info"),)


class UnknownRpcFunction(Check):
    """An RPC request with an undefined function number (check 18)."""

    rule = RULES_BY_ID["SMC024"]
    traits = frozenset({"rpc_unknown"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        out = []
        for trip in flow.rpcs:
            if trip.function is None:
                warned = [(m.file, m.line) for m in state.messages
                          if m.what == "unknown_rpc" and m.data.get("func") == trip.func]
                logged = f" (the driver's warning: {', '.join(at(w) for w in warned[:3])})" if warned else ""
                out.append(self.finding(
                    f"{name(flow)} by {who(flow)} got RPC function {trip.func:#x} from OP-TEE thread {trip.thread} "
                    f"at {at(ret_where(trip.request))}: no OPTEE_SMC_RPC_FUNC_* has that number; Linux warns "
                    f"\"Unknown RPC func\" and resumes (Xen resumes it unchanged, X12){logged}.",
                    ret_where(trip.request), flow, evidence=warned[:3]))
        return out


CHECKS = (ResumeWithoutRpc, ResumeThreadMismatch, ResumeInfoNotPreserved, RpcUnanswered, UnknownRpcFunction)
