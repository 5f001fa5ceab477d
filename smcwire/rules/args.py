"""Call-argument rules (abi.md §7.5 checks 9, 15, 17).

``std_entry_with_parg`` (optee_os ``thread_optee_smc.c``) accepts a message address in the
static shared memory when it is aligned for ``struct optee_msg_arg`` (S5), and elsewhere only
when it is 4 KiB aligned (S6); Xen's mediator always wants 4 KiB (X6), and gives guests no static
SHM (X3). The static SHM is known from GET_SHM_CONFIG's answer; without it, OP-TEE's answer tells.
Check 10 (num_params > 127) needs the message contents, which SMC traces do not hold.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi.optee import OPTEE_SMC_RETURN_EBADADDR, OPTEE_SMC_RETURN_OK
from ..flows.model import Finding, Flow
from ..flows.state import TraceState
from .base import CALL_WITH_ARG, CALL_WITH_RPC_ARG, M32, Check, answered, at, call_where, who
from .catalog import RULES_BY_ID

_PAGE = 4096
_ARG_ALIGN = 8  # alignof(struct optee_msg_arg)


class ArgNotAligned(Check):
    """CALL_WITH_ARG / CALL_WITH_RPC_ARG with a message address OP-TEE rejects (check 9)."""

    rule = RULES_BY_ID["SMC050"]
    functions = frozenset({CALL_WITH_ARG, CALL_WITH_RPC_ARG, "OPTEE_SMC_CALL_SYSTEM_WITH_ARG",
                           "OPTEE_SMC_CALL_SYSTEM_WITH_RPC_ARG"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        decoded = flow.first.decoded
        pa = decoded.fields.get("arg_pa") if decoded is not None else None
        if pa is None or pa % _PAGE == 0:
            return ()
        answer = flow.first.answer
        status = answer.status if answer is not None else None
        static, shm = self._static_shm(pa, state)
        if static is True and pa % _ARG_ALIGN == 0 or static is None and status != OPTEE_SMC_RETURN_EBADADDR:
            return ()  # inside the static SHM and aligned; or accepted (or unanswered) where the SHM is unknown
        where = call_where(flow.first)
        if static is True:
            why = f"it lies in the static shared memory ({shm}) but is not aligned for struct optee_msg_arg " \
                  "(S5: std_entry_with_parg)"
        elif static is False:
            why = f"it lies outside the static shared memory ({shm}) and is not 4 KiB aligned (S6: " \
                  "std_entry_with_parg wants a page there; Xen always does, X6)"
        else:
            why = "it is not 4 KiB aligned, which optee_os requires outside the static shared memory (S6), or not " \
                  "aligned for struct optee_msg_arg inside it (S5)"
        logged = [(m.file, m.line) for m in state.messages
                  if m.what == "bad_arg_address" and m.data.get("address") == pa][:3]
        said = f", and OP-TEE logged \"Bad arg address\" at {', '.join(at(w) for w in logged)}" if logged else ""
        return (self.finding(f"{flow.function} at {at(where)} by {who(flow)} passes its message at physical "
                             f"address {pa:#x}: {why}, so OP-TEE answers EBADADDR; {answered(flow.first)}{said}.",
                             where, flow, evidence=logged),)

    @staticmethod
    def _static_shm(pa: int, state: TraceState) -> tuple[bool | None, str]:
        """Whether ``pa`` is in the static SHM (None: unknown), and the SHM described."""
        config = state.answers.get("OPTEE_SMC_GET_SHM_CONFIG")
        if config is None:
            return None, ""
        status, fields, where = config
        if status != "OPTEE_SMC_RETURN_OK":
            return False, f"GET_SHM_CONFIG answered {status} at {at(where)}: there is none"
        start, size = fields.get("shm_pa", 0), fields.get("shm_size", 0)
        return start <= pa < start + size, f"{start:#x}-{start + size - 1:#x} per GET_SHM_CONFIG at {at(where)}"


class VmCallClientId(Check):
    """VM_CREATED / VM_DESTROYED with a7 != 0: only the hypervisor (client 0) may call (check 15)."""

    rule = RULES_BY_ID["SMC051"]
    functions = frozenset({"OPTEE_SMC_VM_CREATED", "OPTEE_SMC_VM_DESTROYED"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        call = flow.first.call
        if call is None or len(call.regs) < 8 or not call.regs[7] & M32:
            return ()
        where = call_where(flow.first)
        return (self.finding(f"{flow.function} at {at(where)} by {who(flow)} comes from client {call.regs[7] & M32} "
                             "(a7): only the hypervisor, client 0, may report VMs, and optee_os answers ENOTAVAIL "
                             f"otherwise (S16); {answered(flow.first)}.", where, flow),)


class ProtmemConfigMbz(Check):
    """GET_PROTMEM_CONFIG with a2-a6 not zero (check 17)."""

    rule = RULES_BY_ID["SMC052"]
    functions = frozenset({"OPTEE_SMC_GET_PROTMEM_CONFIG"})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        call = flow.first.call
        if call is None:
            return ()
        set_regs = [f"a{i} = {call.regs[i] & M32:#x}" for i in range(2, min(7, len(call.regs))) if call.regs[i] & M32]
        if not set_regs:
            return ()
        where = call_where(flow.first)
        ok = flow.first.answer is not None and flow.first.answer.status == OPTEE_SMC_RETURN_OK
        return (self.finding(f"GET_PROTMEM_CONFIG at {at(where)} by {who(flow)} has {', '.join(set_regs)}: the header "
                             "says a2-a6 are not used and must be zero" + (" (OP-TEE answered OK regardless)"
                                                                           if ok else "") + ".", where, flow),)


CHECKS = (ArgNotAligned, VmCallClientId, ProtmemConfigMbz)
