"""Decode SMC register sets: function IDs, calls and the returns that answer them.

The hot path is one dict lookup per a0 and integer arithmetic over the slot tables that
``smcwire.abi.regs.compile_layout`` derives from the Construct layouts; Construct itself parses
only the function-ID word, once per distinct a0 value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from ..abi import generic, optee, smccc
from ..abi.function import Function, RpcFunction
from ..abi.profiles import DEFAULT_PROFILE, Profile, get_profile
from ..abi.regs import M32, Layout, Role, compile_layout
from ..abi.rpc import RPC_FUNCTIONS

_TRUSTED_OS = range(smccc.ARM_SMCCC_OWNER_TRUSTED_OS, smccc.ARM_SMCCC_OWNER_TRUSTED_OS_END + 1)


@dataclass(frozen=True, slots=True)
class FunctionId:
    """The fields of a 32-bit SMCCC function ID (smccc.FUNCTION_ID)."""

    value: int
    fast: bool
    smc64: bool
    owner: int
    reserved: int
    sve_hint: bool
    number: int

    @property
    def owner_name(self) -> str:
        return smccc.owner_name(self.owner)

    @property
    def kind(self) -> str:
        return "fast" if self.fast else "yielding"

    @property
    def convention(self) -> str:
        return "SMC64" if self.smc64 else "SMC32"


@lru_cache(maxsize=4096)
def decode_function_id(a0: int) -> FunctionId:
    """Split a0 (its low 32 bits) into the SMCCC function-ID fields."""
    p = smccc.FUNCTION_ID.parse((a0 & M32).to_bytes(4, "little"))
    return FunctionId(a0 & M32, p.fast, p.smc64, p.owner, p.reserved, p.sve_hint, p.number)


@dataclass(frozen=True, slots=True)
class Call:
    """A decoded call: a0-a7 as given, the function (None if unknown) and its named fields."""

    regs: tuple[int, ...]
    fid: FunctionId
    function: Function | None
    layout: Layout
    fields: dict[str, int]
    notes: tuple[str, ...]
    rpc: RpcFunction | None = None  # set for a RETURN_FROM_RPC decoded as the answer to an RPC

    @property
    def name(self) -> str | None:
        return self.function.name if self.function else None


@dataclass(frozen=True, slots=True)
class Return:
    """A decoded return: a0 status (or RPC request), its name, and the named fields."""

    regs: tuple[int, ...]
    status: int
    status_name: str | None
    function: Function | None  # the function of the call answered
    rpc: RpcFunction | None  # set when the return is an RPC request
    layout: Layout
    fields: dict[str, int]
    notes: tuple[str, ...]

    @property
    def is_rpc(self) -> bool:
        return self.rpc is not None or self.layout is _UNKNOWN_RPC


_UNKNOWN_CALL = compile_layout(generic.UNKNOWN_CALL)
_UNKNOWN_RETURN_OPTEE = compile_layout(generic.UNKNOWN_RETURN_OPTEE)
_UNKNOWN_RETURN_SMCCC = compile_layout(generic.UNKNOWN_RETURN_SMCCC)
_UNKNOWN_RPC = compile_layout(generic.UNKNOWN_RPC_REQUEST)


def _fields(layout: Layout, regs: tuple[int, ...]) -> dict[str, int]:
    n = len(regs)
    out: dict[str, int] = {}
    for s in layout.fields:
        if s.pair:
            if s.reg + 1 < n:
                out[s.name] = ((regs[s.reg] & M32) << 32) | (regs[s.reg + 1] & M32)
        elif s.reg < n:
            out[s.name] = (regs[s.reg] >> s.lo) & s.mask
    return out


def _checks(layout: Layout, regs: tuple[int, ...], call: bool) -> list[str]:
    """Notes on non-zero "must be zero" registers (and, in a call, "not used" ones)."""
    notes = []
    n = len(regs)
    for s in layout.checks:
        if s.reg >= n or (s.role is Role.NOT_USED and not call):
            continue
        value = (regs[s.reg] >> s.lo) & s.mask
        if value:
            notes.append(f"{s.regs} = {value:#x}: {s.role.value}" + (f" ({s.doc})" if s.doc != s.role.value else ""))
    return notes


def _id_notes(fid: FunctionId, function: Function | None, profile: Profile) -> list[str]:
    notes = []
    if fid.reserved and fid.fast:
        notes.append(f"bits 23:17 = {fid.reserved:#x} are reserved in a fast call: TF-A answers SMC_UNK")
    if function is None:
        what = f"unknown {fid.owner_name} function {fid.value:#010x}"
        if fid.owner in _TRUSTED_OS:
            same = [f for f in profile.functions if f.owner == fid.owner and f.number == fid.number]
            if same and (same[0].fast, same[0].smc64) != (fid.fast, fid.smc64):
                what += f": {same[0].name} is {_shape(same[0].id)}, this is {_shape(fid.value)}"
            elif same:
                what += f": {same[0].name} with bits 23:16 set"
            what += " (OP-TEE answers " + ("UNKNOWN_FUNCTION)" if fid.fast else "EBADCMD after taking a thread)")
        notes.append(what)
    return notes


def _shape(fid: int) -> str:
    f = decode_function_id(fid)
    return f"{f.kind} {f.convention}"


class Decoder:
    """Decodes calls and returns against one profile, caching per a0 value."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._entries: dict[int, tuple[FunctionId, Function | None, Layout, tuple[str, ...]]] = {}

    def _entry(self, a0: int) -> tuple[FunctionId, Function | None, Layout, tuple[str, ...]]:
        entry = self._entries.get(a0)
        if entry is None:
            fid = decode_function_id(a0)
            function = self.profile.by_id.get(fid.value)
            notes = []
            if function is None and fid.sve_hint:
                function = self.profile.by_id.get(fid.value & ~smccc.ARM_SMCCC_1_3_SVE_HINT)
                if function is not None:
                    notes.append("bit 16 is the SMCCC v1.3 SVE hint: TF-A clears it before dispatch")
            layout = function.call_layout if function else _UNKNOWN_CALL
            notes += _id_notes(fid, function, self.profile)
            if a0 >> 32:
                notes.append(f"a0 upper 32 bits = {a0 >> 32:#x}: ignored, SMC function IDs are 32-bit")
            entry = (fid, function, layout, tuple(notes))
            if len(self._entries) < 65536:
                self._entries[a0] = entry
        return entry

    def call(self, regs: Sequence[int], rpc: int | None = None) -> Call:
        """Decode a0-a7 (or fewer) of a call. ``rpc``: for a RETURN_FROM_RPC, the RPC function
        number it answers, which selects that RPC's reply layout."""
        regs = tuple(regs)
        fid, function, layout, notes = self._entry(regs[0])
        rpc_function = None
        if rpc is not None and function is not None and function.id == _RETURN_FROM_RPC:
            rpc_function = RPC_FUNCTIONS.get(rpc)
            if rpc_function is not None:
                layout = rpc_function.reply_layout
        checks = _checks(layout, regs, call=True) if function is not None else ()
        if checks:
            notes = notes + tuple(checks)
        return Call(regs, fid, function, layout, _fields(layout, regs), notes, rpc_function)

    def ret(self, call: Call | Sequence[int] | None, regs: Sequence[int]) -> Return:
        """Decode a return (a0-a3, or more) given the call it answers (decoded, raw, or None)."""
        regs = tuple(regs)
        if call is not None and not isinstance(call, Call):
            call = self.call(call)
        function = call.function if call is not None else None
        status = regs[0] & M32
        notes: list[str] = []
        rpc = None
        if function is not None and function.rpc and optee.OPTEE_SMC_RETURN_IS_RPC(status):
            rpc = RPC_FUNCTIONS.get(status & optee.OPTEE_SMC_RETURN_RPC_FUNC_MASK)
            layout = rpc.request_layout if rpc else _UNKNOWN_RPC
            name = rpc.name if rpc else None
            if rpc is None:
                notes.append(optee.SPECIAL_RETURNS.get(
                    status, f"unknown RPC function {status & 0xFFFF:#x}: Linux warns \"Unknown RPC func\" "
                            "and resumes"))
        else:
            if function is not None:
                layout = function.return_layout(status)
            elif call is not None and call.fid.owner in _TRUSTED_OS:
                layout = _UNKNOWN_RETURN_OPTEE
            else:
                layout = _UNKNOWN_RETURN_SMCCC
            first = layout.slots[0]
            name = first.names.get(status) if first.names else None
            if status in optee.SPECIAL_RETURNS and call is not None and call.fid.owner in _TRUSTED_OS:
                notes.append(optee.SPECIAL_RETURNS[status])
        notes += _checks(layout, regs, call=False)
        if call is not None and rpc is None:
            notes += _preserved(layout, call.regs, regs)
        return Return(regs, status, name, function, rpc, layout, _fields(layout, regs), tuple(notes))


