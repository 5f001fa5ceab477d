"""PSCI (Power State Coordination Interface): function IDs, return codes, value names and the
register layout of every PSCI 0.2+ call.

Sources (abi.md §11): TF-A ``include/lib/psci/psci.h`` (IDs, ``PSCI_E_*``) and
``lib/psci/psci_main.c`` (``psci_smc_handler``: argument registers and which arguments TF-A
narrows to 32 bits in SMC64 calls), ``lib/psci/psci_mem_protect.c`` (MEM_PROTECT returns the
previous state); Linux ``include/uapi/linux/psci.h`` (``PSCI_0_2_FN*`` to
``PSCI_1_3_FN*`` names, ``PSCI_RET_*``, value names); Arm DEN 0022 (PSCI) for the argument and
return semantics. CLEAN_INV_MEMREGION* and the TIMEOUT/RATE_LIMITED/BUSY codes come only from
the LKML PSCI 1.3 RFC (D. Woodhouse, "firmware/psci: Add definitions for PSCI v1.3
specification (ALPHA)"); they were dropped from the final 1.3 spec and are UNVERIFIED in
mainline. PSCI 0.1 IDs are implementation-defined (DT) and are not listed.

Arguments a spec declares ``uint32`` stay 32 bits wide in SMC64 calls (power_state, levels,
reset and off types); addresses, MPIDRs, context IDs and cookies are 64 bits in SMC64 calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import construct as c

from .function import DEFAULT, Function
from .regs import M32, Reg, layout
from .smccc import ARM_SMCCC_OWNER_STANDARD, call_val

# Function IDs: fast calls of owner 4 (Standard Secure Service), SMC32 and SMC64.
PSCI_0_2_FN_BASE = call_val(True, False, ARM_SMCCC_OWNER_STANDARD, 0)  # 0x84000000
PSCI_0_2_FN64_BASE = call_val(True, True, ARM_SMCCC_OWNER_STANDARD, 0)  # 0xC4000000


def PSCI_0_2_FN(n: int) -> int:  # noqa: N802 - the Linux macro's name
    return PSCI_0_2_FN_BASE + n


def PSCI_0_2_FN64(n: int) -> int:  # noqa: N802
    return PSCI_0_2_FN64_BASE + n


# Linux include/uapi/linux/psci.h (1.3: mainline for SYSTEM_OFF2, the LKML RFC for the rest).
PSCI_0_2_FN_PSCI_VERSION = PSCI_0_2_FN(0)
PSCI_0_2_FN_CPU_SUSPEND = PSCI_0_2_FN(1)
PSCI_0_2_FN_CPU_OFF = PSCI_0_2_FN(2)
PSCI_0_2_FN_CPU_ON = PSCI_0_2_FN(3)
PSCI_0_2_FN_AFFINITY_INFO = PSCI_0_2_FN(4)
PSCI_0_2_FN_MIGRATE = PSCI_0_2_FN(5)
PSCI_0_2_FN_MIGRATE_INFO_TYPE = PSCI_0_2_FN(6)
PSCI_0_2_FN_MIGRATE_INFO_UP_CPU = PSCI_0_2_FN(7)
PSCI_0_2_FN_SYSTEM_OFF = PSCI_0_2_FN(8)
PSCI_0_2_FN_SYSTEM_RESET = PSCI_0_2_FN(9)
PSCI_0_2_FN64_CPU_SUSPEND = PSCI_0_2_FN64(1)
PSCI_0_2_FN64_CPU_ON = PSCI_0_2_FN64(3)
PSCI_0_2_FN64_AFFINITY_INFO = PSCI_0_2_FN64(4)
PSCI_0_2_FN64_MIGRATE = PSCI_0_2_FN64(5)
PSCI_0_2_FN64_MIGRATE_INFO_UP_CPU = PSCI_0_2_FN64(7)
PSCI_1_0_FN_PSCI_FEATURES = PSCI_0_2_FN(10)
PSCI_1_0_FN_CPU_FREEZE = PSCI_0_2_FN(11)
PSCI_1_0_FN_CPU_DEFAULT_SUSPEND = PSCI_0_2_FN(12)
PSCI_1_0_FN_NODE_HW_STATE = PSCI_0_2_FN(13)
PSCI_1_0_FN_SYSTEM_SUSPEND = PSCI_0_2_FN(14)
PSCI_1_0_FN_SET_SUSPEND_MODE = PSCI_0_2_FN(15)
PSCI_1_0_FN_STAT_RESIDENCY = PSCI_0_2_FN(16)
PSCI_1_0_FN_STAT_COUNT = PSCI_0_2_FN(17)
PSCI_1_0_FN64_CPU_DEFAULT_SUSPEND = PSCI_0_2_FN64(12)
PSCI_1_0_FN64_NODE_HW_STATE = PSCI_0_2_FN64(13)
PSCI_1_0_FN64_SYSTEM_SUSPEND = PSCI_0_2_FN64(14)
PSCI_1_0_FN64_STAT_RESIDENCY = PSCI_0_2_FN64(16)
PSCI_1_0_FN64_STAT_COUNT = PSCI_0_2_FN64(17)
PSCI_1_1_FN_SYSTEM_RESET2 = PSCI_0_2_FN(18)
PSCI_1_1_FN_MEM_PROTECT = PSCI_0_2_FN(19)
# Some uapi revisions define this as PSCI_0_2_FN(19) by mistake; TF-A and later Linux use 20.
PSCI_1_1_FN_MEM_PROTECT_CHECK_RANGE = PSCI_0_2_FN(20)
PSCI_1_1_FN64_SYSTEM_RESET2 = PSCI_0_2_FN64(18)
PSCI_1_1_FN64_MEM_PROTECT_CHECK_RANGE = PSCI_0_2_FN64(20)
PSCI_1_3_FN_SYSTEM_OFF2 = PSCI_0_2_FN(21)
PSCI_1_3_FN64_SYSTEM_OFF2 = PSCI_0_2_FN64(21)
# LKML PSCI 1.3 RFC only (UNVERIFIED in mainline; dropped from the final 1.3 spec).
PSCI_1_3_FN64_CLEAN_INV_MEMREGION = PSCI_0_2_FN64(22)
PSCI_1_3_FN_CLEAN_INV_MEMREGION_ATTRIBUTES = PSCI_0_2_FN(23)

# Return codes, as the u32 value seen in w0 (Linux PSCI_RET_*; TF-A PSCI_E_*).
PSCI_RET_SUCCESS = 0
PSCI_RET_NOT_SUPPORTED = -1 & M32
PSCI_RET_INVALID_PARAMS = -2 & M32
PSCI_RET_DENIED = -3 & M32
PSCI_RET_ALREADY_ON = -4 & M32
PSCI_RET_ON_PENDING = -5 & M32
PSCI_RET_INTERNAL_FAILURE = -6 & M32
PSCI_RET_NOT_PRESENT = -7 & M32
PSCI_RET_DISABLED = -8 & M32
PSCI_RET_INVALID_ADDRESS = -9 & M32
PSCI_RET_TIMEOUT = -10 & M32  # LKML PSCI 1.3 RFC only, UNVERIFIED
PSCI_RET_RATE_LIMITED = -11 & M32  # LKML PSCI 1.3 RFC only, UNVERIFIED
PSCI_RET_BUSY = -12 & M32  # LKML PSCI 1.3 RFC only, UNVERIFIED
PSCI_RETURN = {
    PSCI_RET_SUCCESS: "PSCI_RET_SUCCESS",
    PSCI_RET_NOT_SUPPORTED: "PSCI_RET_NOT_SUPPORTED",
    PSCI_RET_INVALID_PARAMS: "PSCI_RET_INVALID_PARAMS",
    PSCI_RET_DENIED: "PSCI_RET_DENIED",
    PSCI_RET_ALREADY_ON: "PSCI_RET_ALREADY_ON",
    PSCI_RET_ON_PENDING: "PSCI_RET_ON_PENDING",
    PSCI_RET_INTERNAL_FAILURE: "PSCI_RET_INTERNAL_FAILURE",
    PSCI_RET_NOT_PRESENT: "PSCI_RET_NOT_PRESENT",
    PSCI_RET_DISABLED: "PSCI_RET_DISABLED",
    PSCI_RET_INVALID_ADDRESS: "PSCI_RET_INVALID_ADDRESS",
    PSCI_RET_TIMEOUT: "PSCI_RET_TIMEOUT",
    PSCI_RET_RATE_LIMITED: "PSCI_RET_RATE_LIMITED",
    PSCI_RET_BUSY: "PSCI_RET_BUSY",
}
PSCI_ERRORS = {v: n for v, n in PSCI_RETURN.items() if v != PSCI_RET_SUCCESS}

# Values returned or taken by particular functions (Linux uapi names; TF-A HW_* for NODE_HW_STATE).
AFFINITY_INFO_STATE = {0: "PSCI_0_2_AFFINITY_LEVEL_ON", 1: "PSCI_0_2_AFFINITY_LEVEL_OFF",
                       2: "PSCI_0_2_AFFINITY_LEVEL_ON_PENDING"}
MIGRATE_INFO_TYPE = {0: "PSCI_0_2_TOS_UP_MIGRATE", 1: "PSCI_0_2_TOS_UP_NO_MIGRATE", 2: "PSCI_0_2_TOS_MP"}
NODE_HW_STATE = {0: "HW_ON", 1: "HW_OFF", 2: "HW_STANDBY"}
SUSPEND_MODE = {0: "PSCI_1_0_SUSPEND_MODE_PC", 1: "PSCI_1_0_SUSPEND_MODE_OSI"}
PSCI_1_1_RESET_TYPE_SYSTEM_WARM_RESET = 0
PSCI_1_1_RESET_TYPE_VENDOR_START = 0x8000_0000  # bit 31 set: vendor-specific reset types
PSCI_1_3_OFF_TYPE_HIBERNATE_OFF = 1  # the final 1.3 spec also accepts 0 (earlier drafts)
PSCI_1_0_FEATURES_CPU_SUSPEND_PF_SHIFT = 1  # PSCI_FEATURES(CPU_SUSPEND): extended StateID format
PSCI_1_0_OS_INITIATED = 1 << 0  # PSCI_FEATURES(CPU_SUSPEND): OS-initiated mode supported

# Version word returned by PSCI_VERSION: major in bits 31:16, minor in bits 15:0.
PSCI_VERSION_MAJOR_SHIFT = 16
PSCI_VERSION_MINOR_MASK = (1 << PSCI_VERSION_MAJOR_SHIFT) - 1
PSCI_VERSION_MAJOR_MASK = M32 & ~PSCI_VERSION_MINOR_MASK
VERSION_WORD = c.ByteSwapped(c.BitStruct("major" / c.BitsInteger(16), "minor" / c.BitsInteger(16)))


def PSCI_VERSION(major: int, minor: int) -> int:  # noqa: N802 - the Linux macro's name
    major_bits = (major << PSCI_VERSION_MAJOR_SHIFT) & PSCI_VERSION_MAJOR_MASK
    return major_bits | (minor & PSCI_VERSION_MINOR_MASK)


def version_str(word: int) -> str:
    """``"1.1"`` for 0x10001."""
    return f"{(word & PSCI_VERSION_MAJOR_MASK) >> PSCI_VERSION_MAJOR_SHIFT}.{word & PSCI_VERSION_MINOR_MASK}"


PSCI_VERSIONS = {PSCI_VERSION(0, 2): "0.2", **{PSCI_VERSION(1, m): f"1.{m}" for m in range(4)}}


# ---------------------------------------------------------------------------------------------
# Function table.

@dataclass(frozen=True)
class _Arg:
    name: str
    doc: str
    u32: bool = False  # uint32 in the spec: 32 bits wide in SMC64 calls too
    names: Mapping[int, str] | None = None


def _a(name: str, doc: str, names: Mapping[int, str] | None = None) -> _Arg:
    """An argument of the native width (uint32 in SMC32, uint64 in SMC64 calls)."""
    return _Arg(name, doc, False, names)


def _u32(name: str, doc: str, names: Mapping[int, str] | None = None) -> _Arg:
    return _Arg(name, doc, True, names)


_Ret = Callable[[int], c.Struct]  # native width -> return layout


def _status(width: int) -> c.Struct:
    return layout("status" / Reg("PSCI_RET_* status", names=PSCI_RETURN))


def _ret(name: str, doc: str, names: Mapping[int, str] | None = None, native: bool = False) -> _Ret:
    """A return layout with one value in a0 (32 bits, or the native width if ``native``)."""
    return lambda width: layout(name / Reg(doc, width=width if native else 32, names=names))


_CPU = _a("target_cpu", "MPIDR of the target CPU")
_ENTRY = _a("entry_point_address", "address the CPU resumes at (physical)")
_CTX = _a("context_id", "value handed to the entry point in x0/r0")
_POWER_STATE = _u32("power_state", "power state: StateID, StateType, PowerLevel")


@dataclass(frozen=True)
class _Row:
    number: int
    name: str  # Linux name without its PSCI_x_y_FN[64]_ prefix
    since: str  # PSCI version that introduced it: the prefix of the Linux name
    variants: tuple[bool, ...]  # smc64 flags: (False,), (True,) or (False, True)
    summary: str
    args: tuple[_Arg, ...]
    ret: _Ret = _status


_32, _64, _BOTH = (False,), (True,), (False, True)
_ROWS = (
    _Row(0, "PSCI_VERSION", "0.2", _32, "PSCI version implemented", (),
         _ret("version", "major << 16 | minor", PSCI_VERSIONS)),
    _Row(1, "CPU_SUSPEND", "0.2", _BOTH, "suspend the calling core (standby or power down)",
         (_POWER_STATE, _ENTRY, _CTX)),
    _Row(2, "CPU_OFF", "0.2", _32, "power down the calling core; returns only on error", ()),
    _Row(3, "CPU_ON", "0.2", _BOTH, "power up a core", (_CPU, _ENTRY, _CTX)),
    _Row(4, "AFFINITY_INFO", "0.2", _BOTH, "state of an affinity instance",
         (_a("target_affinity", "MPIDR-format affinity of the node"),
          _u32("lowest_affinity_level", "lowest affinity level of interest (0 = core)")),
         _ret("state", "affinity state or PSCI_RET_* error", {**AFFINITY_INFO_STATE, **PSCI_ERRORS})),
    _Row(5, "MIGRATE", "0.2", _BOTH, "migrate a uniprocessor Trusted OS to another core", (_CPU,)),
    _Row(6, "MIGRATE_INFO_TYPE", "0.2", _32, "Trusted OS migration capability", (),
         _ret("type", "Trusted OS type or PSCI_RET_NOT_SUPPORTED", {**MIGRATE_INFO_TYPE, **PSCI_ERRORS})),
    _Row(7, "MIGRATE_INFO_UP_CPU", "0.2", _BOTH, "MPIDR of the core a uniprocessor Trusted OS runs on",
         (), _ret("cpu", "MPIDR of the resident core", native=True)),
    _Row(8, "SYSTEM_OFF", "0.2", _32, "shut the system down; does not return", ()),
    _Row(9, "SYSTEM_RESET", "0.2", _32, "cold reset the system; does not return", ()),
    _Row(10, "PSCI_FEATURES", "1.0", _32, "is a PSCI or SMCCC function implemented, with its flags",
         (_a("psci_func_id", "queried function ID"),),
         _ret("features", "feature flags (bit 31 clear) or PSCI_RET_NOT_SUPPORTED", PSCI_RETURN)),
    _Row(11, "CPU_FREEZE", "1.0", _32, "put the calling core in an implementation-defined low-power state",
         ()),
    _Row(12, "CPU_DEFAULT_SUSPEND", "1.0", _BOTH, "suspend the calling core to its default state",
         (_ENTRY, _CTX)),
    _Row(13, "NODE_HW_STATE", "1.0", _BOTH, "hardware state of a power domain node",
         (_CPU, _u32("power_level", "power domain level of the node")),
         _ret("state", "node hardware state or PSCI_RET_* error", {**NODE_HW_STATE, **PSCI_ERRORS})),
    _Row(14, "SYSTEM_SUSPEND", "1.0", _BOTH, "suspend the system to RAM", (_ENTRY, _CTX)),
    _Row(15, "SET_SUSPEND_MODE", "1.0", _32, "select platform-coordinated or OS-initiated suspend",
         (_a("mode", "0 = platform-coordinated, 1 = OS-initiated", SUSPEND_MODE),)),
    _Row(16, "STAT_RESIDENCY", "1.0", _BOTH, "time spent in a power state (microseconds)",
         (_CPU, _POWER_STATE), _ret("value", "residency in microseconds", native=True)),
    _Row(17, "STAT_COUNT", "1.0", _BOTH, "number of times a power state was entered",
         (_CPU, _POWER_STATE), _ret("value", "entry count", native=True)),
    _Row(18, "SYSTEM_RESET2", "1.1", _BOTH, "architectural warm reset or vendor-specific reset",
         (_u32("reset_type", "0 = warm reset; bit 31 set = vendor-specific",
               {PSCI_1_1_RESET_TYPE_SYSTEM_WARM_RESET: "PSCI_1_1_RESET_TYPE_SYSTEM_WARM_RESET"}),
          _a("cookie", "reset cookie (vendor resets)"))),
    _Row(19, "MEM_PROTECT", "1.1", _32, "enable or disable memory protection across resets",
         (_a("enable", "1 = enable, 0 = disable"),),
         _ret("previous", "previous state (0 = disabled, 1 = enabled) or PSCI_RET_NOT_SUPPORTED",
              {0: "disabled", 1: "enabled", **PSCI_ERRORS})),
    _Row(20, "MEM_PROTECT_CHECK_RANGE", "1.1", _BOTH, "is a memory range protected across resets",
         (_a("base", "base address of the range"), _a("length", "length of the range in bytes"))),
    _Row(21, "SYSTEM_OFF2", "1.3", _BOTH, "shut the system down with a type (hibernate); does not return",
         (_u32("type", "off type: 1 = HIBERNATE_OFF (0 also accepted)",
               {PSCI_1_3_OFF_TYPE_HIBERNATE_OFF: "PSCI_1_3_OFF_TYPE_HIBERNATE_OFF"}),
          _a("cookie", "must be zero"))),
    # LKML PSCI 1.3 RFC only (UNVERIFIED in mainline). The RFC gives the IDs, the DRY_RUN flag and
    # the attribute numbers, not the register order: the argument list below is UNVERIFIED.
    _Row(22, "CLEAN_INV_MEMREGION", "1.3", _64, "clean and invalidate caches for a memory region "
         "(UNVERIFIED: PSCI 1.3 alpha)",
         (_a("base", "base address"), _a("size", "size in bytes"), _a("timeout", "timeout"),
          _a("flags", "bit 0 = dry run"))),
    _Row(23, "CLEAN_INV_MEMREGION_ATTRIBUTES", "1.3", _32, "an attribute of CLEAN_INV_MEMREGION "
         "(UNVERIFIED: PSCI 1.3 alpha)",
         (_a("attribute", "0 OP_TYPE, 1 CPU_RDVZ, 2 LATENCY, 3 RATE_LIMIT, 4 TIMEOUT"),),
         _ret("value", "attribute value or PSCI_RET_* error", PSCI_ERRORS)),
)

_SRC = "TF-A include/lib/psci/psci.h, lib/psci/psci_main.c; Linux include/uapi/linux/psci.h; Arm DEN 0022"
_SRC_1_3 = "Linux include/uapi/linux/psci.h; Arm DEN 0022F.b"
_SRC_RFC = "LKML [RFC PATCH v3 1/5] firmware/psci: PSCI v1.3 definitions (ALPHA); UNVERIFIED in mainline"


def _function(row: _Row, smc64: bool) -> Function:
    fid = (PSCI_0_2_FN64 if smc64 else PSCI_0_2_FN)(row.number)
    width = 64 if smc64 else 32
    name = f"PSCI_{row.since.replace('.', '_')}_FN{'64' if smc64 else ''}_{row.name}"
    args = [a.name / Reg(a.doc, width=32 if a.u32 else width, names=a.names) for a in row.args]
    source = _SRC_RFC if row.number >= 22 else _SRC_1_3 if row.number == 21 else _SRC
    return Function(name, fid, row.summary, source, layout(c.Const(fid, c.Int64ul), *args),
                    {DEFAULT: row.ret(width)}, family="PSCI", extra={"psci": row.since})


FUNCTIONS = tuple(_function(row, smc64) for row in _ROWS for smc64 in row.variants)
