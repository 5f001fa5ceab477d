"""Plain JSON-ready dicts of decoded calls, returns, functions and capability masks.

Stable interface (README "Interfaces"): integers stay integers; names are the header identifiers.
"""

from __future__ import annotations

from typing import Any

from ..abi.function import Function, RpcFunction
from ..abi.regs import Layout, Slot
from ..codec.caps import Caps
from ..codec.decode import Call, Return
from .describe import describe


def _values(layout: Layout, fields: dict[str, int]) -> dict[str, str]:
    out = {}
    for s in layout.fields:
        text = describe(s, fields.get(s.name))
        if text:
            out[s.name] = text
    return out


def call_json(call: Call) -> dict[str, Any]:
    f = call.fid
    return {
        "id": f.value, "name": call.name, "fast": f.fast, "smc64": f.smc64, "owner": f.owner,
        "owner_name": f.owner_name, "number": f.number, "reserved": f.reserved, "sve_hint": f.sve_hint,
        "family": call.function.family if call.function else None,
        "summary": call.function.summary if call.function else None,
        "rpc": call.rpc.name if call.rpc else None,
        "registers": list(call.regs), "fields": call.fields, "values": _values(call.layout, call.fields),
        "notes": list(call.notes),
    }


def return_json(ret: Return) -> dict[str, Any]:
    return {
        "status": ret.status, "status_name": ret.status_name, "is_rpc": ret.is_rpc,
        "rpc": ret.rpc.name if ret.rpc else None, "registers": list(ret.regs), "fields": ret.fields,
        "values": _values(ret.layout, ret.fields), "notes": list(ret.notes),
    }


def slot_json(slot: Slot) -> dict[str, Any]:
    return {"reg": slot.regs, "name": slot.name, "role": slot.role.value,
            "width": 64 if slot.pair else slot.mask.bit_length(), "doc": slot.doc}


def function_json(f: Function) -> dict[str, Any]:
    return {
        "name": f.name, "id": f.id, "fast": f.fast, "smc64": f.smc64, "owner": f.owner, "number": f.number,
        "family": f.family, "summary": f.summary, "source": f.source, "rpc": f.rpc,
        "call": [slot_json(s) for s in f.call_layout.slots],
        "returns": [{"status": status, "registers": [slot_json(s) for s in layout.slots]}
                    for status, layout in f.return_layouts.items()],
    }


def rpc_json(r: RpcFunction) -> dict[str, Any]:
    return {"name": r.name, "func": r.func, "a0": 0xFFFF0000 | r.func, "summary": r.summary, "source": r.source,
            "request": [slot_json(s) for s in r.request_layout.slots],
            "reply": [slot_json(s) for s in r.reply_layout.slots]}


def caps_json(caps: Caps) -> dict[str, Any]:
    return {"value": caps.value, "nsec": caps.nsec, "flags": list(caps.flags), "unknown": caps.unknown,
            "masked": caps.masked, "profile": caps.profile}


def registers_json(regs: tuple[int, ...]) -> dict[str, int]:
    return {f"a{i}": v for i, v in enumerate(regs)}
