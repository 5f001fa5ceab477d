"""The ABI-misuse rules, each on a real trace that triggers it and one that does not.

Triggering traces are copies of real captures edited in memory (a return removed, a thread id
changed, a capability value altered, …): ``analyse`` runs the edited lines through the reader,
the tracker and the rule engine as one capture, and checks that the engine's traits change none
of the findings (``checked``). Base traces: ``traces/``, ``tests/data/`` and ``tests/data/rules/``
(see the README files there for provenance).
"""

from __future__ import annotations

import lzma
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from smcwire.codec.decode import decoder
from smcwire.flows.model import Finding, Flow
from smcwire.flows.tracker import Tracker
from smcwire.rules.base import Check, traits_of
from smcwire.rules.catalog import RULES, SEVERITIES, Rule
from smcwire.rules.engine import CHECKS, RuleEngine
from smcwire.sources.reader import TraceReader

ROOT = Path(__file__).parent.parent
DATA = ROOT / "tests/data"
PROBE = ROOT / "traces/qemu-dbg-probe/ftrace.txt"  # tracepoints only, OP-TEE 4.10
PROBE_DMESG = ROOT / "traces/qemu-dbg-probe/dmesg.txt"
KRET = ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz"  # every SMC with its result, OP-TEE 4.10, Linux 6.1
KPROBE = DATA / "ftrace/dbg-kprobe-ftrace.txt.xz"  # entry probe without return probe
LEGACY = DATA / "legacy-os-kretprobe-ftrace.txt.xz"  # OP-TEE 3.16: CALL_WITH_ARG, RPC ALLOC, SHM cache
NEWKERNEL = DATA / "ftrace/newkernel-kretprobe-ftrace.txt.xz"  # Linux 6.12: GET_THREAD_COUNT = 2
NOBL32 = DATA / "ftrace/misconf-nobl32-ftrace.txt"  # TF-A without BL32
NOBL32_DMESG = DATA / "consoles/qemu-misconf-nobl32-dmesg.txt.xz"
NOBL32_TFA = DATA / "consoles/qemu-misconf-nobl32-tfa-console.log.xz"
NODYNSHM = DATA / "rules/nodynshm-lite-ftrace-head.txt.xz"  # CFG_CORE_DYN_SHM=n: RPC_ARG into the static SHM
NODYNSHM_DMESG = DATA / "consoles/qemu-nodynshm-lite-dmesg.txt.xz"
XTEST = DATA / "rules/dbg-xtest-ftrace-ethread.txt.xz"  # xtest 1013: ETHREAD_LIMIT on Linux 6.1
PIPE = DATA / "ftrace/pipe-small-trace_pipe.txt.xz"
TRACE_CMD = DATA / "ftrace/trace-cmd-small-report.txt.xz"


# --- reading and editing real traces --------------------------------------------------------------
def lines_of(path: Path) -> list[str]:
    data = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
    return data.decode().splitlines()


def line_no(lines: list[str], *parts: str, nth: int = 1, after: int = 0) -> int:
    """The 1-based number of the ``nth`` line after line ``after`` that contains every part."""
    found = [i for i, line in enumerate(lines, 1) if i > after and all(p in line for p in parts)]
    return found[nth - 1]


def edited(lines: list[str], at: int, old: str, new: str) -> list[str]:
    """A copy with ``old`` replaced by ``new`` in line ``at`` (which must hold it)."""
    assert old in lines[at - 1], (at, old, lines[at - 1])
    return [*lines[:at - 1], lines[at - 1].replace(old, new, 1), *lines[at:]]


def without(lines: list[str], *numbers: int) -> list[str]:
    return [line for i, line in enumerate(lines, 1) if i not in numbers]


def answered_at_once(lines: list[str], a0: str) -> int:
    """The tracepoint begin of the first call with ``a0`` (e.g. "32000013") answered OK without RPC."""
    for i, line in enumerate(lines, 1):
        if "optee_invoke_fn_begin" in line and f"({a0}," in line:
            param = re.search(r"param=(\S+)", line)[1]
            if "ret (0," in lines[line_no(lines, "optee_invoke_fn_end", f"param={param}", after=i) - 1]:
                return i
    raise AssertionError(a0)


def kprobe_pair(lines: list[str], a0: int, nth: int = 1) -> tuple[int, int]:
    """The lines of the ``nth`` kprobe entry with ``a0`` and of the return line that follows it."""
    entry = line_no(lines, "optee_smccc_smc:", f"a0={a0:#x} ", nth=nth)
    return entry, line_no(lines, "optee_smccc_smc_ret:", after=entry)


def fast_call(lines: list[str], a0: int, entry: dict[str, str] | None = None, ret: dict[str, str] | None = None,
              nth: int = 1) -> list[str]:
    """Edit the registers of a fast call seen by the kprobe/kretprobe pair (``{"a0=0x1": "a0=0x2"}``)."""
    at, ret_at = kprobe_pair(lines, a0, nth)
    for old, new in (entry or {}).items():
        lines = edited(lines, at, old, new)
    for old, new in (ret or {}).items():
        lines = edited(lines, ret_at, old, new)
    return lines


