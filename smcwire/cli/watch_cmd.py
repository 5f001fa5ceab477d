"""``smcwire watch``: follow a live trace and print flows and findings as they complete."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from ..pipeline import Analysis, Capture
from ..render import flows as render_flows
from ..sources.io import COMPRESSIONS, TRACEDAT_MAGIC, Input
from .analysis_cmds import _summary, _summary_text
from .common import InputFailure, echo, format_option, profile_options, resolve_profile

TRACE_PIPES = ("/sys/kernel/tracing/trace_pipe", "/sys/kernel/debug/tracing/trace_pipe")


@click.command()
@click.argument("path", required=False)
@click.option("--input-format", metavar="NAME",
              help="Read the input as this format (default: ftrace for trace_pipe, detected for a file).")
@profile_options
@format_option("table", "jsonl")
def watch(path: str | None, input_format: str | None, profile: str, extensions: tuple[str, ...], fmt: str) -> None:
    """Follow a growing trace file, or the kernel's trace_pipe (the default), and print each call
    flow with its findings as it completes. Ctrl-C stops: the flows still in flight are closed as
    cut by the end of the capture, and the summary is printed.

    Reading trace_pipe consumes the events (as `cat trace_pipe` does) and needs root; the optee
    tracepoints must be enabled (`smcwire tracing-setup` prints the commands).

    \b
    Examples:
      smcwire watch
      smcwire watch /tmp/trace.txt --format jsonl
      ssh board cat /sys/kernel/tracing/trace_pipe > live.txt & smcwire watch live.txt
    """
    target = Path(path or next((p for p in TRACE_PIPES if Path(p).exists()), TRACE_PIPES[0]))
    _check_readable(target, path is None)
    is_pipe = not target.is_file()
    stop = threading.Event()

    def first_ctrl_c(*_: object) -> None:  # stops reading; a second one interrupts at once
        stop.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, first_ctrl_c)
    capture = Capture(str(target), (Input(str(target), target, until=stop),))
    analysis = Analysis(capture, resolve_profile(profile, extensions),
                        input_format=input_format or ("ftrace" if is_pipe else None))
    try:
        for flow in analysis.flows():
            if fmt == "table":
                echo(render_flows.flow_text(flow, analysis.findings_of(flow)))
            else:
                echo(render_flows.flow_jsonl(flow))
            sys.stdout.flush()  # live: each flow goes out as it completes, to a pipe too
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = _summary_text(_summary(analysis))
    if fmt == "table":
        for f in analysis.final_findings:
            echo(render_flows.finding_text(f))
        click.echo(summary)
    else:
        click.echo(summary, err=True)


def _check_readable(target: Path, default: bool) -> None:
    """One clear line when the input cannot be followed: no tracefs, no permission."""
    if not target.exists():
        if default:
            raise InputFailure(f"{target}: no such file: tracefs is not mounted (mount -t tracefs nodev "
                               "/sys/kernel/tracing) or this is not the board; give the PATH of a trace to follow")
        raise InputFailure(f"{target}: no such file or directory")
    if target.is_dir():
        raise InputFailure(f"{target}: is a directory; watch follows one file or trace_pipe")
    if not os.access(target, os.R_OK):
        raise InputFailure(f"{target}: permission denied" + (" (reading tracefs needs root)" if default else ""))
    if target.is_file():
        with target.open("rb") as f:
            head = f.read(len(TRACEDAT_MAGIC))
        if head.startswith(TRACEDAT_MAGIC) or any(head.startswith(magic) for magic, _ in COMPRESSIONS):
            raise InputFailure(f"{target}: compressed or a trace.dat, which cannot be followed as it grows; "
                               "read it with `smcwire analyze`")
