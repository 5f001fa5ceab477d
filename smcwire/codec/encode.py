"""Encode calls and returns from a function name and field values into eight register values.

Encoding goes through the Construct layouts themselves (``Struct.build``), so an encoded register
set is by construction what the schema says; range checks live in the layout adapters.
"""

from __future__ import annotations

from collections.abc import Mapping

import construct as c

from ..abi.function import Function, RpcFunction
from ..abi.optee import OPTEE_SMC_FUNCID_RETURN_FROM_RPC, OPTEE_SMC_STD_CALL_VAL
from ..abi.profiles import DEFAULT_PROFILE, Profile, get_profile
from ..abi.regs import BitReg, EncodeError, Layout, Role, unpack
from ..abi.rpc import RPC_FUNCTIONS


def _settable(layout: Layout) -> dict[str, str]:
    """Names accepted by ``_build``: each field, and each other register by its own name (aN)."""
    return {s.name: s.role.value for s in layout.slots}


def _build(layout: Layout, values: Mapping[str, int], what: str) -> tuple[int, ...]:
    names = _settable(layout)
    unknown = [k for k in values if k not in names]
    if unknown:
        fields = ", ".join(s.name for s in layout.fields) or "none"
        raise EncodeError(f"{what} has no field {', '.join(map(repr, unknown))} (fields: {fields})")
    obj: dict[str, object] = {}
    for member in layout.struct.subcons:
        sub = member.subcon
        if isinstance(sub, BitReg):
            obj[member.name] = {p.name: values.get(p.name, 0) for p in sub.parts}
        elif not isinstance(sub, c.Const):
            obj[member.name] = values.get(member.name, 0)
    try:
        return unpack(layout.struct.build(obj))
    except EncodeError as e:
        raise EncodeError(f"{what}: {e}") from None


def _function(name: str, profile: str | Profile) -> Function:
    prof = get_profile(profile) if isinstance(profile, str) else profile
    try:
        return prof.function(name)
    except KeyError:
        raise EncodeError(f"unknown function {name!r} in profile {prof.name}") from None


def rpc_function(rpc: int | str) -> RpcFunction:
    """An RPC function by number, by name (OPTEE_SMC_RPC_FUNC_ALLOC) or by short name (ALLOC)."""
    for r in RPC_FUNCTIONS.values():
        if rpc in (r.func, r.name, r.name.removeprefix("OPTEE_SMC_RPC_FUNC_")):
            return r
    raise EncodeError(f"unknown RPC function {rpc!r}; choose from "
                      + ", ".join(r.name.removeprefix("OPTEE_SMC_RPC_FUNC_") for r in RPC_FUNCTIONS.values()))


def call_layout(name: str, profile: str | Profile = DEFAULT_PROFILE, rpc: int | str | None = None) -> Layout:
    """The layout a call to ``name`` is encoded with (``rpc``: the RETURN_FROM_RPC reply to it)."""
    function = _function(name, profile)
    if rpc is None:
        return function.call_layout
    if function.id != OPTEE_SMC_STD_CALL_VAL(OPTEE_SMC_FUNCID_RETURN_FROM_RPC):
        raise EncodeError(f"{name} is not OPTEE_SMC_CALL_RETURN_FROM_RPC: an RPC reply is a RETURN_FROM_RPC "
                          "call (or give the RPC request as a return of the call)")
    return rpc_function(rpc).reply_layout


def return_layout(name: str, status: int, profile: str | Profile = DEFAULT_PROFILE,
                  rpc: int | str | None = None) -> Layout:
    """The layout a return from ``name`` with a0 = ``status`` (or an RPC request) is encoded with."""
    function = _function(name, profile)
    if rpc is None:
        return function.return_layout(status)
    if not function.rpc:
        raise EncodeError(f"{name} cannot return an RPC request")
    return rpc_function(rpc).request_layout


def encode_call(name: str, fields: Mapping[str, int] | None = None, profile: str | Profile = DEFAULT_PROFILE,
                rpc: int | str | None = None) -> tuple[int, ...]:
    """a0-a7 of a call to ``name``. Fields not given are 0; a register that is not a field can
    be set by its name (``a5``) to build deliberately odd calls. ``rpc`` (for
    OPTEE_SMC_CALL_RETURN_FROM_RPC) selects the reply layout of that RPC function."""
    return _build(call_layout(name, profile, rpc), fields or {}, name)


def encode_return(name: str, fields: Mapping[str, int] | None = None, profile: str | Profile = DEFAULT_PROFILE,
                  rpc: int | str | None = None) -> tuple[int, ...]:
    """a0-a7 of a return from ``name``. The layout is chosen by the ``status`` field (a0), or
    with ``rpc`` it is that RPC function's request (for the call-with-arg family)."""
    values = dict(fields or {})
    first = _function(name, profile).return_layouts[None].slots[0]
    status = values.get(first.name, 0) if first.role is Role.FIELD and first.reg == 0 else 0
    return _build(return_layout(name, status, profile, rpc), values, name)
