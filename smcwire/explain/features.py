"""Whether each OP-TEE feature is active in a capture, and why, from its evidence.

Evidence, strongest first: SMC results (a return probe on the driver's SMC entry), the calls the
driver chose (abi.md §7.1: CALL_WITH_REGD_ARG only with dynamic SHM and RPC_ARG, CALL_WITH_RPC_ARG
only with RPC_ARG, CALL_WITH_ARG and ENABLE_SHM_CACHE only without), the driver's kernel-log lines,
and the OP-TEE and TF-A consoles. A feature the capture holds no evidence on is ``active=None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..abi.profiles import get_profile
from ..flows.state import TraceState, Where
from ..model.events import DriverMessage, OpteeMessage, TfaMessage
from .evidence import PROBE_FAILURES, Evidence, body, refs, short, status_text

FEATURES = ("driver_probe", "dynamic_shm", "reserved_shm", "rpc_arg", "async_notif", "thread_count",
            "system_thread_reservation", "virtualization")
_RECORD = "a kprobe and kretprobe on optee_smccc_smc record them, see smcwire tracing-setup"


@dataclass(frozen=True, slots=True)
class Feature:
    """One feature's verdict: ``active`` (None: no evidence either way), a ``value`` where one
    applies (driver_probe: the SEC caps; reserved_shm: its size; rpc_arg: the RPC parameter count;
    async_notif: the highest notification value; thread_count: the OP-TEE thread count, from
    GET_THREAD_COUNT or, after ETHREAD_LIMIT, inferred as the peak concurrency minus the refused
    call), one sentence saying why, and the (file, line) of each piece of evidence it names."""

    feature: str
    active: bool | None
    value: int | None
    reason: str
    evidence: tuple[Where, ...]


class _Reason:
    """Cites evidence for one reason and collects the lines it names."""

    def __init__(self, ev: Evidence) -> None:
        self.ev = ev
        self.evidence: list[Where] = []

    def __call__(self, *wheres: Where) -> str:
        """``(ftrace.txt:20)``."""
        return f"({self.at(*wheres)})"

    def at(self, *wheres: Where) -> str:
        """``ftrace.txt:20``."""
        self.evidence.extend(w for w in wheres if w not in self.evidence)
        return refs(*wheres)

    def line(self, message: DriverMessage | TfaMessage | OpteeMessage) -> str:
        return self((message.file, message.line))

    def caps(self, name: str) -> str:
        """``sec caps 0xf5 have DYNAMIC_SHM (0x4) (ftrace.txt:20)``."""
        return f"{self.ev.caps_text(name)} {self(*self.ev.caps_where)}"

    def said(self, message: OpteeMessage) -> str:
        return f"OP-TEE logged '{message.text}' {self.line(message)}"

    def failed(self) -> str | None:
        """``the driver probe failed: 'api uid mismatch' (dmesg.txt:254)`` when it did."""
        failure = self.ev.probe_failure
        if failure is not None:
            return f"the driver probe failed: '{body(failure)}' {self.line(failure)}"
        breaks = self.ev.probe_breaks()
        return f"the driver probe failed: {breaks[0][1]} {self(breaks[0][2])}" if breaks else None

    def feature(self, name: str, active: bool | None, reason: str, value: int | None = None) -> Feature:
        return Feature(name, active, value, reason, tuple(self.evidence))


def explain(state: TraceState, profile_name: str) -> list[Feature]:
    """One Feature per name of FEATURES, in that order."""
    ev = Evidence(state, get_profile(profile_name))
    dynamic = _dynamic_shm(ev)
    return [_driver_probe(ev), dynamic, _reserved_shm(ev, dynamic), _rpc_arg(ev), _async_notif(ev),
            _thread_count(ev), _system_thread(ev, dynamic), _virtualization(ev)]


# --- driver_probe -----------------------------------------------------------------------------
def _driver_probe(ev: Evidence) -> Feature:
    r = _Reason(ev)
    breaks, failure = ev.probe_breaks(), ev.probe_failure
    if breaks or failure is not None:
        return r.feature("driver_probe", False, _probe_failed(ev, r, breaks, failure))
    facts = []
    if (uid := ev.answer("OPTEE_SMC_CALLS_UID")) is not None:
        facts.append(f"CALLS_UID returned OP-TEE's UID {r(uid.where)}")
    caps, exchange = ev.state.sec_caps, ev.answer("OPTEE_SMC_EXCHANGE_CAPABILITIES")
    if exchange is not None and caps is not None:
        facts.append(f"EXCHANGE_CAPABILITIES returned OK with sec caps {caps.value:#x} {r(exchange.where)}")
    if (done := ev.driver.get("initialized")) is not None:
        facts.append(f"the driver logged 'initialized driver' {r.line(done)}")
    if facts:
        return r.feature("driver_probe", True, f"the probe found {_optee(ev, r)}: {_join(facts)}")
    first = next(iter(ev.state.calls_seen.values()), None)
    if first is not None and ev.state.has_returns and ev.state.first_error is None:
        return r.feature("driver_probe", True, f"the driver is bound to {_optee(ev, r)}: it answered the driver's "
                         f"calls without error, the first at {r.at(first)}, though the capture has neither the "
                         "driver's log nor its probe")
    return r.feature("driver_probe", None, "unknown: the capture has neither the driver's kernel log nor the SMCs "
                     "of its probe")


def _optee(ev: Evidence, r: _Reason) -> str:
    """``OP-TEE 4.10 (dmesg.txt:245)``, or ``OP-TEE`` when its version is not in the capture."""
    revision = ev.revision()
    return f"OP-TEE {revision} {r(revision.where)}" if revision is not None else "OP-TEE"


def _tfa_said(no_bl32: TfaMessage, r: _Reason) -> str:
    what = "no BL32 was loaded" if no_bl32.what == "opteed_no_bl32" else "its OP-TEE dispatcher did not start"
    return f"TF-A said {what} {r.line(no_bl32)}"


def _probe_failed(ev: Evidence, r: _Reason, breaks: list[tuple[str, str, Where]],
                  failure: DriverMessage | None) -> str:
    """Why the probe failed: a short diagnosis, then the answers, firmware and driver lines that show it."""
    kind = breaks[0][0] if breaks else failure.what if failure is not None else "probe_failed"
    causes = [f"{text} {r(where)}" for _, text, where in breaks]
    no_bl32 = ev.no_bl32
    if no_bl32 is not None and kind in ("no_optee", "uid_mismatch"):
        kind = "no_optee"
        causes.append(_tfa_said(no_bl32, r))
    elif (bl32 := ev.milestones.get("bl32_init_failed")) is not None:
        causes.append(f"TF-A said BL32 failed to initialise {r((bl32.file, bl32.line))}")
    if not breaks and ev.state.first_error is not None:
        function, name, status, where = ev.state.first_error
        causes.append(f"{short(function)} returned {status_text(status, name)} {r(where)}")
    said = [f"'{body(m)}' {r.line(m)}" for what, m in ev.driver.items()
            if what in PROBE_FAILURES and what != "probe_failed"]
    if said:
        causes.append("the driver logged " + " and ".join(said))
    if (ended := ev.driver.get("probe_failed")) is not None:
        causes.append(f"its probe failed with error {ended.data.get('error')} {r.line(ended)}")
    return f"{PROBE_FAILURES[kind]}: {_join(causes)}" if causes else PROBE_FAILURES[kind]


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]


# --- shared memory ----------------------------------------------------------------------------
def _dynamic_shm(ev: Evidence) -> Feature:
    r = _Reason(ev)
    offered = ev.caps_have("DYNAMIC_SHM")
    if (failed := r.failed()) is not None:
        return r.feature("dynamic_shm", False, f"not in use, {failed}" + (
            f", though OP-TEE offers it: {r.caps('DYNAMIC_SHM')}" if offered else ""))
    logged, regd = ev.driver.get("dynamic_shm"), ev.called("OPTEE_SMC_CALL_WITH_REGD_ARG")
    facts = [r.caps("DYNAMIC_SHM")] if offered is not None else []
    if logged is not None:
        facts.append(f"the driver logged 'dynamic shared memory is enabled' {r.line(logged)}")
    if regd is not None:
        facts.append(f"{'it' if facts else 'the driver'} registers buffers with CALL_WITH_REGD_ARG {r(regd)}"
                     + ("" if facts else ", which Linux does only with dynamic shared memory"))
    if offered is not False and (logged is not None or regd is not None):
        return r.feature("dynamic_shm", True, _join(facts))
    done, optee = ev.driver.get("initialized"), ev.optee_says("dynamic_shm")
    if offered is None and done is not None:
        facts.append(f"the driver initialized {r.line(done)} without logging 'dynamic shared memory is enabled'")
    if optee is not None and not optee.data["enabled"]:
        facts.append(r.said(optee))
    if facts:
        return r.feature("dynamic_shm", False, "OP-TEE does not offer it (it turns it off when built with "
                         f"CFG_CORE_DYN_SHM=n or when it knows no non-secure DDR): {_join(facts)}")
    if optee is not None:
        return r.feature("dynamic_shm", None, f"{r.said(optee)}, but the capture shows neither the capabilities the "
                         "driver negotiated nor its log")
    return r.feature("dynamic_shm", None, "unknown: the capture has no EXCHANGE_CAPABILITIES answer, no "
                     "CALL_WITH_REGD_ARG, no driver log and no OP-TEE boot log")


def _reserved_shm(ev: Evidence, dynamic: Feature) -> Feature:
    """Linux maps OP-TEE's reserved SHM (GET_SHM_CONFIG) only when dynamic SHM is not offered."""
    r = _Reason(ev)
    config = ev.answer("OPTEE_SMC_GET_SHM_CONFIG")
    if config is not None and config.ok:
        size = config.fields.get("shm_size")
        return r.feature("reserved_shm", True, f"the driver maps OP-TEE's reserved shared memory: GET_SHM_CONFIG "
                         f"returned {size} bytes at {config.fields.get('shm_pa', 0):#x} {r(config.where)}", size)
    if config is not None:
        return r.feature("reserved_shm", False, f"GET_SHM_CONFIG returned {status_text(config.status, config.name)} "
                         f"{r(config.where)}, so the driver has no reserved shared memory")
    offered, optee = ev.caps_have("HAVE_RESERVED_SHM"), ev.optee_says("reserved_shm")
    if dynamic.active:
        reason = (f"not used: the driver uses dynamic shared memory {r(*dynamic.evidence)} and maps the reserved "
                  "area (GET_SHM_CONFIG) only without it")
        if offered:
            reason += f", though OP-TEE offers it: {r.caps('HAVE_RESERVED_SHM')}"
        return r.feature("reserved_shm", False, reason)
    if (failed := r.failed()) is not None:
        return r.feature("reserved_shm", False, f"not in use, {failed}")
    if offered is False:
        return r.feature("reserved_shm", False, f"OP-TEE does not offer it: {r.caps('HAVE_RESERVED_SHM')}")
    if optee is not None and not optee.data["enabled"]:
        return r.feature("reserved_shm", False, f"OP-TEE does not offer it: {r.said(optee)}")
    done = ev.driver.get("initialized")
    if dynamic.active is False and done is not None and (offered or optee is not None):
        other = [w for w in dynamic.evidence if w != (done.file, done.line)]
        lead = (f"the driver initialized {r.line(done)} without dynamic shared memory"
                + (f" {r(*other)}" if other else ""))
        announced = r.caps("HAVE_RESERVED_SHM") if offered or optee is None else r.said(optee)
        return r.feature("reserved_shm", True, f"{lead}, so its pool is the reserved shared memory: {announced}")
    return r.feature("reserved_shm", None, "unknown: the capture shows neither GET_SHM_CONFIG nor whether the "
                     "driver uses dynamic shared memory")


