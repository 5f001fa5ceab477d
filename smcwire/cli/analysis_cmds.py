"""Analyzer commands: analyze, check, stats, explain, rules."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..explain.stats import StatsCollector
from ..flows.model import Finding, Flow
from ..pipeline import Analysis, captures
from ..render import flows as render_flows
from ..render.stats import stats_text
from ..render.text import tabulate
from ..rules.catalog import RULES
from .common import EXIT_FINDINGS, InputFailure, echo, emit, format_option, profile_options, resolve_profile

SEVERITIES = ("info", "warning", "error")


def _analyses(files: tuple[str, ...], profile: str, extensions: tuple[str, ...], select: tuple[str, ...] = (),
              ignore: tuple[str, ...] = (), input_format: str | None = None) -> Iterator[Analysis]:
    prof = resolve_profile(profile, extensions)
    known = {r.id for r in RULES}
    for rule in (*select, *ignore):
        if rule not in known:
            raise click.BadParameter(f"unknown rule {rule!r} (see `smcwire rules`)", param_hint="--select/--ignore")
    for capture in captures(files or ("-",)):
        yield Analysis(capture, prof, frozenset(select) or None, frozenset(ignore), input_format)


def _input_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--input-format", metavar="NAME", help="Read every file as this format (see `smcwire parse`).")(f)
    return click.argument("files", nargs=-1)(f)


def _summary(analysis: Analysis) -> dict[str, Any]:
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
        "files": [{"file": s.file, "format": s.format, "lines": s.lines, "event_lines": s.event_lines,
                   "foreign": s.foreign, "malformed": s.malformed, "error": s.error} for s in analysis.files],
    }


def _summary_text(summary: dict[str, Any]) -> str:
    sev = summary["findings"]["by_severity"]
    counts = ", ".join(f"{sev.get(s, 0)} {s}" for s in reversed(SEVERITIES))
    lines = [f"== {summary['capture']} (profile {summary['profile']}): findings: {counts}"]
    threads = summary["thread_count"]
    lines.append(f"   peak in-flight yielding calls {summary['peak_in_flight']}"
                 f" (OP-TEE threads: {threads if threads is not None else 'unknown'}),"
                 f" ETHREAD_LIMIT answers {summary['ethread_limit']}, lost-event markers {summary['lost_markers']}")
    for f in summary["files"]:
        lines.append(f"   {f['file']}: {f['format']}, {f['lines']} lines: {f['event_lines']} in events, "
                     f"{f['foreign']} foreign, {f['malformed']} malformed"
                     + (f"; could not be read further ({f['error']})" if f["error"] else ""))
    lines.extend(f"   {replay}" for replay in summary["replays"])
    missing: dict[str, list[str]] = {}
    for item in summary["not_run"]:
        missing.setdefault(item["missing"], []).append(item["rule"])
    for why, ids in missing.items():
        lines.append(f"   could not run {', '.join(ids)}: the capture lacks {why}")
    if any("SMC entry" in why for why in missing):
        lines.append("   (`smcwire tracing-setup` prints the kprobe and kretprobe commands that record them)")
    return "\n".join(lines)


def _unreadable(analysis: Analysis) -> list[str]:
    """The capture's files that could not be read to their end, one line each."""
    return [f"{s.error} (after line {s.lines})" for s in analysis.files if s.error]


def _fail_if(unreadable: list[str]) -> None:
    """Exit 2, once the results of what could be read are out, if a file could not be read."""
    if unreadable:
        raise InputFailure("; ".join(unreadable))


def _wanted(flow: Flow, number: int | None, task: str | None, thread: int | None, function: str | None,
            since: float | None, until: float | None) -> bool:
    start = flow.start
    return ((number is None or flow.index == number)
            and (task is None or task in (flow.task, f"{flow.task}-{flow.pid}"))
            and (thread is None or flow.thread == thread)
            and (function is None or (flow.function or "").endswith(function.upper()))
            and (since is None or (start is not None and start >= since * 1e9))
            and (until is None or (start is not None and start <= until * 1e9)))


