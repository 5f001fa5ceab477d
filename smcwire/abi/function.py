"""The record of one SMC function: its ID, its call layout and its return layouts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import construct as c

from .regs import Layout, compile_layout

DEFAULT = None  # key of the return layout used for any status not listed


@dataclass(frozen=True, eq=False)
class Function:
    """One SMC function.

    ``returns`` maps an a0 status value to the layout of the return registers; the ``DEFAULT``
    key (None) covers every other status. ``rpc`` marks the yielding call-with-arg family,
    whose returns may instead be RPC requests (``OPTEE_SMC_RETURN_IS_RPC``).
    """

    name: str
    id: int
    summary: str
    source: str
    call: c.Struct
    returns: Mapping[int | None, c.Struct]
    family: str = "OP-TEE"
    rpc: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def call_layout(self) -> Layout:
        return compile_layout(self.call)

    @cached_property
    def return_layouts(self) -> dict[int | None, Layout]:
        return {k: compile_layout(v) for k, v in self.returns.items()}

    def return_layout(self, status: int) -> Layout:
        layouts = self.return_layouts
        found = layouts.get(status)
        return found if found is not None else layouts[DEFAULT]

    @property
    def fast(self) -> bool:
        return bool(self.id >> 31)

    @property
    def smc64(self) -> bool:
        return bool((self.id >> 30) & 1)

    @property
    def owner(self) -> int:
        return (self.id >> 24) & 0x3F

    @property
    def number(self) -> int:
        return self.id & 0xFFFF


@dataclass(frozen=True, eq=False)
class RpcFunction:
    """One RPC function: OP-TEE's request (a0 = 0xFFFF0000 | func, secure → normal world) and
    the normal world's reply (a0 = OPTEE_SMC_CALL_RETURN_FROM_RPC)."""

    name: str
    func: int
    summary: str
    source: str
    request: c.Struct
    reply: c.Struct

    @cached_property
    def request_layout(self) -> Layout:
        return compile_layout(self.request)

    @cached_property
    def reply_layout(self) -> Layout:
        return compile_layout(self.reply)
