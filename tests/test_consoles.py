"""Kernel-log, TF-A and OP-TEE console parsers (smcwire.sources.kernel, .tfa, .optee_log).

Real captures are in tests/data/consoles (README there gives each file's provenance); the
expected values below were read off those files. Constructed lines follow the printf formats that
formats.md §2.5, §3 and §4 quote from the Linux driver, TF-A and OP-TEE sources.
"""

from collections import Counter
from pathlib import Path

import pytest

from smcwire.model.events import BootMilestone, DriverMessage, OpteeMessage, RegisterDump, TfaMessage
from smcwire.sources import formats
from smcwire.sources.base import Malformed
from smcwire.sources.kernel import KernelLogParser
from smcwire.sources.optee_log import OpteeLogParser
from smcwire.sources.reader import TraceReader
from smcwire.sources.tfa import TfaParser

DATA = Path(__file__).parent / "data" / "consoles"


def read(name, input_format=None):
    """The events of a sample file and its FileStats, the lines always adding up."""
    reader = TraceReader([str(DATA / name)], input_format)
    events = list(reader)
    stats = reader.stats[0]
    assert stats.lines == stats.event_lines + stats.foreign + stats.malformed
    return events, stats


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def feed(parser_class, *lines):
    """Each line's outcome (a tuple of events, Malformed or None), then finish()'s events."""
    parser = parser_class("test")
    return [parser.feed(n, line.encode()) for n, line in enumerate(lines, 1)], parser.finish()


def one(parser_class, line):
    """The message event a line gives (the first of its events: a boot line adds a milestone)."""
    (out,), _ = feed(parser_class, line)
    assert out and not isinstance(out, Malformed), out
    return out[0]


# --- kernel log (formats.md §2.5) ---------------------------------------------------------

def test_dmesg_good_probe_optee_4_10():
    events, stats = read("qemu-dbg-probe-dmesg.txt.xz", "kernel")
    msgs = of(events, DriverMessage)
    assert [m.what for m in msgs] == ["probing", "revision", "async_notif", "dynamic_shm", "initialized"]
    revision = msgs[1]
    assert revision.data == {"major": 4, "minor": 10, "build_id": 0x753AFBBEE1682F5D}
    assert (revision.line, revision.ts) == (245, 1_760_413_000)
    assert revision.text == "optee: revision 4.10 (753afbbee1682f5d)"
    assert (stats.lines, stats.foreign, stats.malformed) == (248, 243, 0)


@pytest.mark.parametrize(("name", "whats"), [
    ("qemu-legacy-os-probe-dmesg.txt.xz", ["probing", "revision", "dynamic_shm", "initialized"]),
    ("qemu-nodynshm-lite-dmesg.txt.xz", ["probing", "revision", "async_notif", "initialized"]),
    ("qemu-misconf-nobl32-dmesg.txt.xz", ["probing", "uid_mismatch", "probe_failed"]),
    ("optee_os-issue-4600-rk3399-api-uid-mismatch.log", ["probing", "uid_mismatch", "probing", "initialized"]),
    ("optee_android_manifest-issue-19-hikey-api-uid-mismatch.log", ["probing", "uid_mismatch"]),
    ("optee_os-issue-5293-uboot-capabilities-mismatch.log", ["capabilities_mismatch"]),
    ("optee_os-pr-5762-rockpi4-probe-failed.log", ["probe_failed"]),
    ("optee_os-issue-4245-arm64-oops-optee_bus_scan.log", ["get_devices_failed"]),
])
def test_dmesg_samples(name, whats):
    events, stats = read(name, "kernel")
    assert [m.what for m in of(events, DriverMessage)] == whats
    assert stats.malformed == 0 and stats.foreign == stats.lines - len(whats)


def test_dmesg_sample_values():
    legacy = of(read("qemu-legacy-os-probe-dmesg.txt.xz", "kernel")[0], DriverMessage)
    assert legacy[1].data == {"major": 3, "minor": 16}  # OP-TEE 3.16 from git archive: build id 0, not printed
    nobl32 = of(read("qemu-misconf-nobl32-dmesg.txt.xz", "kernel")[0], DriverMessage)
    assert nobl32[2].text == "optee firmware:optee: probe with driver optee failed with error -22"
    assert nobl32[2].data == {"driver": "optee", "error": -22, "device": "firmware:optee"}
    assert nobl32[2].ts == 2_419_949_000
    (old,) = of(read("optee_os-pr-5762-rockpi4-probe-failed.log", "kernel")[0], DriverMessage)
    assert (old.ts, old.data) == (None, {"device": "firmware:optee", "error": -22})
    (uboot,) = of(read("optee_os-issue-5293-uboot-capabilities-mismatch.log", "kernel")[0], DriverMessage)
    assert (uboot.line, uboot.data) == (4, {"device": "optee"})
    (pta,) = of(read("optee_os-issue-4245-arm64-oops-optee_bus_scan.log", "kernel")[0], DriverMessage)
    assert pta.data == {"cmd": "PTA_CMD_GET_DEVICES", "err": 0xFFFF0009} and pta.ts == 11_943_583_000
    first = of(read("optee_os-issue-4600-rk3399-api-uid-mismatch.log", "kernel")[0], DriverMessage)[0]
    assert first.text == "optee: probing for conduit method from DT."


