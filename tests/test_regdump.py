"""Register dumps (formats.md §3.5, §5): real samples from tests/data/consoles (README there) and
dumps built from the exact printf formats of the programs that print them."""

import json
from pathlib import Path

import pytest

from smcwire.model.events import RegisterDump
from smcwire.sources import formats
from smcwire.sources.base import Malformed
from smcwire.sources.reader import TraceReader
from smcwire.sources.regdump import RegdumpParser
from smcwire.sources.regset import smc_registers

DATA = Path(__file__).parent / "data" / "consoles"  # the samples are shared with test_consoles.py
TFA_DOCS = DATA / "tfa-docs-firmware-design-bl31-crash-dump.log"
DBG_XTEST = DATA / "qemu-dbg-xtest-uart1-secure.log.xz"
ISSUE_4245 = DATA / "optee_os-issue-4245-arm64-oops-optee_bus_scan.log"
NOBL32 = DATA / "qemu-misconf-nobl32-uart1-secure.log"


@pytest.fixture(autouse=True)
def regs_only(monkeypatch):
    """Formats are chosen among this family alone: the other families have their own tests."""
    monkeypatch.setattr(formats, "parsers", lambda: {"regs": RegdumpParser})


def parse(lines):
    """Feed lines to one parser: (dumps in the order emitted, outcome per line)."""
    parser = RegdumpParser("t")
    outcomes = [parser.feed(n, x.encode() if isinstance(x, str) else x) for n, x in enumerate(lines, 1)]
    dumps = [e for o in outcomes if o is not None and type(o) is not Malformed for e in o]
    return dumps + list(parser.finish()), outcomes


def read(path, input_format="regs"):
    """All events of a file through TraceReader, and its line accounting."""
    reader = TraceReader([str(path)], input_format)
    events = list(reader)
    stats = reader.stats[0]
    assert stats.lines == stats.event_lines + stats.foreign + stats.malformed
    return events, stats


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def malformed(outcomes):
    return {n: o.reason for n, o in enumerate(outcomes, 1) if type(o) is Malformed}


# -- real samples ---------------------------------------------------------------------------------


def test_tfa_docs_crash_dump():
    (dump,), stats = read(TFA_DOCS, None)  # auto-detected: a file of dump lines only
    assert stats.format == "regs" and (stats.lines, stats.event_lines, stats.foreign, stats.malformed) == (98, 98, 0, 0)
    assert (dump.origin, dump.arch, dump.line, dump.last_line) == ("tfa_crash", "aarch64", 1, 98)
    assert dump.regs["x0"] == 0x2A4A0000 and dump.regs["x29"] == 0x29 and dump.regs["x30"] == 0x88000B78
    assert dump.regs["elr_el3"] == 0x88000114 and dump.regs["icc_ctlr_el3"] == 0x80400
    assert dump.regs["gicd_ispendr+0x200"] == 0 and "gicd_ispendr+0x278" in dump.regs
    assert len(dump.regs) == 31 + 49 + 16  # x0-x30, the system registers, the table rows
    regset = smc_registers(dump)
    assert regset.regs == (0x2A4A0000, 1, 2, 3, 4, 5, 6, 7) and regset.names == tuple(f"x{i}" for i in range(8))
    assert regset.arch == "aarch64"
    assert regset.explanation.startswith("a0-a7 = x0-x7: on AArch64 the SMC Calling Convention passes a0-a7 in x0-x7")
    assert "EL3's x0-x7 when BL31 crashed" in regset.explanation
    assert "only if the crash came early in the SMC handler" in regset.explanation


