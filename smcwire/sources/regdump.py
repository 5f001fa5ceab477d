"""Register dumps (formats.md §3.5, §5): one ``RegisterDump`` per dump, whatever printed it.

Formats (``origin`` of the events) and the code that prints them:

- ``tfa_crash``: TF-A BL31 crash dump (bl31/aarch64/crash_reporting.S): a header (``PANIC in EL3.``,
  ``Unhandled Exception in EL3.``, ``Unhandled Interrupt Exception in EL3.``), then one register per
  line, the name padded so that ``= 0x`` starts at column 15 and 16 (FEAT_D128: 32) hex digits; TF-A
  before 2.3 printed ``name =\\t\\t0x…`` and ``PANIC in EL3 at x30 = 0x…``. Platform tables follow,
  e.g. ``gicd_ispendr regs (Offsets 0x200-0x278)``, an ``Offset  Value`` title and ``0x200:  0x…``
  rows, kept as ``gicd_ispendr+0x200``.
- ``qemu``: QEMU monitor ``info registers`` (target/arm/cpu.c): AArch64 `` PC=…`` then ``X00=…`` three
  per line, ``SP=``, ``PSTATE=…`` and the FPU/SVE lines (``Q00=hi:lo``, ``Z00=``, ``P00=``, ``FFR=``);
  AArch32 ``R00=…`` four per line, ``PSR=…``, ``s00= s01= d00=`` lines and ``FPSCR:``. Names are kept
  without the zero padding (``X05`` -> ``x5``).
- ``linux_arm64_oops``: arch/arm64/kernel/process.c ``__show_regs``: ``pstate: … (flags)``, ``pc : sym``,
  ``lr : sym``, ``sp : …``, ``pmr_save: …``, then ``x29: …`` down to ``x0`` (3 per line since ~5.13, 2
  before); kernels before 4.15 printed ``pc : [<…>] lr : [<…>] pstate: …``.
- ``linux_arm32_oops``: arch/arm/kernel/process.c ``__show_regs``: ``pc : [<…>]    lr : [<…>]    psr: …``
  (or without ``[< >]``), ``sp : ip : fp :``, ``r10:`` down to ``r0``, ``Flags:`` last.
- ``uboot_abort``: U-Boot arch/arm/lib/interrupts_64.c ``show_regs``: ``"Synchronous Abort" handler, esr
  0x…``, ``elr: … lr : …`` (also ``(reloc)``), ``x0 : … x1 : …`` up to ``x28``/``x29``; on arm32
  (interrupts.c) the Linux-like layout with ``pc``/``lr`` only and a ``reloc pc :`` line.
- ``gdb``: ``info registers`` (name, ``0x`` raw value, natural value) on any architecture, and
  ``(gdb) p/x $x0`` followed by ``$1 = 0x…``; prompt lines are foreign and end a dump, except a
  ``print`` of a register, which continues it.
- ``pairs``: hand-written ``a0=0x… a1=…``, ``x0: 0x…``, ``r0 : …``, ``w0=…``; values without ``0x`` are
  hex, and the first must start like a number (``r10:grp/event sym``, a kprobe definition, is foreign).
  One line is one set; consecutive lines of a single register each (``x0 = 0x…`` per line, as lldb
  and seL4 print) are one set until a name repeats.
- ``json``: an object with register keys (``a0``…``a7``, ``x0``…, ``w0``…, ``r0``…, values integers or
  hex strings), or a list of them. On one line anywhere; across lines when the document starts the
  input, where each object becomes a dump when it closes.
- ``csv``: a header naming register columns (``ts,cpu,dir,a0,a1,…``), then one set per row.

Kernel-log prefixes (``[   12.34] ``, ``<4>``, ``[T123]``) are skipped; so is the ``] `` left by a
wrapped paste (optee_os#4245). A dump's lines answer ``()`` until it is complete. One whose last line is
known (``x0`` of an arm64 oops, ``Flags:``, ``x29`` of U-Boot, QEMU's last FPU line, a TF-A table's
last row) is emitted on that line. Otherwise the first line that does not belong ends it: that line
is answered ``None`` so that other parsers may claim it, and the dump is emitted with the next line
this parser claims, or by ``finish``. A broken line inside a dump is malformed, its values are not
taken, and the dump goes on. The lines of a multi-line JSON object are claimed before it parses: a
syntax error is reported on its last line, and a document cut off before its end gives no dump and
no diagnostic.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple

from ..model.events import RegisterDump
from .base import Events, Malformed, Outcome, Parser

START, CONT, LAST, SOLO = range(1, 5)  # a line starts a dump, continues one, ends one, is one

_KERNEL_PREFIX = re.compile(rb"(?:\] )?(?:<\d+>)?\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])? ?")
_MAYBE = re.compile(  # how every line this parser reads begins: one test rejects the others
    rb"\s*+(?:[A-Za-z]\w*+(?:\s*+[:=,]|\s++0x| regs \()|\"?[A-Za-z_][\w.-]*+\"? *,|PANIC in|Unhandled|Offset\s"
    rb"|0x[0-9a-f]+:|Bad mode in \"|\"|reloc pc|\$\d|\((?:gdb|qemu)\)|[\[{])")
_HEX = re.compile(r"[0-9a-fA-F]+")
_ARG = re.compile(r"([axwr])(\d{1,2})")  # the registers SMC arguments travel in
_REG_KEY = re.compile(r"[axwr]\d{1,2}|pc|sp|lr|fp|ip|elr|cpsr|psr|pstate")  # JSON keys, CSV columns
_TOKEN = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\s*([:=])\s*([^\s,;]+)[\s,;]*")

_TFA_HEADER = re.compile(r"(?:PANIC|Unhandled Exception|Unhandled Interrupt Exception) in EL3"
                         r"(?:\.| at x30 = 0x(\S*))$")
_TFA_REG = re.compile(r"([a-z][a-z0-9_]*)(?:( *)= | =\t+)0x(\S*)$")
_TFA_TABLE = re.compile(r"([a-z][a-z0-9_]*) regs \(Offsets 0x([0-9a-f]+)-0x([0-9a-f]+)\)$")
_TFA_TITLE = re.compile(r"Offset\s+Value$")
_TFA_ROW = re.compile(r"0x([0-9a-f]+):\s+0x(\S*)$")

_QEMU_PSTATE = re.compile(r"(PSTATE|X?PSR)=([0-9a-f]+) ")
_QEMU_FP = re.compile(r"\b(FPCR|FPSR)=([0-9a-f]+)")
_QEMU_FPSCR = re.compile(r"FPSCR: ([0-9a-f]+)$")
_QEMU_NAME = re.compile(r"PC|SP|FFR|[XRQZP]\d\d")
_QEMU_VFP = re.compile(r"[sd]\d\d")

_PSTATE = re.compile(r"pstate: ([0-9a-f]+)(?: \(.*\))?$")
_PC_LR = re.compile(r"(pc|lr) : (\S+)(?: \[[\w-]+\])?$")
_HEXNUM = re.compile(r"(?:0x)?[0-9a-f]+")
_OLD_PC = re.compile(r"pc : \[<([0-9a-f]+)>\]\s+lr : \[<([0-9a-f]+)>\]\s+pstate: ([0-9a-f]+)$")
_ARM32_ROWS = {("pc", "lr", "psr"): START, ("pc", "lr"): START, ("sp", "ip", "fp"): CONT,
               ("r10", "r9", "r8"): CONT, ("r7", "r6", "r5", "r4"): CONT, ("r3", "r2", "r1", "r0"): CONT}
_UBOOT_HEADER = re.compile(r'(?:Bad mode in )?"[\w ]+" handler, esr 0x([0-9a-f]+)(?:, far 0x([0-9a-f]+))?$')

_GDB_REG = re.compile(r"([a-z][a-z0-9_]*)\s+0x([0-9a-f]+)\s+\S.*$")
_GDB_CORE = re.compile(r"[xwr]\d{1,2}|sp|pc|lr|fp|ip|cpsr")
_GDB_PRINT = re.compile(r"\(gdb\)\s+p(?:rint)?(?:/[a-z]+)?\s+\$([a-z][a-z0-9_]*)$")
_GDB_RESULT = re.compile(r"\$\d+ = (?:\(.*\)\s+)?(-?)(0x[0-9a-f]+|\d+)(?:\s.*)?$")
_PROMPT = ("(gdb)", "(qemu)")

_JSON_SPECIAL = re.compile(r'[][{}"\\]')
_JSON_KEY = re.compile(r'"[axwrAXWR]\d{1,2}"\s*:')
_CSV_HEADER = re.compile(r'\s*"?[A-Za-z_][\w.-]*"?\s*(?:,\s*"?[A-Za-z_][\w.-]*"?\s*)+')


class _Bad(Exception):
    """A line in a register-dump format that does not parse; the message says why."""


class _Line(NamedTuple):
    """What one line adds to a dump."""

    family: str  # lines of one family continue each other's dumps
    kind: int  # START, CONT, LAST or SOLO
    regs: dict[str, int]
    arch: str | None = None
    origin: str | None = None  # when it differs from the family (U-Boot's arm32 layout)
    table: tuple[str, int] | None = None  # a TF-A platform table starts: its name, last offset


@dataclass
class _Dump:
    family: str
    origin: str
    arch: str | None
    first: int
    last: int
    regs: dict[str, int] = field(default_factory=dict)
    table: tuple[str, int] | None = None  # TF-A platform table in progress: name, last offset


def _value(raw: str, name: str, digits: tuple[int, ...] = (), bits: int = 64) -> int:
    """The hex number ``raw`` (``0x`` optional) as register ``name``'s value."""
    h = raw[2:] if raw[:2] in ("0x", "0X") else raw
    if not _HEX.fullmatch(h):
        raise _Bad(f"{name}: {raw!r} is not a hex number")
    if digits and len(h) not in digits:
        raise _Bad(f"{name}: {raw!r} has {len(h)} hex digits, the format prints {' or '.join(map(str, digits))}")
    v = int(h, 16)
    if v >> bits:
        raise _Bad(f"{name}: {raw!r} does not fit in {bits} bits")
    return v