# --- how yielding calls pass their argument ---------------------------------------------------
def _rpc_arg(ev: Evidence) -> Feature:
    r = _Reason(ev)
    if (failed := r.failed()) is not None:
        return r.feature("rpc_arg", False, f"not in use, {failed}")
    offered = ev.caps_have("RPC_ARG")
    count = ev.state.rpc_param_count.value if ev.state.rpc_param_count is not None else None
    head = r.caps("RPC_ARG") if offered is not None else ""
    rpc, regd = ev.called("OPTEE_SMC_CALL_WITH_RPC_ARG"), ev.called("OPTEE_SMC_CALL_WITH_REGD_ARG")
    plain, cache = ev.called("OPTEE_SMC_CALL_WITH_ARG"), ev.state.shm_cache_enabled
    modern = [f"{name} {r(w)}" for name, w in (("CALL_WITH_RPC_ARG", rpc), ("CALL_WITH_REGD_ARG", regd)) if w]
    legacy = [f"CALL_WITH_ARG {r(plain)}"] if plain else []
    if cache is not None:
        legacy.append(f"ENABLE_SHM_CACHE {r(cache)}")
    chose = f"the driver uses {' and '.join(modern or legacy)}" if modern or legacy else ""
    if offered and count:
        return r.feature("rpc_arg", True, f"{head} and {count} RPC parameters" + (f", and {chose}" if chose else ""),
                         count)
    if offered:
        return r.feature("rpc_arg", False, f"{head} but 0 RPC parameters, so the driver does not use it")
    if offered is False and modern:  # contradictory evidence: the driver uses what OP-TEE did not offer
        return r.feature("rpc_arg", False, f"OP-TEE does not offer it: {head}, yet {chose}: calls it should not "
                         "make (see `smcwire check`, SMC041)")
    if offered is False:
        return r.feature("rpc_arg", False, f"OP-TEE does not offer it: {head}{_too_old(ev, r)}"
                         + (f", so {chose}" if chose else ""))
    if modern:
        return r.feature("rpc_arg", True, f"{chose}, which it does only when OP-TEE offered RPC_ARG")
    if legacy:
        return r.feature("rpc_arg", False, f"{chose}, which it does only when OP-TEE did not offer RPC_ARG"
                         f"{_too_old(ev, r)}")
    return r.feature("rpc_arg", None, "unknown: the capture has no EXCHANGE_CAPABILITIES answer and no yielding call")


