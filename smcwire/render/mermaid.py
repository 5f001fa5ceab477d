"""Call flows as Mermaid sequence diagrams (``sequenceDiagram``), as GitHub renders them in Markdown.

Participants, left to right: tee-supplicant (when a flow has an RPC CMD), the Linux task that made
the call (``task-pid``: the optee driver runs in its context), TF-A (EL3), OP-TEE (fast calls, and
yielding calls before OP-TEE names their thread) and ``OP-TEE thread N`` for each thread id seen
(a3 of an RPC request or of a RETURN_FROM_RPC, abi.md §4).

Every SMC traps to TF-A, whose dispatcher (opteed) passes the OP-TEE owner range on and returns
OP-TEE's answer unchanged: arrows go from the task to the function's server (OP-TEE, or TF-A for
the functions of other owners) and back, across TF-A's lifeline. Solid arrows are requests (a call,
an RPC request from OP-TEE), dotted ones answers (a result, ETHREAD_LIMIT, RETURN_FROM_RPC). Each is
labelled with its time from the flow's first call, the decoded function or status and its fields.

Mermaid text: a message runs to the first ``#``, ``;`` or end of line, and Mermaid decodes entity
codes (``#59;``) before it draws; every text written here goes through ``mermaid_text``. GitHub
refuses diagrams over 50,000 characters: ``max_rpcs`` and ``limit`` keep them small.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable

from ..abi import smccc
from ..abi.optee import OPTEE_SMC_RETURN_ETHREAD_LIMIT, OPTEE_SMC_RPC_FUNC_CMD
from ..codec.decode import Return
from ..flows.model import Finding, Flow, RpcTrip, Step
from ..flows.tracker import RETURN_FROM_RPC
from ..rules.catalog import RULES_BY_ID
from .flows import _dur, _fields, _secs

MAX_RPCS = 12  # RPC round trips drawn per flow by default: the first half and the last half
NOTE_WIDTH = 64  # characters per line of a note
MAX_FINDING = 200  # characters of a finding's message kept in its note

SUPPLICANT, TFA, OPTEE = "SUPP", "EL3", "OPTEE"  # participant ids; tasks are D1, D2…, threads T0, T1…

# characters Mermaid's sequenceDiagram parser or its HTML labels would take as syntax: # and ; end
# a message, %%{ starts a directive, < > & " are HTML, ` ends a Markdown fence
_ENTITIES = {ord(c): f"#{ord(c)};" for c in "#;%<>&`\""}


def mermaid_text(text: str) -> str:
    """``text`` as a Mermaid label: syntax characters as entity codes, control characters as spaces.

    Mermaid's ``encodeEntities`` drops the last ``;`` of a line that holds ``style…:…#…;`` or
    ``classDef…:…#…;`` (its own style statements): those words get an entity code too."""
    out = text.translate(_ENTITIES)
    out = "".join(c if c.isprintable() else " " for c in out)  # line breaks would end the statement
    out = out.replace("style", "#115;tyle").replace("classDef", "#99;lassDef")
    if out.lstrip().startswith(("wrap:", "nowrap:")):  # Mermaid's prefix that sets wrapping, taken away
        out = out.replace(":", "#58;", 1)
    return out


def short_name(name: str) -> str:
    """``OPTEE_SMC_CALL_WITH_ARG`` → ``CALL_WITH_ARG``, ``OPTEE_SMC_RPC_FUNC_ALLOC`` → ``RPC ALLOC``,
    ``OPTEE_SMC_CALL_RETURN_FROM_RPC`` → ``RETURN_FROM_RPC``."""
    return (name.replace("OPTEE_SMC_RPC_FUNC_", "RPC ")
            .replace("OPTEE_SMC_CALL_RETURN_FROM_RPC", "RETURN_FROM_RPC").replace("OPTEE_SMC_", ""))


def _answer_text(answer: Return) -> str:
    """A final answer: its status name, or its fields when a0 is a value (UID word, revision…)."""
    if answer.layout.slots and answer.layout.slots[0].name != "status":
        return _fields(answer.fields)
    return short_name(answer.status_name) if answer.status_name else f"status {answer.status:#x}"


