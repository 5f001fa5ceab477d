"""The click CLI (``smcwire.cli.cli``): decode, encode, functions, caps and msg, their JSON shapes,
and the error contract (bad input: exit status 2, one line on stderr, nothing on stdout).

Expected values come from the project ABI reference abi.md (cited by section) and from the real QEMU
captures of its research corpus, traces/qemu (cited by file; see tests/data/README.md); none is copied from smcwire's own output.

click >= 8.2 (installed: 8.5.x) keeps stdout and stderr apart in ``CliRunner()`` by default
(``result.stdout`` / ``result.stderr``; the ``mix_stderr`` argument was removed in 8.2).
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import smcwire
from smcwire.cli import cli

DATA = Path(__file__).parent / "data"
EXTENSION = DATA / "extensions" / "realtek_vendor.toml"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(cli, list(args), input=input)


def ok(runner: CliRunner, *args: str, input: str | None = None) -> str:
    result = run(runner, *args, input=input)
    assert result.exception is None, result.stderr
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def ok_json(runner: CliRunner, *args: str, input: str | None = None):
    return json.loads(ok(runner, *args, "--format", "json", input=input))


def assert_input_error(result: Result, *needles: str) -> str:
    """Exit status 2, empty stdout, exactly one non-empty line on stderr, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    # an unhandled exception would be caught by CliRunner and reported with exit status 1
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), result.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


# --- decode ---------------------------------------------------------------------------------------

def test_decode_one_function_id(runner):
    data = ok_json(runner, "decode", "32000004")
    # abi.md §2: OPTEE_SMC_CALL_WITH_ARG = 0x32000004, yielding, SMC32, owner 50
    assert data["id"] == 0x32000004
    assert data["name"] == "OPTEE_SMC_CALL_WITH_ARG"
    assert data["fast"] is False
    assert data["smc64"] is False
    assert data["owner"] == 50
    assert data["number"] == 4
    assert data["registers"] == [0x32000004]


def test_decode_json_interface_keys(runner):
    data = ok_json(runner, "decode", "32000004")
    assert {"id", "name", "fast", "smc64", "owner", "fields"} <= set(data)
    assert "return" not in data
    with_return = ok_json(runner, "decode", "32000004", "0", "4632c000", "--return", "0")
    assert {"id", "name", "fast", "smc64", "owner", "fields", "return"} <= set(with_return)
    assert {"status", "status_name", "fields"} <= set(with_return["return"])


def test_decode_eight_positional_values(runner):
    # dbg-kretprobe/ftrace.txt: a0=0x32000013 a1=0xffff5bf3 a2=0x45cc9800 a3=0x0 ... a7=0x0
    data = ok_json(runner, "decode", "32000013", "ffff5bf3", "45cc9800", "0", "0", "0", "0", "0")
    assert data["name"] == "OPTEE_SMC_CALL_WITH_REGD_ARG"
    assert data["registers"] == [0x32000013, 0xFFFF5BF3, 0x45CC9800, 0, 0, 0, 0, 0]
    # abi.md §2.1: a1/a2 = upper/lower half of the 64-bit cookie, a3 = offset
    assert data["fields"]["cookie"] == 0xFFFF5BF345CC9800
    assert data["fields"]["offset"] == 0
    assert data["notes"] == []


def test_decode_kprobe_pairs(runner):
    # dbg-kretprobe/ftrace.txt kprobe line (without its res= argument)
    line = "a0=0x32000012 a1=0x0 a2=0x45cde000 a3=0x0 a4=0x0 a5=0x0 a6=0x0 a7=0x0"
    data = ok_json(runner, "decode", *line.split())
    assert data["name"] == "OPTEE_SMC_CALL_WITH_RPC_ARG"
    assert data["registers"] == [0x32000012, 0, 0x45CDE000, 0, 0, 0, 0, 0]
    assert data["fields"]["arg_pa"] == 0x45CDE000
    # the whole line as one argument, as pasted
    assert ok_json(runner, "decode", line)["fields"] == data["fields"]


@pytest.mark.parametrize("prefix", ["a", "x", "w", "r", "A", "X"])
def test_decode_register_name_prefixes(runner, prefix):
    data = ok_json(runner, "decode", f"{prefix}0=0x32000012", f"{prefix}2=4632c000")
    assert data["name"] == "OPTEE_SMC_CALL_WITH_RPC_ARG"
    assert data["registers"] == [0x32000012, 0, 0x4632C000]  # a1 not given: 0
    assert data["fields"]["arg_pa"] == 0x4632C000


def test_decode_pairs_in_any_order(runner):
    data = ok_json(runner, "decode", "a3=1", "a0=32000003")
    assert data["name"] == "OPTEE_SMC_CALL_RETURN_FROM_RPC"
    assert data["registers"] == [0x32000003, 0, 0, 1]
    assert data["fields"]["thread_id"] == 1


def test_decode_x_register_keeps_64_bits(runner):
    # abi.md §1: an AArch64 OP-TEE may return a full 64-bit x-register
    data = ok_json(runner, "decode", "x0=0xb2000001", "--return", "x0=4", "x1=a", "x2=0x753afbbee1682f5d")
    assert data["return"]["fields"]["build_id"] == 0x753AFBBEE1682F5D


@pytest.mark.parametrize("value", ["32000004", "0x32000004", "0X32000004"])
def test_decode_hex_with_and_without_prefix(runner, value):
    data = ok_json(runner, "decode", value, "0", "4632c000")
    assert data["id"] == 0x32000004
    assert data["fields"]["arg_pa"] == 0x4632C000


