"""Tables for people: decoded calls and returns, the function reference, capability masks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..abi.function import Function, RpcFunction
from ..abi.regs import Layout, Role
from ..codec.caps import Caps
from ..codec.decode import Call, Return
from .describe import describe, layout_summary, returns_summary, role_label

_HEADERS = ("reg", "value", "field", "meaning")


def tabulate(*args: Any, **kwargs: Any) -> str:
    """``tabulate.tabulate``, imported when a table is first drawn: the module pulls in
    importlib.metadata, a sixth of the start-up time of commands that print no table."""
    from tabulate import tabulate as draw

    table: str = draw(*args, **kwargs)
    return table


def _rows(layout: Layout, regs: tuple[int, ...]) -> list[tuple[str, str, str, str]]:
    rows = []
    for s in layout.slots:
        value = s.get(regs)
        if value is None:
            shown = "-"
        elif s.role is not Role.FIELD and s.regs == f"a{s.reg}":  # whole register: show all 64 bits
            shown = f"{regs[s.reg]:#x}"
        else:
            shown = f"{value:#x}"
        rows.append((s.regs, shown, role_label(s), describe(s, value) or s.doc))
    return rows


def _notes(notes: Iterable[str]) -> str:
    return "".join(f"\nnote: {n}" for n in notes)


def call_text(call: Call) -> str:
    f = call.fid
    title = call.name or "unknown function"
    head = (f"{title}  {f.value:#010x}  {f.kind} {f.convention}, owner {f.owner} ({f.owner_name}), "
            f"function {f.number:#x}")
    if call.function is not None:
        head += f"\n{call.function.summary}"
    if call.rpc is not None:
        head += f"\nanswering RPC {call.rpc.name}"
    a0 = ("a0", f"{call.regs[0]:#x}", "function ID", call.name or "")
    return f"{head}\n\n{tabulate([a0, *_rows(call.layout, call.regs)], _HEADERS)}{_notes(call.notes)}"


def return_text(ret: Return) -> str:
    if ret.is_rpc:
        head = f"return: RPC request {ret.rpc.name if ret.rpc else f'{ret.status:#x} (unknown)'}"
        if ret.rpc is not None:
            head += f"\n{ret.rpc.summary}"
    else:
        head = f"return: {ret.status_name or f'{ret.status:#x}'}"
    rows = _rows(ret.layout, ret.regs)
    if not ret.layout.slots or ret.layout.slots[0].reg != 0:
        rows.insert(0, ("a0", f"{ret.regs[0]:#x}", "RPC code", ret.rpc.name if ret.rpc else ""))
    return f"{head}\n\n{tabulate(rows, _HEADERS)}{_notes(ret.notes)}"


def functions_text(functions: Iterable[Function], tablefmt: str = "simple") -> str:
    rows = [(f.name, f"{f.id:#010x}", "fast" if f.fast else "yielding", "SMC64" if f.smc64 else "SMC32",
             f.owner, f.summary, layout_summary(f.call_layout), returns_summary(f), f.source) for f in functions]
    headers = ("name", "id", "type", "conv", "owner", "meaning", "call", "returns", "source")
    widths = [None, None, None, None, None, 40, 34, 40, 30] if tablefmt != "github" else None
    return tabulate(rows, headers, tablefmt=tablefmt, maxcolwidths=widths)


def rpc_text(functions: Iterable[RpcFunction], tablefmt: str = "simple") -> str:
    rows = [(r.name, f"{0xFFFF0000 | r.func:#010x}", r.summary, layout_summary(r.request_layout),
             layout_summary(r.reply_layout)) for r in functions]
    headers = ("name", "a0", "meaning", "request (OP-TEE -> normal world)", "reply (RETURN_FROM_RPC)")
    return tabulate(rows, headers, tablefmt=tablefmt)


def caps_text(caps: Caps, flags: dict[str, int]) -> str:
    rows = [(bit.bit_length() - 1, f"{bit:#x}", name, "yes" if caps.value & bit else "")
            for name, bit in sorted(flags.items(), key=lambda kv: kv[1])]
    kind = "normal-world (NSEC)" if caps.nsec else "secure-world (SEC)"
    out = f"{caps.value:#x}: {kind} capabilities, profile {caps.profile}\n\n"
    out += tabulate(rows, ("bit", "mask", "name", "set"))
    if caps.unknown:
        out += f"\nnote: bits {caps.unknown:#x} are not defined in profile {caps.profile}"
    if caps.masked:
        out += f"\nnote: bits {caps.masked:#x} never reach the caller in profile {caps.profile} (masked)"
    return out


def registers_text(regs: tuple[int, ...], layout: Layout, a0_label: str = "function ID") -> str:
    """An encoded register set, each register labelled with what the layout puts there."""
    labels = {0: a0_label}
    for s in layout.slots:
        if s.pair:
            labels[s.reg], labels[s.reg + 1] = f"{s.name} (upper)", f"{s.name} (lower)"
        elif s.regs != f"a{s.reg}":  # a bit field
            part = f"{role_label(s)} {s.regs[len(f'a{s.reg}'):]}"
            labels[s.reg] = f"{labels[s.reg]}, {part}" if s.lo else part
        else:
            labels[s.reg] = role_label(s)
    return tabulate([(f"a{i}", f"{v:#x}", labels.get(i, "")) for i, v in enumerate(regs)], ("reg", "value", "field"))
