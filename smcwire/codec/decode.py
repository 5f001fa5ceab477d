"""Decode SMC register sets: function IDs, calls and the returns that answer them.

The hot path is one dict lookup per a0 and integer arithmetic over the slot tables that
``smcwire.abi.regs.compile_layout`` derives from the Construct layouts; Construct itself parses
only the function-ID word, once per distinct a0 value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple

from ..abi import generic, optee, smccc
from ..abi.function import Function, RpcFunction
from ..abi.profiles import DEFAULT_PROFILE, Profile, get_profile
from ..abi.regs import M32, Layout, Role, compile_layout
from ..abi.rpc import RPC_FUNCTIONS
from ..model.memo import Memo
from .reader import Reader, compile_reader

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


class Call(NamedTuple):
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


class Return(NamedTuple):
    """A decoded return: a0 status (or RPC request), its name, and the named fields."""

    regs: tuple[int, ...]
    status: int
    status_name: str | None
    function: Function | None  # the function of the call answered
    rpc: RpcFunction | None  # set when the return is a known RPC request
    layout: Layout
    fields: dict[str, int]
    notes: tuple[str, ...]
    is_rpc: bool = False  # an RPC request, known or not


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
    """Notes on non-zero "must be zero" registers, bits outside a register's valid mask and, in a
    call, non-zero "not used" registers (undefined, ignored by the callee)."""
    notes = []
    n = len(regs)
    for s in layout.checks:
        if s.reg >= n:
            continue
        value = (regs[s.reg] >> s.lo) & s.mask
        if s.valid is not None:
            if value & ~s.valid:
                notes.append(f"{s.regs} = {value:#x}: bits {value & ~s.valid:#x} are not allowed ({s.doc})")
        elif value and (call or s.role is not Role.NOT_USED):
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
            what += f" ({profile.unknown_fast if fid.fast else profile.unknown_yielding})"
        notes.append(what)
    return notes


def _shape(fid: int) -> str:
    f = decode_function_id(fid)
    return f"{f.kind} {f.convention}"


class Decoder:
    """Decodes calls and returns against one profile. What depends only on a0 (and, for a
    return, on the call's function and the status) is worked out once and cached."""

    _CACHE_LIMIT = 65536

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        # whole decodes by register values: a trace repeats a few hundred distinct register sets
        # (real captures: 110 distinct value lists in 53,970 events)
        self._call_memo: Memo[tuple[tuple[int, ...], int | None], Call] = Memo(lambda key: self._call(*key))
        self._ret_memo: Memo[tuple[tuple[int, ...] | None, tuple[int, ...]], Return] = Memo(self._ret_of)
        self._calls: dict[int, tuple[FunctionId, Function | None, Reader, tuple[str, ...]]] = {}
        self._returns: dict[tuple[int, int], tuple[Reader, str | None, RpcFunction | None, tuple[str, ...], bool]] = {}
        self._readers: dict[int, Reader] = {}

    def _reader(self, layout: Layout) -> Reader:
        reader = self._readers.get(id(layout))
        if reader is None:
            reader = self._readers[id(layout)] = compile_reader(layout)
        return reader

    def _call_plan(self, a0: int) -> tuple[FunctionId, Function | None, Reader, tuple[str, ...]]:
        fid = decode_function_id(a0)
        function = self.profile.by_id.get(fid.value)
        notes = []
        if function is None and fid.sve_hint:
            function = self.profile.by_id.get(fid.value & ~smccc.ARM_SMCCC_1_3_SVE_HINT)
            if function is not None:
                notes.append("bit 16 is the SMCCC v1.3 SVE hint: TF-A clears it before dispatch")
        notes += _id_notes(fid, function, self.profile)
        if a0 >> 32:
            notes.append(f"a0 upper 32 bits = {a0 >> 32:#x}: ignored, SMC function IDs are 32-bit")
        plan = (fid, function, self._reader(function.call_layout if function else _UNKNOWN_CALL), tuple(notes))
        if len(self._calls) < self._CACHE_LIMIT:
            self._calls[a0] = plan
        return plan

    def call(self, regs: Sequence[int], rpc: int | None = None) -> Call:
        """Decode a0-a7 (or fewer) of a call. ``rpc``: for a RETURN_FROM_RPC, the RPC function
        number it answers, which selects that RPC's reply layout."""
        if type(regs) is not tuple:
            regs = tuple(regs)
        return self._call_memo[regs, rpc]

    def _call(self, regs: tuple[int, ...], rpc: int | None) -> Call:
        plan = self._calls.get(regs[0]) or self._call_plan(regs[0])
        fid, function, reader, notes = plan
        rpc_function = None
        if rpc is not None and function is not None and function.id == _RETURN_FROM_RPC:
            rpc_function = RPC_FUNCTIONS.get(rpc)
            if rpc_function is not None:
                reader = self._reader(rpc_function.reply_layout)
            else:
                notes = notes + (f"answers unknown RPC function {rpc:#x}: generic layout",)
        n = len(regs)
        fields = reader.fields(regs) if n >= reader.need else _fields(reader.layout, regs)
        if function is not None and (reader.suspect_call(regs) if n >= reader.need_call else True):
            checks = _checks(reader.layout, regs, call=True)
            if checks:
                notes = notes + tuple(checks)
        return Call(regs, fid, function, reader.layout, fields, notes, rpc_function)

    def _return_plan(self, call: Call | None, status: int) -> tuple[Reader, str | None, RpcFunction | None,
                                                                     tuple[str, ...], bool]:
        function = call.function if call is not None else None
        trusted_os = call is not None and call.fid.owner in _TRUSTED_OS
        notes: list[str] = []
        rpc = None
        is_rpc = (function is not None and function.rpc and status not in optee.SPECIAL_RETURNS
                  and optee.OPTEE_SMC_RETURN_IS_RPC(status))
        if is_rpc:
            rpc = RPC_FUNCTIONS.get(status & optee.OPTEE_SMC_RETURN_RPC_FUNC_MASK)
            layout = rpc.request_layout if rpc else _UNKNOWN_RPC
            name = rpc.name if rpc else None
            if rpc is None:
                notes.append(f"unknown RPC function {status & 0xFFFF:#x}: Linux warns \"Unknown RPC func\" "
                             "and resumes")
        else:
            if function is not None:
                layout = function.return_layout(status)
            else:
                layout = _UNKNOWN_RETURN_OPTEE if trusted_os else _UNKNOWN_RETURN_SMCCC
            first = layout.slots[0]
            name = first.names.get(status) if first.names else None
            if name is None and call is not None and trusted_os and first.names is optee.OPTEE_SMC_RETURN:
                notes.append(_unexpected_status(call, status))
        plan = (self._reader(layout), name, rpc, tuple(notes), is_rpc)
        if len(self._returns) < self._CACHE_LIMIT:
            self._returns[(call.fid.value if call is not None else -1, status)] = plan
        return plan

    def ret(self, call: Call | Sequence[int] | None, regs: Sequence[int]) -> Return:
        """Decode a return (a0-a3, or more) given the call it answers (decoded, raw, or None)."""
        if type(regs) is not tuple:
            regs = tuple(regs)
        if call is not None and not isinstance(call, Call):
            call = self.call(call)
        return self._ret_memo[call.regs if call is not None else None, regs]  # all of the call it depends on

    def _ret_of(self, key: tuple[tuple[int, ...] | None, tuple[int, ...]]) -> Return:
        call_regs, regs = key
        return self._ret(self.call(call_regs) if call_regs is not None else None, regs)

    def _ret(self, call: Call | None, regs: tuple[int, ...]) -> Return:
        status = regs[0] & M32
        plan = self._returns.get((call.fid.value if call is not None else -1, status))
        reader, name, rpc, notes, is_rpc = plan or self._return_plan(call, status)
        n = len(regs)
        fields = reader.fields(regs) if n >= reader.need else _fields(reader.layout, regs)
        if reader.suspect_return(regs) if n >= reader.need_return else reader.need_return > 1:
            checks = _checks(reader.layout, regs, call=False)
            if checks:
                notes = notes + tuple(checks)
        if reader.preserved and call is not None:
            n = min(len(call.regs), len(regs))
            if n > reader.preserved[0]:
                notes = notes + tuple(f"a{i} not preserved: {call.regs[i]:#x} in, {regs[i]:#x} out"
                                      for i in reader.preserved
                                      if i < n and (call.regs[i] & M32) != (regs[i] & M32))
        return Return(regs, status, name, call.function if call is not None else None, rpc, reader.layout,
                      fields, notes, is_rpc)


def _unexpected_status(call: Call, status: int) -> str:
    """Why an OP-TEE call's a0 result is not an OPTEE_SMC_RETURN_* value (abi.md §7.5 #18)."""
    if status in optee.SPECIAL_RETURNS:
        return optee.SPECIAL_RETURNS[status]
    if status == call.fid.value:
        return ("a0 still holds the function ID: the call was not answered (Xen's mediator leaves a0 as it was "
                "when it rejects the message, abi.md §7.4 X7)")
    if optee.OPTEE_SMC_RETURN_IS_RPC(status):
        return f"{status:#x} is an RPC request, but {call.name or 'this call'} cannot make RPCs"
    return f"{status:#x} is not an OPTEE_SMC_RETURN_* value"


_RETURN_FROM_RPC = optee.OPTEE_SMC_STD_CALL_VAL(optee.OPTEE_SMC_FUNCID_RETURN_FROM_RPC)


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