def _rpc_text(trip: RpcTrip) -> str:
    name = short_name(trip.function) if trip.function else f"RPC {0xFFFF0000 | trip.func:#x}"
    fields = _fields({k: v for k, v in trip.fields.items() if k != "thread_id"})
    return f"{name} {fields}".rstrip()


def _call_text(step: Step) -> str:
    decoded = step.decoded
    if decoded is None:
        return "(call not decoded)"
    name = short_name(decoded.name) if decoded.name else f"{decoded.regs[0] & 0xFFFFFFFF:#010x}"
    fields = _fields({k: v for k, v in decoded.fields.items() if k != "thread_id"})
    return f"{name} {fields}".rstrip()


def _wrapped(text: str) -> str:
    """A note's text, escaped, its lines (``\\n``) cut at ``NOTE_WIDTH`` characters."""
    lines = [cut for line in text.split("\n")
             for cut in textwrap.wrap(line, NOTE_WIDTH, break_long_words=False, break_on_hyphens=False)]
    return "<br/>".join(mermaid_text(line) for line in lines) or "-"


def _finding_text(finding: Finding, file: str) -> str:
    rule = RULES_BY_ID.get(finding.rule)
    message = finding.message.replace(f"{file}:", "line ")  # the flow's own file is the header's
    if len(message) > MAX_FINDING:
        message = message[:MAX_FINDING].rsplit(" ", 1)[0] + " ..."
    return f"{finding.rule} {finding.severity}{' ' + rule.name if rule else ''}: {message}"


class _Diagram:
    """The participants used so far and the statements that use them."""

    def __init__(self) -> None:
        self.tasks: dict[str, str] = {}  # label -> participant id, in order of appearance
        self.used: set[str] = set()
        self.lines: list[str] = []
        self.cmd_legend = False

    def task(self, flow: Flow) -> str:
        label = f"{flow.task or '?'}-{flow.pid if flow.pid is not None else '?'}"
        return self.tasks.setdefault(label, f"D{len(self.tasks) + 1}")

    def rank(self, participant: str) -> tuple[int, int]:
        """Left-to-right position: user space, tasks, TF-A, OP-TEE, its threads by id."""
        if participant.startswith("T") and participant[1:].isdigit():
            return 4, int(participant[1:])
        tasks = list(self.tasks.values())
        if participant in tasks:
            return 1, tasks.index(participant)
        return {SUPPLICANT: 0, TFA: 2, OPTEE: 3}[participant], 0

    def arrow(self, source: str, arrow: str, target: str, text: str) -> None:
        if SUPPLICANT in (source, target) and not self.cmd_legend:
            self.cmd_legend = True
            self.note(SUPPLICANT, source if target == SUPPLICANT else target, _CMD_LEGEND)
        self.used.update((source, target))
        self.lines.append(f"    {source}{arrow}{target}: {mermaid_text(text)}")

    def note(self, first: str, last: str, text: str) -> None:
        self.used.update((first, last))
        over = first if first == last else f"{first},{last}"
        self.lines.append(f"    Note over {over}: {_wrapped(text)}")

    def header(self, title: str | None) -> list[str]:
        labels = {SUPPLICANT: "tee-supplicant", TFA: "TF-A (EL3)", OPTEE: "OP-TEE"}
        labels |= {pid: f"{label} (Linux)" for label, pid in self.tasks.items()}
        labels |= {p: f"OP-TEE thread {p[1:]}" for p in self.used if self.rank(p)[0] == 4}
        head = ["sequenceDiagram"] + ([f"    title {mermaid_text(title)}"] if title else [])
        return head + [f"    participant {p} as {mermaid_text(labels[p])}" for p in sorted(self.used, key=self.rank)]


