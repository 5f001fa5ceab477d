"""The tracker on real captures (traces/, tests/data/) and on edited copies of them."""

import lzma
from collections import Counter
from pathlib import Path

from smcwire.codec.decode import decoder
from smcwire.flows.tracker import Tracker
from smcwire.sources.reader import TraceReader

ROOT = Path(__file__).parent.parent
PROBE = ROOT / "traces/qemu-dbg-probe/ftrace.txt"
KRETPROBE = ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz"
LEGACY = ROOT / "tests/data/legacy-os-kretprobe-ftrace.txt.xz"
NEWKERNEL = ROOT / "tests/data/ftrace/newkernel-kretprobe-ftrace.txt.xz"
KPROBE_ONLY_ENTRY = ROOT / "tests/data/ftrace/dbg-kprobe-ftrace.txt.xz"


def track(path, text=None):
    """(flows, state, SMC events read) of a file, or of ``text`` written in its place."""
    if text is not None:
        path.write_bytes(text)
    tracker = Tracker(str(path), decoder("mainline"))
    flows, events = [], 0
    for event in TraceReader.from_names([str(path)]):
        events += event.KIND in ("smc_call", "smc_return")
        flows.extend(tracker.feed(event))
    flows.extend(tracker.finish())
    return flows, tracker.state, events


def lines_of(path):
    data = path.read_bytes()
    return (lzma.decompress(data) if path.suffix == ".xz" else data).split(b"\n")


def in_flows(flows):
    return sum((s.call is not None) + (s.ret is not None) + len(s.also) for f in flows for s in f.steps)


def test_probe_trace_flows():
    # traces/README.md: 17 begins (32000012 x3, 32000013 x10, 32000003 x4); results 0 x13, ffff0004 x4
    flows, state, events = track(PROBE)
    assert events == 34 and in_flows(flows) == 34
    assert Counter(f.function for f in flows) == {"OPTEE_SMC_CALL_WITH_RPC_ARG": 3, "OPTEE_SMC_CALL_WITH_REGD_ARG": 10}
    assert all(f.result_name == "OPTEE_SMC_RETURN_OK" and f.incomplete is None for f in flows)
    assert sum(len(f.rpcs) for f in flows) == 4
    first = flows[0]  # lines 13-16: RPC_ARG -> FOREIGN_INTR (thread 0) -> RETURN_FROM_RPC -> OK
    assert (first.first_line, first.last_line, first.thread, first.task, first.cpus) == (13, 16, 0, "init", [1])
    assert first.rpcs[0].function == "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR" and first.rpcs[0].reply.line == 15
    assert first.duration == 1_771_296_000 - 1_766_597_000
    assert first.secure_ns + first.normal_ns == first.duration
    assert first.normal_ns == 1_769_979_000 - 1_769_791_000


def test_kprobe_twins_are_one_call_and_fast_calls_are_flows():
    flows, state, events = track(KRETPROBE)
    assert in_flows(flows) == events == 1068
    twins = [s for f in flows for s in f.steps if s.also]
    assert twins and all(len(s.also) == 2 for s in twins)  # the kprobe entry and the kretprobe return
    fast = [f.function for f in flows if f.fast]
    # abi.md §12: Linux 6.1 probe order, then the notification IRQ's GET_ASYNC_NOTIF_VALUE
    assert fast[:6] == ["OPTEE_SMC_CALLS_UID", "OPTEE_SMC_CALL_GET_OS_REVISION", "OPTEE_SMC_CALLS_REVISION",
                        "OPTEE_SMC_EXCHANGE_CAPABILITIES", "OPTEE_SMC_ENABLE_ASYNC_NOTIF",
                        "OPTEE_SMC_DISABLE_SHM_CACHE"]
    assert state.sec_caps.value == 0xF5 and state.rpc_param_count.value == 4
    assert state.thread_count is None  # 6.1 never asks
    assert state.async_notif_enabled is not None


def test_entry_probe_without_return_probe():
    flows, state, events = track(KPROBE_ONLY_ENTRY)
    assert in_flows(flows) == events
    fast = [f for f in flows if f.fast]
    assert fast and all(f.incomplete == "no return probe" for f in fast)
    assert all(f.incomplete is None for f in flows if not f.fast)