def _too_old(ev: Evidence, r: _Reason) -> str:
    """``, and OP-TEE 3.16 (…) predates RPC_ARG (3.17)`` when its version shows it."""
    revision = ev.revision()
    if revision is None or (revision.major, revision.minor) >= (3, 17):
        return ""
    return f", and OP-TEE {revision} {r(revision.where)} predates RPC_ARG, added in 3.17"


# --- asynchronous notifications ---------------------------------------------------------------
def _async_notif(ev: Evidence) -> Feature:
    r = _Reason(ev)
    if (failed := r.failed()) is not None:
        return r.feature("async_notif", False, f"not in use, {failed}")
    offered = ev.caps_have("ASYNC_NOTIF")
    exchange = ev.answer("OPTEE_SMC_EXCHANGE_CAPABILITIES")
    highest = exchange.fields.get("max_notif_value") if exchange is not None and offered else None
    enabled, logged = ev.answer("OPTEE_SMC_ENABLE_ASYNC_NOTIF"), ev.driver.get("async_notif")
    fetched = ev.called("OPTEE_SMC_GET_ASYNC_NOTIF_VALUE")
    facts = []
    if offered:
        facts.append(r.caps("ASYNC_NOTIF") + (f" with notification values up to {highest:#x}" if highest else ""))
    if enabled is not None:
        facts.append(f"ENABLE_ASYNC_NOTIF returned {status_text(enabled.status, enabled.name)} {r(enabled.where)}")
        if not enabled.ok:
            return r.feature("async_notif", False, f"OP-TEE refused them: {_join(facts)}, a result the driver ignores")
    if logged is not None:
        facts.append(f"the driver logged 'Asynchronous notifications enabled' {r.line(logged)}")
    if fetched is not None:
        facts.append(f"it fetches notifications with GET_ASYNC_NOTIF_VALUE {r(fetched)}")
    if offered is not False and (enabled is not None or logged is not None or fetched is not None):
        return r.feature("async_notif", True, _join(facts), highest)
    if offered is False:
        facts.append(r.caps("ASYNC_NOTIF"))
    done, optee = ev.driver.get("initialized"), ev.optee_says("async_notif")
    if offered is None and done is not None:
        facts.append(f"the driver initialized {r.line(done)} without logging 'Asynchronous notifications enabled'")
    if optee is not None and not optee.data["enabled"]:
        facts.append(r.said(optee))
    if facts:
        return r.feature("async_notif", False, f"OP-TEE does not offer them (CFG_CORE_ASYNC_NOTIF=n): {_join(facts)}")
    if optee is not None:
        return r.feature("async_notif", None, f"{r.said(optee)}, but the capture shows neither the driver's "
                         "ENABLE_ASYNC_NOTIF nor its log")
    return r.feature("async_notif", None, "unknown: the capture has no EXCHANGE_CAPABILITIES answer, no "
                     "notification SMC, no driver log and no OP-TEE boot log")


