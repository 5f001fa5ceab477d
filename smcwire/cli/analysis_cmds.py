"""Analyzer commands: analyze, check, stats, explain, rules."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, redirect_stdout
from functools import partial
from pathlib import Path
from typing import Any

import click

from ..flows.model import Finding, Flow
from ..pipeline import Analysis, captures
from ..pipeline.batch import map_ordered, usable_cores
from ..render import flows as render_flows
from ..render.mermaid import markdown_block, sequence_diagram
from ..render.perfetto import PerfettoWriter
from ..render.report import FlowFilter, analyze_capture, check_options, finding_of
from ..render.report import summary as _summary  # noqa: F401 - watch_cmd's import (moved to render.report)
from ..render.stats import stats_text
from ..render.text import tabulate
from ..rules.catalog import RULES
from ..sources.io import InputFileError
from .common import (
    EXIT_FINDINGS,
    InputFailure,
    echo,
    emit,
    format_option,
    profile_options,
    resolve_profile,
)
from .progress import ProgressLine

SEVERITIES = ("info", "warning", "error")


def _analyses(files: tuple[str, ...], profile: str, extensions: tuple[str, ...],
              input_format: str | None = None) -> Iterator[Analysis]:
    prof = resolve_profile(profile, extensions)
    _check_options((), (), input_format)
    for capture in captures(files or ("-",)):
        yield Analysis(capture, prof, input_format=input_format)


def _check_options(select: tuple[str, ...], ignore: tuple[str, ...], input_format: str | None) -> None:
    try:
        check_options(select, ignore, input_format)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _reports(files: tuple[str, ...], jobs: int | None, profile: str, extensions: tuple[str, ...],
             select: tuple[str, ...] = (), ignore: tuple[str, ...] = (), input_format: str | None = None,
             on_flow: Callable[[str, str], None] | None = None, quiet: bool = True,
             **wanted: Any) -> Iterator[dict[str, Any]]:
    """The report (``render.report``) of each capture, in order: with one job, one capture or
    stdin among them, made here, one at a time, each flow going to ``on_flow(capture, text)`` as
    it completes; else by ``jobs`` worker processes (default: the usable cores), the flows in the
    reports. Bad options fail here, before any capture is read. Unless ``quiet``, a capture read
    here shows a progress line on a terminal (``cli.progress``)."""
    resolve_profile(profile, extensions)  # a bad extension file: one line, before any output
    _check_options(select, ignore, input_format)
    names = files or ("-",)
    options = {"profile": profile, "extensions": extensions, "select": select, "ignore": ignore,
               "input_format": input_format, **wanted}
    jobs = jobs or usable_cores()
    if jobs == 1 or len(names) == 1 or "-" in names:
        for name in names:
            with _progress(name, quiet) as progress:
                report = analyze_capture(name, **options, prefetch=None, on_flow=on_flow, on_progress=progress)
            yield report
    else:
        yield from map_ordered(partial(analyze_capture, **options), names, jobs)


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[ProgressLine | None]:
    """A progress line for one capture (None when not shown), erased when it is done."""
    line = ProgressLine.for_terminal(label, quiet)
    try:
        yield line
    finally:
        if line is not None:
            line.close()


def _quiet_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--quiet", "-q", is_flag=True,
                        help="No progress line on stderr (shown on a terminal for inputs of 8 MB or more).")(f)


def _input_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--input-format", metavar="NAME", help="Read every file as this format (see `smcwire parse`).")(f)
    return click.argument("files", nargs=-1)(f)


def _jobs_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--jobs", "-j", type=click.IntRange(min=1), metavar="N",
        help="Analyse N captures at a time in worker processes (default: the usable cores); the output "
             "is the same as with 1, in the order of the arguments. With N > 1 a capture's output is "
             "held until it is printed (analyze: all its flows, in memory).")(f)


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
    repeated, gaps = summary["repeated_lines"], summary["discontinuities"]
    if repeated["count"] or gaps["count"]:
        first = repeated["first"][0] if repeated["first"] else None
        seen = [f"repeated lines skipped {repeated['count']}" + (f" (first at {first['file']}:{first['line']})"
                                                                  if first else "")]
        if gaps["count"]:
            at = gaps["first"][0]
            seen.append(f"discontinuities {gaps['count']} (time went back at {at['file']}:{at['line']}: "
                        f"{at['from'] / 1e9:.6f} s -> {at['to'] / 1e9:.6f} s; flows in flight there are cut)")
        lines.append("   " + ", ".join(seen))
    missing: dict[str, list[str]] = {}
    for item in summary["not_run"]:
        missing.setdefault(item["missing"], []).append(item["rule"])
    for why, ids in missing.items():
        lines.append(f"   could not run {', '.join(ids)}: the capture lacks {why}")
    if any("SMC entry" in why for why in missing):
        lines.append("   (`smcwire tracing-setup` prints the kprobe and kretprobe commands that record them)")
    return "\n".join(lines)


def _unreadable(files: Iterable[tuple[str | None, int]]) -> list[str]:
    """Of (error, lines read) per file, the files that could not be read to their end, one line each."""
    return [f"{error} (after line {lines})" for error, lines in files if error]


def _failures(report: dict[str, Any]) -> list[str]:
    """Why a capture could not be analysed, or which of its files could not be read to their end."""
    if report["error"]:
        return [report["error"]]
    return _unreadable((f["error"], f["lines"]) for f in report["summary"]["files"])


def _fail_if(failures: list[str]) -> None:
    """Exit 2, once the results of what could be read are out, if a capture or a file could not be read."""
    if failures:
        raise InputFailure("; ".join(failures))


def _findings_text(findings: list[dict[str, Any]]) -> None:
    for f in findings:
        echo(render_flows.finding_text(finding_of(f)))


class _AnalyzeOutput:
    """``analyze``'s output, capture after capture: a capture's flows as they come (with
    ``--format json``, its object opened before the first), then the rest of it from its report.
    A capture that could not be analysed prints nothing."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.captures = 0  # printed so far
        self.opened = False  # the output of the capture at hand has begun
        self.shown = 0  # its flows printed

    def _open(self, capture: str) -> None:
        if not self.opened:
            if self.fmt == "json":  # the document begins with its first capture: none, no document
                head = "," if self.captures else f'{{"schema": {render_flows.SCHEMA}, "captures": ['
                echo(f'{head}{{"capture": {json.dumps(capture)}, "flows": [')
            self.captures += 1
            self.opened, self.shown = True, 0

    def flow(self, capture: str, text: str) -> None:
        self._open(capture)
        echo(("," if self.shown and self.fmt == "json" else "") + text)
        self.shown += 1

    def end(self, report: dict[str, Any]) -> None:
        if report["error"] is None:
            self._open(report["capture"])
            findings, summary = report["findings"], report["summary"]
            if self.fmt == "table":  # the capture's own findings (leaks, storms…); the flows' came inline
                _findings_text(findings[len(findings) - report["final_findings"]:])
                click.echo(_summary_text(summary))
            elif self.fmt == "json":
                echo(f'], "findings": {json.dumps(findings)}, "summary": {json.dumps(summary)}}}')
            else:
                click.echo(_summary_text(summary), err=True)
        self.opened = False

    def close(self) -> None:
        if self.fmt == "json" and self.captures:
            echo("]}")


