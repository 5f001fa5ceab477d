"""The analyzer under damage: real captures cut, spliced, repeated and shuffled as captures go
wrong in practice, at many points (seeded). No damage may produce an error finding: what it
leaves is a capture artefact, reported as info, or as a warning that names the gap. Positive
controls: a real misuse edit next to the damage still gives its error.

Damage kinds (``DAMAGE``), on the event lines of a capture (its header kept):

- ``end``, ``end-mid-line``: the capture stops at a line, or inside one;
- ``start``, ``start-mid-line``: its first lines are gone (overwrite mode, a log cut by ``tail``);
- ``overwrite``: one CPU's ring buffer wrapped further back than the others': that CPU's events
  before a point are gone, the other CPUs' stay;
- ``concat``, ``splice``: a capture's head, then the whole capture, or another capture as if of the
  next boot (two captures in one file): time jumps back at the junction;
- ``clock``: one event's timestamp goes back (a garbled digit);
- ``swap``: two neighbouring events of different CPUs and tasks out of order (merged by a reader
  that races the writers: one task's events stay in order, it cannot run before its own past);
- ``dup-line``, ``dup-block``: a line, or a few lines, repeated right after themselves (serial
  consoles do);
- ``lost``: a few consecutive events of one CPU gone and ``CPU:N [LOST k EVENTS]`` printed before
  that CPU's next event, as ftrace does (kernel/trace/trace.c ``print_trace_line``).

``python tests/test_damage.py`` (or ``benchmarks/damage_matrix.py``) prints the damage matrix:
which damage, which findings (by rule and severity) beyond the undamaged capture's, over which
captures.
"""

from __future__ import annotations

import lzma
import random
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from smcwire.codec.decode import decoder
from smcwire.flows.model import Finding, Flow
from smcwire.flows.state import TraceState
from smcwire.flows.tracker import Tracker
from smcwire.rules.engine import RuleEngine
from smcwire.sources.reader import TraceReader

ROOT = Path(__file__).parent.parent
DATA = ROOT / "tests/data"
KRET = ROOT / "traces/qemu-dbg-kretprobe/ftrace.txt.xz"

# name -> (file, keep): the real captures, each with the lines it keeps of its file
CAPTURES: dict[str, tuple[Path, Callable[[str], bool]]] = {
    "kretprobe": (KRET, lambda line: True),  # tracepoints, kprobe and kretprobe, OP-TEE 4.10
    "tracepoints": (ROOT / "traces/qemu-dbg-probe/ftrace.txt", lambda line: True),
    "legacy": (DATA / "legacy-os-kretprobe-ftrace.txt.xz", lambda line: True),  # OP-TEE 3.16, RPC ALLOC
    "newkernel": (DATA / "ftrace/newkernel-kretprobe-ftrace.txt.xz", lambda line: True),  # nested IRQ SMCs
    "entry-kprobe": (DATA / "ftrace/dbg-kprobe-ftrace.txt.xz", lambda line: True),  # no return probe
    "xtest": (DATA / "rules/dbg-xtest-ftrace-ethread.txt.xz", lambda line: True),  # 12 tasks, 2 CPUs, ETHREAD_LIMIT
    # the kprobe and kretprobe events of the first capture alone, as a capture of those events only
    "kprobes-only": (KRET, lambda line: "optee_invoke_fn" not in line),
}

Lines = tuple[str, ...]
_CONTEXT = re.compile(r"\[(\d{3})\](?:\s+\S{4,5})?\s+(\d+)\.(\d{6}):")


@cache
def capture_lines(name: str) -> tuple[Lines, Lines]:
    """(header, event lines) of a capture."""
    path, keep = CAPTURES[name]
    data = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
    lines = data.decode().splitlines()
    header = tuple(x for x in lines if x.startswith("#"))
    return header, tuple(x for x in lines if x and not x.startswith("#") and keep(x))


def _cpu(line: str) -> int | None:
    found = _CONTEXT.search(line)
    return int(found[1]) if found else None