def test_decode_decimal(runner):
    # 838860804 = 0x32000004, 1177731072 = 0x4632c000
    data = ok_json(runner, "decode", "--decimal", "838860804", "0", "1177731072")
    assert data["name"] == "OPTEE_SMC_CALL_WITH_ARG"
    assert data["fields"]["arg_pa"] == 0x4632C000
    # the same digits read as decimal are another number
    assert ok_json(runner, "decode", "--decimal", "32000004")["id"] == 32000004


def test_decode_decimal_rejects_hex_digits(runner):
    assert_input_error(run(runner, "decode", "--decimal", "b2000009"), "decimal")


def test_decode_ftrace_tuple(runner):
    # dbg-probe/ftrace.txt: optee_invoke_fn_begin: param=... (32000012, 0, 4632c000, 0, 0, 0, 0, 0)
    data = ok_json(runner, "decode", "(32000012, 0, 4632c000, 0, 0, 0, 0, 0)")
    assert data["name"] == "OPTEE_SMC_CALL_WITH_RPC_ARG"
    assert data["registers"] == [0x32000012, 0, 0x4632C000, 0, 0, 0, 0, 0]
    assert data["fields"]["arg_pa"] == 0x4632C000
    assert data["fields"]["cache_settings"] == 0


def test_decode_return_one_value(runner):
    # dbg-probe/ftrace.txt: ... (32000013, ffff5bf3, 46328480, ...) ret (0, 0, 0, 0); only a0 given
    data = ok_json(runner, "decode", "32000013", "ffff5bf3", "46328480", "--return", "0")
    ret = data["return"]
    assert ret["status"] == 0
    assert ret["status_name"] == "OPTEE_SMC_RETURN_OK"
    assert ret["is_rpc"] is False
    assert ret["registers"] == [0]


def test_decode_return_rpc_request(runner):
    # dbg-probe/ftrace.txt lines 13-14: (32000012, 0, 4632c000, ...) ret (ffff0004, 0, 0, 0)
    data = ok_json(runner, "decode", "(32000012, 0, 4632c000, 0, 0, 0, 0, 0)", "--return", "ffff0004", "0", "0", "0")
    ret = data["return"]
    assert ret["is_rpc"] is True
    # abi.md §4: 0xFFFF0004 = OPTEE_SMC_RPC_VAL(OPTEE_SMC_RPC_FUNC_FOREIGN_INTR); a3 = thread id
    assert ret["rpc"] == "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR"
    assert ret["fields"]["thread_id"] == 0


def test_decode_return_alloc_request(runner):
    # legacy-os-kretprobe/ftrace.txt line 97: r0=0xffff0000 r1=0xa0 (RPC ALLOC, a1 = size)
    data = ok_json(runner, "decode", "32000004", "0", "45e7a000", "--return", "ffff0000", "a0", "0", "0")
    assert data["return"]["rpc"] == "OPTEE_SMC_RPC_FUNC_ALLOC"
    assert data["return"]["fields"]["size"] == 0xA0


def test_decode_exchange_capabilities_return(runner):
    # dbg-kretprobe/ftrace.txt: a0=0xb2000009 ... -> r0=0x0 r1=0xf5 r2=0x42 r3=0x4
    data = ok_json(runner, "decode", "b2000009", "--return", "0", "f5", "42", "4")
    assert data["name"] == "OPTEE_SMC_EXCHANGE_CAPABILITIES"
    ret = data["return"]
    assert ret["status"] == 0
    assert ret["status_name"] == "OPTEE_SMC_RETURN_OK"
    # abi.md §2.1: a1 = SEC caps, a2 = max notification value, a3[7:0] = RPC param count
    assert ret["fields"]["sec_caps"] == 0xF5
    assert ret["fields"]["max_notif_value"] == 0x42
    assert ret["fields"]["rpc_param_count"] == 4
    assert ret["notes"] == []


def test_decode_return_options_after_values(runner):
    # --format after the --return values still applies to the command
    out = ok(runner, "decode", "b2000009", "--return", "0", "f5", "42", "4", "--format", "json")
    assert json.loads(out)["return"]["fields"]["sec_caps"] == 0xF5


def test_decode_get_os_revision_keeps_build_id(runner):
    # dbg-kretprobe/ftrace.txt: a0=0xb2000001 -> r0=0x4 r1=0xa r2=0x753afbbee1682f5d r3=0x0
    # abi.md §2 (GET_OS_REVISION, corrected): the build id is the full 64-bit x2
    data = ok_json(runner, "decode", "b2000001", "--return", "4", "a", "753afbbee1682f5d", "0")
    assert data["name"] == "OPTEE_SMC_CALL_GET_OS_REVISION"
    fields = data["return"]["fields"]
    assert fields["major"] == 4
    assert fields["minor"] == 10
    assert fields["build_id"] == 0x753AFBBEE1682F5D


def test_decode_return_copied_from_kretprobe_line(runner):
    # dbg-kretprobe/ftrace.txt, entry and return lines copied verbatim (without res=)
    data = ok_json(runner, "decode", "a0=0xb2000001", "a1=0x0", "--return",
                   "r0=0x4", "r1=0xa", "r2=0x753afbbee1682f5d", "r3=0x0")
    assert data["return"]["fields"]["build_id"] == 0x753AFBBEE1682F5D