# --- threads ----------------------------------------------------------------------------------
def _thread_count(ev: Evidence) -> Feature:
    r = _Reason(ev)
    state = ev.state
    if state.thread_count is not None:
        n = state.thread_count.value
        return r.feature("thread_count", True, f"OP-TEE has {n} thread{'s' * (n != 1)}: GET_THREAD_COUNT returned "
                         f"{n} {r(*state.thread_count.evidence)}, and Linux counts free threads against it"
                         f"{_concurrency(ev, r)}", n)
    inferred = state.refused_with - 1 if state.refused_with is not None and state.refused_with > 1 else None
    count = ev.answer("OPTEE_SMC_GET_THREAD_COUNT")
    if count is not None:
        return r.feature("thread_count", False, f"GET_THREAD_COUNT returned {status_text(count.status, count.name)} "
                         f"{r(count.where)}, so the driver does not track OP-TEE threads{_concurrency(ev, r)}",
                         inferred)
    if (window := _no_thread_count(ev)) is not None:
        return r.feature("thread_count", False, f"the driver never asks: its probe went from CALLS_REVISION "
                         f"{r(window[0])} to EXCHANGE_CAPABILITIES {r(window[1])} without GET_THREAD_COUNT "
                         f"(0xb200000f), as Linux before 6.8 does{_concurrency(ev, r)}", inferred)
    if (failed := r.failed()) is not None:
        return r.feature("thread_count", False, f"not asked, {failed}{_concurrency(ev, r)}", inferred)
    if state.ethread_limit:
        return r.feature("thread_count", False, f"the driver does not count OP-TEE threads, as Linux >= 6.8 does "
                         f"to wait for a free one before the SMC{_concurrency(ev, r)}", inferred)
    asked = ev.called("OPTEE_SMC_GET_THREAD_COUNT")
    if asked is not None:
        missing = f"GET_THREAD_COUNT was called {r(asked)} but its answer is not in the capture"
    elif "OPTEE_SMC_GET_THREAD_COUNT" not in ev.profile.by_name:
        missing = f"profile {ev.profile.name} has no GET_THREAD_COUNT"
    else:
        missing = f"the capture does not show the driver probe's fast calls ({_RECORD})"
    return r.feature("thread_count", None, f"unknown: {missing}{_concurrency(ev, r)}", inferred)