@pytest.mark.parametrize(("line", "ts", "what", "data"), [
    ("<6>[    1.744447] optee: revision 4.10 (753afbbee1682f5d)", 1_744_447_000, "revision",
     {"major": 4, "minor": 10, "build_id": 0x753AFBBEE1682F5D}),
    ("<4>optee: api revision mismatch", None, "api_revision_mismatch", {}),
    ("[    1.743088][    T1] optee: capabilities mismatch", 1_743_088_000, "capabilities_mismatch", {}),
    ("kern  :warn  : [    2.000001] optee: Unknown RPC func 0x7", 2_000_001_000, "unknown_rpc", {"func": 7}),
    ("[Wed Nov 25 17:21:03 2026] optee: static shm service not available", None, "static_shm_unavailable", {}),
    ("Nov 25 17:21:03 board kernel: [    3.5] optee: only normal cached shared memory supported", 3_500_000_000,
     "static_shm_not_cached", {}),
    ("Nov 25 17:21:03.123456 board kernel: optee: dynamic shared memory is enabled", None, "dynamic_shm", {}),
    ("2026-11-25T17:21:03.123456+00:00 board kernel: optee: shared memory ioremap failed", None,
     "static_shm_ioremap_failed", {}),
    ("08-03 17:15:47.235     0     0 W optee   : missing \"method\" property", None, "method_missing", {}),
    ("08-03 17:15:47.235 0 0 E : optee: invalid \"method\" property: svc", None, "method_invalid", {"method": "svc"}),
    ("[    9.1] optee: optee_handle_rpc: tee_shm_get_va 00000000a1b2c3d4 failed", 9_100_000_000,
     "rpc_shm_get_va_failed", {"function": "optee_handle_rpc", "shm": "00000000a1b2c3d4"}),
    ("[    1.0] optee: image loading failed", 1_000_000_000, "image_load_failed", {}),
    ("[    1.0] optee: OP-TEE image loaded from kernel, this can be insecure", 1_000_000_000, "image_loaded", {}),
    ("optee optee: OP-TEE api uid mismatch", None, "uid_mismatch", {"device": "optee"}),  # U-Boot
    ("[    1.0] optee: platform_get_irq: ret -6", 1_000_000_000, "other", {}),
])
def test_kernel_constructed_lines(line, ts, what, data):
    msg = one(KernelLogParser, line)
    assert (msg.ts, msg.what, msg.data) == (ts, what, data)


@pytest.mark.parametrize("line", [
    "[    1.0] optee: revision 4.x",
    "[    1.0] optee: revision 4.10 (753afbbee1682f5",  # cut by the terminal
    "optee: Unknown RPC func 0xzz",
    "optee firmware:optee: probe with driver optee failed with error EINVAL",
])
def test_kernel_malformed(line):
    (out,), _ = feed(KernelLogParser, line)
    assert isinstance(out, Malformed)


@pytest.mark.parametrize("line", [
    ("[    0.000000] OF: reserved mem: 0x0000000042000000..0x00000000421fffff (2048 KiB) nomap non-reusable "
     "optee_shm@42000000"),
    "[    1.0] tee: optee: whatever",
    "[   11.980614] Workqueue: optee_bus_scan optee_bus_scan",
    "1|root@hikey:/ # dmesg | grep optee..",
    "[    1.0] random: crng init done",
])
def test_kernel_foreign(line):
    assert feed(KernelLogParser, line)[0] == [None]


# --- TF-A console (formats.md §3) -----------------------------------------------------------

def stages(events):
    return [(m.stage, dict(m.data)) for m in of(events, BootMilestone)]


def test_tfa_debug_boot():
    events, stats = read("qemu-dbg-probe-tfa-console.log.xz", "tfa")
    assert (stats.lines, stats.event_lines, stats.foreign, stats.malformed) == (113, 113, 0, 0)
    assert Counter(m.level for m in of(events, TfaMessage)) == {"INFO": 82, "NOTICE": 9, "WARNING": 21, "ERROR": 1}
    version = {"version": "v2.15.0(debug):v2.15.0", "build": "debug"}
    assert stages(events) == [
        ("tfa_boot", {}), ("tfa_version", {"image": "BL1", **version}), ("bl_handoff", {"image": "BL1", "next": "BL2"}),
        ("tfa_version", {"image": "BL2", **version}), ("bl_handoff", {"image": "BL1", "next": "BL31"}),
        ("tfa_version", {"image": "BL31", **version}), ("bl31_init_bl32", {}),
        ("bl31_exit_to_normal_world", {"world": "normal"}),
    ]
    init = next(m for m in of(events, TfaMessage) if m.text == "BL31: Initializing BL32")
    assert (init.line, init.level, init.what) == (74, "INFO", "boot")
    assert of(events, TfaMessage)[37].text == "magic=0x4554504f"  # "INFO:          magic=…" continuation