# --- running the analyzer ---------------------------------------------------------------------------
@dataclass
class Result:
    findings: list[Finding]
    not_run: list[tuple[Rule, str]]
    flows: list[Flow]

    def rules(self, severity: str | None = None) -> set[str]:
        return {f.rule for f in self.findings if severity is None or f.severity == severity}

    def by_rule(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for f in self.findings:
            out.setdefault(f.rule, set()).add(f.severity)
        return out

    def of(self, rule: str) -> list[Finding]:
        return [f for f in self.findings if f.rule == rule]


def run(files: list[Path], profile: str = "mainline", every_flow: bool = False) -> Result:
    """The tracker and the rule engine over ``files`` as one capture."""
    tracker = Tracker(str(files[-1].parent), decoder(profile))
    engine = RuleEngine(tracker.state, profile, every_flow=every_flow)
    findings, flows = [], []
    for event in TraceReader.from_names([str(p) for p in files]):
        for flow in tracker.feed(event):
            findings += engine.on_flow(flow)
            flows.append(flow)
    for flow in tracker.finish():
        findings += engine.on_flow(flow)
        flows.append(flow)
    findings += engine.finish()
    return Result(findings, engine.not_run(), flows)


def checked(files: list[Path], profile: str = "mainline") -> Result:
    """``run``, asserting that the engine's traits change nothing: the same findings, in the same
    order, and the same ``Flow.findings`` as every check run on every flow of its functions."""
    result, reference = run(files, profile), run(files, profile, every_flow=True)
    assert result.findings == reference.findings
    assert result.not_run == reference.not_run
    assert [(f.index, f.findings) for f in result.flows] == [(f.index, f.findings) for f in reference.flows]
    return result


def analyse(tmp_path: Path, lines: list[str], before: tuple[Path, ...] = (), after: tuple[Path, ...] = (),
            profile: str = "mainline", name: str = "ftrace.txt") -> Result:
    """Run ``lines`` (written as ``name``) with the ``before`` and ``after`` files as one capture
    (``checked``: the engine's traits change none of its findings)."""
    trace = tmp_path / name
    trace.write_text("\n".join(lines) + "\n")
    return checked([*before, trace, *after], profile)


def check_finding(f: Finding, *words: str) -> None:
    """A finding names its trace line and explains itself with the given words."""
    assert f"{Path(f.file).name}:{f.line}" in f.message or f"{f.file}:{f.line}" in f.message, f.message
    for word in words:
        assert word in f.message, (word, f.message)


# --- the catalog and the engine ---------------------------------------------------------------------
KINDS = {"tracepoints", "fast_calls", "returns", "fast_returns", "dmesg", "optee_console", "tfa_console"}


def test_catalog_is_stable_and_complete():
    ids = [r.id for r in RULES]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"SMC\d{3}", i) for i in ids)
    assert set(CHECKS) == set(ids)
    for rule in RULES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name), rule.name
        assert rule.severity in SEVERITIES and rule.source and rule.summary
        assert rule.needs and all(set(need.split("|")) <= KINDS for need in rule.needs), rule
    # every derived check of abi.md §7.5 has a rule but check 10 (num_params: message contents)
    assert {"SMC010", "SMC011", "SMC012", "SMC013", "SMC020", "SMC021", "SMC022", "SMC030", "SMC031", "SMC034",
            "SMC041", "SMC042", "SMC050", "SMC043", "SMC045", "SMC046", "SMC047", "SMC048", "SMC044", "SMC051",
            "SMC060", "SMC061", "SMC052", "SMC071"} <= set(ids)


def test_missing_evidence_any_of():
    rule = next(r for r in RULES if r.id == "SMC042")
    assert rule.missing({"tracepoints", "returns"}) == (
        "fast-call results (a return probe on the SMC entry) or the driver's kernel log")
    assert rule.missing({"tracepoints", "dmesg"}) is None
    assert rule.missing({"fast_calls", "fast_returns"}) is None


def test_not_run_names_missing_evidence(tmp_path):
    result = analyse(tmp_path, lines_of(PROBE))  # tracepoints only: no fast call, no dmesg
    missing = {r.id: why for r, why in result.not_run}
    assert missing["SMC043"] == "fast calls (a kprobe on the SMC entry)"
    assert missing["SMC080"] == "fast-call results (a return probe on the SMC entry)"
    assert missing["SMC042"] == "fast-call results (a return probe on the SMC entry) or the driver's kernel log"
    assert "SMC001" not in missing and "SMC072" not in missing
    assert {r.id for r, _ in analyse(tmp_path, lines_of(NEWKERNEL)).not_run} == set()
    kret = {r.id: why for r, why in analyse(tmp_path, lines_of(KRET)).not_run}
    assert kret == {"SMC060": "the OP-TEE thread count (a GET_THREAD_COUNT answer; Linux < 6.8 does not ask)"}


def test_select_ignore_and_profiles():
    state = Tracker("x", decoder()).state
    assert [c.rule.id for c in RuleEngine(state, "mainline", select=["SMC001", "nested-entry"]).checks] == \
        ["SMC001", "SMC003"]
    ignored = {c.rule.id for c in RuleEngine(state, "mainline", ignore=["SMC001"]).checks}
    assert "SMC001" not in ignored and "SMC002" in ignored
    assert "SMC080" in {c.rule.id for c in RuleEngine(state, "mainline").checks}
    sysinv = {c.rule.id for c in RuleEngine(state, "sysinv-v1").checks}
    assert "SMC080" not in sysinv and {"SMC081", "SMC082"} <= sysinv
    with pytest.raises(KeyError):
        RuleEngine(state, "mainline", select=["SMC999"])