def _no_thread_count(ev: Evidence) -> tuple[Where, Where] | None:
    """CALLS_REVISION and EXCHANGE_CAPABILITIES when the probe between them made no GET_THREAD_COUNT."""
    known = "OPTEE_SMC_GET_THREAD_COUNT" in ev.profile.by_name
    return ev.probe_window if known and ev.called("OPTEE_SMC_GET_THREAD_COUNT") is None else None


def _concurrency(ev: Evidence, r: _Reason) -> str:
    """What the in-flight yielding calls say about the thread count, as a trailing clause."""
    state = ev.state
    peak = state.peak_in_flight
    if not peak or state.peak_in_flight_at is None:
        return ""
    at = r(state.peak_in_flight_at)
    inside = f"at most {peak} yielding call{'s were' if peak != 1 else ' was'} inside OP-TEE at once {at}"
    refused = state.refused_with
    if state.ethread_limit and state.ethread_limit_at is not None and refused is not None \
            and state.refused_with_at is not None:
        first = r.at(state.ethread_limit_at)
        return (f"; OP-TEE answered ETHREAD_LIMIT {state.ethread_limit} times, the first at {first}; it refused a "
                f"call with {refused} yielding calls inside {r(state.refused_with_at)}, so it has at most "
                f"{refused - 1}; {inside}")
    return f"; {inside}"