@pytest.mark.parametrize("input_format", ["regs", None])
def test_dbg_xtest_power_off_crash_dump(input_format):
    """TF-A v2.15's PANIC in EL3 at the end of an OP-TEE console (CRLF), cut off mid-value."""
    (dump,), stats = read(DBG_XTEST, input_format)
    assert stats.format == ("regs" if input_format else "console")
    assert (stats.lines, stats.event_lines, stats.foreign, stats.malformed) == (2727, 67, 2659, 1)
    reason = "gicd_ispendr+0x268: '000000000' has 9 hex digits, the format prints 16 or 32"
    assert stats.diagnostics == [f"{DBG_XTEST}:2727: {reason}"]
    assert (dump.origin, dump.arch, dump.line, dump.last_line) == ("tfa_crash", "aarch64", 2660, 2726)
    assert dump.regs["x30"] == 0xE097F14 and dump.regs["elr_el3"] == 0xE587B8BC
    assert dump.regs["esr_el3"] == 0x5E000000 and dump.regs["scr_el3"] == 0xE38 and dump.regs["gicc_ctlr"] == 0xB
    assert dump.regs["gicd_ispendr+0x200"] == 0x8000000 and "gicd_ispendr+0x268" not in dump.regs
    regset = smc_registers(dump)
    assert regset.regs == (0x9000000, 0x90, 0x90, 0xFFFFFFC8, 0, 0, 0xE0C1900, 0)


def test_truncated_crash_dump():
    """TF-A's power-off panic on a secure UART with no OP-TEE, cut off in the middle of x16."""
    (dump,), stats = read(NOBL32, None)
    assert (stats.format, stats.lines, stats.event_lines, stats.foreign, stats.malformed) == ("regs", 19, 18, 0, 1)
    assert stats.diagnostics == [f"{NOBL32}:19: x16: '000' has 3 hex digits, the format prints 16 or 32"]
    assert (dump.origin, dump.line, dump.last_line, len(dump.regs)) == ("tfa_crash", 1, 18, 17)
    assert dump.regs["x13"] == 0x6E776F6420726577 and "x16" not in dump.regs
    assert smc_registers(dump).regs == (0x9000000, 0x90, 0x90, 0xFFFFFFC8, 0, 0, 0xE0C8980, 1)


def test_issue_4245_arm64_oops_with_paste_damage():
    (dump,), stats = read(ISSUE_4245)
    assert (stats.lines, stats.event_lines, stats.foreign, stats.malformed) == (20, 11, 7, 2)
    assert stats.diagnostics == [f"{ISSUE_4245}:19: x14: '0000000' has 7 hex digits, the format prints 16",
                                 f"{ISSUE_4245}:20: x13: '000000' has 6 hex digits, the format prints 16"]
    assert (dump.origin, dump.arch, dump.line, dump.last_line) == ("linux_arm64_oops", "aarch64", 8, 18)
    assert dump.regs["pstate"] == 0x80400005 and dump.regs["sp"] == 0xFFFFFFC013A13DA0
    assert dump.regs["x29"] == 0xFFFFFFC013A13DA0 and dump.regs["x22"] == 0xFFFFFFFEBFEB1800
    assert dump.regs["x21"] == 0xFFFFFF847F99BDC0  # the "] [   12.030523] x21: …" line
    assert dump.regs["x16"] == 0 and "x15" not in dump.regs  # the x15/x14 line is broken as a whole
    assert smc_registers(dump) is None  # the paste stops before x0
    assert RegdumpParser.sniff(ISSUE_4245.read_bytes().splitlines()) < formats.CERTAIN


# -- gdb ------------------------------------------------------------------------------------------


def gdb_line(name, value, natural=None):
    """gdb's `info registers` row: name to column 15, raw value to column 34, natural value."""
    return f"{name:<15}{value:<#19x}{value if natural is None else natural}"


