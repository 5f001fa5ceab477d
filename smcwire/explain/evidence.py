"""What one capture shows, indexed for the explanations: the SMC answers and calls the tracker
recorded, the driver's kernel-log lines, TF-A and OP-TEE console lines and boot milestones, and
how a reason cites them (``ftrace.txt:20``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from ..abi import msg
from ..abi.optee import OPTEE_SMC_RETURN_UNKNOWN_FUNCTION, SPECIAL_RETURNS
from ..abi.profiles import Profile
from ..flows.state import TraceState, Where
from ..model.events import BootMilestone, DriverMessage, OpteeMessage, TfaMessage

OPTEE_UID = (msg.OPTEE_MSG_UID_0, msg.OPTEE_MSG_UID_1, msg.OPTEE_MSG_UID_2, msg.OPTEE_MSG_UID_3)
# why a probe ends (smc_abi.c optee_probe), by the kind of the driver line or of the answer that shows it
PROBE_FAILURES = {
    "no_optee": "no OP-TEE behind the monitor",
    "no_shm": "OP-TEE offers no shared memory at all",
    "method_missing": "the device tree's OP-TEE node names no SMC conduit",
    "method_invalid": "the device tree's OP-TEE node names an invalid SMC conduit",
    "image_load_failed": "loading OP-TEE from the kernel failed",
    "uid_mismatch": "the SMC conduit did not answer with OP-TEE's API UID",
    "api_revision_mismatch": "OP-TEE's API revision is not 2.x",
    "capabilities_mismatch": "EXCHANGE_CAPABILITIES failed",
    "static_shm_unavailable": "there is no dynamic shared memory and OP-TEE gave no reserved shared memory",
    "static_shm_not_cached": "the reserved shared memory is not normal cached memory",
    "static_shm_ioremap_failed": "the reserved shared memory could not be mapped",
    "get_devices_failed": "enumerating the OP-TEE bus devices failed",
    "probe_failed": "the driver probe failed",
}
_VERSION = re.compile(r"(\d+)\.(\d+)")


def refs(*wheres: Where) -> str:
    """``ftrace.txt:20``, ``ftrace.txt:20, 22`` for several lines of one file."""
    parts: list[str] = []
    last = None
    for file, line in wheres:
        name = PurePath(file).name
        parts.append(f"{line}" if name == last else f"{name}:{line}")
        last = name
    return ", ".join(parts)


def short(name: str | None) -> str:
    """A header name without its ``OPTEE_SMC_`` / ``OPTEE_SMC_RETURN_`` prefix."""
    return (name or "?").removeprefix("OPTEE_SMC_RETURN_").removeprefix("OPTEE_SMC_")


def status_text(status: int, name: str | None) -> str:
    """A result as a reason names it: ``ENOTAVAIL``, ``0xffffffff (SMC_UNK)``…"""
    if status == OPTEE_SMC_RETURN_UNKNOWN_FUNCTION:
        return "0xffffffff (SMC_UNK)"
    if status in SPECIAL_RETURNS:
        return f"{status:#x} ({SPECIAL_RETURNS[status]})"
    return short(name) if name else f"{status:#x}"


def body(message: DriverMessage) -> str:
    """A driver line without its ``optee[ device]:`` prefix."""
    return message.text.split(": ", 1)[-1]


@dataclass(frozen=True, slots=True)
class Answer:
    """A function's latest answer: a0 (its status, or the first value it returns), fields, where."""

    status: int
    name: str | None
    fields: dict[str, int]
    where: Where

    @property
    def ok(self) -> bool:
        return self.fields.get("status") == 0


@dataclass(frozen=True, slots=True)
class Revision:
    """OP-TEE's OS version and the line that shows it."""

    major: int
    minor: int
    where: Where

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