def _system_thread(ev: Evidence, dynamic: Feature) -> Feature:
    """Mainline (abi.md §8): Linux >= 6.8 keeps a thread for system sessions when GET_THREAD_COUNT > 1."""
    if ev.cap("SYSTEM_THREAD") is not None:
        return _system_thread_proposal(ev, dynamic)
    r = _Reason(ev)
    name = "system_thread_reservation"
    if (failed := r.failed()) is not None:
        return r.feature(name, False, f"no system-thread reservation, {failed}")
    if ev.state.thread_count is not None:
        n, where = ev.state.thread_count.value, r(*ev.state.thread_count.evidence)
        if n > 1:
            return r.feature(name, True, f"Linux >= 6.8 can keep one thread for system sessions: GET_THREAD_COUNT "
                             f"returned {n} {where}, more than 1 (whether a system session exists is not visible "
                             "in SMCs)")
        return r.feature(name, False, f"system sessions cannot get a reserved thread: GET_THREAD_COUNT returned {n} "
                         f"{where}, and Linux >= 6.8 reserves one only when OP-TEE has more than 1 (CFG_NUM_THREADS)")
    if (count := ev.answer("OPTEE_SMC_GET_THREAD_COUNT")) is not None:
        return r.feature(name, False, f"GET_THREAD_COUNT returned {status_text(count.status, count.name)} "
                         f"{r(count.where)}, so Linux >= 6.8 disables thread tracking and keeps no system thread")
    if (window := _no_thread_count(ev)) is not None:
        return r.feature(name, False, f"this Linux has no system-thread support at all: its probe went from "
                         f"CALLS_REVISION {r(window[0])} to EXCHANGE_CAPABILITIES {r(window[1])} without "
                         "GET_THREAD_COUNT (0xb200000f), which Linux asks since 6.8 (6.1 does not)")
    if ev.state.ethread_limit and ev.state.ethread_limit_at is not None:
        return r.feature(name, False, f"Linux keeps no thread for system sessions, as it does not count OP-TEE "
                         f"threads: OP-TEE answered ETHREAD_LIMIT {ev.state.ethread_limit} times, the first at "
                         f"{r.at(ev.state.ethread_limit_at)}, which a Linux >= 6.8 that knows the thread count "
                         "avoids by waiting for a free thread before the SMC")
    return r.feature(name, None, "unknown: the capture does not show the driver probe's fast calls, where Linux "
                     f">= 6.8 asks GET_THREAD_COUNT ({_RECORD}), and the driver logs nothing about threads")