GDB_AARCH64 = ["(gdb) info registers",
               gdb_line("x0", 0x32000004), gdb_line("x1", 0), gdb_line("x2", 0x7E5A1000),
               *[gdb_line(f"x{i}", 0) for i in range(3, 30)],
               gdb_line("x30", 0xFFFF8000108A3B10, "0xffff8000108a3b10 <optee_smccc_smc+32>"),
               gdb_line("sp", 0xFFFF80001234BD70, "0xffff80001234bd70"),
               gdb_line("pc", 0xFFFF8000108A3C40, "0xffff8000108a3c40 <arm_smccc_smc+16>"),
               gdb_line("cpsr", 0x600003C5, "[ EL=1 BTYPE=0 SSBS D A I F V Z SP ]"),
               gdb_line("fpsr", 0, "[ ]"), gdb_line("fpcr", 0, "[ Len=0 Stride=0 RMode=0 ]"),
               "(gdb) "]


def test_gdb_aarch64_info_registers(tmp_path):
    path = write(tmp_path, "gdb.txt", GDB_AARCH64)
    assert RegdumpParser.sniff(path.read_bytes().splitlines()) >= formats.CERTAIN
    (dump,), stats = read(path, None)
    assert (stats.format, stats.event_lines, stats.foreign) == ("regs", 36, 2)  # the prompts are foreign
    assert (dump.origin, dump.arch, dump.line, dump.last_line) == ("gdb", "aarch64", 2, 37)
    assert dump.regs["x0"] == 0x32000004 and dump.regs["pc"] == 0xFFFF8000108A3C40 and dump.regs["cpsr"] == 0x600003C5
    regset = smc_registers(dump)
    assert regset.regs == (0x32000004, 0, 0x7E5A1000, 0, 0, 0, 0, 0)
    assert "The x/w names mean AArch64" in regset.explanation and "where gdb stopped" in regset.explanation


def test_gdb_arm32_info_registers():
    lines = [gdb_line(f"r{i}", 0x32000004 if i == 0 else i) for i in range(13)]
    lines += [gdb_line("sp", 0, "0x0 <_Reset>"), gdb_line("lr", 0x60000010, "0x60000010 <main+16>"),
              gdb_line("pc", 0x6000001C, "0x6000001c <main+28>"), gdb_line("cpsr", 0x400001D3, 1073742291)]
    (dump,), outcomes = parse(lines)
    assert outcomes[-1] == () and (dump.origin, dump.arch, dump.last_line) == ("gdb", "arm32", 17)
    regset = smc_registers(dump)
    assert regset.names == tuple(f"r{i}" for i in range(8)) and regset.regs == (0x32000004, 1, 2, 3, 4, 5, 6, 7)
    assert regset.explanation.startswith("a0-a7 = r0-r7: on AArch32")


def test_gdb_print_registers():
    lines = ["(gdb) p/x $x0", "$1 = 0x32000004", "(gdb) p/x $x1", "$2 = 0x0", "(gdb) p $x2", "$3 = -1",
             "(gdb) print $w3", "$4 = 4096", "(gdb) continue"]
    (dump,), outcomes = parse(lines)
    assert outcomes == [None, (), None, (), None, (), None, (), None]
    assert (dump.origin, dump.line, dump.last_line) == ("gdb", 2, 8)
    assert dump.regs == {"x0": 0x32000004, "x1": 0, "x2": 0xFFFFFFFFFFFFFFFF, "w3": 0x1000}
    assert parse(["$1 = 0x32000004"])[0] == []  # no print of a register before it


# -- QEMU monitor ---------------------------------------------------------------------------------


def qemu_aarch64(x):
    """`info registers` as target/arm/cpu.c aarch64_cpu_dump_state prints it (with the FPU)."""
    out = f" PC={0xFFFF8000108A3C40:016x} "
    for i in range(31):
        out += f"X{i:02d}={x[i]:016x}" + (" " if (i + 2) % 3 else "\n")
    out += f" SP={0xFFFF80001234BD70:016x}\n"
    out += "PSTATE=600003c5 -ZC- NS EL1h  BTYPE=0     FPCR=00000000 FPSR=00000010\n"
    for i in range(32):
        out += f"Q{i:02d}={i:016x}:{0:016x}" + ("\n" if i & 1 else " ")
    return out.splitlines()


