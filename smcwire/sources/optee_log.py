"""OP-TEE OS console lines (formats.md §4).

Prefix generations (lib/libutils/ext/trace.c ``trace_printf``/``trace_vprintf``):

- ≥ 3.3 (§4.1): ``%c/%s:`` (level E/I/D/F/M/U, origin TC/LD/TA/…), then for long-prefix
  levels (error, debug, flow) ``[guest ]core thread `` — guest with CFG_NS_VIRTUALIZATION
  (≥ 4.1), core ``%0*u`` or ``?``/``??``/``???`` (not atomic), thread ``%0*d`` or blanks (no
  thread); TA and ldelf lines have no core — and ``func:line `` unless a ``*_RAW`` print;
  other levels get one space: ``I/TC: text``.
- 3.0–3.2 (§4.2): one numeric column, the **thread**: ``D/TC:0 add_phys_mem:526 …``.
- ≤ 2.x: ``ERROR:   TEE-CORE: …``, ``DEBUG:   [0x0] TEE-CORE:func:line: …`` (also the vendor
  ``INF [0x0] TEE-CORE:…``); told from TF-A's identical level words by the ``TEE-CORE``/``USER-TA``
  token. Origins are reported as TC/TA.

``X/TC:0 …`` with one number is ambiguous; as §4.2 says, it is decided per file. A line with two
leading fields (or a ``?`` core) makes the file ≥ 3.3: one number is then a core. A number followed
directly by ``func:line`` (which ≥ 3.3 cannot print) makes it 3.0–3.2, unless two fields were seen:
one number is then the thread. While undecided, a number followed by a thread field's blanks (two
or more spaces) is a core, any other a thread.

Messages with SMC information (§4.3) get a ``what`` and data, boot lines a BootMilestone too.
Abort dumps (§4.4, core/arch/arm/kernel/abort.c) give, besides each line's message, one
RegisterDump (origin ``optee_abort``) emitted with the dump's last register line (``sp_el0`` on
AArch64, ``pc`` on AArch32); a dump cut short ends at the next error line that is not one of its
registers (other levels may interleave), or at the end of the input.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..model.events import BootMilestone, Event, OpteeMessage, RegisterDump
from .base import Events, Malformed, Outcome, Parser

_LEVELS = frozenset(b"EIDFMU")
_FIELDS = re.compile(r"(\d{1,3}|\?{1,3})(?: |$)(?:(\d{1,3}|\?{1,3})(?: |$))?(?:(\d{1,3})(?: |$))?")
_FUNC = re.compile(r"([A-Za-z_][\w.]*):(\d+)(?: |$)")
_LEGACY = re.compile(r"([A-Z]{3,7}):? +(?:\[0x([0-9a-f]+)\] )?(TEE-CORE|USER-TA):(?:([A-Za-z_][\w.]*):(\d+):)? ?(.*)")
_LEGACY_ORIGINS = {"TEE-CORE": "TC", "USER-TA": "TA"}

# SMC information (§4.3): (head, what, the whole message); a message with the head that does not
# match is malformed, since its value is what the line is for
_SMC_MESSAGES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (head, what, re.compile(body))
    for head, what, body in (
        ("Unknown SMC ", "unknown_smc", r"Unknown SMC 0x(?P<fid>[0-9a-f]+)"),
        ("Bad arg address ", "bad_arg_address", r"Bad arg address 0x(?P<address>[0-9a-f]+)"),
        ("Bad arg cookie ", "bad_arg_cookie", r"Bad arg cookie 0x(?P<cookie>[0-9a-f]+)"),
        ("Unknown cmd ", "unknown_cmd", r"Unknown cmd 0x(?P<cmd>[0-9a-f]+)"),
        ("RPC allocation failed", "rpc_alloc_failed",
         (r"RPC allocation failed\. Non-secure world result: ret=(?P<ret>0x[0-9a-f]+|0) "
          r"ret_origin=(?P<ret_origin>0x[0-9a-f]+|0)")),
    )
)
_CAPABILITY = re.compile(r"(?P<name>Reserved shared memory|Dynamic shared memory|Normal World virtualization support"
                         r"|Asynchronous notifications) (?:is|are) (?P<state>enabled|disabled)")  # entry_fast.c
_CAPABILITIES = {"Reserved shared memory": "reserved_shm", "Dynamic shared memory": "dynamic_shm",
                 "Normal World virtualization support": "ns_virtualization",
                 "Asynchronous notifications": "async_notif"}
_BOOT = (  # core/arch/arm/kernel/boot.c, core/kernel/panic.c (2.x-3.x: "Secondary CPU Switching …")
    (re.compile(r"OP-TEE version: (?P<version>\S+)(?: (?P<banner>.*))?"), "optee_version"),
    (re.compile(r"Primary CPU initializing"), "optee_primary_init"),
    (re.compile(r"Primary CPU switching to normal world boot"), "optee_to_normal_world"),
    (re.compile(r"Secondary CPU (?P<cpu>\d+) initializing"), "optee_secondary_init"),
    (re.compile(r"Secondary CPU (?:(?P<cpu>\d+) )?[Ss]witching to normal world(?: boot)?"),
     "optee_secondary_to_normal_world"),
    (re.compile(r"Halting CPU (?P<cpu>\d+)"), "optee_cpu_halted"),
)
_ABORT = re.compile(r"(?P<context>.+?) (?P<type>\w+)-abort at address 0x(?P<address>[0-9a-f]+)"
                    r"(?: \[tagged 0x[0-9a-f]+\])?(?: \((?P<fault>[^)]*)\))?")
_PANIC = re.compile(r"Panic(?: (?:'(?P<message>.*)' )?at (?P<file>\S+):(?P<line>\d+)(?: <(?P<function>[^>]*)>)?)?")
_TA_PANIC = re.compile(r"TA panicked with code 0x(?P<code>[0-9a-f]+)")
_LOAD_ADDRESS = re.compile(r"TEE load address @ 0x(?P<address>[0-9a-f]+)")
_FRAME = re.compile(r"0x(?P<address>[0-9a-f]+)(?: .*)?")
_REG_LINE = re.compile(r"(?:esr|fsr) 0x[0-9a-f]+ +ttbr0 0x[0-9a-f]+ +ttbr1 0x[0-9a-f]+ +cidr 0x[0-9a-fA-F]+"
                       r"|cpu #\d+ +cpsr 0x[0-9a-f]+"
                       r"|(?:(?:x\d{1,2}|elr|sp_el0|r\d{1,2}|sp|lr|pc) +(?:0x)?[0-9a-f]+ *)+")
_REG_PAIR = re.compile(r"([a-z][a-z0-9_]*) +(0x[0-9a-fA-F]+|[0-9a-f]+)\b")
_HEADS = (*(head for head, _, _ in _SMC_MESSAGES), *_CAPABILITIES, "OP-TEE version", "Primary CPU", "Secondary CPU",
          "Halting CPU", "Panic", "TA panicked", "TEE load address", "Call stack:")
_HEX = frozenset({"fid", "address", "cookie", "cmd", "ret", "ret_origin", "code"})
_DECIMAL = frozenset({"cpu", "line"})

Data = dict[str, int | str]


def _values(m: re.Match[str]) -> Data:
    return {k: int(v, 16) if k in _HEX else int(v) if k in _DECIMAL else v
            for k, v in m.groupdict().items() if v is not None}


def classify(text: str) -> tuple[str, Data] | Malformed:
    """What an OP-TEE message (its text after the prefix) says that smcwire uses: ("message", {})
    for anything else. Boot lines are ("boot", data), dump lines are handled by the parser."""
    if not text.startswith(_HEADS):  # most lines: one test
        if "-abort at address" in text and (m := _ABORT.fullmatch(text)):
            return "abort", _values(m)
        return "message", {}
    for head, what, pattern in _SMC_MESSAGES:
        if text.startswith(head):
            m = pattern.fullmatch(text)
            if m is None:
                return Malformed(f"OP-TEE {what} message does not parse: {text!r}")
            return what, _values(m)
    if m := _CAPABILITY.fullmatch(text):
        return "capability", {"capability": _CAPABILITIES[m["name"]], "enabled": m["state"] == "enabled"}
    for pattern, _stage in _BOOT:
        if m := pattern.fullmatch(text):
            return "boot", _values(m)
    for what, pattern in (("panic", _PANIC), ("ta_panic", _TA_PANIC), ("load_address", _LOAD_ADDRESS)):
        if m := pattern.fullmatch(text):
            return what, _values(m)
    if text == "Call stack:":
        return "call_stack", {}
    return "message", {}


def boot_stage(text: str) -> str:
    """The BootMilestone stage of a message classified "boot"."""
    return next(stage for pattern, stage in _BOOT if pattern.fullmatch(text))


class _Prefix(NamedTuple):
    """What an OP-TEE line's prefix says, and the message after it."""

    guest: int | None
    core: int | None
    thread: int | None
    func: str | None
    func_line: int | None
    text: str


