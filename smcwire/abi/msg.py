"""The ``optee_msg`` message layer: the ``struct optee_msg_arg`` that CALL_WITH_ARG and RPC CMD pass in
shared memory, its parameters, and the command, RPC command and login values.

Sources (abi.md §4, §6): optee_os ``core/include/optee_msg.h`` and ``core/include/optee_rpc_cmd.h``
(@d5001fe0af66); Linux ``drivers/tee/optee/optee_msg.h`` (same values, plus the image-load UID of the
LOAD_IMAGE patch). The structs are little-endian in memory on arm64 and arm32 (LE) alike.
"""

from __future__ import annotations

import construct as c

# --- Part 1: formatting of messages (optee_msg.h) ---------------------------------------------------

# Parameter types, attr bits 7:0.
OPTEE_MSG_ATTR_TYPE_NONE = 0x0
OPTEE_MSG_ATTR_TYPE_VALUE_INPUT = 0x1
OPTEE_MSG_ATTR_TYPE_VALUE_OUTPUT = 0x2
OPTEE_MSG_ATTR_TYPE_VALUE_INOUT = 0x3
OPTEE_MSG_ATTR_TYPE_RMEM_INPUT = 0x5
OPTEE_MSG_ATTR_TYPE_RMEM_OUTPUT = 0x6
OPTEE_MSG_ATTR_TYPE_RMEM_INOUT = 0x7
OPTEE_MSG_ATTR_TYPE_TMEM_INPUT = 0x9
OPTEE_MSG_ATTR_TYPE_TMEM_OUTPUT = 0xA
OPTEE_MSG_ATTR_TYPE_TMEM_INOUT = 0xB
# FF-A registered memory: same values as RMEM, the conduit decides which union member is meant.
OPTEE_MSG_ATTR_TYPE_FMEM_INPUT = OPTEE_MSG_ATTR_TYPE_RMEM_INPUT
OPTEE_MSG_ATTR_TYPE_FMEM_OUTPUT = OPTEE_MSG_ATTR_TYPE_RMEM_OUTPUT
OPTEE_MSG_ATTR_TYPE_FMEM_INOUT = OPTEE_MSG_ATTR_TYPE_RMEM_INOUT

OPTEE_MSG_ATTR_TYPE_MASK = 0xFF  # GENMASK_32(7, 0)
OPTEE_MSG_ATTR_META = 1 << 8  # absorbed by the OS, not passed to the TA; meta params come first
OPTEE_MSG_ATTR_NONCONTIG = 1 << 9  # tmem buf_ptr points to a page list (was OPTEE_MSG_ATTR_FRAGMENT)
OPTEE_MSG_ATTR_CACHE_SHIFT = 16
OPTEE_MSG_ATTR_CACHE_MASK = 0x7  # GENMASK_32(2, 0)
OPTEE_MSG_ATTR_CACHE_PREDEFINED = 0

# Same values as TEE_LOGIN_* of the TEE Internal API.
OPTEE_MSG_LOGIN_PUBLIC = 0x0
OPTEE_MSG_LOGIN_USER = 0x1
OPTEE_MSG_LOGIN_GROUP = 0x2
OPTEE_MSG_LOGIN_APPLICATION = 0x4
OPTEE_MSG_LOGIN_APPLICATION_USER = 0x5
OPTEE_MSG_LOGIN_APPLICATION_GROUP = 0x6

OPTEE_MSG_NONCONTIG_PAGE_SIZE = 4096
OPTEE_MSG_FMEM_INVALID_GLOBAL_ID = 0xFFFFFFFFFFFFFFFF

# The bit fields of optee_msg_param.attr (no C struct: the OPTEE_MSG_ATTR_* masks above), bit 63 first.
optee_msg_attr = c.ByteSwapped(
    c.BitStruct(
        "reserved_hi" / c.BitsInteger(45),  # bits 63:19
        "cache" / c.BitsInteger(3),  # bits 18:16, OPTEE_MSG_ATTR_CACHE_*
        "reserved_lo" / c.BitsInteger(6),  # bits 15:10
        "noncontig" / c.Flag,  # bit 9, OPTEE_MSG_ATTR_NONCONTIG
        "meta" / c.Flag,  # bit 8, OPTEE_MSG_ATTR_META
        "type" / c.BitsInteger(8),  # bits 7:0, OPTEE_MSG_ATTR_TYPE_*
    )
)