def test_decode_return_from_rpc_foreign_intr(runner):
    data = ok_json(runner, "decode", "a0=0x32000003", "a3=1", "--rpc", "FOREIGN_INTR")
    assert data["name"] == "OPTEE_SMC_CALL_RETURN_FROM_RPC"
    assert data["rpc"] == "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR"
    assert data["fields"]["thread_id"] == 1
    # abi.md §4: FOREIGN_INTR = 4, by number or by full name
    assert ok_json(runner, "decode", "32000003", "0", "0", "1", "--rpc", "4") == data
    assert ok_json(runner, "decode", "32000003", "0", "0", "1", "--rpc", "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR") == data


def test_decode_return_from_rpc_alloc_reply(runner):
    # legacy-os-kretprobe/ftrace.txt line 99, the answer to ALLOC:
    # (32000003, 0, 45eb9000, 0, ffff5bf3, 45e7a000, 0, 0)
    # abi.md §4: ALLOC reply a1/a2 = PA of the buffer, a3 = thread id, a4/a5 = cookie
    data = ok_json(runner, "decode", "(32000003, 0, 45eb9000, 0, ffff5bf3, 45e7a000, 0, 0)", "--rpc", "ALLOC")
    assert data["rpc"] == "OPTEE_SMC_RPC_FUNC_ALLOC"
    assert data["fields"]["buf_pa"] == 0x45EB9000
    assert data["fields"]["cookie"] == 0xFFFF5BF345E7A000
    assert data["fields"]["thread_id"] == 0


def test_decode_return_from_rpc_without_rpc_option(runner):
    # legacy-os-kretprobe/ftrace.txt line 103: the ALLOC cookie stays in a4/a5 (abi.md §2.1)
    data = ok_json(runner, "decode", "(32000003, ffff5bf3, 45e7a000, 0, ffff5bf3, 45e7a000, 0, 0)")
    assert data["name"] == "OPTEE_SMC_CALL_RETURN_FROM_RPC"
    assert data["rpc"] is None
    assert data["fields"]["thread_id"] == 0
    assert data["fields"]["cookie"] == 0xFFFF5BF345E7A000


def test_decode_unknown_id_mainline(runner):
    # abi.md §8: 0x32000014 is not a valid ID in mainline (function 20 is the fast GET_PROTMEM_CONFIG)
    data = ok_json(runner, "decode", "0x32000014")
    assert data["name"] is None
    assert data["id"] == 0x32000014
    assert any("unknown" in note.lower() for note in data["notes"])


def test_decode_unknown_id_in_sysinv_v1(runner):
    # abi.md §8 design (a): OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG = STD_CALL_VAL(20) = 0x32000014
    data = ok_json(runner, "decode", "0x32000014", "--profile", "sysinv-v1")
    assert data["name"] == "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG"
    assert not any("unknown" in note.lower() for note in data["notes"])


def test_decode_unknown_id_table(runner):
    out = ok(runner, "decode", "0x32000014")
    assert "unknown" in out.lower()
    assert "0x32000014" in out


def test_decode_table(runner):
    out = ok(runner, "decode", "b2000009", "--return", "0", "f5", "42", "4")
    assert "OPTEE_SMC_EXCHANGE_CAPABILITIES" in out
    assert "OPTEE_SMC_RETURN_OK" in out
    assert "sec_caps" in out and "0xf5" in out
    assert "RPMB_PROBE" in out


# --- encode ---------------------------------------------------------------------------------------

def test_encode_table(runner):
    out = ok(runner, "encode", "OPTEE_SMC_CALL_WITH_ARG", "arg_pa=0x4632c000")
    assert "0x32000004" in out
    assert "arg_pa" in out
    assert "0x4632c000" in out
    assert len([line for line in out.splitlines() if re.match(r"a[0-7]\s", line)]) == 8


def test_encode_json(runner):
    data = ok_json(runner, "encode", "OPTEE_SMC_CALL_WITH_ARG", "arg_pa=0x4632c000")
    assert list(data) == [f"a{i}" for i in range(8)]
    assert all(type(v) is int for v in data.values())
    # abi.md §2.1: a1 = upper, a2 = lower 32 bits of the PA
    assert data == {"a0": 0x32000004, "a1": 0, "a2": 0x4632C000, "a3": 0, "a4": 0, "a5": 0, "a6": 0, "a7": 0}


def test_encode_regs(runner):
    out = ok(runner, "encode", "OPTEE_SMC_CALL_WITH_REGD_ARG", "cookie=ffff5bf345cc9800", "offset=180",
             "--format", "regs")
    assert out.count("\n") == 1
    assert re.fullmatch(r"a0=0x[0-9a-f]+( a[1-7]=0x[0-9a-f]+){7}\n", out)
    # dbg-kretprobe/ftrace.txt: a0=0x32000013 a1=0xffff5bf3 a2=0x45cc9800
    assert out == "a0=0x32000013 a1=0xffff5bf3 a2=0x45cc9800 a3=0x180 a4=0x0 a5=0x0 a6=0x0 a7=0x0\n"


def test_encode_decimal(runner):
    data = ok_json(runner, "encode", "OPTEE_SMC_CALL_WITH_ARG", "arg_pa=1177731072", "--decimal")
    assert data["a2"] == 0x4632C000


def test_encode_register_by_name(runner):
    # a register that is not a field can be set by name to build a deliberately bad call
    data = ok_json(runner, "encode", "OPTEE_SMC_CALL_WITH_ARG", "a5=1")
    assert data["a5"] == 1
    assert "a5" in " ".join(ok_json(runner, "decode", *(f"a{i}={v:#x}" for i, v in
                                                          enumerate(data.values())))["notes"])


