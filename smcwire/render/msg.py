"""Text and JSON views of a decoded ``struct optee_msg_arg`` (``smcwire.codec.msg.MsgArg``)."""

from __future__ import annotations

from typing import Any

from ..codec.msg import HEADER_FIELDS, MsgArg, MsgParam, open_session_meta
from .text import tabulate

_TYPE_PREFIX = "OPTEE_MSG_ATTR_TYPE_"


def msg_rows(arg: MsgArg) -> list[tuple[str, str]]:
    """(field, value) rows: the header, then the OPEN_SESSION meta (TA/client UUID, login) if any."""
    rows = [(k, _header_value(arg, k)) for k in HEADER_FIELDS]
    if meta := open_session_meta(arg):
        rows += [("ta_uuid", str(meta.ta_uuid)), ("client_uuid", str(meta.client_uuid)),
                 ("login", f"{meta.login_name} ({meta.login})")]
    return rows


def _header_value(arg: MsgArg, field: str) -> str:
    if field == "cmd":
        return f"{arg.cmd_name} ({arg.cmd})"
    return str(arg.num_params) if field == "num_params" else f"{getattr(arg, field):#x}"


def param_rows(arg: MsgArg) -> list[tuple[str, ...]]:
    """(index, type, flags, fields, note) per parameter; the type without its OPTEE_MSG_ATTR_TYPE_ prefix."""
    return [(str(i), p.type_name.removeprefix(_TYPE_PREFIX), _flags(p), _fields(p), p.note)
            for i, p in enumerate(arg.params)]


def _flags(p: MsgParam) -> str:
    flags = [name for name, on in (("META", p.meta), ("NONCONTIG", p.noncontig)) if on]
    if p.cache:
        flags.append(f"cache={p.cache}")
    return "|".join(flags) or "-"


def _fields(p: MsgParam) -> str:
    if p.view:
        return " ".join(f"{k}={v:#x}" for k, v in p.fields)
    return f"octets={p.octets.hex()}" if any(p.octets) else ""


def msg_text(arg: MsgArg) -> str:
    """A readable two-table rendering: header fields, then one row per parameter."""
    text = tabulate(msg_rows(arg), tablefmt="plain")
    if arg.params:
        rows = param_rows(arg)
        headers = ["#", "type", "flags", "fields", "note"]
        if not any(r[-1] for r in rows):
            rows, headers = [r[:-1] for r in rows], headers[:-1]
        text += "\n\n" + tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    return text


def param_json(p: MsgParam) -> dict[str, Any]:
    """A plain dict of one parameter; ``octets`` (hex) only when no union member is selected."""
    out: dict[str, Any] = {"attr": p.attr, "type": p.type, "type_name": p.type_name, "meta": p.meta,
                           "noncontig": p.noncontig, "cache": p.cache, "view": p.view,
                           "fields": dict(p.fields)}
    if p.view is None:
        out["octets"] = p.octets.hex()
    if p.note:
        out["note"] = p.note
    return out


def msg_json(arg: MsgArg) -> dict[str, Any]:
    """A JSON-serialisable dict of arg; ``open_session`` holds the OPEN_SESSION meta when present."""
    out: dict[str, Any] = {"rpc": arg.rpc, **{k: getattr(arg, k) for k in HEADER_FIELDS},
                           "cmd_name": arg.cmd_name, "params": [param_json(p) for p in arg.params]}
    if meta := open_session_meta(arg):
        out["open_session"] = {"ta_uuid": str(meta.ta_uuid), "client_uuid": str(meta.client_uuid),
                               "login": meta.login, "login_name": meta.login_name}
    return out