def test_tfa_release_boot():
    events, stats = read("qemu-rel-probe-tfa-console.log", "tfa")
    assert (stats.lines, stats.event_lines) == (10, 10)
    assert [s for s, _ in stages(events)] == ["tfa_boot", "tfa_version", "bl_handoff", "tfa_version", "bl_handoff",
                                              "tfa_version"]
    assert stages(events)[5][1]["build"] == "release"
    last = of(events, TfaMessage)[-1]
    assert (last.level, last.text, last.what) == ("ERROR", "QEMU System Power off: with GPIO.", "message")


def test_tfa_verbose_and_unimplemented_call():
    events, stats = read("qemu-verbose-small-tfa-console.log.xz", "tfa")
    assert stats.event_lines == stats.lines == 175
    assert Counter(m.level for m in of(events, TfaMessage))["VERBOSE"] == 62
    (unimpl,) = [m for m in of(events, TfaMessage) if m.what == "unimplemented_smc"]
    assert (unimpl.line, unimpl.level) == (139, "VERBOSE")
    assert unimpl.data == {"service": "Standard Service", "smc_fid": 0x84000050}


def test_tfa_no_bl32():
    events, stats = read("qemu-misconf-nobl32-tfa-console.log.xz", "tfa")
    assert stats.event_lines == stats.lines == 104
    whats = Counter(m.what for m in of(events, TfaMessage))
    assert (whats["opteed_no_bl32"], whats["runtime_svc_init_failed"], whats["backtrace"]) == (1, 1, 8)
    svc = next(m for m in of(events, TfaMessage) if m.what == "runtime_svc_init_failed")
    assert (svc.line, svc.level, svc.data) == (44, "ERROR", {"service": "opteed_fast"})
    assert "bl31_init_bl32" not in [s for s, _ in stages(events)]
    backtrace = [m.data for m in of(events, TfaMessage) if m.what == "backtrace"]
    assert backtrace[0] == {"mark": "START", "cookie": "qemu_system_off"}
    assert backtrace[1] == {"frame": 0, "el": "EL3", "address": 0xE0923D4}
    assert backtrace[-1] == {"mark": "END", "cookie": "qemu_system_off"}


def test_tfa_public_samples():
    events, _ = read("optee_os-issue-400-juno-opteed-smc-unk.log", "tfa")
    assert [(m.level, m.what) for m in events] == [("ERROR", "runtime_svc_init_failed"), ("WARNING", "opteed_no_bl32")]
    events, stats = read("optee_os-issue-6158-hafnium-stage2-fault-tfa-boot.log", "tfa")
    assert events[0].level == "WARNING" and events[0].text.startswith("Stage-2 page fault: pc=0xe310670")
    assert (events[1].level, events[1].text) == ("NOTICE", "Injecting Data Abort exception into VM 0x8001.")
    assert stats.foreign == 1  # the blank line
    events, stats = read("manifest-issue-290-zcu104-tfa-panic-after-optee.log", "tfa")
    panic = of(events, TfaMessage)[0]
    assert (panic.line, panic.level, panic.what, panic.data) == (4, "", "panic", {"pc": 0x4188})
    assert stages(events) == [("bl31_exit_to_normal_world", {"world": "normal"})]
    events, _ = read("tf-issues-409-opteed-sp-entry-hang.log", "tfa")
    assert stages(events) == [("tfa_version", {"image": "BL31", "version": "v1.2(debug):test", "build": "debug"}),
                              ("bl31_init_bl32", {})]
    events, stats = read("optee_os-issue-3476-pine64-bl31-hang-before-bl32.log", "tfa")
    assert stats.foreign == 3 and {m.level for m in of(events, TfaMessage)} == {"NOTICE"}  # U-Boot SPL lines
    events, _ = read("buildroot-external-st-issue-72-stm32mp1-bl2-optee-header.log", "tfa")
    assert (events[0].level, events[0].text) == ("NOTICE", "CPU: STM32MP157FAD Rev.Z")  # stray leading blanks


