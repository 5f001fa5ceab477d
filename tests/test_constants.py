"""Every ABI constant against the values in abi.md (copied literally from its tables)."""

import pytest

from smcwire.abi import optee, proposals, smccc
from smcwire.abi.profiles import get_profile
from smcwire.abi.rpc import RPC_FUNCTIONS
from smcwire.codec.decode import decode_function_id

# abi.md §2: name -> (ID, fast, owner)
OPTEE_FUNCTIONS = {
    "OPTEE_SMC_CALLS_COUNT": (0xBF00FF00, True, 63),
    "OPTEE_SMC_CALLS_UID": (0xBF00FF01, True, 63),
    "OPTEE_SMC_CALLS_REVISION": (0xBF00FF03, True, 63),
    "OPTEE_SMC_CALL_GET_OS_UUID": (0xB2000000, True, 50),
    "OPTEE_SMC_CALL_GET_OS_REVISION": (0xB2000001, True, 50),
    "OPTEE_SMC_CALL_LOAD_IMAGE": (0xBF000002, True, 63),
    "OPTEE_SMC_CALL_RETURN_FROM_RPC": (0x32000003, False, 50),
    "OPTEE_SMC_CALL_WITH_ARG": (0x32000004, False, 50),
    "OPTEE_SMC_GET_SHM_CONFIG": (0xB2000007, True, 50),
    "OPTEE_SMC_L2CC_MUTEX": (0xB2000008, True, 50),
    "OPTEE_SMC_EXCHANGE_CAPABILITIES": (0xB2000009, True, 50),
    "OPTEE_SMC_DISABLE_SHM_CACHE": (0xB200000A, True, 50),
    "OPTEE_SMC_ENABLE_SHM_CACHE": (0xB200000B, True, 50),
    "OPTEE_SMC_BOOT_SECONDARY": (0xB200000C, True, 50),
    "OPTEE_SMC_VM_CREATED": (0xB200000D, True, 50),
    "OPTEE_SMC_VM_DESTROYED": (0xB200000E, True, 50),
    "OPTEE_SMC_GET_THREAD_COUNT": (0xB200000F, True, 50),
    "OPTEE_SMC_ENABLE_ASYNC_NOTIF": (0xB2000010, True, 50),
    "OPTEE_SMC_GET_ASYNC_NOTIF_VALUE": (0xB2000011, True, 50),
    "OPTEE_SMC_CALL_WITH_RPC_ARG": (0x32000012, False, 50),
    "OPTEE_SMC_CALL_WITH_REGD_ARG": (0x32000013, False, 50),
    "OPTEE_SMC_GET_PROTMEM_CONFIG": (0xB2000014, True, 50),
}

# abi.md §3
RETURN_CODES = {
    "OPTEE_SMC_RETURN_OK": 0x0, "OPTEE_SMC_RETURN_ETHREAD_LIMIT": 0x1, "OPTEE_SMC_RETURN_EBUSY": 0x2,
    "OPTEE_SMC_RETURN_ERESUME": 0x3, "OPTEE_SMC_RETURN_EBADADDR": 0x4, "OPTEE_SMC_RETURN_EBADCMD": 0x5,
    "OPTEE_SMC_RETURN_ENOMEM": 0x6, "OPTEE_SMC_RETURN_ENOTAVAIL": 0x7,
    "OPTEE_SMC_RETURN_UNKNOWN_FUNCTION": 0xFFFFFFFF,
}

# abi.md §5
SEC_CAPS = {
    "OPTEE_SMC_SEC_CAP_HAVE_RESERVED_SHM": 0x001, "OPTEE_SMC_SEC_CAP_UNREGISTERED_SHM": 0x002,
    "OPTEE_SMC_SEC_CAP_DYNAMIC_SHM": 0x004, "OPTEE_SMC_SEC_CAP_VIRTUALIZATION": 0x008,
    "OPTEE_SMC_SEC_CAP_MEMREF_NULL": 0x010, "OPTEE_SMC_SEC_CAP_ASYNC_NOTIF": 0x020,
    "OPTEE_SMC_SEC_CAP_RPC_ARG": 0x040, "OPTEE_SMC_SEC_CAP_RPMB_PROBE": 0x080,
    "OPTEE_SMC_SEC_CAP_PROTMEM": 0x100, "OPTEE_SMC_SEC_CAP_DYNAMIC_PROTMEM": 0x200,
}