def _ts(line: str) -> int:
    found = _CONTEXT.search(line)
    assert found, line
    return int(found[2]) * 10**6 + int(found[3])


def _with_ts(line: str, us: int) -> str:
    found = _CONTEXT.search(line)
    assert found, line
    stamp = f"{us // 10**6:5d}.{us % 10**6:06d}"
    return f"{line[:found.start(2)]}{stamp.strip().rjust(found.end(3) - found.start(2))}{line[found.end(3):]}"


# --- damage: (event lines, where, rng) -> damaged event lines ------------------------------------------
def end(body: Lines, at: int, rng: random.Random) -> list[str]:
    return list(body[:at])


def end_mid_line(body: Lines, at: int, rng: random.Random) -> list[str]:
    return [*body[:at], body[at][:rng.randrange(1, len(body[at]))]]


def start(body: Lines, at: int, rng: random.Random) -> list[str]:
    return list(body[at:])


def start_mid_line(body: Lines, at: int, rng: random.Random) -> list[str]:
    return [body[at][rng.randrange(1, len(body[at])):], *body[at + 1:]]


def overwrite(body: Lines, at: int, rng: random.Random) -> list[str]:
    cpu = _cpu(body[at])
    return [line for i, line in enumerate(body) if i >= at or _cpu(line) != cpu]


def concat(body: Lines, at: int, rng: random.Random) -> list[str]:
    return [*body[:at], *body]


def splice(body: Lines, at: int, rng: random.Random) -> list[str]:
    other = capture_lines(rng.choice([name for name in CAPTURES if capture_lines(name)[1] is not body]))[1]
    shift = _ts(other[0]) - max(_ts(body[0]) - 10**6, 0)  # another boot: its clock starts again, before
    return [*body[:at], *(_with_ts(line, _ts(line) - shift) if _CONTEXT.search(line) else line for line in other)]


def clock(body: Lines, at: int, rng: random.Random) -> list[str]:
    back = _ts(body[at]) - rng.randrange(1, 10) * 10**6  # a second digit garbled
    return [*body[:at], _with_ts(body[at], max(back, 0)), *body[at + 1:]]


def _task(line: str) -> str:
    return line[:line.index("[")].strip()


def swap(body: Lines, at: int, rng: random.Random) -> list[str]:
    i = next((i for i in range(at, len(body) - 1)
              if _cpu(body[i]) != _cpu(body[i + 1]) and _task(body[i]) != _task(body[i + 1])), None)
    if i is None:
        return list(body)
    return [*body[:i], body[i + 1], body[i], *body[i + 2:]]


def dup_line(body: Lines, at: int, rng: random.Random) -> list[str]:
    return [*body[:at + 1], *body[at:]]


def dup_block(body: Lines, at: int, rng: random.Random) -> list[str]:
    size = rng.randrange(2, 7)
    return [*body[:at + size], *body[at:]]


def lost(body: Lines, at: int, rng: random.Random) -> list[str]:
    cpu, count = _cpu(body[at]), rng.randrange(1, 6)
    mine = [i for i in range(at, len(body)) if _cpu(body[i]) == cpu]
    gone, after = set(mine[:count]), mine[count] if len(mine) > count else None
    out = []
    for i, line in enumerate(body):
        if i == after:
            out.append(f"CPU:{cpu} [LOST {len(gone)} EVENTS]")
        if i not in gone:
            out.append(line)
    return out


DAMAGE: dict[str, Callable[[Lines, int, random.Random], list[str]]] = {
    "end": end, "end-mid-line": end_mid_line, "start": start, "start-mid-line": start_mid_line,
    "overwrite": overwrite, "concat": concat, "splice": splice, "clock": clock, "swap": swap, "dup-line": dup_line,
    "dup-block": dup_block, "lost": lost,
}


# --- running the analyzer -------------------------------------------------------------------------------
@dataclass
class Result:
    findings: list[Finding]
    state: TraceState
    flows: list[Flow]

    def of(self, rule: str) -> list[Finding]:
        return [f for f in self.findings if f.rule == rule]