def test_findings_are_attached_to_their_flow(tmp_path):
    lines = lines_of(PROBE)
    result = analyse(tmp_path, edited(lines, 16, "ret (0, 0, 0, 0)", "ret (9, 0, 0, 0)"))
    finding, = result.of("SMC071")
    flow = next(f for f in result.flows if f.index == finding.flow)
    assert flow.findings == ["SMC071"] and flow.last_line == 16


def test_quiet_calls_show_no_trait_but_their_thread(tmp_path):
    flows = analyse(tmp_path, lines_of(KRET)).flows  # OP-TEE 4.10 with RPC_ARG: every yielding call is quiet
    assert {traits_of(f) for f in flows if not f.fast} == {frozenset(), frozenset({"thread"})}
    with pytest.raises(ValueError, match="rpc_aloc"):
        type("Typo", (Check,), {"traits": frozenset({"rpc_aloc"})})


# --- real traces: the exact findings, none of them a false error ------------------------------------
REAL = {
    "dbg-probe": ((), PROBE, (), {}),
    "dbg-probe+dmesg": ((PROBE_DMESG,), PROBE, (), {}),
    "dbg-kretprobe": ((), KRET, (), {}),
    "dbg-kprobe": ((), KPROBE, (), {}),
    # OP-TEE 3.16 caches its RPC buffer (ENABLE_SHM_CACHE OK): never freed in the capture, not leaked
    "legacy-os-kretprobe": ((), LEGACY, (), {"SMC032": {"info"}}),
    "newkernel-kretprobe": ((), NEWKERNEL, (), {}),
    # no BL32: CALLS_UID -> SMC_UNK, the one genuine error of the corpus
    "misconf-nobl32": ((NOBL32_DMESG,), NOBL32, (NOBL32_TFA,), {"SMC070": {"error"}}),
    "nodynshm-lite": ((NODYNSHM_DMESG,), NODYNSHM, (), {}),
    # Linux 6.1 retries after ETHREAD_LIMIT routinely; the excerpt's end cuts two calls
    "dbg-xtest": ((), XTEST, (), {"SMC061": {"info"}, "SMC001": {"info"}, "SMC023": {"info"}}),
    "pipe-small": ((), PIPE, (), {}),
    "trace-cmd-small": ((), TRACE_CMD, (), {}),
}


@pytest.mark.parametrize("name", REAL)
def test_real_traces_have_only_genuine_findings(tmp_path, name):
    before, trace, after, expected = REAL[name]
    result = analyse(tmp_path, lines_of(trace), before, after)
    assert result.by_rule() == expected
    for f in result.findings:
        check_finding(f)


# --- the engine's traits: the same findings as every check on every flow -----------------------------
TRACE_FILES = sorted(p for p in (*ROOT.glob("traces/*/*"), *DATA.rglob("*"))
                     if p.is_file() and p.suffix not in (".md", ".toml"))