@click.command()
@_input_options
@click.option("--flow", "number", type=int, help="Only flow number N.")
@click.option("--task", help="Only flows of this task: its comm, or comm-pid as flows print it.")
@click.option("--thread", type=int, help="Only flows that ran on this OP-TEE thread.")
@click.option("--function", help="Only flows of this function (name or its end, e.g. CALL_WITH_REGD_ARG).")
@click.option("--since", type=float, metavar="SECONDS", help="Only flows starting at or after this time.")
@click.option("--until", type=float, metavar="SECONDS", help="Only flows starting at or before this time.")
@profile_options
@format_option("table", "json", "jsonl")
def analyze(files: tuple[str, ...], input_format: str | None, number: int | None, task: str | None,
            thread: int | None, function: str | None, since: float | None, until: float | None, profile: str,
            extensions: tuple[str, ...], fmt: str) -> None:
    """Rebuild the call flows of traces: each SMC with its RPC round trips, OP-TEE thread,
    timing and result, with the findings inline, then a summary per capture.

    A directory is one capture (its ftrace, dmesg and console files read together); each file
    argument is a capture of its own.

    \b
    Examples:
      smcwire analyze traces/qemu-dbg-kretprobe/ftrace.txt.xz
      smcwire analyze capture-dir/ --function CALL_WITH_REGD_ARG
      smcwire analyze trace.txt --format jsonl > flows.jsonl
    """
    # --format json streams its one document too: a flow a line, as flows complete
    if fmt == "json":
        echo(f'{{"schema": {render_flows.SCHEMA}, "captures": [')
    unreadable: list[str] = []
    for n, analysis in enumerate(_analyses(files, profile, extensions, input_format=input_format)):
        if fmt == "json":
            echo(f'{"," if n else ""}{{"capture": {json.dumps(analysis.capture.name)}, "flows": [')
        shown = 0
        for flow in analysis.flows():
            if not _wanted(flow, number, task, thread, function, since, until):
                continue
            if fmt == "table":
                echo(render_flows.flow_text(flow, analysis.findings_of(flow)))
            else:
                echo(("," if shown and fmt == "json" else "") + render_flows.flow_jsonl(flow))
            shown += 1
        summary = _summary(analysis)
        unreadable += _unreadable(analysis)
        if fmt == "table":
            for f in analysis.final_findings:  # the capture's own (leaks, storms…); the flows' came inline
                echo(render_flows.finding_text(f))
            click.echo(_summary_text(summary))
        elif fmt == "json":
            echo(f'], "findings": {json.dumps([render_flows.finding_json(f) for f in analysis.findings])}, '
                 f'"summary": {json.dumps(summary)}}}')
        else:
            click.echo(_summary_text(summary), err=True)
    if fmt == "json":
        echo("]}")
    _fail_if(unreadable)


@click.command()
@_input_options
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="error", show_default=True,
              help="Exit with status 1 when a finding of this severity or above exists.")
@click.option("--select", multiple=True, metavar="RULE", help="Run only these rules (repeatable).")
@click.option("--ignore", multiple=True, metavar="RULE", help="Do not run these rules (repeatable).")
@profile_options
@format_option("table", "json", "jsonl")
def check(files: tuple[str, ...], input_format: str | None, fail_on: str, select: tuple[str, ...],
          ignore: tuple[str, ...], profile: str, extensions: tuple[str, ...], fmt: str) -> None:
    """Report ABI misuse found in traces; exit 1 when a finding at or above --fail-on exists.

    Exit status: 0 no finding at or above --fail-on, 1 such findings, 2 bad usage or input.

    \b
    Examples:
      smcwire check trace.txt
      smcwire check capture-dir/ --fail-on warning --format json
      smcwire check trace.txt --ignore SMC020
    """
    threshold = SEVERITIES.index(fail_on)
    failed = False
    all_findings: list[Finding] = []
    summaries = []
    unreadable: list[str] = []
    for analysis in _analyses(files, profile, extensions, select, ignore, input_format):
        analysis.run()
        unreadable += _unreadable(analysis)
        all_findings.extend(analysis.findings)
        summaries.append(_summary(analysis))
        failed |= any(SEVERITIES.index(f.severity) >= threshold for f in analysis.findings)
        if fmt == "table":
            for f in analysis.findings:
                echo(render_flows.finding_text(f))
            click.echo(_summary_text(summaries[-1]))
        elif fmt == "jsonl":
            for f in analysis.findings:
                echo(json.dumps(render_flows.finding_json(f)))
    if fmt == "json":
        by_sev = Counter(f.severity for f in all_findings)
        emit({"schema": render_flows.SCHEMA, "findings": [render_flows.finding_json(f) for f in all_findings],
              "summary": {"by_severity": dict(by_sev),
                          "by_rule": dict(sorted(Counter(f.rule for f in all_findings).items())),
                          "not_run": [n for s in summaries for n in s["not_run"]], "captures": summaries}})
    _fail_if(unreadable)
    if failed:
        sys.exit(EXIT_FINDINGS)


