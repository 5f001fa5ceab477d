"""What the rule modules share: the ``Check`` base class, the flow traits that route flows to
checks, and helpers that name trace lines.

A flow's traits (``traits_of``, ``TRAITS``) are what it shows beyond a quiet call, a yielding call
whose RPCs were resumed as OP-TEE left them and which was answered OK; ``Check.traits`` names the
ones a check needs:

- ``unentered``: a step without its entry event;
- ``unreturned``: a step without its return event;
- ``incomplete``: the tracker marked the flow cut (``Flow.incomplete``);
- ``not_ok``: no final OPTEE_SMC_RETURN_OK answer (another status, an RPC request or no answer);
- ``fast``: a fast call;
- ``resume``: the flow begins with RETURN_FROM_RPC;
- ``ethread_limit``: an ETHREAD_LIMIT answer, retried (``Flow.retries``) or final;
- ``thread``: its RPCs named the OP-TEE thread that runs it (``Flow.thread``);
- ``rpc_alloc``, ``rpc_free``: an RPC ALLOC, an RPC FREE;
- ``rpc_shm_cmd``: an RPC CMD whose message is in RPC-allocated memory: it names a cookie, or the
  call is a CALL_WITH_ARG, which has no preallocated RPC argument;
- ``rpc_unknown``: an RPC of an undefined function;
- ``resume_altered``: a RETURN_FROM_RPC that does not pass back what OP-TEE left: another thread
  id in a3 than the request's, a6-a7 other than the call's, or a1-a2 other than a FOREIGN_INTR
  request's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from ..abi.optee import (
    OPTEE_SMC_RETURN_ETHREAD_LIMIT,
    OPTEE_SMC_RETURN_OK,
    OPTEE_SMC_RPC_FUNC_ALLOC,
    OPTEE_SMC_RPC_FUNC_CMD,
    OPTEE_SMC_RPC_FUNC_FOREIGN_INTR,
    OPTEE_SMC_RPC_FUNC_FREE,
)
from ..abi.profiles import Profile
from ..flows.model import DISCONTINUITY, Finding, Flow, Step
from ..flows.state import Fact, TraceState, Where
from .catalog import Rule

M32 = 0xFFFFFFFF
TRUSTED_OS = range(50, 64)  # SMCCC owners routed to the Trusted OS (TF-A OEN_TOS_START..END)
CALL_WITH_ARG = "OPTEE_SMC_CALL_WITH_ARG"
CALL_WITH_RPC_ARG = "OPTEE_SMC_CALL_WITH_RPC_ARG"
CALL_WITH_REGD_ARG = "OPTEE_SMC_CALL_WITH_REGD_ARG"
RETURN_FROM_RPC = "OPTEE_SMC_CALL_RETURN_FROM_RPC"
CALLS_UID = "OPTEE_SMC_CALLS_UID"
TRAITS = frozenset({"unentered", "unreturned", "incomplete", "not_ok", "fast", "resume", "ethread_limit", "thread",
                    "rpc_alloc", "rpc_free", "rpc_shm_cmd", "rpc_unknown", "resume_altered"})


class Check:
    """One rule's logic. ``functions`` names the flows it looks at (by ``Flow.function``; None
    stands for flows of unknown functions); a class without it sees every flow. ``traits`` names
    the flow traits (``TRAITS``) without which ``on_flow`` can neither find anything nor change
    the check's state: of the flows of its functions, it sees those that show one of them (None:
    every flow; empty: none, the check judges at ``finish``)."""

    rule: ClassVar[Rule]
    functions: ClassVar[frozenset[str | None] | None] = None
    traits: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if cls.traits is not None and not cls.traits <= TRAITS:
            raise ValueError(f"{cls.__name__}: unknown traits {', '.join(sorted(cls.traits - TRAITS))}")

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        return ()

    def finish(self, state: TraceState) -> Iterable[Finding]:
        return ()

    def unmet(self, state: TraceState) -> str | None:
        """What the capture lacks, beyond evidence kinds, for the rule to run; None if nothing."""
        return None

    def finding(self, message: str, where: Where, flow: Flow | None = None, severity: str | None = None,
                evidence: Iterable[Where] = ()) -> Finding:
        return Finding(self.rule.id, severity or self.rule.severity, message, where[0], where[1],
                       flow.index if flow is not None else None, tuple(evidence))


def at(where: Where) -> str:
    return f"{where[0]}:{where[1]}"


def call_where(step: Step) -> Where:
    event = step.call or step.ret
    assert event is not None
    return event.file, event.line


def ret_where(step: Step) -> Where:
    event = step.ret or step.call
    assert event is not None
    return event.file, event.line


def name(flow: Flow) -> str:
    """The flow's function, or its raw a0 when unknown."""
    if flow.function is not None:
        return flow.function
    return f"function {flow.a0:#010x}" if flow.a0 is not None else "an SMC"