ROUND_TRIPS = [
    ("OPTEE_SMC_CALL_WITH_ARG", {"arg_pa": 0x4632C000}),
    ("OPTEE_SMC_CALL_WITH_RPC_ARG", {"arg_pa": 0x45CDE000, "cache_settings": 1}),
    ("OPTEE_SMC_CALL_WITH_REGD_ARG", {"cookie": 0xFFFF5BF345CC9800, "offset": 0x180}),
    ("OPTEE_SMC_EXCHANGE_CAPABILITIES", {"nsec_caps": 1}),
    ("OPTEE_SMC_VM_CREATED", {"guest_client_id": 2}),
    ("PSCI_0_2_FN64_CPU_ON", {"target_cpu": 1, "entry_point_address": 0x40080000}),
]


@pytest.mark.parametrize(("name", "fields"), ROUND_TRIPS, ids=[n for n, _ in ROUND_TRIPS])
def test_encode_decode_round_trip(runner, name, fields):
    regs = ok(runner, "encode", name, *(f"{k}={v:#x}" for k, v in fields.items()), "--format", "regs").split()
    data = ok_json(runner, "decode", *regs)
    assert data["name"] == name
    assert data["notes"] == []
    for key, value in fields.items():
        assert data["fields"][key] == value
    # fields not given encode as 0
    assert all(v == 0 for k, v in data["fields"].items() if k not in fields)


def test_encode_round_trip_pinned_ids(runner):
    # abi.md §2 and §11: the IDs the encoder puts in a0
    assert ok_json(runner, "encode", "OPTEE_SMC_CALL_WITH_REGD_ARG")["a0"] == 0x32000013
    assert ok_json(runner, "encode", "OPTEE_SMC_GET_THREAD_COUNT")["a0"] == 0xB200000F
    assert ok_json(runner, "encode", "OPTEE_SMC_CALLS_UID")["a0"] == 0xBF00FF01
    assert ok_json(runner, "encode", "PSCI_0_2_FN64_CPU_ON")["a0"] == 0xC4000003


def test_encode_return(runner):
    out = ok(runner, "encode", "OPTEE_SMC_EXCHANGE_CAPABILITIES", "--return", "status=0", "sec_caps=f5",
             "max_notif_value=42", "rpc_param_count=4", "--format", "regs")
    # dbg-kretprobe/ftrace.txt: r0=0x0 r1=0xf5 r2=0x42 r3=0x4
    assert out == "a0=0x0 a1=0xf5 a2=0x42 a3=0x4 a4=0x0 a5=0x0 a6=0x0 a7=0x0\n"
    values = [r.split("=")[1] for r in out.split()][:4]
    data = ok_json(runner, "decode", "b2000009", "--return", *values)
    assert data["return"]["fields"] == {"status": 0, "sec_caps": 0xF5, "max_notif_value": 0x42,
                                        "rpc_param_count": 4}


def test_encode_return_by_status(runner):
    # abi.md §2.1 (corrected): EXCHANGE_CAPABILITIES ENOTAVAIL (7) has a1 = the NSEC caps echoed, no a2/a3
    data = ok_json(runner, "encode", "OPTEE_SMC_EXCHANGE_CAPABILITIES", "--return", "status=7", "nsec_caps=2")
    assert (data["a0"], data["a1"]) == (7, 2)
    assert_input_error(run(runner, "encode", "OPTEE_SMC_EXCHANGE_CAPABILITIES", "--return", "status=7",
                           "max_notif_value=1"), "max_notif_value")


def test_encode_return_rpc_alloc(runner):
    data = ok_json(runner, "encode", "OPTEE_SMC_CALL_WITH_ARG", "--return", "--rpc", "ALLOC", "size=a0",
                   "thread_id=1")
    # abi.md §4: a0 = 0xFFFF0000 | OPTEE_SMC_RPC_FUNC_ALLOC (0), a1 = size, a3 = thread id
    assert data == {"a0": 0xFFFF0000, "a1": 0xA0, "a2": 0, "a3": 1, "a4": 0, "a5": 0, "a6": 0, "a7": 0}
    decoded = ok_json(runner, "decode", "32000004", "--return", *(f"{v:x}" for v in list(data.values())[:4]))
    assert decoded["return"]["rpc"] == "OPTEE_SMC_RPC_FUNC_ALLOC"
    assert decoded["return"]["fields"] == {"size": 0xA0, "thread_id": 1}


def test_encode_return_from_rpc_alloc_reply_round_trip(runner):
    out = ok(runner, "encode", "OPTEE_SMC_CALL_RETURN_FROM_RPC", "--rpc", "ALLOC", "buf_pa=45eb9000",
             "cookie=ffff5bf345e7a000", "--format", "regs")
    # legacy-os-kretprobe/ftrace.txt line 100: a0=0x32000003 a1=0x0 a2=0x45eb9000 a3=0x0 a4=0xffff5bf3 a5=0x45e7a000
    assert out == "a0=0x32000003 a1=0x0 a2=0x45eb9000 a3=0x0 a4=0xffff5bf3 a5=0x45e7a000 a6=0x0 a7=0x0\n"
    data = ok_json(runner, "decode", *out.split(), "--rpc", "ALLOC")
    assert data["fields"]["buf_pa"] == 0x45EB9000
    assert data["fields"]["cookie"] == 0xFFFF5BF345E7A000