def test_qemu_aarch64(tmp_path):
    x = [0x32000004, 0, 0x7E5A1000, *range(3, 31)]
    lines = [*qemu_aarch64(x), "(qemu) "]
    path = write(tmp_path, "qemu.txt", lines)
    assert RegdumpParser.sniff(path.read_bytes().splitlines()) >= formats.CERTAIN
    (dump,), stats = read(path, None)
    assert (stats.format, stats.lines, stats.event_lines, stats.foreign) == ("regs", 29, 28, 1)
    assert (dump.origin, dump.arch, dump.line, dump.last_line) == ("qemu", "aarch64", 1, 28)
    assert [dump.regs[f"x{i}"] for i in range(31)] == x
    assert dump.regs["pc"] == 0xFFFF8000108A3C40 and dump.regs["sp"] == 0xFFFF80001234BD70
    assert dump.regs["pstate"] == 0x600003C5 and dump.regs["fpsr"] == 0x10 and dump.regs["q31"] == 31 << 64
    (dump,), outcomes = parse(lines)
    assert outcomes[27] == (dump,)  # emitted on its last line (Q30/Q31), not at the end


def test_qemu_arm32():
    lines = [" ".join(f"R{i:02d}={(0x32000004 if i == 0 else i):08x}" for i in range(r, r + 4)) for r in (0, 4, 8, 12)]
    lines.append("PSR=600001d3 -ZC- A S svc32")
    lines += [f"s{2 * i:02d}=00000000 s{2 * i + 1:02d}=00000000 d{i:02d}={0:016x}" for i in range(16)]
    lines.append("FPSCR: 00000000")
    (dump,), outcomes = parse(lines)
    assert outcomes[-1] == (dump,) and (dump.origin, dump.arch, dump.line, dump.last_line) == ("qemu", "arm32", 1, 22)
    assert dump.regs["r0"] == 0x32000004 and dump.regs["r15"] == 15 and dump.regs["psr"] == 0x600001D3
    assert dump.regs["d15"] == 0 and dump.regs["fpscr"] == 0
    assert smc_registers(dump).regs == (0x32000004, 1, 2, 3, 4, 5, 6, 7)


# -- Linux oops -----------------------------------------------------------------------------------


def arm64_x_rows(x, per_line):
    """`x29: …` down to `x0` as arch/arm64/kernel/process.c __show_regs prints them: 3 a line
    (Linux >= 5.13) or 2 a line with a trailing blank (older)."""
    end = "" if per_line == 3 else " "
    return [" ".join(f"x{j:<2d}: {x[j]:016x}" for j in range(top, max(top - per_line, -1), -1)) + end
            for top in range(29, -1, -per_line)]


@pytest.mark.parametrize("per_line", [3, 2])
def test_linux_arm64_oops(per_line):
    x = [0x32000004, 0, 0x7E5A1000, *[0xFFFFFFC0135A6000 + i for i in range(3, 30)]]
    body = ["pstate: 80400005 (Nzcv daif +PAN -UAO -TCO BTYPE=--)",
            "pc : arm_smccc_smc+0x10/0x20", "lr : optee_smccc_smc+0x40/0x60 [optee]", "sp : ffffffc013a13da0",
            *arm64_x_rows(x, per_line)]
    lines = ["[   11.980614] Workqueue: optee_bus_scan optee_bus_scan",
             *(f"[   11.99{i:04d}] {b}" for i, b in enumerate(body)), "[   12.1] Call trace:"]
    (dump,), outcomes = parse(lines)
    assert outcomes[len(body)] == (dump,) and outcomes[0] is None and outcomes[-1] is None
    assert (dump.origin, dump.arch, dump.line, dump.last_line) == ("linux_arm64_oops", "aarch64", 2, len(body) + 1)
    assert [dump.regs[f"x{i}"] for i in range(30)] == x and "pc" not in dump.regs  # pc printed as a symbol
    regset = smc_registers(dump)
    assert regset.regs == tuple(x[:8]) and "registers at the oops" in regset.explanation