def _bits(name: str) -> int:
    """Register width by name: w registers are 32-bit (r may hold a 64-bit result: the kretprobe
    recipe names x0-x3 of the return r0-r3)."""
    return 32 if name[0] == "w" and _ARG.fullmatch(name) else 64


def _unpad(name: str) -> str:
    """QEMU's zero-padded numbers dropped: ``X05`` -> ``x5``."""
    return re.sub(r"^([a-z]+)0(\d)$", r"\1\2", name.lower())


def _guess_arch(regs: dict[str, int]) -> str | None:
    """The architecture register names and widths tell: x/w names or a value over 32 bits mean
    AArch64, r names with 32-bit values AArch32; else (a names, small values) None."""
    names = {m[1] for m in map(_ARG.fullmatch, regs) if m}
    wide = any(v >> 32 for v in regs.values())
    if names & {"x", "w"} or wide:
        return "aarch64"
    return "arm32" if "r" in names else None


def _tokens(text: str) -> tuple[list[tuple[str, str, str]], str]:
    """The ``name: value`` / ``name=value`` tokens a line starts with, and the text after them."""
    out, pos = [], 0
    while m := _TOKEN.match(text, pos):
        out.append((m[1], m[2], m[3]))
        pos = m.end()
    return out, text[pos:]


