"""Mermaid sequence diagrams of call flows, on the shipped captures and the rule-trigger traces: the
diagram's statements parse as Mermaid's sequenceDiagram grammar allows, its participants and arrows
match the flow objects (each RPC round trip, each retry, the final result, each finding), and
hostile text (task names, finding messages, titles) cannot break out of a label."""

import lzma
import re
from pathlib import Path

import pytest

from smcwire.abi.profiles import get_profile
from smcwire.flows.model import Finding, Flow
from smcwire.pipeline import Analysis, captures
from smcwire.render.mermaid import MAX_RPCS, markdown_block, mermaid_text, sequence_diagram
from smcwire.rules.catalog import RULES_BY_ID

ROOT = Path(__file__).parent.parent
KRET = ROOT / "traces/qemu-dbg-kretprobe"  # every SMC with its result: fast calls, RPC_ARG, FOREIGN_INTR, CMD
NOBL32 = ROOT / "traces/qemu-misconf-nobl32"  # SMC070: no OP-TEE behind TF-A
LEGACY = ROOT / "tests/data/legacy-os-kretprobe-ftrace.txt.xz"  # OP-TEE 3.16: CALL_WITH_ARG, RPC ALLOC, CMD
XTEST = ROOT / "tests/data/rules/dbg-xtest-ftrace-ethread.txt.xz"  # ETHREAD_LIMIT, 2 threads, cut flows
CAPTURES = (sorted(p for p in (ROOT / "traces").iterdir() if p.is_dir())
            + sorted((ROOT / "tests/data/rules").glob("*.xz")) + [LEGACY])

# Mermaid's sequenceDiagram statements as this renderer writes them; a label may hold entity codes
# (#59;) and the note line break <br/>, never a raw ; # % < > & ` " or line break
LABEL = r"(?:[^;#%<>&`\"\n]|#\d+;|<br/>)*"
PARTICIPANT = re.compile(rf"    participant (\w+) as ({LABEL})")
ARROW = re.compile(rf"    (\w+)(->>|-->>|--\)) ?(\w+): ({LABEL})")
NOTE = re.compile(rf"    Note over (\w+)(?:,(\w+))?: ({LABEL})")
TITLE = re.compile(rf"    title ({LABEL})")
TIME = re.compile(r"\+(\d+\.\d{3}) ms ")


def text(label: str) -> str:
    """A label as Mermaid shows it: entity codes decoded, <br/> as a line break."""
    return re.sub(r"#(\d+);", lambda m: chr(int(m[1])), label.replace("<br/>", "\n"))


class Diagram:
    """A diagram read back statement by statement; fails on any line it cannot read."""

    def __init__(self, source: str) -> None:
        lines = source.rstrip("\n").split("\n")
        assert lines[0] == "sequenceDiagram"
        self.participants: dict[str, str] = {}  # id -> label as shown
        self.statements: list[tuple[str, ...]] = []  # ("arrow", source, arrow, target, text) / ("note", a, b, text)
        self.title = None
        for line in lines[1:]:
            if m := PARTICIPANT.fullmatch(line):
                assert not self.statements, "participants are declared before they are used"
                assert m[1] not in self.participants, f"{m[1]} declared twice"
                self.participants[m[1]] = text(m[2])
            elif m := ARROW.fullmatch(line):
                self.statements.append(("arrow", m[1], m[2], m[3], text(m[4])))
            elif m := NOTE.fullmatch(line):
                self.statements.append(("note", m[1], m[2] or m[1], text(m[3])))
            elif m := TITLE.fullmatch(line):
                assert self.title is None and not self.participants
                self.title = text(m[1])
            else:
                raise AssertionError(f"not a statement of this renderer: {line!r}")
        assert len(set(self.participants.values())) == len(self.participants), "a label twice"
        used = {p for s in self.statements for p in ((s[1], s[3]) if s[0] == "arrow" else (s[1], s[2]))}
        assert used == set(self.participants), "every participant used is declared, and only those"

    @property
    def arrows(self) -> list[tuple[str, str, str, str]]:
        """(source label, arrow, target label, text) of each arrow, in order."""
        return [(self.participants[s[1]], s[2], self.participants[s[3]], s[4]) for s in self.statements
                if s[0] == "arrow"]

    @property
    def notes(self) -> list[str]:
        return [s[3] for s in self.statements if s[0] == "note"]