def test_linux_arm64_oops_before_4_15():
    lines = ["pc : [<ffffff80085a3c40>] lr : [<ffffff80085a3b10>] pstate: 600001c5", "sp : ffffff800a1abd70",
             *arm64_x_rows(list(range(30)), 2)]
    (dump,), _ = parse(lines)
    assert dump.regs["pc"] == 0xFFFFFF80085A3C40 and dump.regs["pstate"] == 0x600001C5 and len(dump.regs) == 34


ARM32_OOPS = ["PC is at 0x9e000708", "LR is at optee_smccc_smc+0x44/0x4c",
              "pc : [<9e000708>]    lr : [<c06e4850>]    psr: 600601d6",
              "sp : d7ce1ce0  ip : d7ce1d38  fp : d7ce1d5c",
              "r10: d7dc4940  r9 : d7dc4fc0  r8 : 00000101",
              "r7 : 00000000  r6 : 00000000  r5 : 00000000  r4 : 00000000",
              "r3 : 00000000  r2 : 9fe00000  r1 : 00000000  r0 : 32000004",
              "Flags: nZCv  IRQs off  FIQs off  Mode MON_32  ISA ARM  Segment none",
              "Control: 10c5387d  Table: 9767c06a  DAC: 00000051"]


def test_linux_arm32_oops():
    (dump,), outcomes = parse(ARM32_OOPS)
    assert outcomes[:2] == [None, None] and outcomes[7] == (dump,) and outcomes[8] is None
    assert (dump.origin, dump.arch, dump.line, dump.last_line) == ("linux_arm32_oops", "arm32", 3, 8)
    assert dump.regs["pc"] == 0x9E000708 and dump.regs["psr"] == 0x600601D6 and dump.regs["r0"] == 0x32000004
    assert len(dump.regs) == 17
    regset = smc_registers(dump)
    assert regset.regs == (0x32000004, 0, 0x9FE00000, 0, 0, 0, 0, 0) and regset.arch == "arm32"
    assert "The arm32 oops prints r0-r12, so all eight are there." in regset.explanation


def test_linux_arm32_oops_without_brackets():
    """Linux >= 6.1 prints "pc : %08lx  lr : %08lx  psr: %08lx"."""
    lines = ["pc : 9e000708  lr : c06e4850  psr: 600601d6", *ARM32_OOPS[3:8]]
    (dump,), _ = parse(lines)
    assert dump.regs["lr"] == 0xC06E4850 and dump.last_line == 6


# -- U-Boot ---------------------------------------------------------------------------------------


def uboot_abort(x):
    """do_bad_sync/show_regs of arch/arm/lib/interrupts_64.c, with GD_FLG_RELOC set."""
    rows = [f"x{i:<2d}: {x[i]:016x} x{i + 1:<2d}: {x[i + 1]:016x}" for i in range(0, 29, 2)]
    return ['"Synchronous Abort" handler, esr 0x96000004', "elr: 000000000008b0d4 lr : 000000000008b0c8 (reloc)",
            "elr: 00000000bff5a0d4 lr : 00000000bff5a0c8", *rows, "",
            "Code: d2800001 d2800002 d2800003 d4000003 (f9400000) ", "Resetting CPU ..."]


def test_uboot_abort():
    x = [0xC2000005, 1, *range(2, 30)]
    (dump,), outcomes = parse(uboot_abort(x))
    assert outcomes[17] == (dump,) and outcomes[18:] == [None, None, None]
    assert (dump.origin, dump.arch, dump.line, dump.last_line) == ("uboot_abort", "aarch64", 1, 18)
    assert dump.regs["esr"] == 0x96000004 and dump.regs["elr"] == 0xBFF5A0D4 and dump.regs["elr_reloc"] == 0x8B0D4
    assert [dump.regs[f"x{i}"] for i in range(30)] == x
    assert "U-Boot's registers at the abort" in smc_registers(dump).explanation