class Evidence:
    """The facts of one capture, by kind; every lookup gives the line that shows it."""

    def __init__(self, state: TraceState, profile: Profile) -> None:
        self.state = state
        self.profile = profile
        self.driver: dict[str, DriverMessage] = {}
        self.tfa: dict[str, TfaMessage] = {}
        self.optee_caps: dict[str, OpteeMessage] = {}
        self.milestones: dict[str, BootMilestone] = {}
        for m in state.messages:
            if isinstance(m, DriverMessage):
                self.driver.setdefault(m.what, m)
            elif isinstance(m, TfaMessage):
                self.tfa.setdefault(m.what, m)
            elif m.what == "capability":
                self.optee_caps.setdefault(str(m.data["capability"]), m)
        for e in state.other:
            if isinstance(e, BootMilestone):
                self.milestones.setdefault(e.stage, e)

    # --- SMCs -------------------------------------------------------------------------------
    def answer(self, name: str) -> Answer | None:
        found = self.state.answers.get(name)
        if found is None:
            return None
        status_name, fields, where = found
        status = fields["status"] if "status" in fields else next(iter(fields.values()), 0)
        return Answer(status, status_name, fields, where)

    def called(self, name: str) -> Where | None:
        return self.state.calls_seen.get(name)

    def cap(self, name: str) -> int | None:
        """The bit of ``OPTEE_SMC_SEC_CAP_<name>`` in this profile, None if it has no such bit."""
        return self.profile.sec_caps.flags.get(f"OPTEE_SMC_SEC_CAP_{name}")

    def caps_have(self, name: str) -> bool | None:
        """Whether the negotiated SEC caps hold a bit; None when they are not in the capture."""
        bit = self.cap(name)
        if self.state.sec_caps is None or bit is None:
            return None
        return bool(self.state.sec_caps.value & bit)

    def caps_text(self, name: str) -> str:
        """``sec caps 0xf5 have DYNAMIC_SHM (0x4)`` / ``… lack …`` (``caps_where`` shows it)."""
        facts = self.state.sec_caps
        assert facts is not None
        bit = self.cap(name) or 0
        return f"sec caps {facts.value:#x} {'have' if facts.value & bit else 'lack'} {name} ({bit:#x})"

    @property
    def caps_where(self) -> tuple[Where, ...]:
        return tuple(self.state.sec_caps.evidence) if self.state.sec_caps is not None else ()

    def probe_breaks(self) -> list[tuple[str, str, Where]]:
        """The answers that end a Linux probe, in probe order: (PROBE_FAILURES kind, what the answer
        was, where)."""
        out = []
        uid = self.answer("OPTEE_SMC_CALLS_UID")
        if uid is not None and tuple(uid.fields.get(f"uid_{i}") for i in range(4)) != OPTEE_UID:
            unknown = uid.status == OPTEE_SMC_RETURN_UNKNOWN_FUNCTION
            shown = status_text(uid.status, None) if unknown else "-".join(f"{v:08x}" for v in uid.fields.values())
            out.append(("no_optee" if unknown else "uid_mismatch", f"CALLS_UID returned {shown}", uid.where))
        revision = self.answer("OPTEE_SMC_CALLS_REVISION")
        if revision is not None and revision.fields.get("major") != 2:
            api = f"{revision.fields.get('major')}.{revision.fields.get('minor')}"
            out.append(("api_revision_mismatch", f"CALLS_REVISION returned API {api}", revision.where))
        exchange, nsec = self.answer("OPTEE_SMC_EXCHANGE_CAPABILITIES"), self.state.nsec_caps
        if exchange is not None and not exchange.ok:
            status = status_text(exchange.status, exchange.name)
            if nsec is not None and nsec.value & ~1:
                status += f" to normal-world caps {nsec.value:#x}, of which only bit 0 is defined"
            out.append(("capabilities_mismatch", f"EXCHANGE_CAPABILITIES returned {status}", exchange.where))
        elif self.caps_have("DYNAMIC_SHM") is False and self.caps_have("HAVE_RESERVED_SHM") is False:
            out.append(("no_shm", f"{self.caps_text('DYNAMIC_SHM')} and HAVE_RESERVED_SHM", self.caps_where[0]))
        shm = self.answer("OPTEE_SMC_GET_SHM_CONFIG")
        if shm is not None and not shm.ok:
            out.append(("static_shm_unavailable", f"GET_SHM_CONFIG returned {status_text(shm.status, shm.name)}",
                        shm.where))
        return out

    @property
    def probe_window(self) -> tuple[Where, Where] | None:
        """CALLS_REVISION and EXCHANGE_CAPABILITIES, when the capture has both: the probe's fast calls
        between which Linux >= 6.8 asks GET_THREAD_COUNT."""
        revision = self.called("OPTEE_SMC_CALLS_REVISION")
        exchange = self.called("OPTEE_SMC_EXCHANGE_CAPABILITIES")
        return (revision, exchange) if revision and exchange else None

    # --- what the consoles say ---------------------------------------------------------------
    @property
    def probe_failure(self) -> DriverMessage | None:
        """The driver line that ended a probe, unless a later probe in the same log succeeded."""
        failed = [m for what, m in self.driver.items() if what in PROBE_FAILURES]
        if not failed:
            return None
        first = min(failed, key=lambda m: m.line)
        done = self.driver.get("initialized")
        if done is not None and done.file == first.file and done.line > first.line:
            return None
        return first

    @property
    def no_bl32(self) -> TfaMessage | None:
        """TF-A's line saying OP-TEE is not there: no BL32 loaded, or its dispatcher (opteed) not started."""
        failed = self.tfa.get("runtime_svc_init_failed")
        if failed is not None and not str(failed.data.get("service", "")).startswith("opteed"):
            failed = None
        return self.tfa.get("opteed_no_bl32") or failed

    def optee_says(self, capability: str) -> OpteeMessage | None:
        """OP-TEE's boot line on a capability (reserved_shm, dynamic_shm, ns_virtualization, async_notif)."""
        return self.optee_caps.get(capability)

    def revision(self) -> Revision | None:
        """OP-TEE's version: GET_OS_REVISION's answer, the driver's ``revision`` line, or the banner."""
        answer = self.answer("OPTEE_SMC_CALL_GET_OS_REVISION")
        if answer is not None and "minor" in answer.fields:
            return Revision(answer.fields["major"], answer.fields["minor"], answer.where)
        line = self.driver.get("revision")
        if line is not None:
            return Revision(int(line.data["major"]), int(line.data["minor"]), (line.file, line.line))
        banner = self.milestones.get("optee_version")
        m = _VERSION.search(str(banner.data.get("version", ""))) if banner is not None else None
        if banner is not None and m is not None:
            return Revision(int(m[1]), int(m[2]), (banner.file, banner.line))
        return None