def analysed(path: Path) -> list[tuple[Flow, list[Finding]]]:
    """Every flow of a capture with its findings: those made as it completed (``findings_of``) and
    those only the whole capture shows (``final_findings``) that name it."""
    analysis = Analysis(captures([str(path)])[0], get_profile(), prefetch=False)
    pairs = [(flow, list(analysis.findings_of(flow))) for flow in analysis.flows()]
    for finding in analysis.final_findings:
        for flow, found in pairs:
            if flow.index == finding.flow:
                found.append(finding)
    return pairs


def flow_of(path: Path, index: int) -> tuple[Flow, list[Finding]]:
    return next(pair for pair in analysed(path) if pair[0].index == index)


def who(flow: Flow) -> str:
    return f"{flow.task}-{flow.pid} (Linux)"


def ms(ts: int, flow: Flow) -> float:
    return round((ts - flow.start) / 1e6, 3)


def hexed(fields: dict[str, int], *names: str) -> list[str]:
    return [f"{name}={fields[name]:#x}" for name in names]


# --- every flow of every capture ----------------------------------------------------------------------
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_flow_matches_its_diagram(path):
    pairs = analysed(path)
    assert pairs
    for flow, findings in pairs:
        d = Diagram(sequence_diagram([(flow, findings)], max_rpcs=None))
        task = who(flow)
        assert task in d.participants.values() and "TF-A (EL3)" in d.participants.values()
        arrows = d.arrows
        for source, _, target, _ in arrows:
            assert task in (source, target)  # every SMC is the task's; RPC CMDs may go on to tee-supplicant
        # one request arrow and (when answered) one reply arrow per RPC round trip, from its thread
        requests = [a for a in arrows if a[1] == "->>" and a[2] == task]
        replies = [a for a in arrows if "RETURN_FROM_RPC" in a[3]]
        assert len(requests) == len(flow.rpcs)
        assert len(replies) == sum(t.reply is not None for t in flow.rpcs)
        for trip, (source, _, _, label) in zip(flow.rpcs, requests, strict=True):
            assert source == (f"OP-TEE thread {trip.thread}" if trip.thread is not None else "OP-TEE")
            name = (trip.function.removeprefix("OPTEE_SMC_RPC_FUNC_") if trip.function
                    else f"{0xFFFF0000 | trip.func:#x}")
            assert f"RPC {name}" in label
            assert all(f in label for f in hexed(trip.fields, *(k for k in trip.fields if k != "thread_id")))
            assert float(TIME.match(label)[1]) == ms(trip.request.ret.ts, flow)
        for trip, (_, arrow, target, label) in zip([t for t in flow.rpcs if t.reply], replies, strict=True):
            assert arrow == "-->>" and target.startswith("OP-TEE")
            assert all(f in label for f in hexed(trip.reply_fields, *(k for k in trip.reply_fields
                                                                       if k not in ("thread_id", "client_id"))))
            assert float(TIME.match(label)[1]) == ms(trip.reply.call.ts, flow)
        # the first call, and the final result
        first = flow.first.decoded
        if first is not None and flow.first.call is not None:
            assert arrows[0][0] == task and arrows[0][1] == "->>"
            assert flow.function.removeprefix("OPTEE_SMC_") in arrows[0][3]
            assert all(f in arrows[0][3] for f in hexed(first.fields, *(k for k in first.fields
                                                                        if k not in ("status", "client_id"))))
        result = flow.result
        if result is not None:
            source, arrow, target, label = arrows[-1]
            assert (arrow, target) == ("-->>", task)
            assert float(TIME.match(label)[1]) == ms(flow.end, flow)
            if result.layout.slots[0].name == "status":
                assert label.endswith(result.status_name.removeprefix("OPTEE_SMC_"))
            else:
                assert label.endswith(" ".join(hexed(result.fields, *result.fields)))
        # notes: the flow's header, one per finding, whether it is incomplete
        assert d.notes[1].startswith(f"#{flow.index} ") and f"{flow.file}:{flow.first_line}" in d.notes[1]
        for finding in findings:
            assert sum(n.startswith(f"{finding.rule} {finding.severity} ") for n in d.notes) >= 1
        assert len([n for n in d.notes if re.match(r"SMC\d{3} ", n)]) == len(findings)
        assert any(n.startswith(f"incomplete ({flow.incomplete})") for n in d.notes) == bool(flow.incomplete)