@click.command()
@_input_options
@profile_options
@format_option("table", "json")
def stats(files: tuple[str, ...], input_format: str | None, profile: str, extensions: tuple[str, ...],
          fmt: str) -> None:
    """Calls per function, latency percentiles, RPCs per type, ETHREAD_LIMIT, peak concurrency.

    \b
    Examples:
      smcwire stats traces/qemu-dbg-kretprobe/ftrace.txt.xz
      smcwire stats capture-dir/ --format json
    """
    results = []
    unreadable: list[str] = []
    for analysis in _analyses(files, profile, extensions, input_format=input_format):
        analysis.stats = collector = StatsCollector()
        analysis.run()
        unreadable += _unreadable(analysis)
        assert analysis.state is not None
        result = {"capture": analysis.capture.name, **collector.result(analysis.state)}
        results.append(result)
        if fmt == "table":
            click.echo(f"== {analysis.capture.name}\n{stats_text(result)}")
    if fmt == "json":
        emit(results)
    _fail_if(unreadable)


@click.command()
@_input_options
@profile_options
@format_option("table", "json")
def explain(files: tuple[str, ...], input_format: str | None, profile: str, extensions: tuple[str, ...],
            fmt: str) -> None:
    """Say, from the trace's evidence, whether each feature is active and why: driver probe,
    dynamic and reserved shared memory, RPC_ARG, async notifications, thread count, system-thread
    reservation, virtualization.

    \b
    Examples:
      smcwire explain capture-dir/
      smcwire explain dmesg.txt --format json
    """
    results: list[dict[str, Any]] = []
    unreadable: list[str] = []
    for analysis in _analyses(files, profile, extensions, input_format=input_format):
        analysis.run()
        unreadable += _unreadable(analysis)
        for feature in analysis.features():
            item: dict[str, Any] = {"capture": analysis.capture.name, "feature": feature.feature,
                                    "active": feature.active,
                    "value": feature.value, "reason": feature.reason,
                    "evidence": [{"file": f, "line": n} for f, n in feature.evidence]}
            results.append(item)
        if fmt == "table":
            rows = [(r["feature"], {True: "yes", False: "no", None: "unknown"}[r["active"]],
                     "" if r["value"] is None else r["value"], r["reason"])
                    for r in results if r["capture"] == analysis.capture.name]
            click.echo(f"== {analysis.capture.name}\n"
                       + tabulate(rows, ("feature", "active", "value", "why"), maxcolwidths=[None, None, None, 90]))
    if fmt == "json":
        emit(results)
    _fail_if(unreadable)


@click.command()
@format_option("table", "json")
def rules(fmt: str) -> None:
    """The catalog of ABI-misuse rules: id, severity, name, evidence needed, source."""
    if fmt == "json":
        emit([render_flows.rule_json(r) for r in RULES])
        return
    rows = [(r.id, r.severity, r.name, ", ".join(sorted(r.needs)) or "-", r.source) for r in RULES]
    click.echo(tabulate(rows, ("id", "severity", "name", "needs", "source"), maxcolwidths=[None, None, 30, 24, 50]))
