"""The trace commands through click: parse, regs, tracing-setup (interfaces of README)."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from smcwire.cli import cli

ROOT = Path(__file__).parent.parent
PROBE = str(ROOT / "traces/qemu-dbg-probe/ftrace.txt")  # 46 lines, 17 begins + 17 ends (traces/README.md)
KRETPROBE = str(ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz")
CONSOLE = str(ROOT / "tests/data/consoles/qemu-rel-probe-uart0-normal.log.xz")
CRASH = str(ROOT / "tests/data/consoles/tfa-docs-firmware-design-bl31-crash-dump.log")


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_parse_jsonl_interface():
    result = run("parse", PROBE, "--format", "jsonl")
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 34
    first = events[0]  # line 13: init-1 [001] 1.766597: optee_invoke_fn_begin: param=… (32000012, 0, 4632c000, …)
    assert {k: first[k] for k in ("kind", "file", "line", "ts", "cpu", "pid", "task")} == {
        "kind": "smc_call", "file": PROBE, "line": 13, "ts": 1_766_597_000, "cpu": 1, "pid": 1, "task": "init"}
    assert first["regs"] == {"a0": 0x32000012, "a1": 0, "a2": 0x4632C000, "a3": 0, "a4": 0, "a5": 0, "a6": 0, "a7": 0}
    assert events[1]["kind"] == "smc_return" and events[1]["regs"] == {"a0": 0xFFFF0004, "a1": 0, "a2": 0, "a3": 0}
    assert "smc_call 17, smc_return 17" in result.stderr  # the accounting goes to stderr


def test_parse_summary_json_interface():
    result = run("parse", "--summary", "--format", "json", PROBE, KRETPROBE, CONSOLE)
    assert result.exit_code == 0
    probe, kret, console = json.loads(result.stdout)
    assert probe == {**probe, "file": PROBE, "lines": 46, "events": {"smc_call": 17, "smc_return": 17},
                     "foreign": 12, "malformed": 0, "lost_markers": 0}
    assert kret["compression"] == "xz" and kret["events"] == {"smc_call": 534, "smc_return": 534}
    assert console["format"] == "console"
    for s in (probe, kret, console):
        assert s["lines"] == s["event_lines"] + s["foreign"] + s["malformed"]
    # a serial capture interleaving TF-A, kernel and ftrace lines: every family is found in one pass
    assert {"tfa_message", "boot_milestone", "driver_message", "smc_call", "smc_return"} <= set(console["events"])


def test_parse_table_names_the_functions():
    out = run("parse", PROBE).stdout.splitlines()
    assert out[0].startswith(f"{PROBE}:13  smc_call  1.766597  init-1 [001] 00000000e8dc2c91  "
                             "OPTEE_SMC_CALL_WITH_RPC_ARG (32000012, 0, 4632c000")


def test_parse_kind_filter_and_stdin():
    result = run("parse", "-", "--format", "jsonl", "--kind", "smc_return", input=Path(PROBE).read_bytes())
    kinds = {json.loads(line)["kind"] for line in result.stdout.splitlines()}
    assert result.exit_code == 0 and kinds == {"smc_return"} and len(result.stdout.splitlines()) == 17


def test_parse_strict_and_malformed_diagnostics(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("            init-1       [001] .....     1.766597: optee_invoke_fn_begin: param=1 (1, 2)\n")
    lenient = run("parse", str(bad), "--input-format", "ftrace")
    assert lenient.exit_code == 0
    assert f"malformed: {bad}:1: optee_invoke_fn_begin: 2 arguments, expected 8" in lenient.stderr
    assert run("parse", str(bad), "--strict").exit_code == 1
    assert run("parse", PROBE, "--strict").exit_code == 0


@pytest.mark.parametrize("args, needle", [
    (("parse", "/nonexistent/trace.txt"), "/nonexistent/trace.txt: no such file or directory"),
    (("parse", PROBE, "--input-format", "bogus"), "bogus"),
    (("regs", "/nonexistent/dump.txt"), "/nonexistent/dump.txt"),
    (("tracing-setup", "--arch", "x86"), "x86"),
])
def test_bad_input(args, needle):
    result = run(*args)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and needle in result.stderr


def test_corrupt_compressed_file_is_one_line(tmp_path):
    bad = tmp_path / "cut.xz"
    bad.write_bytes(Path(KRETPROBE).read_bytes()[:300])
    result = run("parse", str(bad))
    assert result.exit_code == 2 and "cut.xz: cannot read" in result.stderr and "Traceback" not in result.stderr


def test_regs_json_interface():
    result = run("regs", CRASH, "--format", "json")
    assert result.exit_code == 0
    (dump,) = json.loads(result.stdout)
    # tfa-docs sample: x0 = 0x000000002a4a0000, x1..x7 = 1..7
    assert dump["file"] == CRASH and dump["line"] == 1 and dump["id"] == 0x2A4A0000
    assert dump["registers"] == [0x2A4A0000, 1, 2, 3, 4, 5, 6, 7]
    assert dump["took"] == ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"] and dump["arch"] == "aarch64"
    assert "EL3" in dump["explanation"] and {"name", "fast", "smc64", "owner", "fields"} <= set(dump)


def test_regs_decodes_trace_smc_entries():
    result = run("regs", KRETPROBE, "--format", "json")
    sets = json.loads(result.stdout)
    assert len(sets) == 534 and sets[0]["name"] == "OPTEE_SMC_CALLS_UID"


def test_tracing_setup_matches_the_capture_commands():
    # traces/README.md: the kprobe definitions typed on the Linux 6.1 arm64 target of the shipped capture
    typed = re.findall(r"^(echo '[pr]:smcw/.*)$", (ROOT / "traces/README.md").read_text(), re.M)
    out = run("tracing-setup").stdout
    assert len(typed) == 2 and all(cmd in out for cmd in typed)
    assert "echo 1 > events/optee/enable" in out
    arm32 = run("tracing-setup", "--arch", "arm32").stdout
    assert "%r0" in arm32 and "%x0" not in arm32


def test_parse_keeps_going_after_a_bad_file_and_exits_2(tmp_path):
    bad = tmp_path / "cut.xz"
    bad.write_bytes(Path(KRETPROBE).read_bytes()[:300])
    result = run("parse", "--summary", "--format", "json", str(bad), PROBE)
    assert result.exit_code == 2
    cut, probe = json.loads(result.stdout)
    assert cut["error"].startswith(f"{bad}: cannot read") and probe["events"] == {"smc_call": 17, "smc_return": 17}
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: {bad}: cannot read")


def test_parse_json_is_one_document_and_kind_is_checked():
    data = json.loads(run("parse", PROBE, "--format", "json").stdout)
    assert len(data["events"]) == 34 and data["files"][0]["lines"] == 46
    bad = run("parse", PROBE, "--kind", "smc_cal")
    assert bad.exit_code == 2 and "smc_cal" in bad.stderr


def test_binary_input_is_noted(tmp_path):
    blob = tmp_path / "blob.bin"  # a trace.dat is read as one (test_tracedat.py)
    blob.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    result = run("parse", "--summary", str(blob))
    assert result.exit_code == 0 and "hold NUL bytes: binary data?" in result.stderr
