"""The tracker: pairs SMC entries with their returns and groups them into call flows.

Pairing (abi.md §7.1, formats.md §2.1-2.2):
- optee tracepoints: a begin and its end share the ``param=`` pointer and the task, and so do
  all steps of one yielding call: CALL_WITH_* → RPC request → RETURN_FROM_RPC → … → result.
  After ETHREAD_LIMIT Linux waits and re-issues the same a0-a7 under the same param.
- kprobe events carry no key: an entry and its return pair per CPU, last in first out (an SMC
  from interrupt context can nest inside a task's); a task's yielding chain is its consecutive
  steps. A kprobe entry that repeats the pending tracepoint begin of the same task (same
  registers) is the same SMC seen twice: it is kept as ``Step.also``, not as a second call.

Damage (a capture cut at either end, lines lost, repeated or out of order) is told from misuse:
- an event identical to a recent one (time, CPU, task, registers, key) is a repeated line: it is
  counted (``TraceState.duplicates``) and skipped, never paired;
- ftrace prints events in time order, so a timestamp that goes back (beyond ``TOLERANCE``) is a
  discontinuity (two captures joined, a garbled line): the flows in flight are cut there, and the
  events after it are paired as at a capture's start (``TraceState.discontinuities``);
- a missing event is judged where its absence shows: a return before its task's first tracepoint
  begin (for kprobes, its CPU's first entry) of the segment, after a ``[LOST N EVENTS]`` marker, or
  after another CPU's first event (overwrite mode: that CPU's ring buffer may have held it) is a
  capture artefact; otherwise the event is missing from a complete trace (``Step.gap``). An RPC
  request without its entry opens the chain its RETURN_FROM_RPC continues, and a tracepoint end
  right after the kprobe events of its call joins their flow.

A flow judged misused for a missing event (``_DOUBTFUL``) is held back until every other CPU has
shown an event: ftrace prints a CPU's ``[LOST N EVENTS]`` before that CPU's next event, and a CPU
whose events begin later in an overwritten ring buffer may have held the missing one.

``feed`` returns the flows an event completes; only what is in flight is kept, with a few recent
events, each task's latest SMC entry and the held flows (all bounded) to judge the gaps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ..abi.optee import (
    OPTEE_SMC_RETURN_ETHREAD_LIMIT,
    OPTEE_SMC_RETURN_OK,
    OPTEE_SMC_RPC_FUNC_ALLOC,
    OPTEE_SMC_RPC_FUNC_FREE,
)
from ..codec.decode import Decoder
from ..model.events import (
    BootMilestone,
    DriverMessage,
    Event,
    LostEvents,
    OpteeMessage,
    RegisterDump,
    SmcCall,
    SmcReturn,
    TfaMessage,
)
from .model import DISCONTINUITY, Flow, RpcTrip, Step
from .state import NOTED, Cookie, Fact, TraceState

RETURN_FROM_RPC = 0x32000003
_EXCHANGE_CAPABILITIES = 0xB2000009
_GET_THREAD_COUNT = 0xB200000F
_ENABLE_ASYNC_NOTIF = 0xB2000010
_DISABLE_SHM_CACHE = 0xB200000A
_ENABLE_SHM_CACHE = 0xB200000B
_M32 = 0xFFFFFFFF
_NOT_ERRORS = {OPTEE_SMC_RETURN_OK, OPTEE_SMC_RETURN_ETHREAD_LIMIT}  # final or retried, not a failure
_QUIET = {"message", "other", "boot", "stack_frame", "backtrace"}  # console lines kept out of the state

ChainKey = tuple[object, ...]
MAX_CONSOLE = 64  # OP-TEE log lines kept per flow
_DOUBTFUL = frozenset({"no end", "missing begin", "unanswered"})  # judged misuse, unless events were lost
_HELD = 64  # flows held back until the CPUs show whether events were lost
TOLERANCE = 100_000  # ns a timestamp may go back without a discontinuity (a reader racing the CPUs' writers)
_RECENT = 32  # SMC events remembered to recognise a repeated line
_TASKS = 4096  # tasks whose latest tracepoint begin is remembered


@dataclass(slots=True)
class _Verdict:
    """A flow judged misused, watched until the other CPUs of its segment have shown an event."""

    flow: Flow
    waiting: set[int | None] | None = None  # the CPUs yet to show one (None: set when the event is done)
    complete: bool = False  # the flow is complete, held back


class Tracker:
    """Feed it one capture's events in order; it hands back flows as they complete."""

    def __init__(self, capture: str, decoder: Decoder) -> None:
        self.capture = capture
        self.decoder = decoder
        self.state = TraceState(profile=decoder.profile.name)
        self.flows = 0  # flows started
        self._chains: dict[ChainKey, Flow] = {}  # yielding flows in flight, by chain key
        self._pending: dict[ChainKey, Step] = {}  # tracepoint steps waiting for their end
        self._stacks: dict[object, list[tuple[Step, bool]]] = {}  # kprobe steps per CPU: (step, duplicate?)
        self._lost_since: set[object] = set()  # CPUs with a LOST marker since their last event
        self._lost_at: tuple[str, int] | None = None  # the latest LOST marker of the segment
        self._begun: dict[tuple[int | None, str | None], Step] = {}  # each task's latest tracepoint begin
        self._probes: dict[tuple[int | None, str | None], SmcCall] = {}  # each task's latest kprobe entry
        self._holding: set[ChainKey] = set()  # yielding calls inside OP-TEE (entered, not finished or refused)
        self._done: list[Flow] = []  # flows completed by the event being fed
        # flows judged misused (``_judge``), until the other CPUs have shown an event since: a LOST marker
        # comes before its CPU's next event, so only then is it known whether that CPU lost the event
        self._watched: list[_Verdict] = []
        # damage: the latest time, recent SMC events, each CPU's first event of the segment (a part of
        # the capture without discontinuity), resumes that are their task's first SMC of the segment (or
        # follow a CPU's first event)
        self._clock = -1
        self._recent: deque[SmcCall | SmcReturn] = deque(maxlen=_RECENT)
        self._remember = self._recent.append
        self._cpu_first: dict[int | None, tuple[str, int]] = {}
        self._newest_cpu: tuple[str, int] | None = None  # the latest of those
        self._fresh: set[ChainKey] = set()
        # CPUs whose kprobe entries were closed as entries without return probe before the first return
        # probe came: a return there may be theirs, until the CPU's next entry
        self._closed_early: set[object] = set()
        self._segment = 0  # discontinuities so far
        self._origin = "no begin"  # why a call cut by the segment's start is incomplete
        self._resume = decoder.call((RETURN_FROM_RPC, 0, 0, 0, 0, 0, 0, 0))  # to decode a return without entry
        self._handlers = {SmcCall: self._call, SmcReturn: self._return, LostEvents: self._lost,
                          DriverMessage: self._message, TfaMessage: self._message, OpteeMessage: self._message,
                          BootMilestone: self.state.other.append, RegisterDump: self.state.other.append}

    # --- events in --------------------------------------------------------------------------
    def feed(self, event: Event) -> Sequence[Flow]:
        """The flows this event completes (usually none)."""
        self._handlers[type(event)](event)  # type: ignore[operator]
        if self._watched:
            self._watch(event)
        if self._done:
            done, self._done = self._done, []
            return done
        return ()

    def finish(self) -> Sequence[Flow]:
        """Flows still in flight at the end of the trace, marked incomplete."""
        self._cut("trace end")
        done, self._done = self._done, []
        return done

    def _emit(self, flow: Flow) -> None:
        """A flow is complete: out with it, unless it stands judged misused while a CPU may still
        show (by a LOST marker) that the missing event was lost."""
        if flow.incomplete in _DOUBTFUL or self._watched and any(v.flow is flow for v in self._watched):
            self._judge(flow).complete = True
        else:
            self._done.append(flow)

    def _judge(self, flow: Flow) -> _Verdict:
        """Watch a flow judged misused (``_DOUBTFUL``) until its verdict is settled."""
        verdict = next((v for v in self._watched if v.flow is flow), None)
        if verdict is None:
            verdict = _Verdict(flow)
            self._watched.append(verdict)
        return verdict

    def _watch(self, event: Event) -> None:
        """What ``event`` tells about the watched flows: a LOST marker of a CPU they wait for means the
        missing event may be among the lost ones; a CPU's first event of the segment, that its earlier
        events may have been overwritten. Complete flows whose verdict is settled go out."""
        kind = type(event)
        smc = kind is SmcCall or kind is SmcReturn
        cpu = getattr(event, "cpu", None)
        new = smc and self._cpu_first.get(cpu) == (event.file, event.line)
        for verdict in self._watched:
            waiting = verdict.waiting
            if waiting is None:  # judged at this event
                verdict.waiting = {c for c in self._cpu_first if c != cpu}
            elif new or kind is LostEvents and cpu in waiting:
                self._relabel(verdict.flow, "trace start" if new else "lost events")
            elif smc:
                waiting.discard(cpu)
            if verdict.flow.incomplete not in _DOUBTFUL:
                verdict.waiting = set()
        while len(self._watched) > _HELD:
            self._settle(self._watched.pop(0))
        if any(not v.waiting for v in self._watched):
            for verdict in self._watched:
                if not verdict.waiting:
                    self._settle(verdict)
            self._watched = [v for v in self._watched if v.waiting]

    def _settle(self, verdict: _Verdict) -> None:
        if verdict.complete:
            self._done.append(verdict.flow)

    @staticmethod
    def _relabel(flow: Flow, why: str) -> None:
        for step in flow.steps:
            if step.gap in _DOUBTFUL:
                step.gap = why
        flow.incomplete = why

    def _cut(self, reason: str) -> None:
        """Close the flows in flight as incomplete (``reason``) and forget the segment."""
        steps: dict[int, tuple[Step, ChainKey]] = {id(s): (s, key) for key, s in self._pending.items()}
        gap = reason if self.state.kprobe_returns_seen else "no return probe"
        for stack in self._stacks.values():
            steps.update((id(s), (s, ("task", s.call.pid, s.call.task))) for s, dup in stack if not dup and s.call)
        for step, key in steps.values():
            flow = self._chain_of(step)
            chain = self._chains.get(key)
            step.gap = gap if step.call is not None and step.call.key is None else reason
            if flow is None and chain is not None and self._continues(chain, step):
                self._extend(chain, step)  # the resume or retry whose return the trace does not have
            elif flow is None:
                self._emit(self._finish(self._new_flow(step), step.gap))
        for key, flow in list(self._chains.items()):
            del self._chains[key]
            self._emit(self._finish(flow, reason))
        for verdict in self._watched:
            self._settle(verdict)
        self._watched.clear()
        self._holding.clear()
        self.state.in_flight = 0
        self._pending.clear()
        self._stacks.clear()
        self._begun.clear()
        self._probes.clear()
        self._fresh.clear()
        self._closed_early.clear()
        self._cpu_first.clear()
        self._newest_cpu = None
        self._lost_since.clear()
        self._lost_at = None

    def _lost(self, event: LostEvents) -> None:
        """Events of a CPU were lost: its kprobe entries in flight are closed, since their returns may
        be among them and pairing the next return with them (last in, first out) could be wrong."""
        self.state.lost.append((event.file, event.line, event.cpu))
        self._lost_since.add(event.cpu)
        self._lost_at = (event.file, event.line)
        stack = self._stacks.get(event.cpu)
        gap = "lost events" if self.state.kprobe_returns_seen else "no return probe"
        while stack:
            step, duplicate = stack.pop()
            if duplicate or step.call is None:
                continue  # a tracepoint call's twin: its end pairs by key
            key = ("task", step.call.pid, step.call.task)
            step.gap = gap
            chain = self._chains.get(key)
            if chain is not None and self._continues(chain, step):
                self._extend(chain, step)
                del self._chains[key]
            else:
                chain = self._new_flow(step)
            self._leave(key)
            self._emit(self._finish(chain, gap))

    # --- damage -------------------------------------------------------------------------------
    def _repeated(self, event: SmcCall | SmcReturn) -> bool:
        """For an event no later than the latest: whether it repeats a recent one (it is then counted
        and skipped). If not, and time went back, it starts a new segment."""
        same = event[2:]
        for other in self._recent:
            if other[2:] == same and other.file == event.file and type(other) is type(event):
                state = self.state
                state.duplicates += 1
                if len(state.duplicates_at) < NOTED:
                    state.duplicates_at.append((event.file, event.line))
                return True
        assert event.ts is not None
        if event.ts < self._clock - TOLERANCE:
            self._discontinuity(event)
        return False

    def _discontinuity(self, event: SmcCall | SmcReturn) -> None:
        """Time went back at ``event``: the flows in flight are cut there, and what follows is paired as
        at the start of a capture."""
        assert event.ts is not None
        state = self.state
        state.discontinuities += 1
        if len(state.discontinuities_at) < NOTED:
            state.discontinuities_at.append((event.file, event.line, self._clock, event.ts))
        reason = f"{DISCONTINUITY}{event.file}:{event.line}"
        self._cut(reason)
        self._recent.clear()
        self._segment += 1
        self._origin = reason
        self._clock = event.ts

    def _unseen_since(self, event: SmcCall | SmcReturn) -> bool:
        """Whether a CPU's first event of the segment comes after ``event``: that CPU's events before
        may be missing (its ring buffer overwrote them)."""
        newest = self._newest_cpu
        return newest is not None and newest[1] > event.line and newest[0] == event.file

    def _gap_after(self, event: SmcCall | SmcReturn, otherwise: str) -> str:
        """Why the trace lacks an event due after ``event``: "lost events" when a LOST marker (of any
        CPU: a task may migrate) came since, "trace start" when a CPU's first event did (its ring buffer
        may have overwritten the earlier ones), else ``otherwise``."""
        lost = self._lost_at
        if lost is not None and lost[1] > event.line and lost[0] == event.file:
            return "lost events"
        return "trace start" if self._unseen_since(event) else otherwise

    def _missing_begin(self, event: SmcReturn) -> str:
        """Why a return has no entry: "lost events"; the segment's start (``self._origin``: the task's,
        or for kprobes the CPU's, first SMC of the segment); "trace start" (another CPU's events begin
        after the task's latest SMC); else "missing begin", from an otherwise complete trace."""
        if event.cpu in self._lost_since:
            return "lost events"
        if event.key is None:  # kprobes pair per CPU
            cpu = self._cpu_key(event)
            return "missing begin" if cpu in self._stacks and cpu not in self._closed_early else self._origin
        earlier = self._begun.get((event.pid, event.task))
        if earlier is None or earlier.call is None or earlier.call.file != event.file:
            return self._origin
        return self._gap_after(earlier.call, "missing begin")

    # --- pairing ----------------------------------------------------------------------------
    def _admit(self, event: SmcCall | SmcReturn) -> bool:
        """Note an SMC event; False when it repeats a recent one (counted, and to be skipped)."""
        ts = event.ts
        if ts is not None:
            if ts > self._clock:
                self._clock = ts
            elif self._repeated(event):
                return False
        self._remember(event)
        if event.cpu not in self._cpu_first:
            self._cpu_first[event.cpu] = self._newest_cpu = (event.file, event.line)
        return True

    def _call(self, event: SmcCall) -> None:
        if not self._admit(event):
            return
        state = self.state
        if event.key is not None:
            state.tracepoints_seen = True
            self._tracepoint_call(event)
            return
        state.fast_calls_seen = True
        cpu = self._cpu_key(event)
        stack = self._stacks.get(cpu)
        if stack is None:
            stack = self._stacks[cpu] = []
        task = (event.pid, event.task)
        pending = self._begun.get(task)
        if pending is not None and pending.ret is None and pending.call is not None and \
                pending.call.regs[:8] == event.regs[:8]:
            pending.also.append(event)
            stack.append((pending, True))
            return
        if not state.kprobe_returns_seen:  # entry probes only: an entry's SMC is over when the next comes
            while stack:
                done, duplicate = stack.pop()
                if not duplicate:
                    done.gap = "no return probe"
                    self._emit(self._finish(self._new_flow(done), done.gap))
                    self._closed_early.add(cpu)  # unless a return probe shows up later
        elif self._closed_early:
            self._closed_early.discard(cpu)
        step = Step(event, None, self.decoder.call(event.regs), None)
        self._seen(step)
        stack.append((step, False))
        probes = self._probes
        earlier = probes.get(task)
        if earlier is None and len(probes) >= _TASKS:
            del probes[next(iter(probes))]
        probes[task] = event
        key = ("task", event.pid, event.task)
        if event.regs[0] & _M32 == RETURN_FROM_RPC and (earlier is None or self._unseen_since(earlier)):
            self._fresh.add(key)  # the task's first SMC of the segment: its call began before
        self._enter(key, event)

    def _return(self, event: SmcReturn) -> None:
        if not self._admit(event):
            return
        state = self.state
        state.has_returns = True
        if event.key is not None:
            self._tracepoint_return(event)
            return
        state.kprobe_returns_seen = True
        stack = self._stacks.get(self._cpu_key(event))
        if not stack:
            pending = self._begun.get((event.pid, event.task))
            if pending is not None and pending.ret is None and pending.call is not None and \
                    pending.call.regs[:len(event.call_regs)] == event.call_regs:
                pending.also.append(event)  # the return probe of a tracepoint call whose entry probe is missing
                return
            self._orphan(event, ("task", event.pid, event.task))
            return
        step, duplicate = stack.pop()
        if duplicate:
            step.also.append(event)
            return
        step.ret = event
        self._answered(step, ("task", event.pid, event.task))

    def _tracepoint_call(self, event: SmcCall) -> None:
        key = ("tp", event.pid, event.task, event.key)
        task = (event.pid, event.task)
        begun = self._begun
        earlier = begun.get(task)
        if earlier is not None and earlier.ret is None and earlier.call is not None:
            # the task begins an SMC while its previous one has no end: that end is missing (a task
            # issues its yielding SMCs one after the other; optee_smc_do_call_with_arg)
            self._unended(self._tp_key(earlier.call), earlier)
        step = self._pending[key] = Step(event, None, self.decoder.call(event.regs), None)
        self._seen(step)
        if earlier is None and len(begun) >= _TASKS:
            del begun[next(iter(begun))]
        begun[task] = step
        if event.regs[0] & _M32 == RETURN_FROM_RPC and (earlier is None or earlier.call is None or
                                                         self._unseen_since(earlier.call)):
            self._fresh.add(key)  # the task's first SMC of the segment, or a CPU's came since
        self._enter(key, event)

    def _unended(self, key: ChainKey, step: Step) -> None:
        """A tracepoint begin whose end never came. A return probe may still have shown its result
        (a twin in ``also``): then that is its return."""
        if self._pending.get(key) is step:
            del self._pending[key]
        twin = next((e for e in step.also if isinstance(e, SmcReturn)), None)
        if twin is not None:
            step.also.remove(twin)
            step.ret = twin
            self._answered(step, key)
            return
        self._leave(key)
        flow = self._chains.pop(key, None)
        if flow is not None and self._continues(flow, step):
            self._extend(flow, step)
        elif flow is not None:
            self._emit(self._finish(flow, self._unanswered(flow)))
            flow = None
        call = step.call
        assert call is not None
        flow = flow or self._new_flow(step)
        self._fresh.discard(key)
        step.gap = self._gap_after(call, "no end")
        self._emit(self._finish(flow, step.gap))

    def _tracepoint_return(self, event: SmcReturn) -> None:
        key = ("tp", event.pid, event.task, event.key)
        step = self._pending.pop(key, None)
        if step is None:
            chain = self._chains.get(key)
            last = chain.steps[-1].answer if chain is not None else None
            if chain is not None and last is not None and last.is_rpc:
                self._resumed_unseen(chain, key, event)
            elif not self._probed(event, key):
                self._orphan(event, key)
            return
        step.ret = event
        if self._stacks:
            stack = self._stacks.get(self._cpu_key(event))
            while stack and stack[-1][0] is step:  # its kprobe twin, when no return probe popped it
                stack.pop()
        self._answered(step, key)

    def _probed(self, event: SmcReturn, key: ChainKey) -> bool:
        """Whether a tracepoint end without its begin answers the SMC that the kprobe events just
        before it on its CPU show (the begin was cut or lost, not the probes): then the probes' step is
        that call's, and its flow goes on under the tracepoints' key."""
        probe = next((e for e in reversed(self._recent) if e.cpu == event.cpu and e is not event), None)
        if probe is None or probe.key is not None or probe.pid != event.pid or probe.task != event.task:
            return False
        task = ("task", event.pid, event.task)
        if isinstance(probe, SmcCall):  # an entry probe without return probe: the end is its return
            stack = self._stacks.get(self._cpu_key(probe))
            if not stack or stack[-1][0].call is not probe:
                return False
            step = stack.pop()[0]
            step.ret = event
            self._rekey(task, key)
            self._answered(step, key)
            self._fresh.discard(task)
            return True
        if probe.regs[:4] != event.regs[:4]:
            return False
        chain = self._chains.get(task)
        if chain is not None and chain.steps[-1].ret is probe and key not in self._chains:
            del self._chains[task]
            self._chains[key] = chain
            chain.key = event.key
            self._rekey(task, key)
            chain.steps[-1].also.append(event)
        return True  # else the probes' flow is complete: the end is its twin

    def _rekey(self, old: ChainKey, new: ChainKey) -> None:
        """A call tracked under ``old`` goes on under ``new``."""
        if old in self._holding:
            self._leave(old)
            self._holding.add(new)
            self.state.in_flight = len(self._holding)

    def _resumed_unseen(self, flow: Flow, key: ChainKey, event: SmcReturn) -> None:
        """A return under the key of a call waiting for its RETURN_FROM_RPC: the resume's begin is
        missing. The return still answers the call: the flow goes on, marked damaged."""
        request = flow.rpcs[-1].request.ret
        gap = "lost events" if event.cpu in self._lost_since else \
            self._gap_after(request, "missing begin") if request is not None else "missing begin"
        step = Step(None, event, None, None, gap=gap)
        flow.steps.append(step)
        flow.rpcs[-1].reply = step
        if flow.incomplete != "missing begin":
            flow.incomplete = gap
        if gap == "missing begin":
            self._judge(flow)
        self._note_cpu(flow, step)
        step.answer = answer = self.decoder.ret(flow.first.decoded or self._resume, event.regs)
        if answer.is_rpc:
            flow.rpcs.append(RpcTrip(step, None, answer.rpc.name if answer.rpc else None, answer.status & 0xFFFF,
                                     answer.fields.get("thread_id"), answer.fields))
            return
        del self._chains[key]
        self._leave(key)
        self._emit(flow)

    def _answered(self, step: Step, key: ChainKey) -> None:
        """A step has its return: decode it, extend or start its flow, close the flow if final."""
        call, ret = step.call, step.ret
        assert call is not None and ret is not None
        a0 = call.regs[0]
        if a0 >> 31 & 1:  # a fast call is a flow of its own, even nested in a chain
            single = self._new_flow(step)
            step.answer = self.decoder.ret(step.decoded, ret.regs)
            self._learn(single, step)
            self._done.append(self._finish(single, None))  # no verdict to wait for
            return
        flow: Flow | None = self._chains.get(key)
        if flow is not None and not self._continues(flow, step):
            del self._chains[key]
            self._emit(self._finish(flow, self._unanswered(flow)))
            flow = None
            if a0 & _M32 != RETURN_FROM_RPC:
                self._enter(key, call)  # the new call still holds a thread
        if flow is None:
            flow = self._new_flow(step)
        else:
            self._extend(flow, step)
        if self._fresh:
            self._fresh.discard(key)
        step.answer = answer = self.decoder.ret(step.decoded, ret.regs)
        self._learn(flow, step)
        decoded = step.decoded
        if decoded is not None and decoded.function is not None and decoded.function.rpc:
            if answer.is_rpc or answer.status != OPTEE_SMC_RETURN_ETHREAD_LIMIT:
                self._accepted(step)
            if answer.is_rpc:
                trip = RpcTrip(step, None, answer.rpc.name if answer.rpc else None, answer.status & 0xFFFF,
                               answer.fields.get("thread_id"), answer.fields)
                flow.rpcs.append(trip)
                if trip.thread is not None:
                    flow.thread = trip.thread
                self._chains[key] = flow
                return
            if answer.status == OPTEE_SMC_RETURN_ETHREAD_LIMIT:
                inside = len(self._holding)
                if self.state.refused_with is None or inside < self.state.refused_with:
                    self.state.refused_with, self.state.refused_with_at = inside, (ret.file, ret.line)
                self.state.ethread_limit += 1
                self.state.ethread_limit_at = self.state.ethread_limit_at or (ret.file, ret.line)
                self._chains[key] = flow
                self._leave(key)  # waiting for a free thread, holding none
                return
        self._chains.pop(key, None)
        self._leave(key)
        self._finish(flow, None)
        if flow.incomplete is None:
            self._done.append(flow)
        else:
            self._emit(flow)

    def _unanswered(self, flow: Flow) -> str:
        """Why a chain's RPC request (or ETHREAD_LIMIT) got no RETURN_FROM_RPC (retry) before the task's
        next SMC (``_gap_after``)."""
        last = flow.steps[-1].ret
        return self._gap_after(last, "unanswered") if last is not None else "unanswered"

    def _enter(self, key: ChainKey, event: SmcCall) -> None:
        """A yielding call (not a resume) entered OP-TEE: one more call holding a thread."""
        if event.regs[0] >> 31 & 1 or event.regs[0] & _M32 == RETURN_FROM_RPC or key in self._holding:
            return
        self._holding.add(key)
        self.state.in_flight = len(self._holding)

    def _accepted(self, step: Step) -> None:
        """OP-TEE gave the call a thread: the calls inside OP-TEE now may be a new peak (a call it
        refuses with ETHREAD_LIMIT never held one)."""
        state = self.state
        if state.in_flight > state.peak_in_flight and step.call is not None:
            state.peak_in_flight = state.in_flight
            state.peak_in_flight_at = (step.call.file, step.call.line)
            state.peak_in_flight_segment = self._segment

    def _leave(self, key: ChainKey) -> None:
        self._holding.discard(key)
        self.state.in_flight = len(self._holding)

    def _continues(self, flow: Flow, step: Step) -> bool:
        """Whether ``step`` is the next step of ``flow``: the resume after its RPC, or the retry
        after ETHREAD_LIMIT."""
        last = flow.steps[-1].answer
        regs = step.call.regs if step.call is not None else ()
        if last is None:
            return False
        if last.is_rpc:
            return bool(regs) and regs[0] & _M32 == RETURN_FROM_RPC
        first = flow.steps[0].call
        return last.status == OPTEE_SMC_RETURN_ETHREAD_LIMIT and first is not None and first.regs == regs

    def _extend(self, flow: Flow, step: Step) -> None:
        last = flow.steps[-1].answer
        flow.steps.append(step)
        if last is not None and last.is_rpc and flow.rpcs and flow.rpcs[-1].reply is None:
            trip = flow.rpcs[-1]
            trip.reply = step
            assert step.call is not None
            step.decoded = self.decoder.call(step.call.regs, rpc=trip.func)
            trip.reply_fields = step.decoded.fields
        elif last is not None and last.status == OPTEE_SMC_RETURN_ETHREAD_LIMIT:
            flow.retries += 1
        self._note_cpu(flow, step)

    def _new_flow(self, step: Step) -> Flow:
        self.flows += 1
        event = step.call or step.ret
        assert event is not None
        flow = Flow(self.flows, self.capture, [step], key=getattr(event, "key", None), task=event.task,
                    pid=event.pid)
        if self._segment:
            flow.segment = self._segment
        self._note_cpu(flow, step)
        call = step.call
        if event.cpu in self._lost_since:
            flow.incomplete = "lost events"
        elif call is not None and call.regs[0] & _M32 == RETURN_FROM_RPC:
            # a resume with no call before it: the call began before the segment (the capture's start, a
            # discontinuity), or events were lost, or its RPC request is missing from the trace
            key = self._tp_key(call) if call.key is not None else ("task", call.pid, call.task)
            lost = self._lost_at
            flow.incomplete = self._origin if key in self._fresh else \
                "lost events" if lost is not None and lost[0] == call.file else "missing begin"
            if flow.incomplete == "missing begin":
                self._judge(flow)
        return flow

    def _finish(self, flow: Flow, incomplete: str | None) -> Flow:
        """Close ``flow``, cut for ``incomplete`` (None: complete). A cut at its end replaces a capture
        artefact at its beginning (the rules judging the end must see why it was cut), not a begin
        missing from a complete trace."""
        if flow.incomplete is None or incomplete is not None and flow.incomplete != "missing begin":
            flow.incomplete = incomplete
        if self._lost_since:
            for step in flow.steps:
                event = step.call or step.ret
                if event is not None:
                    self._lost_since.discard(event.cpu)
        return flow

    def _orphan(self, event: SmcReturn, key: ChainKey) -> None:
        """A return without its entry (why: ``_missing_begin``). An RPC request, which only a yielding
        call returns, opens the chain its RETURN_FROM_RPC continues."""
        step = Step(None, event, None, None, gap=self._missing_begin(event))
        flow = self._new_flow(step)
        flow.incomplete = step.gap
        answer = self.decoder.ret(self._resume, event.regs)
        if answer.is_rpc and key not in self._chains:
            step.answer = answer
            trip = RpcTrip(step, None, answer.rpc.name if answer.rpc else None, answer.status & 0xFFFF,
                           answer.fields.get("thread_id"), answer.fields)
            flow.rpcs.append(trip)
            flow.thread = trip.thread
            self._chains[key] = flow
            if step.gap == "missing begin":
                self._judge(flow)
            return
        self._emit(self._finish(flow, None))

    def _chain_of(self, step: Step) -> Flow | None:
        return next((f for f in self._chains.values() if step in f.steps), None)

    # --- what the trace tells ---------------------------------------------------------------
    def _seen(self, step: Step) -> None:
        """Remember the first call of each function, whether or not its return is in the trace."""
        function = step.decoded.function if step.decoded is not None else None
        if function is not None and step.call is not None and function.name not in self.state.calls_seen:
            self.state.calls_seen[function.name] = (step.call.file, step.call.line)

    def _learn(self, flow: Flow, step: Step) -> None:
        """Record the capabilities, thread count, async notifications and RPC cookies a step shows."""
        state = self.state
        call, answer = step.call, step.answer
        assert call is not None and answer is not None
        function = step.decoded.function if step.decoded is not None else None
        if function is not None:
            if not function.rpc:
                state.answers[function.name] = (answer.status_name, answer.fields, self._ret_where(step))
            elif state.first_error is None and not answer.is_rpc and answer.status not in _NOT_ERRORS:
                state.first_error = (flow.function, answer.status_name, answer.status, self._ret_where(step))
        if flow.rpcs and flow.rpcs[-1].reply is step:
            self._cookie(flow, flow.rpcs[-1])
        a0 = call.regs[0] & _M32
        if not a0 >> 31:  # the facts below come from fast calls
            return
        where = (call.file, call.line)
        if a0 == _EXCHANGE_CAPABILITIES:
            state.exchange_seen = state.exchange_seen or where
            state.nsec_caps = Fact(call.regs[1] & _M32, [where], "OPTEE_SMC_EXCHANGE_CAPABILITIES", self._segment)
            if answer.status == 0 and "sec_caps" in answer.fields:
                ret = self._ret_where(step)
                state.sec_caps = Fact(answer.fields["sec_caps"], [ret], "OPTEE_SMC_EXCHANGE_CAPABILITIES",
                                      self._segment)
                if "rpc_param_count" in answer.fields:
                    state.rpc_param_count = Fact(answer.fields["rpc_param_count"], [ret],
                                                 "OPTEE_SMC_EXCHANGE_CAPABILITIES", self._segment)
        elif a0 == _GET_THREAD_COUNT and answer.status == 0 and "thread_count" in answer.fields:
            ret = self._ret_where(step)
            state.thread_count = Fact(answer.fields["thread_count"], [ret], "OPTEE_SMC_GET_THREAD_COUNT",
                                      self._segment)
        elif a0 == _ENABLE_ASYNC_NOTIF and answer.status == 0:
            state.async_notif_enabled = where
        elif a0 == _ENABLE_SHM_CACHE and answer.status == 0:
            state.shm_cache_enabled = where
        elif a0 == _DISABLE_SHM_CACHE and answer.status == 0 and "cookie" in answer.fields:
            released = answer.fields["cookie"]  # a cached RPC buffer handed back for freeing
            if state.cookies.pop(released, None) is not None:
                state.freed[released] = where

    @staticmethod
    def _ret_where(step: Step) -> tuple[str, int]:
        event = step.ret or step.call
        assert event is not None
        return event.file, event.line

    def _cookie(self, flow: Flow, trip: RpcTrip) -> None:
        """Shared memory handed out by an ALLOC reply and released by a FREE request."""
        state = self.state
        reply = trip.reply
        assert reply is not None and reply.call is not None
        where = (reply.call.file, reply.call.line)
        if trip.func == OPTEE_SMC_RPC_FUNC_ALLOC:
            cookie = trip.reply_fields.get("cookie")
            if cookie:
                state.cookies[cookie] = Cookie(cookie, where, flow.index, trip.fields.get("size"))
                state.freed.pop(cookie, None)
        elif trip.func == OPTEE_SMC_RPC_FUNC_FREE:
            cookie = trip.fields.get("cookie")
            request = trip.request.ret
            at = (request.file, request.line) if request is not None else where
            if cookie is None:
                return
            if state.cookies.pop(cookie, None) is not None:
                state.freed[cookie] = at
            elif cookie in state.freed:
                state.cookie_anomalies.append(("double_free", cookie, at, state.freed[cookie]))
            else:
                state.cookie_anomalies.append(("unknown_free", cookie, at, None))

    def _message(self, event: DriverMessage | TfaMessage | OpteeMessage) -> None:
        if isinstance(event, OpteeMessage) and event.thread is not None:
            self._attach(event)
        if event.what in _QUIET:
            return
        self.state.messages.append(event)
        if isinstance(event, DriverMessage) and event.what in ("dynamic_shm", "async_notif"):
            self.state.capabilities_from_dmesg.setdefault(event.what, (event.file, event.line))

    def _attach(self, event: OpteeMessage) -> None:
        """An OP-TEE log line printed while a flow runs on its thread (a console that interleaves
        both worlds' lines in time order) belongs to that flow."""
        for flow in self._chains.values():
            if flow.thread == event.thread and len(flow.console) < MAX_CONSOLE:
                flow.console.append(event)
                return

    # --- keys ---------------------------------------------------------------------------------
    @staticmethod
    def _tp_key(event: SmcCall | SmcReturn) -> ChainKey:
        return ("tp", event.pid, event.task, event.key)

    @staticmethod
    def _cpu_key(event: SmcCall | SmcReturn) -> object:
        return event.cpu if event.cpu is not None else ("task", event.pid, event.task)

    @staticmethod
    def _note_cpu(flow: Flow, step: Step) -> None:
        cpus = flow.cpus
        if step.call is not None and step.call.cpu is not None and step.call.cpu not in cpus:
            cpus.append(step.call.cpu)
        if step.ret is not None and step.ret.cpu is not None and step.ret.cpu not in cpus:
            cpus.append(step.ret.cpu)
