"""One capture analysed and reported as plain data: the unit of work of ``--jobs`` and of a cluster.

``analyze_capture`` is a pure function of its arguments (names and options, no smcwire objects in
or out): it reads the capture, runs the tracker and the rules, and returns a JSON-ready dict that
pickles, so it can run in a worker process, a ``dask`` task or a plain loop::

    {"capture": NAME,          # as given; a directory's without a trailing slash
     "error": None | "…",      # the capture could not be analysed at all (a missing file); the rest empty
     "summary": {…} | None,    # what `check --format json` reports per capture (files, not_run, peaks…)
     "findings": [{…}],        # finding JSON (README "Interfaces"), in the order the rules made them
     "final_findings": N,      # the last N of them only the whole capture shows (leaks, storms)
     "flows": [str] | None,    # with flows=FORMAT: each wanted flow rendered ("table" text or "jsonl")
     "stats": {…} | None}      # with stats=True: `stats --format json`'s object for the capture

A file that cannot be read to its end is not an ``error``: what it held up to there is analysed,
and its summary entry says where it stopped (``files[].error``). (This lives in ``render`` because
it renders flows and findings; ``pipeline.batch`` maps it over many captures.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..abi.extension import load_extension
from ..abi.profiles import DEFAULT_PROFILE, Profile, get_profile
from ..explain.stats import StatsCollector
from ..flows.model import Finding, Flow
from ..pipeline import Analysis, captures
from ..rules.catalog import RULES
from ..sources.formats import format_names
from ..sources.io import InputFileError
from ..sources.reader import Progress
from .flows import finding_json, flow_jsonl, flow_text

# how analyze shows a flow, by --format: the flow and the findings the rules made when it completed
FLOW_FORMATS: dict[str, Callable[[Flow, list[Finding]], str]] = {
    "table": flow_text,
    "jsonl": lambda flow, _findings: flow_jsonl(flow),
}


@dataclass(frozen=True)
class FlowFilter:
    """Which flows ``analyze`` shows; None is no restriction. ``since``/``until`` are seconds."""

    number: int | None = None
    task: str | None = None  # comm, or comm-pid as flows print it
    thread: int | None = None  # OP-TEE thread
    function: str | None = None  # the name or its end
    since: float | None = None
    until: float | None = None

    def __call__(self, flow: Flow) -> bool:
        start = flow.start
        return ((self.number is None or flow.index == self.number)
                and (self.task is None or self.task in (flow.task, f"{flow.task}-{flow.pid}"))
                and (self.thread is None or flow.thread == self.thread)
                and (self.function is None or (flow.function or "").endswith(self.function.upper()))
                and (self.since is None or (start is not None and start >= self.since * 1e9))
                and (self.until is None or (start is not None and start <= self.until * 1e9)))


def check_options(select: Iterable[str] = (), ignore: Iterable[str] = (), input_format: str | None = None) -> None:
    """ValueError naming an unknown rule or input format."""
    known = {r.id for r in RULES}
    for rule in (*select, *ignore):
        if rule not in known:
            raise ValueError(f"unknown rule {rule!r} (see `smcwire rules`)")
    if input_format is not None and input_format not in format_names():
        raise ValueError(f"unknown input format {input_format!r}; choose from {', '.join(format_names())}")


def analyze_capture(name: str, profile: str = DEFAULT_PROFILE, extensions: tuple[str, ...] = (),
                    select: tuple[str, ...] = (), ignore: tuple[str, ...] = (), input_format: str | None = None,
                    flows: str | None = None, flow_filter: FlowFilter | None = None, stats: bool = False,
                    prefetch: bool | None = False, on_flow: Callable[[str, str], None] | None = None,
                    on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """The report of the capture ``name`` (a file, a directory or ``-``), laid out in the module
    docstring. ``flows`` renders the flows in that ``FLOW_FORMATS`` format, those ``flow_filter``
    passes, into ``"flows"``, or, given ``on_flow``, hands each to it as it completes, as
    ``on_flow(capture, text)`` (nothing kept).
    ``prefetch`` and ``on_progress`` as ``Analysis``'s: False suits a worker process (a daemonic
    one cannot fork).
    Bad options (profile, extension file, rule, input format) raise; a capture that cannot be
    analysed gives ``"error"``."""
    check_options(select, ignore, input_format)
    prof = _profile(profile, extensions)
    render = FLOW_FORMATS[flows] if flows is not None else None
    report: dict[str, Any] = {"capture": name, "error": None, "summary": None, "findings": [], "final_findings": 0,
                              "flows": None, "stats": None}
    try:
        (capture,) = captures([name])
    except OSError as e:  # InputFileError names the file; another (a directory not listable) may not
        report["error"] = str(e) if isinstance(e, InputFileError) else f"{name}: {e}"
        return report
    report["capture"] = capture.name  # a directory's without its trailing slash
    analysis = Analysis(capture, prof, frozenset(select) or None, frozenset(ignore), input_format, prefetch=prefetch,
                        on_progress=on_progress)
    collector = analysis.stats = StatsCollector() if stats else None
    if render is None:
        analysis.run()
    else:
        shown: list[str] = []
        show = partial(on_flow, capture.name) if on_flow else shown.append
        wanted = flow_filter or FlowFilter()
        for flow in analysis.flows():
            if wanted(flow):
                show(render(flow, analysis.findings_of(flow)))
        report["flows"] = None if on_flow else shown
    assert analysis.state is not None
    report.update(summary=summary(analysis), findings=[finding_json(f) for f in analysis.findings],
                  final_findings=len(analysis.final_findings))
    if collector is not None:
        report["stats"] = {"capture": capture.name, **collector.result(analysis.state)}
    return report


def _profile(name: str, extensions: tuple[str, ...]) -> Profile:
    profile = get_profile(name)
    for path in extensions:
        profile = load_extension(path, profile)
    return profile


def summary(analysis: Analysis) -> dict[str, Any]:
    """The summary of an analysed capture (``check --format json``'s per-capture object)."""
    state = analysis.state
    assert state is not None
    findings = analysis.findings
    return {
        "capture": analysis.capture.name, "profile": analysis.profile.name,
        "findings": {"by_severity": dict(Counter(f.severity for f in findings)),
                     "by_rule": dict(sorted(Counter(f.rule for f in findings).items()))},
        "not_run": [{"rule": r.id, "missing": why} for r, why in analysis.not_run],
        "peak_in_flight": state.peak_in_flight,
        "thread_count": state.thread_count.value if state.thread_count else None,
        "ethread_limit": state.ethread_limit, "lost_markers": len(state.lost), "replays": analysis.replays,
        "repeated_lines": {"count": state.duplicates,
                           "first": [{"file": f, "line": n} for f, n in state.duplicates_at[:1]]},
        "discontinuities": {"count": state.discontinuities,
                            "first": [{"file": f, "line": n, "from": before, "to": at}
                                      for f, n, before, at in state.discontinuities_at[:8]]},
        "files": [{"file": s.file, "format": s.format, "lines": s.lines, "event_lines": s.event_lines,
                   "foreign": s.foreign, "malformed": s.malformed, "error": s.error} for s in analysis.files],
    }


def finding_of(data: dict[str, Any]) -> Finding:
    """The ``Finding`` back from its JSON (``finding_json``), to render it as text."""
    return Finding(**{**data, "evidence": tuple((e["file"], e["line"]) for e in data["evidence"])})