# encode --return in the default table format used to crash (TypeError: the bare function ID was passed
# to Decoder.ret); fixed in the source while these tests were written.
@pytest.mark.parametrize("args", [
    ("OPTEE_SMC_EXCHANGE_CAPABILITIES", "--return", "status=0", "sec_caps=f5", "max_notif_value=42",
     "rpc_param_count=4"),
    ("OPTEE_SMC_CALL_WITH_ARG", "--return", "--rpc", "ALLOC", "size=a0", "thread_id=1"),
], ids=["exchange-caps", "rpc-alloc"])
def test_encode_return_table(runner, args):
    out = ok(runner, "encode", *args)
    assert len([line for line in out.splitlines() if re.match(r"a[0-7]\s", line)]) == 8
    assert ("sec_caps" in out and "0xf5" in out) if "sec_caps=f5" in args else ("size" in out and "0xa0" in out)


def test_encode_rpc_only_for_return_from_rpc(runner):
    assert_input_error(run(runner, "encode", "OPTEE_SMC_CALL_WITH_ARG", "--rpc", "ALLOC"), "rpc")


def test_encode_unknown_field(runner):
    line = assert_input_error(run(runner, "encode", "OPTEE_SMC_CALL_WITH_ARG", "nope=1"), "nope")
    assert "arg_pa" in line  # the message lists the fields


@pytest.mark.parametrize(("args", "needle"), [
    (("OPTEE_SMC_CALL_WITH_ARG", "cache_settings=100000000"), "32 bits"),  # a 32-bit register
    (("OPTEE_SMC_EXCHANGE_CAPABILITIES", "--return", "rpc_param_count=100"), "8 bits"),  # a3[7:0]
    (("OPTEE_SMC_CALL_WITH_ARG", "arg_pa=10000000000000000"), "64 bits"),
], ids=["reg-32", "bits-8", "pair-64"])
def test_encode_value_out_of_range(runner, args, needle):
    assert_input_error(run(runner, "encode", *args), needle)


# --- functions ------------------------------------------------------------------------------------

# abi.md §2, copied from its table: every OP-TEE normal-world function and its ID
OPTEE_FUNCTIONS = {
    "OPTEE_SMC_CALLS_COUNT": 0xBF00FF00,
    "OPTEE_SMC_CALLS_UID": 0xBF00FF01,
    "OPTEE_SMC_CALLS_REVISION": 0xBF00FF03,
    "OPTEE_SMC_CALL_GET_OS_UUID": 0xB2000000,
    "OPTEE_SMC_CALL_GET_OS_REVISION": 0xB2000001,
    "OPTEE_SMC_CALL_LOAD_IMAGE": 0xBF000002,
    "OPTEE_SMC_CALL_RETURN_FROM_RPC": 0x32000003,
    "OPTEE_SMC_CALL_WITH_ARG": 0x32000004,
    "OPTEE_SMC_GET_SHM_CONFIG": 0xB2000007,
    "OPTEE_SMC_L2CC_MUTEX": 0xB2000008,
    "OPTEE_SMC_EXCHANGE_CAPABILITIES": 0xB2000009,
    "OPTEE_SMC_DISABLE_SHM_CACHE": 0xB200000A,
    "OPTEE_SMC_ENABLE_SHM_CACHE": 0xB200000B,
    "OPTEE_SMC_BOOT_SECONDARY": 0xB200000C,
    "OPTEE_SMC_VM_CREATED": 0xB200000D,
    "OPTEE_SMC_VM_DESTROYED": 0xB200000E,
    "OPTEE_SMC_GET_THREAD_COUNT": 0xB200000F,
    "OPTEE_SMC_ENABLE_ASYNC_NOTIF": 0xB2000010,
    "OPTEE_SMC_GET_ASYNC_NOTIF_VALUE": 0xB2000011,
    "OPTEE_SMC_CALL_WITH_RPC_ARG": 0x32000012,
    "OPTEE_SMC_CALL_WITH_REGD_ARG": 0x32000013,
    "OPTEE_SMC_GET_PROTMEM_CONFIG": 0xB2000014,
}
OWNER_63 = {"OPTEE_SMC_CALLS_COUNT", "OPTEE_SMC_CALLS_UID", "OPTEE_SMC_CALLS_REVISION", "OPTEE_SMC_CALL_LOAD_IMAGE"}
YIELDING = {"OPTEE_SMC_CALL_RETURN_FROM_RPC", "OPTEE_SMC_CALL_WITH_ARG", "OPTEE_SMC_CALL_WITH_RPC_ARG",
            "OPTEE_SMC_CALL_WITH_REGD_ARG"}


def test_functions_json_shape(runner):
    data = ok_json(runner, "functions")
    assert isinstance(data, list) and data
    for f in data:
        assert {"name", "id", "fast", "smc64", "owner"} <= set(f)
        # abi.md §1: bit 31 fast, bit 30 SMC64, bits 29:24 owner
        assert f["fast"] == bool(f["id"] >> 31)
        assert f["smc64"] == bool(f["id"] >> 30 & 1)
        assert f["owner"] == f["id"] >> 24 & 0x3F
    assert len({f["id"] for f in data}) == len(data)


def test_functions_has_every_optee_function_of_abi_md(runner):
    by_name = {f["name"]: f for f in ok_json(runner, "functions")}
    for name, fid in OPTEE_FUNCTIONS.items():
        assert name in by_name, name
        f = by_name[name]
        assert f["id"] == fid, name
        assert f["smc64"] is False, name  # abi.md §2: all are SMC32
        assert f["fast"] is (name not in YIELDING), name
        assert f["owner"] == (63 if name in OWNER_63 else 50), name
    # abi.md §8: no system-invocation IDs in mainline
    ids = {f["id"] for f in by_name.values()}
    assert not ids & {0x32000014, 0x32000015, 0x32000016}


