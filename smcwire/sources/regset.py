"""The SMC arguments a register dump holds: which registers are a0-a7, and why.

The SMC Calling Convention (Arm DEN 0028) passes a0-a7 in x0-x7 on AArch64 and r0-r7 on AArch32;
w0-w7 are the low 32 bits of x0-x7 (enough for SMC32 calls, truncated for SMC64). A dump taken at
the ``smc`` instruction (gdb or QEMU stopped there, an oops at ``arm_smccc_smc``) holds the call's
arguments; one taken elsewhere holds whatever the code had in those registers, which the
explanation says for each origin.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.events import RegisterDump

ARGS = 8

# register letter, the architecture its name implies, and how the SMCCC maps it (a0-a7 = …)
_NAMINGS = (
    ("a", None, "named as the SMC Calling Convention names them"),
    ("x", "aarch64", "on AArch64 the SMC Calling Convention passes a0-a7 in x0-x7 (64-bit)"),
    ("w", "aarch64", ("w registers are the low 32 bits of x0-x7 on AArch64: complete for SMC32 calls, "
                      "truncated for SMC64 ones")),
    ("r", "arm32", "on AArch32 the SMC Calling Convention passes a0-a7 in r0-r7 (32-bit)"),
)

_FREE_FORM = ("gdb", "pairs", "json", "csv")  # formats whose architecture only names and widths tell

_ORIGIN_NOTES = {
    "tfa_crash": "These are EL3's x0-x7 when BL31 crashed: they still hold the SMC arguments (x0 the "
                 "function ID) only if the crash came early in the SMC handler, before BL31 reused them.",
    "optee_abort": "These are the registers of the aborting secure-world code, not a normal-world SMC: they "
                   "are SMC arguments only if the abort hit right at an SMC.",
    "linux_arm64_oops": "These are the registers at the oops: the SMC arguments only if it hit at the SMC "
                        "(pc in arm_smccc_smc or optee_smccc_smc).",
    "linux_arm32_oops": "These are the registers at the oops: the SMC arguments only if it hit at the SMC "
                        "(pc in arm_smccc_smc or optee_smccc_smc).",
    "uboot_abort": "These are U-Boot's registers at the abort: the SMC arguments only if it hit at the SMC.",
    "gdb": "These are the registers where gdb stopped: the SMC arguments when stopped at the smc instruction.",
    "qemu": "These are the registers where QEMU stopped: the SMC arguments when stopped at the smc instruction.",
}


@dataclass(frozen=True)
class RegSet:
    """The a0-a7 (or the prefix of them a dump has) taken from a dump, and why those."""

    regs: tuple[int, ...]
    names: tuple[str, ...]  # the dump's register names taken, in order
    arch: str | None
    explanation: str


def smc_registers(dump: RegisterDump) -> RegSet | None:
    """The SMC argument registers of ``dump``, or None when it has no register 0 of any naming."""
    for letter, implied, how in _NAMINGS:
        names = _prefix(dump, letter)
        if not names:
            continue
        regs = tuple(dump.regs[n] for n in names)
        wide = [n for n, v in dump.regs.items() if v >> 32]
        arch = dump.arch or implied or ("aarch64" if wide else None)
        args = _span(tuple(f"a{i}" for i in range(len(names))))
        parts = [f"{args} = {_span(names)}: {how}." if letter != "a" else f"{args}: {how}.",
                 _arch_reason(dump, letter, wide)]
        if len(names) < ARGS:
            parts.append(_missing(dump, letter, len(names)))
        elif dump.origin == "linux_arm32_oops":
            parts.append("The arm32 oops prints r0-r12, so all eight are there.")
        if note := _ORIGIN_NOTES.get(dump.origin):
            parts.append(note)
        return RegSet(regs, names, arch, " ".join(parts))
    return None


def _prefix(dump: RegisterDump, letter: str) -> tuple[str, ...]:
    """``letter``0, ``letter``1, … as long as the dump has them (at most 8)."""
    names: list[str] = []
    while len(names) < ARGS and f"{letter}{len(names)}" in dump.regs:
        names.append(f"{letter}{len(names)}")
    return tuple(names)


def _span(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}-{names[-1]}"


def _arch_reason(dump: RegisterDump, letter: str, wide: list[str]) -> str:
    """Why the set is of its architecture: the names, the format, or the values' widths."""
    if letter in "xw":
        return "The x/w names mean AArch64."
    if letter == "r":
        return "The r names mean AArch32" + (f", although {wide[0]} is wider than 32 bits." if wide else ".")
    if dump.origin not in _FREE_FORM and dump.arch is not None:
        return f"The {dump.origin} format is {dump.arch}."
    if wide:
        return f"{wide[0]} is wider than 32 bits, so the registers are AArch64's."
    return "Every value fits in 32 bits, so the a names leave the architecture open (AArch32, or SMC32 on AArch64)."


def _missing(dump: RegisterDump, letter: str, have: int) -> str:
    """Which argument registers the dump lacks."""
    later = [f"{letter}{i}" for i in range(have + 1, ARGS) if f"{letter}{i}" in dump.regs]
    known = "a0 is" if have == 1 else f"a0-a{have - 1} are"
    text = f"The dump has no {letter}{have}, so only {known} known"
    if later:
        text += f" ({', '.join(later)} present but past the gap)"
    return text + "."