_RETURN_FROM_RPC = optee.OPTEE_SMC_STD_CALL_VAL(optee.OPTEE_SMC_FUNCID_RETURN_FROM_RPC)


def _preserved(layout: Layout, call: tuple[int, ...], ret: tuple[int, ...]) -> list[str]:
    n = min(len(call), len(ret))
    return [f"a{s.reg} not preserved: {call[s.reg]:#x} in, {ret[s.reg]:#x} out"
            for s in layout.slots
            if s.role is Role.PRESERVED and s.reg < n and (call[s.reg] & M32) != (ret[s.reg] & M32)]


@cache
def decoder(profile: str | Profile = DEFAULT_PROFILE) -> Decoder:
    """The (cached) decoder of a profile given by name or object."""
    return Decoder(get_profile(profile) if isinstance(profile, str) else profile)


def decode_call(regs: Sequence[int], profile: str | Profile = DEFAULT_PROFILE, rpc: int | None = None) -> Call:
    """Decode a call's registers (a0 first; fewer than eight are fine)."""
    return decoder(profile).call(regs, rpc)


def decode_return(call: Call | Sequence[int] | None, regs: Sequence[int],
                  profile: str | Profile = DEFAULT_PROFILE) -> Return:
    """Decode a return's registers given the call it answers."""
    return decoder(profile).ret(call, regs)
