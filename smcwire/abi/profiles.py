"""ABI profiles: which functions and capability bits a value means in one ABI generation.

A profile is data: a registry of ``Function`` records (SMCCC, PSCI and OP-TEE) and the capability
flag sets, derived from the schemas. Decoders and rules ask the profile; nothing branches on its
name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache

import construct as c

from . import proposals, psci, smccc, xen
from .function import Function
from .optee import NSEC_CAPS, SEC_CAPS, optee_functions


@dataclass(frozen=True, eq=False)
class Profile:
    """One ABI generation. ``sec_caps_mask``/``nsec_caps_mask``, when set, are the capability
    bits that can reach the caller at all (a mediator such as Xen masks the others)."""

    name: str
    summary: str
    source: str
    functions: tuple[Function, ...]
    sec_caps: c.FlagsEnum = SEC_CAPS
    nsec_caps: c.FlagsEnum = NSEC_CAPS
    sec_caps_mask: int | None = None
    nsec_caps_mask: int | None = None
    # who answers an ID of the Trusted OS range that the profile does not know
    unknown_fast: str = "OP-TEE answers UNKNOWN_FUNCTION"
    unknown_yielding: str = "OP-TEE answers EBADCMD after taking a thread"
    by_id: dict[int, Function] = field(init=False, repr=False)
    by_name: dict[str, Function] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_id: dict[int, Function] = {}
        for f in self.functions:
            if f.id in by_id:
                raise ValueError(f"profile {self.name}: {f.name} and {by_id[f.id].name} share ID {f.id:#010x}")
            by_id[f.id] = f
        object.__setattr__(self, "by_id", by_id)
        object.__setattr__(self, "by_name", {f.name: f for f in self.functions})

    def function(self, name: str) -> Function:
        """The function called ``name`` (the header identifier); KeyError if absent."""
        return self.by_name[name]

    def with_functions(self, functions: Iterable[Function], name: str | None = None) -> Profile:
        """This profile with ``functions`` added, replacing any of the same ID or name."""
        added = tuple(functions)
        ids = {f.id for f in added}
        names = {f.name for f in added}
        kept = tuple(f for f in self.functions if f.id not in ids and f.name not in names)
        return replace(self, name=name or self.name, functions=kept + added)


_COMMON = smccc.FUNCTIONS + psci.FUNCTIONS


def _mainline() -> Profile:
    return Profile(
        "mainline", "optee_os 4.x and Linux mainline headers (default)",
        "optee_os core/arch/arm/include/sm/optee_smc.h; Linux drivers/tee/optee/optee_smc.h",
        _COMMON + optee_functions())


def _sysinv(name: str, summary: str, source: str, extra: tuple[Function, ...], drop: tuple[str, ...]) -> Profile:
    """A system-invocation proposal: mainline with SEC_CAP bit 7 = SYSTEM_THREAD plus ``extra``."""
    base = optee_functions(proposals.SEC_CAPS_SYSINV)
    functions = tuple(f for f in base if f.name not in drop) + extra
    return Profile(name, summary, source, _COMMON + functions, sec_caps=proposals.SEC_CAPS_SYSINV)


def _xen_guest() -> Profile:
    optee = {f.name: f for f in optee_functions()}
    optee["OPTEE_SMC_EXCHANGE_CAPABILITIES"] = xen.exchange_capabilities_xen()
    return Profile(
        "xen-guest", "a guest behind Xen's OP-TEE mediator: 11 functions forwarded, capabilities masked",
        "Xen xen/arch/arm/tee/optee.c (optee_handle_call, handle_exchange_capabilities)",
        _COMMON + tuple(optee[n] for n in xen.FORWARDED),
        sec_caps_mask=xen.SEC_CAPS_MASK, nsec_caps_mask=xen.NSEC_CAPS_MASK,
        unknown_fast=xen.UNFORWARDED, unknown_yielding=xen.UNFORWARDED)


_BUILDERS = {
    "mainline": _mainline,
    "sysinv-v1": lambda: _sysinv(
        "sysinv-v1", "2023 system invocation v1: function 20 = CALL_SYSTEM_WITH_REGD_ARG, "
        "SEC_CAP bit 7 = SYSTEM_THREAD", proposals.SOURCE_V1,
        (proposals.call_system_with_regd_arg(),), drop=("OPTEE_SMC_GET_PROTMEM_CONFIG",)),
    "sysinv-flag": lambda: _sysinv(
        "sysinv-flag", "2023 review of v1: OPTEE_SMC_CALL_SYSTEM_THREAD_FLAG 0x8000 in the call-with-arg IDs, "
        "SEC_CAP bit 7 = SYSTEM_THREAD", proposals.SOURCE_FLAG,
        proposals.system_thread_flag_calls(), drop=()),
    "sysinv-v2": lambda: _sysinv(
        "sysinv-v2", "2023 system invocation v2: v1 plus RESERVE/UNRESERVE_SYS_THREAD (21/22, yielding)",
        proposals.SOURCE_V2, (proposals.call_system_with_regd_arg(), *proposals.sys_thread_reservation_calls()),
        drop=("OPTEE_SMC_GET_PROTMEM_CONFIG",)),
    "xen-guest": _xen_guest,
}
PROFILE_NAMES = tuple(_BUILDERS)
DEFAULT_PROFILE = "mainline"


@cache
def get_profile(name: str = DEFAULT_PROFILE) -> Profile:
    """The profile called ``name`` (built on first use); KeyError naming the choices if unknown."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; choose from {', '.join(PROFILE_NAMES)}") from None
    return builder()



