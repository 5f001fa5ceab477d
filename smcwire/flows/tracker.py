"""The tracker: pairs SMC entries with their returns and groups them into call flows.

Pairing (abi.md §7.1, formats.md §2.1-2.2):
- optee tracepoints: a begin and its end share the ``param=`` pointer and the task, and so do
  all steps of one yielding call: CALL_WITH_* → RPC request → RETURN_FROM_RPC → … → result.
  After ETHREAD_LIMIT Linux waits and re-issues the same a0-a7 under the same param.
- kprobe events carry no key: an entry and its return pair per CPU, last in first out (an SMC
  from interrupt context can nest inside a task's); a task's yielding chain is its consecutive
  steps. A kprobe entry that repeats the pending tracepoint begin of the same task (same
  registers) is the same SMC seen twice: it is kept as ``Step.also``, not as a second call.

``feed`` returns the flows an event completes; only what is in flight is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

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
from .model import Flow, RpcTrip, Step
from .state import Cookie, Fact, TraceState

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
        self._begun: dict[tuple[int | None, str | None], Step] = {}  # each task's latest tracepoint begin
        self._holding: set[ChainKey] = set()  # yielding calls inside OP-TEE (entered, not finished or refused)
        self._done: list[Flow] = []  # flows completed by the event being fed
        self._handlers = {SmcCall: self._call, SmcReturn: self._return, LostEvents: self._lost,
                          DriverMessage: self._message, TfaMessage: self._message, OpteeMessage: self._message,
                          BootMilestone: self.state.other.append, RegisterDump: self.state.other.append}

    # --- events in --------------------------------------------------------------------------
    def feed(self, event: Event) -> Sequence[Flow]:
        """The flows this event completes (usually none)."""
        self._handlers[type(event)](event)  # type: ignore[operator]
        if self._done:
            done, self._done = self._done, []
            return done
        return ()

    def finish(self) -> Sequence[Flow]:
        """Flows still in flight at the end of the trace, marked incomplete."""
        steps: dict[int, tuple[Step, ChainKey]] = {id(s): (s, key) for key, s in self._pending.items()}
        gap = "trace end" if self.state.kprobe_returns_seen else "no return probe"
        for stack in self._stacks.values():
            steps.update((id(s), (s, ("task", s.call.pid, s.call.task))) for s, dup in stack if not dup and s.call)
        for step, key in steps.values():
            flow = self._chain_of(step)
            chain = self._chains.get(key)
            if flow is None and chain is not None and self._continues(chain, step):
                self._extend(chain, step)  # the resume or retry whose return the trace does not have
            elif flow is None:
                reason = gap if step.call and step.call.key is None else "trace end"
                self._done.append(self._finish(self._new_flow(step), reason))
        for key, flow in list(self._chains.items()):
            del self._chains[key]
            self._done.append(self._finish(flow, "trace end"))
        self._holding.clear()
        self.state.in_flight = 0
        self._pending.clear()
        self._stacks.clear()
        self._begun.clear()
        done, self._done = self._done, []
        return done

    def _lost(self, event: LostEvents) -> None:
        self.state.lost.append((event.file, event.line, event.cpu))
        self._lost_since.add(event.cpu)

    # --- pairing ----------------------------------------------------------------------------
    def _call(self, event: SmcCall) -> None:
        state = self.state
        state.first_event.setdefault(event.file, event.line)
        state.first_entry.setdefault((event.file, event.cpu), event.line)
        if event.key is not None:
            state.tracepoints_seen = True
            self._tracepoint_call(event)
            return
        state.fast_calls_seen = True
        stack = self._stacks.setdefault(self._cpu_key(event), [])
        pending = self._begun.get((event.pid, event.task))
        if pending is not None and pending.ret is None and pending.call is not None and \
                pending.call.regs[:8] == event.regs[:8]:
            pending.also.append(event)
            stack.append((pending, True))
            return
        if not state.kprobe_returns_seen:  # entry probes only: an entry's SMC is over when the next comes
            while stack:
                done, duplicate = stack.pop()
                if not duplicate:
                    self._done.append(self._finish(self._new_flow(done), "no return probe"))
        step = Step(event, None, self.decoder.call(event.regs), None)
        self._seen(step)
        stack.append((step, False))
        self._enter(("task", event.pid, event.task), event)

    def _return(self, event: SmcReturn) -> None:
        state = self.state
        state.has_returns = True
        state.first_event.setdefault(event.file, event.line)
        if event.key is not None:
            self._tracepoint_return(event)
            return
        state.kprobe_returns_seen = True
        stack = self._stacks.get(self._cpu_key(event))
        if not stack:
            self._done.append(self._orphan(event))
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
        earlier = self._begun.get(task)
        if earlier is not None and earlier.ret is None and earlier.call is not None:
            # the task begins an SMC while its previous one has no end: that end is missing (a task
            # issues its yielding SMCs one after the other; optee_smc_do_call_with_arg)
            self._unended(self._tp_key(earlier.call), earlier)
        step = self._pending[key] = Step(event, None, self.decoder.call(event.regs), None)
        self._seen(step)
        self._begun[task] = step
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
            self._done.append(self._finish(flow, "unanswered"))
            flow = None
        self._done.append(self._finish(flow or self._new_flow(step), "no end"))

    def _tracepoint_return(self, event: SmcReturn) -> None:
        key = ("tp", event.pid, event.task, event.key)
        step = self._pending.pop(key, None)
        if step is None:
            chain = self._chains.get(key)
            last = chain.steps[-1].answer if chain is not None else None
            if chain is not None and last is not None and last.is_rpc:
                self._resumed_unseen(chain, key, event)
            else:
                self._done.append(self._orphan(event))
            return
        step.ret = event
        task = (event.pid, event.task)
        if self._begun.get(task) is step:
            del self._begun[task]
        if self._stacks:
            stack = self._stacks.get(self._cpu_key(event))
            while stack and stack[-1][0] is step:  # its kprobe twin, when no return probe popped it
                stack.pop()
        self._answered(step, key)

    def _resumed_unseen(self, flow: Flow, key: ChainKey, event: SmcReturn) -> None:
        """A return under the key of a call waiting for its RETURN_FROM_RPC: the resume's begin is
        missing. The return still answers the call: the flow goes on, marked damaged."""
        step = Step(None, event, None, None)
        flow.steps.append(step)
        flow.rpcs[-1].reply = step
        flow.incomplete = "lost events" if event.cpu in self._lost_since else "missing begin"
        self._note_cpu(flow, step)
        step.answer = answer = self.decoder.ret(flow.first.decoded, event.regs)
        if answer.is_rpc:
            flow.rpcs.append(RpcTrip(step, None, answer.rpc.name if answer.rpc else None, answer.status & 0xFFFF,
                                     answer.fields.get("thread_id"), answer.fields))
            return
        del self._chains[key]
        self._leave(key)
        self._done.append(flow)

    def _answered(self, step: Step, key: ChainKey) -> None:
        """A step has its return: decode it, extend or start its flow, close the flow if final."""
        call, ret = step.call, step.ret
        assert call is not None and ret is not None
        a0 = call.regs[0]
        if a0 >> 31 & 1:  # a fast call is a flow of its own, even nested in a chain
            single = self._new_flow(step)
            step.answer = self.decoder.ret(step.decoded, ret.regs)
            self._learn(single, step)
            self._done.append(self._finish(single, None))
            return
        flow: Flow | None = self._chains.get(key)
        if flow is not None and not self._continues(flow, step):
            del self._chains[key]
            self._done.append(self._finish(flow, "unanswered"))
            flow = None
            if a0 & _M32 != RETURN_FROM_RPC:
                self._enter(key, call)  # the new call still holds a thread
        if flow is None:
            flow = self._new_flow(step)
        else:
            self._extend(flow, step)
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
        self._done.append(self._finish(flow, None))

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
        self._note_cpu(flow, step)
        if event.cpu in self._lost_since:
            flow.incomplete = "lost events"
        elif step.call is not None and step.call.regs[0] & _M32 == RETURN_FROM_RPC:
            flow.incomplete = "no begin"  # a resume with no call before it: the trace began inside the call
        return flow

    def _finish(self, flow: Flow, incomplete: str | None) -> Flow:
        if flow.incomplete is None:
            flow.incomplete = incomplete
        if self._lost_since:
            for step in flow.steps:
                event = step.call or step.ret
                if event is not None:
                    self._lost_since.discard(event.cpu)
        return flow

    def _orphan(self, event: SmcReturn) -> Flow:
        """A return with no entry: the trace began (or events were lost) inside the call."""
        step = Step(None, event, None, None)
        flow = self._new_flow(step)
        gap = "lost events" if event.cpu in self._lost_since else "no begin"
        return self._finish(flow, gap)

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
        a0 = call.regs[0] & _M32
        where = (call.file, call.line)
        function = step.decoded.function if step.decoded is not None else None
        if function is not None:
            ret = (step.ret.file, step.ret.line) if step.ret is not None else where
            if not function.rpc:
                state.answers[function.name] = (answer.status_name, answer.fields, ret)
            elif state.first_error is None and not answer.is_rpc and answer.status not in _NOT_ERRORS:
                state.first_error = (flow.function, answer.status_name, answer.status, ret)
        if a0 == _EXCHANGE_CAPABILITIES:
            state.exchange_seen = state.exchange_seen or where
            state.nsec_caps = Fact(call.regs[1] & _M32, [where], "OPTEE_SMC_EXCHANGE_CAPABILITIES")
            if answer.status == 0 and "sec_caps" in answer.fields:
                ret = (step.ret.file, step.ret.line) if step.ret is not None else where
                state.sec_caps = Fact(answer.fields["sec_caps"], [ret], "OPTEE_SMC_EXCHANGE_CAPABILITIES")
                if "rpc_param_count" in answer.fields:
                    state.rpc_param_count = Fact(answer.fields["rpc_param_count"], [ret],
                                                 "OPTEE_SMC_EXCHANGE_CAPABILITIES")
        elif a0 == _GET_THREAD_COUNT and answer.status == 0 and "thread_count" in answer.fields:
            ret = (step.ret.file, step.ret.line) if step.ret is not None else where
            state.thread_count = Fact(answer.fields["thread_count"], [ret], "OPTEE_SMC_GET_THREAD_COUNT")
        elif a0 == _ENABLE_ASYNC_NOTIF and answer.status == 0:
            state.async_notif_enabled = where
        elif a0 == _ENABLE_SHM_CACHE and answer.status == 0:
            state.shm_cache_enabled = where
        elif a0 == _DISABLE_SHM_CACHE and answer.status == 0 and "cookie" in answer.fields:
            released = answer.fields["cookie"]  # a cached RPC buffer handed back for freeing
            if state.cookies.pop(released, None) is not None:
                state.freed[released] = where
        if flow.rpcs and flow.rpcs[-1].reply is step:
            self._cookie(flow, flow.rpcs[-1])

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
