"""The analyzer commands through click on the shipped real captures (traces/README.md)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from smcwire.cli import cli
from smcwire.rules.catalog import RULES

ROOT = Path(__file__).parent.parent
KRET = str(ROOT / "traces/qemu-dbg-kretprobe")  # Linux 6.1 + OP-TEE 4.10: ftrace (tracepoints + kprobes), dmesg
NOBL32 = str(ROOT / "traces/qemu-misconf-nobl32")  # TF-A with opteed but no BL32: ftrace, dmesg, TF-A console
PROBE = str(ROOT / "traces/qemu-dbg-probe/ftrace.txt")


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_analyze_json_interface():
    result = run("analyze", KRET, "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["schema"] == 1
    (capture,) = data["captures"]
    flows = capture["flows"]
    assert len(flows) == 28  # 534 SMC entries: 8 fast calls and 20 yielding calls with their RPCs
    first = flows[0]
    for key in ("file", "first_line", "last_line", "function", "a0", "start", "end", "duration", "task", "cpu",
                "thread", "rpcs", "result", "findings"):
        assert key in first
    # ftrace.txt line 13-14: the kprobe CALLS_UID at 1.521082 and its kretprobe result at 1.523259
    assert (first["function"], first["a0"], first["first_line"], first["last_line"]) == (
        "OPTEE_SMC_CALLS_UID", 0xBF00FF01, 13, 14)
    assert (first["start"], first["end"], first["task"], first["cpu"]) == (1_521_082_000, 1_523_259_000, "init", [0])
    call = next(f for f in flows if f["function"] == "OPTEE_SMC_CALL_WITH_RPC_ARG")
    assert call["result"] == "OPTEE_SMC_RETURN_OK" and call["thread"] == 0
    assert call["rpcs"][0]["function"] == "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR" and call["rpcs"][0]["line"] == 28
    assert capture["findings"] == [] and capture["summary"]["peak_in_flight"] == 1


def test_analyze_jsonl_and_filters():
    lines = run("analyze", KRET, "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 28
    regd = run("analyze", KRET, "--format", "jsonl", "--function", "CALL_WITH_REGD_ARG").stdout.splitlines()
    assert len(regd) == 15 and all(json.loads(x)["function"] == "OPTEE_SMC_CALL_WITH_REGD_ARG" for x in regd)
    one = run("analyze", KRET, "--flow", "7").stdout
    assert one.startswith("#7 ") and "#8 " not in one


def test_check_finds_no_optee_and_gates_ci():
    result = run("check", NOBL32, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    (finding,) = data["findings"]
    # ftrace.txt line 13: CALLS_UID; line 14: r0=0xffffffffffffffff (SMC_UNK)
    assert (finding["rule"], finding["severity"], finding["line"]) == ("SMC070", "error", 13)
    assert finding["file"].endswith("qemu-misconf-nobl32/ftrace.txt")
    assert "tfa-console.log:43" in finding["message"] and "dmesg.txt:254" in finding["message"]
    assert data["summary"]["by_severity"] == {"error": 1} and data["summary"]["by_rule"] == {"SMC070": 1}
    assert all({"rule", "missing"} <= set(n) for n in data["summary"]["not_run"])
    assert run("check", NOBL32, "--ignore", "SMC070").exit_code == 0
    assert run("check", NOBL32, "--select", "SMC001").exit_code == 0
    assert run("check", KRET).exit_code == 0


def test_check_bad_usage():
    result = run("check", NOBL32, "--select", "SMC999")
    assert result.exit_code == 2 and "SMC999" in result.stderr and result.stdout == ""
    result = run("check", "/nonexistent/trace")
    assert result.exit_code == 2 and "/nonexistent/trace" in result.stderr


def test_explain_json_interface():
    result = run("explain", NOBL32, "--format", "json")
    features = {f["feature"]: f for f in json.loads(result.stdout)}
    assert list(features) == ["driver_probe", "dynamic_shm", "reserved_shm", "rpc_arg", "async_notif",
                              "thread_count", "system_thread_reservation", "virtualization"]
    probe = features["driver_probe"]
    assert probe["active"] is False and "no OP-TEE behind the monitor" in probe["reason"]
    assert {(Path(e["file"]).name, e["line"]) for e in probe["evidence"]} >= {("ftrace.txt", 14),
                                                                              ("tfa-console.log", 43)}
    kret = {f["feature"]: f for f in json.loads(run("explain", KRET, "--format", "json").stdout)}
    assert kret["rpc_arg"]["active"] is True and kret["rpc_arg"]["value"] == 4  # a3 of EXCHANGE_CAPABILITIES
    assert kret["system_thread_reservation"]["active"] is False  # Linux 6.1 never asks GET_THREAD_COUNT


def test_stats_json():
    (stats,) = json.loads(run("stats", KRET, "--format", "json").stdout)
    assert stats["version"] == 1 and stats["flows"] == 28 and stats["smcs"] == 271
    assert stats["functions"]["OPTEE_SMC_CALL_WITH_REGD_ARG"]["calls"] == 15
    assert stats["rpcs"]["total"] == 243 and stats["ethread_limit"]["answers"] == 0


def test_rules_catalog():
    data = json.loads(run("rules", "--format", "json").stdout)
    assert [r["id"] for r in data] == [r.id for r in RULES]
    assert all(r["source"] and r["severity"] in ("error", "warning", "info") for r in data)
    assert "SMC070" in run("rules").stdout


@pytest.mark.parametrize("capture", sorted(str(p) for p in (ROOT / "traces").iterdir() if p.is_dir()))
def test_flows_match_events_one_to_one(capture):
    """Every SMC event read is in exactly one flow step (twins as `also`), none invented."""
    from smcwire.abi.profiles import get_profile
    from smcwire.pipeline import Analysis, captures

    analysis = Analysis(captures([capture])[0], get_profile())
    flows = list(analysis.flows())
    in_flows = sum((s.call is not None) + (s.ret is not None) + len(s.also) for f in flows for s in f.steps)
    read = sum(s.events.get("smc_call", 0) + s.events.get("smc_return", 0) for s in analysis.files)
    assert in_flows == read
    assert all(f.incomplete is None for f in flows)


def _check(tmp_path, lines):
    trace = tmp_path / "trace.txt"
    trace.write_text("\n".join(lines) + "\n")
    return json.loads(run("check", str(trace), "--format", "json").stdout)["findings"]


def test_lines_missing_mid_trace_are_errors_not_artefacts(tmp_path):
    lines = (ROOT / "traces/qemu-dbg-probe/ftrace.txt").read_text().splitlines()
    # line 16 (the end of the resume at line 15) removed: init-1 goes on making calls, so it is missing
    (found,) = _check(tmp_path, lines[:15] + lines[16:])
    assert (found["rule"], found["severity"], found["line"]) == ("SMC001", "error", 15)
    # line 15 (the resume's begin) removed: its end at line 15 still answers the call begun at line 13
    (found,) = _check(tmp_path, lines[:14] + lines[15:])
    assert (found["rule"], found["severity"], found["line"]) == ("SMC002", "error", 15)


def test_a_return_probe_stands_in_for_a_missing_tracepoint_end(tmp_path):
    import lzma

    lines = lzma.decompress((ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz").read_bytes()).decode().splitlines()
    assert "optee_invoke_fn_end" in lines[43] and "optee_smccc_smc_ret" in lines[42]
    assert _check(tmp_path, lines[:43] + lines[44:]) == []  # line 44 removed; the kretprobe at line 43 remains


def test_analyze_json_of_several_captures_streams_one_document():
    result = run("analyze", KRET, NOBL32, "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [c["capture"] for c in data["captures"]] == [KRET, NOBL32]
    jsonl = [json.loads(x) for x in run("analyze", KRET, NOBL32, "--format", "jsonl").stdout.splitlines()]
    assert [f for c in data["captures"] for f in c["flows"]] == jsonl
    assert any(f["rule"] == "SMC070" for f in data["captures"][1]["findings"])


@pytest.mark.parametrize("command", ["analyze", "check", "stats", "explain"])
def test_a_file_cut_short_is_reported_and_exits_2(tmp_path, command):
    """ftrace.txt.xz of the kretprobe capture cut to 3000 bytes: its first 418 lines decompress."""
    cut = tmp_path / "cut.txt.xz"
    cut.write_bytes((Path(KRET) / "ftrace.txt.xz").read_bytes()[:3000])
    result = run(command, str(cut), "--format", "json")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert f"{cut}: cannot read: Compressed file ended" in result.stderr and "(after line 418)" in result.stderr
    json.loads(result.stdout)  # what could be read is still reported, as a whole document
    if command == "check":
        files = json.loads(result.stdout)["summary"]["captures"][0]["files"]
        assert files[0]["lines"] == 418 and "cannot read" in files[0]["error"]


def test_analyze_perfetto_to_a_file_is_the_writers_timeline(tmp_path):
    from smcwire.abi.profiles import get_profile
    from smcwire.pipeline import Analysis, captures
    from smcwire.render.perfetto import PerfettoWriter

    out = tmp_path / "trace.json"
    result = run("analyze", KRET, "--format", "perfetto", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    writer = PerfettoWriter()
    analysis = Analysis(captures([KRET])[0], get_profile(), prefetch=False)
    writer.add_capture(analysis.capture.name, list(analysis.flows()), analysis.findings, analysis.state)
    import io

    expected = io.StringIO()
    writer.write(expected)
    assert out.read_text() == expected.getvalue()
    events = json.loads(out.read_text())["traceEvents"]
    slices = [e for e in events if e["ph"] == "X" and e["name"] == "OPTEE_SMC_CALLS_UID"]
    assert slices and slices[0]["ts"] == 1521082.0  # ftrace.txt line 13, 1.521082 s


def test_analyze_mermaid_draws_the_flows_with_findings_end_of_capture_ones_too():
    result = run("analyze", NOBL32, "--format", "mermaid")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "```mermaid" and lines[1] == "sequenceDiagram" and lines[-1] == "```"
    # SMC070 is made when the capture ends (the UID answer, the driver's and TF-A's words combined)
    assert any(line.strip().startswith("Note over") and "SMC070 error" in line for line in lines)
    one = run("analyze", KRET, "--format", "mermaid", "--flow", "7").stdout
    assert "#35;7 CALL_WITH_RPC_ARG at 1.531639 s" in one and "RPC FOREIGN_INTR" in one and "#35;8 " not in one


def test_analyze_output_file_holds_what_stdout_would(tmp_path):
    out = tmp_path / "flows.jsonl"
    assert run("analyze", KRET, "--format", "jsonl", "-o", str(out), "--quiet").exit_code == 0
    assert out.read_text() == run("analyze", KRET, "--format", "jsonl").stdout


def test_output_file_is_replaced_only_by_a_whole_output(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("earlier results\n")
    result = run("analyze", str(tmp_path / "missing.txt"), "-o", str(out), "--format", "json")
    assert result.exit_code == 2 and out.read_text() == "earlier results\n"  # nothing analysed: kept
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind
    result = run("analyze", PROBE, str(tmp_path / "missing.txt"), "-o", str(out), "--format", "json")
    assert result.exit_code == 2 and json.loads(out.read_text())["captures"][0]["capture"] == PROBE
    bad = run("analyze", PROBE, "-o", str(tmp_path / "no-such-dir" / "x.json"))
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "cannot write" in bad.stderr
    trace = tmp_path / "t.txt"
    trace.write_bytes(Path(PROBE).read_bytes())
    same = run("analyze", str(trace), "-o", str(trace))
    assert same.exit_code == 2 and "is also an input" in same.stderr and trace.read_bytes() == Path(PROBE).read_bytes()


def test_drawings_go_on_past_a_missing_capture(tmp_path):
    out = tmp_path / "p.json"
    result = run("analyze", KRET, str(tmp_path / "missing.txt"), "--format", "perfetto", "-o", str(out))
    assert result.exit_code == 2 and "missing.txt: no such file" in result.stderr
    assert any(e["ph"] == "X" for e in json.loads(out.read_text())["traceEvents"])


def test_mermaid_reads_a_pipe_once(tmp_path):
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = (Path(NOBL32) / "ftrace.txt").read_bytes()
    for args, shown in ((["--flow", "1"], "CALLS_UID"), ([], "no flow to show")):
        writer = threading.Thread(target=fifo.write_bytes, args=(data,))
        writer.start()
        result = run("analyze", str(fifo), "--format", "mermaid", *args)  # read once: no hang on a second open
        writer.join()
        # without filters, a pipe shows the flows with findings made as they completed (SMC070 is made
        # at the capture's end, which one pass cannot go back to)
        assert result.exit_code == 0 and shown in result.stdout
