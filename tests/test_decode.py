"""Decoding real register sets from the shipped QEMU captures (OP-TEE 4.10, TF-A 2.15,
Linux 6.1; tests/data/README.md says where each line comes from)."""

import pytest

from smcwire.codec.decode import decode_call, decode_return


def test_probe_sequence_of_linux_6_1():
    # dbg-kretprobe/ftrace.txt: the fast calls of optee_probe and their kretprobe results
    uid = decode_return((0xBF00FF01,), (0x384FB3E0, 0xE7F811E3, 0xAF630002, 0xA5D5C51B))
    assert uid.function.name == "OPTEE_SMC_CALLS_UID"
    assert [uid.layout.slot(f"uid_{i}").names[uid.fields[f"uid_{i}"]] for i in range(4)] == [
        "OPTEE_MSG_UID_0", "OPTEE_MSG_UID_1", "OPTEE_MSG_UID_2", "OPTEE_MSG_UID_3"]

    rev = decode_return((0xB2000001,), (0x4, 0xA, 0x753AFBBEE1682F5D, 0x0))
    assert rev.fields == {"major": 4, "minor": 10, "build_id": 0x753AFBBEE1682F5D}  # "revision 4.10 (753a…)"

    api = decode_return((0xBF00FF03,), (0x2, 0x0, 0x0, 0x0))
    assert (api.fields["major"], api.fields["minor"]) == (2, 0)

    caps = decode_return((0xB2000009, 0, 0, 0, 0, 0, 0, 0), (0x0, 0xF5, 0x42, 0x4))
    assert caps.status_name == "OPTEE_SMC_RETURN_OK"
    assert caps.fields == {"status": 0, "sec_caps": 0xF5, "max_notif_value": 0x42, "rpc_param_count": 4}
    assert caps.notes == ()

    shm_cache = decode_return((0xB200000A,), (0x7, 0x0, 0x0, 0x0))
    assert shm_cache.status_name == "OPTEE_SMC_RETURN_ENOTAVAIL"


def test_yielding_call_with_rpc():
    # dbg-probe/ftrace.txt lines 13-16
    call = decode_call((0x32000012, 0, 0x4632C000, 0, 0, 0, 0, 0))
    assert call.name == "OPTEE_SMC_CALL_WITH_RPC_ARG" and call.fields["arg_pa"] == 0x4632C000
    assert call.notes == ()
    rpc = decode_return(call, (0xFFFF0004, 0, 0, 0))
    assert rpc.is_rpc and rpc.rpc.name == "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR" and rpc.fields == {"thread_id": 0}
    resume = decode_call((0x32000003, 0, 0, 0, 0, 0, 0, 0), rpc=rpc.rpc.func)
    assert resume.name == "OPTEE_SMC_CALL_RETURN_FROM_RPC" and resume.rpc is rpc.rpc
    done = decode_return(resume, (0, 0, 0, 0))
    assert done.status_name == "OPTEE_SMC_RETURN_OK" and not done.is_rpc


def test_regd_arg_cookie_is_one_field():
    call = decode_call((0x32000013, 0xFFFF5BF3, 0x45CC9800, 0, 0, 0, 0, 0))
    assert call.fields == {"cookie": 0xFFFF5BF345CC9800, "offset": 0, "client_id": 0}


def test_ethread_limit_has_stale_registers_and_no_false_notes():
    # abi.md §2.1: ret (1, e597b220, 8000000100, 0) after a REGD_ARG begin
    call = decode_call((0x32000013, 0xFFFF5BF3, 0x45CC9800, 0, 0, 0, 0, 0))
    ret = decode_return(call, (1, 0xE597B220, 0x8000000100, 0))
    assert ret.status_name == "OPTEE_SMC_RETURN_ETHREAD_LIMIT"
    assert ret.notes == () and ret.fields == {"status": 1}


def test_legacy_alloc_cookie_in_return_from_rpc():
    # abi.md §2.1, legacy OP-TEE 3.16: (32000003, ffff5bf3, 40facf80, 0, ffff5bf3, 40facf80, 0, 0)
    regs = (0x32000003, 0xFFFF5BF3, 0x40FACF80, 0, 0xFFFF5BF3, 0x40FACF80, 0, 0)
    generic = decode_call(regs)
    assert generic.fields["cookie"] == 0xFFFF5BF340FACF80 and generic.fields["thread_id"] == 0
    alloc = decode_call(regs, rpc=0)
    assert alloc.fields == {"buf_pa": 0xFFFF5BF340FACF80, "thread_id": 0, "cookie": 0xFFFF5BF340FACF80,
                            "client_id": 0}


