"""Result rules (abi.md §3, §7.2, §7.3, §7.5 check 18): no OP-TEE behind the monitor, results that
are no OPTEE_SMC_RETURN_* value, and every error answer explained with the optee_os (or TF-A,
Xen) condition that produces it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi import msg
from ..abi.optee import (
    OPTEE_SMC_RETURN,
    OPTEE_SMC_RETURN_EBADADDR,
    OPTEE_SMC_RETURN_EBADCMD,
    OPTEE_SMC_RETURN_EBUSY,
    OPTEE_SMC_RETURN_ENOMEM,
    OPTEE_SMC_RETURN_ENOTAVAIL,
    OPTEE_SMC_RETURN_ERESUME,
    OPTEE_SMC_RETURN_ETHREAD_LIMIT,
    OPTEE_SMC_RETURN_OK,
    OPTEE_SMC_RETURN_UNKNOWN_FUNCTION,
    OPTEED_RETURN_EINVAL,
    SEC_CAP_BITS,
)
from ..abi.profiles import Profile
from ..flows.model import Finding, Flow
from ..flows.state import TraceState, Where
from .base import (
    CALL_WITH_ARG,
    CALL_WITH_REGD_ARG,
    CALL_WITH_RPC_ARG,
    CALLS_UID,
    M32,
    RETURN_FROM_RPC,
    Check,
    at,
    call_where,
    name,
    ret_where,
    who,
)
from .catalog import RULES_BY_ID

_UIDS = {
    (msg.OPTEE_MSG_UID_0, msg.OPTEE_MSG_UID_1, msg.OPTEE_MSG_UID_2, msg.OPTEE_MSG_UID_3),
    (msg.OPTEE_MSG_IMAGE_LOAD_UID_0, msg.OPTEE_MSG_IMAGE_LOAD_UID_1, msg.OPTEE_MSG_IMAGE_LOAD_UID_2,
     msg.OPTEE_MSG_IMAGE_LOAD_UID_3),
}
# every OP-TEE implements these: UNKNOWN_FUNCTION (SMC_UNK) means no OP-TEE answered
_CORE = frozenset({"OPTEE_SMC_CALLS_REVISION", "OPTEE_SMC_CALL_GET_OS_UUID", "OPTEE_SMC_CALL_GET_OS_REVISION",
                   "OPTEE_SMC_EXCHANGE_CAPABILITIES", "OPTEE_SMC_DISABLE_SHM_CACHE", "OPTEE_SMC_ENABLE_SHM_CACHE",
                   CALL_WITH_ARG, CALL_WITH_RPC_ARG, CALL_WITH_REGD_ARG, RETURN_FROM_RPC})
_CONSOLE = frozenset({"opteed_no_bl32", "runtime_svc_init_failed", "uid_mismatch", "probe_failed"})
_PARG = frozenset({CALL_WITH_ARG, CALL_WITH_RPC_ARG, "OPTEE_SMC_CALL_SYSTEM_WITH_ARG",
                   "OPTEE_SMC_CALL_SYSTEM_WITH_RPC_ARG"})
_REGD = frozenset({CALL_WITH_REGD_ARG, "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG"})


class NoOptee(Check):
    """No OP-TEE answers: CALLS_UID gets SMC_UNK or a foreign UID, a call gets TF-A's -EINVAL, or a
    call every OP-TEE serves gets UNKNOWN_FUNCTION. Reported at the end, once per kind, so that the
    TF-A console and the driver's log (other files of the capture) can be cited."""

    rule = RULES_BY_ID["SMC070"]
    traits = frozenset({"fast", "not_ok"})  # CALLS_UID is a fast call

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self._seen: dict[str, tuple[Flow, str, int]] = {}  # kind -> (first flow, what it shows, occurrences)

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        answer = flow.last.answer
        if answer is None or answer.is_rpc:
            return ()
        status = answer.status
        if flow.function == CALLS_UID:
            uid = tuple(r & M32 for r in answer.regs[:4])
            if status == OPTEE_SMC_RETURN_UNKNOWN_FUNCTION:
                self._note("uid", flow, f"SMC_UNK ({answer.regs[0]:#x}), so no Trusted OS serves the OP-TEE owner "
                                        "range (TF-A with the OP-TEE dispatcher but no BL32 registers no fast "
                                        "handler, §7.3)")
            elif len(uid) == 4 and uid not in _UIDS:
                words = "-".join(f"{w:08x}" for w in uid)
                self._note("uid", flow, f"UID {words}, which is not OP-TEE's 384fb3e0-e7f811e3-af630002-a5d5c51b: "
                                        "another Trusted OS answers, and Linux stops with \"api uid mismatch\"")
        elif status == OPTEED_RETURN_EINVAL:
            self._note("einval", flow, f"{status:#x} (-EINVAL): TF-A's opteed says OP-TEE is not loaded (no BL32, "
                                       "or a LOAD_IMAGE still pending, §7.3); Linux would take it for an RPC request")
        elif status == OPTEE_SMC_RETURN_UNKNOWN_FUNCTION and flow.function in _CORE:
            self._note("unknown", flow, "UNKNOWN_FUNCTION (SMC_UNK), although every OP-TEE serves it: no OP-TEE "
                                        "is behind the monitor, or a hypervisor does not forward it (Xen X1)")
        return ()

    def _note(self, kind: str, flow: Flow, answer: str) -> None:
        """Remember the first flow of each kind (its findings list names the rule at once)."""
        flow.findings.append(self.rule.id)
        first = self._seen.get(kind)
        text = f"{name(flow)} at {at(call_where(flow.first))} by {who(flow)} was answered at " \
               f"{at(ret_where(flow.last))} with {answer}"
        self._seen[kind] = (first[0], first[1], first[2] + 1) if first else (flow, text, 1)

    def finish(self, state: TraceState) -> Iterable[Finding]:
        console = [m for m in state.messages if m.what in _CONSOLE]
        said = "; ".join(f"{'TF-A' if m.what in ('opteed_no_bl32', 'runtime_svc_init_failed') else 'the driver'} "
                         f"said \"{m.text}\" ({m.file}:{m.line})" for m in console[:4])
        out = []
        for flow, text, count in self._seen.values():
            more = f" ({count} such calls)" if count > 1 else ""
            out.append(self.finding(f"No OP-TEE behind the monitor: {text}{more}" + (f"; {said}" if said else "")
                                    + ".", call_where(flow.first), flow,
                                    evidence=[(m.file, m.line) for m in console[:4]]))
        return out


