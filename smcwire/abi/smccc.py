"""SMC Calling Convention: the function-ID layout, owners, return codes and the Arm
architecture calls.

Sources (abi.md §1): Linux ``include/linux/arm-smccc.h`` (``ARM_SMCCC_CALL_VAL``, the
``ARM_SMCCC_*`` IDs and return codes) and TF-A ``include/lib/smccc.h`` (``FUNCID_*`` shifts,
``OEN_*`` owners, ``SMC_UNK`` and friends); Arm DEN 0028 (SMCCC) for the owner names.
"""

from __future__ import annotations

import construct as c

from .function import DEFAULT, Function
from .regs import M32, Reg, layout

# Function ID, bit 31 down to bit 0 (Linux ARM_SMCCC_*_SHIFT, TF-A FUNCID_*_SHIFT).
FUNCTION_ID = c.ByteSwapped(
    c.BitStruct(
        "fast" / c.Flag,  # bit 31: 1 = fast (ARM_SMCCC_FAST_CALL), 0 = yielding (STD_CALL)
        "smc64" / c.Flag,  # bit 30: calling convention, 1 = SMC64
        "owner" / c.BitsInteger(6),  # bits 29:24: owning entity (OEN)
        "reserved" / c.BitsInteger(7),  # bits 23:17: must be zero for fast calls (TF-A)
        "sve_hint" / c.Flag,  # bit 16: SMCCC v1.3 SVE hint (ARM_SMCCC_1_3_SVE_HINT)
        "number" / c.BitsInteger(16),  # bits 15:0: function number
    )
)

ARM_SMCCC_FAST_CALL = 1 << 31
ARM_SMCCC_SMC_64 = 1 << 30
ARM_SMCCC_OWNER_SHIFT = 24
ARM_SMCCC_OWNER_MASK = 0x3F
ARM_SMCCC_FUNC_MASK = 0xFFFF
ARM_SMCCC_1_3_SVE_HINT = 0x10000
FUNCID_FC_RESERVED_SHIFT = 17  # TF-A
FUNCID_FC_RESERVED_MASK = 0x7F

# Owning entity numbers (Linux ARM_SMCCC_OWNER_*, TF-A OEN_*).
ARM_SMCCC_OWNER_ARCH = 0
ARM_SMCCC_OWNER_CPU = 1
ARM_SMCCC_OWNER_SIP = 2
ARM_SMCCC_OWNER_OEM = 3
ARM_SMCCC_OWNER_STANDARD = 4
ARM_SMCCC_OWNER_STANDARD_HYP = 5
ARM_SMCCC_OWNER_VENDOR_HYP = 6
OEN_VEN_EL3 = 7  # TF-A only
ARM_SMCCC_OWNER_TRUSTED_APP = 48
ARM_SMCCC_OWNER_TRUSTED_APP_END = 49
ARM_SMCCC_OWNER_TRUSTED_OS = 50
ARM_SMCCC_OWNER_TRUSTED_OS_END = 63

OWNER_NAMES = {
    ARM_SMCCC_OWNER_ARCH: "Arm Architecture",
    ARM_SMCCC_OWNER_CPU: "CPU Service",
    ARM_SMCCC_OWNER_SIP: "SiP Service",
    ARM_SMCCC_OWNER_OEM: "OEM Service",
    ARM_SMCCC_OWNER_STANDARD: "Standard Secure Service",
    ARM_SMCCC_OWNER_STANDARD_HYP: "Standard Hypervisor Service",
    ARM_SMCCC_OWNER_VENDOR_HYP: "Vendor Hypervisor Service",
    OEN_VEN_EL3: "Vendor Specific EL3 Monitor Service",
}


def owner_name(owner: int) -> str:
    """The SMCCC name of an owning entity number (0-63)."""
    if owner in OWNER_NAMES:
        return OWNER_NAMES[owner]
    if ARM_SMCCC_OWNER_TRUSTED_APP <= owner <= ARM_SMCCC_OWNER_TRUSTED_APP_END:
        return "Trusted Application"
    if ARM_SMCCC_OWNER_TRUSTED_OS <= owner <= ARM_SMCCC_OWNER_TRUSTED_OS_END:
        return "Trusted OS"
    return "Reserved"


def call_val(fast: bool, smc64: bool, owner: int, number: int) -> int:
    """ARM_SMCCC_CALL_VAL(type, calling_convention, owner, func_num)."""
    return (
        (ARM_SMCCC_FAST_CALL if fast else 0)
        | (ARM_SMCCC_SMC_64 if smc64 else 0)
        | ((owner & ARM_SMCCC_OWNER_MASK) << ARM_SMCCC_OWNER_SHIFT)
        | (number & ARM_SMCCC_FUNC_MASK)
    )


