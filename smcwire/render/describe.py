"""Human text for decoded values: value names, flag sets, layout summaries."""

from __future__ import annotations

from collections.abc import Iterable
from os.path import commonprefix

from ..abi.function import Function
from ..abi.regs import Layout, Role, Slot
from ..codec.caps import flag_names


def describe(slot: Slot, value: int | None) -> str:
    """What ``value`` means in ``slot``: its name, its flags, or "" when nothing is known."""
    if value is None:
        return ""
    if slot.flags is not None:
        names, unknown = flag_names(slot.flags, value)
        prefix = _common_prefix(slot.flags)
        parts = [n.removeprefix(prefix) for n in names] + ([f"unknown bits {unknown:#x}"] if unknown else [])
        return "|".join(parts) if parts else "none"
    if slot.names:
        return slot.names.get(value, "")
    return ""


def _common_prefix(names: Iterable[str]) -> str:
    """The shared ``FOO_BAR_`` prefix of flag names, so that a set reads ``DYNAMIC_SHM|RPC_ARG``."""
    prefix = commonprefix(list(names))
    return prefix[: prefix.rfind("_") + 1]


def layout_summary(layout: Layout) -> str:
    """The fields of a layout, as ``a1:a2 arg_pa, a3 cache_settings``."""
    return ", ".join(f"{s.regs} {s.name}" for s in layout.fields) or "-"


def status_label(layout: Layout, status: int | None) -> str:
    if status is None:
        return "other"
    names = layout.slots[0].names if layout.slots else None
    name = names.get(status, f"{status:#x}") if names else f"{status:#x}"
    return name.removeprefix("OPTEE_SMC_RETURN_").removeprefix("PSCI_RET_").removeprefix("SMCCC_RET_")


def returns_summary(function: Function) -> str:
    """Each return layout of a function: ``a0 major, a1 minor`` for a single layout, else
    ``OK: a1 sec_caps, …; other: status only`` by status."""
    layouts = function.return_layouts
    if len(layouts) == 1:
        parts = [layout_summary(layouts[None])]
    else:
        parts = []
        for status, layout in sorted(layouts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
            fields = ", ".join(f"{s.regs} {s.name}" for s in layout.fields if s.reg != 0) or "status only"
            parts.append(f"{status_label(layout, status)}: {fields}")
    if function.rpc:
        parts.append("RPC requests: see `smcwire functions --rpc`")
    return "; ".join(parts)


def role_label(slot: Slot) -> str:
    return slot.name if slot.role is Role.FIELD else f"({slot.role.value})"
