"""Feature explanations on real captures (tests/data/explain/README.md says where each file
comes from): every file of one capture read into one tracker, then ``explain``.

Expected values come from ../shared/traces/qemu/README.md: dbg-kretprobe and legacy-os-* run the
Linux 6.1 driver (no GET_THREAD_COUNT), newkernel-kretprobe 6.12 (GET_THREAD_COUNT → 2),
misconf-nobl32 has no BL32 (CALLS_UID → SMC_UNK), legacy-os-* run OP-TEE 3.16 (sec caps 0x15, no
RPC_ARG nor ASYNC_NOTIF), nodynshm-lite has CFG_CORE_DYN_SHM=n, and the dbg-probe and nodynshm-lite
traces have only the optee tracepoints (no fast call, no result of one).
"""

import lzma
import re
from pathlib import Path, PurePath

import pytest

from smcwire.codec.decode import decoder
from smcwire.explain.features import FEATURES, Feature, explain
from smcwire.flows.tracker import Tracker
from smcwire.sources.reader import TraceReader

ROOT = Path(__file__).parent.parent
DATA = ROOT / "tests/data"
CAPTURES = {
    "dbg-kretprobe": [ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz",
                      ROOT / "traces/qemu-dbg-kretprobe/dmesg.txt"],
    "newkernel-kretprobe": [DATA / "ftrace/newkernel-kretprobe-ftrace.txt.xz",
                            DATA / "explain/newkernel-kretprobe-dmesg.txt"],
    "misconf-nobl32": [DATA / "ftrace/misconf-nobl32-ftrace.txt", DATA / "consoles/qemu-misconf-nobl32-dmesg.txt.xz",
                       DATA / "consoles/qemu-misconf-nobl32-tfa-console.log.xz"],
    "legacy-os-kretprobe": [DATA / "legacy-os-kretprobe-ftrace.txt.xz", DATA / "explain/legacy-os-kretprobe-dmesg.txt",
                            DATA / "explain/legacy-os-kretprobe-uart1-secure.log"],
    "legacy-os-probe": [DATA / "explain/legacy-os-probe-ftrace.txt",
                        DATA / "consoles/qemu-legacy-os-probe-dmesg.txt.xz",
                        DATA / "consoles/qemu-legacy-os-probe-uart1-secure.log.xz"],
    "nodynshm-lite": [DATA / "explain/nodynshm-lite-ftrace.txt.xz", DATA / "consoles/qemu-nodynshm-lite-dmesg.txt.xz",
                      DATA / "explain/nodynshm-lite-uart1-secure.log.xz"],
    "dbg-probe": [ROOT / "traces/qemu-dbg-probe/ftrace.txt", ROOT / "traces/qemu-dbg-probe/dmesg.txt",
                  DATA / "consoles/qemu-dbg-probe-uart1-secure.log.xz"],
    "dbg-xtest-excerpt": [DATA / "explain/dbg-xtest-ftrace-10001-14000.txt.xz"],
}


def features(files, profile="mainline") -> dict[str, Feature]:
    tracker = Tracker("capture", decoder(profile))
    for event in TraceReader.from_names([str(f) for f in files]):
        for _ in tracker.feed(event):
            pass
    for _ in tracker.finish():
        pass
    found = explain(tracker.state, profile)
    assert [f.feature for f in found] == list(FEATURES)
    return {f.feature: f for f in found}


@pytest.fixture(scope="module", params=CAPTURES)
def capture(request):
    return request.param, features(CAPTURES[request.param])


def lines(feature: Feature) -> set[tuple[str, int]]:
    return {(PurePath(file).name, line) for file, line in feature.evidence}


def test_every_reason_is_one_sentence_citing_its_evidence(capture):
    _, found = capture
    for f in found.values():
        assert f.reason and ". " not in f.reason and not f.reason.endswith("."), f
        for name, line in lines(f):  # "name:line", or ", line" after a line of the same file
            assert re.search(rf"{re.escape(name)}:{line}\b|{re.escape(name)}:[\d, ]*\b{line}\b", f.reason), (f, name)
        cited = set(re.findall(r"([\w.-]+):(\d+)", f.reason))
        assert {(n, int(x)) for n, x in cited} <= lines(f), f
        assert (f.active is None) == f.reason.startswith("unknown") or f.active is None and "but" in f.reason, f


