"""OP-TEE SMC ABI: function IDs, return codes, capability bits and the register layout of every
call and return (normal world -> secure world).

Source: the comment blocks of ``optee_smc.h`` in optee_os (``core/arch/arm/include/sm/``) and
Linux (``drivers/tee/optee/``), as compiled and cross-checked in abi.md §1-§5; deviations of the
real code from the header comments are noted where abi.md marks them "(corrected: …)".
All OP-TEE functions are SMC32; a few results arrive as full 64-bit x-registers from an AArch64
core (GET_OS_REVISION build id, addresses), which those fields keep (``width=64``).
"""

from __future__ import annotations

import construct as c

from . import msg
from .function import DEFAULT, Function
from .regs import BitReg, Bits, Pair, Reg, Role, layout, mbz, not_used, preserved, resume
from .smccc import call_val

_OS = "optee_os core/arch/arm/include/sm/optee_smc.h"
_LX = "Linux drivers/tee/optee/optee_smc.h"
_BOTH = f"{_OS}; {_LX}"

OPTEE_SMC_OWNER_TRUSTED_OS = 50
OPTEE_SMC_OWNER_TRUSTED_OS_OPTEED = 62
OPTEE_SMC_OWNER_TRUSTED_OS_API = 63

# --- Return codes (abi.md §3) ------------------------------------------------------------------
OPTEE_SMC_RETURN_OK = 0x0
OPTEE_SMC_RETURN_ETHREAD_LIMIT = 0x1
OPTEE_SMC_RETURN_EBUSY = 0x2
OPTEE_SMC_RETURN_ERESUME = 0x3
OPTEE_SMC_RETURN_EBADADDR = 0x4
OPTEE_SMC_RETURN_EBADCMD = 0x5
OPTEE_SMC_RETURN_ENOMEM = 0x6
OPTEE_SMC_RETURN_ENOTAVAIL = 0x7
OPTEE_SMC_RETURN_UNKNOWN_FUNCTION = 0xFFFFFFFF
OPTEE_SMC_RETURN = {
    OPTEE_SMC_RETURN_OK: "OPTEE_SMC_RETURN_OK",
    OPTEE_SMC_RETURN_ETHREAD_LIMIT: "OPTEE_SMC_RETURN_ETHREAD_LIMIT",
    OPTEE_SMC_RETURN_EBUSY: "OPTEE_SMC_RETURN_EBUSY",
    OPTEE_SMC_RETURN_ERESUME: "OPTEE_SMC_RETURN_ERESUME",
    OPTEE_SMC_RETURN_EBADADDR: "OPTEE_SMC_RETURN_EBADADDR",
    OPTEE_SMC_RETURN_EBADCMD: "OPTEE_SMC_RETURN_EBADCMD",
    OPTEE_SMC_RETURN_ENOMEM: "OPTEE_SMC_RETURN_ENOMEM",
    OPTEE_SMC_RETURN_ENOTAVAIL: "OPTEE_SMC_RETURN_ENOTAVAIL",
    OPTEE_SMC_RETURN_UNKNOWN_FUNCTION: "OPTEE_SMC_RETURN_UNKNOWN_FUNCTION",
}
# TF-A opteed answers -EINVAL (as u32) when OP-TEE is not loaded; OPTEE_SMC_RETURN_IS_RPC() is
# true for it (abi.md §7.3, TF-A services/spd/opteed/opteed_main.c).
OPTEED_RETURN_EINVAL = 0xFFFFFFEA
SPECIAL_RETURNS = {
    OPTEED_RETURN_EINVAL: "TF-A opteed -EINVAL: OP-TEE is not loaded (no BL32, or LOAD_IMAGE pending)",
}

# --- RPC encoding (abi.md §4) ------------------------------------------------------------------
OPTEE_SMC_RETURN_RPC_PREFIX_MASK = 0xFFFF0000
OPTEE_SMC_RETURN_RPC_PREFIX = 0xFFFF0000
OPTEE_SMC_RETURN_RPC_FUNC_MASK = 0x0000FFFF
OPTEE_SMC_RPC_FUNC_ALLOC = 0
OPTEE_SMC_RPC_FUNC_FREE = 2
OPTEE_SMC_RPC_FUNC_FOREIGN_INTR = 4
OPTEE_SMC_RPC_FUNC_CMD = 5


