"""RPC shared-memory rules (abi.md §4, §7.5 check 7): ALLOC answers, and the cookies FREE and CMD
name.

optee_os asks for its RPC argument buffer with RPC ALLOC when the call supplied none (no
RPC_ARG), checks that the address is aligned for ``struct optee_msg_arg`` and else frees the
cookie at once (``thread_rpc_alloc_arg``), and releases it with RPC FREE before the call's OK
answer unless the SHM cache is enabled (``call_entry_std``); with the cache on, buffers come back
through DISABLE_SHM_CACHE. Linux enables that cache exactly when it uses no RPC_ARG, so an ALLOC'd
buffer that is never freed is routine unless the capture shows the cache off.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi.optee import OPTEE_SMC_RETURN_OK, OPTEE_SMC_RPC_FUNC_ALLOC, OPTEE_SMC_RPC_FUNC_CMD, OPTEE_SMC_RPC_FUNC_FREE
from ..abi.profiles import Profile
from ..flows.model import Finding, Flow, RpcTrip
from ..flows.state import Cookie, TraceState, Where
from .base import CALL_WITH_ARG, Check, at, call_where, lost_marker, ret_where, who
from .catalog import RULES_BY_ID

_ARG_ALIGN = 8  # alignof(struct optee_msg_arg): IS_ALIGNED_WITH_TYPE(pa, struct optee_msg_arg)
_SHOWN = 8  # allocations listed in a finding


def _allocs(flow: Flow) -> Iterable[RpcTrip]:
    return (t for t in flow.rpcs if t.func == OPTEE_SMC_RPC_FUNC_ALLOC and t.reply is not None)


def _probe_seen(state: TraceState) -> bool:
    """Whether the capture holds the driver probe, so that every later ALLOC is in it."""
    return state.exchange_seen is not None


def _damage(state: TraceState) -> str | None:
    """What makes the capture miss events since the probe (lost events, time going back), if anything:
    an ALLOC, FREE or ENABLE_SHM_CACHE may be among them."""
    if state.lost:
        return f"events were lost ({at(state.lost[0][:2])})"
    if state.discontinuities:
        file, line = state.discontinuities_at[0][:2] if state.discontinuities_at else ("?", 0)
        return f"the trace's time went back at {file}:{line} (two captures in one file, or a garbled timestamp)"
    return None


class RpcAllocFailed(Check):
    """RPC ALLOC answered with address 0 or a misaligned one."""

    rule = RULES_BY_ID["SMC030"]
    traits = frozenset({"rpc_alloc"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        out = []
        for trip in _allocs(flow):
            pa = trip.reply_fields.get("buf_pa")
            if pa is None or (pa and pa % _ARG_ALIGN == 0):
                continue
            what = "address 0 (the allocation failed)" if pa == 0 else \
                f"address {pa:#x}, not aligned for struct optee_msg_arg"
            assert trip.reply is not None
            out.append(self.finding(
                f"RPC ALLOC of {trip.fields.get('size', '?')} bytes from OP-TEE thread {trip.thread} at "
                f"{at(ret_where(trip.request))} was answered with {what} at {at(call_where(trip.reply))} by "
                f"{who(flow)}: optee_os frees the cookie with RPC FREE and the RPC, and so the call, fails with "
                "TEE_ERROR_OUT_OF_MEMORY (thread_rpc_alloc_arg).", call_where(trip.reply), flow))
        return out


class RpcAllocNoCookie(Check):
    """RPC ALLOC answered with a buffer but cookie 0 in a4:a5."""

    rule = RULES_BY_ID["SMC031"]
    traits = frozenset({"rpc_alloc"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        out = []
        for trip in _allocs(flow):
            if trip.reply_fields.get("buf_pa") and not trip.reply_fields.get("cookie"):
                assert trip.reply is not None
                out.append(self.finding(
                    f"RPC ALLOC answered at {at(call_where(trip.reply))} by {who(flow)} gives buffer "
                    f"{trip.reply_fields['buf_pa']:#x} but cookie 0 in a4:a5: OP-TEE names the buffer by that "
                    "cookie in RPC CMD and FREE (optee_smc.h OPTEE_SMC_RPC_FUNC_ALLOC), so the normal world can "
                    "never find it again.", call_where(trip.reply), flow))
        return out


class ShmNeverFreed(Check):
    """ALLOC'd buffers still live at the end: an error only when the capture shows the probe and
    no ENABLE_SHM_CACHE, and the allocating call completed with OK."""

    rule = RULES_BY_ID["SMC032"]
    traits = frozenset({"incomplete", "not_ok"})  # a call answered OK leaves OP-TEE no buffer

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._kept: dict[int, str] = {}  # live cookie -> why OP-TEE may still hold it (its call did not end OK)

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        if not flow.rpcs or (flow.incomplete is None and flow.result is not None
                             and flow.result.status == OPTEE_SMC_RETURN_OK):
            return ()
        why = f"its call was cut ({flow.incomplete})" if flow.incomplete else \
            f"its call ended {flow.result_name or 'without an OK answer'}, so OP-TEE keeps it for the thread"
        for trip in _allocs(flow):
            cookie = trip.reply_fields.get("cookie")
            if cookie in state.cookies:
                self._kept[cookie] = why
        if len(self._kept) > 2 * len(state.cookies) + 16:
            self._kept = {c: w for c, w in self._kept.items() if c in state.cookies}
        return ()

    def finish(self, state: TraceState) -> Iterable[Finding]:
        groups: dict[str, list[Cookie]] = {}
        for cookie in state.cookies.values():
            groups.setdefault(self._why(cookie, state), []).append(cookie)
        return [self._finding(why, cookies) for why, cookies in groups.items()]

    def _why(self, cookie: Cookie, state: TraceState) -> str:
        if cookie.cookie in self._kept:
            return self._kept[cookie.cookie]
        if state.shm_cache_enabled is not None:
            return (f"ENABLE_SHM_CACHE answered OK at {at(state.shm_cache_enabled)}, so OP-TEE keeps its RPC "
                    "buffers cached and hands them back through DISABLE_SHM_CACHE when the driver is removed, "
                    "which the capture does not show")
        if not _probe_seen(state):
            return ("the capture does not show whether the SHM cache is on, and Linux enables it whenever it "
                    "uses RPC ALLOC (no RPC_ARG), in which case OP-TEE keeps the buffer")
        damage = _damage(state)
        if damage is not None:
            return f"{damage}, so the RPC FREE, or an ENABLE_SHM_CACHE that keeps the buffer, may be among the " \
                "missing events"
        return ""

    def _finding(self, why: str, cookies: list[Cookie]) -> Finding:
        first = cookies[0]
        listed = ", ".join(f"{c.cookie:#x} ({c.size if c.size is not None else '?'} bytes, {at(c.allocated)})"
                           for c in cookies[:_SHOWN])
        more = f" and {len(cookies) - _SHOWN} more" if len(cookies) > _SHOWN else ""
        text = f"{len(cookies)} RPC ALLOC buffer(s) never freed: cookie {listed}{more}"
        evidence = [c.allocated for c in cookies[1:_SHOWN]]
        if why:
            return self.finding(f"{text}; {why}.", first.allocated, None, "info", evidence)
        return self.finding(f"{text}; the capture shows the probe without ENABLE_SHM_CACHE, and optee_os frees "
                            "its RPC argument buffer with RPC FREE before a call's OK answer when the cache is off "
                            "(call_entry_std): the buffer leaks.", first.allocated, None, "error", evidence)


class _Anomalies(Check):
    """Reads the tracker's cookie anomalies (``state.cookie_anomalies``) of one kind, reporting each
    with the flow whose RPC FREE shows it."""

    kind = ""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._read = 0
        self._open: dict[Where, tuple[int, Where | None]] = {}  # FREE request line -> (cookie, freed before at)

    def _collect(self, state: TraceState) -> None:
        for kind, cookie, where, before in state.cookie_anomalies[self._read:]:
            if kind == self.kind:
                self._open[where] = (cookie, before)
        self._read = len(state.cookie_anomalies)

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        if not flow.rpcs:
            return ()
        self._collect(state)
        out = []
        for trip in flow.rpcs:
            if trip.func == OPTEE_SMC_RPC_FUNC_FREE and self._open:
                anomaly = self._open.pop(ret_where(trip.request), None)
                if anomaly is not None:
                    out.append(self.report(anomaly[0], ret_where(trip.request), anomaly[1], flow, state))
        return out

    def finish(self, state: TraceState) -> Iterable[Finding]:
        self._collect(state)
        out = [self.report(cookie, where, before, None, state) for where, (cookie, before) in self._open.items()]
        self._open.clear()
        return out

    def report(self, cookie: int, where: Where, before: Where | None, flow: Flow | None,
               state: TraceState) -> Finding:
        raise NotImplementedError


class ShmDoubleFree(_Anomalies):
    """RPC FREE of a cookie already freed."""

    rule = RULES_BY_ID["SMC033"]
    traits = frozenset({"rpc_free"})  # the anomalies are read when a FREE can show one
    kind = "double_free"

    def report(self, cookie: int, where: Where, before: Where | None, flow: Flow | None,
               state: TraceState) -> Finding:
        gap = lost_marker(state, where[0], flow.cpus if flow else (), after=before[1] if before else 0,
                          before=where[1])
        text = f"RPC FREE of cookie {cookie:#x} at {at(where)} frees it again; it was freed at " \
               f"{at(before) if before else '?'}"
        if gap is not None:
            return self.finding(f"{text}, but events were lost in between ({at(gap)}): an ALLOC reusing the "
                                "cookie may be among them.", where, flow, "info")
        return self.finding(f"{text} and no RPC ALLOC handed it out since: Linux would tee_shm_free() a "
                            "freed struct tee_shm (a use-after-free in the kernel).", where, flow,
                            evidence=[before] if before else ())


class ShmUnknownCookie(_Anomalies):
    """RPC FREE or CMD naming a cookie no ALLOC handed out; CMD without any buffer in a
    CALL_WITH_ARG call, which has no preallocated RPC argument."""

    rule = RULES_BY_ID["SMC034"]
    traits = frozenset({"rpc_free", "rpc_shm_cmd"})
    kind = "unknown_free"
    _NAMED = 64  # unknown cookies remembered: a CMD naming one already reported is not reported again

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._named: dict[int, None] = {}

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        out = list(super().on_flow(flow, state))
        allocated: set[int] = set()
        with_arg = flow.function == CALL_WITH_ARG
        for trip in flow.rpcs:
            if trip.func == OPTEE_SMC_RPC_FUNC_ALLOC:
                allocated.add(trip.reply_fields.get("cookie", 0))
            elif trip.func == OPTEE_SMC_RPC_FUNC_CMD:
                cookie = trip.fields.get("cookie", 0)
                if cookie == 0 and with_arg:
                    out.append(self._no_buffer(trip, flow, state))
                elif cookie and cookie not in allocated and cookie not in state.cookies \
                        and cookie not in state.freed and cookie not in self._named:
                    out.append(self.report(cookie, ret_where(trip.request), None, flow, state, "CMD"))
                    self._named[cookie] = None
                    if len(self._named) > self._NAMED:
                        del self._named[next(iter(self._named))]
        return out

    def report(self, cookie: int, where: Where, before: Where | None, flow: Flow | None,
               state: TraceState, what: str = "FREE") -> Finding:
        text = f"RPC {what} at {at(where)} names cookie {cookie:#x}, which no RPC ALLOC in the capture handed out" + \
            (" (later CMDs naming it are not reported)" if what == "CMD" else "")
        if not _probe_seen(state) or lost_marker(state, where[0], flow.cpus if flow else ()) is not None:
            return self.finding(f"{text}; the capture does not hold everything since the driver probe, so the "
                                "ALLOC may predate it.", where, flow, "info")
        damage = _damage(state)
        if damage is not None:
            return self.finding(f"{text}; {damage}, so the ALLOC may be among the missing events.", where, flow,
                                "info")
        return self.finding(f"{text}, although it holds everything since the driver probe: Linux would use "
                            "reg_pair_to_ptr(a1, a2) as a struct tee_shm pointer (Xen: \"Can't find SHM-RPC with "
                            "cookie\", X11).", where, flow)

    def _no_buffer(self, trip: RpcTrip, flow: Flow, state: TraceState) -> Finding:
        where = ret_where(trip.request)
        failed = [(m.file, m.line) for m in state.messages if m.what == "rpc_shm_get_va_failed"][:3]
        logged = f" (the driver's error: {', '.join(at(w) for w in failed)})" if failed else ""
        return self.finding(f"RPC CMD from OP-TEE thread {trip.thread} at {at(where)} in CALL_WITH_ARG by "
                            f"{who(flow)} names cookie 0: a CALL_WITH_ARG call has no preallocated RPC argument, so "
                            "the command must be in a buffer from RPC ALLOC; Linux fails tee_shm_get_va() and drops "
                            f"the command{logged}.", where, flow, evidence=failed)


CHECKS = (RpcAllocFailed, RpcAllocNoCookie, ShmNeverFreed, ShmDoubleFree, ShmUnknownCookie)
