"""Layouts for what the registry does not know: an unknown function's call and return, and an
RPC request with an unknown function code. Every register is shown raw."""

from __future__ import annotations

import construct as c

from .optee import OPTEE_SMC_RETURN
from .regs import FunctionIdReg, Reg, layout, resume
from .smccc import SMCCC_RETURN

UNKNOWN_CALL = layout("a0" / FunctionIdReg(), *(f"a{i}" / Reg(f"a{i}", width=64) for i in range(1, 8)))


def _unknown_return(names: dict[int, str]) -> c.Struct:
    return layout("status" / Reg("a0", names=names), *(f"a{i}" / Reg(f"a{i}", width=64) for i in range(1, 8)))


UNKNOWN_RETURN_OPTEE = _unknown_return(OPTEE_SMC_RETURN)  # owners 50-63: OPTEE_SMC_RETURN_* names
UNKNOWN_RETURN_SMCCC = _unknown_return(SMCCC_RETURN)
UNKNOWN_RPC_REQUEST = layout(
    "rpc_code" / Reg("0xFFFF0000 | RPC function"),
    "rpc_a1" / Reg("RPC parameter"),
    "rpc_a2" / Reg("RPC parameter"),
    "thread_id" / Reg("OP-TEE thread id (resume information)"),
    *(resume() for _ in range(4)),
)
