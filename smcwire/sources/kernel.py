"""Kernel-log lines of the OP-TEE driver (formats.md §2.5).

A line is an optional log prefix, then the message. Prefixes read: ``<N>`` console level,
``dmesg -x`` ``kern  :info  :``, ``[ secs.usecs]`` printk time (with a ``[  T123]`` caller id),
``dmesg -T`` ``[Wed Nov 25 17:17:13 2026]``, syslog/journald/``kern.log``
(``Nov 25 17:17:13 host kernel:`` or an ISO time), Android logcat
(``08-03 17:15:47.235 0 0 E tag: …``). The driver's messages start ``optee: `` (pr_fmt of
drivers/tee/optee/smc_abi.c and the older core.c) or ``optee <device>: `` (dev_* prints: the
driver core's ``optee firmware:optee: probe with driver optee failed with error -22``, U-Boot's
``optee optee: OP-TEE capabilities mismatch``). Every other kernel line is foreign, the tee
subsystem's ``tee: …`` lines included (formats.md lists none that carry SMC results).
"""

from __future__ import annotations

import re

from ..model.events import DriverMessage
from .base import Malformed, Outcome, Parser

_PREFIX = re.compile(
    r"(?:(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT\S+) \S+ kernel: )?"  # syslog, journald
    r"(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+ +\d+ +\d+ [VDIWEFA] (?P<tag>[^:]*?) *: )?"  # logcat
    r"(?:<\d+>)?"  # console level
    r"(?:[a-z]+ *:[a-z]+ *: )?"  # dmesg -x
    r"(?:\[ *(?P<secs>\d+)\.(?P<frac>\d+)\](?:\[ *[TC]\d+\])? ?|\[[A-Z][a-z]{2} [^]]+\] )?"  # printk time, -T
)
_DRIVER = re.compile(r"optee(?: (?P<device>\S+))?:(?: (?P<body>.*)|$)")

# (what, head the body starts with ("": none, try the pattern), the whole body); U-Boot
# prefixes "OP-TEE " (removed first)
_MESSAGES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (what, head, re.compile(body))
    for what, head, body in (
        ("probing", "probing for conduit method", r"probing for conduit method(?: from DT)?\."),
        ("method_missing", 'missing "method"', r'missing "method" property'),
        ("method_invalid", 'invalid "method"', r'invalid "method" property: (?P<method>.*)'),
        ("uid_mismatch", "api uid mismatch", r"api uid mismatch"),
        ("revision", "revision ", r"revision (?P<major>\d+)\.(?P<minor>\d+)(?: \((?P<build_id>[0-9a-f]+)\))?"),
        ("api_revision_mismatch", "api revision mismatch", r"api revision mismatch"),
        ("capabilities_mismatch", "capabilities mismatch", r"capabilities mismatch"),
        ("static_shm_unavailable", "static shm service", r"static shm service not available"),
        ("static_shm_not_cached", "only normal cached", r"only normal cached shared memory supported"),
        ("static_shm_ioremap_failed", "shared memory ioremap", r"shared memory ioremap failed"),
        ("dynamic_shm", "dynamic shared memory", r"dynamic shared memory is enabled"),
        ("async_notif", "Asynchronous notifications", r"Asynchronous notifications enabled"),
        ("initialized", "initialized driver", r"initialized driver"),
        ("unknown_rpc", "Unknown RPC func", r"Unknown RPC func 0x(?P<func>[0-9a-f]+)"),
        ("get_devices_failed", "PTA_CMD_", r"(?P<cmd>PTA_CMD_\w+) invoke function err: (?P<err>[0-9a-f]+)"),
        ("probe_failed", "probe of ", r"probe of (?P<device>\S+) failed with error (?P<error>-?\d+)"),
        ("probe_failed", "probe with driver ", r"probe with driver (?P<driver>\S+) failed with error (?P<error>-?\d+)"),
        ("image_load_failed", "image loading failed", r"image loading failed"),
        ("image_loaded", "image loaded from kernel", r"image loaded from kernel, this can be insecure"),
        ("rpc_shm_get_va_failed", "", r"(?P<function>\w+): tee_shm_get_va (?P<shm>\S+) failed"),
    )
)
_HEX = frozenset({"build_id", "func", "err"})
_DECIMAL = frozenset({"major", "minor", "error"})


def _values(m: re.Match[str]) -> dict[str, int | str]:
    return {k: int(v, 16) if k in _HEX else int(v) if k in _DECIMAL else v
            for k, v in m.groupdict().items() if v is not None}


def classify(body: str) -> tuple[str, dict[str, int | str]] | Malformed:
    """What an OP-TEE driver message says (its text after ``optee[ <device>]: ``), or why a
    message of a known kind does not parse; unknown messages are ``other``."""
    body = body.removeprefix("OP-TEE ")
    for what, head, pattern in _MESSAGES:
        if head and not body.startswith(head):
            continue
        m = pattern.fullmatch(body)
        if m:
            return what, _values(m)
        if head:
            return Malformed(f"OP-TEE driver {what} message does not parse: {body!r}")
    return "other", {}


class KernelLogParser(Parser):
    """OP-TEE driver lines of a kernel log (any prefix above) as DriverMessage events."""

    name = "kernel"

    def feed(self, lineno: int, line: bytes) -> Outcome:
        if line.find(b"optee") < 0:  # cheaper than "in" for bytes
            return None
        text = line.decode("utf-8", "replace").rstrip()
        prefix = _PREFIX.match(text)
        assert prefix is not None  # every part is optional
        message = text[prefix.end():]
        if prefix["tag"]:
            message = f"{prefix['tag']}: {message}"
        m = _DRIVER.match(message)
        if m is None:
            return None
        kind = classify(m["body"] or "")
        if isinstance(kind, Malformed):
            return kind
        what, data = kind
        if m["device"]:
            data["device"] = m["device"]
        ts = None if prefix["secs"] is None else int(prefix["secs"]) * 10**9 + int(prefix["frac"][:9].ljust(9, "0"))
        return (DriverMessage(self.file, lineno, ts, message, what, data),)


PARSERS = (KernelLogParser,)
