"""ABI profiles: the same value means different things in different ABI generations (abi.md §8)."""

import pytest

from smcwire.abi.profiles import PROFILE_NAMES, get_profile
from smcwire.codec.caps import decode_caps
from smcwire.codec.decode import decode_call, decode_return


def test_profile_names():
    assert PROFILE_NAMES == ("mainline", "sysinv-v1", "sysinv-flag", "sysinv-v2", "xen-guest")
    with pytest.raises(KeyError, match="unknown profile 'nope'"):
        get_profile("nope")


@pytest.mark.parametrize("profile, name", [
    ("mainline", "OPTEE_SMC_SEC_CAP_RPMB_PROBE"),
    ("sysinv-v1", "OPTEE_SMC_SEC_CAP_SYSTEM_THREAD"),
    ("sysinv-flag", "OPTEE_SMC_SEC_CAP_SYSTEM_THREAD"),
    ("sysinv-v2", "OPTEE_SMC_SEC_CAP_SYSTEM_THREAD"),
    ("xen-guest", "OPTEE_SMC_SEC_CAP_RPMB_PROBE"),
])
def test_sec_cap_bit7(profile, name):
    assert decode_caps(0x80, profile=profile).flags == (name,)
    # ... and the same through EXCHANGE_CAPABILITIES' return layout
    ret = decode_return((0xB2000009,), (0, 0x80, 0, 0), profile)
    assert ret.layout.slot("sec_caps").flags[name] == 0x80


def test_function_20():
    # mainline: 20 is GET_PROTMEM_CONFIG, fast; 0x32000014 is not a valid ID
    assert decode_call((0xB2000014,)).name == "OPTEE_SMC_GET_PROTMEM_CONFIG"
    unknown = decode_call((0x32000014,))
    assert unknown.function is None
    assert "GET_PROTMEM_CONFIG is fast SMC32, this is yielding SMC32" in unknown.notes[0]
    for profile in ("sysinv-v1", "sysinv-v2"):
        call = decode_call((0x32000014, 0xFFFF5BF3, 0x45CC9800, 0x180), profile)
        assert call.name == "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG"
        assert call.fields["cookie"] == 0xFFFF5BF345CC9800 and call.fields["offset"] == 0x180
        assert decode_call((0xB2000014,), profile).function is None


@pytest.mark.parametrize("a0, name", [
    (0x32008004, "OPTEE_SMC_CALL_SYSTEM_WITH_ARG"),
    (0x32008012, "OPTEE_SMC_CALL_SYSTEM_WITH_RPC_ARG"),
    (0x32008013, "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG"),
])
def test_system_thread_flag(a0, name):
    call = decode_call((a0, 0, 0x4632C000), "sysinv-flag")
    assert call.name == name and call.function.rpc
    assert decode_call((a0,), "mainline").function is None
    # the flag variants answer with RPCs like the plain ones
    assert decode_return(call, (0xFFFF0005, 0, 0, 1), "sysinv-flag").rpc.name == "OPTEE_SMC_RPC_FUNC_CMD"


def test_v2_reservation_calls_are_yielding_as_the_patch_defines():
    p = get_profile("sysinv-v2")
    assert p.function("OPTEE_SMC_CALL_RESERVE_SYS_THREAD").id == 0x32000015
    assert p.function("OPTEE_SMC_CALL_UNRESERVE_SYS_THREAD").id == 0x32000016
    assert not p.function("OPTEE_SMC_CALL_RESERVE_SYS_THREAD").fast
    assert "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG" in p.by_name
    assert decode_call((0xB2000015,), "sysinv-v2").function is None  # the "fastcall" of the changelog
    assert decode_return((0x32000015,), (1,), "sysinv-v2").status_name == "OPTEE_SMC_RETURN_ETHREAD_LIMIT"
    for profile in ("mainline", "sysinv-v1"):
        assert decode_call((0x32000015,), profile).function is None


def test_xen_guest_forwards_eleven_functions():
    # abi.md §7.4 X1
    p = get_profile("xen-guest")
    optee = {f.id for f in p.functions if f.family == "OP-TEE"}
    assert optee == {0xBF00FF00, 0xBF00FF01, 0xBF00FF03, 0xB2000000, 0xB2000001, 0xB200000B, 0xB200000A,
                     0xB2000007, 0xB2000009, 0x32000004, 0x32000003}
    for a0 in (0x32000012, 0x32000013, 0xB200000F, 0xB2000010, 0xB2000011, 0xB200000D):
        assert decode_call((a0,), "xen-guest").function is None


def test_xen_guest_decoding():
    # X1: not forwarded, answered by Xen; X4: only a0/a1 written, SEC caps masked
    assert "Xen's mediator does not forward it" in decode_call((0x32000012,), "xen-guest").notes[0]
    assert "OP-TEE answers EBADCMD" in decode_call((0x32000030,)).notes[0]
    call = (0xB2000009, 0, 0, 0, 0, 0, 0, 0)
    r = decode_return(call, (0, 0xF5, 0, 0), "xen-guest")
    assert r.fields == {"status": 0, "sec_caps": 0xF5}
    assert r.notes == ("a1 = 0xf5: bits 0xe1 are not allowed (OP-TEE's SEC caps as Xen masks them (X4))",)
    assert decode_return(call, (0, 0x16, 0, 0), "xen-guest").notes == ()
    # OP-TEE's own answer (a2 notif max, a3 RPC params) cannot reach a guest: Xen leaves a2/a3 alone
    assert decode_return(call, (0, 0x16, 0x42, 4), "xen-guest").notes == (
        "a2 not preserved: 0x0 in, 0x42 out", "a3 not preserved: 0x0 in, 0x4 out")


def test_xen_guest_capability_masking():
    # X4: SEC caps masked to 0x17, then RESERVED_SHM cleared; NSEC masked to UNIPROCESSOR
    caps = decode_caps(0xF5, profile="xen-guest")
    assert caps.masked == 0xF5 & ~0x16
    assert decode_caps(0x16, profile="xen-guest").masked == 0
    assert decode_caps(0x3, nsec=True, profile="xen-guest").masked == 0x2
    assert decode_caps(0xF5).masked == 0


def test_profile_rejects_duplicate_ids():
    p = get_profile()
    clash = p.function("OPTEE_SMC_CALL_WITH_ARG")
    with pytest.raises(ValueError, match="share ID 0x32000004"):
        type(p)("bad", "", "", p.functions + (type(clash)("X", clash.id, "", "", clash.call, clash.returns),))
