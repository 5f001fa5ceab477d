"""Reading progress, the progress line, and following a growing file (``smcwire watch``'s input)."""

import io
import json
import lzma
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from smcwire.abi.profiles import get_profile
from smcwire.cli.progress import MIN_BYTES, ProgressLine
from smcwire.pipeline import Analysis, Capture, captures
from smcwire.render.flows import flow_json, flow_jsonl
from smcwire.sources import io as sio
from smcwire.sources.io import Input
from smcwire.sources.prefetch import PrefetchReader
from smcwire.sources.reader import Progress, TraceReader

ROOT = Path(__file__).parent.parent
KRET_XZ = ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz"
PROBE = ROOT / "traces/qemu-dbg-probe/ftrace.txt"


def test_progress_follows_the_file_on_disk(monkeypatch):
    monkeypatch.setattr(sio, "MAX_LINE", 4096)  # small chunks: many batches
    reader = TraceReader([str(KRET_XZ), str(PROBE)])
    size = KRET_XZ.stat().st_size + PROBE.stat().st_size
    assert reader.progress.total_bytes == size
    seen = []
    events = 0
    for batch in reader.batches():
        events += len(batch)
        seen.append((reader.progress.done_bytes, reader.progress.lines, reader.progress.events))
        assert reader.progress.events == events
    assert len(seen) > 10 and seen == sorted(seen)  # never goes back
    assert seen[-1] == (size, sum(s.lines for s in reader.stats), events)
    prefetched = PrefetchReader(reader.inputs)
    assert sum(len(b) for b in prefetched.batches()) == events
    assert prefetched.progress == reader.progress


