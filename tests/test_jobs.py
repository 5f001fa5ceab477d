"""``--jobs N``: captures analysed by worker processes print what one process prints, byte for
byte, in the order of the arguments; a capture that fails is reported and the others still run."""

import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from smcwire.cli import cli
from smcwire.pipeline.batch import map_ordered
from smcwire.render.report import FlowFilter, analyze_capture

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")

ROOT = Path(__file__).parent.parent
KRET = str(ROOT / "traces/qemu-dbg-kretprobe")  # a directory: ftrace.txt.xz and dmesg.txt
PROBE = str(ROOT / "traces/qemu-dbg-probe/ftrace.txt")
NOBL32 = str(ROOT / "traces/qemu-misconf-nobl32")  # one error finding (SMC070): check exits 1
ETHREAD = str(ROOT / "tests/data/rules/dbg-xtest-ftrace-ethread.txt.xz")  # info findings at the capture's end
NODYNSHM = str(ROOT / "tests/data/rules/nodynshm-lite-ftrace-head.txt.xz")
MISSING = str(ROOT / "traces/no-such-capture.txt")


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    """ftrace.txt.xz of the kretprobe capture cut to 3000 bytes: its first 418 lines decompress."""
    path = tmp_path_factory.mktemp("jobs") / "cut.txt.xz"
    path.write_bytes((Path(KRET) / "ftrace.txt.xz").read_bytes()[:3000])
    return str(path)


@pytest.fixture(scope="module")
def mixed(cut):
    """Good captures with a missing file (first: the JSON documents start with the next) and a
    corrupt .xz among them."""
    return [MISSING, KRET, PROBE, cut, NOBL32, ETHREAD, NODYNSHM]


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.stdout, result.stderr, result.exit_code