def verdicts(found):
    return {name: (f.active, f.value) for name, f in found.items()}


# --- Linux 6.1, every SMC and its result ------------------------------------------------------
def test_dbg_kretprobe():
    found = features(CAPTURES["dbg-kretprobe"])
    assert verdicts(found) == {
        "driver_probe": (True, None), "dynamic_shm": (True, None), "reserved_shm": (False, None),
        "rpc_arg": (True, 4), "async_notif": (True, 0x42), "thread_count": (False, None),
        "system_thread_reservation": (False, None), "virtualization": (False, None)}
    assert found["driver_probe"].reason.startswith("the probe found OP-TEE 4.10 (ftrace.txt.xz:16)")
    assert lines(found["driver_probe"]) == {("ftrace.txt.xz", 16), ("ftrace.txt.xz", 14), ("ftrace.txt.xz", 20),
                                            ("dmesg.txt", 250)}
    # the calls the driver chose back the negotiated capabilities
    assert lines(found["dynamic_shm"]) == {("ftrace.txt.xz", 20), ("dmesg.txt", 249), ("ftrace.txt.xz", 33)}
    assert "CALL_WITH_REGD_ARG (ftrace.txt.xz:33)" in found["rpc_arg"].reason
    assert "ENABLE_ASYNC_NOTIF returned OK (ftrace.txt.xz:22)" in found["async_notif"].reason
    # 6.1: CALLS_REVISION (line 17) is followed by EXCHANGE_CAPABILITIES (line 19), no b200000f
    system = found["system_thread_reservation"]
    assert system.reason.startswith("this Linux has no system-thread support at all")
    assert lines(system) == {("ftrace.txt.xz", 17), ("ftrace.txt.xz", 19)}
    assert "without GET_THREAD_COUNT (0xb200000f), as Linux before 6.8 does" in found["thread_count"].reason


# --- Linux 6.12: GET_THREAD_COUNT at probe ----------------------------------------------------
def test_newkernel_thread_count():
    found = features(CAPTURES["newkernel-kretprobe"])
    count = found["thread_count"]
    assert (count.active, count.value) == (True, 2)
    assert count.reason.startswith("OP-TEE has 2 threads: GET_THREAD_COUNT returned 2 "
                                   "(newkernel-kretprobe-ftrace.txt.xz:20)")
    system = found["system_thread_reservation"]
    assert system.active is True and lines(system) == {("newkernel-kretprobe-ftrace.txt.xz", 20)}
    assert "more than 1" in system.reason
    assert verdicts(found)["async_notif"] == (True, 0x42)


def _edited(tmp_path, source: Path, line: int, old: str, new: str | None) -> Path:
    """A copy of a real capture with one line edited, or removed when ``new`` is None (in the test's
    temporary directory)."""
    text = lzma.decompress(source.read_bytes()).decode() if source.suffix == ".xz" else source.read_text()
    rows = text.split("\n")
    assert old in rows[line - 1], rows[line - 1]
    if new is None:
        del rows[line - 1]
    else:
        rows[line - 1] = rows[line - 1].replace(old, new)
    target = tmp_path / source.name.removesuffix(".xz")
    target.write_text("\n".join(rows))
    return target


def test_one_thread_cannot_be_reserved(tmp_path):
    """newkernel-kretprobe with GET_THREAD_COUNT answering 1 (line 20: r1=0x2 -> r1=0x1)."""
    trace = _edited(tmp_path, CAPTURES["newkernel-kretprobe"][0], 20, "r1=0x2 ", "r1=0x1 ")
    system = features([trace])["system_thread_reservation"]
    assert system.active is False
    assert system.reason.startswith("system sessions cannot get a reserved thread: GET_THREAD_COUNT returned 1 "
                                    "(newkernel-kretprobe-ftrace.txt:20)")


def test_thread_count_refused(tmp_path):
    """GET_THREAD_COUNT answered UNKNOWN_FUNCTION (line 20: r0=0x0 -> r0=0xffffffff), as an OP-TEE without it."""
    trace = _edited(tmp_path, CAPTURES["newkernel-kretprobe"][0], 20, "r0=0x0 ", "r0=0xffffffff ")
    found = features([trace])
    assert verdicts(found)["thread_count"] == (False, None)
    assert "GET_THREAD_COUNT returned 0xffffffff (SMC_UNK)" in found["thread_count"].reason
    assert found["system_thread_reservation"].active is False