@pytest.mark.parametrize("path", TRACE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_traits_keep_the_findings_of_every_file(path):
    checked([path])


@pytest.mark.parametrize("profile", ["mainline", "sysinv-v1", "sysinv-v2"])
@pytest.mark.parametrize("capture", sorted(ROOT.glob("traces/*/")), ids=lambda p: p.name)
def test_traits_keep_the_findings_of_every_capture(capture, profile):
    checked([capture], profile)


_VALUES = ("0", "1", "2", "3", "4", "5", "7", "ffff0000", "ffff0002", "ffff0004", "ffff0005", "ffff0006",
           "ffffffff", "ffffffea", "32000003", "32000012", "b2000009", "4632d040")
_VALUE = re.compile(r"(?<=[(, =])(0x)?[0-9a-f]+(?=[,)\s]|$)")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", REAL)
def test_traits_keep_the_findings_of_edited_traces(tmp_path, name, seed):
    """Real traces with a few SMC lines removed or a register changed at random (seeded)."""
    before, trace, after, _ = REAL[name]
    rng = random.Random(f"{name}/{seed}")
    lines = lines_of(trace)
    smc = [i for i, line in enumerate(lines) if "optee_invoke_fn" in line or "optee_smccc_smc" in line]
    removed = set()
    for _ in range(rng.randint(1, 6)):
        i = rng.choice(smc)
        values = list(_VALUE.finditer(lines[i]))
        if rng.random() < 0.3 or not values:
            removed.add(i)
            continue
        value = rng.choice(values)
        lines[i] = f"{lines[i][:value.start()]}{value[1] or ''}{rng.choice(_VALUES)}{lines[i][value.end():]}"
    edited = [line for i, line in enumerate(lines) if i not in removed]
    analyse(tmp_path, edited, before, after, ("mainline", "sysinv-v1", "sysinv-v2")[seed % 3])


def test_no_optee_cites_tfa_and_driver(tmp_path):
    result = analyse(tmp_path, lines_of(NOBL32), (NOBL32_DMESG,), (NOBL32_TFA,))
    finding, = result.of("SMC070")
    check_finding(finding, "SMC_UNK", "No OPTEE provided by BL2", "api uid mismatch")
    assert {Path(f).name for f, _ in finding.evidence} == {"qemu-misconf-nobl32-dmesg.txt.xz",
                                                           "qemu-misconf-nobl32-tfa-console.log.xz"}


def test_foreign_uid_answered_ok(tmp_path):
    lines = lines_of(KRET)  # a UID whose first word is 0 reads as OK: SMC070 still judges CALLS_UID
    finding, = analyse(tmp_path, fast_call(lines, 0xBF00FF01, ret={"r0=0x384fb3e0": "r0=0x0"})).of("SMC070")
    check_finding(finding, "UID 00000000-e7f811e3-af630002-a5d5c51b", "api uid mismatch")


# --- pairing ------------------------------------------------------------------------------------------
def test_begin_without_end(tmp_path):
    lines = lines_of(PROBE)
    result = analyse(tmp_path, without(lines, 14))  # the first call's end removed
    finding, = result.of("SMC001")
    assert finding.severity == "error" and finding.line == 13
    assert result.by_rule()["SMC020"] == {"info"}  # its resume now starts a flow: accepted by OP-TEE
    cut = analyse(tmp_path, without(lines, len(lines)))  # the capture ends inside the last call
    assert cut.by_rule() == {"SMC001": {"info"}}
    assert "SMC001" not in analyse(tmp_path, lines).rules()


def test_end_without_begin(tmp_path):
    lines = lines_of(PROBE)
    result = analyse(tmp_path, without(lines, 19))  # a resume's begin removed mid-trace
    finding, = result.of("SMC002")
    assert finding.severity == "error" and finding.line == 19
    start = analyse(tmp_path, without(lines, 13))  # the capture begins inside the first call
    assert start.by_rule()["SMC002"] == {"info"} and start.rules("error") == set()
    lost = analyse(tmp_path, [*lines[:18], "CPU:1 [LOST 3 EVENTS]", *lines[19:]])
    assert lost.by_rule()["SMC002"] == {"info"} and lost.rules("error") == set()


def test_nested_entry(tmp_path):
    lines = lines_of(NEWKERNEL)
    # the hard-IRQ GET_ASYNC_NOTIF_VALUE inside a RETURN_FROM_RPC's probes is legitimate: not reported
    inner = line_no(lines, "dNh..", "a0=0xb2000011")
    assert "SMC003" not in analyse(tmp_path, lines).rules()
    other = edited(edited(lines, inner, "a0=0xb2000011", "a0=0xb200000f"), inner + 1, "a0=0xb2000011", "a0=0xb200000f")
    finding, = analyse(tmp_path, other).of("SMC003")
    assert finding.severity == "warning" and finding.line == inner
    check_finding(finding, "OPTEE_SMC_GET_THREAD_COUNT", "optee_example_h-151")


# --- function IDs -------------------------------------------------------------------------------------
def test_unknown_yielding_function(tmp_path):
    lines = lines_of(PROBE)  # line 23: a REGD_ARG answered OK at once
    rogue = edited(edited(lines, 23, "(32000013,", "(32000015,"), 24, "ret (0,", "ret (5,")
    finding, = analyse(tmp_path, rogue).of("SMC010")
    assert finding.severity == "error"
    check_finding(finding, "0x32000015", "optee_os#1401", "OPTEE_SMC_RETURN_EBADCMD")
    answered_ok = analyse(tmp_path, edited(lines, 23, "(32000013,", "(32000015,")).of("SMC010")
    assert [f.severity for f in answered_ok] == ["warning"]  # served: a vendor extension?
    assert not analyse(tmp_path, lines).rules() & {"SMC010", "SMC011", "SMC012", "SMC013"}


@pytest.mark.parametrize("rule, a0, words", [
    ("SMC011", "0x3200000a", ("OPTEE_SMC_DISABLE_SHM_CACHE is a fast call",)),
    ("SMC012", "0xf200000a", ("SMC64",)),
    ("SMC013", "0xb202000a", ("bits 23:17", "SMC_UNK")),
])
def test_malformed_function_ids(tmp_path, rule, a0, words):
    lines = lines_of(KRET)
    bad = fast_call(lines, 0xB200000A, {"a0=0xb200000a": f"a0={a0}"}, {"r0=0x7": "r0=0xffffffff"})
    result = analyse(tmp_path, bad)
    finding, = result.of(rule)
    assert finding.severity == "error" and result.rules() & {"SMC010", "SMC011", "SMC012", "SMC013"} == {rule}
    check_finding(finding, *words)


# --- RPC round trips ------------------------------------------------------------------------------------
def test_resume_without_rpc(tmp_path):
    lines = lines_of(PROBE)  # line 23: a REGD_ARG call answered OK, now a RETURN_FROM_RPC answered ERESUME
    stray = edited(edited(lines, 23, "(32000013,", "(32000003,"), 24, "ret (0,", "ret (3,")
    finding, = analyse(tmp_path, stray).of("SMC020")
    assert finding.severity == "error"
    check_finding(finding, "ERESUME", "thread_resume_from_rpc")
    cut = analyse(tmp_path, lines[:12] + lines[14:])  # the capture begins after the first RPC request
    assert cut.by_rule() == {"SMC020": {"info"}}
    assert "SMC020" not in analyse(tmp_path, lines).rules()


def test_resume_thread_mismatch(tmp_path):
    lines = lines_of(PROBE)  # line 19 resumes thread 0, suspended by the RPC of line 18
    wrong = edited(lines, 19, "(32000003, 0, 0, 0,", "(32000003, 0, 0, 1,")
    finding, = analyse(tmp_path, wrong).of("SMC021")
    assert finding.severity == "error" and finding.line == 19
    check_finding(finding, "a3 = 1", "OP-TEE thread 0", "ERESUME")
    assert "SMC021" not in analyse(tmp_path, lines).rules()


def test_resume_info_not_preserved(tmp_path):
    lines = lines_of(PROBE)
    changed = edited(lines, 19, "(32000003, 0, 0, 0, 0, 0, 0, 0)", "(32000003, 7, 0, 0, 0, 0, 0, 2)")
    finding, = analyse(tmp_path, changed).of("SMC022")
    assert finding.severity == "warning"
    check_finding(finding, "a7 = 0x2", "a1:a2 = 0x7:0x0", "FOREIGN_INTR")
    assert "SMC022" not in analyse(tmp_path, lines).rules()


def test_rpc_unanswered(tmp_path):
    lines = lines_of(PROBE)  # param afc3d21f: call 17, RPCs 18 and 20, resume 21-22, then a new call at 29
    abandoned = analyse(tmp_path, without(lines, 21, 22))
    finding, = abandoned.of("SMC023")
    assert finding.severity == "error" and finding.line == 20
    check_finding(finding, "stays suspended", "OP-TEE thread 0")
    at_end = analyse(tmp_path, lines[:20])  # the capture stops while the normal world serves the RPC
    assert at_end.by_rule() == {"SMC023": {"info"}}
    assert "SMC023" not in analyse(tmp_path, lines).rules()


def test_unknown_rpc_function(tmp_path):
    lines = lines_of(PROBE)
    finding, = analyse(tmp_path, edited(lines, 18, "ret (ffff0004,", "ret (ffff0007,")).of("SMC024")
    assert finding.severity == "warning" and finding.line == 18
    check_finding(finding, "0x7", "Unknown RPC func")
    assert "SMC024" not in analyse(tmp_path, lines).rules()


# --- RPC shared memory (OP-TEE 3.16: RPC ALLOC, CMD with the cookie, SHM cache) ------------------------
def _alloc_reply(lines: list[str]) -> int:
    """The tracepoint begin of the RETURN_FROM_RPC that answers the trace's RPC ALLOC."""
    request = line_no(lines, "optee_invoke_fn_end", "ret (ffff0000,")
    return line_no(lines, "optee_invoke_fn_begin", "(32000003,", after=request)


def test_rpc_alloc_failed(tmp_path):
    lines = lines_of(LEGACY)
    reply = _alloc_reply(lines)
    failed = edited(edited(lines, reply, "0, 45eb9000,", "0, 0,"), reply + 1, "a2=0x45eb9000", "a2=0x0")
    finding, = analyse(tmp_path, failed).of("SMC030")
    assert finding.severity == "error" and finding.line == reply
    check_finding(finding, "160 bytes", "address 0", "thread_rpc_alloc_arg")
    assert "SMC030" not in analyse(tmp_path, lines).rules()


def test_rpc_alloc_no_cookie(tmp_path):
    lines = lines_of(LEGACY)
    reply = _alloc_reply(lines)
    bare = edited(edited(lines, reply, "ffff5bf3, 45e7a000, 0, 0)", "0, 0, 0, 0)"), reply + 1,
                  "a4=0xffff5bf3 a5=0x45e7a000", "a4=0x0 a5=0x0")
    result = analyse(tmp_path, bare)
    finding, = result.of("SMC031")
    assert finding.severity == "error" and finding.line == reply
    assert result.by_rule()["SMC034"] == {"error"}  # the CMDs then name a cookie nobody handed out
    assert "SMC031" not in analyse(tmp_path, lines).rules()


def test_shm_never_freed(tmp_path):
    lines = lines_of(LEGACY)
    entry, ret = kprobe_pair(lines, 0xB200000B)  # ENABLE_SHM_CACHE: with it, OP-TEE keeps the buffer
    leaked = analyse(tmp_path, without(lines, entry, ret))
    finding, = leaked.of("SMC032")
    assert finding.severity == "error"
    check_finding(finding, "0xffff5bf345e7a000", "call_entry_std")
    cached, = analyse(tmp_path, lines).of("SMC032")
    assert cached.severity == "info"
    check_finding(cached, "ENABLE_SHM_CACHE answered OK")
    assert "SMC032" not in analyse(tmp_path, lines_of(KRET)).rules()  # RPC_ARG: no ALLOC at all


def _cmd_returns(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines, 1) if "optee_invoke_fn_end" in line and "ret (ffff0005," in line]


