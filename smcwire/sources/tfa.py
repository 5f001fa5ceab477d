"""Trusted Firmware-A console lines (formats.md §3).

Level prefixes (§3.1): the default 9-character ``ERROR:   ``, ``NOTICE:  ``, ``WARNING: ``,
``INFO:    ``, ``VERBOSE: `` (plat/common/plat_log_common.c) and any other padding (Hafnium's one
space, old TF-A's ``WARNING:   ``), Broadcom's ``E: ``/``N: ``/``W: ``/``I: ``/``V: ``; and the
prefix-less prints ``PANIC at PC : 0x…`` (common/aarch64/debug.S), ``ASSERT: File f Line n`` /
``ASSERT: f:n`` (debug.S, lib/libc/assert.c), ``BACKTRACE: START|END: cookie`` and its
``%u: %s: 0x%lx`` frames (common/backtrace/backtrace.c). The BL31 crash dump (§3.5) is left to
regdump: its header and ``x0             = 0x…`` lines are foreign here.

Boot steps (§3.2, bl1_main.c, bl31_main.c) also give a BootMilestone; opteed messages (§3.3),
unimplemented-SMC warnings (§3.4) and vendor ``smc_fid`` prints get their own ``what``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..model.events import BootMilestone, TfaMessage
from .base import Malformed, Outcome, Parser

_FIRST = frozenset(b"ENWIVBPA0123456789")  # first bytes of every line this parser claims
_LEVEL = re.compile(rb"(ERROR|NOTICE|WARNING|INFO|VERBOSE|[ENWIV]):(?:[ \t]|$)")
_LEVELS = {"E": "ERROR", "N": "NOTICE", "W": "WARNING", "I": "INFO", "V": "VERBOSE"}
_KERNEL_WARN = re.compile(r"CPU: \d+ PID: \d+ at ")

# prefix-less prints: (head, what, pattern of the whole line)
_BARE = (
    (b"PANIC at PC", "panic", re.compile(r"PANIC at PC : 0x(?P<pc>[0-9a-fA-F]+)")),
    (b"ASSERT:", "assert", re.compile(r"ASSERT: (?:File )?(?P<file>\S+?)(?: Line |:)(?P<line>\d+)")),
    (b"BACKTRACE:", "backtrace", re.compile(r"BACKTRACE: (?P<mark>START|END): (?P<cookie>.*)")),
)
_FRAME = re.compile(rb"(\d+): ([A-Z-]*EL[0-3]): 0x([0-9a-fA-F]+)$")

_VERSION = re.compile(r"(?P<image>BL[0-9][\w-]*): (?P<version>v\d\S*)")
_BL31_STEPS = (  # bl31_main.c (old TF-A: "BL3-1", "BL3-2", "Initialising")
    (re.compile(r"BL3-?1: Initiali[sz]ing BL3-?2"), "bl31_init_bl32"),
    (re.compile(r"BL3-?1: BL3-?2 initiali[sz]ation failed"), "bl32_init_failed"),
)
_EL3_EXIT = re.compile(r"BL3-?1: Preparing for EL3 exit to (?P<world>\w+) world")
_HANDOFF = re.compile(r"(?P<image>BL[0-9][\w-]*): Booting (?P<next>BL[0-9][\w-]*)")

_UNIMPLEMENTED = re.compile(r"Unimplemented (?P<service>.+?) [Cc]all: 0x(?P<smc_fid>[0-9a-fA-F]+)")
_UNHANDLED = re.compile(r"(?P<service>\S+): Unhandled SMC: 0x(?P<smc_fid>[0-9a-fA-F]+)")  # TLK
_SMC_FID = re.compile(r"smc_fid[:=]? ?(?:0x)?(?P<smc_fid>[0-9a-fA-F]+)\b")
_LOADED = re.compile(r"Loaded OP-TEE via SMC: size (?P<size>\d+) addr 0x(?P<addr>[0-9a-fA-F]+)")
_SVC_INIT = re.compile(r"Error initializing runtime service (?P<service>\w+)")
_EA = re.compile(r"Unhandled External Abort received on 0x(?P<mpidr>[0-9a-fA-F]+) from (?P<el>\S+)"
                 r"|exception reason=(?P<reason>\d+) syndrome=0x(?P<syndrome>[0-9a-fA-F]+)")  # plat_common.c
_HEX = frozenset({"pc", "smc_fid", "addr", "mpidr", "syndrome"})
_DECIMAL = frozenset({"line", "size", "reason"})


def _values(m: re.Match[str]) -> dict[str, int | str]:
    return {k: int(v, 16) if k in _HEX else int(v) if k in _DECIMAL else v
            for k, v in m.groupdict().items() if v is not None}


def milestone(text: str) -> tuple[str, dict[str, int | str]] | None:
    """The boot step a TF-A message marks, if any: (stage, data)."""
    if text == "Booting Trusted Firmware":
        return "tfa_boot", {}
    if not text.startswith("BL"):
        return None
    for pattern, stage in _BL31_STEPS:
        if pattern.fullmatch(text):
            return stage, {}
    if m := _EL3_EXIT.fullmatch(text):
        return f"bl31_exit_to_{m['world']}_world", {"world": m["world"]}
    if m := _VERSION.fullmatch(text):
        data: dict[str, int | str] = {"image": m["image"], "version": m["version"]}
        if build := re.search(r"\((debug|release)\)", m["version"]):
            data["build"] = build[1]
        return "tfa_version", data
    if m := _HANDOFF.fullmatch(text):
        return "bl_handoff", {"image": m["image"], "next": m["next"]}
    return None


# messages with their own "what": (test on the text, what, pattern giving data or None)
_KINDS: tuple[tuple[Callable[[str], bool], str, re.Pattern[str] | None], ...] = (
    (lambda t: t.startswith("No OPTEE provided by BL2 boot loader"), "opteed_no_bl32", None),
    (lambda t: t.startswith("Delaying OP-TEE setup"), "opteed_delayed_setup", None),
    (lambda t: t.startswith("Loaded OP-TEE via SMC"), "opteed_loaded", _LOADED),
    (lambda t: t.startswith("opteed: "), "opteed_error", None),
    (lambda t: t.startswith("Error initializing runtime service"), "runtime_svc_init_failed", _SVC_INIT),
    (lambda t: "Unimplemented " in t, "unimplemented_smc", _UNIMPLEMENTED),
    (lambda t: "Unhandled SMC" in t, "unimplemented_smc", _UNHANDLED),
    (lambda t: "smc_fid" in t, "smc_fid", _SMC_FID),
    (lambda t: "External Abort" in t or "exception reason=" in t, "external_abort", _EA),
)


def classify(text: str) -> tuple[str, dict[str, int | str]]:
    """What a levelled TF-A message says: ("message", {}) unless it is one of ``_KINDS``."""
    for test, what, pattern in _KINDS:
        if not test(text):
            continue
        if pattern is None:
            return what, {}
        if m := pattern.search(text):
            return what, _values(m)
    return "message", {}


class TfaParser(Parser):
    """TF-A console lines as TfaMessage events (plus a BootMilestone for boot steps)."""

    name = "tfa"

    def feed(self, lineno: int, line: bytes) -> Outcome:
        if line[:1] in (b" ", b"\r"):  # stray blanks before a prefix in pasted logs
            line = line.lstrip(b" \r")
        if not line or line[0] not in _FIRST:
            return None
        m = _LEVEL.match(line)
        if m is None:
            return self._bare(lineno, line)
        level = _LEVELS.get(m[1].decode(), m[1].decode())
        text = line[m.end():].decode("utf-8", "replace").strip()
        if text.startswith(("TEE-CORE:", "USER-TA:")) or (level == "WARNING" and _KERNEL_WARN.match(text)):
            return None  # OP-TEE <= 2.x (formats.md §4.2), a kernel WARN() header
        step = milestone(text)
        if step is None:
            what, data = classify(text)
            return (TfaMessage(self.file, lineno, level, text, what, data),)
        stage, data = step
        return (TfaMessage(self.file, lineno, level, text, "boot", data),
                BootMilestone(self.file, lineno, None, stage, text, data))

    def _bare(self, lineno: int, line: bytes) -> Outcome:
        """A prefix-less print: panic, assert, backtrace and its frames."""
        if frame := _FRAME.match(line):
            data: dict[str, int | str] = {"frame": int(frame[1]), "el": frame[2].decode(),
                                          "address": int(frame[3], 16)}
            return (TfaMessage(self.file, lineno, "", line.decode(), "backtrace", data),)
        for head, what, pattern in _BARE:
            if line.startswith(head):
                text = line.decode("utf-8", "replace").strip()
                m = pattern.fullmatch(text)
                if m is None:
                    return Malformed(f"TF-A {what} line does not parse: {text!r}")
                return (TfaMessage(self.file, lineno, "", text, what, _values(m)),)
        return None


PARSERS = (TfaParser,)