def OPTEE_SMC_RPC_VAL(func: int) -> int:  # noqa: N802 (the header's name)
    return func | OPTEE_SMC_RETURN_RPC_PREFIX


def OPTEE_SMC_RETURN_IS_RPC(ret: int) -> bool:  # noqa: N802 (the header's name)
    return ret != OPTEE_SMC_RETURN_UNKNOWN_FUNCTION and (
        ret & OPTEE_SMC_RETURN_RPC_PREFIX_MASK
    ) == OPTEE_SMC_RETURN_RPC_PREFIX


# --- Shared-memory cache settings, L2CC sub-commands, async notification bits ----------------
OPTEE_SMC_SHM_NONCACHED = 0
OPTEE_SMC_SHM_CACHED = 1
SHM_CACHE = {OPTEE_SMC_SHM_NONCACHED: "OPTEE_SMC_SHM_NONCACHED", OPTEE_SMC_SHM_CACHED: "OPTEE_SMC_SHM_CACHED"}
OPTEE_SMC_L2CC_MUTEX_GET_ADDR = 0
OPTEE_SMC_L2CC_MUTEX_SET_ADDR = 1
OPTEE_SMC_L2CC_MUTEX_ENABLE = 2
OPTEE_SMC_L2CC_MUTEX_DISABLE = 3
L2CC_MUTEX = {0: "OPTEE_SMC_L2CC_MUTEX_GET_ADDR", 1: "OPTEE_SMC_L2CC_MUTEX_SET_ADDR",
              2: "OPTEE_SMC_L2CC_MUTEX_ENABLE", 3: "OPTEE_SMC_L2CC_MUTEX_DISABLE"}
OPTEE_SMC_ASYNC_NOTIF_VALUE_VALID = 1 << 0  # optee_os: OPTEE_SMC_ASYNC_NOTIF_VALID
OPTEE_SMC_ASYNC_NOTIF_VALUE_PENDING = 1 << 1  # optee_os: OPTEE_SMC_ASYNC_NOTIF_PENDING
OPTEE_SMC_ASYNC_NOTIF_VALUE_DO_BOTTOM_HALF = 0

# --- Capabilities (abi.md §5) ------------------------------------------------------------------
SEC_CAP_BITS: dict[str, int] = {
    "OPTEE_SMC_SEC_CAP_HAVE_RESERVED_SHM": 1 << 0,
    "OPTEE_SMC_SEC_CAP_UNREGISTERED_SHM": 1 << 1,
    "OPTEE_SMC_SEC_CAP_DYNAMIC_SHM": 1 << 2,
    "OPTEE_SMC_SEC_CAP_VIRTUALIZATION": 1 << 3,
    "OPTEE_SMC_SEC_CAP_MEMREF_NULL": 1 << 4,
    "OPTEE_SMC_SEC_CAP_ASYNC_NOTIF": 1 << 5,
    "OPTEE_SMC_SEC_CAP_RPC_ARG": 1 << 6,
    "OPTEE_SMC_SEC_CAP_RPMB_PROBE": 1 << 7,
    "OPTEE_SMC_SEC_CAP_PROTMEM": 1 << 8,
    "OPTEE_SMC_SEC_CAP_DYNAMIC_PROTMEM": 1 << 9,
}
SEC_CAPS = c.FlagsEnum(c.Int32ul, **SEC_CAP_BITS)
NSEC_CAPS = c.FlagsEnum(c.Int32ul, OPTEE_SMC_NSEC_CAP_UNIPROCESSOR=1 << 0)
NSEC_CAP_VALID = 1 << 0