def test_functions_family(runner):
    optee = ok_json(runner, "functions", "--family", "OP-TEE")
    assert {f["family"] for f in optee} == {"OP-TEE"}
    assert {f["name"] for f in optee} == set(OPTEE_FUNCTIONS)
    psci = ok_json(runner, "functions", "--family", "PSCI")
    assert {f["family"] for f in psci} == {"PSCI"}
    # abi.md §11: PSCI_VERSION 0x84000000, CPU_ON SMC64 0xC4000003, SYSTEM_OFF 0x84000008
    assert {0x84000000, 0xC4000003, 0x84000008} <= {f["id"] for f in psci}
    smccc = ok_json(runner, "functions", "--family", "SMCCC")
    # abi.md §1: SMCCC arch IDs
    assert {0x80000000, 0x80000001, 0x80000002, 0x80008000, 0x80007FFF, 0x80003FFF} <= {f["id"] for f in smccc}


def test_functions_sysinv_v2(runner):
    by_id = {f["id"]: f for f in ok_json(runner, "functions", "--profile", "sysinv-v2")}
    # abi.md §8 design (c): 20 = CALL_SYSTEM_WITH_REGD_ARG, 21/22 RESERVE/UNRESERVE, all STD_CALL_VAL
    assert by_id[0x32000014]["name"] == "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG"
    assert by_id[0x32000015]["name"] == "OPTEE_SMC_CALL_RESERVE_SYS_THREAD"
    assert by_id[0x32000016]["name"] == "OPTEE_SMC_CALL_UNRESERVE_SYS_THREAD"
    assert by_id[0x32000015]["fast"] is False and by_id[0x32000016]["fast"] is False


def test_functions_rpc(runner):
    data = ok_json(runner, "functions", "--rpc")
    # abi.md §4: ALLOC 0, FREE 2, FOREIGN_INTR 4, CMD 5; a0 = 0xFFFF0000 | func
    assert {r["name"]: (r["func"], r["a0"]) for r in data} == {
        "OPTEE_SMC_RPC_FUNC_ALLOC": (0, 0xFFFF0000),
        "OPTEE_SMC_RPC_FUNC_FREE": (2, 0xFFFF0002),
        "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR": (4, 0xFFFF0004),
        "OPTEE_SMC_RPC_FUNC_CMD": (5, 0xFFFF0005),
    }
    table = ok(runner, "functions", "--rpc")
    assert "0xffff0004" in table and "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR" in table


def test_functions_markdown(runner):
    out = ok(runner, "functions", "--family", "OP-TEE", "--format", "markdown")
    lines = out.splitlines()
    assert lines[0].startswith("| name")
    assert re.fullmatch(r"\|[-:|]+\|", lines[1])
    rows = [line for line in lines[2:] if line.startswith("|")]
    assert len(rows) == len(OPTEE_FUNCTIONS)
    row = next(line for line in rows if line.startswith("| OPTEE_SMC_CALL_WITH_ARG "))
    assert "0x32000004" in row


def test_functions_table(runner):
    out = ok(runner, "functions")
    for name, fid in OPTEE_FUNCTIONS.items():
        assert name in out
        assert f"{fid:#010x}" in out


# --- caps -----------------------------------------------------------------------------------------

def test_caps_f5(runner):
    data = ok_json(runner, "caps", "f5")
    assert data["value"] == 0xF5
    assert data["nsec"] is False
    # abi.md §5 (trace): 0xf5 = RESERVED_SHM|DYNAMIC_SHM|MEMREF_NULL|ASYNC_NOTIF|RPC_ARG|RPMB_PROBE,
    # full names from the table of §5, lowest bit first
    assert data["flags"] == [
        "OPTEE_SMC_SEC_CAP_HAVE_RESERVED_SHM",
        "OPTEE_SMC_SEC_CAP_DYNAMIC_SHM",
        "OPTEE_SMC_SEC_CAP_MEMREF_NULL",
        "OPTEE_SMC_SEC_CAP_ASYNC_NOTIF",
        "OPTEE_SMC_SEC_CAP_RPC_ARG",
        "OPTEE_SMC_SEC_CAP_RPMB_PROBE",
    ]
    assert data["unknown"] == 0
    assert data["masked"] == 0


def test_caps_legacy_0x15(runner):
    # abi.md §5: OP-TEE 3.16 returns 0x15 (no RPC_ARG)
    assert ok_json(runner, "caps", "0x15")["flags"] == [
        "OPTEE_SMC_SEC_CAP_HAVE_RESERVED_SHM", "OPTEE_SMC_SEC_CAP_DYNAMIC_SHM", "OPTEE_SMC_SEC_CAP_MEMREF_NULL"]


def test_caps_bit7_by_profile(runner):
    # abi.md §8: BIT(7) is RPMB_PROBE in mainline, SYSTEM_THREAD in the 2023 proposals
    assert ok_json(runner, "caps", "0x80")["flags"] == ["OPTEE_SMC_SEC_CAP_RPMB_PROBE"]
    assert ok_json(runner, "caps", "0x80", "--profile", "sysinv-v1")["flags"] == ["OPTEE_SMC_SEC_CAP_SYSTEM_THREAD"]


def test_caps_nsec(runner):
    data = ok_json(runner, "caps", "1", "--nsec")
    assert data["nsec"] is True
    assert data["flags"] == ["OPTEE_SMC_NSEC_CAP_UNIPROCESSOR"]  # abi.md §5: the only NSEC cap
    assert data["unknown"] == 0