class UnexpectedResult(Check):
    """An OP-TEE function's a0 result that is no OPTEE_SMC_RETURN_* value (check 18)."""

    rule = RULES_BY_ID["SMC071"]
    traits = frozenset({"not_ok"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        answer = flow.last.answer
        if answer is None or answer.is_rpc or answer.function is None or answer.status in OPTEE_SMC_RETURN \
                or answer.status == OPTEED_RETURN_EINVAL or answer.layout.slots[0].names is not OPTEE_SMC_RETURN:
            return ()
        where = ret_where(flow.last)
        if flow.last.call is not None and answer.status == flow.last.call.regs[0] & M32:
            why = "a0 still holds the function ID: nobody answered it, as Xen's mediator does when it rejects a " \
                  "message larger than 4 KiB (X7; the error is then in optee_msg_arg.ret)"
        else:
            why = "it is no OPTEE_SMC_RETURN_* value (OK 0, ETHREAD_LIMIT 1 … ENOTAVAIL 7, UNKNOWN_FUNCTION " \
                  "0xffffffff) nor an RPC request"
        return (self.finding(f"{name(flow)} entered at {at(call_where(flow.first))} by {who(flow)} was answered "
                             f"a0 = {answer.status:#x} at {at(where)}: {why}.", where, flow),)


class ErrorReturn(Check):
    """Every error answer of an OP-TEE function, with the condition that produces it (§7.2)."""

    rule = RULES_BY_ID["SMC072"]
    traits = frozenset({"not_ok"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        last = flow.last
        answer = last.answer
        if answer is None or answer.is_rpc or answer.function is None or answer.status in _NOT_ERRORS \
                or answer.status not in OPTEE_SMC_RETURN or answer.layout.slots[0].names is not OPTEE_SMC_RETURN:
            return ()
        step_name = last.decoded.name if last.decoded is not None else None
        explained = explain(flow.function, step_name, answer.status, state)
        if explained is None:
            return ()
        severity, why = explained
        logged = _logged(flow, answer.status, state)
        where = ret_where(last)
        said = f" (OP-TEE's log: {', '.join(at(w) for w in logged)})" if logged else ""
        return (self.finding(f"{name(flow)} entered at {at(call_where(flow.first))} by {who(flow)} was answered "
                             f"{OPTEE_SMC_RETURN[answer.status]} at {at(where)}: {why}{said}.", where, flow,
                             severity, logged),)


_NOT_ERRORS = frozenset({OPTEE_SMC_RETURN_OK, OPTEE_SMC_RETURN_ETHREAD_LIMIT})
_DYNAMIC_SHM = SEC_CAP_BITS["OPTEE_SMC_SEC_CAP_DYNAMIC_SHM"]
_UNKNOWN_MEANS = {  # S17: an optional feature not built in; the normal world probes for it this way
    "OPTEE_SMC_GET_SHM_CONFIG": "optee_os was built without CFG_CORE_RESERVED_SHM: there is no static shared "
                                "memory",
    "OPTEE_SMC_GET_THREAD_COUNT": "OP-TEE is older than 3.5; Linux >= 6.8 then keeps no thread count and "
                                  "reserves no thread for system sessions",
    "OPTEE_SMC_ENABLE_ASYNC_NOTIF": "optee_os was built without CFG_CORE_ASYNC_NOTIF",
    "OPTEE_SMC_GET_ASYNC_NOTIF_VALUE": "optee_os was built without CFG_CORE_ASYNC_NOTIF",
    "OPTEE_SMC_VM_CREATED": "optee_os was built without CFG_NS_VIRTUALIZATION (how Xen probes for it)",
    "OPTEE_SMC_VM_DESTROYED": "optee_os was built without CFG_NS_VIRTUALIZATION (how Xen probes for it)",
    "OPTEE_SMC_GET_PROTMEM_CONFIG": "optee_os was built without CFG_SECURE_DATA_PATH, or with dynamic protected "
                                    "memory (CFG_CORE_DYN_PROTMEM)",
    "OPTEE_SMC_L2CC_MUTEX": "the L2 cache mutex exists only on arm32 platforms that need it",
    "OPTEE_SMC_BOOT_SECONDARY": "optee_os was built without CFG_BOOT_SECONDARY_REQUEST",
}


def _logged(flow: Flow, status: int, state: TraceState) -> list[Where]:
    """OP-TEE console lines about this very call: "Bad arg address/cookie" with its address or cookie."""
    if status != OPTEE_SMC_RETURN_EBADADDR or flow.first.decoded is None:
        return []
    fields = flow.first.decoded.fields
    wanted = {("bad_arg_address", fields.get("arg_pa")), ("bad_arg_cookie", fields.get("cookie"))}
    return [(m.file, m.line) for m in state.messages
            if (m.what, m.data.get("address", m.data.get("cookie"))) in wanted][:3]


_BUSY = "a thread was not idle (S13); the normal world waits and calls again"
_NO_NOTIF = "asynchronous notifications are not available"
_FAST_ERRORS: dict[tuple[str, int], tuple[str, str]] = {  # (function, status) -> (severity, condition)
    ("OPTEE_SMC_EXCHANGE_CAPABILITIES", OPTEE_SMC_RETURN_ENOTAVAIL): (
        "error", ("optee_os refuses normal-world capability bits other than UNIPROCESSOR (S12, "
                  "tee_entry_exchange_capabilities), and Xen answers so when OP-TEE lacks DYNAMIC_SHM (X4); Linux "
                  "fails the probe with \"capabilities mismatch\"")),
    ("OPTEE_SMC_DISABLE_SHM_CACHE", OPTEE_SMC_RETURN_EBUSY): ("info", _BUSY),
    ("OPTEE_SMC_ENABLE_SHM_CACHE", OPTEE_SMC_RETURN_EBUSY): ("info", _BUSY),
    ("OPTEE_SMC_GET_SHM_CONFIG", OPTEE_SMC_RETURN_ENOTAVAIL): (
        "warning", ("there is no static shared memory (no CFG_CORE_RESERVED_SHM; Xen offers guests none, X3); "
                    "without dynamic shared memory Linux says \"static shm service not available\"")),
    ("OPTEE_SMC_VM_CREATED", OPTEE_SMC_RETURN_ENOTAVAIL): (
        "error", ("optee_os could not make the guest's context (no resources), or a7 was not 0 (S16); Xen logs "
                  "\"Unable to create OPTEE client\"")),
    ("OPTEE_SMC_VM_DESTROYED", OPTEE_SMC_RETURN_ENOTAVAIL): (
        "error", "a7 was not 0: only the hypervisor may call it (S16)"),
    ("OPTEE_SMC_ENABLE_ASYNC_NOTIF", OPTEE_SMC_RETURN_ENOTAVAIL): ("info", _NO_NOTIF),
    ("OPTEE_SMC_GET_ASYNC_NOTIF_VALUE", OPTEE_SMC_RETURN_ENOTAVAIL): ("info", _NO_NOTIF),
    ("OPTEE_SMC_GET_PROTMEM_CONFIG", OPTEE_SMC_RETURN_ENOTAVAIL): ("info", "no static protected memory is configured"),
    ("OPTEE_SMC_BOOT_SECONDARY", OPTEE_SMC_RETURN_EBADCMD): ("warning", "the core index in a1 is out of range"),
    ("OPTEE_SMC_L2CC_MUTEX", OPTEE_SMC_RETURN_EBADCMD): (
        "warning", "the sub-command in a1 is not GET_ADDR, SET_ADDR, ENABLE or DISABLE"),
}
_PARG_EBADADDR = (
    "std_entry_with_parg rejected the message address: in the static shared memory it is not aligned for struct "
    "optee_msg_arg or the message overflows it (S5); elsewhere it is not 4 KiB aligned or not non-secure DDR (S6); or "
    "num_params > 127 (S7){rpc}; OP-TEE logs \"Bad arg address\" (under Xen: unaligned or unreadable guest page, X6, "
    "X13)")
_YIELDING_ERRORS: dict[int, str] = {  # status -> condition, for the call-with-arg family (S2-S11, S15; Xen X5-X13)
    OPTEE_SMC_RETURN_ERESUME: "RETURN_FROM_RPC named a thread that is not suspended, or a3 >= CFG_NUM_THREADS (S4, "
                              "thread_resume_from_rpc); under Xen, a3 names no call of this guest (X10)",
    OPTEE_SMC_RETURN_EBADCMD: "optee_msg_arg.cmd is unknown or not built in: REGISTER/UNREGISTER_SHM without "
                              "CFG_CORE_DYN_SHM, DO_BOTTOM_HALF/STOP_ASYNC_NOTIF without CFG_CORE_ASYNC_NOTIF, the "
                              "PROTMEM commands without CFG_CORE_DYN_PROTMEM (S11, call_entry_std logs \"Unknown "
                              "cmd\"; invalid parameters of a known command give OK with the error in "
                              "optee_msg_arg.ret); Xen refuses every command but the six it knows (X8)",
    OPTEE_SMC_RETURN_ENOMEM: "Xen could not allocate the call or its shadow page (X5, X6)",
    OPTEE_SMC_RETURN_ENOTAVAIL: "with virtualization, a7 names a guest optee_os does not know (S15, "
                                "thread_handle_std_smc)",
}
_REGD_ERRORS: dict[int, str] = {
    OPTEE_SMC_RETURN_EBADADDR: "no registered shared memory has the cookie in a1:a2 (S8, std_entry_with_regd_arg "
                               "logs \"Bad arg cookie\"), or the message at offset a3, with the RPC argument, does "
                               "not fit in it or is misaligned (S10), or num_params > 127 (S7)",
    OPTEE_SMC_RETURN_ENOMEM: "optee_os could not map the registered shared memory (S9, std_entry_with_regd_arg)",
}


def explain(first: str | None, step: str | None, status: int, state: TraceState) -> tuple[str, str] | None:
    """(severity, the optee_os condition) for ``status`` answering ``step`` of a flow that began with
    ``first``; None when the answer is no error (DISABLE_SHM_CACHE's ENOTAVAIL ends its loop) or
    another rule owns it (UNKNOWN_FUNCTION to a core call: SMC070)."""
    if first in _PARG or first in _REGD or first == RETURN_FROM_RPC:
        if status == OPTEE_SMC_RETURN_UNKNOWN_FUNCTION:
            return None
        why = (_REGD_ERRORS.get(status) if first in _REGD else None) or _YIELDING_ERRORS.get(status)
        if why is None and status == OPTEE_SMC_RETURN_EBADADDR:
            why = _PARG_EBADADDR.format(rpc=", or with the RPC argument it overflows the mapped page (S10)"
                                        if first and "RPC_ARG" in first else "")
        return ("error", why) if why else ("warning", f"the header does not list this answer for {step or first}")
    if status == OPTEE_SMC_RETURN_UNKNOWN_FUNCTION:
        means = _UNKNOWN_MEANS.get(first or "")
        return ("info", f"{means} (S17)") if means else None
    if first == "OPTEE_SMC_DISABLE_SHM_CACHE" and status == OPTEE_SMC_RETURN_ENOTAVAIL:
        return None
    severity, why = _FAST_ERRORS.get((first or "", status), ("warning", "the header does not list this answer for it"))
    if first == "OPTEE_SMC_GET_SHM_CONFIG" and state.sec_caps is not None and state.sec_caps.value & _DYNAMIC_SHM:
        severity = "info"  # dynamic shared memory serves instead
    return severity, why


CHECKS = (NoOptee, UnexpectedResult, ErrorReturn)