@pytest.mark.parametrize(("line", "level", "what", "data"), [
    ("WARNING: Unimplemented PSCI Call: 0x84000099", "WARNING", "unimplemented_smc",
     {"service": "PSCI", "smc_fid": 0x84000099}),
    ("WARNING: Unimplemented Arm Architecture Service Call: 0x80000004 ", "WARNING", "unimplemented_smc",
     {"service": "Arm Architecture Service", "smc_fid": 0x80000004}),
    ("ERROR:   Unimplemented SiP Service Call: 0xc2000001", "ERROR", "unimplemented_smc",
     {"service": "SiP Service", "smc_fid": 0xC2000001}),
    ("WARNING: Unimplemented CPU Service call: 0x8600ff00", "WARNING", "unimplemented_smc",
     {"service": "CPU Service", "smc_fid": 0x8600FF00}),
    ("ERROR:   tlkd: Unhandled SMC: 0x72000001", "ERROR", "unimplemented_smc",
     {"service": "tlkd", "smc_fid": 0x72000001}),
    ("WARNING: Atf_debug psci_smc_handler smc_fid:8400000a", "WARNING", "smc_fid", {"smc_fid": 0x8400000A}),
    ("INFO:    sip_svc: smc_fid: c2000010, api_id=0x10", "INFO", "smc_fid", {"smc_fid": 0xC2000010}),
    ("INFO:    Delaying OP-TEE setup until we receive an SMC call to load it", "INFO", "opteed_delayed_setup", {}),
    ("INFO:    Loaded OP-TEE via SMC: size 1070080 addr 0xe100000", "INFO", "opteed_loaded",
     {"size": 1070080, "addr": 0xE100000}),
    ("ERROR:   opteed: synchronous entry attempted while active context exists", "ERROR", "opteed_error", {}),
    ("ERROR:   Unhandled External Abort received on 0x80000001 from EL3", "ERROR", "external_abort",
     {"mpidr": 0x80000001, "el": "EL3"}),
    ("ERROR:   exception reason=0 syndrome=0xbf000002", "ERROR", "external_abort",
     {"reason": 0, "syndrome": 0xBF000002}),
    ("E: Unimplemented SiP Service Call: 0x82000001", "ERROR", "unimplemented_smc",  # Broadcom prefix
     {"service": "SiP Service", "smc_fid": 0x82000001}),
    ("N: BL31: v2.9(release):v2.9", "NOTICE", "boot", {"image": "BL31", "version": "v2.9(release):v2.9",
                                                         "build": "release"}),
    ("VERBOSE: Argument #0 = 0xe065450", "VERBOSE", "message", {}),
    ("ASSERT: File lib/psci/psci_common.c Line 123", "", "assert", {"file": "lib/psci/psci_common.c", "line": 123}),
    ("ASSERT: bl31/bl31_main.c:87", "", "assert", {"file": "bl31/bl31_main.c", "line": 87}),
    ("PANIC at PC : 0x000000000e0923d4", "", "panic", {"pc": 0xE0923D4}),
])
def test_tfa_constructed_lines(line, level, what, data):
    msg = one(TfaParser, line)
    assert (msg.level, msg.what, msg.data) == (level, what, data)


def test_tfa_boot_failure_milestones():
    (failed, secure), _ = feed(TfaParser, "WARNING: BL31: BL32 initialization failed",
                               "INFO:    BL31: Preparing for EL3 exit to secure world")
    assert failed[1].stage == "bl32_init_failed" and failed[0].level == "WARNING"
    assert (secure[1].stage, secure[1].data) == ("bl31_exit_to_secure_world", {"world": "secure"})


@pytest.mark.parametrize("line", [
    "PANIC in EL3.", "Unhandled Exception in EL3.", "Unhandled Interrupt Exception in EL3.",  # regdump's (§3.5)
    "x30            = 0x0000000088000b78", "scr_el3        = 0x000000000003073d", "0x200:\t     0x0000000000000000",
    "WARNING: CPU: 1 PID: 33 at drivers/tee/optee/core.c:226 optee_bus_scan+0x24/0x38",  # kernel WARN()
    "ERROR:   TEE-CORE: user TA data-abort at address 0x0 (translation fault)",  # OP-TEE <= 2.x
    "U-Boot 2021.01 (Aug 09 2024 - 11:25:41 +0000)", "", "I/TC: Primary CPU initializing",
])
def test_tfa_foreign(line):
    assert feed(TfaParser, line)[0] == [None]


def test_tfa_crash_dump_left_to_regdump():
    _, stats = read("tfa-docs-firmware-design-bl31-crash-dump.log", "tfa")
    assert stats.foreign == stats.lines
    _, stats = read("qemu-misconf-nobl32-uart1-secure.log", "tfa")
    assert stats.foreign == stats.lines == 19


def test_tfa_malformed():
    (out,), _ = feed(TfaParser, "PANIC at PC : 0x00004188zz")
    assert isinstance(out, Malformed)


# --- OP-TEE console (formats.md §4) ---------------------------------------------------------

def prefixes(events):
    return Counter((m.level, m.origin, m.core, m.thread) for m in of(events, OpteeMessage))


def test_optee_4_10_debug_console():
    events, stats = read("qemu-dbg-probe-uart1-secure.log.xz", "optee")
    assert (stats.lines, stats.event_lines, stats.malformed) == (171, 171, 0)
    assert prefixes(events) == {("D", "TC", 0, 0): 83, ("D", "TC", 0, None): 59, ("I", "TC", None, None): 14,
                                ("D", "TC", None, 0): 11, ("D", "TC", 1, None): 3, ("D", "TC", 1, 0): 1}
    assert all(not m.text.endswith("\r") for m in of(events, OpteeMessage))  # CRLF file
    assert stages(events) == [
        ("optee_version", {"version": "4.10.0", "banner": "(gcc version 12.2.0 (Debian 12.2.0-14)) "
                                                          "#1 Wed Nov 25 17:10:10 UTC 2026 aarch64"}),
        ("optee_primary_init", {}), ("optee_to_normal_world", {}), ("optee_secondary_init", {"cpu": 1}),
        ("optee_secondary_to_normal_world", {"cpu": 1}),
    ]
    caps = {m.data["capability"]: m.data["enabled"] for m in of(events, OpteeMessage) if m.what == "capability"}
    assert caps == {"reserved_shm": True, "dynamic_shm": True, "ns_virtualization": False, "async_notif": True}
    first = of(events, OpteeMessage)[0]
    assert (first.func, first.func_line, first.guest) == ("collect_mem_ranges", 1148, None)


