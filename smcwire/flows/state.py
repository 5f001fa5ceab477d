"""What the tracker learns across a capture: negotiated capabilities, thread count, in-flight
calls against it, shared memory handed out by RPC ALLOC, async notifications, lost-event gaps,
and the evidence (file, line) behind each fact."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.events import DriverMessage, Event, OpteeMessage, TfaMessage

Where = tuple[str, int]  # (file, line)
NOTED = 64  # repeated lines and discontinuities listed (all are counted)


@dataclass(slots=True)
class Fact:
    """A value and the lines that show it."""

    value: int
    evidence: list[Where]
    source: str  # e.g. "OPTEE_SMC_EXCHANGE_CAPABILITIES", "dmesg"
    segment: int = 0  # the discontinuities before it (Flow.segment): it holds for the flows of that segment


@dataclass(slots=True)
class Cookie:
    """A shared-memory buffer handed out by an RPC ALLOC reply."""

    cookie: int
    allocated: Where
    flow: int
    size: int | None = None


@dataclass
class TraceState:
    """Facts gathered so far; the rules and the explanations read it."""

    profile: str = "mainline"
    sec_caps: Fact | None = None  # a1 of EXCHANGE_CAPABILITIES' OK return
    nsec_caps: Fact | None = None  # a1 of the EXCHANGE_CAPABILITIES call
    rpc_param_count: Fact | None = None
    capabilities_from_dmesg: dict[str, Where] = field(default_factory=dict)  # "dynamic_shm", "async_notif"
    exchange_seen: Where | None = None  # the first EXCHANGE_CAPABILITIES call
    thread_count: Fact | None = None  # GET_THREAD_COUNT's answer
    async_notif_enabled: Where | None = None  # ENABLE_ASYNC_NOTIF answered OK
    in_flight: int = 0  # yielding flows started and not finished
    peak_in_flight: int = 0
    peak_in_flight_at: Where | None = None
    peak_in_flight_segment: int = 0  # the segment (Flow.segment) of that peak
    # the fewest yielding calls inside OP-TEE (the refused one included) when it answered ETHREAD_LIMIT:
    # OP-TEE has fewer threads than that
    refused_with: int | None = None
    refused_with_at: Where | None = None
    ethread_limit: int = 0  # ETHREAD_LIMIT answers
    ethread_limit_at: Where | None = None  # the first ETHREAD_LIMIT answer
    cookies: dict[int, Cookie] = field(default_factory=dict)  # live RPC ALLOC buffers
    freed: dict[int, Where] = field(default_factory=dict)  # cookies freed by RPC FREE, and where
    # ("double_free" | "unknown_free", cookie, where, where it was freed before)
    cookie_anomalies: list[tuple[str, int, Where, Where | None]] = field(default_factory=list)
    shm_cache_enabled: Where | None = None  # ENABLE_SHM_CACHE answered OK: OP-TEE keeps RPC buffers
    lost: list[tuple[str, int, int | None]] = field(default_factory=list)  # (file, line, cpu) of LOST markers
    duplicates: int = 0  # SMC events skipped as repeats of a recent identical one (a line printed twice)
    duplicates_at: list[Where] = field(default_factory=list)  # the first NOTED of them
    discontinuities: int = 0  # times the trace's time went back: flows in flight were cut there
    # the first NOTED: (file, line, time before, time at that line), nanoseconds
    discontinuities_at: list[tuple[str, int, int, int]] = field(default_factory=list)
    fast_calls_seen: bool = False  # the capture has fast calls (a kprobe on the SMC entry)
    tracepoints_seen: bool = False  # the capture has the optee tracepoints
    has_returns: bool = False  # SMC results are in the capture
    kprobe_returns_seen: bool = False  # a return probe on the SMC entry is in the capture
    calls_seen: dict[str, Where] = field(default_factory=dict)  # function name -> its first call (answered or not)
    # name of a function that makes no RPCs (fast calls, RESERVE_SYS_THREAD…) -> (status name, fields, where)
    # of its latest answer
    answers: dict[str, tuple[str | None, dict[str, int], Where]] = field(default_factory=dict)
    # the first yielding call that ended in an error: (flow function, status name, status, where of the return)
    first_error: tuple[str | None, str | None, int, Where] | None = None
    messages: list[DriverMessage | TfaMessage | OpteeMessage] = field(default_factory=list)  # console evidence
    other: list[Event] = field(default_factory=list)  # boot milestones, register dumps

    def evidence_kinds(self) -> set[str]:
        """What kinds of evidence the capture holds (the rules declare which they need)."""
        kinds = set()
        if self.tracepoints_seen:
            kinds.add("tracepoints")
        if self.fast_calls_seen:
            kinds.add("fast_calls")
        if self.has_returns:
            kinds.add("returns")
        if self.kprobe_returns_seen:
            kinds.add("fast_returns")  # results of fast calls too: a return probe on the SMC entry
        if any(isinstance(m, DriverMessage) for m in self.messages):
            kinds.add("dmesg")
        if any(isinstance(m, OpteeMessage) for m in self.messages):
            kinds.add("optee_console")
        if any(isinstance(m, TfaMessage) for m in self.messages):
            kinds.add("tfa_console")
        return kinds