# --- Function numbers (OPTEE_SMC_FUNCID_*) ----------------------------------------------------
OPTEE_SMC_FUNCID_CALLS_COUNT = 0xFF00
OPTEE_SMC_FUNCID_CALLS_UID = 0xFF01
OPTEE_SMC_FUNCID_CALLS_REVISION = 0xFF03
OPTEE_SMC_FUNCID_GET_OS_UUID = 0
OPTEE_SMC_FUNCID_GET_OS_REVISION = 1
OPTEE_SMC_FUNCID_LOAD_IMAGE = 2
OPTEE_SMC_FUNCID_RETURN_FROM_RPC = 3
OPTEE_SMC_FUNCID_CALL_WITH_ARG = 4
OPTEE_SMC_FUNCID_GET_SHM_CONFIG = 7
OPTEE_SMC_FUNCID_L2CC_MUTEX = 8
OPTEE_SMC_FUNCID_EXCHANGE_CAPABILITIES = 9
OPTEE_SMC_FUNCID_DISABLE_SHM_CACHE = 10
OPTEE_SMC_FUNCID_ENABLE_SHM_CACHE = 11
OPTEE_SMC_FUNCID_BOOT_SECONDARY = 12
OPTEE_SMC_FUNCID_VM_CREATED = 13
OPTEE_SMC_FUNCID_VM_DESTROYED = 14
OPTEE_SMC_FUNCID_GET_THREAD_COUNT = 15
OPTEE_SMC_FUNCID_ENABLE_ASYNC_NOTIF = 16
OPTEE_SMC_FUNCID_GET_ASYNC_NOTIF_VALUE = 17
OPTEE_SMC_FUNCID_CALL_WITH_RPC_ARG = 18
OPTEE_SMC_FUNCID_CALL_WITH_REGD_ARG = 19
OPTEE_SMC_FUNCID_GET_PROTMEM_CONFIG = 20


def OPTEE_SMC_FAST_CALL_VAL(num: int) -> int:  # noqa: N802
    return call_val(True, False, OPTEE_SMC_OWNER_TRUSTED_OS, num)


def OPTEE_SMC_STD_CALL_VAL(num: int) -> int:  # noqa: N802
    return call_val(False, False, OPTEE_SMC_OWNER_TRUSTED_OS, num)


def _api_val(num: int) -> int:
    return call_val(True, False, OPTEE_SMC_OWNER_TRUSTED_OS_API, num)


# --- Register layout pieces -------------------------------------------------------------------
def _fid(fid: int) -> c.Const:
    return c.Const(fid, c.Int64ul)


def _client_id() -> c.Renamed:
    return "client_id" / Reg("hypervisor client ID (0 from Linux; a hypervisor puts the guest's)")


def _status(doc: str = "OPTEE_SMC_RETURN_*") -> c.Renamed:
    return "status" / Reg(doc, names=OPTEE_SMC_RETURN)


