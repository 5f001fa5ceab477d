"""Call flows and findings, as JSON objects and as compact text blocks.

JSON schema version ``SCHEMA`` (README "Interfaces"): a flow has ``file``, ``first_line``,
``last_line``, ``function``, ``a0``, ``start``/``end``/``duration`` (nanoseconds), ``task``,
``pid``, ``cpu`` (list), ``thread``, ``rpcs`` (``function``, ``line``, ``thread``, ``fields``,
``reply_fields``, ``normal_ns``), ``result`` (name), ``status``, ``retries``, ``incomplete``,
``findings`` (rule ids).
"""

from __future__ import annotations

from typing import Any

from ..flows.model import Finding, Flow, RpcTrip
from ..rules.catalog import Rule

SCHEMA = 1


def _secs(ns: int | None) -> str:
    return "?" if ns is None else f"{ns / 1e9:.6f}"


def _dur(ns: int | None) -> str:
    if ns is None:
        return "?"
    return f"{ns / 1e6:.3f} ms" if ns >= 1_000_000 else f"{ns / 1e3:.0f} us"


def rpc_json(trip: RpcTrip) -> dict[str, Any]:
    request = trip.request.ret
    return {"function": trip.function, "func": trip.func, "line": request.line if request else None,
            "thread": trip.thread, "fields": trip.fields, "reply_fields": trip.reply_fields,
            "reply_line": trip.reply.line if trip.reply is not None else None, "normal_ns": trip.normal_ns}


def flow_json(flow: Flow) -> dict[str, Any]:
    result = flow.result
    first = flow.steps[0].decoded
    start, end = flow.start, flow.end
    return {
        "index": flow.index, "capture": flow.capture, "file": flow.file, "first_line": flow.first_line,
        "last_line": flow.last_line, "function": flow.function, "a0": flow.a0,
        "fields": first.fields if first is not None else {}, "start": start, "end": end,
        "duration": end - start if start is not None and end is not None else None,
        "secure_ns": flow.secure_ns, "normal_ns": flow.normal_ns, "task": flow.task,
        "pid": flow.pid, "cpu": flow.cpus, "key": flow.key, "thread": flow.thread,
        "rpcs": [rpc_json(t) for t in flow.rpcs] if flow.rpcs else [], "retries": flow.retries,
        "result": result.status_name if result is not None else None,
        "status": result.status if result is not None else None,
        "incomplete": flow.incomplete, "findings": flow.findings, "steps": len(flow.steps),
        "console": [{"file": m.file, "line": m.line, "level": m.level, "text": m.text} for m in flow.console],
    }


def finding_json(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule, "severity": f.severity, "message": f.message, "file": f.file, "line": f.line,
            "flow": f.flow, "evidence": [{"file": file, "line": line} for file, line in f.evidence]}


def rule_json(rule: Rule) -> dict[str, Any]:
    return {"id": rule.id, "name": rule.name, "severity": rule.severity, "needs": sorted(rule.needs),
            "source": rule.source, "summary": rule.summary}


def _fields(fields: dict[str, int]) -> str:
    return " ".join(f"{k}={v:#x}" for k, v in fields.items() if k not in ("status", "client_id"))


def flow_text(flow: Flow, findings: list[Finding]) -> str:
    """A compact block: when, where, who, what, each RPC beneath, the result and the findings."""
    first = flow.first.decoded
    name = flow.function or (f"{flow.a0:#010x}" if flow.a0 is not None else "(return only)")
    cpus = ",".join(str(c) for c in flow.cpus) or "?"
    who = f"{flow.task or '?'}-{flow.pid if flow.pid is not None else '?'}"
    head = (f"#{flow.index} {_secs(flow.start)} cpu {cpus} {who}  {name} "
            f"{_fields(first.fields if first is not None else {})}".rstrip())
    lines = [f"{head}   [{flow.file}:{flow.first_line}]"]
    if flow.retries:
        lines.append(f"    ETHREAD_LIMIT x{flow.retries}: retried the same call")
    for trip in flow.rpcs:
        thread = f" thread {trip.thread}" if trip.thread is not None else ""
        served = f", served in {_dur(trip.normal_ns)}" if trip.normal_ns is not None else ", unanswered"
        line = trip.request.ret.line if trip.request.ret is not None else "?"
        fields = _fields({k: v for k, v in trip.fields.items() if k != "thread_id"})
        lines.append(f"    RPC {trip.function or hex(0xFFFF0000 | trip.func)}{thread}"
                     f"{' ' + fields if fields else ''}{served}   [line {line}]")
    answer = flow.result
    if answer is not None and answer.layout.slots and answer.layout.slots[0].name != "status":
        result = _fields(answer.fields)  # a0 is a value (UID word, revision…), not a status
    else:
        result = flow.result_name or (f"incomplete ({flow.incomplete})" if flow.incomplete else "no result")
    if flow.incomplete and result and not result.startswith("incomplete"):
        result += f", incomplete ({flow.incomplete})"
    thread = f", OP-TEE thread {flow.thread}" if flow.thread is not None else ""
    lines.append(f"    -> {result} in {_dur(flow.duration)} (secure {_dur(flow.secure_ns)}, normal world "
                 f"{_dur(flow.normal_ns)}){thread}")
    for msg in flow.console:
        lines.append(f"    | {msg.level}/{msg.origin} {msg.func or ''}{':' if msg.func else ''}{msg.func_line or ''} "
                     f"{msg.text}   [{msg.file}:{msg.line}]")
    for f in findings:
        lines.append(f"    !! {f.rule} {f.severity}: {f.message}")
    return "\n".join(lines)


def finding_text(f: Finding) -> str:
    return f"{f.file}:{f.line}: {f.severity}: {f.rule}: {f.message}"