def test_optee_release_console():
    events, stats = read("qemu-rel-probe-uart1-secure.log", "optee")
    assert stats.event_lines == stats.lines == 14
    assert prefixes(events) == {("I", "TC", None, None): 14}
    assert [m.what for m in of(events, OpteeMessage)].count("capability") == 4


def test_optee_3_16_console():
    events, stats = read("qemu-legacy-os-probe-uart1-secure.log.xz", "optee")
    assert stats.event_lines == stats.lines == 74
    assert stages(events)[0][1]["version"] == "Unknown_3.16"
    caps = [(m.core, m.thread, m.func, m.data) for m in of(events, OpteeMessage) if m.what == "capability"]
    assert caps == [(1, None, "tee_entry_exchange_capabilities", {"capability": "async_notif", "enabled": False}),
                    (1, None, "tee_entry_exchange_capabilities", {"capability": "dynamic_shm", "enabled": True})]


def test_optee_xtest_console():
    events, stats = read("qemu-dbg-xtest-uart1-secure.log.xz", "optee")
    # last line cut, no newline; lines 1536 and 2215 start with '*' (contended console, trace_ext.c)
    assert (stats.lines, stats.event_lines, stats.malformed) == (2727, 2654, 0)
    msgs = of(events, OpteeMessage)
    whats = Counter(m.what for m in msgs)
    assert (whats["ta_panic"], whats["call_stack"], whats["stack_frame"], whats["capability"]) == (1, 1, 7, 4)
    panic = next(m for m in msgs if m.what == "ta_panic")
    assert (panic.line, panic.level, panic.core, panic.thread, panic.data) == (2522, "E", None, 0, {"code": 0})
    frames = [m for m in msgs if m.what == "stack_frame"]
    assert (frames[0].origin, frames[0].data, frames[-1].line) == ("LD", {"address": 0x400585B0}, 2544)
    assert prefixes(events)[("D", "LD", None, None)] == 354


def test_optee_3x_thread_column_abort():
    events, stats = read("optee_os-issue-2441-pta-core-data-abort.log", "optee")
    assert stats.event_lines == stats.lines == 26
    msgs = of(events, OpteeMessage)
    assert {(m.core, m.thread) for m in msgs} == {(None, 0)}  # one column: the thread (§4.2)
    assert (msgs[0].func, msgs[0].func_line) == ("tee_ta_init_pseudo_ta_session", 274)
    assert msgs[4].what == "abort"
    assert msgs[4].data == {"context": "Core", "type": "data", "address": 0x20, "fault": "translation fault"}
    (dump,) = of(events, RegisterDump)
    assert (dump.line, dump.last_line, dump.origin, dump.arch) == (5, 24, "optee_abort", "aarch64")
    assert dump.regs["esr"] == 0x96000006 and dump.regs["x1"] == 0xE158620 and dump.regs["x27"] == 0xFFFFFFFF
    assert dump.regs["elr"] == 0xE114320 and dump.regs["sp_el0"] == 0xE17C720 and dump.regs["cpsr"] == 0x80000104
    assert {f"x{i}" for i in range(31)} <= set(dump.regs)
    assert events.index(dump) == events.index(msgs[23]) + 1  # emitted with the sp_el0 line


def test_optee_core_abort_dumps_cut():
    events, _ = read("teaclave-trustzone-sdk-issue-174-core-data-abort.log", "optee")
    assert {(m.core, m.thread) for m in of(events, OpteeMessage)} == {(1, 0)}
    first, second = of(events, RegisterDump)
    assert (first.line, first.last_line, first.regs["x30"], first.regs["elr"]) == (1, 18, 0x236616AC, 0x236A0A28)
    assert "esr" not in first.regs  # the excerpt starts after the dump's esr line
    assert (second.line, second.last_line, second.regs["esr"], second.regs["x7"]) == (21, 27, 0x96000050, 0x1D00000)
    assert "x8" not in second.regs and events[-2] is second  # cut after x7, ended by the blank E/TC line


def test_optee_user_ta_abort_unknown_core():
    events, _ = read("optee_os-issue-4445-user-ta-data-abort-ldelf-regions.log", "optee")
    msgs = of(events, OpteeMessage)
    assert (msgs[0].core, msgs[0].thread, msgs[0].data["context"]) == (None, 0, "User TA")
    (dump,) = of(events, RegisterDump)
    assert (dump.line, dump.last_line, dump.regs["ttbr0"], dump.regs["x30"]) == (1, 20, 0x20000450FB080, 0x8001A860)
    assert [(m.origin, m.text) for m in msgs[20:22]] == [("LD", "Status of TA 5b9e0e40-2636-11e1-ad9e-0002a5d5c51b"),
                                                        ("LD", "arch: aarch64")]