MERMAID_FLOWS = 10  # flows drawn at most in one diagram (GitHub renders up to 50,000 characters)


def _drawing(fmt: str, files: tuple[str, ...], wanted: FlowFilter, quiet: bool, profile: str,
             extensions: tuple[str, ...], input_format: str | None) -> None:
    """``--format perfetto`` (one timeline of every capture) or ``--format mermaid`` (a diagram per
    capture): both need the flows themselves, so the captures are analysed here, one by one."""
    resolve_profile(profile, extensions)
    _check_options((), (), input_format)
    writer = PerfettoWriter()
    failures: list[str] = []
    for name in files or ("-",):
        try:
            analysis = next(_analyses((name,), profile, extensions, input_format))
        except InputFileError as e:  # a missing file: the others are still drawn
            failures.append(str(e))
            continue
        with _progress(name, quiet or (fmt == "mermaid" and sys.stdout.isatty())) as progress:
            analysis.on_progress = progress
            if fmt == "perfetto":
                timeline = writer.capture(analysis.capture.name)
                for flow in analysis.flows():
                    if wanted(flow):
                        timeline.add_flow(flow)
                timeline.finish(analysis.findings, analysis.state)
            else:
                diagram = sequence_diagram(_diagram_flows(analysis, wanted), analysis.capture.name, limit=MERMAID_FLOWS)
        if fmt == "mermaid":  # once the progress line is erased
            echo(markdown_block(diagram).rstrip("\n"))
        failures += _unreadable((s.error, s.lines) for s in analysis.files)
    if fmt == "perfetto":
        writer.write(sys.stdout)
    _fail_if(failures)