def test_nested_fast_call_from_irq_does_not_break_the_chain():
    # newkernel-kretprobe lines 627-632: GET_ASYNC_NOTIF_VALUE from hard IRQ inside a RETURN_FROM_RPC
    flows, state, events = track(NEWKERNEL)
    assert in_flows(flows) == events and all(f.incomplete is None for f in flows)
    chain = next(f for f in flows if any(s.call is not None and s.call.line == 627 for s in f.steps))
    assert chain.result_name == "OPTEE_SMC_RETURN_OK" and chain.function == "OPTEE_SMC_CALL_WITH_REGD_ARG"
    assert state.thread_count.value == 2  # Linux 6.12 asks GET_THREAD_COUNT at probe


def test_legacy_alloc_cookie_is_tracked(tmp_path):
    # OP-TEE 3.16: RPC ALLOC (lines 97-98, size 0xa0) answered at line 99:
    # (32000003, 0, 45eb9000, 0, ffff5bf3, 45e7a000, 0, 0): PA a1:a2, cookie a4:a5
    flows, state, _ = track(LEGACY)
    alloc = next(t for f in flows for t in f.rpcs if t.function == "OPTEE_SMC_RPC_FUNC_ALLOC")
    assert alloc.fields["size"] == 0xA0 and alloc.reply.line == 99 and alloc.thread == 0
    assert alloc.reply_fields == {"buf_pa": 0x45EB9000, "thread_id": 0, "cookie": 0xFFFF5BF345E7A000, "client_id": 0}
    assert alloc.reply_fields["cookie"] in state.cookies
    assert len(state.cookies) == 1  # kept by OP-TEE's SHM cache: never freed by RPC FREE
    assert state.shm_cache_enabled is not None


def test_ethread_limit_retries_join_the_flow(tmp_path):
    # an edited copy of the probe trace: the first call answered ETHREAD_LIMIT, then retried
    lines = lines_of(PROBE)  # times in order: a retry is a new SMC, not the first begin printed again
    begin, end = lines[12], lines[13]
    refused = end.replace(b"ret (ffff0004, 0, 0, 0)", b"ret (1, e597b220, 8000000100, 0)").replace(
        b"1.769791", b"1.766650")
    retry = begin.replace(b"1.766597", b"1.766700")
    edited = lines[:12] + [begin, refused, retry] + lines[13:]
    flows, state, events = track(tmp_path / "t.txt", b"\n".join(edited))
    assert in_flows(flows) == events
    assert flows[0].retries == 1 and flows[0].result_name == "OPTEE_SMC_RETURN_OK" and state.ethread_limit == 1
    assert len(flows) == 13


def test_missing_end_and_missing_begin(tmp_path):
    lines = lines_of(PROBE)
    no_end = lines[:13] + lines[14:]  # line 14 (the first end) removed
    flows, _, events = track(tmp_path / "a.txt", b"\n".join(no_end))
    assert in_flows(flows) == events and flows[0].incomplete == "no end"
    no_begin = lines[:12] + lines[13:]  # line 13 (the first begin) removed
    flows, _, events = track(tmp_path / "b.txt", b"\n".join(no_begin))
    assert in_flows(flows) == events and flows[0].incomplete == "no begin"


def test_lost_events_mark_flows_incomplete_not_misuse(tmp_path):
    lines = lines_of(PROBE)
    edited = lines[:13] + [b"CPU:1 [LOST 12 EVENTS]"] + lines[14:]  # the end of the first call was lost
    flows, state, events = track(tmp_path / "t.txt", b"\n".join(edited))
    assert state.lost == [(str(tmp_path / "t.txt"), 14, 1)]
    assert in_flows(flows) == events
    assert {f.incomplete for f in flows} >= {"no end"} or any(f.incomplete == "lost events" for f in flows)


def test_optee_console_lines_attach_to_the_flow_on_their_thread(tmp_path):
    # an edited copy: a real OP-TEE log line (dbg-probe uart1-secure.log) printed by thread 0 while the
    # first call of the probe trace (lines 13-16) waits for its RPC on OP-TEE thread 0
    lines = lines_of(PROBE)
    optee = b"D/TC:? 0 tee_ta_init_pseudo_ta_session:296 Lookup pseudo TA 7011a688-ddde-4053-a5a9-7b3c4ddf13b8"
    edited = lines[:14] + [optee] + lines[14:]
    flows, _, _ = track(tmp_path / "console.log", b"\n".join(edited))
    assert flows[0].thread == 0 and [m.line for m in flows[0].console] == [15]
    assert all(not f.console for f in flows[1:])