def _as_free(lines: list[str], end: int) -> list[str]:
    """The RPC CMD returned at tracepoint line ``end`` (and its kretprobe twin) turned into a FREE."""
    lines = edited(lines, end, "ret (ffff0005,", "ret (ffff0002,")
    return edited(lines, end - 1, "r0=0xffff0005", "r0=0xffff0002")


def test_shm_double_free(tmp_path):
    lines = lines_of(LEGACY)
    first, second = _cmd_returns(lines)[:2]
    once = analyse(tmp_path, _as_free(lines, first))
    assert not once.rules() & {"SMC033", "SMC034", "SMC032"}  # freed once: released, no leak
    twice = analyse(tmp_path, _as_free(_as_free(lines, first), second))
    finding, = twice.of("SMC033")
    assert finding.severity == "error" and finding.line == second
    check_finding(finding, "0xffff5bf345e7a000", f"{first}")


def test_shm_unknown_cookie(tmp_path):
    lines = lines_of(LEGACY)
    first = _cmd_returns(lines)[0]
    stray = edited(edited(lines, first, "ffff5bf3, 45e7a000, 0)", "ffff5bf3, 45e7b000, 0)"), first - 1,
                   "r2=0x45e7a000", "r2=0x45e7b000")
    finding, = analyse(tmp_path, stray).of("SMC034")
    assert finding.severity == "error" and finding.line == first
    check_finding(finding, "0xffff5bf345e7b000", "CMD")
    freed = analyse(tmp_path, _as_free(stray, first)).of("SMC034")
    assert [f.severity for f in freed] == ["error"] and "FREE" in freed[0].message
    empty = edited(edited(lines, first, "ffff5bf3, 45e7a000, 0)", "0, 0, 0)"), first - 1,
                   "r1=0xffff5bf3 r2=0x45e7a000", "r1=0x0 r2=0x0")
    no_buffer, = analyse(tmp_path, empty).of("SMC034")
    check_finding(no_buffer, "cookie 0", "CALL_WITH_ARG")
    assert "SMC034" not in analyse(tmp_path, lines).rules()