def test_async_notif_value_bits():
    # dbg-kretprobe: GET_ASYNC_NOTIF_VALUE -> r0=0 r1=0 r2=1 (value 0 = DO_BOTTOM_HALF, VALID)
    ret = decode_return((0xB2000011,), (0, 0, 1, 0))
    assert ret.fields == {"status": 0, "value": 0, "valid": 1, "pending": 0}
    assert ret.layout.slot("value").names[0] == "OPTEE_SMC_ASYNC_NOTIF_VALUE_DO_BOTTOM_HALF"
    bad = decode_return((0xB2000011,), (0, 0, 0x5, 0))
    assert bad.notes == ("a2[31:2] = 0x1: must be zero (bits 31:2 reserved)",)


def test_mbz_and_not_used_notes():
    call = decode_call((0xB2000014, 0, 0, 0x1, 0, 0, 0, 0))  # GET_PROTMEM_CONFIG a3 must be zero
    assert call.notes == ("a3 = 0x1: must be zero (not used, must be zero)",)
    call = decode_call((0x32000004, 0, 0x4632C000, 0, 0x5, 0, 0, 0))
    assert call.notes == ("a4 = 0x5: not used",)
    vm = decode_call((0xB200000D, 2, 0, 0, 0, 0, 0, 3))
    assert vm.notes[0].startswith("a7 = 0x3: must be zero")


@pytest.mark.parametrize("a0, note", [
    (0xB2000004, "OPTEE_SMC_CALL_WITH_ARG is yielding SMC32, this is fast SMC32"),
    (0x32000009, "OPTEE_SMC_EXCHANGE_CAPABILITIES is fast SMC32, this is yielding SMC32"),
    (0xF2000009, "OPTEE_SMC_EXCHANGE_CAPABILITIES is fast SMC32, this is fast SMC64"),
    (0xB2000030, "unknown Trusted OS function 0xb2000030 (OP-TEE answers UNKNOWN_FUNCTION)"),
    (0x32000030, "unknown Trusted OS function 0x32000030 (OP-TEE answers EBADCMD after taking a thread)"),
    (0x82000010, "unknown SiP Service function 0x82000010"),
])
def test_unknown_ids_decode_gracefully(a0, note):
    call = decode_call((a0, 1, 2))
    assert call.function is None and call.fields["a1"] == 1
    assert any(note in n for n in call.notes), call.notes


def test_reserved_bits_and_sve_hint():
    reserved = decode_call((0xB2020009,))
    assert reserved.function is None
    assert reserved.notes[0] == "bits 23:17 = 0x1 are reserved in a fast call: TF-A answers SMC_UNK"
    sve = decode_call((0xB2010009, 1))
    assert sve.name == "OPTEE_SMC_EXCHANGE_CAPABILITIES"  # TF-A strips bit 16 before dispatch
    assert "SVE hint" in sve.notes[0]


def test_special_and_unknown_rpc_returns():
    call = decode_call((0x32000004, 0, 0x4632C000))
    einval = decode_return(call, (0xFFFFFFEA,))  # abi.md §7.3: TF-A opteed, OP-TEE not loaded
    assert not einval.is_rpc and einval.status_name is None and "OP-TEE is not loaded" in einval.notes[0]
    odd = decode_return(call, (0xFFFF0009, 0, 0, 1))
    assert odd.is_rpc and "unknown RPC function 0x9" in odd.notes[0]
    unknown_fn = decode_return(call, (0xFFFFFFFF,))
    assert unknown_fn.status_name == "OPTEE_SMC_RETURN_UNKNOWN_FUNCTION" and not unknown_fn.is_rpc
    assert unknown_fn.notes == ()


@pytest.mark.parametrize("call, ret, note", [
    ((0x32000004, 0, 0x4632C000), (8,), "0x8 is not an OPTEE_SMC_RETURN_* value"),  # abi.md §7.5 #18
    ((0x32000004, 0, 0x4632C000), (0x32000004,), "Xen's mediator"),  # X7: a0 echoed back
    ((0xB200000F,), (0xFFFF0005,), "cannot make RPCs"),  # a fast call never RPCs
])
def test_unexpected_status_values(call, ret, note):
    r = decode_return(call, ret)
    assert r.status_name is None and not r.is_rpc and note in r.notes[0]