# An RPC CMD's command (OPTEE_RPC_CMD_*) is in the optee_msg_arg in shared memory, not in the
# registers. Linux serves GET_TIME, NOTIFICATION (WAIT_QUEUE), SUSPEND, I2C_TRANSFER and kernel
# SHM_ALLOC/FREE in the driver (rpc.c, smc_abi.c) and queues the others (LOAD_TA, FS, RPMB, SOCKET,
# application SHM...) for tee-supplicant (abi.md §4). The dotted open arrows to tee-supplicant after
# an RPC CMD are that hand-off, which the register trace cannot confirm for a given CMD.
_CMD_LEGEND = ("RPC CMD: the driver serves GET_TIME, NOTIFICATION, SUSPEND, I2C and kernel SHM itself and "
               "hands the other commands (LOAD_TA, FS, RPMB...) to tee-supplicant. The command is not in "
               "the registers: dotted arrows")

# (index of the RPC round trip it belongs to or None, source, arrow ("" for a note), target, text)
Item = tuple[int | None, str, str, str, str]


def _thread(tid: int | None) -> str:
    return OPTEE if tid is None else f"T{tid}"


def _served_by(step: Step) -> tuple[str, str]:
    """The participants that take the step's call and give its answer: TF-A for functions of other
    owners than the Trusted OS; the OP-TEE thread of a3 in a RETURN_FROM_RPC or an RPC request;
    OP-TEE for the rest (fast calls, ETHREAD_LIMIT, yielding calls OP-TEE never named a thread for)."""
    decoded, answer = step.decoded, step.answer
    rpc_thread = answer.fields.get("thread_id") if answer is not None and answer.is_rpc else None
    if step.call is not None and step.call.regs[0] & 0xFFFFFFFF == RETURN_FROM_RPC and decoded is not None:
        into = _thread(decoded.fields.get("thread_id"))
    elif decoded is not None and not (
            smccc.ARM_SMCCC_OWNER_TRUSTED_OS <= decoded.fid.owner <= smccc.ARM_SMCCC_OWNER_TRUSTED_OS_END):
        into = TFA
    else:
        into = _thread(rpc_thread)  # a call OP-TEE answers with an RPC runs on that thread
    return into, into if rpc_thread is None else _thread(rpc_thread)


def _items(flow: Flow, task: str) -> list[Item]:
    """The flow's arrows and retry notes in order, each tagged with its RPC round trip's index."""
    times = [e.ts for s in flow.steps for e in (s.call, s.ret) if e is not None and e.ts is not None]
    base = min(times) if times else None

    def at(ts: int | None) -> str:
        return f"+{(ts - base) / 1e6:.3f} ms " if ts is not None and base is not None else ""

    requests = {id(t.request): i for i, t in enumerate(flow.rpcs)}
    replies = {id(t.reply): i for i, t in enumerate(flow.rpcs) if t.reply is not None}
    items: list[Item] = []
    retry = 0
    for n, step in enumerate(flow.steps):
        into, back = _served_by(step)
        if step.call is not None:
            reply = replies.get(id(step))
            again = f"retry {retry}: " if retry and reply is None else ""
            items.append((reply, task, "-->>" if reply is not None else "->>", into,
                          f"{at(step.call.ts)}{again}{_call_text(step)}"))
        answer = step.answer
        if step.ret is None or answer is None:
            continue
        request = requests.get(id(step))
        if request is not None:
            trip = flow.rpcs[request]
            items.append((request, back, "->>", task, f"{at(step.ret.ts)}{_rpc_text(trip)}"))
            if trip.func == OPTEE_SMC_RPC_FUNC_CMD:
                items.append((request, task, "--)", SUPPLICANT, "if a user-space command"))
                if trip.reply is not None:
                    items.append((request, SUPPLICANT, "--)", task, "reply"))
            continue
        items.append((None, back, "-->>", task, f"{at(step.ret.ts)}{_answer_text(answer)}"))
        if answer.status == OPTEE_SMC_RETURN_ETHREAD_LIMIT and n + 1 < len(flow.steps):
            retry += 1
            following = flow.steps[n + 1].call
            wait = (following.ts - step.ret.ts if following is not None and following.ts is not None
                    and step.ret.ts is not None else None)
            items.append((None, task, "", into, f"no free OP-TEE thread: the driver waits {_dur(wait)}, then "
                                                f"retries the same call (retry {retry} of {flow.retries})"))
    return items