# --- flows of each kind -----------------------------------------------------------------------------------
def test_readme_flow():
    """kretprobe flow #7: CALL_WITH_RPC_ARG, one FOREIGN_INTR on OP-TEE thread 0, RETURN_OK (README)."""
    flow, findings = flow_of(KRET, 7)
    d = Diagram(sequence_diagram([(flow, findings)]))
    assert list(d.participants.values()) == ["init-1 (Linux)", "TF-A (EL3)", "OP-TEE thread 0"]
    assert d.arrows == [
        ("init-1 (Linux)", "->>", "OP-TEE thread 0",
         "+0.000 ms CALL_WITH_RPC_ARG arg_pa=0x45cde000 cache_settings=0x0"),
        ("OP-TEE thread 0", "->>", "init-1 (Linux)", "+3.420 ms RPC FOREIGN_INTR"),
        ("init-1 (Linux)", "-->>", "OP-TEE thread 0", "+3.504 ms RETURN_FROM_RPC"),
        ("OP-TEE thread 0", "-->>", "init-1 (Linux)", "+4.798 ms RETURN_OK"),
    ]
    assert d.notes[1] == ("#7 CALL_WITH_RPC_ARG at 1.531639 s, CPU 0\n4.798 ms (secure 4.714 ms, normal world 84 us)\n"
                          f"{KRET}/ftrace.txt.xz:25")


def test_fast_calls_go_to_optee():
    """A fast call is one arrow each way, to OP-TEE (no thread); a value return shows its fields."""
    flow, findings = flow_of(KRET, 1)
    assert flow.fast and flow.function == "OPTEE_SMC_CALLS_UID"
    d = Diagram(sequence_diagram([(flow, findings)]))
    (_, _, into, call), (source, _, _, answer) = d.arrows
    assert into == source == "OP-TEE" and call == "+0.000 ms CALLS_UID"
    assert answer.endswith(" ".join(f"uid_{i}={flow.result.fields[f'uid_{i}']:#x}" for i in range(4)))


def test_other_owners_go_to_tfa(tmp_path):
    """A function outside the Trusted OS range (PSCI_VERSION, owner 4) is served by TF-A itself."""
    lines = lzma.decompress((KRET / "ftrace.txt.xz").read_bytes()).decode().splitlines(keepends=True)
    psci = lines[:12] + [lines[12].replace("a0=0xbf00ff01", "a0=0x84000000"),
                         re.sub(r"r0=\S+", "r0=0x10002", lines[13])]
    (tmp_path / "ftrace.txt").write_text("".join(psci))
    flow, findings = analysed(tmp_path / "ftrace.txt")[0]
    d = Diagram(sequence_diagram([(flow, findings)]))
    assert [a[:3] for a in d.arrows] == [("init-1 (Linux)", "->>", "TF-A (EL3)"),
                                         ("TF-A (EL3)", "-->>", "init-1 (Linux)")]
    assert "OP-TEE" not in d.participants.values() and "PSCI_VERSION" in d.arrows[0][3]