class RegdumpParser(Parser):
    """Register dumps in every format above, alone or inside a console capture."""

    name = "regs"

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.open: _Dump | None = None
        self.ready: list[RegisterDump] = []  # dumps ended by a line this parser did not claim
        self.gdb_print: str | None = None  # register of the last ``(gdb) p $reg``
        self.csv: list[str | None] | None = None  # register name per CSV column, while rows follow
        self.doc: _JsonDoc | None = None
        self.blank = 0  # blank lines before any content: a JSON document must start the input

    def feed(self, lineno: int, line: bytes) -> Outcome:
        try:
            return self._feed(lineno, line)
        except _Bad as e:
            return Malformed(str(e))
        except (ValueError, RecursionError) as e:  # e.g. a JSON number too long to convert
            return Malformed(f"cannot read register dump: {e}")

    def finish(self) -> Events:
        self._end()
        return self._flush([])

    # -- per line ------------------------------------------------------------------------------

    def _feed(self, lineno: int, line: bytes) -> Outcome:
        if self.doc is not None:
            return self._json_doc(lineno, line)
        if line.startswith((b"[", b"<", b"] ")) and (m := _KERNEL_PREFIX.match(line)):
            line = line[m.end():]
        if self.csv is not None:
            if b"," in line:
                return self._csv_row(lineno, line.strip().decode("utf-8", "replace"))
            self.csv = None
        if not _MAYBE.match(line):
            if lineno == self.blank + 1 and not line.strip():
                self.blank += 1
            self._end()
            return None
        text = line.rstrip().decode("ascii", "replace")
        s = text.lstrip()
        if lineno == self.blank + 1 and _starts_document(s):
            self.doc = _JsonDoc()
            return self._json_doc(lineno, line)
        if s.startswith(_PROMPT):
            self._prompt(s)
            return None
        parsed = self._classify(lineno, text, s)
        if isinstance(parsed, _Line):
            return self._take(lineno, parsed)
        self._end()
        return None if parsed is None else self._flush(parsed)

    def _take(self, lineno: int, ln: _Line) -> Events:
        """Add a parsed line to the open dump (or a new one); the dumps this completes."""
        done: list[RegisterDump] = []
        d = self.open
        repeats = d is not None and not d.regs.keys().isdisjoint(ln.regs)  # a second dump of the same kind
        if d is not None and (d.family != ln.family or ln.kind in (START, SOLO) or repeats):
            done.append(self._close())
            d = None
        if ln.kind == SOLO:
            arch = ln.arch or _guess_arch(ln.regs)
            done.append(RegisterDump(self.file, lineno, lineno, ln.origin or ln.family, arch, ln.regs))
            return self._flush(done)
        if d is None:
            d = self.open = _Dump(ln.family, ln.origin or ln.family, ln.arch, lineno, lineno)
        d.regs.update(ln.regs)
        d.last = lineno
        d.origin = ln.origin or d.origin
        d.arch = ln.arch or d.arch
        d.table = ln.table or d.table
        if ln.kind == LAST:
            done.append(self._close())
        return self._flush(done)

    def _flush(self, done: list[RegisterDump]) -> Events:
        """The dumps waiting since a foreign line ended them, then ``done``."""
        out, self.ready = (*self.ready, *done), []
        return out

    def _close(self) -> RegisterDump:
        d, self.open = self.open, None
        assert d is not None
        arch = _guess_arch(d.regs) if d.arch is None else d.arch
        return RegisterDump(self.file, d.first, d.last, d.origin, arch, d.regs)

    def _end(self) -> None:
        """A line that is not part of the open dump: the dump is complete."""
        self.gdb_print = None
        if self.open is not None:
            self.ready.append(self._close())

    def _prompt(self, s: str) -> None:
        """A gdb or QEMU monitor prompt (foreign): it ends the dump unless it prints a register."""
        m = _GDB_PRINT.match(s)
        if m is None or (self.open is not None and self.open.family != "gdb"):
            self._end()
        self.gdb_print = m[1] if m else None

    # -- recognising a line --------------------------------------------------------------------

    def _classify(self, lineno: int, text: str, s: str) -> _Line | list[RegisterDump] | None:
        """What dump line ``text`` (``s`` without its indentation) is: a line of a dump, the dumps of a
        JSON line, or None."""
        c = s[0]
        family = self.open.family if self.open is not None else None
        if c in "PU" and (m := _TFA_HEADER.match(s)):
            regs = {} if m[1] is None else {"x30": _value(m[1], "x30", (16, 32))}
            return _Line("tfa_crash", START, regs, "aarch64")
        if c in "PXRQZFsd" and (ln := self._qemu(s, family == "qemu")):
            return ln
        if c.islower() and len(s) == len(text) and (m := _TFA_REG.match(s)) and _tfa_aligned(m):
            return _Line("tfa_crash", CONT, {m[1]: _value(m[3], m[1], (16, 32))}, "aarch64")
        if c.islower() and (m := _TFA_TABLE.match(s)):
            return _Line("tfa_crash", CONT, {}, "aarch64", table=(m[1], int(m[3], 16)))
        if family == "tfa_crash" and c in "O0" and (ln := self._tfa_table(s)):
            return ln
        if c in "plFr" and (ln := _linux(s, family)):
            return ln
        if c in '"B' and (m := _UBOOT_HEADER.match(s)):
            regs = {"esr": _value(m[1], "esr")} | ({} if m[2] is None else {"far": _value(m[2], "far")})
            return _Line("uboot_abort", START, regs, "aarch64")
        if c == "$":
            return self._gdb_result(s)
        if c in "[{":
            return self._json_line(lineno, s)
        if "," in s and (header := _csv_header(s)):
            self.csv = header
            return None
        if c.islower() and (m := _GDB_REG.match(s)) and (family == "gdb" or _GDB_CORE.fullmatch(m[1])):
            return _Line("gdb", CONT, {m[1]: _value(m[2], m[1])})
        return _register_tokens(s, family) if c.isalpha() else None

    def _qemu(self, s: str, in_qemu: bool) -> _Line | None:
        """A line of QEMU's ``info registers`` (target/arm/cpu.c ``*_cpu_dump_state``)."""
        if m := _QEMU_PSTATE.match(s):
            aarch64 = m[1] == "PSTATE"
            regs = {m[1].lower(): _value(m[2], m[1], (8, 16) if aarch64 else (8,))}
            regs |= {k.lower(): _value(v, k, (8,)) for k, v in _QEMU_FP.findall(s)}
            more = "FPCR=" in s or not aarch64  # the FPU lines follow (monitor) or may (arm32)
            return _Line("qemu", CONT if more else LAST, regs, "aarch64" if aarch64 else "arm32")
        if m := _QEMU_FPSCR.match(s):
            return _Line("qemu", LAST, {"fpscr": _value(m[1], "FPSCR", (8,))}) if in_qemu else None
        tokens, rest = _tokens(s)
        if not tokens or any(sep != "=" for _, sep, _ in tokens):
            return None
        names = [n for n, _, _ in tokens]
        if all(_QEMU_NAME.fullmatch(n) for n in names):
            vector = names[0][0] in "QZF" or (names[0][0] == "P" and names[0] != "PC")
            if vector and not in_qemu:
                return None
            if rest:
                raise _Bad(f"QEMU register line: unexpected {rest[:24]!r}")
            regs = {_unpad(n): _qemu_value(n, v) for n, _, v in tokens}
            arch = None if vector else "arm32" if names[0][0] == "R" else "aarch64"
            kind = START if names[0] in ("PC", "R00") else LAST if {"Q31", "FFR"} & set(names) else CONT
            return _Line("qemu", kind, regs, arch)
        if in_qemu and not rest and all(_QEMU_VFP.fullmatch(n) for n in names):
            return _Line("qemu", CONT, {_unpad(n): _value(v, n, (8, 16)) for n, _, v in tokens})
        return None

    def _tfa_table(self, s: str) -> _Line | None:
        """The title or a row of the TF-A platform table (plat_crash_print_regs) in progress."""
        assert self.open is not None
        table = self.open.table
        if table is None:
            return None
        if _TFA_TITLE.match(s):
            return _Line("tfa_crash", CONT, {})
        if m := _TFA_ROW.match(s):
            name, end = table
            offset = int(m[1], 16)
            reg = f"{name}+{offset:#x}"
            return _Line("tfa_crash", LAST if offset == end else CONT, {reg: _value(m[2], reg, (16, 32))})
        return None

    def _gdb_result(self, s: str) -> _Line | None:
        """``$1 = 0x32000004`` after ``(gdb) p/x $x0`` (decimal, maybe negative, without /x)."""
        name, self.gdb_print = self.gdb_print, None
        if name is None or not (m := _GDB_RESULT.match(s)):
            return None
        width = _bits(name)
        value = int(m[2], 0)
        if m[1]:
            value = (1 << width) - value
        if value >> width or value < 0:
            raise _Bad(f"gdb: ${name} = {s[s.index('=') + 2:]!r} does not fit in {width} bits")
        return _Line("gdb", CONT, {name: value})

    # -- JSON and CSV --------------------------------------------------------------------------

    def _json_line(self, lineno: int, s: str) -> list[RegisterDump] | None:
        """A JSON object or list of objects on one line; None for other JSON and for brackets."""
        if not _starts_document(s) or s[-1] not in "]}":
            return None
        try:
            doc = json.loads(s)
        except ValueError as e:
            if _JSON_KEY.search(s):
                raise _Bad(f"JSON: {e}") from None
            return None
        objects = doc if isinstance(doc, list) else [doc]
        if not all(isinstance(o, dict) for o in objects):
            if _JSON_KEY.search(s):
                raise _Bad("JSON: expected an object with register keys, or a list of them")
            return None
        if not any(_REG_KEY.fullmatch(str(k).lower()) for o in objects for k in o):
            return None
        return [_json_dump(self.file, lineno, lineno, o) for o in objects]

    def _json_doc(self, lineno: int, line: bytes) -> Outcome:
        """A line of the JSON document the input starts with."""
        doc = self.doc
        assert doc is not None
        objects, part, error = doc.feed(lineno, line.decode("utf-8", "replace"))
        if doc.done:
            self.doc = None
        if error:
            raise _Bad(error)
        events = []
        for first, last, body in objects:
            try:
                obj = json.loads(body)
            except json.JSONDecodeError as e:
                raise _Bad(f"JSON object of lines {first}-{last}: {e.msg} at line {first + e.lineno - 1}") from None
            events.append(_json_dump(self.file, first, last, obj))
        if events:
            return self._flush(events)
        return () if part else None

    def _csv_row(self, lineno: int, s: str) -> Events:
        """A row under a CSV header: one set."""
        columns = self.csv
        assert columns is not None
        fields = next(csv.reader([s]))
        if len(fields) != len(columns):
            raise _Bad(f"CSV row has {len(fields)} fields, its header {len(columns)}")
        regs = {n: _value(v.strip(), n, bits=_bits(n)) for n, v in zip(columns, fields, strict=True)
                if n is not None and v.strip()}
        if not regs:
            raise _Bad("CSV row has no register values")
        return self._flush([RegisterDump(self.file, lineno, lineno, "csv", _guess_arch(regs), regs)])

    @classmethod
    def sniff(cls, head: list[bytes]) -> int:
        """95 for a JSON or CSV register file; 90 for gdb or QEMU output, or a file of dump lines only."""
        lines = [(n, x) for n, x in enumerate(head, 1) if x.strip()]
        if not lines:
            return 0
        first = lines[0][1].strip().decode("ascii", "replace")
        if _starts_document(first):
            return 95 if _JSON_KEY.search(b"\n".join(head).decode("utf-8", "replace")) else 0
        if "," in first and _csv_header(first):
            return 95
        parser = cls("<sniff>")
        outcomes = [parser.feed(n, x) for n, x in enumerate(head, 1)]
        claimed = sum(o is not None for o in outcomes)  # malformed dump lines are dump lines too
        dumps = [e for o in (*outcomes, parser.finish()) if o is not None for e in o if isinstance(e, RegisterDump)]
        if first.startswith(_PROMPT) or any(d.line == lines[0][0] and d.origin in ("gdb", "qemu") for d in dumps):
            return 90
        if claimed == len(lines) >= 2:
            return 90
        return 20 if claimed else 0