# --- capabilities ---------------------------------------------------------------------------------------
def test_call_before_exchange(tmp_path):
    lines = lines_of(KRET)
    entry, ret = kprobe_pair(lines, 0xB2000009)
    result = analyse(tmp_path, without(lines, entry, ret))
    findings = result.of("SMC040")
    assert findings and {f.severity for f in findings} == {"warning"}
    check_finding(findings[0], "OPTEE_SMC_ENABLE_ASYNC_NOTIF", "before EXCHANGE_CAPABILITIES")
    assert "SMC040" not in analyse(tmp_path, lines).rules()
    assert "SMC040" not in analyse(tmp_path, lines_of(KPROBE)).rules()  # out-of-order flows, same probe


@pytest.mark.parametrize("caps, rules", [
    ("r1=0xb5", {"SMC041"}),  # no RPC_ARG
    ("r1=0xf1", {"SMC042"}),  # no DYNAMIC_SHM
    ("r1=0xd5", {"SMC047"}),  # no ASYNC_NOTIF
])
def test_calls_without_their_capability(tmp_path, caps, rules):
    lines = lines_of(KRET)
    result = analyse(tmp_path, fast_call(lines, 0xB2000009, ret={"r1=0xf5": caps}))
    assert result.rules("error") == rules
    check_finding(result.findings[0], caps.replace("r1=", "SEC caps "))
    assert not analyse(tmp_path, lines).rules("error")


def test_regd_arg_without_dynamic_shm_from_dmesg(tmp_path):
    lines = lines_of(NODYNSHM)  # the probe's first call, in the static SHM, now as a REGD_ARG
    regd = edited(lines, 13, "(32000012, 0, 42000000,", "(32000013, ffff5bf3, 42000000,")
    result = analyse(tmp_path, regd, before=(NODYNSHM_DMESG,))
    finding, = result.of("SMC042")
    assert finding.severity == "error" and finding.line == 13
    check_finding(finding, "initialized driver", "dynamic shared memory is enabled")
    late = analyse(tmp_path, regd, after=(NODYNSHM_DMESG,))  # the kernel log read after the trace
    assert late.by_rule()["SMC042"] == {"error"}
    assert "SMC042" not in analyse(tmp_path, lines, before=(NODYNSHM_DMESG,)).rules()
    dynamic = edited(lines_of(PROBE), 13, "(32000012, 0, 4632c000,", "(32000013, ffff5bf3, 4632c000,")
    assert "SMC042" not in analyse(tmp_path, dynamic, before=(PROBE_DMESG,)).rules()
    assert "SMC042" not in analyse(tmp_path, regd).rules()  # no evidence either way


def test_nsec_caps_unknown_bits(tmp_path):
    lines = lines_of(KRET)
    bad = fast_call(lines, 0xB2000009, {"a1=0x0": "a1=0x2"}, {"r0=0x0 r1=0xf5": "r0=0x7 r1=0x2"})
    result = analyse(tmp_path, bad)
    finding, = result.of("SMC043")
    assert finding.severity == "error"
    check_finding(finding, "0x2", "S12", "capabilities mismatch", "OPTEE_SMC_RETURN_ENOTAVAIL")
    assert result.by_rule()["SMC072"] == {"error"}  # the ENOTAVAIL answer, explained
    assert "SMC043" not in analyse(tmp_path, lines).rules()


def test_exchange_a3_mbz(tmp_path):
    lines = lines_of(KRET)
    finding, = analyse(tmp_path, fast_call(lines, 0xB2000009, ret={"r3=0x4": "r3=0x104"})).of("SMC044")
    assert finding.severity == "warning"
    check_finding(finding, "0x104", "31:8")
    assert "SMC044" not in analyse(tmp_path, lines).rules()


