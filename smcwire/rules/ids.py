"""Function-ID rules (abi.md §7.5 checks 1-4): IDs of the Trusted-OS range that the ABI does not
define, known numbers issued with the wrong call type or convention, and reserved bits.

TF-A routes every owner 50-63 ID to OP-TEE, except fast IDs with bits 23:17 set (SMC_UNK, §7.3).
optee_os answers an unknown fast ID with UNKNOWN_FUNCTION (S1); for an unknown yielding ID it
first takes a thread, then answers EBADCMD (S2): the rogue-SMC case of optee_os#1401.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..abi.function import Function
from ..abi.optee import OPTEE_SMC_RETURN_EBADCMD, OPTEE_SMC_RETURN_UNKNOWN_FUNCTION
from ..abi.profiles import Profile
from ..codec.decode import FunctionId
from ..flows.model import Finding, Flow
from ..flows.state import TraceState
from .base import TRUSTED_OS, Check, answered, at, call_where, who
from .catalog import RULES_BY_ID

_REFUSED = frozenset({OPTEE_SMC_RETURN_UNKNOWN_FUNCTION, OPTEE_SMC_RETURN_EBADCMD})


def classify(fid: FunctionId, profile: Profile) -> tuple[str, Function | None] | None:
    """The ID rule an ID unknown to ``profile`` breaks, and the known function of its number."""
    if fid.fast and fid.reserved:
        return "SMC013", None
    if fid.owner not in TRUSTED_OS:
        return None
    same = next((f for f in profile.functions if f.owner == fid.owner and f.number == fid.number), None)
    if same is not None and same.fast != fid.fast:
        return "SMC011", same
    if fid.smc64:
        return "SMC012", same
    return "SMC010", same


class _IdCheck(Check):
    """Shared by the four ID rules: each reports the flows ``classify`` assigns to it."""

    functions = frozenset({None})

    def on_flow(self, flow: Flow, state: TraceState) -> Iterable[Finding]:
        decoded = flow.first.decoded
        if decoded is None or decoded.function is not None:
            return ()
        verdict = classify(decoded.fid, self.profile)
        if verdict is None or verdict[0] != self.rule.id:
            return ()
        fid = decoded.fid
        text = (f"{fid.kind} call {fid.value:#010x} at {at(call_where(flow.first))} by {who(flow)}: "
                f"{self.problem(fid, verdict[1])}; {self.consequence(fid)}")
        answer = flow.first.answer
        if answer is None or answer.status in _REFUSED:
            return (self.finding(f"{text}; {answered(flow.first)}.", call_where(flow.first), flow),)
        return (self.finding(f"{text}, yet {answered(flow.first)}: a vendor extension that profile "
                             f"{self.profile.name} does not describe (see --extension)?",
                             call_where(flow.first), flow, "warning"),)

    def problem(self, fid: FunctionId, same: Function | None) -> str:
        raise NotImplementedError

    def consequence(self, fid: FunctionId) -> str:
        return self.profile.unknown_fast if fid.fast else self.profile.unknown_yielding


class UnknownFunction(_IdCheck):
    """An ID of the Trusted-OS range that the profile does not define (check 1)."""

    rule = RULES_BY_ID["SMC010"]

    def problem(self, fid: FunctionId, same: Function | None) -> str:
        thread = "" if fid.fast else " (the rogue-SMC case of optee_os#1401)"
        return (f"the {self.profile.name} ABI defines no function {fid.number:#x} of owner {fid.owner} "
                f"(vendor kernels reuse numbers 13-17){thread}")


class FastYieldMismatch(_IdCheck):
    """A known function number with the wrong type bit, e.g. 0xB2000004 or 0x32000009 (check 2)."""

    rule = RULES_BY_ID["SMC011"]

    def problem(self, fid: FunctionId, same: Function | None) -> str:
        assert same is not None
        return f"{same.name} is a {'fast' if same.fast else 'yielding'} call ({same.id:#010x}), so OP-TEE " \
               f"does not recognise the {fid.kind} form"


class Smc64Convention(_IdCheck):
    """An OP-TEE function number with the SMC64 bit (bit 30) set (check 3)."""

    rule = RULES_BY_ID["SMC012"]

    def problem(self, fid: FunctionId, same: Function | None) -> str:
        known = f" ({same.name} is {same.id:#010x})" if same is not None else ""
        return f"the SMC64 bit is set, but every OP-TEE function is SMC32 and matched by its exact ID{known}"


class ReservedBits(_IdCheck):
    """A fast call with function-ID bits 23:17 set (check 4)."""

    rule = RULES_BY_ID["SMC013"]

    def problem(self, fid: FunctionId, same: Function | None) -> str:
        return f"bits 23:17 = {fid.reserved:#x} are reserved in a fast call"

    def consequence(self, fid: FunctionId) -> str:
        return "TF-A answers SMC_UNK before OP-TEE sees it"


CHECKS = (UnknownFunction, FastYieldMismatch, Smc64Convention, ReservedBits)
