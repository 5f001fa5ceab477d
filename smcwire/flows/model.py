"""What the tracker rebuilds from events: SMC steps, RPC round trips, call flows, findings.

A ``Step`` is one SMC: its entry event and the return that answers it (either may be missing
at a trace's edges or in a lost-event gap), both decoded. A ``Flow`` is one logical call: a fast
call is one step; a yielding call is the chain CALL_WITH_* → RPC request → RETURN_FROM_RPC → … →
final result, with the ETHREAD_LIMIT answers and the retries that follow. Times are nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..codec.decode import Call, Return
from ..model.events import Event, OpteeMessage, SmcCall, SmcReturn

DISCONTINUITY = "discontinuity at "  # Flow.incomplete of flows cut where time went back, then "FILE:LINE"


@dataclass(slots=True)
class Step:
    """One SMC: entry and return, decoded; ``also`` holds the same SMC seen by another source
    (a kprobe line for a tracepoint's begin, a kretprobe line for its end); ``gap`` says why the
    entry or the return is missing (the reasons of ``Flow.incomplete``)."""

    call: SmcCall | None
    ret: SmcReturn | None
    decoded: Call | None
    answer: Return | None
    also: list[Event] = field(default_factory=list)
    gap: str | None = None

    @property
    def start(self) -> int | None:
        return self.call.ts if self.call is not None else None

    @property
    def end(self) -> int | None:
        return self.ret.ts if self.ret is not None else None

    @property
    def line(self) -> int:
        event = self.call or self.ret
        assert event is not None
        return event.line


@dataclass(slots=True)
class RpcTrip:
    """One RPC round trip: OP-TEE's request (the return of ``request``) and the normal world's
    answer (the RETURN_FROM_RPC ``reply``, None while unanswered)."""

    request: Step
    reply: Step | None
    function: str | None  # OPTEE_SMC_RPC_FUNC_* name, None when unknown
    func: int  # the RPC function number (a0 & 0xFFFF)
    thread: int | None  # a3 of the request: the OP-TEE thread id
    fields: dict[str, int]  # decoded request fields (size, cookie, …)
    reply_fields: dict[str, int] = field(default_factory=dict)  # decoded reply fields (buf_pa, cookie, …)

    @property
    def normal_ns(self) -> int | None:
        """Time the normal world spent serving the RPC (request returned → reply issued)."""
        end = self.request.end
        start = self.reply.start if self.reply is not None else None
        return start - end if start is not None and end is not None else None


@dataclass(slots=True)
class Flow:
    """One logical call, from its first entry to its final result."""

    index: int  # 1-based order of the flow's first event in the capture
    capture: str  # the capture (a file, or a directory read as one capture)
    steps: list[Step]
    rpcs: list[RpcTrip] = field(default_factory=list)
    key: str | None = None  # the tracepoints' param= key, None for kprobe-only flows
    task: str | None = None
    pid: int | None = None
    cpus: list[int] = field(default_factory=list)
    thread: int | None = None  # the OP-TEE thread that ran it (a3 of its RPCs), None if unseen
    retries: int = 0  # ETHREAD_LIMIT answers followed by a retry
    # why the flow is cut: "trace end", "no begin" (the capture began inside it), "lost events", "discontinuity at
    # FILE:LINE" (time went back there), "no end", "missing begin", "unanswered", "no return probe", "trace start"
    # (another CPU's events begin later, its ring buffer overwrote the earlier ones)
    incomplete: str | None = None
    console: list[OpteeMessage] = field(default_factory=list)  # OP-TEE log lines of its thread, in its time
    findings: list[str] = field(default_factory=list)  # rule ids of findings about this flow
    segment: int = 0  # the discontinuities (time going back) before its first event: times compare within one
    # fixed by the first step, which never changes
    a0: int | None = field(init=False)  # the function ID of the first call (None: a return without entry)
    function: str | None = field(init=False)  # its name, None when unknown
    fast: bool = field(init=False)

    def __post_init__(self) -> None:
        first = self.steps[0]
        self.a0 = first.call.regs[0] & 0xFFFFFFFF if first.call is not None else None
        self.function = first.decoded.name if first.decoded is not None else None
        self.fast = self.a0 is not None and bool(self.a0 >> 31)

    @property
    def first(self) -> Step:
        return self.steps[0]

    @property
    def last(self) -> Step:
        return self.steps[-1]

    @property
    def file(self) -> str:
        event = self.first.call or self.first.ret
        assert event is not None
        return event.file

    # plain loops below, no generators: these run for every flow rendered
    @property
    def first_line(self) -> int:
        return min([(s.call or s.ret).line for s in self.steps])  # type: ignore[union-attr]

    @property
    def last_line(self) -> int:
        return max([(s.ret or s.call).line for s in self.steps])  # type: ignore[union-attr]

    @property
    def start(self) -> int | None:
        for s in self.steps:
            if s.call is not None and s.call.ts is not None:
                return s.call.ts
        return None

    @property
    def end(self) -> int | None:
        for s in reversed(self.steps):
            if s.ret is not None and s.ret.ts is not None:
                return s.ret.ts
        return None

    @property
    def duration(self) -> int | None:
        start, end = self.start, self.end
        return end - start if start is not None and end is not None else None

    @property
    def normal_ns(self) -> int:
        """Time spent in the normal world serving RPCs (and waiting after ETHREAD_LIMIT)."""
        total = 0
        end = None  # the previous step's return time
        for s in self.steps:
            if end is not None and s.call is not None and s.call.ts is not None:
                total += s.call.ts - end
            end = s.ret.ts if s.ret is not None else None
        return total

    @property
    def secure_ns(self) -> int:
        """Time spent inside the SMCs (entry to return), i.e. in EL3 and OP-TEE."""
        total = 0
        for s in self.steps:
            if s.call is not None and s.ret is not None and s.call.ts is not None and s.ret.ts is not None:
                total += s.ret.ts - s.call.ts
        return total

    @property
    def result(self) -> Return | None:
        """The final answer, None when the flow is incomplete."""
        answer = self.last.answer
        return answer if answer is not None and not answer.is_rpc else None

    @property
    def result_name(self) -> str | None:
        result = self.result
        return result.status_name if result is not None else None


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's verdict on the trace, pointing at the line that shows it."""

    rule: str
    severity: str  # "error", "warning", "info"
    message: str
    file: str
    line: int
    flow: int | None = None  # Flow.index
    evidence: tuple[tuple[str, int], ...] = ()  # more (file, line) that show it