# -- hand-written lines ---------------------------------------------------------------------------


def test_hand_written_lines():
    lines = ["a0=0x32000004 a1=0x0 a2=0x7e5a1000 a3=0 a4=0 a5=0 a6=0 a7=0",
             "a0=32000004, a1=10",  # no 0x: hex
             "r0 : 32000004  r1 : 00000000",
             "w0=c2000005 w1=1",
             "x0: 0x84000000", "x1: 0x1", "x2: 0x2",  # one register a line: one set
             "x0: 0x84000001",  # a name again: the next set
             "done"]
    dumps, outcomes = parse(lines)
    assert [(d.origin, d.line, d.last_line) for d in dumps] == [
        ("pairs", 1, 1), ("pairs", 2, 2), ("pairs", 3, 3), ("pairs", 4, 4), ("pairs", 5, 7), ("pairs", 8, 8)]
    assert dumps[0].regs["a2"] == 0x7E5A1000 and dumps[1].regs == {"a0": 0x32000004, "a1": 0x10}
    assert [d.arch for d in dumps] == [None, None, "arm32", "aarch64", "aarch64", "aarch64"]
    assert dumps[4].regs == {"x0": 0x84000000, "x1": 1, "x2": 2}
    assert outcomes[4:8] == [(), (), (), (dumps[4],)] and outcomes[8] is None
    first = smc_registers(dumps[0])
    assert first.regs == (0x32000004, 0, 0x7E5A1000, 0, 0, 0, 0, 0) and first.names == tuple(f"a{i}" for i in range(8))
    assert first.explanation == ("a0-a7: named as the SMC Calling Convention names them. Every value fits in 32 bits, "
                                 "so the a names leave the architecture open (AArch32, or SMC32 on AArch64).")
    w = smc_registers(dumps[3])
    assert w.regs == (0xC2000005, 1) and "low 32 bits of x0-x7" in w.explanation
    assert "The dump has no w2, so only a0-a1 are known." in w.explanation


def test_hand_written_gap_and_width():
    (dump,), _ = parse(["a0=0x84000000 a1=0x1 a3=0xffffffffffff"])
    regset = smc_registers(dump)
    assert regset.regs == (0x84000000, 1) and regset.arch == "aarch64"
    assert "a3 is wider than 32 bits" in regset.explanation
    assert "The dump has no a2, so only a0-a1 are known (a3 present but past the gap)." in regset.explanation


# -- JSON and CSV ---------------------------------------------------------------------------------


def test_json_lines():
    lines = ['{"a0": "0x32000004", "a1": 0, "a2": "7e5a1000", "comment": "call with arg"}',
             '[{"x0": "0xc2000005"}, {"x0": 3254779905, "x1": "0x1"}]',
             '{"level": "info", "msg": "not registers"}']
    dumps, outcomes = parse(lines)
    assert outcomes[2] is None
    assert [(d.origin, d.line, d.arch) for d in dumps] == [("json", 1, None), ("json", 2, "aarch64"),
                                                           ("json", 2, "aarch64")]
    assert dumps[0].regs == {"a0": 0x32000004, "a1": 0, "a2": 0x7E5A1000} and dumps[2].regs["x0"] == 0xC2000001


def test_json_document_over_lines(tmp_path):
    sets = [{"a0": "0x32000004", "a1": "0x0", "a2": "0x7e5a1000", "a3": "0x0"},
            {"x0": 0xB2000001, "x1": 0}, {"r0": "32000003", "r3": "1"}]
    path = tmp_path / "sets.json"
    path.write_text(json.dumps(sets, indent=2) + "\n")
    assert RegdumpParser.sniff(path.read_bytes().splitlines()) >= formats.CERTAIN
    dumps, stats = read(path, None)
    assert (stats.format, stats.lines, stats.event_lines, stats.foreign, stats.malformed) == ("regs", 16, 14, 2, 0)
    assert [(d.line, d.last_line, d.arch) for d in dumps] == [(2, 7, None), (8, 11, "aarch64"), (12, 15, "arm32")]
    assert dumps[2].regs == {"r0": 0x32000003, "r3": 1} and smc_registers(dumps[2]).regs == (0x32000003,)
    single = write(tmp_path, "one.json", ["{", '  "a0": "0x84000000",', '  "a1": "0x1"', "}"])
    (dump,), stats = read(single, None)
    assert (dump.line, dump.last_line, dump.regs) == (1, 4, {"a0": 0x84000000, "a1": 1}) and stats.event_lines == 4