def test_caps_unknown_bits(runner):
    # abi.md §5: SEC caps end at bit 9 (DYNAMIC_PROTMEM)
    data = ok_json(runner, "caps", "0xc04")
    assert data["flags"] == ["OPTEE_SMC_SEC_CAP_DYNAMIC_SHM"]
    assert data["unknown"] == 0xC00
    out = ok(runner, "caps", "0xc04")
    assert "0xc00" in out and "not defined" in out
    # NSEC: any bit but BIT(0) is unknown (and makes optee_os answer ENOTAVAIL, §7.2 S12)
    nsec = ok_json(runner, "caps", "3", "--nsec")
    assert nsec["flags"] == ["OPTEE_SMC_NSEC_CAP_UNIPROCESSOR"]
    assert nsec["unknown"] == 2


def test_caps_xen_guest_masking(runner):
    # abi.md §7.4 X4: SEC caps masked to 0x17, then RESERVED_SHM cleared -> only 0x16 gets through
    data = ok_json(runner, "caps", "f5", "--profile", "xen-guest")
    assert data["masked"] == 0xF5 & ~0x16
    assert "OPTEE_SMC_SEC_CAP_DYNAMIC_SHM" in data["flags"]
    assert ok_json(runner, "caps", "0x16", "--profile", "xen-guest")["masked"] == 0
    # NSEC caps masked to UNIPROCESSOR
    assert ok_json(runner, "caps", "1", "--nsec", "--profile", "xen-guest")["masked"] == 0
    assert "masked" in ok(runner, "caps", "f5", "--profile", "xen-guest")


def test_caps_decimal_and_table(runner):
    assert ok_json(runner, "caps", "--decimal", "245")["value"] == 0xF5
    out = ok(runner, "caps", "f5")
    set_rows = [line for line in out.splitlines() if line.rstrip().endswith("yes")]
    assert len(set_rows) == 6
    assert any("OPTEE_SMC_SEC_CAP_RPMB_PROBE" in line for line in set_rows)


# --- msg ------------------------------------------------------------------------------------------

def _msg_bytes() -> bytes:
    """An INVOKE_COMMAND optee_msg_arg with one VALUE_INPUT param (layout of abi.md §6)."""
    header = struct.pack("<8I", 1, 0x10, 5, 0, 0, 0, 0, 1)  # cmd func session cancel_id pad ret ret_origin n
    param = struct.pack("<4Q", 1, 0x2A, 7, 0)  # attr = OPTEE_MSG_ATTR_TYPE_VALUE_INPUT, a, b, c
    return header + param


def _hexdump_c(data: bytes) -> str:
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk[:8]) + "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        lines.append(f"{off:08x}  {hexes}  |{''.join(chr(b) if 32 <= b < 127 else '.' for b in chunk)}|")
    lines.append(f"{len(data):08x}")
    return "\n".join(lines) + "\n"


def _check_msg(data: dict) -> None:
    assert data["cmd"] == 1
    assert data["cmd_name"] == "OPTEE_MSG_CMD_INVOKE_COMMAND"  # abi.md §6: INVOKE_COMMAND 1
    assert (data["func"], data["session"], data["num_params"]) == (0x10, 5, 1)
    (param,) = data["params"]
    assert param["type_name"] == "OPTEE_MSG_ATTR_TYPE_VALUE_INPUT"
    assert param["fields"] == {"a": 0x2A, "b": 7, "c": 0}


def test_msg_hex_string(runner):
    _check_msg(ok_json(runner, "msg", _msg_bytes().hex()))


def test_msg_table(runner):
    out = ok(runner, "msg", _msg_bytes().hex())
    assert "OPTEE_MSG_CMD_INVOKE_COMMAND" in out
    assert "VALUE_INPUT" in out
    assert "a=0x2a" in out


def test_msg_rpc(runner):
    # abi.md §4: RPC command 1 is OPTEE_RPC_CMD_RPMB
    assert ok_json(runner, "msg", _msg_bytes().hex(), "--rpc")["cmd_name"] == "OPTEE_RPC_CMD_RPMB"


def test_msg_from_file(runner, tmp_path):
    path = tmp_path / "arg.hex"
    path.write_text(_hexdump_c(_msg_bytes()))
    _check_msg(ok_json(runner, "msg", f"@{path}"))
    assert "OPTEE_MSG_CMD_INVOKE_COMMAND" in ok(runner, "msg", f"@{path}")


def test_msg_from_stdin(runner):
    _check_msg(ok_json(runner, "msg", "@-", input=_msg_bytes().hex() + "\n"))


# --- bad input: exit 2, one line on stderr, nothing on stdout --------------------------------------

BAD_EXTENSION = 'name = "unterminated\n'


