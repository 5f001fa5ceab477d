"""The ftrace reader (smcwire/sources/ftrace.py) on real captures and on lines written to the
exact printf formats of formats.md §1 for the layouts no capture has; the SMC probe recipes
(smcwire/sources/recipes.py) against the same reader. Samples: tests/data/ftrace/README.md."""

from __future__ import annotations

import lzma
from collections import Counter
from pathlib import Path

import pytest

from smcwire.model.events import LostEvents, SmcCall, SmcReturn
from smcwire.sources.base import Malformed
from smcwire.sources.ftrace import FtraceParser
from smcwire.sources.reader import FileStats, TraceReader
from smcwire.sources.recipes import ENTRY_EVENT, RETURN_EVENT, probe_definitions, tracing_setup

DATA = Path(__file__).parent / "data" / "ftrace"
TRACES = Path(__file__).parent.parent / "traces"  # the shipped samples
PROBE = TRACES / "qemu-dbg-probe/ftrace.txt"
LEGACY = Path(__file__).parent / "data" / "legacy-os-kretprobe-ftrace.txt.xz"
UID = (0x384FB3E0, 0xE7F811E3, 0xAF630002, 0xA5D5C51B)  # OPTEE_MSG_UID, the CALLS_UID result
BODY_BEGIN = "param=00000000e8dc2c91 (32000012, 0, 4632c000, 0, 0, 0, 0, 0)"
REGS_BEGIN = (0x32000012, 0, 0x4632C000, 0, 0, 0, 0, 0)
BODY_END = "param=00000000e8dc2c91 ret (ffff0004, 0, 0, 0)"


def read(path: Path, input_format: str | None = "ftrace") -> tuple[list, FileStats]:
    reader = TraceReader.from_names([str(path)], input_format=input_format)
    events = list(reader)
    stats = reader.stats[0]
    assert stats.lines == stats.event_lines + stats.foreign + stats.malformed
    return events, stats


def raw(name: str) -> bytes:
    path = DATA / name
    return lzma.decompress(path.read_bytes()) if name.endswith(".xz") else path.read_bytes()


def feed(line: str | bytes):
    return FtraceParser("t").feed(1, line.encode() if isinstance(line, str) else line)


def one(line: str | bytes):
    out = feed(line)
    assert isinstance(out, tuple) and len(out) == 1, out
    return out[0]


def kinds(events: list) -> Counter:
    return Counter((e.KIND, getattr(e, "origin", None)) for e in events)


def a0s(events: list, kind: type, origin: str = "tracepoint") -> Counter:
    return Counter(e.regs[0] for e in events if type(e) is kind and e.origin == origin)


# --- real captures ------------------------------------------------------------------------------


def test_trace_with_five_flags():
    events, st = read(TRACES / "qemu-dbg-probe/ftrace.txt")
    assert (st.lines, st.event_lines, st.foreign, st.malformed) == (46, 34, 12, 0)
    assert a0s(events, SmcCall) == {0x32000012: 3, 0x32000013: 10, 0x32000003: 4}
    assert a0s(events, SmcReturn) == {0: 13, 0xFFFF0004: 4}
    first, last = events[0], events[-1]
    assert first == SmcCall(str(TRACES / "qemu-dbg-probe/ftrace.txt"), 13, 1_766_597_000, 1, 1, None, "init", REGS_BEGIN,
                            "00000000e8dc2c91")
    assert (type(last), last.line, last.ts, last.cpu, last.pid, last.task, last.key) == (
        SmcReturn, 46, 4_765_720_000, 0, 100, "irq/17-optee_no", "00000000ffbdd79b")
    assert events[1].regs == (0xFFFF0004, 0, 0, 0) and events[1].key == first.key  # line 14, flags ".N..."


def test_trace_pipe_starts_mid_stream():
    events, st = read(DATA / "pipe-small-trace_pipe.txt.xz")
    assert st.malformed == 0 and st.foreign == 3  # tracing_mark_write lines
    assert a0s(events, SmcCall) == {0x32000012: 5, 0x32000013: 15, 0x32000003: 239}
    assert a0s(events, SmcReturn) == {0: 20, 0xFFFF0004: 115, 0xFFFF0005: 124}
    assert (events[0].task, events[0].pid, events[0].ts) == (None, 1, 1_763_062_000)  # "<...>-1"
    tasks = Counter(e.task for e in events)
    assert tasks[None] == 36 and tasks["optee_example_h"] > 0  # comm cut to TASK_COMM_LEN - 1