def test_shm_cache_with_rpc_arg(tmp_path):
    lines = lines_of(KRET)  # OP-TEE 4.10 with RPC_ARG and 4 RPC parameters: Linux never enables the cache
    enable = fast_call(lines, 0xB200000A, {"a0=0xb200000a": "a0=0xb200000b"}, {"r0=0x7": "r0=0x0"})
    finding, = analyse(tmp_path, enable).of("SMC045")
    assert finding.severity == "warning"
    check_finding(finding, "4 RPC parameters", "rpc_param_count")
    assert "SMC045" not in analyse(tmp_path, lines_of(LEGACY)).rules()  # 3.16: no RPC_ARG, cache legit


def test_disable_shm_cache_loop(tmp_path):
    lines = lines_of(LEGACY)  # DISABLE_SHM_CACHE -> ENOTAVAIL, then ENABLE_SHM_CACHE
    stopped = fast_call(lines, 0xB200000A, ret={"r0=0x7 r1=0x0 r2=0x0": "r0=0x0 r1=0xffff5bf3 r2=0x45e00000"})
    finding, = analyse(tmp_path, stopped).of("SMC046")
    assert finding.severity == "warning"
    check_finding(finding, "OPTEE_SMC_RETURN_OK", "OPTEE_SMC_ENABLE_SHM_CACHE", "ENOTAVAIL")
    busy_at_end = fast_call(lines_of(KRET), 0xB200000A, ret={"r0=0x7": "r0=0x2"})
    assert analyse(tmp_path, busy_at_end).by_rule()["SMC046"] == {"warning"}
    assert "SMC046" not in analyse(tmp_path, lines).rules()


def test_async_notif_a2_mbz(tmp_path):
    lines = lines_of(KRET)
    finding, = analyse(tmp_path, fast_call(lines, 0xB2000011, ret={"r2=0x1": "r2=0x5"})).of("SMC048")
    assert finding.severity == "warning"
    check_finding(finding, "0x5", "31:2")
    assert "SMC048" not in analyse(tmp_path, lines).rules()


# --- call arguments -------------------------------------------------------------------------------------
def test_arg_not_aligned(tmp_path):
    lines = lines_of(PROBE)  # line 25: a CALL_WITH_RPC_ARG answered OK at once
    odd = edited(edited(lines, 25, "4632d000,", "4632d040,"), 26, "ret (0,", "ret (4,")
    result = analyse(tmp_path, odd)
    finding, = result.of("SMC050")
    assert finding.severity == "error" and finding.line == 25
    check_finding(finding, "0x4632d040", "S6", "OPTEE_SMC_RETURN_EBADADDR")
    assert result.by_rule()["SMC072"] == {"error"}
    static = lines_of(NODYNSHM)  # 0x42000180: in the static SHM, accepted
    assert "SMC050" not in analyse(tmp_path, static).rules()
    assert "SMC050" not in analyse(tmp_path, lines).rules()


@pytest.mark.parametrize("a7, found", [("a7=0x1", {"SMC051"}), ("a7=0x0", set())])
def test_vm_call_client_id(tmp_path, a7, found):
    lines = lines_of(KRET)  # DISABLE_SHM_CACHE made a VM_CREATED(guest 2) from client a7
    vm = fast_call(lines, 0xB200000A, {"a0=0xb200000a a1=0x0": "a0=0xb200000d a1=0x2", "a7=0x0": a7},
                   {"r0=0x7": "r0=0x7" if found else "r0=0x0"})
    result = analyse(tmp_path, vm)
    assert result.rules() & {"SMC051"} == found
    if found:
        check_finding(result.of("SMC051")[0], "client 1", "S16")


@pytest.mark.parametrize("a2, found", [("a2=0x1", {"SMC052"}), ("a2=0x0", set())])
def test_protmem_config_mbz(tmp_path, a2, found):
    lines = lines_of(KRET)
    protmem = fast_call(lines, 0xB200000A, {"a0=0xb200000a": "a0=0xb2000014", "a2=0x0": a2})
    result = analyse(tmp_path, protmem)
    assert result.rules() & {"SMC052"} == found


# --- threads --------------------------------------------------------------------------------------------
def test_threads_exceeded(tmp_path):
    lines = lines_of(NEWKERNEL)  # two yielding calls in flight at once; GET_THREAD_COUNT -> 1 instead of 2
    result = analyse(tmp_path, fast_call(lines, 0xB200000F, ret={"r1=0x2": "r1=0x1"}))
    finding, = result.of("SMC060")
    assert finding.severity == "warning"
    check_finding(finding, "2 yielding calls", "GET_THREAD_COUNT answered 1")
    assert "SMC060" not in analyse(tmp_path, lines).rules()


def test_ethread_limit_storm(tmp_path):
    routine, = analyse(tmp_path, lines_of(XTEST)).of("SMC061")  # Linux 6.1: retries are routine
    assert routine.severity == "info"
    check_finding(routine, "20 times", "653.934 ms", "routine")
    lines = lines_of(NEWKERNEL)  # Linux 6.12 counts its threads: an ETHREAD_LIMIT is news
    end = line_no(lines, "optee_invoke_fn_end", "ret (0, 0, 0, 0)")
    refused = edited(edited(lines, end, "ret (0,", "ret (1,"), end - 1, "r0=0x0", "r0=0x1")
    finding, = analyse(tmp_path, refused).of("SMC061")
    assert finding.severity == "warning"
    check_finding(finding, "GET_THREAD_COUNT answered 2", "waits for a free thread")
    assert "SMC061" not in analyse(tmp_path, lines).rules()
    old = lines_of(KRET)  # Linux 6.1, its probe in the capture without GET_THREAD_COUNT
    end = line_no(old, "optee_invoke_fn_end", "ret (0, 0, 0, 0)")
    refused = edited(edited(old, end, "ret (0,", "ret (1,"), end - 1, "r0=0x0", "r0=0x1")
    finding, = analyse(tmp_path, refused).of("SMC061")
    assert finding.severity == "info"
    check_finding(finding, "asked no GET_THREAD_COUNT", "routine")