def _system_thread_proposal(ev: Evidence, dynamic: Feature) -> Feature:
    """The 2023 proposals (abi.md §8): SEC_CAP_SYSTEM_THREAD; v2 adds RESERVE_SYS_THREAD; v1 and v2
    have only a REGD_ARG system call, so they need dynamic SHM."""
    r = _Reason(ev)
    name = "system_thread_reservation"
    functions = ev.profile.by_name
    calls = [(n, w) for n in functions if "_SYSTEM_" in n and (w := ev.called(n)) is not None]
    used = ", ".join(f"{short(n)} {r(w)}" for n, w in calls)
    offered = ev.caps_have("SYSTEM_THREAD")
    if offered is None:
        if calls:
            return r.feature(name, True, f"SYSTEM_THREAD was negotiated: the driver made system invocations, {used}")
        return r.feature(name, None, f"unknown: the capture has no EXCHANGE_CAPABILITIES answer ({_RECORD})")
    caps = r.caps("SYSTEM_THREAD")
    if not offered:
        return r.feature(name, False, f"OP-TEE does not offer system threads: {caps}")
    caps += " (mainline optee_os sets bit 7 for RPMB_PROBE: check that this OP-TEE carries the proposal)"
    if "OPTEE_SMC_CALL_RESERVE_SYS_THREAD" in functions:
        reserve = ev.answer("OPTEE_SMC_CALL_RESERVE_SYS_THREAD")
        if reserve is None:
            return r.feature(name, False, f"{caps}, but the capture has no answered RESERVE_SYS_THREAD, and OP-TEE "
                             "reserves none unless asked")
        said = f"RESERVE_SYS_THREAD returned {status_text(reserve.status, reserve.name)} {r(reserve.where)}"
        if not reserve.ok:
            return r.feature(name, False, f"{caps}, but {said}")
        caps += f", and {said}"
    if "OPTEE_SMC_CALL_SYSTEM_WITH_ARG" not in functions and dynamic.active is False:
        return r.feature(name, False, f"{caps}, but Linux makes system invocations only as "
                         "CALL_SYSTEM_WITH_REGD_ARG, which needs dynamic shared memory, and that is off "
                         f"{r(*dynamic.evidence)}: the provisioned thread is never used")
    return r.feature(name, True, caps + (f", and the driver made system invocations: {used}" if calls else ""))


# --- virtualization ---------------------------------------------------------------------------
def _virtualization(ev: Evidence) -> Feature:
    r = _Reason(ev)
    mask, bit = ev.profile.sec_caps_mask, ev.cap("VIRTUALIZATION") or 0
    offered = ev.caps_have("VIRTUALIZATION") if mask is None or mask & bit else None
    optee = ev.optee_says("ns_virtualization")
    facts = [r.caps("VIRTUALIZATION")] if offered is not None else []
    if optee is not None:
        facts.append(r.said(optee))
    hypervisor = [f"{short(n)} {r(w)}" for n in ("OPTEE_SMC_VM_CREATED", "OPTEE_SMC_VM_DESTROYED")
                  if (w := ev.called(n)) is not None]
    if hypervisor:
        facts.append("a hypervisor announces guests: " + ", ".join(hypervisor))
    active = offered if offered is not None else bool(optee.data["enabled"]) if optee is not None else None
    if active is None and hypervisor:
        active = True
    if active:
        error = ev.state.first_error
        if error is not None and error[1] == "OPTEE_SMC_RETURN_ENOTAVAIL" and not hypervisor:
            facts.append(f"with no guest created by a hypervisor OP-TEE refuses the kernel's yielding calls: "
                         f"{short(error[0])} returned ENOTAVAIL {r(error[3])}")
        return r.feature("virtualization", True, f"OP-TEE serves the guests of a hypervisor: {_join(facts)}")
    if active is False:
        return r.feature("virtualization", False, f"OP-TEE runs without virtualization (CFG_NS_VIRTUALIZATION=n): "
                         f"{_join(facts)}")
    if (no_bl32 := ev.no_bl32) is not None:
        return r.feature("virtualization", False, f"no OP-TEE runs: {_tfa_said(no_bl32, r)}")
    masked = " (a guest behind Xen never sees that capability)" if mask is not None and not mask & bit else ""
    return r.feature("virtualization", None, f"unknown: the capture has no EXCHANGE_CAPABILITIES answer{masked}, "
                     "no VM_CREATED and no OP-TEE boot log")