optee_msg_param_tmem = c.Struct("buf_ptr" / c.Int64ul, "size" / c.Int64ul, "shm_ref" / c.Int64ul)
optee_msg_param_rmem = c.Struct("offs" / c.Int64ul, "size" / c.Int64ul, "shm_ref" / c.Int64ul)
optee_msg_param_fmem = c.Struct(
    "offs_low" / c.Int32ul,
    "offs_high" / c.Int16ul,
    "internal_offs" / c.Int16ul,
    "size" / c.Int64ul,
    "global_id" / c.Int64ul,
)
optee_msg_param_value = c.Struct("a" / c.Int64ul, "b" / c.Int64ul, "c" / c.Int64ul)

# struct optee_msg_param: parsing yields every union view; building writes the first view given.
# RawCopy keeps the raw attr bytes next to their bit fields; Padded gives the union its C size
# (construct's Union has no static size).
optee_msg_param = c.Struct(
    "attr" / c.RawCopy(optee_msg_attr),
    "u" / c.Padded(24, c.Union(
        None,
        "tmem" / optee_msg_param_tmem,
        "rmem" / optee_msg_param_rmem,
        "fmem" / optee_msg_param_fmem,
        "value" / optee_msg_param_value,
        "octets" / c.Bytes(24),
    )),
)

# The fixed part of struct optee_msg_arg (natural alignment, no implicit padding).
optee_msg_arg_header = c.Struct(
    "cmd" / c.Int32ul,  # OPTEE_MSG_CMD_* or OPTEE_RPC_CMD_*
    "func" / c.Int32ul,  # TA function, INVOKE_COMMAND only
    "session" / c.Int32ul,  # output for OPEN_SESSION
    "cancel_id" / c.Int32ul,
    "pad" / c.Int32ul,
    "ret" / c.Int32ul,
    "ret_origin" / c.Int32ul,
    "num_params" / c.Int32ul,
)
optee_msg_arg = c.Struct(
    *optee_msg_arg_header.subcons,
    "params" / c.Array(c.this.num_params, optee_msg_param),
)


def OPTEE_MSG_GET_ARG_SIZE(num_params: int) -> int:  # noqa: N802 - the header's macro name
    """sizeof(struct optee_msg_arg) + sizeof(struct optee_msg_param) * num_params."""
    return optee_msg_arg_header.sizeof() + optee_msg_param.sizeof() * num_params


# Largest num_params that stays within one page: (4096 - 32) / 32 = 127.
OPTEE_MSG_MAX_NUM_PARAMS = (
    (OPTEE_MSG_NONCONTIG_PAGE_SIZE - optee_msg_arg_header.sizeof()) // optee_msg_param.sizeof()
)

# --- Part 2: requests from normal world (optee_msg.h) -----------------------------------------------

# API UID 384fb3e0-e7f8-11e3-af63-0002a5d5c51b, returned by OPTEE_SMC_CALLS_UID.
OPTEE_MSG_UID_0 = 0x384FB3E0
OPTEE_MSG_UID_1 = 0xE7F811E3
OPTEE_MSG_UID_2 = 0xAF630002
OPTEE_MSG_UID_3 = 0xA5D5C51B
# Linux only (LOAD_IMAGE patch): CALLS_UID of the TF-A image-loading service before OP-TEE runs.
OPTEE_MSG_IMAGE_LOAD_UID_0 = 0xA3FBEAB1
OPTEE_MSG_IMAGE_LOAD_UID_1 = 0x1246315D
OPTEE_MSG_IMAGE_LOAD_UID_2 = 0xC7C406B9
OPTEE_MSG_IMAGE_LOAD_UID_3 = 0xC03CBEA4
OPTEE_MSG_REVISION_MAJOR = 2
OPTEE_MSG_REVISION_MINOR = 0
# UUID of the Trusted OS itself, returned by OPTEE_SMC_CALL_GET_OS_UUID.
OPTEE_MSG_OS_OPTEE_UUID_0 = 0x486178E0
OPTEE_MSG_OS_OPTEE_UUID_1 = 0xE7F811E3
OPTEE_MSG_OS_OPTEE_UUID_2 = 0xBC5E0002
OPTEE_MSG_OS_OPTEE_UUID_3 = 0xA5D5C51B

# Protected-memory use cases (GET_PROTMEM_CONFIG / LEND_PROTMEM).
OPTEE_MSG_PROTMEM_RESERVED = 0
OPTEE_MSG_PROTMEM_SECURE_VIDEO_PLAY = 1
OPTEE_MSG_PROTMEM_TRUSTED_UI = 2
OPTEE_MSG_PROTMEM_SECURE_VIDEO_RECORD = 3

