"""OP-TEE RPC functions: the return of a yielding call that asks the normal world for a service
(a0 = 0xFFFF0000 | func) and the normal world's answer (OPTEE_SMC_CALL_RETURN_FROM_RPC).

Source: the ``OPTEE_SMC_RPC_FUNC_*`` comment blocks of optee_os and Linux ``optee_smc.h``, and
abi.md §4 for what the code really does: a3 is the OP-TEE thread id (optee_os
``thread_optee_smc_a64.S``, TF-A ``opteed_main.c`` ``SMC_RET4``), and the normal world only ever
sees a0-a3 of a request.
"""

from __future__ import annotations

import construct as c

from .function import RpcFunction
from .optee import (
    OPTEE_SMC_FUNCID_RETURN_FROM_RPC,
    OPTEE_SMC_RPC_FUNC_ALLOC,
    OPTEE_SMC_RPC_FUNC_CMD,
    OPTEE_SMC_RPC_FUNC_FOREIGN_INTR,
    OPTEE_SMC_RPC_FUNC_FREE,
    OPTEE_SMC_RPC_VAL,
    OPTEE_SMC_STD_CALL_VAL,
)
from .regs import Pair, Reg, layout, not_used, resume

_SRC = "optee_os core/arch/arm/include/sm/optee_smc.h; Linux drivers/tee/optee/optee_smc.h"
_RETURN_FROM_RPC = OPTEE_SMC_STD_CALL_VAL(OPTEE_SMC_FUNCID_RETURN_FROM_RPC)


def _thread_id() -> c.Renamed:
    return "thread_id" / Reg("OP-TEE thread id (resume information)")


def _request(func: int, *a1_a2: c.Construct, a4_a5: tuple[c.Construct, ...] | None = None) -> c.Struct:
    """a0 = RPC code, a1-a2 as given, a3 = thread id, a4-a7 resume information (unless given)."""
    return layout(c.Const(OPTEE_SMC_RPC_VAL(func), c.Int64ul), *a1_a2, _thread_id(),
                  *(a4_a5 or (resume(), resume())), resume(), resume())


def _reply(*a1_a2: c.Construct, a4_a5: tuple[c.Construct, ...] = (resume(), resume())) -> c.Struct:
    """a0 = RETURN_FROM_RPC, a1-a2 as given, a3 = thread id, a4-a6 resume info, a7 = client ID."""
    return layout(c.Const(_RETURN_FROM_RPC, c.Int64ul), *a1_a2, _thread_id(), *a4_a5, resume(),
                  "client_id" / Reg("hypervisor client ID"))


# FREE/CMD replies: the header says a1-a2 "not used"; Linux sends the RPC's a1:a2 (the cookie) back
_ECHOED = (resume("not used (header); Linux passes back the RPC's a1"),
           resume("not used (header); Linux passes back the RPC's a2"))

RPC_FUNCTIONS = {
    rpc.func: rpc
    for rpc in (
        RpcFunction(
            "OPTEE_SMC_RPC_FUNC_ALLOC", OPTEE_SMC_RPC_FUNC_ALLOC,
            "allocate shared memory for an RPC argument struct", _SRC,
            _request(OPTEE_SMC_RPC_FUNC_ALLOC, "size" / Reg("size in bytes"), not_used(),
                     a4_a5=(not_used(), not_used())),
            _reply("buf_pa" / Pair("physical address of the buffer; 0 if size 0 or failure"),
                   a4_a5=("cookie" / Pair("cookie of the buffer (Linux: struct tee_shm *)"),)),
        ),
        RpcFunction(
            "OPTEE_SMC_RPC_FUNC_FREE", OPTEE_SMC_RPC_FUNC_FREE,
            "free shared memory allocated by RPC ALLOC", _SRC,
            _request(OPTEE_SMC_RPC_FUNC_FREE, "cookie" / Pair("cookie of the buffer to free")),
            _reply(*_ECHOED),
        ),
        RpcFunction(
            "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR", OPTEE_SMC_RPC_FUNC_FOREIGN_INTR,
            "a normal-world interrupt arrived: take it, then resume", _SRC,
            _request(OPTEE_SMC_RPC_FUNC_FOREIGN_INTR, resume(), resume()),
            _reply(resume(), resume()),
        ),
        RpcFunction(
            "OPTEE_SMC_RPC_FUNC_CMD", OPTEE_SMC_RPC_FUNC_CMD,
            "run the command in the RPC struct optee_msg_arg (OPTEE_RPC_CMD_*)", _SRC,
            _request(OPTEE_SMC_RPC_FUNC_CMD, "cookie" / Pair("cookie of the shared memory holding the "
                                                             "RPC optee_msg_arg")),
            _reply(*_ECHOED),
        ),
    )
}
