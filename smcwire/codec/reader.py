"""Compiled readers of a layout: straight-line functions generated once from the slot table,
so that decoding a register set is one call with no loop over slots (the same idea as
Construct's own ``compile()``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..abi.regs import M32, Layout, Role, Slot

Regs = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Reader:
    """Reads one layout from register tuples of at least ``need`` registers."""

    layout: Layout
    need: int  # registers the ``fields`` function reads
    need_call: int  # registers ``suspect_call`` reads
    need_return: int  # registers ``suspect_return`` reads
    fields: Callable[[Regs], dict[str, int]]
    # non-zero when a checked register (MBZ; in a call also "not used") is non-zero
    suspect_call: Callable[[Regs], int]
    suspect_return: Callable[[Regs], int]
    preserved: tuple[int, ...]  # registers the return must hand back unchanged


def _expr(reg: int, lo: int, mask: int) -> str:
    return f"((r[{reg}] >> {lo}) & {mask:#x})" if lo else f"(r[{reg}] & {mask:#x})"


def _check_expr(s: Slot) -> str:
    """Non-zero when the slot holds what it must not: any value (MBZ, not used) or bits outside
    its ``valid`` mask."""
    mask = s.mask if s.valid is None else s.mask & ~s.valid
    return _expr(s.reg, s.lo, mask)


def _need(slots: tuple[Slot, ...] | list[Slot]) -> int:
    """How many registers (a0 first) hold these slots."""
    return 1 + max((s.reg + int(s.pair) for s in slots), default=0)


def _lambda(body: str) -> Callable[[Regs], object]:
    return eval(f"lambda r: {body}", {})  # noqa: S307 - source generated from the slot table only


def compile_reader(layout: Layout) -> Reader:
    """Generate the reader functions of ``layout``."""
    items = []
    for s in layout.fields:
        if s.pair:
            items.append(f"{s.name!r}: ((r[{s.reg}] & {M32:#x}) << 32) | (r[{s.reg + 1}] & {M32:#x})")
        else:
            items.append(f"{s.name!r}: {_expr(s.reg, s.lo, s.mask)}")
    checked_call = [_check_expr(s) for s in layout.checks]
    returned = [s for s in layout.checks if s.role is not Role.NOT_USED]
    checked_ret = [_check_expr(s) for s in returned]
    return Reader(
        layout, _need(layout.fields), _need(layout.checks), _need(returned),
        _lambda("{" + ", ".join(items) + "}"),  # type: ignore[arg-type]
        _lambda(" | ".join(checked_call) or "0"),  # type: ignore[arg-type]
        _lambda(" | ".join(checked_ret) or "0"),  # type: ignore[arg-type]
        tuple(s.reg for s in layout.slots if s.role is Role.PRESERVED),
    )