def who(flow: Flow) -> str:
    task = f"{flow.task or '?'}-{flow.pid}" if flow.pid is not None else (flow.task or "an unknown task")
    cpus = "/".join(str(c) for c in flow.cpus)
    return f"{task} on CPU {cpus}" if cpus else task


def lost_marker(state: TraceState, file: str, cpus: Iterable[int | None], after: int = 0,
                before: int | None = None) -> Where | None:
    """A ``[LOST N EVENTS]`` marker of ``file`` on one of ``cpus`` (or of an unknown CPU) between
    the lines ``after`` and ``before``."""
    wanted = set(cpus)
    for lost_file, line, cpu in state.lost:
        if lost_file == file and line > after and (before is None or line < before) \
                and (cpu is None or cpu in wanted or not wanted):
            return lost_file, line
    return None


def discontinuity(reason: str | None) -> str | None:
    """"FILE:LINE" where time went back, when that is the ``reason`` a flow or step was cut; else None."""
    return reason[len(DISCONTINUITY):] if reason is not None and reason.startswith(DISCONTINUITY) else None


JUMP = "time went back there (two captures in one file, or a garbled timestamp)"
OVERWRITTEN = "the events of another CPU begin after it in the trace, so that CPU's ring buffer may have overwritten " \
    "the missing event (a capture artefact)"


def in_segment(fact: Fact | None, segment: int) -> Fact | None:
    """``fact`` if it was learned in ``segment`` (``Flow.segment``): after time goes back the trace
    may hold another run, with facts of its own."""
    return fact if fact is not None and fact.segment == segment else None


def status_of(step: Step) -> int | None:
    return step.answer.status if step.answer is not None else None


def answered(step: Step) -> str:
    """How the SMC was answered, with the line: "it was answered X at file:line"."""
    answer = step.answer
    if answer is None or step.ret is None:
        return "its answer is not in the trace"
    return f"it was answered {answer.status_name or hex(answer.status)} at {at(ret_where(step))}"


def traits_of(flow: Flow) -> frozenset[str]:
    """The traits ``flow`` shows (module docstring); none for a quiet call."""
    out: set[str] = set()
    for step in flow.steps:
        if step.call is None:
            out.add("unentered")
        if step.ret is None:
            out.add("unreturned")
    if flow.incomplete is not None:
        out.add("incomplete")
    last = flow.last.answer
    if last is None or last.is_rpc or last.status != OPTEE_SMC_RETURN_OK:
        out.add("not_ok")
    if flow.fast:
        out.add("fast")
    if flow.function == RETURN_FROM_RPC:
        out.add("resume")
    if flow.retries or last is not None and last.status == OPTEE_SMC_RETURN_ETHREAD_LIMIT:
        out.add("ethread_limit")
    if flow.thread is not None:
        out.add("thread")
    if flow.rpcs:
        _rpc_traits(flow, out)
    return frozenset(out)


def _rpc_traits(flow: Flow, out: set[str]) -> None:
    """Add the traits of ``flow``'s RPC round trips to ``out``."""
    base = flow.first.call
    with_arg = flow.function == CALL_WITH_ARG
    for trip in flow.rpcs:
        func = trip.func
        if func == OPTEE_SMC_RPC_FUNC_ALLOC:
            out.add("rpc_alloc")
        elif func == OPTEE_SMC_RPC_FUNC_FREE:
            out.add("rpc_free")
        elif func == OPTEE_SMC_RPC_FUNC_CMD and (with_arg or trip.fields.get("cookie", 0)):
            out.add("rpc_shm_cmd")
        if trip.function is None:
            out.add("rpc_unknown")
        reply = trip.reply
        if reply is None:
            continue
        if trip.thread is not None and reply.decoded is not None:
            resumed = reply.decoded.fields.get("thread_id")
            if resumed is not None and resumed != trip.thread:
                out.add("resume_altered")
        request, call = trip.request.ret, reply.call
        if base is not None and request is not None and call is not None:
            regs, intr = call.regs, func == OPTEE_SMC_RPC_FUNC_FOREIGN_INTR
            if regs[6:8] != base.regs[6:8] or intr and regs[1:3] != request.regs[1:3]:
                out.add("resume_altered")
