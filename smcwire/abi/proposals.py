"""The 2023 "tee: system invocation" proposals, none merged (abi.md §8).

- v1 (Etienne Carriere, 2023-01-30; optee_os PR #5789): a distinct yielding function 20,
  OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG = 0x32000014, and OPTEE_SMC_SEC_CAP_SYSTEM_THREAD = BIT(7).
- flag (Sumit Garg's review of v1, Feb 2023): OPTEE_SMC_CALL_SYSTEM_THREAD_FLAG = 0x8000 OR-ed
  into the three call-with-arg IDs (0x32008004, 0x32008012, 0x32008013).
- v2 (2023-02-14): v1 plus OPTEE_SMC_CALL_RESERVE_SYS_THREAD / UNRESERVE_SYS_THREAD, functions 21
  and 22, defined with OPTEE_SMC_STD_CALL_VAL (yielding, 0x32000015/16) although the changelog
  says "2 new fastcall SMC funcIDs". Register usage from the v2 header comments: a1-a6 not used,
  a7 client ID; return a0 status, a1-a3 not used, a4-a7 preserved.

Mainline (Linux v6.8) solved it without any ABI change: GET_THREAD_COUNT plus a reserved thread.
"""

from __future__ import annotations

import construct as c

from .function import DEFAULT, Function
from .optee import (
    OPTEE_SMC_FUNCID_CALL_WITH_ARG,
    OPTEE_SMC_FUNCID_CALL_WITH_REGD_ARG,
    OPTEE_SMC_FUNCID_CALL_WITH_RPC_ARG,
    OPTEE_SMC_STD_CALL_VAL,
    SEC_CAP_BITS,
    call_layout,
    call_with_arg,
    call_with_regd_arg,
    result_layout,
)

SOURCE_V1 = "LKML [PATCH 1/2] tee: system invocation (v1, 2023-01-30); optee_os PR #5789"
SOURCE_FLAG = "LKML review of v1 by Sumit Garg (2023-02)"
SOURCE_V2 = "LKML [PATCH v2] tee: system invocation (2023-02-14)"

OPTEE_SMC_FUNCID_CALL_SYSTEM_WITH_REGD_ARG = 20
OPTEE_SMC_FUNCID_CALL_RESERVE_SYS_THREAD = 21
OPTEE_SMC_FUNCID_CALL_UNRESERVE_SYS_THREAD = 22
OPTEE_SMC_CALL_SYSTEM_THREAD_FLAG = 0x8000

# Bit 7 was SYSTEM_THREAD in the proposals; mainline gave it to RPMB_PROBE.
SEC_CAP_BITS_SYSINV = {
    ("OPTEE_SMC_SEC_CAP_SYSTEM_THREAD" if name == "OPTEE_SMC_SEC_CAP_RPMB_PROBE" else name): bit
    for name, bit in SEC_CAP_BITS.items()
}
SEC_CAPS_SYSINV = c.FlagsEnum(c.Int32ul, **SEC_CAP_BITS_SYSINV)


def call_system_with_regd_arg() -> Function:
    return call_with_regd_arg(
        "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG",
        OPTEE_SMC_STD_CALL_VAL(OPTEE_SMC_FUNCID_CALL_SYSTEM_WITH_REGD_ARG),
        "proposal v1: CALL_WITH_REGD_ARG on a thread provisioned for system services", SOURCE_V1)


def system_thread_flag_calls() -> tuple[Function, ...]:
    """The three call-with-arg functions with OPTEE_SMC_CALL_SYSTEM_THREAD_FLAG set."""
    flag = OPTEE_SMC_CALL_SYSTEM_THREAD_FLAG
    summary = "call-with-arg | OPTEE_SMC_CALL_SYSTEM_THREAD_FLAG (0x8000): run on a system thread"
    return (
        call_with_arg("OPTEE_SMC_CALL_SYSTEM_WITH_ARG",
                      OPTEE_SMC_STD_CALL_VAL(OPTEE_SMC_FUNCID_CALL_WITH_ARG | flag), summary, SOURCE_FLAG),
        call_with_arg("OPTEE_SMC_CALL_SYSTEM_WITH_RPC_ARG",
                      OPTEE_SMC_STD_CALL_VAL(OPTEE_SMC_FUNCID_CALL_WITH_RPC_ARG | flag), summary, SOURCE_FLAG),
        call_with_regd_arg("OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG",
                           OPTEE_SMC_STD_CALL_VAL(OPTEE_SMC_FUNCID_CALL_WITH_REGD_ARG | flag), summary, SOURCE_FLAG),
    )


def sys_thread_reservation_calls() -> tuple[Function, ...]:
    """v2's RESERVE/UNRESERVE_SYS_THREAD, as the patch defines them (yielding)."""
    return tuple(
        Function(name, OPTEE_SMC_STD_CALL_VAL(num), summary, SOURCE_V2,
                 call_layout(OPTEE_SMC_STD_CALL_VAL(num)), {DEFAULT: result_layout(preserved_from=4)})
        for name, num, summary in (
            ("OPTEE_SMC_CALL_RESERVE_SYS_THREAD", OPTEE_SMC_FUNCID_CALL_RESERVE_SYS_THREAD,
             "proposal v2: reserve a system-invocation thread context"),
            ("OPTEE_SMC_CALL_UNRESERVE_SYS_THREAD", OPTEE_SMC_FUNCID_CALL_UNRESERVE_SYS_THREAD,
             "proposal v2: release a reserved system-invocation thread context"),
        )
    )