def test_optee_legacy_tee_core_arm32_abort():
    events, stats = read("optee_os-issue-847-legacy-tee-core-arm32-abort.log", "optee")
    assert stats.event_lines == stats.lines == 18
    msgs = of(events, OpteeMessage)
    assert (msgs[0].level, msgs[0].origin, msgs[0].thread, msgs[0].func, msgs[0].func_line) == (
        "DEBUG", "TC", 0, "init_session_with_signed_ta", 616)
    assert (msgs[2].level, msgs[2].thread, msgs[2].what, msgs[2].data["context"]) == ("ERROR", None, "abort", "user TA")
    (dump,) = of(events, RegisterDump)
    assert (dump.line, dump.last_line, dump.arch) == (3, 9, "arm32")
    assert dump.regs == {
        "fsr": 0x805, "ttbr0": 0x7DF6D46A, "ttbr1": 0x7DF6806A, "cidr": 0x1, "cpsr": 0x80000130,
        "r0": 0x1, "r4": 0x1027B8, "r8": 0x7DF70D10, "r12": 0x7DF70C9C, "r1": 0x10275C, "r5": 0x122175,
        "r9": 0x7DF13F41, "sp": 0x102718, "r2": 0, "r6": 0x1026E8, "r10": 0x52A7B32C, "lr": 0x1057B9,
        "r3": 0, "r7": 0x102718, "r11": 0, "pc": 0x105648}


def test_optee_panic_at_smc_return():
    events, _ = read("optee_os-pr-5147-panic-at-smc-return.log", "optee")
    msgs = of(events, OpteeMessage)
    assert (msgs[1].core, msgs[1].thread, msgs[1].what) == (0, None, "panic")  # "E/TC:0   ": core 0, no thread
    assert msgs[1].data == {"file": "core/arch/arm/kernel/boot.c", "line": 122, "function": "__panic_at_smc_return"}
    assert (msgs[2].what, msgs[2].data) == ("load_address", {"address": 0xE100000})
    assert [m.data["address"] for m in msgs if m.what == "stack_frame"] == [0xE10D23C, 0xE124848, 0xE10BE60]


@pytest.mark.parametrize(("name", "expected"), [
    ("optee_os-issue-2477-hikey960-optee-core-mmap-debug.log", {("D", "TC", None, 0): 11}),
    ("optee_os-issue-4799-optee-add-phys-mem-core0-nothread.log", {("D", "TC", 0, None): 5}),
    ("optee_os-issue-5571-stm32mp-initcalls-switch-normal-world.log",
     {("D", "TC", 0, 0): 19, ("I", "TC", None, None): 1}),
    ("optee_os-issue-7216-qemuv8-ldelf-session-debug.log", {("D", "TC", None, 0): 14, ("D", "LD", None, None): 2}),
    ("optee_os-issue-5293-uboot-capabilities-mismatch.log", {("D", "TC", 0, None): 2}),
])
def test_optee_prefix_generations(name, expected):
    events, stats = read(name, "optee")
    assert prefixes(events) == expected and stats.malformed == 0


def test_optee_func_line_and_padding():
    events, _ = read("optee_os-issue-4799-optee-add-phys-mem-core0-nothread.log", "optee")
    assert {(m.func, m.func_line) for m in events} == {("add_phys_mem", 565)}
    events, _ = read("optee_os-issue-7216-qemuv8-ldelf-session-debug.log", "optee")
    ldelf = next(m for m in events if m.origin == "LD")
    assert (ldelf.func, ldelf.func_line, ldelf.text[:4]) == ("ldelf", 176, "ELF ")
    events, _ = read("OP-TEE-build-pr-857-versal-optee-4.9-boot.log", "optee")
    assert stages(events)[0][1]["version"] == "4.9.0-36-g324a18261"
    assert not events[0].text.endswith(" ")  # terminal padding
    caps = of(read("optee_os-issue-5293-uboot-capabilities-mismatch.log", "optee")[0], OpteeMessage)
    assert [(m.func_line, m.data) for m in caps] == [(100, {"capability": "async_notif", "enabled": False}),
                                                    (109, {"capability": "dynamic_shm", "enabled": False})]


def test_optee_secondary_cpus():
    events, _ = read("optee_os-issue-4791-rpi3-secondary-cpu-bl31-exit.log", "optee")
    assert stages(events) == [("optee_to_normal_world", {})] + [
        (stage, {"cpu": cpu}) for cpu in (1, 2, 3)
        for stage in ("optee_secondary_init", "optee_secondary_to_normal_world")]  # the last line is truncated