def call_layout(fid: int, *args: c.Construct) -> c.Struct:
    """The usual call layout: a0 = fid, then ``args`` from a1, "not used" up to a6, a7 = client ID."""
    padding = [not_used() for _ in range(6 - sum(a.sizeof() // 8 for a in args))]
    return layout(_fid(fid), *args, *padding, _client_id())


def _api_call(fid: int) -> c.Struct:
    """The general queries: the header lists only a0; with virtualization OP-TEE reads a7 as the
    guest ID on every fast call (abi.md §7.2 S14), and Xen sets it (X2)."""
    return call_layout(fid)


def result_layout(*fields: c.Construct, preserved_from: int | None = None, doc: str = "OPTEE_SMC_RETURN_*") -> c.Struct:
    """a0 = status, then ``fields``, "not used" up to ``preserved_from``, then "preserved"."""
    regs = 1 + sum(f.sizeof() // 8 for f in fields)
    start = regs if preserved_from is None else preserved_from
    return layout(_status(doc), *fields, *(not_used() for _ in range(regs, start)),
                  *(preserved() for _ in range(start, 8)))


# a0 = -1 from a call whose a0 is data: nobody implements it (TF-A SMC_UNK, abi.md §1, §7.3)
NOT_ANSWERED = {OPTEE_SMC_RETURN_UNKNOWN_FUNCTION: "SMC_UNK / OPTEE_SMC_RETURN_UNKNOWN_FUNCTION: not implemented"}

_STALE = "not used: stale secure-world values on AArch64 (abi.md §2.1)"


def _std_returns() -> dict[int | None, c.Struct]:
    """Returns of the call-with-arg family (the RPC returns are in rpc.py)."""
    return {
        DEFAULT: result_layout(preserved_from=4),
        OPTEE_SMC_RETURN_ETHREAD_LIMIT: layout(_status(), *(not_used(_STALE) for _ in range(3)),
                                               *(preserved() for _ in range(4))),
    }


def _simple_returns(*ok_fields: c.Construct, preserved_from: int | None = None) -> dict[int | None, c.Struct]:
    """OK: ``ok_fields``; any other status: the same registers "not used", the rest preserved."""
    return {OPTEE_SMC_RETURN_OK: result_layout(*ok_fields, preserved_from=preserved_from),
            DEFAULT: result_layout(preserved_from=preserved_from)}


# --- Functions ---------------------------------------------------------------------------------
def call_with_arg(name: str, fid: int, summary: str, source: str = _BOTH) -> Function:
    """CALL_WITH_ARG and CALL_WITH_RPC_ARG: a1:a2 = physical address of struct optee_msg_arg."""
    return Function(
        name, fid, summary, source,
        call_layout(fid,
                   "arg_pa" / Pair("physical address of struct optee_msg_arg"),
                   "cache_settings" / Reg("OPTEE_SMC_SHM_*; not used if the PA is in the reserved SHM",
                                          names=SHM_CACHE)),
        _std_returns(), rpc=True)


def call_with_regd_arg(name: str, fid: int, summary: str, source: str = _BOTH) -> Function:
    """CALL_WITH_REGD_ARG: a1:a2 = cookie of a registered shared memory, a3 = offset in it."""
    return Function(
        name, fid, summary, source,
        call_layout(fid,
                   "cookie" / Pair("shared-memory cookie of the registered buffer (Linux: struct tee_shm *)"),
                   "offset" / Reg("offset of struct optee_msg_arg in that buffer")),
        _std_returns(), rpc=True)


def sec_caps_reg(sec_caps: c.FlagsEnum, doc: str = "OPTEE_SMC_SEC_CAP_* secure-world capabilities") -> Reg:
    return Reg(doc, flags=sec_caps)


def exchange_capabilities(sec_caps: c.FlagsEnum) -> Function:
    fid = OPTEE_SMC_FAST_CALL_VAL(OPTEE_SMC_FUNCID_EXCHANGE_CAPABILITIES)
    return Function(
        "OPTEE_SMC_EXCHANGE_CAPABILITIES", fid, "negotiate capabilities with OP-TEE", _BOTH,
        call_layout(fid, "nsec_caps" / Reg("OPTEE_SMC_NSEC_CAP_* normal-world capabilities; optee_os answers "
                                           "ENOTAVAIL to any bit but UNIPROCESSOR (abi.md §7.2 S12)",
                                           flags=NSEC_CAPS, valid=NSEC_CAP_VALID)),
        {
            OPTEE_SMC_RETURN_OK: result_layout(
                "sec_caps" / sec_caps_reg(sec_caps),
                "max_notif_value" / Reg("highest asynchronous notification value"),
                "a3" / BitReg(Bits("rpc_param_count", 0, 8, "RPC params to reserve in the second msg arg"),
                              Bits("a3_reserved", 8, 24, "bits 31:8 reserved", Role.MBZ)),
                preserved_from=4),
            OPTEE_SMC_RETURN_ENOTAVAIL: result_layout(
                "nsec_caps" / Reg("the header says SEC caps, but optee_os returns before writing a1: it holds "
                                  "the NSEC caps passed in (entry_fast.c)", flags=NSEC_CAPS),
                preserved_from=2),
            DEFAULT: result_layout(),
        })


def optee_functions(sec_caps: c.FlagsEnum = SEC_CAPS) -> tuple[Function, ...]:
    """Every function of the mainline optee_os and Linux headers (abi.md §2)."""
    fast = OPTEE_SMC_FAST_CALL_VAL
    std = OPTEE_SMC_STD_CALL_VAL
    uid_names = _word_names("OPTEE_MSG_UID", "OPTEE_MSG_IMAGE_LOAD_UID")
    os_uuid_names = _word_names("OPTEE_MSG_OS_OPTEE_UUID")
    einval_eperm = {0: "success", 0xFFFFFFFF: "-EPERM (= SMC_UNK): loading no longer allowed",
                    0xFFFFFFEA: "-EINVAL: size or address is 0"}
    return (
        Function("OPTEE_SMC_CALLS_COUNT", _api_val(OPTEE_SMC_FUNCID_CALLS_COUNT),
                 "number of SMC functions implemented (optee_os: 12, +2 with virtualization; Xen: 11)",
                 f"{_OS} (Linux's macro is broken and unused)",
                 _api_call(_api_val(OPTEE_SMC_FUNCID_CALLS_COUNT)),
                 {DEFAULT: layout("count" / Reg("number of functions", names=NOT_ANSWERED))}),
        Function("OPTEE_SMC_CALLS_UID", _api_val(OPTEE_SMC_FUNCID_CALLS_UID),
                 "API UID: OP-TEE's 384fb3e0-e7f8-11e3-af63-0002a5d5c51b (or TF-A's image-load UID)", _BOTH,
                 _api_call(_api_val(OPTEE_SMC_FUNCID_CALLS_UID)),
                 {DEFAULT: layout(*(f"uid_{i}" / Reg(f"UID word {i}", names=uid_names[i]) for i in range(4)))}),
        Function("OPTEE_SMC_CALLS_REVISION", _api_val(OPTEE_SMC_FUNCID_CALLS_REVISION),
                 "API revision (OPTEE_MSG_REVISION_MAJOR 2, MINOR 0)", _BOTH,
                 _api_call(_api_val(OPTEE_SMC_FUNCID_CALLS_REVISION)),
                 {DEFAULT: layout("major" / Reg("API major revision", names=NOT_ANSWERED),
                                  "minor" / Reg("API minor revision"))}),
        Function("OPTEE_SMC_CALL_GET_OS_UUID", fast(OPTEE_SMC_FUNCID_GET_OS_UUID),
                 "UUID of the Trusted OS (486178e0-e7f8-11e3-bc5e-0002a5d5c51b for OP-TEE)", _BOTH,
                 _api_call(fast(OPTEE_SMC_FUNCID_GET_OS_UUID)),
                 {DEFAULT: layout(*(f"uuid_{i}" / Reg(f"UUID word {i}", names=os_uuid_names[i])
                                    for i in range(4)))}),
        Function("OPTEE_SMC_CALL_GET_OS_REVISION", fast(OPTEE_SMC_FUNCID_GET_OS_REVISION),
                 "OP-TEE OS revision and build id", _BOTH,
                 _api_call(fast(OPTEE_SMC_FUNCID_GET_OS_REVISION)),
                 {DEFAULT: layout("major" / Reg("OS major revision", names=NOT_ANSWERED),
                                  "minor" / Reg("OS minor revision"),
                                  "build_id" / Reg("build id, 0 = unspecified; a 64-bit core may put a "
                                                   "16-hex-digit git SHA1 in the full x2", width=64))}),
        Function("OPTEE_SMC_CALL_LOAD_IMAGE", _api_val(OPTEE_SMC_FUNCID_LOAD_IMAGE),
                 "load the OP-TEE image from the kernel (served by TF-A opteed, OPTEE_ALLOW_SMC_LOAD)",
                 f"{_LX}; TF-A services/spd/opteed/opteed_main.c",
                 layout(_fid(_api_val(OPTEE_SMC_FUNCID_LOAD_IMAGE)),
                        "image_size" / Pair("payload size in bytes"),
                        "image_pa" / Pair("payload physical address")),
                 {DEFAULT: layout("status" / Reg("0, -EPERM or -EINVAL (TF-A opteed)", names=einval_eperm))}),
        Function("OPTEE_SMC_CALL_RETURN_FROM_RPC", std(OPTEE_SMC_FUNCID_RETURN_FROM_RPC),
                 "resume an OP-TEE thread after serving its RPC", _BOTH,
                 layout(_fid(std(OPTEE_SMC_FUNCID_RETURN_FROM_RPC)),
                        "rpc_a1" / Reg("a1 of the RPC (ALLOC: upper PA of the buffer)"),
                        "rpc_a2" / Reg("a2 of the RPC (ALLOC: lower PA of the buffer)"),
                        "thread_id" / Reg("OP-TEE thread id: a3 of the RPC return"),
                        "cookie" / Pair("ALLOC cookie; Linux keeps it for every later resume of the call"),
                        resume(), _client_id()),
                 {DEFAULT: _std_returns()[DEFAULT]}, rpc=True),
        call_with_arg("OPTEE_SMC_CALL_WITH_ARG", std(OPTEE_SMC_FUNCID_CALL_WITH_ARG),
                      "yielding call with a struct optee_msg_arg at a physical address"),
        Function("OPTEE_SMC_GET_SHM_CONFIG", fast(OPTEE_SMC_FUNCID_GET_SHM_CONFIG),
                 "where the reserved (static) shared memory is (CFG_CORE_RESERVED_SHM)", _BOTH,
                 call_layout(fast(OPTEE_SMC_FUNCID_GET_SHM_CONFIG)),
                 _simple_returns("shm_pa" / Reg("physical address of the start of the SHM", width=64),
                                 "shm_size" / Reg("size of the SHM", width=64),
                                 "cache_settings" / Reg("OPTEE_SMC_SHM_*", names=SHM_CACHE), preserved_from=4)),
        Function("OPTEE_SMC_L2CC_MUTEX", fast(OPTEE_SMC_FUNCID_L2CC_MUTEX),
                 "configure the L2 cache controller mutex (arm32 only)", _OS,
                 call_layout(fast(OPTEE_SMC_FUNCID_L2CC_MUTEX),
                         "command" / Reg("OPTEE_SMC_L2CC_MUTEX_*", names=L2CC_MUTEX),
                         "mutex_pa" / Pair("physical address of the mutex (SET_ADDR)")),
                 {OPTEE_SMC_RETURN_OK: layout(_status(), preserved(),
                                              "mutex_pa" / Pair("physical address of the mutex (GET_ADDR)"),
                                              *(preserved() for _ in range(4))),
                  DEFAULT: result_layout(preserved_from=1)}),
        exchange_capabilities(sec_caps),
        Function("OPTEE_SMC_DISABLE_SHM_CACHE", fast(OPTEE_SMC_FUNCID_DISABLE_SHM_CACHE),
                 "disable the shared-memory cache; returns one cached buffer per call until ENOTAVAIL",
                 _BOTH, call_layout(fast(OPTEE_SMC_FUNCID_DISABLE_SHM_CACHE)),
                 _simple_returns("cookie" / Pair("cookie of the shared memory to free"), preserved_from=3)),
        Function("OPTEE_SMC_ENABLE_SHM_CACHE", fast(OPTEE_SMC_FUNCID_ENABLE_SHM_CACHE),
                 "enable the shared-memory cache", _BOTH, call_layout(fast(OPTEE_SMC_FUNCID_ENABLE_SHM_CACHE)),
                 {DEFAULT: result_layout(preserved_from=1)}),
        Function("OPTEE_SMC_BOOT_SECONDARY", fast(OPTEE_SMC_FUNCID_BOOT_SECONDARY),
                 "release a secondary core (CFG_BOOT_SECONDARY_REQUEST)", _OS,
                 layout(_fid(fast(OPTEE_SMC_FUNCID_BOOT_SECONDARY)),
                        "core_index" / Reg("index of the core to boot"),
                        "entry_pa" / Pair("non-secure entry address (optee_os reads only a3)")),
                 {DEFAULT: result_layout(preserved_from=1)}),
        *(Function(name, fast(num), summary, _OS,
                   layout(_fid(fast(num)), "guest_client_id" / Reg("hypervisor client ID of the VM"),
                          *(not_used() for _ in range(5)),
                          "client_id" / mbz("client ID: must be 0, only the hypervisor may call")),
                   {DEFAULT: result_layout(preserved_from=1)})
          for name, num, summary in (
              ("OPTEE_SMC_VM_CREATED", OPTEE_SMC_FUNCID_VM_CREATED,
               "hypervisor: a VM was created (CFG_NS_VIRTUALIZATION)"),
              ("OPTEE_SMC_VM_DESTROYED", OPTEE_SMC_FUNCID_VM_DESTROYED,
               "hypervisor: a VM was destroyed (CFG_NS_VIRTUALIZATION)"))),
        Function("OPTEE_SMC_GET_THREAD_COUNT", fast(OPTEE_SMC_FUNCID_GET_THREAD_COUNT),
                 "number of OP-TEE threads (CFG_NUM_THREADS); Linux calls it at probe since v6.8", _BOTH,
                 call_layout(fast(OPTEE_SMC_FUNCID_GET_THREAD_COUNT)),
                 _simple_returns("thread_count" / Reg("number of threads"), preserved_from=2)),
        Function("OPTEE_SMC_ENABLE_ASYNC_NOTIF", fast(OPTEE_SMC_FUNCID_ENABLE_ASYNC_NOTIF),
                 "enable asynchronous notifications (CFG_CORE_ASYNC_NOTIF)", _BOTH,
                 call_layout(fast(OPTEE_SMC_FUNCID_ENABLE_ASYNC_NOTIF)), {DEFAULT: result_layout(preserved_from=1)}),
        Function("OPTEE_SMC_GET_ASYNC_NOTIF_VALUE", fast(OPTEE_SMC_FUNCID_GET_ASYNC_NOTIF_VALUE),
                 "fetch a pending asynchronous notification value (from the IRQ handler)", _BOTH,
                 call_layout(fast(OPTEE_SMC_FUNCID_GET_ASYNC_NOTIF_VALUE)),
                 _simple_returns(
                     "value" / Reg("notification value; 0 = OPTEE_SMC_ASYNC_NOTIF_VALUE_DO_BOTTOM_HALF",
                                   names={0: "OPTEE_SMC_ASYNC_NOTIF_VALUE_DO_BOTTOM_HALF"}),
                     "a2" / BitReg(Bits("valid", 0, 1, "OPTEE_SMC_ASYNC_NOTIF_VALUE_VALID: a1 holds a value"),
                                   Bits("pending", 1, 1, "OPTEE_SMC_ASYNC_NOTIF_VALUE_PENDING: more pending"),
                                   Bits("a2_reserved", 2, 30, "bits 31:2 reserved", Role.MBZ)),
                     preserved_from=3)),
        call_with_arg("OPTEE_SMC_CALL_WITH_RPC_ARG", std(OPTEE_SMC_FUNCID_CALL_WITH_RPC_ARG),
                      "yielding call; a preallocated RPC optee_msg_arg follows the message (SEC_CAP_RPC_ARG)"),
        call_with_regd_arg("OPTEE_SMC_CALL_WITH_REGD_ARG", std(OPTEE_SMC_FUNCID_CALL_WITH_REGD_ARG),
                           "yielding call with the message in registered shared memory (cookie + offset)"),
        Function("OPTEE_SMC_GET_PROTMEM_CONFIG", fast(OPTEE_SMC_FUNCID_GET_PROTMEM_CONFIG),
                 "where the static protected memory is (CFG_SECURE_DATA_PATH, not dynamic)", _BOTH,
                 layout(_fid(fast(OPTEE_SMC_FUNCID_GET_PROTMEM_CONFIG)), not_used(),
                        *(mbz() for _ in range(5)), _client_id()),
                 _simple_returns("protmem_pa" / Reg("physical address of the protected memory", width=64),
                                 "protmem_size" / Reg("size of the protected memory", width=64),
                                 "pa_width" / Reg("physical address width in bits (max 64)"), preserved_from=4)),
    )


def _word_names(*uids: str) -> list[dict[int, str]]:
    """Per UID word index, the name of each known UID's word (0x384fb3e0 -> OPTEE_MSG_UID_0);
    word 0 also names SMC_UNK, the answer when no Trusted OS serves the call."""
    names: list[dict[int, str]] = [{getattr(msg, f"{name}_{i}"): f"{name}_{i}" for name in uids} for i in range(4)]
    names[0] |= NOT_ANSWERED
    return names
