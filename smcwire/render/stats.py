"""The statistics of a capture (``explain.stats``) as tables for people."""

from __future__ import annotations

from typing import Any

from ..explain.evidence import refs, short
from .text import tabulate


def _ns(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value} ns"


def _at(where: dict[str, Any] | None) -> str:
    return f" ({refs((where['file'], where['line']))})" if where else ""


def stats_text(result: dict[str, Any]) -> str:
    """``result`` as tables for people."""
    rows = [(short(name), f["calls"], f["smcs"], ", ".join(f"{k} {v}" for k, v in f["results"].items()),
             *(_ns((f["latency_ns"] or {}).get(k)) for k in ("p50", "p90", "p99", "max")))
            for name, f in result["functions"].items()]
    blocks = [f"{result['flows']} flows, {result['smcs']} SMCs",
              tabulate(rows, ("function", "calls", "SMCs", "results", "p50", "p90", "p99", "max"))]
    if result["rpcs"]["total"]:
        rows = [(short(name).removeprefix("RPC_FUNC_"), r["count"], r["unanswered"],
                 *(_ns((r["service_ns"] or {}).get(k)) for k in ("p50", "p90", "max")))
                for name, r in result["rpcs"]["by_function"].items()]
        blocks.append(tabulate(rows, ("RPC", "count", "unanswered", "service p50", "p90", "max")))
    ethread, conc = result["ethread_limit"], result["concurrency"]
    lines = [f"ETHREAD_LIMIT: {ethread['answers']} answers in {ethread['flows']} flows"]
    if ethread["longest_wait_ns"] is not None:
        lines[0] += f", longest wait {_ns(ethread['longest_wait_ns'])}{_at(ethread['longest_wait_at'])}"
    threads = f" of {conc['thread_count']} threads{_at(conc['thread_count_at'])}" if conc["thread_count"] else ""
    calls = "call" if conc["peak"] == 1 else "calls"
    lines.append(f"peak concurrency: {conc['peak']} yielding {calls} in flight{_at(conc['peak_at'])}{threads}")
    if result["incomplete"]:
        lines.append("incomplete flows: " + ", ".join(f"{k} {v}" for k, v in result["incomplete"].items()))
    if result["lost_events"]:
        lines.append(f"lost-event markers: {result['lost_events']}")
    return "\n\n".join([*blocks, "\n".join(lines)])