class _JsonDoc:
    """A JSON document (an object, or a list of objects) over several lines, cut into its objects
    as they close, with the lines each one spans."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.item_depth = 0  # depth at which objects start: 0 for a lone object, 1 in a list
        self.body: list[str] = []  # lines of the object being read
        self.first = 0  # its first line
        self.gap = ""  # list text since the last object: a comma and blanks
        self.count = 0  # objects read
        self.done = False

    def feed(self, lineno: int, text: str) -> tuple[list[tuple[int, int, str]], bool, str | None]:
        """The objects this line completes (first line, last line, text), whether the line holds
        part of an object, and the first syntax error between objects."""
        objects: list[tuple[int, int, str]] = []
        start: int | None = 0 if self.body else None  # where the open object starts on this line
        gap_from, skip, part, error = 0, -1, bool(self.body), None
        for m in _JSON_SPECIAL.finditer(text):
            i, c = m.start(), m[0]
            if i == skip or self.done:
                continue
            if self.in_string:
                skip = i + 1 if c == "\\" else skip
                self.in_string = c != '"'
            elif c == '"':
                self.in_string = True
            elif c in "[{":
                if self.depth == 0 and c == "[":
                    self.item_depth, gap_from = 1, i + 1
                elif self.depth == self.item_depth:
                    error = error or self._separator(text[gap_from:i])
                    start, self.first, part = i, lineno, True
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == self.item_depth and start is not None:
                    objects.append((self.first, lineno, "\n".join([*self.body, text[start:i + 1]])))
                    self.body, start, gap_from, self.count = [], None, i + 1, self.count + 1
                elif self.depth == 0 and self.item_depth:
                    gap = (self.gap + text[gap_from:i]).strip()
                    error = error or (f"JSON list: unexpected {gap[:24]!r} before its end" if gap else None)
                self.done = self.depth == 0
        if start is not None:
            self.body.append(text[start:])
        elif self.item_depth and not self.done:
            self.gap += text[gap_from:]
        return objects, part, error

    def _separator(self, text: str) -> str | None:
        """The error in the list text before an object, if it is not the comma it should be."""
        gap, self.gap = (self.gap + text).strip(), ""
        if self.item_depth and gap != ("," if self.count else ""):
            return f"JSON list: expected objects separated by commas, found {gap[:24]!r}"
        return None


def _starts_document(s: str) -> bool:
    """Whether ``s`` opens a JSON object or list of objects (not a kernel ``[    1.2]`` stamp)."""
    t = s.lstrip("[ \t")
    return s[:1] in ("{", "[") and (s[0] == "{" or t == "" or t[0] == "{")


def _tfa_aligned(m: re.Match[str]) -> bool:
    """TF-A pads names so that ``= 0x`` starts at column 15 (old TF-A: ``name =\\t\\t0x``)."""
    pad = m[2]
    return pad is None or len(m[1]) + len(pad) == 15 or (len(m[1]) >= 15 and len(pad) <= 1)


def _linux(s: str, family: str | None) -> _Line | None:
    """Oops lines that are not plain ``name: value`` rows: pstate, pc and lr, ``Flags:``, U-Boot's
    ``reloc pc``."""
    if m := _PSTATE.match(s):
        return _Line("linux_arm64_oops", START, {"pstate": _value(m[1], "pstate", (8, 16))}, "aarch64")
    if m := _OLD_PC.match(s):
        regs = {"pc": _value(m[1], "pc", (16,)), "lr": _value(m[2], "lr", (16,)),
                "pstate": _value(m[3], "pstate", (8,))}
        return _Line("linux_arm64_oops", START, regs, "aarch64")
    if family == "linux_arm64_oops" and (m := _PC_LR.match(s)):  # "%pS" or, in user mode, "%016llx"
        return _Line(family, CONT, {m[1]: _value(m[2], m[1])} if _HEXNUM.fullmatch(m[2]) else {})
    if family == "linux_arm32_oops" and s.startswith("Flags: "):
        return _Line(family, LAST, {})
    if family == "linux_arm32_oops" and s.startswith("reloc pc :"):
        tokens, rest = _tokens(s[6:])
        if rest or [n for n, _, _ in tokens] != ["pc", "lr"]:
            raise _Bad(f"U-Boot reloc line: cannot read {s[:40]!r}")
        return _Line(family, CONT, {f"reloc_{n}": _arm32_value(n, v) for n, _, v in tokens}, origin="uboot_abort")
    return None


def _register_tokens(s: str, family: str | None) -> _Line | None:
    """``name: value`` lines: oops and U-Boot register rows, hand-written sets."""
    tokens, rest = _tokens(s)
    if not tokens:
        return None
    names = [n.lower() for n, _, _ in tokens]
    if {sep for _, sep, _ in tokens} == {":"} and not rest:
        if ln := _xrow(tokens, family):
            return ln
        if kind := _ARM32_ROWS.get(tuple(names)):
            kind = START if kind == CONT and family not in (None, "linux_arm32_oops") else kind
            regs = {n: _arm32_value(n, v) for n, (_, _, v) in zip(names, tokens, strict=True)}
            return _Line("linux_arm32_oops", kind, regs, "arm32")
        if family == "linux_arm64_oops" and names in (["sp"], ["pmr_save"]):
            return _Line(family, CONT, {names[0]: _value(tokens[0][2], names[0], (16,) if names == ["sp"] else (8,))})
        if names == ["elr", "lr"]:  # U-Boot (interrupts_64.c): "elr: %016lx lr : %016lx"
            return _Line("uboot_abort", CONT, {n: _value(v, n, (16,)) for n, _, v in tokens}, "aarch64")
    if names == ["elr", "lr"] and rest == "(reloc)":
        return _Line("uboot_abort", CONT, {f"{n}_reloc": _value(v, n, (16,)) for n, _, v in tokens}, "aarch64")
    if not _ARG.fullmatch(names[0]) or not _HEX.match(tokens[0][2]):  # e.g. "r10:grp/event sym" (kprobe_events)
        return None
    if rest:
        raise _Bad(f"register line: unexpected {rest[:24]!r} after {names[-1]}")
    kept = [(n, v) for n, (_, _, v) in zip(names, tokens, strict=True) if _ARG.fullmatch(n)]
    names = [n for n, _ in kept]  # other fields (a kprobe body's res=) are not registers: left out
    regs = {n: _value(v, n, bits=_bits(n)) for n, v in kept}
    if len(regs) < len(names):
        raise _Bad(f"register line names a register twice: {' '.join(names)}")
    if len(regs) == 1 and family in (None, "pairs"):  # one register a line: one set over the lines
        return _Line("pairs", CONT, regs)
    return _Line("pairs", SOLO, regs)


def _xrow(tokens: list[tuple[str, str, str]], family: str | None) -> _Line | None:
    """``x29: %016llx x28: …`` (Linux arm64 oops, descending) or ``x0 : %016lx x1 : …`` (U-Boot,
    ascending); None for other ``x…:`` lines (hand-written sets)."""
    if not all(n[0] == "x" and n[1:].isdigit() for n, _, _ in tokens):
        return None
    numbers = [int(n[1:]) for n, _, _ in tokens]
    steps = {b - a for a, b in pairwise(numbers)}
    if steps == {-1} or (not steps and family == "linux_arm64_oops"):
        fam, last = "linux_arm64_oops", 0
    elif steps == {1} or (not steps and family == "uboot_abort"):
        fam, last = "uboot_abort", 29
    else:
        return None
    if family != fam and not any(len(v) == 16 for _, _, v in tokens):
        return None  # short values: a hand-written set
    regs = {n: _value(v, n, (16,)) for n, _, v in tokens}
    return _Line(fam, LAST if last in numbers else CONT, regs, "aarch64")


def _arm32_value(name: str, raw: str) -> int:
    """An arm32 oops value, ``%08lx`` or ``[<%08lx>]``."""
    if raw.startswith("[<") and raw.endswith(">]"):
        raw = raw[2:-2]
    return _value(raw, name, (8,))


def _qemu_value(name: str, raw: str) -> int:
    """QEMU values: ``%016x`` (X, PC, SP), ``%08x`` (R), ``hi:…:lo`` for vector registers."""
    if name[0] in "QZPF" and name != "PC":
        return _value(raw.replace(":", ""), name, bits=2048)
    return _value(raw, name, (8,) if name[0] == "R" else (16,))


def _json_dump(file: str, first: int, last: int, obj: object) -> RegisterDump:
    """A dump from a JSON object: its register keys with integer or hex-string values."""
    if not isinstance(obj, dict):
        raise _Bad(f"JSON value of lines {first}-{last} is not an object")
    regs: dict[str, int] = {}
    for key, v in obj.items():
        name = key.strip().lower()
        if not _REG_KEY.fullmatch(name):
            continue
        width = _bits(name)
        if isinstance(v, str):
            regs[name] = _value(v.strip(), name, bits=width)
        elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << width:
            regs[name] = v
        else:
            raise _Bad(f"JSON: {key!r} is {v!r}, not a {width}-bit register value")
    if not regs:
        raise _Bad("JSON object has no register keys (a0-a7, x0-x30, w0-w30, r0-r15)")
    return RegisterDump(file, first, last, "json", _guess_arch(regs), regs)


def _csv_header(s: str) -> list[str | None] | None:
    """A CSV header naming register columns: the register name of each column (None for others)."""
    if not _CSV_HEADER.fullmatch(s):
        return None
    fields = [f.strip().strip('"').lower() for f in s.split(",")]
    columns = [f if _REG_KEY.fullmatch(f) else None for f in fields]
    return columns if any(c is not None and _ARG.fullmatch(c) for c in columns) else None


PARSERS = (RegdumpParser,)
