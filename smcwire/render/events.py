"""Events and per-file line accounting, as JSON objects and as text."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..codec.decode import Decoder
from ..model.events import Event, RegisterDump, SmcCall, SmcReturn
from ..sources.reader import FileStats
from .text import tabulate


def event_json(event: Event) -> dict[str, Any]:
    """One event as a JSON object: ``kind``, ``file``, ``line``, the event's own fields, and
    ``regs`` as register name -> integer (``a0``… for SMC entries and returns)."""
    data: dict[str, Any] = {"kind": event.KIND, **event._asdict()}
    if isinstance(event, (SmcCall, SmcReturn)):
        data["regs"] = {f"a{i}": v for i, v in enumerate(event.regs)}
        if isinstance(event, SmcReturn):
            data["call_regs"] = {f"a{i}": v for i, v in enumerate(event.call_regs)}
    elif isinstance(event, RegisterDump):
        data["regs"] = dict(event.regs)
    return data


def _when(event: Event) -> str:
    ts = getattr(event, "ts", None)
    return "" if ts is None else f"{ts / 1e9:.6f}"


def event_text(event: Event, decoder: Decoder) -> str:
    """One line per event: where, when, who, and what (SMC registers decoded by name)."""
    where = f"{event.file}:{event.line}"
    if isinstance(event, (SmcCall, SmcReturn)):
        cpu = "???" if event.cpu is None else f"{event.cpu:03d}"
        who = f"{event.task or '?'}-{event.pid if event.pid is not None else '?'} [{cpu}]"
        regs = ", ".join(f"{v:x}" for v in event.regs)
        if isinstance(event, SmcCall):
            what = f"{decoder.call(event.regs).name or 'unknown'} ({regs})"
        else:
            what = f"ret ({regs})"
        key = f" {event.key}" if event.key else ""
        return f"{where}  {event.KIND}  {_when(event)}  {who}{key}  {what}"
    if isinstance(event, RegisterDump):
        regs = " ".join(f"{k}={v:#x}" for k, v in list(event.regs.items())[:8])
        return f"{where}-{event.last_line}  {event.KIND}  {event.origin} {event.arch or '?'}  {regs} …"
    text = getattr(event, "text", "")
    what = getattr(event, "what", getattr(event, "stage", ""))
    return f"{where}  {event.KIND}  {_when(event)}  {what}: {text}".rstrip()


def stats_json(stats: FileStats) -> dict[str, Any]:
    """A file's accounting; a trace.dat's adds ``trace_dat`` (version, compression, cpus,
    records_per_cpu, clock, page_size, long_size, endian, uname, trace_cmd, notes)."""
    out = {
        "file": stats.file, "format": stats.format, "compression": stats.compression, "lines": stats.lines,
        "event_lines": stats.event_lines, "events": dict(sorted(stats.events.items())), "foreign": stats.foreign,
        "malformed": stats.malformed, "lost_markers": stats.lost_markers, "binary_lines": stats.binary_lines,
        "diagnostics": stats.diagnostics, "error": stats.error,
    }
    if stats.trace_dat is not None:
        out["trace_dat"] = stats.trace_dat
    return out


def stats_text(all_stats: Iterable[FileStats]) -> str:
    """The accounting table, then a line on each trace.dat: its version, compression, CPUs and records."""
    all_stats = list(all_stats)
    rows = [(s.file, s.format, s.lines, s.event_lines, ", ".join(f"{k} {n}" for k, n in sorted(s.events.items()))
             or "-", s.foreign, s.malformed, s.lost_markers) for s in all_stats]
    table = tabulate(rows, ("file", "format", "lines", "event lines", "events", "foreign", "malformed", "lost"))
    return "\n".join([table, *(tracedat_text(s.file, s.trace_dat) for s in all_stats if s.trace_dat)])


def tracedat_text(file: str, info: dict[str, Any]) -> str:
    """``file: trace-cmd file version 7, zstd 1.5.4 compressed, 2 CPUs (cpu0 367 records, cpu1 86), clock local, …``"""
    per_cpu = ", ".join(f"cpu{cpu} {n}" + (" records" if i == 0 else "")
                        for i, (cpu, n) in enumerate(info["records_per_cpu"].items()))
    compression = "not compressed" if info["compression"] == "none" else f"{info['compression']} compressed"
    per_cpu = f" ({per_cpu})" if per_cpu else ""
    uname = f", recorded on {info['uname']}" if info["uname"] else ""
    return (f"{file}: trace-cmd file version {info['version']}, {compression}, {info['cpus']} CPUs{per_cpu}, "
            f"clock {info['clock'] or '?'}, page size {info['page_size']}{uname}")
