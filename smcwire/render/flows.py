"""Call flows and findings, as JSON objects and as compact text blocks.

JSON schema version ``SCHEMA`` (README "Interfaces"): a flow has ``file``, ``first_line``,
``last_line``, ``function``, ``a0``, ``start``/``end``/``duration`` (nanoseconds), ``task``,
``pid``, ``cpu`` (list), ``thread``, ``rpcs`` (``function``, ``line``, ``thread``, ``fields``,
``reply_fields``, ``normal_ns``), ``result`` (name), ``status``, ``retries``, ``incomplete``,
``findings`` (rule ids).
"""

from __future__ import annotations

import json
from typing import Any

from ..flows.model import Finding, Flow, RpcTrip
from ..model.events import OpteeMessage
from ..model.memo import Memo
from ..rules.catalog import Rule

SCHEMA = 1


def _secs(ns: int | None) -> str:
    return "?" if ns is None else f"{ns / 1e9:.6f}"


def _dur(ns: int | None) -> str:
    if ns is None:
        return "?"
    return f"{ns / 1e6:.3f} ms" if ns >= 1_000_000 else f"{ns / 1e3:.0f} us"


def flow_jsonl(flow: Flow) -> str:
    """The flow as one line of JSON (``json.dumps`` of ``flow_json``, byte for byte), written with
    f-strings: twice as fast as building the dict and encoding it, and flows are the bulk of
    ``analyze``'s output. Strings repeat (names, tasks, files) and decoded fields dicts are shared
    by the flows that repeat a register set (the decoder's memo), so their JSON is made once."""
    text = _STRINGS
    result = flow.result
    first = flow.steps[0].decoded
    start, end, a0, pid, thread = flow.start, flow.end, flow.a0, flow.pid, flow.thread
    status = result.status if result is not None else None
    return (
        f'{{"index": {flow.index}, "capture": {text[flow.capture]}, "file": {text[flow.file]}, '
        f'"first_line": {flow.first_line}, "last_line": {flow.last_line}, "function": {text[flow.function]}, '
        f'"a0": {"null" if a0 is None else a0}, "fields": {_dict(first.fields) if first is not None else "{}"}, '
        f'"start": {"null" if start is None else start}, "end": {"null" if end is None else end}, '
        f'"duration": {end - start if start is not None and end is not None else "null"}, '
        f'"secure_ns": {flow.secure_ns}, "normal_ns": {flow.normal_ns}, "task": {text[flow.task]}, '
        f'"pid": {"null" if pid is None else pid}, "cpu": [{", ".join(map(str, flow.cpus))}], '
        f'"key": {text[flow.key]}, "thread": {"null" if thread is None else thread}, '
        f'"rpcs": [{", ".join(map(_rpc_jsonl, flow.rpcs)) if flow.rpcs else ""}], "retries": {flow.retries}, '
        f'"result": {text[result.status_name if result is not None else None]}, '
        f'"status": {"null" if status is None else status}, "incomplete": {text[flow.incomplete]}, '
        f'"findings": {json.dumps(flow.findings) if flow.findings else "[]"}, "steps": {len(flow.steps)}, '
        f'"console": {json.dumps([_console(m) for m in flow.console]) if flow.console else "[]"}}}')


def flow_json(flow: Flow) -> dict[str, Any]:
    """The flow as a JSON-ready dict (README "Interfaces")."""
    result: dict[str, Any] = json.loads(flow_jsonl(flow))
    return result


def _rpc_jsonl(trip: RpcTrip) -> str:
    request, reply, thread, normal = trip.request.ret, trip.reply, trip.thread, trip.normal_ns
    return (f'{{"function": {_STRINGS[trip.function]}, "func": {trip.func}, '
            f'"line": {"null" if request is None else request.line}, '
            f'"thread": {"null" if thread is None else thread}, '
            f'"fields": {_dict(trip.fields)}, "reply_fields": {_dict(trip.reply_fields)}, '
            f'"reply_line": {"null" if reply is None else reply.line}, '
            f'"normal_ns": {"null" if normal is None else normal}}}')


def _console(m: OpteeMessage) -> dict[str, Any]:
    return {"file": m.file, "line": m.line, "level": m.level, "text": m.text}


_STRINGS: Memo[str | None, str] = Memo(json.dumps)  # JSON of names, tasks, files, keys: few, repeated


_DICTS: dict[int, tuple[dict[str, int], str]] = {}  # id -> (the dict, kept alive so the id stays its own; JSON)


def _dict(fields: dict[str, int]) -> str:
    if not fields:
        return "{}"
    known = _DICTS.get(id(fields))
    if known is not None and known[0] is fields:
        return known[1]
    if len(_DICTS) >= 1 << 14:
        _DICTS.clear()
    text = json.dumps(fields)
    _DICTS[id(fields)] = (fields, text)
    return text


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