# --- results --------------------------------------------------------------------------------------------
def test_no_optee_einval(tmp_path):
    lines = lines_of(PROBE)
    finding, = analyse(tmp_path, edited(lines, 24, "ret (0,", "ret (ffffffea,")).of("SMC070")
    assert finding.severity == "error"
    check_finding(finding, "-EINVAL", "not loaded")
    assert "SMC070" not in analyse(tmp_path, lines_of(KRET)).rules()


def test_unexpected_result(tmp_path):
    lines = lines_of(PROBE)
    finding, = analyse(tmp_path, edited(lines, 24, "ret (0,", "ret (9,")).of("SMC071")
    assert finding.severity == "error"
    check_finding(finding, "0x9", "OPTEE_SMC_RETURN_")
    echoed, = analyse(tmp_path, edited(lines, 24, "ret (0,", "ret (32000013,")).of("SMC071")
    check_finding(echoed, "X7")
    assert "SMC071" not in analyse(tmp_path, lines).rules()


@pytest.mark.parametrize("status, severity, words", [
    ("4", "error", ("S8", "Bad arg cookie")),
    ("5", "error", ("S11", "Unknown cmd")),
    ("6", "error", ("S9",)),
    ("3", "error", ("S4",)),
])
def test_error_return_explained(tmp_path, status, severity, words):
    lines = lines_of(PROBE)  # line 23: a REGD_ARG answered OK at once
    finding, = analyse(tmp_path, edited(lines, 24, "ret (0,", f"ret ({status},")).of("SMC072")
    assert finding.severity == severity and finding.line == 24
    check_finding(finding, *words)


def test_error_return_of_fast_calls(tmp_path):
    lines = lines_of(NEWKERNEL)  # an OP-TEE before 3.5 does not know GET_THREAD_COUNT: information
    old, = analyse(tmp_path, fast_call(lines, 0xB200000F, ret={"r0=0x0 r1=0x2": "r0=0xffffffff r1=0x0"})).of("SMC072")
    assert old.severity == "info"
    check_finding(old, "older than 3.5")
    # DISABLE_SHM_CACHE -> ENOTAVAIL ends its loop: no error
    assert "SMC072" not in analyse(tmp_path, lines).rules()


# --- system threads -------------------------------------------------------------------------------------
def test_system_thread_unavailable(tmp_path):
    lines = lines_of(NEWKERNEL)
    one = fast_call(lines, 0xB200000F, ret={"r1=0x2": "r1=0x1"})
    finding, = analyse(tmp_path, one).of("SMC080")
    assert finding.severity == "warning"
    check_finding(finding, "returned 1", "above 1")
    assert "SMC080" not in analyse(tmp_path, lines).rules()
    assert "SMC080" not in analyse(tmp_path, one, profile="sysinv-v1").rules()  # a mainline-driver rule


def test_sysinv_without_cap(tmp_path):
    lines = lines_of(KRET)  # a REGD_ARG call (tracepoint and kprobe) made a v1 system invocation
    begin = line_no(lines, "optee_invoke_fn_begin", "(32000013,")
    sysinv = edited(edited(lines, begin, "(32000013,", "(32000014,"), begin + 1, "a0=0x32000013", "a0=0x32000014")
    no_cap = fast_call(sysinv, 0xB2000009, ret={"r1=0xf5": "r1=0x75"})  # bit 7 (SYSTEM_THREAD in v1) clear
    finding, = analyse(tmp_path, no_cap, profile="sysinv-v1").of("SMC081")
    assert finding.severity == "error" and finding.line == begin
    check_finding(finding, "OPTEE_SMC_CALL_SYSTEM_WITH_REGD_ARG", "SYSTEM_THREAD")
    assert not analyse(tmp_path, sysinv, profile="sysinv-v1").rules() & {"SMC081", "SMC082"}


def test_system_thread_unused(tmp_path):
    lines = lines_of(KRET)  # 0xf5: in the sysinv proposals bit 7 is SYSTEM_THREAD; no system call follows
    idle, = analyse(tmp_path, lines, profile="sysinv-v1").of("SMC082")
    assert idle.severity == "info"
    begin = answered_at_once(lines, "32000013")  # v2: a call made a RESERVE_SYS_THREAD
    reserve = edited(edited(lines, begin, "(32000013, ffff5bf3,", "(32000015, 0,"), begin + 1,
                     "a0=0x32000013 a1=0xffff5bf3", "a0=0x32000015 a1=0x0")
    findings = analyse(tmp_path, reserve, profile="sysinv-v2").of("SMC082")
    assert [f.severity for f in findings] == ["warning"]
    check_finding(findings[0], "RESERVE_SYS_THREAD was answered OK")
    assert "SMC082" not in analyse(tmp_path, lines).rules()  # mainline: bit 7 is RPMB_PROBE