def _diagram_flows(analysis: Analysis, wanted: FlowFilter) -> Iterator[tuple[Flow, list[Finding]]]:
    """The flows a diagram shows, with their findings: those the filters select, or by default the
    flows with findings. Findings the rules make only at the end of the capture name earlier flows,
    so a file is read twice for those (stdin: only the findings made as flows completed)."""
    selected = wanted != FlowFilter()
    if selected or not all(i.path is not None and i.path.is_file() for i in analysis.capture.inputs):
        # (stdin, a pipe: they cannot be read twice)
        for flow in analysis.flows():
            found = analysis.findings_of(flow)
            if wanted(flow) if selected else found:
                yield flow, found
        return
    analysis.run()
    by_flow: dict[int, list[Finding]] = {}
    for f in analysis.findings:
        if f.flow is not None:
            by_flow.setdefault(f.flow, []).append(f)
    again = Analysis(analysis.capture, analysis.profile, input_format=analysis.input_format)
    for flow in again.flows():
        if flow.index in by_flow:
            yield flow, by_flow[flow.index]


@click.command()
@_input_options
@click.option("--flow", "number", type=int, help="Only flow number N.")
@click.option("--task", help="Only flows of this task: its comm, or comm-pid as flows print it.")
@click.option("--thread", type=int, help="Only flows that ran on this OP-TEE thread.")
@click.option("--function", help="Only flows of this function (name or its end, e.g. CALL_WITH_REGD_ARG).")
@click.option("--since", type=float, metavar="SECONDS", help="Only flows starting at or after this time.")
@click.option("--until", type=float, metavar="SECONDS", help="Only flows starting at or before this time.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, allow_dash=True), default="-",
              help="Write to this file instead of stdout (for --format perfetto: the trace to open).")
@_jobs_option
@_quiet_option
@profile_options
@format_option("table", "json", "jsonl", "perfetto", "mermaid")
def analyze(files: tuple[str, ...], input_format: str | None, number: int | None, task: str | None,
            thread: int | None, function: str | None, since: float | None, until: float | None, output: str,
            jobs: int | None, quiet: bool, profile: str, extensions: tuple[str, ...], fmt: str) -> None:
    """Rebuild the call flows of traces: each SMC with its RPC round trips, OP-TEE thread,
    timing and result, with the findings inline, then a summary per capture.

    A directory is one capture (its ftrace, dmesg and console files read together); each file
    argument is a capture of its own.

    --format perfetto writes a timeline for ui.perfetto.dev or chrome://tracing; --format
    mermaid draws the flows with findings (or those the filters select, at most 10) as a Mermaid
    sequence diagram. Both run the captures one after the other, in this process.

    \b
    Examples:
      smcwire analyze traces/qemu-dbg-kretprobe/ftrace.txt.xz
      smcwire analyze capture-dir/ --function CALL_WITH_REGD_ARG
      smcwire analyze trace.txt --format jsonl > flows.jsonl
      smcwire analyze captures/*.txt --jobs 4 --format jsonl
      smcwire analyze trace.txt --format perfetto -o trace.json
      smcwire analyze capture-dir/ --format mermaid --flow 7
    """
    wanted = FlowFilter(number, task, thread, function, since, until)
    with _output_to(output, files):
        if fmt in ("perfetto", "mermaid"):
            _drawing(fmt, files, wanted, quiet, profile, extensions, input_format)
        else:
            _flows_out(fmt, files, wanted, jobs, quiet, profile, extensions, input_format)


@contextmanager
def _output_to(path: str, inputs: tuple[str, ...]) -> Iterator[None]:
    """stdout, or the file ``path`` in its place (``-``: stdout). The output goes to a temporary
    file beside it, renamed when done (also when some input could not be read but others gave
    results): an existing file is replaced only by a whole new output, never emptied by a failure
    or Ctrl-C."""
    if path == "-":
        yield
        return
    target = Path(path)
    if any(name != "-" and Path(name).resolve() == target.resolve() for name in inputs):
        raise InputFailure(f"{path}: is also an input; write the output elsewhere")
    try:
        out = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent,  # noqa: SIM115
                                          prefix=f".{target.name}.", delete=False)
    except OSError as e:
        raise InputFailure(f"{path}: cannot write: {e.strerror}") from None
    keep = False
    try:
        with out, redirect_stdout(out):
            try:
                yield
                keep = True
            except click.ClickException:
                keep = out.tell() > 0  # the results of the captures that could be read
                raise
    finally:
        if keep:
            os.replace(out.name, target)
        else:
            os.unlink(out.name)


