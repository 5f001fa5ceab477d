"""Reading in a child process (``PrefetchReader``) gives what reading in this process gives."""

import io
import json
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

import smcwire.pipeline as pipeline
import smcwire.sources.prefetch as prefetch
from smcwire.abi.profiles import get_profile
from smcwire.pipeline import Analysis, captures
from smcwire.render.flows import flow_json
from smcwire.sources import io as sio
from smcwire.sources.io import Input, expand_inputs
from smcwire.sources.prefetch import PrefetchReader, ReaderProcessError, can_prefetch, prefetch_worthwhile
from smcwire.sources.reader import TraceReader

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")

ROOT = Path(__file__).parent.parent
DATA = ROOT / "tests/data"
KRET = ROOT / "traces/qemu-dbg-kretprobe"  # a directory capture: dmesg.txt and ftrace.txt.xz
NOBL32 = ROOT / "traces/qemu-misconf-nobl32"  # ftrace, dmesg and a CRLF TF-A console; one finding
REAL = [
    KRET, NOBL32, ROOT / "traces/qemu-dbg-probe/ftrace.txt",
    DATA / "legacy-os-kretprobe-ftrace.txt.xz",
    DATA / "explain/dbg-xtest-ftrace-10001-14000.txt.xz",
    DATA / "ftrace/trace-cmd-small-report-t.txt.xz",
    DATA / "consoles",  # kernel logs, TF-A and OP-TEE consoles, register dumps: every family of events
]


def both(names, input_format=None):
    """The events and reader of one in-process read and one prefetched read of the same inputs."""
    inputs = expand_inputs([str(n) for n in names])
    here, there = TraceReader(inputs, input_format), PrefetchReader(inputs, input_format)
    return list(here), here, list(there), there


def assert_same(here_events, here, there_events, there):
    assert there_events == here_events
    assert [type(e) for e in there_events] == [type(e) for e in here_events]
    assert there.stats == here.stats  # every FileStats field: lines, foreign, malformed, diagnostics, events, error…
    assert there.errors == here.errors
    assert there.inputs == here.inputs


@pytest.mark.parametrize("path", REAL, ids=lambda p: str(p.relative_to(ROOT)))
def test_same_events_and_stats(path):
    here_events, here, there_events, there = both([path])
    assert here_events  # the comparison means something
    assert_same(here_events, here, there_events, there)


def test_small_batches_across_files(monkeypatch):
    """Batches that end inside files and files with no events: the same order, every FileStats once."""
    monkeypatch.setattr(sio, "MAX_LINE", 4096)  # lines read in 4 KiB chunks: small batches; the forked child inherits it
    here_events, here, there_events, there = both([KRET, DATA / "consoles", NOBL32])
    assert len(here.stats) > 30 and any(s.event_lines == 0 for s in here.stats)
    assert_same(here_events, here, there_events, there)


def test_forced_format():
    assert_same(*both([NOBL32], input_format="ftrace"))


def test_file_stats_arrive_before_the_next_files_events(monkeypatch):
    monkeypatch.setattr(sio, "MAX_LINE", 4096)
    reader = PrefetchReader(expand_inputs([str(KRET), str(DATA / "consoles")]))
    final = TraceReader(reader.inputs)
    list(final)
    names = [s.file for s in final.stats]
    current = None
    for event in reader:
        if event.file != current:  # the files before this one are read: theirs final, its own not yet
            current = event.file
            assert reader.stats == final.stats[: names.index(current)]
    assert reader.stats == final.stats


def corrupt_xz(path: Path) -> None:
    """A real xz capture cut short: its first lines decompress, then the stream fails."""
    data = (KRET / "ftrace.txt.xz").read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])