# abi.md §1
SMCCC_ARCH = {
    "ARM_SMCCC_VERSION_FUNC_ID": 0x80000000, "ARM_SMCCC_ARCH_FEATURES_FUNC_ID": 0x80000001,
    "ARM_SMCCC_ARCH_SOC_ID": 0x80000002, "ARM_SMCCC_ARCH_WORKAROUND_1": 0x80008000,
    "ARM_SMCCC_ARCH_WORKAROUND_2": 0x80007FFF, "ARM_SMCCC_ARCH_WORKAROUND_3": 0x80003FFF,
}


@pytest.mark.parametrize("name", OPTEE_FUNCTIONS)
def test_optee_function_ids(name):
    fid, fast, owner = OPTEE_FUNCTIONS[name]
    f = get_profile("mainline").function(name)
    assert (f.id, f.fast, f.owner, f.smc64) == (fid, fast, owner, False)
    assert f.call.parse(f.call.build({s.name: 0 for s in f.call_layout.slots}))  # a0 Const holds the ID
    assert f.call.subcons[0].subcon.value == fid


def test_no_other_optee_functions_in_mainline():
    optee_owned = {f.name for f in get_profile().functions if f.family == "OP-TEE"}
    assert optee_owned == set(OPTEE_FUNCTIONS)


@pytest.mark.parametrize("name", RETURN_CODES)
def test_return_codes(name):
    assert getattr(optee, name) == RETURN_CODES[name]
    assert optee.OPTEE_SMC_RETURN[RETURN_CODES[name]] == name


def test_rpc_encoding():
    assert optee.OPTEE_SMC_RETURN_RPC_PREFIX == optee.OPTEE_SMC_RETURN_RPC_PREFIX_MASK == 0xFFFF0000
    assert optee.OPTEE_SMC_RETURN_RPC_FUNC_MASK == 0x0000FFFF
    expected = {"OPTEE_SMC_RPC_FUNC_ALLOC": (0, 0xFFFF0000), "OPTEE_SMC_RPC_FUNC_FREE": (2, 0xFFFF0002),
                "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR": (4, 0xFFFF0004), "OPTEE_SMC_RPC_FUNC_CMD": (5, 0xFFFF0005)}
    assert {r.name: (r.func, optee.OPTEE_SMC_RPC_VAL(r.func)) for r in RPC_FUNCTIONS.values()} == expected
    for _func, val in expected.values():
        assert optee.OPTEE_SMC_RETURN_IS_RPC(val)
    assert not optee.OPTEE_SMC_RETURN_IS_RPC(0xFFFFFFFF)  # UNKNOWN_FUNCTION is not an RPC
    assert optee.OPTEE_SMC_RETURN_IS_RPC(0xFFFFFFEA)  # TF-A -EINVAL looks like one (abi.md §7.3)


def test_capability_bits():
    assert optee.SEC_CAP_BITS == SEC_CAPS
    assert optee.SEC_CAPS.flags == SEC_CAPS
    assert optee.NSEC_CAPS.flags == {"OPTEE_SMC_NSEC_CAP_UNIPROCESSOR": 1}


def test_async_notif_and_shm_constants():
    assert optee.OPTEE_SMC_ASYNC_NOTIF_VALUE_VALID == 0x1
    assert optee.OPTEE_SMC_ASYNC_NOTIF_VALUE_PENDING == 0x2
    assert optee.OPTEE_SMC_ASYNC_NOTIF_VALUE_DO_BOTTOM_HALF == 0
    assert optee.OPTEE_SMC_SHM_CACHED == 1
    assert (optee.OPTEE_SMC_L2CC_MUTEX_GET_ADDR, optee.OPTEE_SMC_L2CC_MUTEX_SET_ADDR,
            optee.OPTEE_SMC_L2CC_MUTEX_ENABLE, optee.OPTEE_SMC_L2CC_MUTEX_DISABLE) == (0, 1, 2, 3)
    assert optee.OPTEED_RETURN_EINVAL == (-22) & 0xFFFFFFFF