@pytest.mark.parametrize(("line", "fields"), [
    # (guest, core, thread, func, func_line, text) — formats.md §4.1 examples and print_*_id() widths
    ("D/TC:113 060 mobj_ffa_get_by_cookie:370 cookie 0x1",
     (None, 113, 60, "mobj_ffa_get_by_cookie", 370, "cookie 0x1")),
    ("D/TC:??? 061 do_notif:36 sleep", (None, None, 61, "do_notif", 36, "sleep")),
    ("E/TC:?? 0 TA panicked with code 0x1", (None, None, 0, None, None, "TA panicked with code 0x1")),
    ("D/TC:1 0 0 tee_entry_std:540 guest call", (1, 0, 0, "tee_entry_std", 540, "guest call")),  # virtualization
    ("D/TC:0 ? 0 nex_alloc:20 nexus", (0, None, 0, "nex_alloc", 20, "nexus")),
    ("F/TC:0 0 dt_driver_probe:33 probe", (None, 0, 0, "dt_driver_probe", 33, "probe")),
    ("I/TC:  OP-TEE version: 3.1.0 #1 Fri Jun  1 00:00:00 UTC 2018 aarch64",  # 3.0-3.2 INFO: blank thread
     (None, None, None, None, None, "OP-TEE version: 3.1.0 #1 Fri Jun  1 00:00:00 UTC 2018 aarch64")),
    ("M/TA: enter", (None, None, None, None, None, "enter")),
    ("E/TA:  read_raw_object:172 Failed to open", (None, None, None, "read_raw_object", 172, "Failed to open")),
    ("INF [0x2] TEE-CORE:tee_entry_std:80: vendor", (None, None, 2, "tee_entry_std", 80, "vendor")),
    ("INFO:    TEE-CORE: Initializing (1.1.0)", (None, None, None, None, None, "Initializing (1.1.0)")),
])
def test_optee_constructed_prefixes(line, fields):
    msg = one(OpteeLogParser, line)
    assert (msg.guest, msg.core, msg.thread, msg.func, msg.func_line, msg.text) == fields


def test_optee_one_number_decided_per_file():
    ambiguous = "E/TC:1   Panic at core/kernel/panic.c:10 <f>"
    v3_3 = feed(OpteeLogParser, "D/TC:0 0 call_initcalls:40 level 1", ambiguous)[0][1][0]
    assert (v3_3.core, v3_3.thread) == (1, None)  # core 1, thread field blank
    v3_0 = feed(OpteeLogParser, "D/TC:0 add_phys_mem:526 TA_RAM", ambiguous)[0][1][0]
    assert (v3_0.core, v3_0.thread, v3_0.what) == (None, 1, "panic")  # the file's one column is the thread
    alone = one(OpteeLogParser, ambiguous)
    assert (alone.core, alone.thread) == (1, None)  # blanks after the number: a thread field


@pytest.mark.parametrize(("text", "what", "data"), [
    ("Unknown SMC 0x32000099", "unknown_smc", {"fid": 0x32000099}),
    ("Bad arg address 0x45df2000", "bad_arg_address", {"address": 0x45DF2000}),
    ("Bad arg cookie 0xffff5bf345b2d400", "bad_arg_cookie", {"cookie": 0xFFFF5BF345B2D400}),
    ("Unknown cmd 0x11", "unknown_cmd", {"cmd": 0x11}),
    ("RPC allocation failed. Non-secure world result: ret=0xffff000c ret_origin=0x2", "rpc_alloc_failed",
     {"ret": 0xFFFF000C, "ret_origin": 2}),
    ("RPC allocation failed. Non-secure world result: ret=0 ret_origin=0", "rpc_alloc_failed",
     {"ret": 0, "ret_origin": 0}),
    ("Halting CPU 1", "boot", {"cpu": 1}),
    ("Panic", "panic", {}),
    ("Panic 'out of memory' at core/mm/mobj.c:44 <mobj_alloc>", "panic",
     {"message": "out of memory", "file": "core/mm/mobj.c", "line": 44, "function": "mobj_alloc"}),
    ("User TA prefetch-abort at address 0x40001000 [tagged 0x0f00000040001000] (tag check fault)", "abort",
     {"context": "User TA", "type": "prefetch", "address": 0x40001000, "fault": "tag check fault"}),
    ("Asynchronous notifications started, event 0 (vm 0)", "message", {}),
])
def test_optee_smc_information(text, what, data):
    msg = one(OpteeLogParser, "E/TC:0 0 " + text)
    assert (msg.what, msg.data) == (what, data)


@pytest.mark.parametrize("line", ["E/TC:0 0 Unknown SMC 0xzz", "E/TC:0 0 Bad arg address 45df2000",
                                  "E/TC:0 0 RPC allocation failed. Non-secure world result: ret=",
                                  "D/TC:x func:1 bad prefix"])
def test_optee_malformed(line):
    (out,), _ = feed(OpteeLogParser, line)
    assert isinstance(out, Malformed)


@pytest.mark.parametrize("line", ["NOTICE:  BL31: v2.15.0", "d/tc:0 0 lower case",
                                  "x30            = 0x000000000e097f14", "", "Did not find a TA"])
def test_optee_foreign(line):
    assert feed(OpteeLogParser, line)[0] == [None]


