"""What the rule modules share: the ``Check`` base class and helpers that name trace lines."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from ..abi.profiles import Profile
from ..flows.model import Finding, Flow, Step
from ..flows.state import TraceState, Where
from .catalog import Rule

M32 = 0xFFFFFFFF
TRUSTED_OS = range(50, 64)  # SMCCC owners routed to the Trusted OS (TF-A OEN_TOS_START..END)
CALL_WITH_ARG = "OPTEE_SMC_CALL_WITH_ARG"
CALL_WITH_RPC_ARG = "OPTEE_SMC_CALL_WITH_RPC_ARG"
CALL_WITH_REGD_ARG = "OPTEE_SMC_CALL_WITH_REGD_ARG"
RETURN_FROM_RPC = "OPTEE_SMC_CALL_RETURN_FROM_RPC"
CALLS_UID = "OPTEE_SMC_CALLS_UID"


class Check:
    """One rule's logic. ``functions`` names the flows it looks at (by ``Flow.function``; None
    stands for flows of unknown functions); a class without it sees every flow."""

    rule: ClassVar[Rule]
    functions: ClassVar[frozenset[str | None] | None] = None

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


def status_of(step: Step) -> int | None:
    return step.answer.status if step.answer is not None else None


def answered(step: Step) -> str:
    """How the SMC was answered, with the line: "it was answered X at file:line"."""
    answer = step.answer
    if answer is None or step.ret is None:
        return "its answer is not in the trace"
    return f"it was answered {answer.status_name or hex(answer.status)} at {at(ret_where(step))}"