def test_unreadable_file_next_to_good_ones(tmp_path):
    capture = tmp_path / "capture"
    capture.mkdir()
    corrupt_xz(capture / "a-ftrace.txt.xz")
    (capture / "b-dmesg.txt").write_bytes((KRET / "dmesg.txt").read_bytes())
    (capture / "c-ftrace.txt").write_bytes((ROOT / "traces/qemu-dbg-probe/ftrace.txt").read_bytes())
    here_events, here, there_events, there = both([capture])
    assert [s.error is not None for s in here.stats] == [True, False, False]
    assert "a-ftrace.txt.xz: cannot read" in here.errors[0] and here.stats[0].event_lines > 0
    assert_same(here_events, here, there_events, there)


def fail_after(monkeypatch, count, error):
    """Make every TraceReader raise ``error`` after ``count`` events of a file (in the child too)."""
    read = TraceReader.read

    def failing(self, inp):
        seen = 0
        for batch in read(self, inp):
            if seen + len(batch) > count:
                if count > seen:
                    yield batch[: count - seen]
                raise error
            seen += len(batch)
            yield batch

    monkeypatch.setattr(TraceReader, "read", failing)


def read_until_error(reader):
    events = []
    try:
        for event in reader:
            events.append(event)
    except Exception as e:
        return events, e
    raise AssertionError("the reader did not fail")


def test_child_exception_reaches_the_parent(monkeypatch, capfd):
    fail_after(monkeypatch, 30, ValueError("parser bug at the 31st event"))
    inputs = expand_inputs([str(KRET)])
    here_events, here_error = read_until_error(here := TraceReader(inputs))
    there_events, there_error = read_until_error(there := PrefetchReader(inputs))
    assert type(there_error) is ValueError and str(there_error) == str(here_error)
    assert "in the reader process:" in there_error.__notes__[0]  # with the child's traceback
    assert there_events == here_events and len(there_events) >= 30
    assert there.stats == here.stats  # the file being read when it failed, with its counts so far
    assert capfd.readouterr() == ("", "")  # the child writes nothing
    assert not multiprocessing.active_children()


class TwoPartError(Exception):
    """An exception that does not unpickle: its __init__ does not take its message back."""

    def __init__(self, what, where):
        super().__init__(f"{what} at {where}")


def test_unpicklable_child_exception(monkeypatch):
    fail_after(monkeypatch, 0, TwoPartError("bad state", "line 13"))
    events, error = read_until_error(PrefetchReader(expand_inputs([str(KRET)])))
    assert events == []
    assert type(error) is ReaderProcessError
    assert str(error) == f"{__name__}.TwoPartError: bad state at line 13"
    assert "in the reader process:" in error.__notes__[0]


def big_trace(tmp_path: Path) -> Path:
    """A trace far larger than the pipe holds, so that the child is still running when the parent stops."""
    path = tmp_path / "big.txt"
    path.write_bytes((ROOT / "traces/qemu-dbg-probe/ftrace.txt").read_bytes() * 2000)
    return path


def live_reader_pid():
    (child,) = multiprocessing.active_children()
    return child.pid


def assert_reaped(pid):
    assert not multiprocessing.active_children()
    with pytest.raises(ChildProcessError):  # not a child any more: no zombie left
        os.waitpid(pid, os.WNOHANG)


def test_early_close_ends_the_child(tmp_path):
    events = iter(PrefetchReader([str(big_trace(tmp_path))]))
    next(events)
    pid = live_reader_pid()
    events.close()
    assert_reaped(pid)


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_exception_in_the_consumer_ends_the_child(tmp_path, error):
    events = iter(PrefetchReader([str(big_trace(tmp_path))]))
    next(events)
    pid = live_reader_pid()
    with pytest.raises(error):
        events.throw(error)
    assert_reaped(pid)


def test_analysis_closed_early_ends_the_child(tmp_path):
    big_trace(tmp_path)
    (tmp_path / "dmesg.txt").write_bytes((KRET / "dmesg.txt").read_bytes())  # two files: replays filter events
    flows = Analysis(captures([str(tmp_path)])[0], get_profile(), prefetch=True).flows()
    next(flows)
    pid = live_reader_pid()
    flows.close()
    assert_reaped(pid)


