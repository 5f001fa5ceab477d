"""Events: one immutable record per thing a trace says.

Every event carries the file and the (first) line it came from; the other fields are set where
the source knows them. Events are NamedTuples (small, fast to create, immutable); the ``KIND``
property names the kind in JSON output and counts.

Conventions:
- ``ts`` is nanoseconds as the source prints it (ftrace ``secs.usecs`` x 1000; a kernel-log
  ``[secs.usecs]``), or the raw count for counter trace clocks; None when the line has none.
- ``regs`` of an SMC entry is a0..a7 (8 values) and of a return a0..a3 (or more) as the source
  prints them, full width (a return may hold 64-bit values).
- ``key`` pairs an SMC entry with its return and links a yielding call's RPC round trips: the
  optee tracepoints' ``param=`` pointer; None where the source has no such key (kprobes).
- ``data`` holds what a message says in named values (e.g. ``{"major": 4, "minor": 10}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class SmcCall(NamedTuple):
    """An SMC entry: a0..a7 as the normal world issued them."""

    file: str
    line: int
    ts: int | None
    cpu: int | None
    pid: int | None
    tgid: int | None
    task: str | None
    regs: tuple[int, ...]
    key: str | None = None
    origin: str = "tracepoint"  # "tracepoint" (optee_invoke_fn_begin) or "kprobe"

    @property
    def KIND(self) -> str:  # noqa: N802 - a constant of the class
        return "smc_call"


class SmcReturn(NamedTuple):
    """An SMC return: a0..a3 (or more) as the normal world received them."""

    file: str
    line: int
    ts: int | None
    cpu: int | None
    pid: int | None
    tgid: int | None
    task: str | None
    regs: tuple[int, ...]
    key: str | None = None
    origin: str = "tracepoint"  # "tracepoint" (optee_invoke_fn_end), "kretprobe", or "kprobe" (after the smc)
    call_regs: tuple[int, ...] = ()  # entry registers a return probe also fetched (Linux >= 6.12)

    @property
    def KIND(self) -> str:  # noqa: N802 - a constant of the class
        return "smc_return"


class LostEvents(NamedTuple):
    """``CPU:N [LOST M EVENTS]``: the ring buffer overran; flows across it are incomplete."""

    file: str
    line: int
    cpu: int | None
    lost: int | None  # events lost, when the marker says

    @property
    def KIND(self) -> str:  # noqa: N802 - a constant of the class
        return "lost_events"


class DriverMessage(NamedTuple):
    """A kernel-log line of the OP-TEE driver (``optee: …``), with what it tells."""

    file: str
    line: int
    ts: int | None
    text: str
    what: str  # e.g. "revision", "dynamic_shm", "uid_mismatch", "probe_failed", "unknown_rpc"
    data: Mapping[str, int | str]

    @property
    def KIND(self) -> str:  # noqa: N802 - a constant of the class
        return "driver_message"


class TfaMessage(NamedTuple):
    """A TF-A console line (``NOTICE:  BL31: …``)."""

    file: str
    line: int
    level: str  # ERROR, NOTICE, WARNING, INFO, VERBOSE, or "" for prefix-less prints
    text: str
    what: str  # e.g. "message", "opteed_no_bl32", "unimplemented_smc", "smc_fid"
    data: Mapping[str, int | str]

    @property
    def KIND(self) -> str:  # noqa: N802 - a constant of the class
        return "tfa_message"


class OpteeMessage(NamedTuple):
    """An OP-TEE console line (``D/TC:0 0 func:123 text``), with the prefix split."""

    file: str
    line: int
    level: str  # E, I, D, F, M (or the long pre-3.0 words)
    origin: str  # TC, LD, TA, …
    guest: int | None
    core: int | None  # None when unknown ("?") or not printed
    thread: int | None
    func: str | None
    func_line: int | None
    text: str
    what: str  # e.g. "message", "unknown_smc", "bad_arg_address", "capability"
    data: Mapping[str, int | str]

    @property
    def KIND(self) -> str:  # noqa: N802 - a constant of the class
        return "optee_message"


class RegisterDump(NamedTuple):
    """A set of named registers from one dump (gdb, QEMU, oops, crash dump, hand-written…)."""

    file: str
    line: int  # first line of the dump
    last_line: int
    origin: str  # e.g. "tfa_crash", "optee_abort", "linux_arm64_oops", "gdb", "qemu", "pairs", "json", "csv"
    arch: str | None  # "aarch64", "arm32" or None when it cannot tell
    regs: Mapping[str, int]  # register name as printed, lower case -> value

    @property
    def KIND(self) -> str:  # noqa: N802 - a constant of the class
        return "register_dump"


class BootMilestone(NamedTuple):
    """A boot step: TF-A BL31 initialising BL32, OP-TEE's version banner, switch to normal world…"""

    file: str
    line: int
    ts: int | None
    stage: str  # e.g. "bl31_init_bl32", "bl32_init_failed", "optee_version", "optee_to_normal_world"
    text: str
    data: Mapping[str, int | str]

    @property
    def KIND(self) -> str:  # noqa: N802 - a constant of the class
        return "boot_milestone"


Event = SmcCall | SmcReturn | LostEvents | DriverMessage | TfaMessage | OpteeMessage | RegisterDump | BootMilestone
EVENT_TYPES: tuple[type, ...] = (SmcCall, SmcReturn, LostEvents, DriverMessage, TfaMessage, OpteeMessage,
                                 RegisterDump, BootMilestone)
KINDS = ("smc_call", "smc_return", "lost_events", "driver_message", "tfa_message", "optee_message",
         "register_dump", "boot_milestone")
KIND_OF: dict[type, str] = dict(zip(EVENT_TYPES, KINDS, strict=True))  # event type -> its KIND
