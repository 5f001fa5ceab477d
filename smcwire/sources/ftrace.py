"""Linux ftrace text: the optee tracepoints and SMC probe events (formats.md §1 and §2).

One event line is a context prefix, the event name and the event's text. Every prefix layout of
formats.md §1 is read, never by column:

- ``trace`` / ``trace_pipe`` (§1.2, kernel/trace/trace_output.c ``trace_print_context()``):
  ``%16s-%-7d`` (``%-5d`` before v5.10), optional TGID ``(%7d)``/``(-------)`` (``record-tgid``),
  ``[%03d]``, optional irq-info flags (4, 5 or more characters, digits and letters included),
  then `` %5lu.%06lu: `` or a counter clock's `` %12llu: ``;
- ``trace-cmd report`` (§1.3, tracecmd/trace-read.c): the same without flags, ``-l`` with the
  CPU glued to the latency flags (``%8.8s-%-5d %3d.....``), ``-t`` nanoseconds, ``--ts-diff``
  ``(+delta)`` columns, event names padded, ``<file>: `` tags when several files are read; header lines (``cpus=N``,
  ``version = N``, ``CPU N is empty``) and ``#`` lines are foreign;
- ``perf script`` (§1.4): ``comm pid[/tid] [cpu] secs.usecs: sys:event:``;
- Perfetto/systrace text (§1.5): the ``trace`` layout with TGID ``(-----)``;
- ``options/context-info`` off: the bare ``optee_invoke_fn_begin: …`` text, no context.

Events read (anything else, sched_switch to function and function_graph lines, is foreign):

- ``optee_invoke_fn_begin: param=<ptr> (a0, …, a7)`` → ``SmcCall`` (origin "tracepoint") and
  ``optee_invoke_fn_end: param=<ptr> ret (r0, r1, r2, r3)`` → ``SmcReturn`` (§2.1: hex without
  ``0x``, returns up to 64 bits); ``key`` is the ``param=`` text as printed (hashed, raw, or
  ``(____ptrval____)``).
- SMC probe events, whatever the user named them: a kprobe, kretprobe or fprobe event
  (kernel/trace/trace_kprobe.c ``print_kprobe_event()``/``print_kretprobe_event()``:
  ``<event>: (<site>) name=value …``, ``<site>`` being ``sym+off/size [mod]`` at entry and
  ``caller+off/size <- func`` on return; perf and trace-cmd print ``(<address>)``) whose fields
  are named as follows:

  - an entry with ``a0=`` … ``a7=`` (or ``x0=`` … ``x7=``) → ``SmcCall`` (origin "kprobe");
  - a return probe (``<-`` in the site) with ``r0=`` … ``r3=`` (or ``x0=`` … ``x3=``), up to
    ``r7=``/``x7=`` → ``SmcReturn`` (origin "kretprobe"), the entry's ``a0=``, ``a1=`` … it also
    fetched (``$argN``, Linux >= 6.12) as ``call_regs``; ``r0=`` … on an entry-style probe placed
    after the SMC instruction gives an ``SmcReturn`` of origin "kprobe".

  The probe must be on an SMC entry: its site or its event name names it (``optee_smccc_smc``,
  ``optee_smccc_hvc``, ``arm_smccc_smc``, ``smcw/…``); probes elsewhere are foreign whatever
  their fields. Other fields (``res=``) are ignored and ``key`` is None (model/events.py). A
  value is read as the kernel prints it: ``0x…`` hex for x types, decimal for u/s types (a value
  with hex letters and no ``0x`` is read as hex); probes should fetch with ``:x32``/``:x64``.
- ``CPU:N [LOST M EVENTS]`` (kernel/trace/trace.c ``print_trace_line()``) and trace-cmd's
  ``CPU:N [M EVENTS DROPPED]`` → ``LostEvents``.

A line naming an optee event, or a probe event with SMC register fields, that does not parse is
malformed, with the reason.

Speed: most lines of a real trace are other events, rejected by byte tests before any regex (every
event line of ours holds a ``(``; without one only markers and broken optee lines remain). An
optee line in the kernel's own layout is read by one regex; any other line goes the general way.
Task names, pointers and value lists repeat, so their conversions are memoised (bounded).
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import ClassVar

from ..model.events import LostEvents, SmcCall, SmcReturn
from ..model.memo import Memo
from .base import Malformed, Outcome, Parser

# An optee tracepoint line in the layout of ``trace``/``trace_pipe`` and the default trace-cmd report:
# the context up to "[cpu]" (read by _CONTEXT, memoised), irq-info flags, secs.usecs, the event
# (possessive quantifiers, Python >= 3.11: nothing to backtrack into, ~10% faster).
_OPTEE_LINE = re.compile(
    rb"([^\[]++\[\d++\]) ++(?:[.\w]{4,8} ++)?(\d++)\.(\d{6}): optee_invoke_fn_(begin|end): ++param=(\S++) (ret )?"
    rb"\(([^)]*+)\)$"
)
_CONTEXT = re.compile(rb"\s*(?:[^\s:]+: +)?(.+?)-(\d+) +(?:\((?: *(\d+)|-+)\) +)?\[(\d+)\]")
# Any event line: context prefix of every layout, [sys:]event name, body.
_EVENT_LINE = re.compile(
    rb"""^\s*(?:[^\s:]+:\ +)?                                      # trace-cmd <file>: tag
    (?:(?P<comm>.+?)-(?P<pid>\d+)\s+                               # %16s-%-7d (or %-5d)
       (?:\((?P<tgid>\ *\d+|-+)\)\s+)?                             # (%7d) / (-------)
       (?:\[(?P<cpu>\d+)\](?:\s+[.\w]{4,8}(?=\s))?                 # [%03d] irq-info flags
         |(?P<lcpu>\d+)[.A-Za-z][.\w]{3,7})                        # trace-cmd -l: %3d + flags
      |(?P<pcomm>\S.*?)\s+(?P<ppid>\d+)(?:/\d+)?\s+\[(?P<pcpu>\d+)\])  # perf: comm pid/tid [cpu]
    \s+(?P<secs>\d+)(?:\.(?P<frac>\d+))?:\s+                       # secs.usecs | secs.nsecs | count
    (?:\(\+\d+\)\s+)?                                              # trace-cmd --ts-diff: (+delta)
    (?:\w+:)?(?P<event>\w+):\s*(?P<body>.*)$                       # [sys:]event: body
    """,
    re.VERBOSE | re.DOTALL,
)
_BARE = re.compile(rb"^\s*(optee_invoke_fn_(?:begin|end)):\s*(.*)$", re.DOTALL)
_LOST = re.compile(
    rb"^\s*(?:[^\s:]+:\ +)?CPU:(\d+)\ \[(?:LOST\ (\d+)\ EVENTS|(\d+)\ EVENTS\ DROPPED"
    rb"|LOST\ EVENTS|EVENTS\ DROPPED)\]\s*$",
    re.VERBOSE,
)
_TRACECMD_HEADER = re.compile(rb"^\s*(?:[^\s:]+:\ +)?(?:cpus=\d+|version\ =\ \d+|CPU\ \d+\ is\ empty)\s*$", re.VERBOSE)
_PROBE = re.compile(rb"^\(([^()]*)\)(.*)$", re.DOTALL)
_FIELD = re.compile(rb"(\w+)=(\S*)")

_BEGIN = b"optee_invoke_fn_begin"
_END = b"optee_invoke_fn_end"
_HEX = repeat(16)  # int(value, 16) for each value of a list, however many
_NS_PAD = b"000000000"
_MASK64 = (1 << 64) - 1
_CALL_NAMES = tuple(tuple(f"{p}{i}".encode() for i in range(8)) for p in "ax")
_RET_NAMES = tuple(tuple(f"{p}{i}".encode() for i in range(8)) for p in "rx")

Context = tuple[int | None, int | None, int | None, int | None, str | None]  # ts, cpu, pid, tgid, task


def _task(comm: bytes) -> str | None:
    return None if comm == b"<...>" else comm.decode(errors="replace")  # <...>: comm cache miss


def _cpu_pid_tgid_task(context: bytes) -> tuple[int, int, int | None, str | None]:
    m = _CONTEXT.fullmatch(context)
    if m is None:
        raise ValueError(context)
    comm, pid, tgid, cpu = m.groups()
    return int(cpu), int(pid), int(tgid) if tgid else None, _task(comm)


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace")


def _hex_list(values: bytes) -> tuple[int, ...]:
    return tuple(map(int, values.split(b","), _HEX))


class FtraceParser(Parser):
    """ftrace, trace-cmd and perf text: optee tracepoints, SMC probe events, lost-event markers."""

    name: ClassVar[str] = "ftrace"

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.contexts = Memo(_cpu_pid_tgid_task)
        self.keys = Memo(_text)
        self.values = Memo(_hex_list)

    def feed(self, lineno: int, line: bytes) -> Outcome:
        if 40 in line:  # "(": every optee and probe event line has one (value list, probe site)
            if line.find(b"optee_") < 0 and line.find(b"0=") < 0:
                return None
            m = _OPTEE_LINE.match(line)
            if m is not None:
                out = self._kernel_layout(lineno, m)
                if out is not None:
                    return out
        elif (118 not in line or line.find(b"optee_invoke_fn_") < 0) and line[-1:] != b"]":
            # Without "(", only broken optee lines and lost-event markers (ending "]") can be ours;
            # a line without a "v" (118) cannot name optee_invoke_fn_, and a memchr is cheaper than a find.
            return None
        return self._general(lineno, line)

    def _kernel_layout(self, lineno: int, m: re.Match[bytes]) -> Outcome:
        """The fast path; None when a field is irregular, for the general path to read or explain."""
        context, secs, usecs, which, key, ret, values = m.groups()
        if (ret is None) != (which == b"begin"):
            return None
        try:
            regs = self.values[values]
            cpu, pid, tgid, task = self.contexts[context]
        except ValueError:
            return None
        ts = int(secs + usecs) * 1000
        if which == b"begin":
            if len(regs) == 8:
                return (SmcCall(self.file, lineno, ts, cpu, pid, tgid, task, regs, self.keys[key]),)
        elif len(regs) == 4:
            return (SmcReturn(self.file, lineno, ts, cpu, pid, tgid, task, regs, self.keys[key]),)
        return None

    def _general(self, lineno: int, line: bytes) -> Outcome:
        m = _EVENT_LINE.match(line)
        if m is None:
            return self._unprefixed(lineno, line)
        event, body = m["event"], m["body"]
        if event == _BEGIN or event == _END:
            return self._tracepoint(lineno, self._context(m), event, body)
        if body[:1] == b"(" and b"0=" in body:
            return self._probe(lineno, m, event, body)
        return None

    def _tracepoint(self, lineno: int, ctx: Context, event: bytes, body: bytes) -> Outcome:
        """``param=<ptr> (a0, …, a7)`` or ``param=<ptr> ret (r0, …, r3)`` (formats.md §2.1)."""
        name = event.decode()
        if body[:6] != b"param=":
            return Malformed(f"{name}: no 'param=' field")
        begin = event == _BEGIN
        key, sep, values = body[6:].partition(b" (" if begin else b" ret (")
        if not sep:
            return Malformed(f"{name}: no {'(' if begin else 'ret ('}…) value list")
        values = values.rstrip()
        if values[-1:] != b")":
            return Malformed(f"{name}: value list not closed (truncated line?)")
        try:
            regs = self.values[values[:-1]]
        except ValueError:
            return Malformed(f"{name}: a value is not hexadecimal in ({values.decode(errors='replace')}")
        if begin and len(regs) == 8:
            return (SmcCall(self.file, lineno, *ctx, regs, self.keys[key]),)
        if not begin and len(regs) == 4:
            return (SmcReturn(self.file, lineno, *ctx, regs, self.keys[key]),)
        what, expected = ("arguments", 8) if begin else ("return values", 4)
        return Malformed(f"{name}: {len(regs)} {what}, expected {expected}")

    def _probe(self, lineno: int, m: re.Match[bytes], event: bytes, body: bytes) -> Outcome:
        """A kprobe/kretprobe/fprobe event whose fields hold SMC registers (see the module doc)."""
        probe = _PROBE.match(body)
        if probe is None:
            return None
        if _SMC_SITE.search(probe[1]) is None and _SMC_SITE.search(event) is None:
            return None  # another probe (do_sys_openat2, vfs_read…): not an SMC, whatever its fields
        fields = dict(_FIELD.findall(probe[2]))
        is_return = b" <- " in probe[1]
        name = event.decode(errors="replace")
        try:
            if is_return or b"r0" in fields:
                ret = _registers(fields, _RET_NAMES[0] if b"r0" in fields else _RET_NAMES[1])
                if ret is None:
                    if b"a0" not in fields:
                        return None
                    return Malformed(f"{name}: return probe with a0= but no r0= result fields")
                if len(ret) < 4:
                    return Malformed(f"{name}: result registers 0..3 expected, only {len(ret)} found")
                call = _registers(fields, _CALL_NAMES[0]) or ()
                origin = "kretprobe" if is_return else "kprobe"
                return (SmcReturn(self.file, lineno, *self._context(m), ret, None, origin, call),)
            regs = _registers(fields, _CALL_NAMES[0]) or _registers(fields, _CALL_NAMES[1])
        except ValueError as e:
            return Malformed(f"{name}: {e}")
        if regs is None:
            return None
        if len(regs) != 8:
            return Malformed(f"{name}: SMC arguments 0..7 expected, only {len(regs)} found")
        return (SmcCall(self.file, lineno, *self._context(m), regs, None, "kprobe"),)

    def _unprefixed(self, lineno: int, line: bytes) -> Outcome:
        """Lost-event markers, context-info-less optee lines, and broken optee lines."""
        lost = _LOST.match(line)
        if lost is not None:
            count = lost[2] or lost[3]
            return (LostEvents(self.file, lineno, int(lost[1]), int(count) if count else None),)
        bare = _BARE.match(line)
        if bare is not None:
            return self._tracepoint(lineno, (None, None, None, None, None), bare[1], bare[2])
        for event in (_BEGIN, _END):
            if event + b": " in line:
                return Malformed(f"{event.decode()}: no ftrace context (task-pid [cpu] timestamp:) before the event")
        return None

    def _context(self, m: re.Match[bytes]) -> Context:
        """Timestamp (ns, or the raw count of a counter clock), CPU, pid, TGID and task of a line."""
        comm, pid, tgid, cpu, lcpu, pcomm, ppid, pcpu, secs, frac, _, _ = m.groups()
        if comm is None:
            comm, pid, cpu = pcomm, ppid, pcpu
        elif cpu is None:
            cpu = lcpu
        ts = int(secs) * 1_000_000_000 + int((frac + _NS_PAD)[:9]) if frac is not None else int(secs)
        return ts, int(cpu), int(pid), int(tgid) if tgid is not None and tgid[-1:] != b"-" else None, _task(comm)

    @classmethod
    def sniff(cls, head: list[bytes]) -> int:
        """Certain for a ``# tracer:`` header, a trace-cmd header or a head of event lines; low for a
        console capture, where the parser still claims the ftrace lines it is offered."""
        lines = [x for x in head if x.strip()]
        if not lines:
            return 0
        if lines[0].startswith(b"# tracer:"):
            return 100
        ours = signal = 0
        for x in lines:
            if x.lstrip().startswith(b"#"):
                ours += 1
            elif _TRACECMD_HEADER.match(x) or _EVENT_LINE.match(x) or _LOST.match(x):
                ours += 1
                signal += 1
        if signal and ours >= len(lines) - 1:  # one line may be cut: trace_pipe starts mid-stream
            return 95
        return 10 if signal else 0


def _registers(fields: dict[bytes, bytes], names: tuple[bytes, ...]) -> tuple[int, ...] | None:
    """The values of ``names[0]``, ``names[1]`` … up to the first missing one; None if none is there."""
    out = []
    for name in names:
        value = fields.get(name)
        if value is None:
            break
        out.append(_probe_value(name, value))
    return tuple(out) if out else None


# a probe on an SMC entry: its site (optee_smccc_smc/hvc, arm_smccc_smc…) or its event name says so
_SMC_SITE = re.compile(rb"smccc|smc_call|_smc\b|\bsmc")


def _probe_value(name: bytes, value: bytes) -> int:
    """A probe field as the kernel prints it (trace_probe.c print_type_*): ``0x…`` for x types,
    decimal for u/s types."""
    try:
        if value[:2] == b"0x":
            return int(value, 16)
        return int(value) & _MASK64 if value.lstrip(b"-").isdigit() else int(value, 16)
    except ValueError:
        raise ValueError(f"{name.decode()}={value.decode(errors='replace')} is not a register value") from None


PARSERS = (FtraceParser,)