def test_csv(tmp_path):
    lines = ["ts,cpu,dir,a0,a1,a2,a3,a4,a5,a6,a7",
             "1.000100,0,call,32000004,0,7e5a1000,0,0,0,0,0",
             "1.000200,0,ret,0,,,,,,,",
             "1.000300,1,call,0x32000003,0,0,1,0,0,0,0",
             "1.000400,1,call,3200zz03,0,0,1,0,0,0,0",
             "1.000500,1,call,32000003,0,0",
             "1.000600,1,call,,,,,,,,"]
    assert RegdumpParser.sniff([x.encode() for x in lines]) >= formats.CERTAIN
    dumps, stats = read(write(tmp_path, "sets.csv", lines), None)
    assert (stats.format, stats.lines, stats.event_lines, stats.foreign, stats.malformed) == ("regs", 7, 3, 1, 3)
    assert [d.line for d in dumps] == [2, 3, 4] and {d.origin for d in dumps} == {"csv"}
    assert dumps[0].regs["a2"] == 0x7E5A1000 and dumps[1].regs == {"a0": 0} and dumps[2].regs["a3"] == 1
    assert [d.split(": ", 1)[1] for d in stats.diagnostics] == [
        "a0: '3200zz03' is not a hex number", "CSV row has 6 fields, its header 11", "CSV row has no register values"]


# -- bad input ------------------------------------------------------------------------------------


def test_truncated_and_bad_values():
    lines = ["PANIC in EL3.", "x30            = 0x000000000e097f14", "x0             = 0x00000000090",
             "x1             = 0x00000000000000zz", "x2             = 0x0000000000000090",
             "a0=0x3200zz04 a1=0", "a0=0x32000004 a1=0 junk", "r0 : 32000004  r1 : 00000000  sp : 00000000",
             "x3 : 0x1 x3 : 0x2", "a0=0x1ffffffffffffffff", "w0=0x100000000",
             "r3 : 00000000  r2 : 9fe00000  r1 : 00000000  r0 : 3200"]
    dumps, outcomes = parse(lines)
    assert [(d.origin, d.line, d.last_line, d.regs) for d in dumps] == [
        ("tfa_crash", 1, 5, {"x30": 0xE097F14, "x2": 0x90}),
        ("pairs", 8, 8, {"r0": 0x32000004, "r1": 0})]  # sp is not an argument register: left out
    assert malformed(outcomes) == {
        3: "x0: '00000000090' has 11 hex digits, the format prints 16 or 32",
        4: "x1: '00000000000000zz' is not a hex number",
        6: "a0: '0x3200zz04' is not a hex number",
        7: "register line: unexpected 'junk' after a1",
        9: "register line names a register twice: x3 x3",
        10: "a0: '0x1ffffffffffffffff' does not fit in 64 bits",
        11: "w0: '0x100000000' does not fit in 32 bits",
        12: "r0: '3200' has 4 hex digits, the format prints 8",
    }