def test_owners():
    assert (optee.OPTEE_SMC_OWNER_TRUSTED_OS, optee.OPTEE_SMC_OWNER_TRUSTED_OS_OPTEED,
            optee.OPTEE_SMC_OWNER_TRUSTED_OS_API) == (50, 62, 63)
    names = {0: "Arm Architecture", 1: "CPU Service", 2: "SiP Service", 3: "OEM Service",
             4: "Standard Secure Service", 5: "Standard Hypervisor Service", 6: "Vendor Hypervisor Service",
             7: "Vendor Specific EL3 Monitor Service", 48: "Trusted Application", 49: "Trusted Application",
             50: "Trusted OS", 63: "Trusted OS", 8: "Reserved", 47: "Reserved"}
    for owner, name in names.items():
        assert smccc.owner_name(owner) == name


@pytest.mark.parametrize("name", SMCCC_ARCH)
def test_smccc_arch_ids(name):
    f = get_profile().function(name)
    assert f.id == SMCCC_ARCH[name] and f.fast and not f.smc64 and f.owner == 0


def test_smccc_return_codes():
    assert smccc.SMCCC_RETURN == {0: "SMCCC_RET_SUCCESS", 0xFFFFFFFF: "SMCCC_RET_NOT_SUPPORTED",
                                  0xFFFFFFFE: "SMCCC_RET_NOT_REQUIRED", 0xFFFFFFFD: "SMCCC_RET_INVALID_PARAMETER"}
    assert (smccc.SMC_UNK, smccc.SMC_PREEMPTED, smccc.SMC_DENIED, smccc.SMC_INVALID_PARAM) == (
        0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFC)
    assert (smccc.ARM_SMCCC_VERSION_1_0, smccc.ARM_SMCCC_VERSION_1_3) == (0x10000, 0x10003)


@pytest.mark.parametrize("a0, fields", [
    # value: (fast, smc64, owner, reserved, sve_hint, number)   abi.md §1 bit layout
    (0x32000004, (False, False, 50, 0, False, 4)),
    (0xBF00FF01, (True, False, 63, 0, False, 0xFF01)),
    (0xC4000003, (True, True, 4, 0, False, 3)),
    (0xB2FE0009, (True, False, 50, 0x7F, False, 9)),
    (0xB2010009, (True, False, 50, 0, True, 9)),
    (0x80008000, (True, False, 0, 0, False, 0x8000)),
])
def test_function_id_layout(a0, fields):
    f = decode_function_id(a0)
    assert (f.fast, f.smc64, f.owner, f.reserved, f.sve_hint, f.number) == fields
    fast, smc64, owner, _, _, number = fields
    if not f.reserved and not f.sve_hint:
        assert smccc.call_val(fast, smc64, owner, number) == a0


def test_proposal_constants():
    # abi.md §8
    assert proposals.OPTEE_SMC_CALL_SYSTEM_THREAD_FLAG == 0x8000
    assert (proposals.OPTEE_SMC_FUNCID_CALL_SYSTEM_WITH_REGD_ARG, proposals.OPTEE_SMC_FUNCID_CALL_RESERVE_SYS_THREAD,
            proposals.OPTEE_SMC_FUNCID_CALL_UNRESERVE_SYS_THREAD) == (20, 21, 22)
    assert proposals.SEC_CAP_BITS_SYSINV["OPTEE_SMC_SEC_CAP_SYSTEM_THREAD"] == 0x80
    assert "OPTEE_SMC_SEC_CAP_RPMB_PROBE" not in proposals.SEC_CAP_BITS_SYSINV