def _func(guest: int | None, core: int | None, thread: int | None, body: str) -> _Prefix:
    """The prefix, reading ``func:line `` of a long prefix (absent in ``*_RAW`` prints)."""
    body = body.lstrip()
    m = _FUNC.match(body)
    if m is None:
        return _Prefix(guest, core, thread, None, None, body.strip())
    return _Prefix(guest, core, thread, m[1], int(m[2]), body[m.end():].strip())


class OpteeLogParser(Parser):
    """OP-TEE console lines as OpteeMessage events (plus BootMilestone and RegisterDump)."""

    name = "optee"

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.core_first: bool | None = None  # one leading number is a core (>= 3.3), not a thread
        self.guests = False  # lines have shown a guest id (CFG_NS_VIRTUALIZATION)
        self.in_stack = False  # after "Call stack:": "0x…" lines are frames
        self.dump: dict[str, int] | None = None  # registers of the abort dump being read
        self.dump_lines = (0, 0)  # its first and last line

    def feed(self, lineno: int, line: bytes) -> Outcome:
        if line[:1] == b"*" and line[2:3] == b"/":  # '*': the console was contended (core/kernel/trace_ext.c)
            line = line[1:]
        if not line or line[0] not in _LEVELS:
            return None
        if line[1:2] == b"/" and line[4:5] == b":" and line[2:4].isalpha() and line[2:4].isupper():
            prefix = self._prefix(line[5:].decode("utf-8", "replace"))
            if isinstance(prefix, Malformed):
                return prefix
            return self._message(lineno, chr(line[0]), line[2:4].decode(), prefix)
        if line.find(b"TEE-CORE:") >= 0 or line.find(b"USER-TA:") >= 0:
            m = _LEGACY.match(line.decode("utf-8", "replace"))
            if m is None:
                return Malformed("OP-TEE TEE-CORE line without a level word")
            level, thread, origin, func, func_line, text = m.groups()
            return self._message(lineno, level, _LEGACY_ORIGINS[origin], _Prefix(
                None, None, None if thread is None else int(thread, 16), func,
                None if func_line is None else int(func_line), text.strip()))
        return None

    def _prefix(self, rest: str) -> _Prefix | Malformed:
        """The fields of what follows ``X/YY:`` (formats.md §4.1, §4.2)."""
        if rest.startswith("  "):  # a blank thread field and no core: TA, ldelf, 3.0-3.2 outside a thread
            return _func(None, None, None, rest)
        if not rest or rest[0] == " ":  # short prefix: INFO, or a level without the long prefix
            return _Prefix(None, None, None, None, None, rest.strip())
        m = _FIELDS.match(rest)
        if m is None:
            return Malformed(f"OP-TEE log prefix does not parse: {rest[:24]!r}")
        first, second, third = m.groups()
        tokens = [None if t.startswith("?") else int(t) for t in (first, second, third) if t is not None]
        body = rest[m.end():]
        blank_thread = body.startswith("  ")  # beyond the separator: a thread field of blanks
        if third is not None:
            self.core_first = self.guests = True
            return _func(tokens[0], tokens[1], tokens[2], body)
        if second is not None:
            self.core_first = True
            if second.startswith("?") or (self.guests and blank_thread):
                self.guests = True
                return _func(tokens[0], tokens[1], None, body)
            return _func(None, tokens[0], tokens[1], body)
        if first.startswith("?") or self.core_first or (self.core_first is None and blank_thread):
            return _func(None, tokens[0], None, body)
        if self.core_first is None and _FUNC.match(body):  # "D/TC:0 func:12": only 3.0-3.2 print that
            self.core_first = False
        return _func(None, None, tokens[0], body)

    def _message(self, lineno: int, level: str, origin: str, prefix: _Prefix) -> Outcome:
        text = prefix.text
        kind = classify(text)
        if isinstance(kind, Malformed):
            return kind
        what, data = kind
        out: list[Event] = []
        regs = None
        if prefix.func is None and level in ("E", "ERROR"):  # abort dumps are EMSG_RAW prints
            if what != "abort" and _REG_LINE.fullmatch(text):
                regs = {name: int(value, 16) for name, value in _REG_PAIR.findall(text)}
                what, data = "abort_regs", dict(regs)
            else:
                out.extend(self._end_dump())
                if what == "abort":
                    self.dump, self.dump_lines = {}, (lineno, lineno)
        if self.in_stack and what == "message" and (m := _FRAME.fullmatch(text)):
            what, data = "stack_frame", _values(m)
        else:
            self.in_stack = what == "call_stack"
        out.append(OpteeMessage(self.file, lineno, level, origin, prefix.guest, prefix.core, prefix.thread,
                                prefix.func, prefix.func_line, text, what, data))
        if what == "boot":
            out.append(BootMilestone(self.file, lineno, None, boot_stage(text), text, data))
        if regs is not None:
            if self.dump is None:  # a dump whose start is not in the input
                self.dump, self.dump_lines = {}, (lineno, lineno)
            self.dump.update(regs)
            self.dump_lines = (self.dump_lines[0], lineno)
            if "sp_el0" in regs or "pc" in regs:  # the last register line (§4.4)
                out.extend(self._end_dump())
        return tuple(out)

    def _end_dump(self) -> Events:
        """The RegisterDump of the dump being read, if it has registers."""
        regs, self.dump = self.dump, None
        if not regs:
            return ()
        arch = ("arm32" if any(r in regs for r in ("fsr", "r0", "pc")) else
                "aarch64" if any(r in regs for r in ("esr", "x0", "elr")) else None)
        return (RegisterDump(self.file, self.dump_lines[0], self.dump_lines[1], "optee_abort", arch, regs),)

    def finish(self) -> Events:
        return self._end_dump()


PARSERS = (OpteeLogParser,)
