"""Register-layout vocabulary: the Construct building blocks of every SMC layout.

A register set a0..a7 is packed as eight little-endian 64-bit words, as an AArch64 core holds
x0..x7. OP-TEE functions are SMC32: their ABI fields live in the low 32 bits of each register
(abi.md §1: "Decode ABI fields from the low 32 bits; keep the full value only for display").

Each register of a layout is one of:
- ``Reg``: one value in the low ``width`` bits, with a role (field, not used, preserved, must be
  zero, resume information) and optional value names or a capability flag set;
- ``Pair``: one 64-bit value split across two registers, upper half first (the headers'
  "upper 32 bits" / "lower 32 bits" convention, Linux ``reg_pair_to_ptr``);
- ``BitReg``: one register holding several bit fields (e.g. EXCHANGE_CAPABILITIES a3).

``layout()`` assembles a ``construct.Struct`` of exactly eight registers; ``compile_layout()``
derives from that Struct the flat slot table the hot path uses, so the Struct stays the only
definition.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import construct as c

NREGS = 8
WORD = c.Int64ul
M32 = 0xFFFF_FFFF
M64 = (1 << 64) - 1


class Role(enum.Enum):
    """What the ABI says about a register (the header comments' vocabulary)."""

    FIELD = "field"
    NOT_USED = "not used"
    PRESERVED = "preserved"
    MBZ = "must be zero"
    RESUME = "resume information"


class Reg(c.Adapter):  # type: ignore[misc]
    """One register holding one value in its low ``width`` bits."""

    def __init__(
        self,
        doc: str = "",
        *,
        role: Role = Role.FIELD,
        width: int = 32,
        names: Mapping[int, str] | None = None,
        flags: c.FlagsEnum | None = None,
        valid: int | None = None,
    ) -> None:
        super().__init__(WORD)
        self.doc = doc
        self.role = role
        self.width = width
        self.names = names
        self.flags = flags
        self.valid = valid  # the bits that may be set, when the ABI restricts them

    def _decode(self, obj: int, context: Any, path: str) -> int:
        return obj & ((1 << self.width) - 1)

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        return check_range(obj, self.width, path)


class Pair(c.Adapter):  # type: ignore[misc]
    """A 64-bit value split across two registers: upper 32 bits first, then lower 32 bits."""

    def __init__(self, doc: str = "", *, role: Role = Role.FIELD) -> None:
        super().__init__(c.Array(2, WORD))
        self.doc = doc
        self.role = role
        self.width = 64
        self.names: Mapping[int, str] | None = None
        self.flags = None
        self.valid = None

    def _decode(self, obj: list[int], context: Any, path: str) -> int:
        return ((obj[0] & M32) << 32) | (obj[1] & M32)

    def _encode(self, obj: Any, context: Any, path: str) -> list[int]:
        value = check_range(obj, 64, path)
        return [value >> 32, value & M32]


@dataclass(frozen=True)
class Bits:
    """A bit field ``[lo + width - 1 : lo]`` of a ``BitReg``."""

    name: str
    lo: int
    width: int
    doc: str = ""
    role: Role = Role.FIELD
    names: Mapping[int, str] | None = None


class BitReg(c.Adapter):  # type: ignore[misc]
    """One register holding several bit fields; bits not covered are ignored."""

    def __init__(self, *parts: Bits) -> None:
        super().__init__(WORD)
        self.parts = parts

    def _decode(self, obj: int, context: Any, path: str) -> c.Container:
        return c.Container({p.name: (obj >> p.lo) & ((1 << p.width) - 1) for p in self.parts})

    def _encode(self, obj: Mapping[str, Any], context: Any, path: str) -> int:
        value = 0
        for p in self.parts:
            value |= check_range(obj.get(p.name, 0), p.width, f"{path}.{p.name}") << p.lo
        return value


class FunctionIdReg(c.Adapter):  # type: ignore[misc]
    """a0 of a call whose function is not known: the function ID, whatever its value (a known
    function's layout has ``c.Const(id)`` there instead). Not a field of the layout."""

    def __init__(self) -> None:
        super().__init__(WORD)

    def _decode(self, obj: int, context: Any, path: str) -> int:
        return obj

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        return check_range(obj, 64, path)


class EncodeError(ValueError):
    """A value does not fit its register field, or names no field of the layout."""


def check_range(value: Any, width: int, what: str) -> int:
    """Return ``value`` as an int that fits ``width`` unsigned bits, else raise EncodeError."""
    what = what.removeprefix("(building) -> ")
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"{what}: expected an integer, got {value!r}")
    if not 0 <= value < (1 << width):
        raise EncodeError(f"{what}: {value:#x} does not fit in {width} bits")
    return value