# Return codes, as the u32 value seen in w0 (Linux SMCCC_RET_*; TF-A SMC_*).
SMCCC_RET_SUCCESS = 0
SMCCC_RET_NOT_SUPPORTED = -1 & M32
SMCCC_RET_NOT_REQUIRED = -2 & M32
SMCCC_RET_INVALID_PARAMETER = -3 & M32
SMCCC_RETURN = {
    SMCCC_RET_SUCCESS: "SMCCC_RET_SUCCESS",
    SMCCC_RET_NOT_SUPPORTED: "SMCCC_RET_NOT_SUPPORTED",
    SMCCC_RET_NOT_REQUIRED: "SMCCC_RET_NOT_REQUIRED",
    SMCCC_RET_INVALID_PARAMETER: "SMCCC_RET_INVALID_PARAMETER",
}
# TF-A include/lib/smccc.h: SMC_UNK is -1 like SMCCC_RET_NOT_SUPPORTED; the others are TF-A's own.
SMC_UNK = -1 & M32
SMC_PREEMPTED = -2 & M32
SMC_DENIED = -3 & M32
SMC_INVALID_PARAM = -4 & M32
TFA_SMC_RETURN = {SMC_UNK: "SMC_UNK", SMC_PREEMPTED: "SMC_PREEMPTED", SMC_DENIED: "SMC_DENIED",
                  SMC_INVALID_PARAM: "SMC_INVALID_PARAM"}

# SMCCC versions returned by ARM_SMCCC_VERSION: major in bits 30:16, minor in bits 15:0.
ARM_SMCCC_VERSION_1_0 = 0x10000
ARM_SMCCC_VERSION_1_1 = 0x10001
ARM_SMCCC_VERSION_1_2 = 0x10002
ARM_SMCCC_VERSION_1_3 = 0x10003

_SRC = "Linux include/linux/arm-smccc.h; Arm DEN 0028"


def _status_return() -> c.Struct:
    return layout("status" / Reg("SMCCC_RET_* status", names=SMCCC_RETURN))


def _arch(name: str, number: int, summary: str, call_args: tuple[c.Construct, ...], ret: c.Struct) -> Function:
    fid = call_val(True, False, ARM_SMCCC_OWNER_ARCH, number)
    return Function(name, fid, summary, _SRC, layout(c.Const(fid, c.Int64ul), *call_args),
                    {DEFAULT: ret}, family="SMCCC")


FUNCTIONS = (
    _arch("ARM_SMCCC_VERSION_FUNC_ID", 0x0000, "SMCCC version implemented by the firmware", (),
          layout("version" / Reg("0x10000 | minor for 1.x, or SMCCC_RET_NOT_SUPPORTED",
                                 names={ARM_SMCCC_VERSION_1_0: "1.0", ARM_SMCCC_VERSION_1_1: "1.1",
                                        ARM_SMCCC_VERSION_1_2: "1.2", ARM_SMCCC_VERSION_1_3: "1.3",
                                        SMCCC_RET_NOT_SUPPORTED: "SMCCC_RET_NOT_SUPPORTED"}))),
    _arch("ARM_SMCCC_ARCH_FEATURES_FUNC_ID", 0x0001, "is an Arm architecture function implemented",
          ("function_id" / Reg("queried function ID"),),
          layout("status" / Reg("0 or feature bits if implemented, SMCCC_RET_NOT_SUPPORTED, or "
                                "SMCCC_RET_NOT_REQUIRED (workarounds)", names=SMCCC_RETURN))),
    _arch("ARM_SMCCC_ARCH_SOC_ID", 0x0002, "SoC identification",
          ("soc_id_type" / Reg("0 = SoC version, 1 = SoC revision", names={0: "version", 1: "revision"}),),
          layout("soc_id" / Reg("SoC version or revision, or SMCCC_RET_* error", names=SMCCC_RETURN))),
    _arch("ARM_SMCCC_ARCH_WORKAROUND_1", 0x8000, "Spectre v2 (CVE-2017-5715) branch predictor "
          "invalidation", (), _status_return()),
    _arch("ARM_SMCCC_ARCH_WORKAROUND_2", 0x7FFF, "Spectre v4 (CVE-2018-3639) SSBD mitigation on/off",
          ("enable" / Reg("1 = enable the mitigation, 0 = disable"),), _status_return()),
    _arch("ARM_SMCCC_ARCH_WORKAROUND_3", 0x3FFF, "Spectre-BHB (CVE-2022-23960) mitigation", (),
          _status_return()),
)