BAD_INPUT = [
    pytest.param(("decode", "zz"), "zz", id="decode-not-hex"),
    pytest.param(("decode", "1", "2", "3", "4", "5", "6", "7", "8", "9"), "9", id="decode-nine-registers"),
    pytest.param(("decode", "10000000000000000"), "64 bits", id="decode-over-64-bits"),
    pytest.param(("decode", "32000004", "1ffffffffffffffff"), "64 bits", id="decode-a1-over-64-bits"),
    pytest.param(("decode", "w0=100000000"), "32 bits", id="decode-w0-over-32-bits"),
    pytest.param(("decode", "a1=3", "a2=4"), "a0", id="decode-pairs-without-a0"),
    pytest.param(("decode", "a0=32000004", "a0=32000004"), "twice", id="decode-register-twice"),
    pytest.param(("decode", "32000004", "a1=3"), "mix", id="decode-mixed-positional-and-pairs"),
    pytest.param(("decode", "32000004", "--return"), "--return", id="decode-return-empty"),
    pytest.param(("decode", "32000004", "--return", "0", "--return", "1"), "--return", id="decode-return-twice"),
    pytest.param(("decode", "32000004", "--return", "zz"), "zz", id="decode-return-not-hex"),
    pytest.param(("decode", "32000004", "--bogus"), "--bogus", id="decode-unknown-option"),
    pytest.param(("decode", "32000003", "--rpc", "BOGUS"), "BOGUS", id="decode-unknown-rpc"),
    pytest.param(("decode", "0x"), "0x", id="decode-empty-hex"),
    pytest.param(("decode", ","), "", id="decode-no-values"),
    pytest.param(("encode", "OPTEE_SMC_NOPE"), "OPTEE_SMC_NOPE", id="encode-unknown-function"),
    pytest.param(("encode", "OPTEE_SMC_CALL_WITH_ARG", "nope=1"), "nope", id="encode-unknown-field"),
    pytest.param(("encode", "OPTEE_SMC_CALL_WITH_ARG", "arg_pa"), "arg_pa", id="encode-no-equals"),
    pytest.param(("encode", "OPTEE_SMC_CALL_WITH_ARG", "arg_pa=zz"), "zz", id="encode-bad-value"),
    pytest.param(("encode", "OPTEE_SMC_CALL_WITH_ARG", "cache_settings=100000000"), "32 bits", id="encode-range"),
    pytest.param(("encode", "OPTEE_SMC_EXCHANGE_CAPABILITIES", "--return", "--rpc", "ALLOC"), "RPC",
                 id="encode-rpc-for-fast-call"),
    pytest.param(("encode", "OPTEE_SMC_CALL_WITH_ARG", "--return", "--rpc", "BOGUS"), "BOGUS",
                 id="encode-unknown-rpc"),
    pytest.param(("caps", "100000000"), "32 bits", id="caps-over-32-bits"),
    pytest.param(("caps", "zz"), "zz", id="caps-not-hex"),
    pytest.param(("msg", "zz"), "zz", id="msg-bad-hex"),
    pytest.param(("msg", "0102"), "32", id="msg-short-header"),
    # num_params = 1 but no parameter bytes: OPTEE_MSG_GET_ARG_SIZE(1) = 64
    pytest.param(("msg", struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 1).hex()), "64", id="msg-short-params"),
    # abi.md §6: OPTEE_MSG_MAX_NUM_PARAMS = 127
    pytest.param(("msg", struct.pack("<8I", 1, 0, 0, 0, 0, 0, 0, 128).hex()), "127", id="msg-too-many-params"),
    pytest.param(("msg", "@/nonexistent/arg.hex"), "/nonexistent/arg.hex", id="msg-missing-file"),
    pytest.param(("decode", "32000004", "--abi-extension", "/nonexistent/x.toml"), "/nonexistent/x.toml",
                 id="extension-missing-file"),
    # usage errors produced by click itself
    pytest.param(("encode", "OPTEE_SMC_CALL_WITH_ARG", "--bogus"), "--bogus", id="encode-unknown-option"),
    pytest.param(("caps", "--bogus", "1"), "--bogus", id="caps-unknown-option"),
    pytest.param(("functions", "--bogus"), "--bogus", id="functions-unknown-option"),
    pytest.param(("msg", "00", "--bogus"), "--bogus", id="msg-unknown-option"),
    pytest.param(("decode", "32000004", "--profile", "nope"), "nope", id="decode-bad-profile"),
    pytest.param(("functions", "--profile", "nope"), "nope", id="functions-bad-profile"),
    pytest.param(("caps", "f5", "--profile", "nope"), "nope", id="caps-bad-profile"),
    pytest.param(("encode", "OPTEE_SMC_CALL_WITH_ARG", "--profile", "nope"), "nope", id="encode-bad-profile"),
    pytest.param(("decode", "32000004", "--format", "xml"), "xml", id="decode-bad-format"),
    pytest.param(("decode",), "REGISTERS", id="decode-missing-argument"),
    pytest.param(("decoder", "32000004"), "decoder", id="unknown-command"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_INPUT)
def test_bad_input(runner, args, needle):
    assert_input_error(run(runner, *args), needle)


@pytest.mark.parametrize("command", [
    ("decode", "32000004"), ("encode", "OPTEE_SMC_CALL_WITH_ARG"), ("functions",), ("caps", "f5"),
])
def test_bad_extension_file(runner, tmp_path, command):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_EXTENSION)
    line = assert_input_error(run(runner, *command, "--abi-extension", str(path)))
    assert str(path) in line
    assert "invalid TOML" in line


# --- the program --------------------------------------------------------------------------------------

def _python_m(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smcwire", *args], check=False, capture_output=True, text=True, timeout=120)


def test_python_m_help():
    proc = _python_m("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("decode", "encode", "functions", "caps", "msg"):
        assert command in proc.stdout
    assert proc.stderr == ""


def test_python_m_version():
    proc = _python_m("--version")
    assert proc.returncode == 0, proc.stderr
    assert smcwire.__version__ in proc.stdout
    assert "smcwire" in proc.stdout


def test_python_m_bad_input_has_no_traceback():
    proc = _python_m("decode", "zz")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_python_m_decode():
    proc = _python_m("decode", "b2000009", "--return", "0", "f5", "42", "4", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["return"]["fields"]["sec_caps"] == 0xF5


def test_version_option(runner):
    out = ok(runner, "--version")
    assert smcwire.__version__ in out


@pytest.mark.parametrize("command", ["decode", "encode", "functions", "caps", "msg"])
def test_command_help(runner, command):
    out = ok(runner, command, "--help")
    assert out.startswith("Usage:")
    assert "--format" in out