def test_child_killed(tmp_path):
    events = iter(PrefetchReader([str(big_trace(tmp_path))]))
    next(events)
    os.kill(live_reader_pid(), 9)
    with pytest.raises(ReaderProcessError, match="died"):
        for _ in events:
            pass
    assert not multiprocessing.active_children()


def test_child_writes_nothing(monkeypatch, capfd):
    read = TraceReader.read

    def noisy(self, inp):
        print("reading", inp.name)
        os.write(2, b"raw write to stderr\n")
        yield from read(self, inp)

    monkeypatch.setattr(TraceReader, "read", noisy)
    assert list(PrefetchReader([str(KRET)]))
    assert capfd.readouterr() == ("", "")


class CountingPrefetchReader(PrefetchReader):
    """Counts the analyses that chose to read in a child process."""

    created = 0

    def __init__(self, *args):
        super().__init__(*args)
        CountingPrefetchReader.created += 1


@pytest.fixture
def counted(monkeypatch):
    monkeypatch.setattr(pipeline, "PrefetchReader", CountingPrefetchReader)
    monkeypatch.setattr(CountingPrefetchReader, "created", 0)
    return CountingPrefetchReader


def analyse(path, prefetch_mode):
    analysis = Analysis(captures([str(path)])[0], get_profile(), prefetch=prefetch_mode)
    flows = [json.dumps(flow_json(f), sort_keys=True) for f in analysis.flows()]
    return flows, analysis


@pytest.mark.parametrize(("path", "rules"), [(KRET, []), (NOBL32, ["SMC070"])], ids=["kretprobe", "nobl32"])
def test_analysis_identical_with_prefetch(path, rules, counted):
    here_flows, here = analyse(path, False)
    assert counted.created == 0
    there_flows, there = analyse(path, True)
    assert counted.created == 1  # it did read in a child
    assert here_flows and there_flows == here_flows
    assert [f.rule for f in here.findings] == rules and there.findings == here.findings
    assert there.not_run == here.not_run and there.replays == here.replays
    assert there.files == here.files and there.state == here.state


def test_when_to_prefetch(tmp_path, monkeypatch):
    small = Input(str(KRET / "dmesg.txt"), KRET / "dmesg.txt")
    large = tmp_path / "large.txt"
    with large.open("wb") as f:
        f.truncate(prefetch.MIN_PREFETCH_BYTES)  # sparse: its size is what counts
    large_input = Input(str(large), large)
    stdin = Input("<stdin>", None)
    monkeypatch.setattr(prefetch, "usable_cores", lambda: 2)
    assert prefetch_worthwhile([large_input]) and prefetch_worthwhile([small, large_input])
    assert not prefetch_worthwhile([small])
    assert not prefetch_worthwhile([large_input, stdin]) and not can_prefetch([stdin])
    assert not prefetch_worthwhile([Input("gone", tmp_path / "gone")])  # the reader reports it
    monkeypatch.setattr(prefetch, "usable_cores", lambda: 1)
    assert not prefetch_worthwhile([large_input])


def test_analysis_prefetch_choice(monkeypatch, counted):
    capture = captures([str(KRET)])[0]
    monkeypatch.setattr(pipeline, "prefetch_worthwhile", lambda inputs: True)
    Analysis(capture, get_profile()).run()  # None: as prefetch_worthwhile says
    assert counted.created == 1
    Analysis(capture, get_profile(), prefetch=False).run()
    assert counted.created == 1
    monkeypatch.setattr(pipeline, "prefetch_worthwhile", lambda inputs: False)
    Analysis(capture, get_profile()).run()
    assert counted.created == 1
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    Analysis(pipeline.Capture("<stdin>", (Input("<stdin>", None),)), get_profile(), prefetch=True).run()
    assert counted.created == 1  # True, but stdin is read in this process
