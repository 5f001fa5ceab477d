"""TOML ABI extensions (``smcwire.abi.extension``): a good vendor file loads through the library and
through ``--abi-extension``, decodes and encodes; every malformed file raises ExtensionError whose
one-line message names the file and the offending key.

The good file, tests/data/extensions/realtek_vendor.toml, is the vendor-kernel reuse of OP-TEE fast
function numbers 13-17 that abi.md §2 describes for a Realtek-derived fork (SET_DRTC=13,
GET_GIT_VERSION=14, PM_SUSPEND=15, PM_RESUME=16, SET_LOGBUF=17; each clashes with mainline and
needs ``replaces = true``), plus a SiP fast call 0x82000010 with a register pair and a flags field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from smcwire.abi.extension import ExtensionError, load_extension, parse_extension
from smcwire.abi.profiles import get_profile
from smcwire.cli import cli
from smcwire.codec.decode import Decoder
from smcwire.codec.encode import encode_call, encode_return

GOOD = Path(__file__).parent / "data" / "extensions" / "realtek_vendor.toml"

# abi.md §1: ID = type<<31 | cc<<30 | owner<<24 | num; OP-TEE fast calls are 0xB2000000 | num
VENDOR_OPTEE = {
    "OPTEE_SMC_SET_DRTC": 0xB200000D,
    "OPTEE_SMC_GET_GIT_VERSION": 0xB200000E,
    "OPTEE_SMC_PM_SUSPEND": 0xB200000F,
    "OPTEE_SMC_PM_RESUME": 0xB2000010,
    "OPTEE_SMC_SET_LOGBUF": 0xB2000011,
}
# abi.md §2: what mainline has at those IDs
MAINLINE_AT = {
    0xB200000D: "OPTEE_SMC_VM_CREATED",
    0xB200000E: "OPTEE_SMC_VM_DESTROYED",
    0xB200000F: "OPTEE_SMC_GET_THREAD_COUNT",
    0xB2000010: "OPTEE_SMC_ENABLE_ASYNC_NOTIF",
    0xB2000011: "OPTEE_SMC_GET_ASYNC_NOTIF_VALUE",
}
SIP = "VENDOR_SIP_SET_SECURE_REGION"
SIP_ID = 0x82000010  # fast, SMC32, owner 2 (SiP), function 0x10


@pytest.fixture(scope="module")
def profile():
    return load_extension(GOOD, get_profile())


def _cli_json(*args: str):
    result = CliRunner().invoke(cli, [*args, "--abi-extension", str(GOOD), "--format", "json"])
    assert result.exception is None, result.stderr
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


# --- the good file ------------------------------------------------------------------------------------

def test_load_extension_returns_extended_profile(profile):
    for name, fid in VENDOR_OPTEE.items():
        f = profile.by_id[fid]
        assert f.name == name
        assert f.family == "extension"
        assert f.fast and not f.smc64 and f.owner == 50
        assert profile.function(name) is f
    sip = profile.by_id[SIP_ID]
    assert sip.name == SIP
    assert (sip.fast, sip.smc64, sip.owner, sip.number) == (True, False, 2, 0x10)
    # the replaced mainline functions are gone, the rest of mainline is still there
    for name in MAINLINE_AT.values():
        assert name not in profile.by_name
    assert profile.by_id[0x32000004].name == "OPTEE_SMC_CALL_WITH_ARG"
    assert profile.by_id[0xB2000009].name == "OPTEE_SMC_EXCHANGE_CAPABILITIES"
    assert profile.by_id[0x84000000].family == "PSCI"
    assert GOOD.name in profile.name


def test_load_extension_leaves_base_profile_alone(profile):
    base = get_profile()
    for fid, name in MAINLINE_AT.items():
        assert base.by_id[fid].name == name
    assert SIP_ID not in base.by_id


def test_load_extension_accepts_str_path():
    assert load_extension(str(GOOD), get_profile()).by_id[SIP_ID].name == SIP


def test_decode_vendor_calls(profile):
    decoder = Decoder(profile)
    # newkernel-kretprobe/ftrace.txt: a0=0xb200000f ... r0=0x0 r1=0x2 is GET_THREAD_COUNT in mainline,
    # PM_SUSPEND under the vendor ABI
    assert Decoder(get_profile()).ret((0xB200000F,), (0, 2)).fields["thread_count"] == 2
    call = decoder.call((0xB200000F, 0, 0, 0, 0, 0, 0, 0))
    assert call.name == "OPTEE_SMC_PM_SUSPEND"
    ret = decoder.ret(call, (0, 2))
    assert ret.status_name == "OPTEE_SMC_RETURN_OK"
    assert "thread_count" not in ret.fields

    drtc = decoder.call((0xB200000D, 1, 2, 3, 4, 5, 6, 0))
    assert drtc.fields == {f"drtc_{i}": i + 1 for i in range(6)}


def test_decode_pair_in_return(profile):
    # Realtek header example: "a1 = 0x01234567 a2=0x89abcdef, so git version is 0123456789abcdef"
    ret = Decoder(profile).ret((0xB200000E,), (0, 0x01234567, 0x89ABCDEF, 0))
    assert ret.function.name == "OPTEE_SMC_GET_GIT_VERSION"
    assert ret.fields["git_version"] == 0x0123456789ABCDEF
    # returns_by_status: EBADCMD (5, abi.md §3) has a1-a2 preserved, no git_version
    bad = Decoder(profile).ret((0xB200000E,), (5, 0x01234567, 0x89ABCDEF, 0))
    assert bad.status_name == "OPTEE_SMC_RETURN_EBADCMD"
    assert "git_version" not in bad.fields


def test_decode_sip_call(profile):
    call = Decoder(profile).call((SIP_ID, 0, 0x4632C000, 1, 3, 0x1000000000, 0, 0))
    assert call.name == SIP
    assert call.fields == {"region_pa": 0x4632C000, "mode": 1, "region_flags": 3, "region_size": 0x1000000000}
    assert call.notes == ()
    # a7 is "must be zero"
    assert any("a7" in n for n in Decoder(profile).call((SIP_ID, 0, 0, 0, 0, 0, 0, 5)).notes)


def test_encode_round_trip(profile):
    fields = {"region_pa": 0xFFFF00004632C000, "mode": 2, "region_flags": 5, "region_size": 0x123456789}
    regs = encode_call(SIP, fields, profile)
    # pair: a1 upper half, a2 lower half
    assert regs == (SIP_ID, 0xFFFF0000, 0x4632C000, 2, 5, 0x123456789, 0, 0)
    assert Decoder(profile).call(regs).fields == fields

    ret = encode_return("OPTEE_SMC_GET_GIT_VERSION", {"status": 0, "git_version": 0x0123456789ABCDEF}, profile)
    assert ret[:3] == (0, 0x01234567, 0x89ABCDEF)
    assert Decoder(profile).ret((0xB200000E,), ret).fields["git_version"] == 0x0123456789ABCDEF

    logbuf = encode_call("OPTEE_SMC_SET_LOGBUF", {"logbuf_pa": 0x4632C000, "logbuf_size": 0x10000}, profile)
    assert logbuf[:4] == (0xB2000011, 0, 0x4632C000, 0x10000)


def test_encode_range_checks(profile):
    from smcwire.abi.regs import EncodeError

    with pytest.raises(EncodeError, match="mode"):
        encode_call(SIP, {"mode": 1 << 32}, profile)  # default width 32
    encode_call(SIP, {"region_size": (1 << 64) - 1}, profile)  # width = 64
    with pytest.raises(EncodeError, match="region_size"):
        encode_call(SIP, {"region_size": 1 << 64}, profile)


def test_cli_decode_with_extension():
    data = _cli_json("decode", "82000010", "0", "4632c000", "1", "3", "--return", "0", "3")
    assert data["name"] == SIP
    assert data["family"] == "extension"
    assert data["fields"]["region_pa"] == 0x4632C000
    assert data["values"]["mode"] == "MODE_SECURE"
    assert data["values"]["region_flags"] == "LOCK|WIPE"
    ret = data["return"]
    assert ret["status_name"] == "SMCCC_RET_SUCCESS"  # names = "smccc"; abi.md §1 SMCCC_RET_SUCCESS = 0
    assert ret["fields"]["state"] == 3
    assert ret["values"]["state"] == "ACTIVE|LOCKED"

    assert _cli_json("decode", "b200000f")["name"] == "OPTEE_SMC_PM_SUSPEND"
    without = CliRunner().invoke(cli, ["decode", "b200000f", "--format", "json"])
    assert json.loads(without.stdout)["name"] == "OPTEE_SMC_GET_THREAD_COUNT"


def test_cli_functions_with_extension():
    data = _cli_json("functions", "--family", "extension")
    assert {f["name"]: f["id"] for f in data} == {**VENDOR_OPTEE, SIP: SIP_ID}
    everything = {f["id"]: f["name"] for f in _cli_json("functions")}
    for fid, mainline_name in MAINLINE_AT.items():
        assert everything[fid] != mainline_name


def test_cli_encode_decode_round_trip():
    result = CliRunner().invoke(cli, ["encode", SIP, "region_pa=ffff00004632c000", "mode=2", "region_flags=5",
                                      "--abi-extension", str(GOOD), "--format", "regs"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "a0=0x82000010 a1=0xffff0000 a2=0x4632c000 a3=0x2 a4=0x5 a5=0x0 a6=0x0 a7=0x0\n"
    data = _cli_json("decode", *result.stdout.split())
    assert data["name"] == SIP
    assert data["fields"] == {"region_pa": 0xFFFF00004632C000, "mode": 2, "region_flags": 5, "region_size": 0}
    assert data["values"]["region_flags"] == "LOCK|AUDIT"


def test_cli_two_extension_files(tmp_path):
    second = tmp_path / "second.toml"
    second.write_text('[[function]]\nname = "VENDOR_SIP_PING"\nid = 0x82000011\n')
    result = CliRunner().invoke(cli, ["functions", "--family", "extension", "--format", "json",
                                      "--abi-extension", str(GOOD), "--abi-extension", str(second)])
    assert result.exit_code == 0, result.stderr
    assert {f["name"] for f in json.loads(result.stdout)} == {*VENDOR_OPTEE, SIP, "VENDOR_SIP_PING"}


# --- malformed files ------------------------------------------------------------------------------------

def _fn(body: str, name: str = "VENDOR_X", fid: str = "0x82000020") -> str:
    return f'[[function]]\nname = "{name}"\nid = {fid}\n{body}\n'


MALFORMED = [
    pytest.param('[[function]\nname = "X"\n', "invalid TOML", id="invalid-toml"),
    pytest.param('[[function]]\nname = "X"\nid = 0x82000020\nid = 1\n', "invalid TOML", id="invalid-toml-dup-key"),
    pytest.param("[[function]]\nid = 0x82000020\n", "'name'", id="missing-name"),
    pytest.param('[[function]]\nname = "1st"\nid = 0x82000020\n', "'name'", id="name-not-identifier"),
    pytest.param('[[function]]\nname = "X"\n', "'id'", id="missing-id"),
    pytest.param(_fn("", fid="0x100000000"), "'id'", id="id-over-32-bits"),
    pytest.param(_fn("", fid="-1"), "'id'", id="id-negative"),
    pytest.param(_fn("", fid='"0x82000020"'), "'id'", id="id-string"),
    pytest.param(_fn("", fid="true"), "'id'", id="id-bool"),
    pytest.param(_fn("", name="VENDOR_X", fid="0xB200000F"), "replaces", id="id-clash-without-replaces"),
    pytest.param(_fn("replaces = false", fid="0xB200000F"), "replaces", id="id-clash-replaces-false"),
    pytest.param(_fn("[[function]]\nname = \"VENDOR_Y\"\nid = 0x82000020"), "0x82000020", id="id-twice-in-file"),
    pytest.param(_fn('call = [ { reg = "a8", name = "x" } ]'), ".reg", id="bad-reg-a8"),
    pytest.param(_fn('call = [ { reg = "x1", name = "x" } ]'), ".reg", id="bad-reg-x1"),
    pytest.param(_fn('call = [ { reg = "a1:a3", name = "x" } ]'), ".reg", id="bad-reg-pair-gap"),
    pytest.param(_fn('call = [ { name = "x" } ]'), ".reg", id="missing-reg"),
    pytest.param(_fn('call = [ { reg = "a1", name = "x" }, { reg = "a1", name = "y" } ]'), "a1 is given twice",
                 id="duplicate-reg"),
    pytest.param(_fn('call = [ { reg = "a1:a2", name = "x" }, { reg = "a2", name = "y" } ]'), "a2 is given twice",
                 id="reg-overlaps-pair"),
    pytest.param(_fn('returns = [ { reg = "a2", name = "x" }, { reg = "a2", name = "y" } ]'), "'returns'",
                 id="duplicate-reg-in-returns"),
    pytest.param(_fn('call = [ { reg = "a0", name = "x" } ]'), "a0 is the function ID", id="a0-in-call"),
    pytest.param(_fn('call = [ { reg = "a0:a1", name = "x" } ]'), "a0 is the function ID", id="a0-pair-in-call"),
    pytest.param(_fn('call = [ { reg = "a1", role = "ignored" } ]'), ".role", id="bad-role"),
    pytest.param(_fn('call = [ { reg = "a1", name = "x", width = 0 } ]'), ".width", id="width-0"),
    pytest.param(_fn('call = [ { reg = "a1", name = "x", width = 65 } ]'), ".width", id="width-65"),
    pytest.param(_fn('call = [ { reg = "a1", name = "x", width = "32" } ]'), ".width", id="width-string"),
    pytest.param(_fn('call = [ { reg = "a1", name = "x", width = true } ]'), ".width", id="width-bool"),
    pytest.param(_fn('returns = [ { reg = "a0", name = "status", names = "linux" } ]'), ".names",
                 id="names-unknown-table"),
    pytest.param(_fn('returns = [ { reg = "a0", name = "status", names = { ok = "OK" } } ]'), ".names.ok",
                 id="names-key-not-integer"),
    pytest.param(_fn('returns = [ { reg = "a0", name = "status", names = 5 } ]'), ".names", id="names-not-table"),
    pytest.param(_fn('returns = [ { reg = "a1", name = "f", flags = { A = 0 } } ]'), ".flags", id="flags-zero"),
    pytest.param(_fn('returns = [ { reg = "a1", name = "f", flags = [1, 2] } ]'), ".flags", id="flags-not-table"),
    pytest.param(_fn("colour = 1"), "'colour'", id="unknown-function-key"),
    pytest.param(_fn('call = [ { reg = "a1", name = "x", size = 4 } ]'), "'size'", id="unknown-register-key"),
    pytest.param('[vendor]\nname = "x"\n' + _fn(""), "'vendor'", id="unknown-top-level-key"),
    pytest.param('title = "x"\n', "'title'", id="unknown-top-level-only"),
    pytest.param("", "[[function]]", id="empty-file"),
    pytest.param('[function]\nname = "X"\nid = 1\n', "[[function]]", id="function-not-array"),
    pytest.param(_fn('call = [ { reg = "a1:a2", name = "pa", width = 32 } ]'), "width", id="pair-with-width"),
    pytest.param(_fn('call = [ { reg = "a1:a2", name = "pa", flags = { A = 1 } } ]'), "flags", id="pair-with-flags"),
    pytest.param(_fn('call = [ { reg = "a1:a2", name = "pa", names = "optee" } ]'), "names", id="pair-with-names"),
    pytest.param(_fn('call = "a1"'), "'call'", id="call-not-array"),
    pytest.param(_fn('call = [ "a1" ]'), "'call'", id="call-entry-not-table"),
    pytest.param(_fn('call = [ { reg = "a1", name = "x" }, { reg = "a2", name = "x" } ]'), "twice",
                 id="field-name-twice"),
    pytest.param(_fn('call = [ { reg = "a1", name = "1x" } ]'), ".name", id="field-name-not-identifier"),
    pytest.param(_fn('call = [ { reg = "a1", name = "x", doc = 5 } ]'), ".doc", id="doc-not-string"),
    pytest.param(_fn("summary = 5"), "'summary'", id="summary-not-string"),
    pytest.param(_fn("returns_by_status = 5"), "'returns_by_status'", id="returns-by-status-not-table"),
    pytest.param(_fn("[function.returns_by_status]\nok = []"), "returns_by_status.ok", id="status-not-integer"),
]


@pytest.mark.parametrize(("text", "needle"), MALFORMED)
def test_malformed_extension(tmp_path, text, needle):
    path = tmp_path / "vendor.toml"
    path.write_text(text)
    with pytest.raises(ExtensionError) as info:
        load_extension(path, get_profile())
    message = str(info.value)
    assert str(path) in message
    assert needle in message
    assert "\n" not in message


def test_malformed_entry_is_located(tmp_path):
    # the message names the entry and the register of the offending key
    path = tmp_path / "vendor.toml"
    path.write_text(_fn("") + _fn('call = [ { reg = "a1", name = "x" }, { reg = "a9", name = "y" } ]',
                                  name="VENDOR_Y", fid="0x82000021"))
    with pytest.raises(ExtensionError, match=r"function\[1\] \(VENDOR_Y\): key 'call'\[1\]\.reg"):
        load_extension(path, get_profile())


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ExtensionError, match="cannot read") as info:
        load_extension(tmp_path / "absent.toml", get_profile())
    assert str(tmp_path / "absent.toml") in str(info.value)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ExtensionError) as info:
        load_extension(binary, get_profile())
    assert str(binary) in str(info.value)


def test_replaces_allows_redefinition(tmp_path):
    path = tmp_path / "vendor.toml"
    path.write_text(_fn("replaces = true", fid="0xB200000F"))
    assert load_extension(path, get_profile()).by_id[0xB200000F].name == "VENDOR_X"


def test_parse_extension_names_where():
    with pytest.raises(ExtensionError, match=r"^<mem>: .*'id'"):
        parse_extension({"function": [{"name": "X", "id": "nope"}]}, get_profile(), "<mem>")


def test_cli_malformed_extension_is_one_line(tmp_path):
    path = tmp_path / "vendor.toml"
    path.write_text(_fn('call = [ { reg = "a0", name = "x" } ]'))
    result = CliRunner().invoke(cli, ["decode", "82000020", "--abi-extension", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert str(path) in line and "a0 is the function ID" in line


# --- regressions of bugs found in review -----------------------------------------------------------

def test_field_named_like_another_register(tmp_path):
    path = tmp_path / "vendor.toml"
    path.write_text(_fn('call = [ { reg = "a1", name = "a3" } ]'))
    with pytest.raises(ExtensionError) as info:
        load_extension(path, get_profile())
    assert str(path) in str(info.value) and "a3" in str(info.value)


def test_function_name_twice_in_file(tmp_path):
    path = tmp_path / "vendor.toml"
    path.write_text(_fn("") + _fn("", fid="0x82000021"))
    with pytest.raises(ExtensionError) as info:
        load_extension(path, get_profile())
    assert str(path) in str(info.value) and "VENDOR_X" in str(info.value)


def test_name_clash_needs_replaces(tmp_path):
    path = tmp_path / "vendor.toml"
    path.write_text(_fn("", name="OPTEE_SMC_CALL_WITH_ARG", fid="0x82000020"))
    with pytest.raises(ExtensionError) as info:
        load_extension(path, get_profile())
    assert str(path) in str(info.value) and "replaces" in str(info.value)