def analyse(header: Iterable[str], body: Iterable[str], tmp: Path) -> Result:
    """The tracker and all rules over the lines, as one capture (``tmp/ftrace.txt``)."""
    trace = tmp / "ftrace.txt"
    trace.write_text("\n".join([*header, *body]) + "\n")
    tracker = Tracker(str(trace), decoder("mainline"))
    engine = RuleEngine(tracker.state, "mainline")
    found: list[Finding] = []
    flows: list[Flow] = []
    for event in TraceReader.from_names([str(trace)]):
        for flow in tracker.feed(event):
            found += engine.on_flow(flow)
            flows.append(flow)
    for flow in tracker.finish():
        found += engine.on_flow(flow)
        flows.append(flow)
    return Result(found + engine.finish(), tracker.state, flows)


def points(body: Lines, count: int, seed: str) -> list[int]:
    """``count`` damage points spread over the event lines (seeded)."""
    rng = random.Random(seed)
    step = max(1, len(body) // count)
    return sorted({min(len(body) - 1, i * step + rng.randrange(step)) for i in range(count)})


Counts = Counter[tuple[str, str]]


@cache
def baseline(name: str) -> Counts:
    """(rule, severity) counts of the undamaged capture's findings."""
    with tempfile.TemporaryDirectory() as tmp:
        return Counter((f.rule, f.severity) for f in analyse(*capture_lines(name), Path(tmp)).findings)


def expected(kind: str, name: str) -> Counts:
    """What the damaged capture may show without a word on the damage: the findings of the undamaged
    capture (for ``splice``, of any capture, the other capture's included)."""
    if kind != "splice":
        return baseline(name)
    out: Counts = Counter()
    for other in CAPTURES:
        out |= baseline(other)
    return out


def beyond(found: Iterable[Finding], allowed: Counts) -> list[Finding]:
    """The findings beyond the ``allowed`` counts."""
    left = Counter(allowed)
    out = []
    for finding in found:
        key = finding.rule, finding.severity
        if left[key]:
            left[key] -= 1
        else:
            out.append(finding)
    return out


_ARTEFACT = ("capture", "lost", "discontinuity", "went back", "overwr", "missing events")


def names_the_artefact(finding: Finding) -> bool:
    """An info finding, or a warning, whose message names the capture artefact."""
    return finding.severity != "error" and any(word in finding.message for word in _ARTEFACT)


def damaged(kind: str, name: str, at: int) -> list[str]:
    return DAMAGE[kind](capture_lines(name)[1], at, random.Random(f"{kind}/{name}/{at}"))


# --- no damage is misuse -------------------------------------------------------------------------------
POINTS = 6  # damage points per capture and kind in the tests (the matrix script takes more)


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("kind", DAMAGE)
def test_damage_is_not_misuse(tmp_path, kind, name):
    """Each damage at seeded points of each capture: no error, and every finding the undamaged capture
    does not have names the artefact."""
    header, body = capture_lines(name)
    for at in points(body, POINTS, f"test/{kind}/{name}"):
        new = beyond(analyse(header, damaged(kind, name, at), tmp_path).findings, expected(kind, name))
        wrong = [f"{f.rule} {f.severity}: {f.message}" for f in new if not names_the_artefact(f)]
        assert not wrong, (kind, name, at, wrong)


def test_repeated_lines_are_counted_and_skipped(tmp_path):
    header, body = capture_lines("kretprobe")
    clean = analyse(header, body, tmp_path)
    at = len(body) // 2
    result = analyse(header, dup_block(body, at, random.Random(3)), tmp_path)
    size, trace = result.state.duplicates, str(tmp_path / "ftrace.txt")
    assert 2 <= size <= 6 and result.state.duplicates_at[0] == (trace, len(header) + at + 1 + size)
    assert result.findings == clean.findings and result.state.discontinuities == 0
    assert [(f.first_line, f.incomplete) for f in result.flows if f.first_line < len(header) + at] == \
        [(f.first_line, f.incomplete) for f in clean.flows if f.first_line < len(header) + at]


def test_time_going_back_cuts_the_flows_in_flight(tmp_path):
    header, body = capture_lines("kretprobe")
    at = next(i for i, line in enumerate(body) if i > 100 and "optee_invoke_fn_end" in line and "ret (ffff000" in line)
    result = analyse(header, [*body[:at + 1], *body], tmp_path)  # two captures: the first stops inside a call
    trace, junction = str(tmp_path / "ftrace.txt"), len(header) + at + 2
    assert result.state.discontinuities == 1 and result.state.duplicates == 0
    assert result.state.discontinuities_at == [(trace, junction, _ts(body[at]) * 1000, _ts(body[0]) * 1000)]
    cut = [f for f in result.flows if f.incomplete == f"discontinuity at {trace}:{junction}"]
    assert len(cut) == 1 and cut[0].last_line == junction - 1 and cut[0].segment == 0
    assert {f.segment for f in result.flows if f.first_line >= junction} == {1}
    assert {(f.rule, f.severity) for f in result.findings} == {("SMC023", "info")}
    assert f"discontinuity at {trace}:{junction}" in result.of("SMC023")[0].message


def test_rpc_request_without_its_call_opens_the_chain(tmp_path):
    header, body = capture_lines("tracepoints")
    result = analyse(header, body[1:], tmp_path)  # the first call's begin is cut: its RPC request comes first
    first = result.flows[0]
    assert (first.first_line, first.last_line, len(first.steps), first.incomplete) == (13, 15, 2, "no begin")
    assert first.rpcs[0].function == "OPTEE_SMC_RPC_FUNC_FOREIGN_INTR" and first.rpcs[0].reply is first.steps[1]
    assert [(f.rule, f.severity) for f in result.findings] == [("SMC002", "info")]


def test_kprobes_of_a_cut_tracepoint_call_are_its_steps(tmp_path):
    header, body = capture_lines("kretprobe")
    at = next(i for i, line in enumerate(body) if "optee_invoke_fn_begin" in line and "(32000003," in line
              and "r0=0xffff000" in body[i + 2])  # a resume answered with an RPC request
    result = analyse(header, body[at + 1:], tmp_path)  # starts with the resume's kprobe pair, then its end
    first = result.flows[0]
    assert first.key is not None and first.first.call is not None and first.first.call.origin == "kprobe"
    assert [e.line for e in first.first.also] == [len(header) + 3]  # the tracepoint end: the kretprobe's twin
    assert len(first.steps) > 1 and all(s.call is not None and s.ret is not None for s in first.steps)
    assert all(f.severity == "info" for f in result.findings)


# --- real misuse still shows through the damage -------------------------------------------------------------
def _without(body: Lines, *parts: str, nth: int = 1) -> list[str]:
    """The lines without the ``nth`` one holding every part."""
    at = [i for i, line in enumerate(body) if all(p in line for p in parts)][nth - 1]
    return [*body[:at], *body[at + 1:]]


def test_missing_end_in_a_complete_trace_is_an_error(tmp_path):
    header, body = capture_lines("tracepoints")
    finding, = analyse(header, _without(body, "ret (ffff0004,"), tmp_path).of("SMC001")
    assert finding.severity == "error" and finding.line == 13
    header, body = capture_lines("kretprobe")  # the end and its kretprobe twin removed mid-trace
    at = len(body) // 2 + next(i for i, line in enumerate(body[len(body) // 2:]) if "optee_invoke_fn_end" in line)
    edited = [*body[:at - 1], *body[at + 1:]]
    assert "optee_smccc_smc_ret" in body[at - 1]
    assert [f.severity for f in analyse(header, edited, tmp_path).of("SMC001")] == ["error"]


def test_misuse_next_to_damage_is_still_an_error(tmp_path):
    header, body = capture_lines("tracepoints")  # line 19 resumes thread 0, suspended by the RPC of line 18
    wrong = [line.replace("(32000003, 0, 0, 0,", "(32000003, 0, 0, 1,") if i == 6 else line
             for i, line in enumerate(body)]
    for damage in ([*wrong[:2], *wrong], [*wrong[:3], wrong[3], *wrong[3:]], wrong[1:], [*body, *wrong]):
        mismatch = [f for f in analyse(header, damage, tmp_path).findings if f.severity == "error"]
        assert [f.rule for f in mismatch] == ["SMC021"], damage
    begins = _without(body[3:], "(32000003,", nth=3)  # the capture starts late, then a resume's begin is missing
    assert [f.rule for f in analyse(header, begins, tmp_path).findings if f.severity == "error"] == ["SMC002"]


def test_a_lost_marker_excuses_what_its_cpu_may_have_lost(tmp_path):
    header, body = capture_lines("tracepoints")  # all on CPU 1
    edited = _without(body, "ret (ffff0004,")
    other_cpu = analyse(header, [*edited, "CPU:0 [LOST 3 EVENTS]"], tmp_path)
    assert [f.severity for f in other_cpu.of("SMC001")] == ["error"]
    marked = [*edited[:1], "CPU:1 [LOST 1 EVENTS]", *edited[1:]]
    assert [f.severity for f in analyse(header, marked, tmp_path).of("SMC001")] == ["info"]


# --- the damage matrix ----------------------------------------------------------------------------------
def matrix(count: int = 40, captures: Iterable[str] = CAPTURES, damage: Iterable[str] = DAMAGE) -> str:
    """The damage matrix as text: per damage kind, the findings beyond each undamaged capture's, by
    rule and severity, with the captures that showed them."""
    captures, rows = list(captures), []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in damage:
            runs, total, noted = 0, Counter[tuple[str, str]](), Counter[str]()
            where: dict[tuple[str, str], set[str]] = {}
            for name in captures:
                header, body = capture_lines(name)
                for at in points(body, count, f"{kind}/{name}"):
                    result = analyse(header, damaged(kind, name, at), Path(tmp))
                    runs += 1
                    noted.update(repeats=result.state.duplicates, jumps=result.state.discontinuities,
                                 lost=len(result.state.lost))
                    for f in beyond(result.findings, expected(kind, name)):
                        total[f.rule, f.severity] += 1
                        where.setdefault((f.rule, f.severity), set()).add(name)
            rows.append((kind, runs, noted, total, where))
    out = [f"captures: {', '.join(f'{n} ({len(capture_lines(n)[1])} lines)' for n in captures)}; "
           f"{count} damage points each",
           "repeats: lines skipped as repeated; jumps: discontinuities (time went back); lost: LOST markers",
           f"{'damage':<15}{'runs':>5}{'repeats':>8}{'jumps':>6}{'lost':>5}{'errors':>7}{'warnings':>9}  findings "
           "beyond the undamaged capture's: rule severity count (captures)"]
    for kind, runs, noted, total, where in rows:
        errors = sum(n for (_, sev), n in total.items() if sev == "error")
        warnings = sum(n for (_, sev), n in total.items() if sev == "warning")
        detail = ", ".join(f"{rule} {sev} {n} ({_names(where[rule, sev], captures)})"
                           for (rule, sev), n in sorted(total.items()))
        out.append(f"{kind:<15}{runs:>5}{noted['repeats']:>8}{noted['jumps']:>6}{noted['lost']:>5}{errors:>7}"
                   f"{warnings:>9}  {detail or '-'}")
    return "\n".join(out)


def _names(some: set[str], captures: list[str]) -> str:
    if len(some) == len(captures):
        return "all"
    if len(some) > len(captures) / 2:
        return "all but " + ", ".join(n for n in captures if n not in some)
    return ", ".join(n for n in captures if n in some)


if __name__ == "__main__":
    print(matrix(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
