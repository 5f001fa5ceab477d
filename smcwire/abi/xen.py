"""Xen's OP-TEE mediator as a guest sees it (Xen ``xen/arch/arm/tee/optee.c``, abi.md §7.4).

Xen forwards 11 functions (X1); any other OP-TEE ID is answered by Xen itself with
UNKNOWN_FUNCTION (``vsmc.c``). EXCHANGE_CAPABILITIES is answered with the guest's NSEC caps
masked to UNIPROCESSOR and OP-TEE's SEC caps masked to UNREGISTERED_SHM, DYNAMIC_SHM and
MEMREF_NULL; Xen writes only a0 and a1, so a2-a7 are the guest's own values (X4).
"""

from __future__ import annotations

from .function import DEFAULT, Function
from .optee import (
    NSEC_CAP_VALID,
    OPTEE_SMC_RETURN_OK,
    SEC_CAP_BITS,
    SEC_CAPS,
    exchange_capabilities,
    result_layout,
)
from .regs import Reg

FORWARDED = (
    "OPTEE_SMC_CALLS_COUNT", "OPTEE_SMC_CALLS_UID", "OPTEE_SMC_CALLS_REVISION", "OPTEE_SMC_CALL_GET_OS_UUID",
    "OPTEE_SMC_CALL_GET_OS_REVISION", "OPTEE_SMC_ENABLE_SHM_CACHE", "OPTEE_SMC_DISABLE_SHM_CACHE",
    "OPTEE_SMC_GET_SHM_CONFIG", "OPTEE_SMC_EXCHANGE_CAPABILITIES", "OPTEE_SMC_CALL_WITH_ARG",
    "OPTEE_SMC_CALL_RETURN_FROM_RPC",
)
SEC_CAPS_MASK = (
    SEC_CAP_BITS["OPTEE_SMC_SEC_CAP_UNREGISTERED_SHM"]
    | SEC_CAP_BITS["OPTEE_SMC_SEC_CAP_DYNAMIC_SHM"]
    | SEC_CAP_BITS["OPTEE_SMC_SEC_CAP_MEMREF_NULL"]
)
NSEC_CAPS_MASK = NSEC_CAP_VALID
UNFORWARDED = "Xen's mediator does not forward it and answers UNKNOWN_FUNCTION itself (abi.md §7.4 X1)"


def exchange_capabilities_xen() -> Function:
    """EXCHANGE_CAPABILITIES as Xen answers it: only a0 and a1 (masked SEC caps) are written."""
    base = exchange_capabilities(SEC_CAPS)
    ok = result_layout("sec_caps" / Reg("OP-TEE's SEC caps as Xen masks them (X4)", flags=SEC_CAPS,
                                        valid=SEC_CAPS_MASK),
                       preserved_from=2)
    return Function(base.name, base.id, base.summary, f"{base.source}; Xen xen/arch/arm/tee/optee.c",
                    base.call, {OPTEE_SMC_RETURN_OK: ok, DEFAULT: result_layout(preserved_from=1)})