# optee_msg_arg.cmd for OPTEE_SMC_CALL_WITH_ARG and friends.
OPTEE_MSG_CMD_OPEN_SESSION = 0  # params 0/1: META VALUE_INPUT, TA UUID; client UUID, login in value.c
OPTEE_MSG_CMD_INVOKE_COMMAND = 1
OPTEE_MSG_CMD_CLOSE_SESSION = 2
OPTEE_MSG_CMD_CANCEL = 3
OPTEE_MSG_CMD_REGISTER_SHM = 4
OPTEE_MSG_CMD_UNREGISTER_SHM = 5
OPTEE_MSG_CMD_DO_BOTTOM_HALF = 6
OPTEE_MSG_CMD_STOP_ASYNC_NOTIF = 7
OPTEE_MSG_CMD_LEND_PROTMEM = 8  # 8-11: protected memory (2025)
OPTEE_MSG_CMD_RECLAIM_PROTMEM = 9
OPTEE_MSG_CMD_GET_PROTMEM_CONFIG = 10
OPTEE_MSG_CMD_ASSIGN_PROTMEM = 11

# --- Part 3: requests from secure world, RPC (optee_rpc_cmd.h) ----------------------------------------

OPTEE_RPC_CMD_LOAD_TA = 0
OPTEE_RPC_CMD_RPMB = 1
OPTEE_RPC_CMD_FS = 2
OPTEE_RPC_CMD_GET_TIME = 3
OPTEE_RPC_CMD_NOTIFICATION = 4  # formerly (and in Xen) OPTEE_RPC_CMD_WAIT_QUEUE
OPTEE_RPC_CMD_SUSPEND = 5
OPTEE_RPC_CMD_SHM_ALLOC = 6
OPTEE_RPC_CMD_SHM_FREE = 7
OPTEE_RPC_CMD_SQL_FS_RESERVED = 8
OPTEE_RPC_CMD_GPROF = 9
OPTEE_RPC_CMD_SOCKET = 10
OPTEE_RPC_CMD_FTRACE = 11
OPTEE_RPC_CMD_SUPP_PLUGIN = 12
OPTEE_RPC_CMD_BENCH_REG = 20
OPTEE_RPC_CMD_I2C_TRANSFER = 21
OPTEE_RPC_CMD_RPMB_PROBE_RESET = 22
OPTEE_RPC_CMD_RPMB_PROBE_NEXT = 23
OPTEE_RPC_CMD_RPMB_FRAMES = 24

# OPTEE_RPC_CMD_NOTIFICATION: value[0].a
OPTEE_RPC_NOTIFICATION_WAIT = 0
OPTEE_RPC_NOTIFICATION_SEND = 1

# OPTEE_RPC_CMD_SHM_ALLOC / SHM_FREE: value[0].a
OPTEE_RPC_SHM_TYPE_APPL = 0
OPTEE_RPC_SHM_TYPE_KERNEL = 1
OPTEE_RPC_SHM_TYPE_GLOBAL = 2


# --- value -> name tables, derived from the definitions above ------------------------------------------

def _names(prefix: str, *exclude: str) -> dict[int, str]:
    """{value: name} of this module's constants starting with prefix (first definition wins)."""
    table: dict[int, str] = {}
    for name, value in globals().items():
        if name.startswith(prefix) and name not in exclude and isinstance(value, int):
            table.setdefault(value, name)
    return table


OPTEE_MSG_ATTR_TYPE_NAMES = _names("OPTEE_MSG_ATTR_TYPE_", "OPTEE_MSG_ATTR_TYPE_MASK")  # RMEM over FMEM
OPTEE_MSG_LOGIN_NAMES = _names("OPTEE_MSG_LOGIN_")
OPTEE_MSG_PROTMEM_NAMES = _names("OPTEE_MSG_PROTMEM_")
OPTEE_MSG_CMD_NAMES = _names("OPTEE_MSG_CMD_")
OPTEE_RPC_CMD_NAMES = _names("OPTEE_RPC_CMD_")
OPTEE_RPC_NOTIFICATION_NAMES = _names("OPTEE_RPC_NOTIFICATION_")
OPTEE_RPC_SHM_TYPE_NAMES = _names("OPTEE_RPC_SHM_TYPE_")