def not_used(doc: str = "not used") -> Reg:
    return Reg(doc, role=Role.NOT_USED)


def preserved(doc: str = "preserved") -> Reg:
    return Reg(doc, role=Role.PRESERVED)


def mbz(doc: str = "not used, must be zero") -> Reg:
    return Reg(doc, role=Role.MBZ)


def resume(doc: str = "resume information, must be preserved") -> Reg:
    return Reg(doc, role=Role.RESUME)


def layout(*members: c.Construct) -> c.Struct:
    """A Struct over a0..a7. Unnamed members are named by their register (``a4``); a layout
    shorter than eight registers is completed with "not used" registers."""
    named: list[c.Construct] = []
    reg = 0
    for m in members:
        if not isinstance(m, c.Renamed):
            m = f"a{reg}" / m
        named.append(m)
        reg += m.sizeof() // 8
    while reg < NREGS:
        named.append(f"a{reg}" / not_used())
        reg += 1
    if reg != NREGS:
        raise ValueError(f"layout covers {reg} registers, not {NREGS}")
    return c.Struct(*named)


@dataclass(frozen=True, slots=True)
class Slot:
    """One named value of a compiled layout: where it lives and what it means."""

    name: str
    role: Role
    reg: int  # register index (the upper half for a pair)
    lo: int  # bit offset inside the register
    mask: int
    pair: bool
    doc: str
    names: Mapping[int, str] | None
    flags: Mapping[str, int] | None
    valid: int | None = None  # bits that may be set (a non-zero rest is flagged)

    @property
    def regs(self) -> str:
        """The register(s) holding it, as the headers write them: ``a3``, ``a1:a2``, ``a3[7:0]``."""
        if self.pair:
            return f"a{self.reg}:a{self.reg + 1}"
        if self.lo or self.mask not in (M32, M64):
            return f"a{self.reg}[{self.lo + self.mask.bit_length() - 1}:{self.lo}]"
        return f"a{self.reg}"

    def get(self, regs: tuple[int, ...]) -> int | None:
        """This slot's value in a register tuple, or None if the tuple is too short."""
        if self.pair:
            if self.reg + 1 >= len(regs):
                return None
            return ((regs[self.reg] & M32) << 32) | (regs[self.reg + 1] & M32)
        if self.reg >= len(regs):
            return None
        return (regs[self.reg] >> self.lo) & self.mask


@dataclass(frozen=True, slots=True)
class Layout:
    """A register layout: its Construct Struct and the slot table derived from it."""

    struct: c.Struct
    slots: tuple[Slot, ...]
    fields: tuple[Slot, ...]  # role FIELD, in register order
    checks: tuple[Slot, ...]  # roles MBZ and NOT_USED: flagged when non-zero

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.fields)

    def slot(self, name: str) -> Slot | None:
        for s in self.slots:
            if s.name == name:
                return s
        return None


def compile_layout(struct: c.Struct) -> Layout:
    """Derive the slot table from a layout Struct (registers counted by construct sizes)."""
    slots: list[Slot] = []
    reg = 0
    for member in struct.subcons:
        sub = member.subcon
        if isinstance(sub, BitReg):
            for p in sub.parts:
                slots.append(Slot(p.name, p.role, reg, p.lo, (1 << p.width) - 1, False, p.doc, p.names, None))
        elif isinstance(sub, (Reg, Pair)):
            flags = dict(sub.flags.flags) if sub.flags is not None else None
            mask = (1 << sub.width) - 1
            slots.append(Slot(member.name, sub.role, reg, 0, mask, isinstance(sub, Pair), sub.doc, sub.names, flags,
                              sub.valid))
        elif not isinstance(sub, (c.Const, FunctionIdReg)):  # the function ID in a0
            raise TypeError(f"unsupported layout member {member.name}: {sub!r}")
        reg += member.sizeof() // 8
    fields = tuple(s for s in slots if s.role is Role.FIELD)
    checks = tuple(s for s in slots if s.role in (Role.MBZ, Role.NOT_USED) or s.valid is not None)
    return Layout(struct, tuple(slots), fields, checks)


def pack(regs: tuple[int, ...]) -> bytes:
    """Registers as the bytes a layout Struct parses (eight little-endian 64-bit words)."""
    padded = tuple(regs) + (0,) * (NREGS - len(regs))
    return b"".join((r & M64).to_bytes(8, "little") for r in padded)


def unpack(data: bytes) -> tuple[int, ...]:
    """The inverse of ``pack``."""
    return tuple(int.from_bytes(data[i : i + 8], "little") for i in range(0, NREGS * 8, 8))