def test_rpc_alloc_and_cmd():
    """OP-TEE 3.16 flow #16: RPC ALLOC answered with buf_pa and cookie, then RPC CMDs with that
    cookie, each followed by the dotted hand-off to tee-supplicant, explained once."""
    flow, findings = flow_of(LEGACY, 16)
    d = Diagram(sequence_diagram([(flow, findings)], max_rpcs=None))
    alloc = next(i for i, t in enumerate(flow.rpcs) if t.function == "OPTEE_SMC_RPC_FUNC_ALLOC")
    trip = flow.rpcs[alloc]
    arrows = d.arrows
    at = next(i for i, a in enumerate(arrows) if a[3].startswith(f"+{ms(trip.request.ret.ts, flow):.3f} ms RPC ALLOC"))
    assert arrows[at][3].endswith(f"RPC ALLOC size={trip.fields['size']:#x}")
    assert arrows[at + 1][1:3] == ("-->>", "OP-TEE thread 0")
    assert arrows[at + 1][3].endswith(f"RETURN_FROM_RPC buf_pa={trip.reply_fields['buf_pa']:#x} "
                                      f"cookie={trip.reply_fields['cookie']:#x}")
    cmd = flow.rpcs[alloc + 1]
    assert cmd.function == "OPTEE_SMC_RPC_FUNC_CMD"
    assert arrows[at + 2][3].endswith(f"RPC CMD cookie={cmd.fields['cookie']:#x}")
    assert [a[:3] for a in arrows[at + 3:at + 5]] == [("optee_example_h-106 (Linux)", "--)", "tee-supplicant"),
                                                      ("tee-supplicant", "--)", "optee_example_h-106 (Linux)")]
    cmds = sum(t.function == "OPTEE_SMC_RPC_FUNC_CMD" for t in flow.rpcs)
    assert sum(a[2] == "tee-supplicant" for a in arrows) == cmds
    assert sum(n.startswith("RPC CMD: ") for n in d.notes) == 1
    assert list(d.participants)[0] == "SUPP"  # user space on the left


def test_ethread_limit_retries():
    """xtest 1013: each ETHREAD_LIMIT comes from OP-TEE (no thread yet), a note tells the wait, and
    the retry repeats the call; the flows cut by the end of the capture say so."""
    pairs = analysed(XTEST)
    retried = [(f, found) for f, found in pairs if f.retries]
    assert retried
    for flow, findings in retried:
        d = Diagram(sequence_diagram([(flow, findings)], max_rpcs=None))
        limits = [s for s in flow.steps
                  if s.answer is not None and s.answer.status_name == "OPTEE_SMC_RETURN_ETHREAD_LIMIT"]
        answers = [a for a in d.arrows if a[3].endswith("RETURN_ETHREAD_LIMIT")]
        assert len(answers) == len(limits) and all(a[0] == "OP-TEE" for a in answers)
        for n in range(1, flow.retries + 1):
            retry = [a for a in d.arrows if f" retry {n}: " in a[3]]
            assert len(retry) == 1 and retry[0][3].endswith(d.arrows[0][3].split(" ms ", 1)[1])
            note, = [x for x in d.notes if f"(retry {n} of {flow.retries})" in x]
            wait = flow.steps[n].call.ts - flow.steps[n - 1].ret.ts
            assert f"waits {wait / 1e6:.3f} ms" in note.replace("\n", " ")
    flow, findings = next(p for p in pairs if p[0].index == 53)
    notes = Diagram(sequence_diagram([(flow, findings)])).notes
    assert "incomplete (trace end): the capture holds no final result" in notes
    assert {f.rule for f in findings} == {"SMC023", "SMC061"}  # SMC061: at the end of the capture
    assert [n.split(":")[0] for n in notes if n.startswith("SMC")] == [
        f"{f.rule} {f.severity} {RULES_BY_ID[f.rule].name}" for f in findings]