# --- no BL32 ----------------------------------------------------------------------------------
def test_misconf_nobl32():
    found = features(CAPTURES["misconf-nobl32"])
    probe = found["driver_probe"]
    assert probe.active is False
    assert probe.reason == (
        "no OP-TEE behind the monitor: CALLS_UID returned 0xffffffff (SMC_UNK) (misconf-nobl32-ftrace.txt:14), "
        "TF-A said no BL32 was loaded (qemu-misconf-nobl32-tfa-console.log.xz:43), the driver logged 'api uid "
        "mismatch' (qemu-misconf-nobl32-dmesg.txt.xz:254), and its probe failed with error -22 "
        "(qemu-misconf-nobl32-dmesg.txt.xz:255)")
    assert [f.active for f in found.values()] == [False] * len(FEATURES)
    assert "not in use, the driver probe failed: 'api uid mismatch'" in found["dynamic_shm"].reason


def test_release_tfa_without_the_warning(tmp_path):
    """A release TF-A prints no WARNING: only the opteed init ERROR tells that OP-TEE is missing
    (tfa-console.log line 43, the WARNING, removed)."""
    files = CAPTURES["misconf-nobl32"]
    tfa = _edited(tmp_path, files[2], 43, "No OPTEE provided by BL2", None)
    found = features([files[0], tfa])
    assert found["driver_probe"].reason == (
        "no OP-TEE behind the monitor: CALLS_UID returned 0xffffffff (SMC_UNK) (misconf-nobl32-ftrace.txt:14), "
        "and TF-A said its OP-TEE dispatcher did not start (qemu-misconf-nobl32-tfa-console.log:43)")
    assert found["virtualization"].active is False


def test_probe_broken_by_capabilities(tmp_path):
    """EXCHANGE_CAPABILITIES answered ENOTAVAIL (newkernel line 22: r0=0x0 -> r0=0x7), without any driver log."""
    trace = _edited(tmp_path, CAPTURES["newkernel-kretprobe"][0], 22, "r0=0x0 ", "r0=0x7 ")
    found = features([trace])
    assert found["driver_probe"].active is False
    assert found["driver_probe"].reason.startswith("EXCHANGE_CAPABILITIES failed: EXCHANGE_CAPABILITIES returned "
                                                   "ENOTAVAIL (newkernel-kretprobe-ftrace.txt:22)")
    assert found["rpc_arg"].active is False


def test_probe_without_shared_memory(tmp_path):
    """Sec caps with neither SHM bit (newkernel line 22: r1=0xf5 -> r1=0xf0), as OP-TEE built without any."""
    trace = _edited(tmp_path, CAPTURES["newkernel-kretprobe"][0], 22, "r1=0xf5 ", "r1=0xf0 ")
    probe = features([trace])["driver_probe"]
    assert probe.active is False
    assert probe.reason.startswith("OP-TEE offers no shared memory at all: sec caps 0xf0 lack DYNAMIC_SHM (0x4) "
                                   "and HAVE_RESERVED_SHM (newkernel-kretprobe-ftrace.txt:22)")


# --- OP-TEE 3.16: no RPC_ARG, no async notifications ------------------------------------------
def test_legacy_kretprobe():
    found = features(CAPTURES["legacy-os-kretprobe"])
    assert verdicts(found) == {
        "driver_probe": (True, None), "dynamic_shm": (True, None), "reserved_shm": (False, None),
        "rpc_arg": (False, None), "async_notif": (False, None), "thread_count": (False, None),
        "system_thread_reservation": (False, None), "virtualization": (False, None)}
    rpc = found["rpc_arg"].reason
    assert rpc.startswith("OP-TEE does not offer it: sec caps 0x15 lack RPC_ARG (0x40) "
                          "(legacy-os-kretprobe-ftrace.txt.xz:20)")
    assert "OP-TEE 3.16 (legacy-os-kretprobe-ftrace.txt.xz:16) predates RPC_ARG" in rpc
    assert "CALL_WITH_ARG (legacy-os-kretprobe-ftrace.txt.xz:25)" in rpc and "ENABLE_SHM_CACHE" in rpc
    assert "'Asynchronous notifications are disabled' (legacy-os-kretprobe-uart1-secure.log:64)" in \
        found["async_notif"].reason