@pytest.mark.parametrize("name", ["report", "report-l", "report-t"])
def test_trace_cmd_report(name):
    events, st = read(DATA / f"trace-cmd-small-{name}.txt.xz")
    assert st.malformed == 0 and st.foreign == 4  # cpus=2 and three print: markers
    assert a0s(events, SmcCall) == {0x32000012: 5, 0x32000013: 15, 0x32000003: 205}
    assert a0s(events, SmcReturn) == {0: 20, 0xFFFF0004: 81, 0xFFFF0005: 124}
    assert (events[0].task, events[0].pid, events[0].cpu, events[0].key) == ("sh", 105, 0, "0xffff8000082ab508")
    assert events[1].key == events[0].key  # "optee_invoke_fn_end:  param=" (padded name)
    tasks = {e.task for e in events}
    assert ("kworker/" in tasks) == (name == "report-l")  # -l cuts comm to 8 characters


def test_trace_cmd_nanoseconds_are_exact():
    usecs, _ = read(DATA / "trace-cmd-small-report.txt.xz")
    latency, _ = read(DATA / "trace-cmd-small-report-l.txt.xz")
    nsecs, _ = read(DATA / "trace-cmd-small-report-t.txt.xz")
    assert nsecs[0].ts == 3_548_388_928 and usecs[0].ts == 3_548_389_000
    assert [e.regs for e in nsecs] == [e.regs for e in usecs] == [e.regs for e in latency]
    assert [e.ts for e in usecs] == [e.ts for e in latency]
    assert all((n.ts + 500) // 1000 * 1000 == u.ts for n, u in zip(nsecs, usecs, strict=False))  # -t: same instant, rounded
    assert sum(n.ts % 1000 != 0 for n in nsecs) > 400


def test_kretprobe_linux_6_1():
    events, st = read(TRACES / "qemu-dbg-kretprobe/ftrace.txt.xz")
    assert st.malformed == 0 and (st.event_lines, st.foreign) == (1068, 15)
    assert kinds(events) == {("smc_call", "tracepoint"): 263, ("smc_return", "tracepoint"): 263,
                             ("smc_call", "kprobe"): 271, ("smc_return", "kretprobe"): 271}
    probes = [e for e in events if e.origin != "tracepoint"]
    results = {c.regs[0]: r.regs for c, r in zip(probes[::2], probes[1::2], strict=False) if c.regs[0] >> 24 in (0xB2, 0xBF)}
    assert results[0xBF00FF01] == UID
    assert results[0xB2000001] == (4, 0xA, 0x753AFBBEE1682F5D, 0)  # OS 4.10, build id: 64-bit r2
    assert results[0xB2000009] == (0, 0xF5, 0x42, 4)
    assert results[0xB2000011] == (0, 0, 1, 0)
    first = events[0]
    assert (first.origin, first.line, first.key, first.task, first.regs) == ("kprobe", 13, None, "init",
                                                                              (0xBF00FF01, 0, 0, 0, 0, 0, 0, 0))
    assert events[1].call_regs == () and events[1].ts == 1_523_259_000
    # each yielding call: tracepoint begin, kprobe entry, kretprobe return, tracepoint end
    for i, e in enumerate(events[:-3]):
        if type(e) is SmcCall and e.origin == "tracepoint":
            entry, ret, end = events[i + 1 : i + 4]
            assert entry.regs == e.regs and ret.regs == end.regs and entry.pid == e.pid


def test_kretprobe_linux_6_12_appends_call_registers():
    events, st = read(DATA / "newkernel-kretprobe-ftrace.txt.xz")
    assert st.malformed == 0
    assert kinds(events) == {("smc_call", "tracepoint"): 321, ("smc_return", "tracepoint"): 321,
                             ("smc_call", "kprobe"): 331, ("smc_return", "kretprobe"): 331}
    assert a0s(events, SmcCall) == {0x32000012: 5, 0x32000013: 16, 0x32000003: 300}
    assert a0s(events, SmcReturn) == {0: 21, 0xFFFF0004: 176, 0xFFFF0005: 124}
    returns = [e for e in events if e.origin == "kretprobe"]
    assert returns[0].call_regs == (0xBF00FF01, 0) and returns[0].regs == UID
    thread_count = next(r for r in returns if r.call_regs[0] == 0xB200000F)
    assert thread_count.regs[:2] == (0, 2)
    entries = [e for e in events if e.origin == "kprobe"]  # in IRQ context, an SMC nests in a task's
    assert Counter(e.regs[:2] for e in entries) == Counter(r.call_regs for r in returns)


def test_kretprobe_legacy_optee():
    events, st = read(LEGACY)
    assert st.malformed == 0
    assert a0s(events, SmcCall) == {0x32000004: 17, 0x32000003: 178}
    assert a0s(events, SmcReturn)[0xFFFF0000] == 1
    probes = [e for e in events if e.origin != "tracepoint"]
    results = {c.regs[0]: r.regs for c, r in zip(probes[::2], probes[1::2], strict=False)}
    assert results[0xB2000001] == (3, 0x10, 0, 0) and results[0xB200000B] == (0, 0, 0, 0)


def test_kprobe_without_return_probe():
    events, st = read(DATA / "dbg-kprobe-ftrace.txt.xz")
    assert st.malformed == 0
    entries = [e for e in events if e.origin == "kprobe"]
    assert {e.regs[0] for e in entries} >= {0xBF00FF01, 0xBF00FF03, 0xB2000001, 0xB2000009, 0xB200000A,
                                            0xB2000010, 0xB2000011}
    assert not any(type(e) is SmcReturn and e.origin != "tracepoint" for e in events)


def test_sixty_four_bit_smc_unk():
    events, st = read(DATA / "misconf-nobl32-ftrace.txt")
    assert [type(e) for e in events] == [SmcCall, SmcReturn] and st.foreign == 15
    assert events[1].regs == (0xFFFFFFFFFFFFFFFF, 0, 0, 0) and events[1].call_regs == (0xBF00FF01, 0)


@pytest.mark.parametrize("name, lines", [("pastebin-JNRWXUPy-ftrace-header-empty.txt", 11),
                                         ("android-bart-trace-cmd-report-sample.txt", 7)])
def test_public_samples_are_foreign_and_sniffed(name, lines):
    events, st = read(DATA / name, input_format=None)
    assert (events, st.lines, st.foreign, st.format) == ([], lines, lines, "ftrace")


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.txt*")))
def test_every_sample_is_certain(name):
    head = raw(name).splitlines()[:64]
    assert FtraceParser.sniff(head) >= 90


# --- layouts no capture has, written to the exact formats (formats.md §1) -----------------------


def kernel(comm="init", pid=1, cpu=1, flags: str | None = ".....", ts="    1.766597", event="optee_invoke_fn_begin",
           body=BODY_BEGIN, tgid: str | None = None, pid_width=7) -> str:
    """trace_print_context(): "%16s-%-7d " [TGID] "[%03d] " [flags] " %5lu.%06lu: " (or " %12llu: ")."""
    return (f"{comm:>16}-{pid:<{pid_width}d} " + (f"({tgid}) " if tgid is not None else "") + f"[{cpu:03d}] "
            + (flags or "") + f" {ts}: {event}: {body}")


@pytest.mark.parametrize("line, ctx", [
    (kernel(flags="d.h."), (1_766_597_000, 1, 1, None, "init")),  # 4 flags (before v5.15)
    (kernel(flags="dNh21"), (1_766_597_000, 1, 1, None, "init")),  # flags with digits
    (kernel(flags="dNhlb1."), (1_766_597_000, 1, 1, None, "init")),  # PREEMPT_RT: 7 flags
    (kernel(flags=None), (1_766_597_000, 1, 1, None, "init")),  # irq-info off
    (kernel(tgid="      1"), (1_766_597_000, 1, 1, 1, "init")),  # record-tgid: "(%7d) "
    (kernel(tgid="-------"), (1_766_597_000, 1, 1, None, "init")),  # unknown TGID
    (kernel(pid=4734, pid_width=5, flags="d..1"), (1_766_597_000, 1, 4734, None, "init")),  # old "%-5d"
    (kernel(pid=4734, pid_width=5, tgid=" 4730", flags="d..1"), (1_766_597_000, 1, 4734, 4730, "init")),
    (kernel(ts="  98765432109"), (98765432109, 1, 1, None, "init")),  # counter clock: raw count
    (kernel(comm="<...>", pid=2048), (1_766_597_000, 1, 2048, None, None)),
    (kernel(comm="Binder:1234_2", pid=1250), (1_766_597_000, 1, 1250, None, "Binder:1234_2")),
    (kernel(comm="my-app v2-9", pid=77), (1_766_597_000, 1, 77, None, "my-app v2-9")),
    (kernel(comm="kworker/u8:2", pid=57, cpu=123), (1_766_597_000, 123, 57, None, "kworker/u8:2")),
    # Perfetto / systrace text: TGID "(-----)" or "(%5d)", 4 flags
    (f"{'surfaceflinger':>16}-512   (  512) [000] d..3  1234.567890: optee_invoke_fn_begin: {BODY_BEGIN}",
     (1_234_567_890_000, 0, 512, 512, "surfaceflinger")),
    (f"{'HwBinder:512_1':>16}-530   (-----) [000] d..3  1234.567890: optee_invoke_fn_begin: {BODY_BEGIN}",
     (1_234_567_890_000, 0, 530, None, "HwBinder:512_1")),
    # perf script: "%16s %5d[/%-5d] [%03d] %5lu.%06lu: " then the right-justified "sys:event: "
    (f"{'xtest':>16} 1234 [002] 12345.678901:  optee:optee_invoke_fn_begin: {BODY_BEGIN}",
     (12_345_678_901_000, 2, 1234, None, "xtest")),
    (f"{'tee-supplicant':>16}  301/305   [000] 12345.678901234: optee:optee_invoke_fn_begin: {BODY_BEGIN}",
     (12_345_678_901_234, 0, 301, None, "tee-supplicant")),
    # trace-cmd report: "%16s-%-5d [%03d] %lu.%06lu: ", -l "%8.8s-%-5d %3d<flags>", multi-file "<file>: " tags
    (f"{'sh':>16}-105   [000]     3.548389: optee_invoke_fn_begin: {BODY_BEGIN}", (3_548_389_000, 0, 105, None, "sh")),
    (f"{'kworker/':>8}-16     10d.h1.     3.548389: optee_invoke_fn_begin: {BODY_BEGIN}",
     (3_548_389_000, 10, 16, None, "kworker/")),
    (f"  run2.dat: {'sh':>16}-105   [000]     3.548389: optee_invoke_fn_begin: {BODY_BEGIN}",
     (3_548_389_000, 0, 105, None, "sh")),
    (f"{'sh':>16}-105   [000]     3.548389: (+3387)   optee_invoke_fn_begin: {BODY_BEGIN}",  # --ts-diff
     (3_548_389_000, 0, 105, None, "sh")),
    ("optee_invoke_fn_begin: " + BODY_BEGIN, (None, None, None, None, None)),  # options/context-info off
])
def test_context_layouts(line, ctx):
    event = one(line)
    assert type(event) is SmcCall and event.regs == REGS_BEGIN and event.key == "00000000e8dc2c91"
    assert (event.ts, event.cpu, event.pid, event.tgid, event.task) == ctx


@pytest.mark.parametrize("body, key, regs", [
    ("param=(____ptrval____) (32000004, 0, 45df2000, 0, 0, 0, 0, 0)", "(____ptrval____)",
     (0x32000004, 0, 0x45DF2000, 0, 0, 0, 0, 0)),
    ("param=0xffff8000082ab508 (32000012, 0, 46189000, 0, 0, 0, 0, 0)", "0xffff8000082ab508",
     (0x32000012, 0, 0x46189000, 0, 0, 0, 0, 0)),
    ("param=ffff000012345678 (ffffffff, ffffffff, 0, 0, 0, 0, 0, 0)", "ffff000012345678",
     (0xFFFFFFFF, 0xFFFFFFFF, 0, 0, 0, 0, 0, 0)),  # no_hash_pointers
])
def test_begin_bodies(body, key, regs):
    event = one(kernel(body=body))
    assert (event.key, event.regs) == (key, regs)


@pytest.mark.parametrize("body, regs", [
    ("param=00000000e8dc2c91 ret (ffff0004, 0, 0, 0)", (0xFFFF0004, 0, 0, 0)),
    ("param=00000000e8dc2c91 ret (ffffffffffffffff, 0, 0, 0)", (0xFFFFFFFFFFFFFFFF, 0, 0, 0)),  # SMC_UNK, arm64
    ("param=00000000e8dc2c91 ret (1, e597b220, 8000000100, 0)", (1, 0xE597B220, 0x8000000100, 0)),
    ("param=e8dc2c91 ret (ffffffff, 0, 0, 0)", (0xFFFFFFFF, 0, 0, 0)),  # arm32: 32-bit pointer and longs
])
def test_end_bodies(body, regs):
    event = one(kernel(event="optee_invoke_fn_end", body=body))
    assert type(event) is SmcReturn and event.regs == regs and event.origin == "tracepoint"


@pytest.mark.parametrize("line, cpu, count", [
    ("CPU:2 [LOST 1503 EVENTS]", 2, 1503),  # kernel/trace/trace.c print_trace_line()
    ("CPU:0 [LOST EVENTS]", 0, None),
    ("CPU:1 [12 EVENTS DROPPED]", 1, 12),  # trace-cmd trace_show_data()
    ("CPU:3 [EVENTS DROPPED]", 3, None),
    ("  run2.dat: CPU:1 [7 EVENTS DROPPED]", 1, 7),
])
def test_lost_event_markers(line, cpu, count):
    assert one(line) == LostEvents("t", 1, cpu, count)


@pytest.mark.parametrize("line", [
    kernel(event="sched_switch", comm="irq/17-optee_no", pid=100,
           body="prev_comm=irq/17-optee_no prev_pid=100 prev_prio=49 prev_state=S ==> next_comm=swapper/0 "
                "next_pid=0 next_prio=120"),
    kernel(event="tracing_mark_write", body="smcw: optee_invoke_fn_begin: (1, 2) a0=0x1 r0=0x0"),
    f"{'sh':>16}-105   [000]     3.591872: print:                tracing_mark_write: smcw: optee_invoke_fn_end:",
    kernel(event="optee_smc_do_call_with_arg <-optee_do_call_with_arg", body="").rstrip(": "),  # function tracer
    " 1)   0.541 us    |  optee_handle_rpc();",  # function_graph
    " 1)               |  optee_smc_do_call_with_arg() {",
    kernel(event="myprobe", body="(do_sys_open+0x0/0xd6) dfd=ffffff9c filename=7fffd1ec4440 flags=8000 mode=1b6"),
    kernel(event="myretprobe", body="(sys_openat+0xc/0xe <- do_sys_open) arg1=0x3"),
    kernel(event="irq_handler_entry", body="irq=10 name=optee_notification"),
    "# tracer: nop", "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION", "cpus=2", "version = 6",
    "CPU 3 is empty", "", "[    2.9] optee: revision 4.10 (753afbbee1682f5d)",
    "NOTICE:  BL31: Initializing BL32", "D/TC:0 0 call_initcalls:43 level 1 teecore_init_pub_ram()",
    "a0=0x32000004 a1=0x0 a2=0x45df2000 a3=0x0 a4=0x0 a5=0x0 a6=0x0 a7=0x0",  # a register dump, not ftrace
    f"{'init':>16}-1       [001] .....     1.7",  # cut before the event name: nothing says it is ours
])
def test_foreign(line):
    assert feed(line) is None


@pytest.mark.parametrize("line, reason", [
    (kernel(body="param=00000000e8dc2c91 (32000012, 0, 4632c000, 0, 0, 0, 0)"),
     "optee_invoke_fn_begin: 7 arguments, expected 8"),
    (kernel(body="param=00000000e8dc2c91 (32000012, 0, 4632c000, 0, 0, 0, 0, 0, 0)"),
     "optee_invoke_fn_begin: 9 arguments, expected 8"),
    (kernel(event="optee_invoke_fn_end", body="param=00000000e8dc2c91 ret (0, 0, 0)"),
     "optee_invoke_fn_end: 3 return values, expected 4"),
    (kernel(body="param=00000000e8dc2c91 (32000012, 0, 4632c0"), "optee_invoke_fn_begin: value list not closed"),
    (kernel(body="param=00000000e8dc2c91 (32000012, 0, 4632zz00, 0, 0, 0, 0, 0)"),
     "optee_invoke_fn_begin: a value is not hexadecimal"),
    (kernel(event="optee_invoke_fn_end", body="param=00000000e8dc2c91 (0, 0, 0, 0)"),
     "optee_invoke_fn_end: no ret (…) value list"),
    (kernel(body="param=0xffff8000082ab508 args=ARRAY[12, 00, 00, 32]"),  # options/print-fields
     "optee_invoke_fn_begin: no (…) value list"),
    (kernel(body="ptr=0xffff8000082ab508 args=ARRAY[12, 00, 00, 32]"), "optee_invoke_fn_begin: no 'param=' field"),
    ("[ 12.345] random: crng init optee_invoke_fn_begin: " + BODY_BEGIN,  # console output cut into the line
     "optee_invoke_fn_begin: no ftrace context"),
    (kernel(event="smcw_entry", body="(optee_smccc_smc+0x0/0x3c [optee]) a0=0xbf00ff01 a1=0x0 a2=0x0 a3=0x0"),
     "smcw_entry: SMC arguments 0..7 expected, only 4 found"),
    (kernel(event="smcw_ret", body="(optee_probe+0x120/0x19ac [optee] <- optee_smccc_smc) res=0x0 r0=0x0 r1=0x2"),
     "smcw_ret: result registers 0..3 expected, only 2 found"),
    (kernel(event="smcw_ret", body="(optee_probe+0x120/0x19ac [optee] <- optee_smccc_smc) r0=(fault) r1=0x0"),
     "smcw_ret: r0=(fault) is not a register value"),
    (kernel(event="smcw_ret", body="(optee_probe+0x120/0x19ac [optee] <- optee_smccc_smc) a0=0xbf00ff01 a1=0x0"),
     "smcw_ret: return probe with a0= but no r0= result fields"),
])
def test_malformed(line, reason):
    out = feed(line)
    assert type(out) is Malformed and out.reason.startswith(reason), out


@pytest.mark.parametrize("body, regs", [
    ("(optee_smccc_smc+0x0/0x3c [optee]) x0=0xb2000011 x1=0x0 x2=0x0 x3=0x0 x4=0x0 x5=0x0 x6=0x0 x7=0x0",
     (0xB2000011, 0, 0, 0, 0, 0, 0, 0)),  # user-named fields x0..x7
    ("(ffff800000f1c0a8) a0=0xbf00ff01 a1=0x0 a2=0x0 a3=0x0 a4=0x0 a5=0x0 a6=0x0 a7=0x0",
     (0xBF00FF01, 0, 0, 0, 0, 0, 0, 0)),  # perf / trace-cmd print the probe address
    ("(optee_smccc_smc+0x0/0x3c [optee]) a0=bf00ff01 a1=0 a2=0 a3=0 a4=0 a5=0 a6=0 a7=10",
     (0xBF00FF01, 0, 0, 0, 0, 0, 0, 10)),  # trace_probe.c prints u types "%u": digits are decimal
    ("(optee_smccc_smc+0x0/0x3c [optee]) a0=838860804 a1=0 a2=0 a3=0 a4=0 a5=0 a6=0 a7=0",
     (0x32000004, 0, 0, 0, 0, 0, 0, 0)),  # a0 fetched as :u32
])
def test_probe_entries(body, regs):
    event = one(kernel(event="my_smc", flags="d....", body=body))  # "smc" in the event name: an SMC probe
    assert type(event) is SmcCall and event.origin == "kprobe" and event.regs == regs and event.key is None


@pytest.mark.parametrize("body, regs, origin, call", [
    ("(optee_do_call_with_arg+0x80/0x1a0 [optee] <- optee_smccc_smc) x0=0x0 x1=0x0 x2=0x0 x3=0x1",
     (0, 0, 0, 1), "kretprobe", ()),
    ("(__arm_smccc_smc+0x8/0x30) r0=0xffff0004 r1=0x0 r2=0x0 r3=0x1", (0xFFFF0004, 0, 0, 1), "kprobe", ()),
    ("(optee_probe+0x11c/0xa10 [optee] <- optee_smccc_smc) res=0x0 r0=-1 r1=0x0 r2=0x0 r3=0x0 a0=0xbf00ff01 a1=0x0",
     (0xFFFFFFFFFFFFFFFF, 0, 0, 0), "kretprobe", (0xBF00FF01, 0)),  # an s64 field
])
def test_probe_returns(body, regs, origin, call):
    event = one(kernel(event="my_smc_ret", body=body))
    assert type(event) is SmcReturn and (event.regs, event.origin, event.call_regs) == (regs, origin, call)


def test_sniff():
    assert FtraceParser.sniff([]) == 0
    assert FtraceParser.sniff([b"# tracer: nop", b"#"]) == 100
    assert FtraceParser.sniff([b"cpus=2", kernel().encode()]) >= 90
    assert FtraceParser.sniff([kernel(flags=None).encode()] * 3) >= 90  # trace_pipe: events only
    console = [b"NOTICE:  Booting Trusted Firmware", b"NOTICE:  BL31: v2.15.0(debug)",
               b"[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x411fd070]",
               b"[    2.934] optee: probing for conduit method.", b"# tracer: nop",
               kernel().encode(), b"[    3.0] optee: initialized driver", b"Welcome to Buildroot"]
    assert FtraceParser.sniff(console) < 90  # a serial log with an ftrace dump inside: console mode
    assert type(one(console[5])) is SmcCall  # where the ftrace lines are still claimed


def test_console_capture_with_an_ftrace_dump(tmp_path):
    console = tmp_path / "uart0.log"
    console.write_bytes(b"\r\n".join([
        b"NOTICE:  Booting Trusted Firmware", b"[    0.000000] Booting Linux on physical CPU 0x0000000000",
        b"===== SMCW FTRACE BEGIN =====", *PROBE.read_bytes().splitlines(), b"===== SMCW FTRACE END =====",
        b"[    9.0] reboot: Power down", b""]))
    events, st = read(console, input_format=None)
    assert st.format == "console"
    assert Counter(type(e) for e in events)[SmcCall] == 17


# --- bad inputs ---------------------------------------------------------------------------------


def test_truncated_last_line(tmp_path):
    data = PROBE.read_bytes()
    path = tmp_path / "cut.txt"
    path.write_bytes(data[: data.rindex(b", 0, 0, 0)")])  # no closing parenthesis, no newline
    events, st = read(path)
    assert (st.lines, len(events), st.malformed) == (46, 33, 1)
    assert st.diagnostics == [f"{path}:46: optee_invoke_fn_end: value list not closed (truncated line?)"]


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(PROBE.read_bytes().replace(b"\n", b"\r\n"))
    events, st = read(path, input_format=None)
    assert st.format == "ftrace" and len(events) == 34 and st.malformed == 0
    assert events[0].regs == REGS_BEGIN and events[-1].key == "00000000ffbdd79b"


def test_nul_bytes_and_invalid_utf8(tmp_path):
    path = tmp_path / "binary.txt"
    lines = PROBE.read_bytes().splitlines()
    lines[20] = lines[20].replace(b"init", b"i\xffn\xfe", 1)
    lines[21:21] = [b"\x00\x00\x7fELF\x02\x01\x01\x00", lines[21].replace(b", 0)", b", \x00)")]
    path.write_bytes(b"\n".join(lines) + b"\n")
    events, st = read(path)
    assert (st.lines, len(events), st.binary_lines, st.malformed) == (48, 34, 2, 1)
    assert (events[8].line, events[8].task, events[8].regs[0]) == (21, "i\ufffdn\ufffd", 0x32000003)
    assert "not hexadecimal" in st.diagnostics[0]


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    for fmt in ("ftrace", None):
        events, st = read(path, input_format=fmt)
        assert (events, st.lines, st.malformed, st.diagnostics) == ([], 0, 0, [])


# --- recipes ------------------------------------------------------------------------------------


def recipe_line(definition: str, values: dict[str, int]) -> str:
    """The trace line a kprobe_events definition prints (kernel/trace/trace_kprobe.c print_*probe_event)."""
    kind, event, _, *fetch = definition.replace(":", " ", 1).split()
    event = event.split("/")[1]
    site = "optee_probe+0x11c/0xa10 [optee] <- optee_smccc_smc" if kind == "r" else "optee_smccc_smc+0x0/0x40 [optee]"
    names = [arg.split("=")[0] for arg in fetch]
    return kernel(event=event, flags="d....", body=f"({site})" + "".join(f" {n}=0x{values[n]:x}" for n in names))


@pytest.mark.parametrize("arch, kernel_version, call_regs", [
    ("arm64", "6.1", ()), ("arm64", "6.12", (0xB2000009, 0)), ("aarch64", "6.6", ()), ("arm", "6.12", ()),
    ("arm32", "5.10", ()),
])
def test_recipe_output_is_read(arch, kernel_version, call_regs):
    entry, ret = probe_definitions(arch, kernel_version)
    assert entry.startswith(f"p:smcw/{ENTRY_EVENT} ") and ret.startswith(f"r:smcw/{RETURN_EVENT} ")
    values = {f"a{i}": v for i, v in enumerate((0xB2000009, 0, 0, 0, 0, 0, 0, 0))}
    values |= {"res": 0xFFFF80000802B918, "r0": 0, "r1": 0xF5, "r2": 0x42, "r3": 4}
    call, result = one(recipe_line(entry, values)), one(recipe_line(ret, values))
    assert (type(call), call.origin, call.regs) == (SmcCall, "kprobe", (0xB2000009, 0, 0, 0, 0, 0, 0, 0))
    assert (type(result), result.origin, result.regs, result.call_regs) == (
        SmcReturn, "kretprobe", (0, 0xF5, 0x42, 4), call_regs)


def test_recipe_matches_the_captured_commands():
    entry, ret = probe_definitions("arm64", "6.1")
    assert entry == ("p:smcw/optee_smccc_smc optee:optee_smccc_smc a0=%x0:x32 a1=%x1:x32 a2=%x2:x32 a3=%x3:x32 "
                     "a4=%x4:x32 a5=%x5:x32 a6=%x6:x32 a7=%x7:x32 res=$stack0:x64")
    assert ret == ("r:smcw/optee_smccc_smc_ret optee:optee_smccc_smc res=$stack0:x64 r0=+0($stack0):x64 "
                   "r1=+8($stack0):x64 r2=+16($stack0):x64 r3=+24($stack0):x64")
    assert probe_definitions("arm64", "6.12")[1] == ret + " a0=$arg1:x32 a1=$arg2:x32"
    arm32_entry, arm32_ret = probe_definitions("arm32", "6.12")
    assert "a4=$stack0:x32" in arm32_entry and "res=$stack4:x32" in arm32_entry and "$arg" not in arm32_ret


def test_tracing_setup_script():
    script = tracing_setup("arm64", "6.12")
    for expected in (*probe_definitions("arm64", "6.12"), "echo 1 > events/optee/enable", "echo 1 > events/smcw/enable",
                     "echo 32768 > buffer_size_kb", "cd /sys/kernel/tracing"):
        assert expected in script
    assert "events/optee/enable" not in tracing_setup("arm", "5.10").replace("# (no optee", "")
    with pytest.raises(ValueError, match="architecture"):
        tracing_setup("x86_64")
    with pytest.raises(ValueError, match="MAJOR.MINOR"):
        tracing_setup("arm64", "six")