def test_findings_become_notes():
    """misconf-nobl32: SMC070 (an end-of-capture finding about flow #1) as a note under the flow."""
    (flow, findings), = [p for p in analysed(NOBL32) if p[1]]
    assert [f.rule for f in findings] == ["SMC070"]
    note = Diagram(sequence_diagram([(flow, findings)])).notes[-1].replace("\n", " ")
    assert note.startswith("SMC070 error no-optee: No OP-TEE behind the monitor: OPTEE_SMC_CALLS_UID at line 13 ")
    assert "traces/qemu-misconf-nobl32/ftrace.txt:" not in note  # the flow's own file is named by the header
    assert note.endswith(" ...") and len(note) < len(findings[0].message)


# --- size limits -----------------------------------------------------------------------------------------
def test_long_flows_leave_the_middle_rpcs_out():
    flow, findings = flow_of(KRET, 19)
    assert len(flow.rpcs) > MAX_RPCS
    d = Diagram(sequence_diagram([(flow, findings)], max_rpcs=6))
    requests = [a for a in d.arrows if a[1] == "->>" and a[2] == who(flow)]
    shown = flow.rpcs[:3] + flow.rpcs[-3:]
    assert [float(TIME.match(a[3])[1]) for a in requests] == [ms(t.request.ret.ts, flow) for t in shown]
    note, = [n.replace("\n", " ") for n in d.notes if n.startswith("... ")]
    hidden = flow.rpcs[3:-3]
    assert note.startswith(f"... {len(hidden)} RPC round trips left out (+{ms(hidden[0].request.ret.ts, flow):.3f} "
                           f"ms to +{ms(hidden[-1].reply.call.ts, flow):.3f} ms): ")
    counts = dict(re.findall(r"RPC (\w+) x(\d+)", note))
    assert {k: int(v) for k, v in counts.items()} == {
        name: sum(t.function == f"OPTEE_SMC_RPC_FUNC_{name}" for t in hidden) for name in counts}
    assert sum(map(int, counts.values())) == len(hidden)


def test_limit_counts_the_flows_left_out():
    pairs = analysed(KRET)
    d = Diagram(sequence_diagram(iter(pairs), limit=3))
    assert sum(re.match(r"#\d+ ", n) is not None for n in d.notes) == 3
    assert d.notes[-1] == f"{len(pairs) - 3} more flows left out"
    everything = sequence_diagram(pairs, limit=10)
    assert len(everything) < 50_000  # GitHub's limit for one diagram
    assert "no flow to show" in Diagram(sequence_diagram([])).notes


# --- hostile text ----------------------------------------------------------------------------------------
HOSTILE = 'a;b#c %%{init: {"theme":"dark"}}%% <img src=x onerror=alert(1)> & `x`\nend\r\tstyle:#f00;  wrap:z'


def test_mermaid_text_escapes_syntax():
    label = mermaid_text(HOSTILE)
    assert re.fullmatch(LABEL, label) and "style" not in label
    assert text(label) == HOSTILE.replace("\n", " ").replace("\r", " ").replace("\t", " ")
    assert mermaid_text("wrap:x").startswith("wrap#58;") and mermaid_text("nowrap:x").startswith("nowrap#58;")
    assert mermaid_text("x\x00y\u2028z") == "x y z"


def test_hostile_task_finding_and_title():
    flow, _ = flow_of(KRET, 7)
    flow.task = HOSTILE
    finding = Finding("SMC999", "error", HOSTILE, flow.file, flow.first_line, flow.index)
    source = sequence_diagram([(flow, [finding])], title=HOSTILE)
    d = Diagram(source)  # every line is one statement of the grammar above
    assert d.title == text(mermaid_text(HOSTILE))
    assert text(mermaid_text(HOSTILE)) + f"-{flow.pid} (Linux)" in d.participants.values()
    assert d.notes[-1].replace("\n", " ").startswith("SMC999 error: a;b#c %%{init:")
    assert "style" not in source and "%%" not in source and "<img" not in source
    block = markdown_block(source)
    assert block.startswith("```mermaid\nsequenceDiagram\n") and block.endswith("\n```\n")
    assert block.count("`") == 6