def test_json_errors():
    _, outcomes = parse(["a console line", '{"a0": "0x32000004", "a1": }'])
    assert malformed(outcomes) == {2: "JSON: Expecting value: line 1 column 28 (char 27)"}
    _, outcomes = parse(['{"a0": "0x32000004", "a1": }'])  # the input starts with it: a document
    assert malformed(outcomes) == {1: "JSON object of lines 1-1: Expecting value at line 1"}
    _, outcomes = parse(['{"a0": true}', '{"x0": -1}', '{"a0": "zz"}', '[{"a0": 1}, 2]', "[" * 100000 + "]" * 100000])
    reasons = malformed(outcomes)
    assert reasons[1] == "JSON: 'a0' is True, not a 64-bit register value"
    assert reasons[2] == "JSON: 'x0' is -1, not a 64-bit register value"
    assert reasons[3] == "a0: 'zz' is not a hex number"
    assert reasons[4] == "JSON: expected an object with register keys, or a list of them"
    assert 5 not in reasons and outcomes[4] is None  # not JSON of ours, and no exception


def test_json_document_errors(tmp_path):
    doc = ["[", "  {", '    "a0": "0x32000004"', "  }", "  {", '    "a0": "0x32000003",', "  },",
           '  {"a0": "0x32000004" "a1": 0}', "]"]
    dumps, stats = read(write(tmp_path, "bad.json", doc), None)
    assert [d.line for d in dumps] == [2]
    assert (stats.lines, stats.event_lines, stats.foreign, stats.malformed) == (9, 4, 2, 3)
    assert [d.split(": ", 1)[1] for d in stats.diagnostics] == [
        "JSON list: expected objects separated by commas, found ''",
        "JSON object of lines 5-7: Expecting property name enclosed in double quotes at line 7",
        "JSON object of lines 8-8: Expecting ',' delimiter at line 8"]


def test_garbage_never_raises():
    lines = [b"\xff\xfe\x00x0: 1", b"x0" * 100000, b"\x00" * 10, b"{" * 5000, b"(gdb) p/x $", b"$1 = ",
             b"PANIC in EL3 at x30 = 0xzz", b"0x200:\t\t 0x0", b"Offset\t\tValue", b"Flags: nZCv", b"[", b"]",
             b"X00=zz", b"PSTATE=zz -ZC-", "x0 : é".encode(), b"ts,a0", b"1,2,3"]
    _, outcomes = parse(lines)
    assert all(o is None or type(o) is Malformed or isinstance(o, tuple) for o in outcomes)


def test_foreign_lines_that_look_alike():
    """Shell echoes of kprobe_events definitions (captures' uart0-normal.log), kernel messages."""
    lines = ["r10:smcw/optee_smccc_smc_ret optee:optee_smccc_smc res=$stack0:x64 r0=+0($stack0):x64",
             "[    0.000000] psci: probing for conduit method from DT.", "[  OK  ] Started TEE Supplicant.",
             "Hardware name: linux,dummy-virt (DT)", "pc : optee_bus_scan+0x24/0x38", "Flags: nZCv  IRQs off",
             "sp : ffffffc013a13da0", "x0: something", "$1 = 0x1"]
    assert parse(lines) == ([], [None] * 8 + [None])


# -- detection and console mode -------------------------------------------------------------------


def test_sniff():
    assert RegdumpParser.sniff([]) == 0
    assert RegdumpParser.sniff([b"", b"[    0.000000] Booting Linux on physical CPU 0x0"]) == 0
    assert RegdumpParser.sniff([b"(qemu) info registers"]) >= formats.CERTAIN
    assert RegdumpParser.sniff([b"I/TC: OP-TEE version", *(x.encode() for x in ARM32_OOPS[2:7])]) == 20


def test_dumps_in_a_console_keep_order():
    lines = ["I/TC: Primary CPU switching to normal world boot", *GDB_AARCH64[1:4], "NOTICE:  BL31: v2.15.0",
             "a0=0x32000004", "a1=0x0", "[    1.0] optee: revision 4.10"]
    events, outcomes = parse(lines)
    assert [(e.origin, e.line, e.last_line) for e in events] == [("gdb", 2, 4), ("pairs", 6, 7)]
    assert outcomes[5] == (events[0],)  # the gdb dump ended by a foreign line, emitted with the next dump line
    assert isinstance(events[0], RegisterDump)