def _flows_out(fmt: str, files: tuple[str, ...], wanted: FlowFilter, jobs: int | None, quiet: bool, profile: str,
               extensions: tuple[str, ...], input_format: str | None) -> None:
    """``analyze --format table|json|jsonl``."""
    out = _AnalyzeOutput(fmt)  # --format json streams its one document too: a flow a line
    failures: list[str] = []
    for report in _reports(files, jobs, profile, extensions, input_format=input_format, on_flow=out.flow,
                           quiet=quiet or sys.stdout.isatty(),  # no progress line among flows on a terminal
                           flows="table" if fmt == "table" else "jsonl", flow_filter=wanted):
        failures += _failures(report)
        for text in report["flows"] or ():  # made by a worker process
            out.flow(report["capture"], text)
        out.end(report)
    out.close()
    _fail_if(failures)


@click.command()
@_input_options
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="error", show_default=True,
              help="Exit with status 1 when a finding of this severity or above exists.")
@click.option("--select", multiple=True, metavar="RULE", help="Run only these rules (repeatable).")
@click.option("--ignore", multiple=True, metavar="RULE", help="Do not run these rules (repeatable).")
@_jobs_option
@_quiet_option
@profile_options
@format_option("table", "json", "jsonl")
def check(files: tuple[str, ...], input_format: str | None, fail_on: str, select: tuple[str, ...],
          ignore: tuple[str, ...], jobs: int | None, quiet: bool, profile: str, extensions: tuple[str, ...],
          fmt: str) -> None:
    """Report ABI misuse found in traces; exit 1 when a finding at or above --fail-on exists.

    Exit status: 0 no finding at or above --fail-on, 1 such findings, 2 bad usage or input.

    \b
    Examples:
      smcwire check trace.txt
      smcwire check capture-dir/ --fail-on warning --format json
      smcwire check trace.txt --ignore SMC020
      smcwire check captures/*.txt.xz --jobs 8
    """
    all_findings: list[dict[str, Any]] = []
    summaries = []
    failures: list[str] = []
    for report in _reports(files, jobs, profile, extensions, select, ignore, input_format, quiet=quiet):
        failures += _failures(report)
        if report["error"]:
            continue
        findings = report["findings"]
        all_findings += findings
        summaries.append(report["summary"])
        if fmt == "table":
            _findings_text(findings)
            click.echo(_summary_text(summaries[-1]))
        elif fmt == "jsonl":
            for f in findings:
                echo(json.dumps(f))
    if fmt == "json" and summaries:  # no capture analysed: nothing that reads as a clean result
        emit({"schema": render_flows.SCHEMA, "findings": all_findings,
              "summary": {"by_severity": dict(Counter(f["severity"] for f in all_findings)),
                          "by_rule": dict(sorted(Counter(f["rule"] for f in all_findings).items())),
                          "not_run": [n for s in summaries for n in s["not_run"]], "captures": summaries}})
    _fail_if(failures)
    threshold = SEVERITIES.index(fail_on)
    if any(SEVERITIES.index(f["severity"]) >= threshold for f in all_findings):
        sys.exit(EXIT_FINDINGS)


@click.command()
@_input_options
@_jobs_option
@_quiet_option
@profile_options
@format_option("table", "json")
def stats(files: tuple[str, ...], input_format: str | None, jobs: int | None, quiet: bool, profile: str,
          extensions: tuple[str, ...], fmt: str) -> None:
    """Calls per function, latency percentiles, RPCs per type, ETHREAD_LIMIT, peak concurrency.

    \b
    Examples:
      smcwire stats traces/qemu-dbg-kretprobe/ftrace.txt.xz
      smcwire stats capture-dir/ --format json
    """
    results = []
    failures: list[str] = []
    for report in _reports(files, jobs, profile, extensions, input_format=input_format, stats=True, quiet=quiet):
        failures += _failures(report)
        if report["error"]:
            continue
        results.append(report["stats"])
        if fmt == "table":
            click.echo(f"== {report['capture']}\n{stats_text(report['stats'])}")
    if fmt == "json" and results:
        emit(results)
    _fail_if(failures)


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
        unreadable += _unreadable((s.error, s.lines) for s in analysis.files)
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
