"""Commands over traces: parse, regs, tracing-setup."""

from __future__ import annotations

import json
import sys

import click

from ..codec.decode import Decoder
from ..model.events import KINDS, RegisterDump, SmcCall
from ..render import events as render_events
from ..render import jsonout, text
from ..sources.formats import format_names
from ..sources.reader import TraceReader
from ..sources.recipes import ARCHES, KERNELS
from ..sources.recipes import tracing_setup as recipe
from ..sources.regset import smc_registers
from .common import (
    EXIT_FINDINGS,
    InputFailure,
    emit,
    format_option,
    profile_options,
    resolve_profile,
)


def _reader(files: tuple[str, ...], input_format: str | None) -> TraceReader:
    if input_format is not None and input_format not in format_names():
        raise click.BadParameter(f"{input_format!r}; choose from {', '.join(format_names())}",
                                 param_hint="--input-format")
    return TraceReader.from_names(files or ("-",), input_format)


_input_format_option = click.option(
    "--input-format", metavar="NAME",
    help="Read every file as this format instead of detecting it: console, ftrace, kernel, tfa, optee, regs.")


def _notes(reader: TraceReader) -> None:
    """The first malformed lines and what else a user should know about each file, on stderr."""
    for stats in reader.stats:
        for line in stats.diagnostics:
            click.echo(f"malformed: {line}", err=True)
        more = stats.malformed - len(stats.diagnostics)
        if more > 0:
            click.echo(f"malformed: {stats.file}: {more} more", err=True)
        if stats.binary_lines:
            n = stats.binary_lines
            click.echo(f"note: {stats.file}: {n} line{'s' if n != 1 else ''} hold NUL bytes: binary data?", err=True)
        for note in (stats.trace_dat or {}).get("notes", ()):
            click.echo(f"note: {stats.file}: {note}", err=True)
        if not stats.lines and not stats.error:
            click.echo(f"note: {stats.file}: empty", err=True)


def _finish(reader: TraceReader, quiet: bool, table: bool = True) -> None:
    """Notes and accounting on stderr; then exit 2 if an input could not be read to its end."""
    if not quiet:
        _notes(reader)
        if table:
            click.echo(render_events.stats_text(reader.stats), err=True)
    if reader.errors:
        raise InputFailure("; ".join(reader.errors))


@click.command()
@click.argument("files", nargs=-1)
@_input_format_option
@click.option("--summary", is_flag=True, help="Print only the per-file accounting (lines, events by kind, "
              "foreign, malformed, lost-event markers).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only events of this kind (repeatable).")
@click.option("--strict", is_flag=True, help="Exit with status 1 if any line is malformed.")
@click.option("-q", "--quiet", is_flag=True, help="No accounting on stderr.")
@format_option("table", "jsonl", "json")
def parse(files: tuple[str, ...], input_format: str | None, summary: bool, kinds: tuple[str, ...], strict: bool,
          quiet: bool, fmt: str) -> None:
    """Read traces and logs into events, accounting for every line.

    FILES are paths, directories (every file below), or - for stdin (the default); .gz, .xz,
    .bz2 and .zst (with the zstandard module) are read transparently. The format is detected per
    file: a trace-cmd trace.dat (versions 6 and 7), an ftrace/trace-cmd/perf text, a register
    dump, or a console capture where TF-A, OP-TEE, Linux and ftrace lines interleave. A
    trace.dat's lines are those `trace-cmd report` prints; --summary adds its version,
    compression, CPUs and records per CPU.

    Every line ends up as part of an event, foreign (not ours) or malformed (looked like ours but
    did not parse); the accounting goes to stderr (or stdout with --summary).

    \b
    Examples:
      smcwire parse traces/qemu-dbg-probe/ftrace.txt
      smcwire parse trace.txt.xz --format jsonl --kind smc_call
      cat /sys/kernel/tracing/trace_pipe | smcwire parse - --format jsonl
      smcwire parse --summary --format json boot-logs/
      smcwire parse --summary trace.dat
    """
    reader = _reader(files, input_format)
    decoder = Decoder(resolve_profile("mainline", ()))
    wanted = set(kinds)
    collected: list[dict[str, object]] = []
    for event in reader:
        if summary or (wanted and event.KIND not in wanted):
            continue
        if fmt == "table":
            click.echo(render_events.event_text(event, decoder))
        elif fmt == "jsonl":
            click.echo(json.dumps(render_events.event_json(event)))
        else:
            collected.append(render_events.event_json(event))
    if summary:
        if fmt == "table":
            click.echo(render_events.stats_text(reader.stats))
        elif fmt == "jsonl":
            for s in reader.stats:
                click.echo(json.dumps(render_events.stats_json(s)))
        else:
            emit([render_events.stats_json(s) for s in reader.stats])
    elif fmt == "json":
        emit({"events": collected, "files": [render_events.stats_json(s) for s in reader.stats]})
    _finish(reader, quiet, table=not summary)
    if strict and any(s.malformed for s in reader.stats):
        sys.exit(EXIT_FINDINGS)


@click.command()
@click.argument("files", nargs=-1)
@_input_format_option
@click.option("-q", "--quiet", is_flag=True, help="No accounting on stderr.")
@profile_options
@format_option("table", "json")
def regs(files: tuple[str, ...], input_format: str | None, quiet: bool, profile: str,
         extensions: tuple[str, ...], fmt: str) -> None:
    """Decode every SMC register set in register dumps and traces.

    Register dumps (gdb, QEMU monitor, Linux oops, U-Boot, TF-A crash dumps, OP-TEE aborts,
    a0=…/x0=… lines, JSON, CSV) give their a0-a7 (x0-x7 on arm64, r0-r7 on arm32); SMC entries
    of traces are decoded too. Each set says which registers it took and why.

    \b
    Examples:
      smcwire regs oops.txt
      smcwire regs dump.json --format json
    """
    reader = _reader(files, input_format)
    decoder = Decoder(resolve_profile(profile, extensions))
    out = []
    for event in reader:
        if isinstance(event, RegisterDump):
            regset = smc_registers(event)
            if regset is None:
                continue
            call, took, arch, why = decoder.call(regset.regs), regset.names, regset.arch, regset.explanation
        elif isinstance(event, SmcCall):
            call, took, arch, why = decoder.call(event.regs), (), None, f"SMC entry ({event.origin})"
        else:
            continue
        if fmt == "json":
            out.append({**jsonout.call_json(call), "file": event.file, "line": event.line, "took": list(took),
                        "arch": arch, "explanation": why})
        else:
            click.echo(f"{event.file}:{event.line}: {why}\n{text.call_text(call)}\n")
    if fmt == "json":
        emit(out)
    _finish(reader, quiet)


@click.command("tracing-setup")
@click.option("--arch", type=click.Choice(ARCHES), default=ARCHES[0], show_default=True,
              help="The target's kernel architecture.")
@click.option("--kernel", type=click.Choice(KERNELS), default=KERNELS[0], show_default=True,
              help="The target's kernel version (return probes fetch entry arguments from 6.12 on).")
def tracing_setup(arch: str, kernel: str) -> None:
    """Print the tracefs commands that capture every SMC between Linux and OP-TEE.

    The optee tracepoints show only yielding calls; a kprobe and a kretprobe on the driver's SMC
    entry add the fast calls (capabilities, thread count, UID) with their results. Paste the
    output into a root shell on the target, run the workload, then read the trace back with
    `smcwire parse`.

    \b
    Examples:
      smcwire tracing-setup > setup.sh
      smcwire tracing-setup --arch arm32
    """
    click.echo(recipe(arch, kernel))
