"""Register values as people and traces write them.

Values are hexadecimal with or without ``0x`` (traces print ``32000004``), or decimal on request.
A register set is given positionally (a0 first, up to eight values, commas and parentheses as
copied from an ftrace line are ignored) or as ``a0=… a1=…`` pairs, where ``x``/``w`` (arm64)
and ``r`` name the same registers. ``w`` registers are 32-bit; ``r`` is 64-bit because kprobe
captures name the 64-bit results r0..r3 (arm32's r registers hold 32-bit values anyway).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..abi.regs import NREGS


class InputError(ValueError):
    """A value or register list that cannot be read; the message is one line."""


_PAIR = re.compile(r"([awxr])([0-7])=(.*)", re.IGNORECASE)


def parse_value(token: str, decimal: bool = False, bits: int = 64) -> int:
    """An unsigned register value from ``token`` (hex unless ``decimal``), at most ``bits`` wide."""
    text = token.strip().replace("_", "")
    digits = text if decimal else (text[2:] if text[:2].lower() == "0x" else text)
    if not digits or not digits.isalnum() or not digits.isascii():
        raise InputError(f"{token!r} is not {'a decimal' if decimal else 'a hexadecimal'} value")
    try:
        value = int(digits, 10 if decimal else 16)
    except ValueError:
        raise InputError(f"{token!r} is not {'a decimal' if decimal else 'a hexadecimal'} value") from None
    if value >> bits:
        raise InputError(f"{token!r} does not fit in {bits} bits")
    return value


def parse_registers(tokens: Iterable[str], decimal: bool = False) -> tuple[int, ...]:
    """a0.. from positional values or ``aN=value`` pairs (see the module doc)."""
    words = [w for t in tokens for w in re.split(r"[\s,()]+", t) if w]
    if not words:
        raise InputError("no register values given")
    pairs = [_PAIR.fullmatch(w) for w in words]
    if any(pairs):
        return _from_pairs(words, pairs, decimal)
    if len(words) > NREGS:
        raise InputError(f"{len(words)} values given; an SMC has at most {NREGS} argument registers (a0-a7)")
    return tuple(parse_value(w, decimal) for w in words)


def _from_pairs(words: list[str], pairs: list[re.Match[str] | None], decimal: bool) -> tuple[int, ...]:
    regs: dict[int, int] = {}
    for word, m in zip(words, pairs, strict=True):
        if m is None:
            raise InputError(f"{word!r}: mix of positional values and register=value pairs")
        prefix, index = m.group(1).lower(), int(m.group(2))
        if index in regs:
            raise InputError(f"register {index} given twice")
        regs[index] = parse_value(m.group(3), decimal, 32 if prefix == "w" else 64)
    if 0 not in regs:
        raise InputError("a0 (the function ID) is missing")
    return tuple(regs.get(i, 0) for i in range(max(regs) + 1))