def _left_out(flow: Flow, hidden: range) -> str:
    """The note in place of the RPC round trips not drawn: how many, of which function, when."""
    trips = [flow.rpcs[i] for i in hidden]
    counts = Counter(short_name(t.function) if t.function else f"RPC {0xFFFF0000 | t.func:#x}" for t in trips)
    base, start = flow.start, trips[0].request.end
    end = trips[-1].reply.start if trips[-1].reply is not None else None
    span = (f" (+{(start - base) / 1e6:.3f} ms to +{(end - base) / 1e6:.3f} ms)"
            if base is not None and start is not None and end is not None else "")
    return (f"... {len(trips)} RPC round trips left out{span}: "
            + ", ".join(f"{name} x{k}" for name, k in counts.most_common()))


def _flow(d: _Diagram, flow: Flow, findings: list[Finding], max_rpcs: int | None) -> None:
    """Draws one flow: a note with when and where, its arrows (the middle RPC round trips of a long
    flow left out), the ETHREAD_LIMIT waits, whether it is incomplete, and its findings."""
    task = d.task(flow)
    items = _items(flow, task)
    hidden = range(0)
    if max_rpcs is not None and len(flow.rpcs) > max_rpcs:
        hidden = range((max_rpcs + 1) // 2, len(flow.rpcs) - max_rpcs // 2)
    reached = [p for trip, source, _, target, _ in items if trip not in hidden for p in (source, target)]
    far = max(reached or [OPTEE], key=d.rank)
    if far == task:
        far = OPTEE
    length = f"{_dur(flow.duration)} (secure {_dur(flow.secure_ns)}, normal world {_dur(flow.normal_ns)})"
    d.note(task, far, f"#{flow.index} {short_name(flow.function or 'unknown function')} at {_secs(flow.start)} s, "
                      f"CPU {','.join(map(str, flow.cpus)) or '?'}\n{length}\n{flow.file}:{flow.first_line}")
    elided = False
    for trip, source, arrow, target, text in items:
        if trip in hidden:
            if not elided:
                elided = True
                d.note(task, far, _left_out(flow, hidden))
        elif arrow:
            d.arrow(source, arrow, target, text)
        else:
            d.note(source, target, text)
    if flow.incomplete:
        result = flow.result
        d.note(task, far, f"incomplete ({flow.incomplete}): " + (
            f"ends with {_answer_text(result)}" if result is not None else "the capture holds no final result"))
    for finding in findings:
        d.note(task, far, _finding_text(finding, flow.file))


def sequence_diagram(flows: Iterable[tuple[Flow, list[Finding]]], title: str | None = None, *,
                     limit: int | None = None, max_rpcs: int | None = MAX_RPCS) -> str:
    """A Mermaid ``sequenceDiagram`` of the flows, each with its findings (``Finding`` objects).

    ``limit`` draws only the first flows and reads the rest to say how many were left out;
    ``max_rpcs`` draws the first and last RPC round trips of a longer flow and a note for the
    others (None: all)."""
    d = _Diagram()
    d.note(TFA, TFA, "every SMC traps to TF-A, which passes OP-TEE's calls on")
    drawn = more = 0
    for flow, findings in flows:
        if limit is not None and drawn >= limit:
            more += 1
            continue
        _flow(d, flow, findings, max_rpcs)
        drawn += 1
    if not drawn:
        d.note(TFA, TFA, "no flow to show")
    if more:
        order = sorted(d.used - {SUPPLICANT}, key=d.rank)
        d.note(order[0], order[-1], f"{more} more flow{'s' if more > 1 else ''} left out")
    return "\n".join(d.header(title) + d.lines) + "\n"


def markdown_block(diagram: str) -> str:
    """A diagram as a fenced ```` ```mermaid ```` block (labels never hold a backtick)."""
    return f"```mermaid\n{diagram.rstrip()}\n```\n"