def test_no_total_for_stdin():
    assert TraceReader([Input("<stdin>", None)]).progress.total_bytes is None


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_draws_throttled_and_erases():
    now = [0.0]
    out = Terminal()
    line = ProgressLine("trace.txt", out, clock=lambda: now[0])
    line(Progress(MIN_BYTES - 1, 100, 10, 5))  # a small input: no line
    assert out.getvalue() == ""
    total = 100 << 20
    now[0] = 1.0
    line(Progress(total, total // 4, 1000, 50_000))
    first = out.getvalue()
    assert first.startswith("\rtrace.txt [######..................]  25% 26.2/104.9 MB, 50,000 events/s")
    now[0] = 1.1  # within INTERVAL: not redrawn
    line(Progress(total, total // 2, 2000, 100_000))
    assert out.getvalue() == first
    now[0] = 2.0
    line(Progress(total, total, 4000, 200_000))
    assert "100% 104.9/104.9 MB, 100,000 events/s" in out.getvalue()
    line.close()
    assert out.getvalue().endswith("\r" + " " * len(out.getvalue().split("\r")[-2]) + "\r")
    assert ProgressLine.for_terminal("x", quiet=True) is None


def test_following_a_growing_file_gives_the_flows_of_the_whole_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sio, "FOLLOW_POLL", 0.02)
    data = lzma.decompress(KRET_XZ.read_bytes())
    target = tmp_path / "growing.txt"
    target.write_bytes(b"")
    stop = threading.Event()

    def append():  # in pieces that cut lines in the middle, as a writer's buffer does
        with target.open("ab") as f:
            for start in range(0, len(data), 7001):
                f.write(data[start:start + 7001])
                f.flush()
                time.sleep(0.005)
        time.sleep(0.1)
        stop.set()

    writer = threading.Thread(target=append)
    writer.start()
    followed = Analysis(Capture(str(target), (Input(str(target), target, until=stop),)), get_profile())
    live = [flow_jsonl(f) for f in followed.flows()]
    writer.join()
    whole = Analysis(captures([str(target)])[0], get_profile(), prefetch=False)
    assert live == [flow_jsonl(f) for f in whole.flows()]
    assert len(live) == 28 and followed.findings == whole.findings
    assert followed.files[0].lines == whole.files[0].lines == data.count(b"\n")


def _watch(target: Path) -> "subprocess.Popen[str]":
    return subprocess.Popen([sys.executable, "-m", "smcwire", "watch", str(target), "--format", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _until_flows(proc: "subprocess.Popen[str]", count: int) -> list[dict]:
    """Read flows from a live ``watch`` until ``count`` came (each is printed as it completes)."""
    flows = []
    while len(flows) < count:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        flows.append(json.loads(line))
    return flows


def _rest(proc: "subprocess.Popen[str]") -> tuple[str, str]:
    """What a stopped ``watch`` printed after the lines already read (read through the same file
    objects: ``communicate`` would miss what their buffers hold)."""
    proc.wait(timeout=30)
    return proc.stdout.read(), proc.stderr.read()


def test_watch_prints_flows_as_a_file_grows_and_stops_on_ctrl_c(tmp_path):
    data = lzma.decompress(KRET_XZ.read_bytes())
    target = tmp_path / "live.txt"
    target.write_bytes(data[: len(data) // 2])
    proc = _watch(target)
    try:
        first = _until_flows(proc, 5)  # the first half's flows, while the file stays open for more
        with target.open("ab") as f:
            f.write(data[len(data) // 2:])
        rest = _until_flows(proc, 20)
        proc.send_signal(signal.SIGINT)
        out, err = _rest(proc)
    finally:
        proc.kill()
    assert proc.returncode == 0
    live = first + rest + [json.loads(x) for x in out.splitlines()]
    whole = Analysis(captures([str(target)])[0], get_profile(), prefetch=False)
    assert live == [json.loads(flow_jsonl(f)) for f in whole.flows()]
    assert f"== {target} (profile mainline)" in err and "1083 lines" in err


def test_watch_reads_a_pipe_and_stops_on_ctrl_c_while_it_is_idle(tmp_path):
    fifo = tmp_path / "trace_pipe"
    os.mkfifo(fifo)
    proc = _watch(fifo)
    writer = os.open(fifo, os.O_WRONLY)  # stays open: the pipe never ends, as trace_pipe does
    try:
        os.write(writer, PROBE.read_bytes())
        flows = _until_flows(proc, 3)
        time.sleep(0.5)  # nothing more comes: watch waits in select
        proc.send_signal(signal.SIGINT)
        out, err = _rest(proc)
    finally:
        os.close(writer)
        proc.kill()
    assert proc.returncode == 0
    live = flows + [json.loads(x) for x in out.splitlines()]
    whole = Analysis(captures([str(PROBE)])[0], get_profile(), input_format="ftrace", prefetch=False)
    fields = ("function", "a0", "first_line", "last_line", "start", "end", "thread", "result", "incomplete")
    assert [[f[k] for k in fields] for f in live] == [[f[k] for k in fields] for f in map(flow_json, whole.flows())]
    assert f"{fifo}: ftrace, " in err  # the summary: a pipe is read as ftrace, not sniffed


def test_watch_without_tracefs_says_so():
    from click.testing import CliRunner

    from smcwire.cli import cli

    result = CliRunner().invoke(cli, ["watch", "/no/such/trace.txt"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "Error: /no/such/trace.txt: no such file or directory\n"


def test_watch_starts_at_once_and_survives_a_rewrite(tmp_path, monkeypatch):
    """A followed file is told by its first lines (no waiting for 64), and a file rewritten from its
    start (truncated, as `cmd > live.txt` run again does) is read again from its start (the line
    numbers go on counting the lines read)."""
    monkeypatch.setattr(sio, "FOLLOW_POLL", 0.02)
    lines = lzma.decompress(KRET_XZ.read_bytes()).split(b"\n")
    events = [line for line in lines if line and not line.startswith(b"#")]  # 13-14 CALLS_UID, 15-16 OS_REVISION
    target = tmp_path / "live.txt"
    target.write_bytes(b"\n".join(events[:2]) + b"\n")  # one SMC: two lines
    stop = threading.Event()
    followed = Analysis(Capture(str(target), (Input(str(target), target, until=stop),)), get_profile())
    flows = followed.flows()
    assert next(flows).first_line == 1  # at once
    target.write_bytes(b"")  # rewritten: truncated, as `cmd > live.txt` does, then written again
    time.sleep(0.2)
    with target.open("ab") as f:
        f.write(b"\n".join(events[2:4]) + b"\n")
    second = next(flows)
    # read again from the start; line numbers go on counting the lines read (3 is the 1st line again)
    assert (second.first_line, second.function) == (3, "OPTEE_SMC_CALL_GET_OS_REVISION")
    stop.set()
    list(flows)


def test_watch_refuses_what_cannot_grow_line_by_line():
    from click.testing import CliRunner

    from smcwire.cli import cli

    result = CliRunner().invoke(cli, ["watch", str(KRET_XZ)])
    assert result.exit_code == 2 and "cannot be followed" in result.stderr and result.stdout == ""