def test_legacy_probe_tracepoints_only():
    found = features(CAPTURES["legacy-os-probe"])
    assert verdicts(found)["rpc_arg"] == (False, None)
    assert found["rpc_arg"].reason.startswith("the driver uses CALL_WITH_ARG (legacy-os-probe-ftrace.txt:13), which it "
                                              "does only when OP-TEE did not offer RPC_ARG")
    assert "OP-TEE 3.16 (qemu-legacy-os-probe-dmesg.txt.xz:245)" in found["rpc_arg"].reason
    # no fast call in the capture: the thread count and system threads are not guessed
    assert found["thread_count"].active is None and found["system_thread_reservation"].active is None
    assert found["async_notif"].active is False


# --- CFG_CORE_DYN_SHM=n -----------------------------------------------------------------------
def test_nodynshm():
    found = features(CAPTURES["nodynshm-lite"])
    dynamic, reserved = found["dynamic_shm"], found["reserved_shm"]
    assert dynamic.active is False
    assert lines(dynamic) == {("qemu-nodynshm-lite-dmesg.txt.xz", 247), ("nodynshm-lite-uart1-secure.log.xz", 144)}
    assert "'Dynamic shared memory is disabled'" in dynamic.reason
    assert reserved.active is True and "'Reserved shared memory is enabled'" in reserved.reason
    assert verdicts(found)["rpc_arg"] == (True, None)  # CALL_WITH_RPC_ARG, never CALL_WITH_REGD_ARG


# --- tracepoints only: capabilities from the calls and the driver log -------------------------
def test_dbg_probe_inferred():
    found = features(CAPTURES["dbg-probe"])
    assert {name: f.active for name, f in found.items()} == {
        "driver_probe": True, "dynamic_shm": True, "reserved_shm": False, "rpc_arg": True, "async_notif": True,
        "thread_count": None, "system_thread_reservation": None, "virtualization": False}
    assert found["rpc_arg"].reason == (
        "the driver uses CALL_WITH_RPC_ARG (ftrace.txt:13) and CALL_WITH_REGD_ARG (ftrace.txt:17), which it does "
        "only when OP-TEE offered RPC_ARG")
    assert lines(found["dynamic_shm"]) == {("dmesg.txt", 247), ("ftrace.txt", 17)}
    assert "'Normal World virtualization support is disabled'" in found["virtualization"].reason


def test_ethread_limit_without_thread_count():
    """Linux 6.1 under xtest: ETHREAD_LIMIT answers show the driver does not count threads."""
    found = features(CAPTURES["dbg-xtest-excerpt"])
    count = found["thread_count"]
    assert (count.active, count.value) == (False, 2)  # 3 calls in flight when one was refused
    assert "ETHREAD_LIMIT 20 times, the first at dbg-xtest-ftrace-10001-14000.txt.xz:1005" in count.reason
    assert found["system_thread_reservation"].active is False


# --- the 2023 system-invocation proposals -----------------------------------------------------
def test_sysinv_capability():
    found = features(CAPTURES["dbg-kretprobe"][:1], "sysinv-v1")
    system = found["system_thread_reservation"]
    assert system.active is True and system.reason.startswith("sec caps 0xf5 have SYSTEM_THREAD (0x80)")
    v2 = features(CAPTURES["dbg-kretprobe"][:1], "sysinv-v2")["system_thread_reservation"]
    assert v2.active is False and "no answered RESERVE_SYS_THREAD" in v2.reason


def test_sysinv_thread_unused_without_dynamic_shm(tmp_path):
    """SYSTEM_THREAD offered without dynamic SHM (legacy line 20: r1=0x15 -> r1=0x91): v1 uses system
    threads only through REGD_ARG, the case of the LKML thread."""
    trace = _edited(tmp_path, CAPTURES["legacy-os-kretprobe"][0], 20, "r1=0x15 ", "r1=0x91 ")
    found = features([trace], "sysinv-v1")
    assert found["dynamic_shm"].active is False
    system = found["system_thread_reservation"]
    assert system.active is False and "needs dynamic shared memory" in system.reason
    assert ("legacy-os-kretprobe-ftrace.txt", 20) in lines(system)
    assert features([trace], "sysinv-flag")["system_thread_reservation"].active is True  # any call type
