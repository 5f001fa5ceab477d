"""Capability masks: which OPTEE_SMC_SEC_CAP_* / OPTEE_SMC_NSEC_CAP_* bits a value holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..abi.profiles import DEFAULT_PROFILE, Profile, get_profile


@dataclass(frozen=True, slots=True)
class Caps:
    """A decoded capability mask."""

    value: int
    nsec: bool
    flags: tuple[str, ...]  # names of the set bits the profile knows, lowest bit first
    unknown: int  # set bits the profile does not name
    masked: int  # set bits a mediator in this profile never lets through (0 if none)
    profile: str


def flag_names(flags: Mapping[str, int], value: int) -> tuple[tuple[str, ...], int]:
    """The names of the flags set in ``value`` (lowest bit first) and the bits left unnamed."""
    names = tuple(n for n, bit in sorted(flags.items(), key=lambda kv: kv[1]) if value & bit == bit)
    known = 0
    for n in names:
        known |= flags[n]
    return names, value & ~known


def decode_caps(value: int, nsec: bool = False, profile: str | Profile = DEFAULT_PROFILE) -> Caps:
    """Decode a secure (a1 of EXCHANGE_CAPABILITIES' return) or, with ``nsec``, a normal-world
    (a1 of its call) capability mask under ``profile``."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    flags = (prof.nsec_caps if nsec else prof.sec_caps).flags
    names, unknown = flag_names(flags, value)
    mask = prof.nsec_caps_mask if nsec else prof.sec_caps_mask
    return Caps(value, nsec, names, unknown, 0 if mask is None else value & ~mask, prof.name)