COMMANDS = [
    ("analyze",), ("analyze", "--format", "json"), ("analyze", "--format", "jsonl"),
    ("analyze", "--function", "CALL_WITH_REGD_ARG", "--format", "json"),
    ("check",), ("check", "--format", "json"), ("check", "--format", "jsonl"),
    ("stats",), ("stats", "--format", "json"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_same_bytes_and_status_with_any_number_of_jobs(command, mixed, cut):
    one = run(*command, *mixed, "--jobs", "1")
    for jobs in (2, 3):
        assert run(*command, *mixed, "--jobs", jobs) == one, jobs
    stdout, stderr, status = one
    assert status == 2
    # one line, naming both failures in the order of the arguments, after all the results
    assert stderr.splitlines()[-1] == (f"Error: {MISSING}: no such file or directory; {cut}: cannot read: Compressed "
                                       "file ended before the end-of-stream marker was reached (after line 418)")
    assert MISSING not in stdout
    if command[-1] == "json" and command[0] != "check":
        data = json.loads(stdout)
        names = [c["capture"] for c in (data["captures"] if command[0] == "analyze" else data)]
        assert names == [KRET, PROBE, cut, NOBL32, ETHREAD, NODYNSHM]


@pytest.mark.parametrize(("command", "status"), [("analyze", 0), ("check", 1), ("stats", 0)])
def test_exit_status_without_failures(command, status):
    good = [KRET, PROBE, NOBL32, ETHREAD, NODYNSHM]
    one = run(command, *good, "--jobs", "1")
    assert one[2] == status and one[1] == ""
    assert run(command, *good, "--jobs", "2") == one


def test_check_json_merges_the_captures_in_order(mixed, cut):
    data = json.loads(run("check", *mixed, "--format", "json", "--jobs", "2")[0])
    assert [c["capture"] for c in data["summary"]["captures"]] == [KRET, PROBE, cut, NOBL32, ETHREAD, NODYNSHM]
    assert data["summary"]["by_rule"]["SMC070"] == 1 and data["findings"][0]["rule"] == "SMC001"  # cut's first
    assert data["summary"]["captures"][2]["files"][0]["lines"] == 418


def test_only_failures():
    stdout, stderr, status = run("check", MISSING, MISSING + ".xz", "--jobs", "2")
    assert (stdout, status) == ("", 2)
    assert stderr == f"Error: {MISSING}: no such file or directory; {MISSING}.xz: no such file or directory\n"


def test_bad_options_fail_before_any_capture_is_read(mixed):
    for args in (("--select", "SMC999"), ("--input-format", "bogus")):
        stdout, stderr, status = run("check", *mixed, *args, "--jobs", "2")
        assert (stdout, status) == ("", 2) and stderr.count("\n") == 1 and args[1] in stderr
    assert run("check", KRET, "--jobs", "0")[2] == 2


def test_stdin_among_the_captures_is_read_here():
    text = Path(PROBE).read_text()
    result = CliRunner().invoke(cli, ["analyze", "-", NOBL32, "--format", "jsonl", "--jobs", "2"], input=text)
    alone = CliRunner().invoke(cli, ["analyze", PROBE, "--format", "jsonl"])
    assert result.exit_code == 0
    assert result.stdout.startswith(alone.stdout.replace(PROBE, "<stdin>"))


def test_the_command_line_with_real_output(mixed):
    """``python -m smcwire``: stdout block-buffered to a pipe, workers forked after the JSON head is written."""
    def cli_run(jobs):
        return subprocess.run([sys.executable, "-m", "smcwire", "analyze", *mixed, "--format", "json", "--jobs", jobs],
                              capture_output=True, cwd=ROOT, check=False)
    one, two = cli_run("1"), cli_run("2")
    assert (two.stdout, two.stderr, two.returncode) == (one.stdout, one.stderr, one.returncode)
    assert one.returncode == 2 and len(json.loads(one.stdout)["captures"]) == 6


def _children(pid):
    """The pids of the processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def _gone(pid):
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_stops_the_workers():
    """Ctrl-C at a terminal reaches the whole process group: the workers ignore it, the parent
    terminates them and exits as click does on Ctrl-C."""
    argv = [sys.executable, "-m", "smcwire", "check", *[ETHREAD] * 400, "--format", "jsonl", "--jobs", "2"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        proc.stdout.readline()  # the first capture's findings: the workers are running
        workers = _children(proc.pid)
        assert len(workers) >= 2
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 1 and stderr.decode().strip() == "Aborted!"
    deadline = time.monotonic() + 10
    while not all(map(_gone, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(_gone, workers))


def test_report_is_plain_data(cut):
    report = analyze_capture(KRET, flows="jsonl", stats=True)
    assert json.loads(json.dumps(report)) == report == pickle.loads(pickle.dumps(report))
    assert report["capture"] == KRET and report["error"] is None
    assert len(report["flows"]) == 28 and json.loads(report["flows"][0])["function"] == "OPTEE_SMC_CALLS_UID"
    assert report["stats"]["flows"] == 28 and report["summary"]["peak_in_flight"] == 1
    regd = analyze_capture(KRET, flows="table", flow_filter=FlowFilter(function="CALL_WITH_REGD_ARG"))
    assert len(regd["flows"]) == 15 and all("OPTEE_SMC_CALL_WITH_REGD_ARG" in f for f in regd["flows"])
    missing = analyze_capture(MISSING)
    assert missing == {"capture": MISSING, "error": f"{MISSING}: no such file or directory", "summary": None,
                       "findings": [], "final_findings": 0, "flows": None, "stats": None}
    cut_report = analyze_capture(cut)
    assert cut_report["error"] is None and "cannot read" in cut_report["summary"]["files"][0]["error"]
    ethread = analyze_capture(ETHREAD)
    assert ethread["final_findings"] >= 1 and ethread["findings"][-1]["rule"] == "SMC061"


def test_bad_options_raise():
    for kwargs in ({"select": ("SMC999",)}, {"input_format": "bogus"}, {"profile": "bogus"}):
        with pytest.raises((ValueError, KeyError)):
            analyze_capture(KRET, **kwargs)


def _slow_reversed(n):
    """Later items finish first."""
    time.sleep(0.05 * (5 - n))
    return n * n


def _fails_at_two(n):
    if n == 2:
        raise ValueError("two")
    return n


def _first_fast(n):
    time.sleep(0 if n == 0 else 60)
    return n


def test_map_ordered_keeps_the_order():
    assert list(map_ordered(_slow_reversed, range(6), 3)) == [n * n for n in range(6)]
    assert list(map_ordered(_slow_reversed, range(6), 1)) == [n * n for n in range(6)]


def test_map_ordered_raises_at_the_item():
    results = map_ordered(_fails_at_two, range(5), 2)
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(ValueError, match="two"):
        next(results)


def test_map_ordered_closed_early_ends_the_workers():
    t0 = time.monotonic()
    results = map_ordered(_first_fast, range(4), 2)
    assert next(results) == 0
    results.close()
    assert time.monotonic() - t0 < 20