def test_load_image_einval_means_zero_size():
    # abi.md §2.1: LOAD_IMAGE -EINVAL = size or PA 0 (Linux sends zeros on purpose), not "not loaded"
    r = decode_return((0xBF000002, 0, 0, 0, 0), (0xFFFFFFEA,))
    assert r.status_name == "-EINVAL: size or address is 0" and r.notes == ()


def test_error_returns_do_not_claim_fields_are_preserved():
    # abi.md §2.1: GET_PROTMEM_CONFIG ENOTAVAIL: a1-a3 not used (optee_os: a1 = a2 = 0, a3 = 64)
    r = decode_return((0xB2000014, 0, 0, 0, 0, 0, 0, 0), (7, 0, 0, 0x40, 0, 0, 0, 0))
    assert r.status_name == "OPTEE_SMC_RETURN_ENOTAVAIL" and r.notes == ()
    r = decode_return((0xB2000007, 0, 0, 0, 0, 0, 0, 0), (7, 5, 6, 7, 0, 0, 0, 0))
    assert r.notes == ()


def test_exchange_capabilities_enotavail_echoes_nsec_caps():
    # abi.md §2.1 (corrected): optee_os returns ENOTAVAIL before writing a1
    call = decode_call((0xB2000009, 3, 0, 0, 0, 0, 0, 0))
    assert call.notes == ("a1 = 0x3: bits 0x2 are not allowed (OPTEE_SMC_NSEC_CAP_* normal-world capabilities; "
                          "optee_os answers ENOTAVAIL to any bit but UNIPROCESSOR (abi.md §7.2 S12))",)
    r = decode_return(call, (7, 3, 0, 0))
    assert r.fields == {"status": 7, "nsec_caps": 3}
    assert r.layout.slot("nsec_caps").flags == {"OPTEE_SMC_NSEC_CAP_UNIPROCESSOR": 1}


def test_rpc_layouts_follow_the_header():
    # abi.md §4: ALLOC request a4-a5 not used, a6-a7 resume; replies to FREE/CMD echo the cookie (Linux)
    alloc = decode_return((0x32000004,), (0xFFFF0000, 0x1000, 0, 1))
    assert [s.role.value for s in alloc.layout.slots if s.reg in (4, 5, 6, 7)] == [
        "not used", "not used", "resume information", "resume information"]
    echoed = decode_call((0x32000003, 0xFFFF5BF3, 0x45E7A000, 0, 0xFFFF5BF3, 0x45E7A000, 0, 0), rpc=5)
    assert echoed.notes == ()
    generic = decode_call((0x32000003, 0, 0, 1, 0, 0, 5, 0))  # a6 is resume information, not "not used"
    assert generic.notes == ()
    assert decode_call((0x32000003, 0, 0, 1), rpc=9).notes == ("answers unknown RPC function 0x9: generic layout",)


def test_general_queries_answered_by_nobody():
    # "api uid mismatch": no OP-TEE behind TF-A, a0 = SMC_UNK (formats.md §2.5)
    r = decode_return((0xBF00FF01,), (0xFFFFFFFFFFFFFFFF, 0, 0, 0))
    assert r.layout.slots[0].names[r.fields["uid_0"]].startswith("SMC_UNK")


def test_preserved_registers_checked_when_present():
    call = (0xB200000B, 0, 0, 0, 0x11, 0x22, 0x33, 0)
    assert decode_return(call, (0, 0, 0, 0, 0x11, 0x22, 0x33, 0)).notes == ()
    assert decode_return(call, (0, 0, 0, 0, 0x11, 0x99, 0x33, 0)).notes == ("a5 not preserved: 0x22 in, 0x99 out",)


def test_psci_and_smccc_in_kprobe_traces():
    assert decode_call((0x84000008,)).name == "PSCI_0_2_FN_SYSTEM_OFF"
    on = decode_call((0xC4000003, 1, 0x40080000, 0))
    assert on.name == "PSCI_0_2_FN64_CPU_ON" and on.fields["entry_point_address"] == 0x40080000
    assert decode_return(on, (0xFFFFFFFFFFFFFFFC,)).status_name == "PSCI_RET_ALREADY_ON"
    assert decode_return((0x80000000,), (0x10001,)).fields == {"version": 0x10001}