def test_optee_arm32_abort_dump():
    lines = ["E/TC:0 1 ", "E/TC:0 1 Core undef-abort at address 0xc0100000",
             "E/TC:0 1  fsr 0x00000000  ttbr0 0x0e17c000  ttbr1 0x00000000  cidr 0x0",
             "E/TC:0 1  cpu #0          cpsr 0x600001d3",
             "E/TC:0 1  r0 0x00000001      r4 0x0e1a0000    r8 0x00000000   r12 0x00000000",
             "E/TC:0 1  r1 0x00000002      r5 0x00000000    r9 0x00000000    sp 0x0e1b3f60",
             "E/TC:0 1  r2 0x00000003      r6 0x00000000   r10 0x00000000    lr 0x0e101234",
             "E/TC:0 1  r3 0x00000004      r7 0x00000000   r11 0x00000000    pc 0xc0100000",
             "D/TC:0 1 abort_handler:560 [abort] abort in core"]
    outs, rest = feed(OpteeLogParser, *lines)
    assert rest == () and [len(o) for o in outs] == [1, 1, 1, 1, 1, 1, 1, 2, 1]
    dump = outs[7][1]
    assert (dump.line, dump.last_line, dump.arch, dump.regs["pc"], dump.regs["r3"]) == (2, 8, "arm32", 0xC0100000, 4)


def test_optee_dump_cut_at_end_of_input():
    outs, rest = feed(OpteeLogParser, "E/TC:? 0 User TA data-abort at address 0x0",
                      "E/TC:? 0  esr 0x92000045  ttbr0 0x200000e2a3000   ttbr1 0x00000000   cidr 0x0")
    assert [len(o) for o in outs] == [1, 1]
    (dump,) = rest
    assert (dump.line, dump.last_line, dump.arch, dump.regs["esr"]) == (1, 2, "aarch64", 0x92000045)


def test_optee_dump_ended_by_next_error_line():
    outs, rest = feed(OpteeLogParser, "E/TC:0 0 Core data-abort at address 0x0",
                      "E/TC:0 0  x0  0000000000000001 x1  0000000000000002", "E/TC:0 0 TEE load address @ 0xe100000")
    assert rest == () and isinstance(outs[2][0], RegisterDump) and outs[2][0].regs == {"x0": 1, "x1": 2}
    assert outs[2][1].what == "load_address"


# --- console mode: one pass over interleaved TF-A, OP-TEE and Linux lines -------------------

@pytest.fixture
def console_of_these_parsers(monkeypatch):
    """Console mode with only the kernel, TF-A and OP-TEE families (exact foreign counts)."""
    monkeypatch.setattr(formats, "FAMILIES", ("optee_log", "tfa", "kernel"))
    formats.parsers.cache_clear()
    yield
    formats.parsers.cache_clear()


def test_parsers_registered():
    names = formats.parsers()
    assert (names["kernel"], names["tfa"], names["optee"]) == (KernelLogParser, TfaParser, OpteeLogParser)


def test_console_uart0_capture(console_of_these_parsers):
    events, stats = read("qemu-rel-probe-uart0-normal.log.xz")
    assert (stats.format, stats.lines, stats.malformed) == ("console", 547, 0)
    assert stats.events == {"tfa_message": 10, "boot_milestone": 6, "driver_message": 10}
    assert stats.foreign == stats.lines - 20
    revisions = [m.line for m in of(events, DriverMessage) if m.what == "revision"]
    assert len(revisions) == 2 and revisions[0] == 248  # the console, then the dmesg dump


def test_console_interleaved_optee_and_tfa(console_of_these_parsers):
    events, stats = read("manifest-issue-290-zcu104-tfa-panic-after-optee.log")
    assert [(type(e).__name__, e.line) for e in events if not isinstance(e, BootMilestone)] == [
        ("OpteeMessage", 2), ("OpteeMessage", 3), ("TfaMessage", 4), ("OpteeMessage", 8), ("OpteeMessage", 9),
        ("TfaMessage", 10), ("TfaMessage", 11), ("TfaMessage", 12)]
    assert [e.stage for e in of(events, BootMilestone)] == ["optee_to_normal_world", "optee_to_normal_world",
                                                            "bl31_exit_to_normal_world"]
    assert stats.foreign == 11
    events, _ = read("optee_os-issue-847-legacy-tee-core-arm32-abort.log")
    assert not of(events, TfaMessage)  # ERROR:   TEE-CORE: is OP-TEE's


@pytest.mark.parametrize("name", ["qemu-rel-probe-uart0-normal.log.xz", "qemu-dbg-xtest-uart1-secure.log.xz",
                                  "qemu-misconf-nobl32-tfa-console.log.xz", "qemu-dbg-probe-dmesg.txt.xz"])
def test_console_all_families(name):
    """Every family at once: the lines add up and these parsers' events are unchanged."""
    _, stats = read(name)
    alone = Counter()
    for fmt in ("optee", "tfa", "kernel"):
        alone.update(read(name, fmt)[1].events)
    for kind in ("optee_message", "tfa_message", "driver_message", "boot_milestone"):
        assert stats.events[kind] == alone[kind], kind


def test_contended_console_marker():
    # core/kernel/trace_ext.c: '*' before a line printed while the console was contended
    (event,) = OpteeLogParser("t").feed(1, b"*D/TC:? 1 do_notif:34 sleep")
    assert (event.level, event.core, event.thread, event.func, event.text) == ("D", None, 1, "do_notif", "sleep")
