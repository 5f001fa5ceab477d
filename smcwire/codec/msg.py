"""Decode and encode ``struct optee_msg_arg`` buffers (abi.md §6) and read the hex dumps users paste.

Parsing and building go through the Construct schemas of ``smcwire.abi.msg``; this module only checks
sizes first (so errors are one line, never a Construct traceback) and maps containers to dataclasses.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import construct as c

from ..abi import msg as m


class MsgError(ValueError):
    """The bytes or text are not a valid optee_msg_arg; the message is one line saying why."""


HEADER_FIELDS = tuple(sc.name for sc in m.optee_msg_arg_header.subcons)  # cmd ... num_params
_HEADER_SIZE = m.optee_msg_arg_header.sizeof()

# The union member each attribute type selects (optee_msg.h, comment of struct optee_msg_param).
# RMEM types are shown as rmem; over FF-A the same values mean fmem.
_VIEWS = {
    **dict.fromkeys((m.OPTEE_MSG_ATTR_TYPE_VALUE_INPUT, m.OPTEE_MSG_ATTR_TYPE_VALUE_OUTPUT,
                     m.OPTEE_MSG_ATTR_TYPE_VALUE_INOUT), "value"),
    **dict.fromkeys((m.OPTEE_MSG_ATTR_TYPE_RMEM_INPUT, m.OPTEE_MSG_ATTR_TYPE_RMEM_OUTPUT,
                     m.OPTEE_MSG_ATTR_TYPE_RMEM_INOUT), "rmem"),
    **dict.fromkeys((m.OPTEE_MSG_ATTR_TYPE_TMEM_INPUT, m.OPTEE_MSG_ATTR_TYPE_TMEM_OUTPUT,
                     m.OPTEE_MSG_ATTR_TYPE_TMEM_INOUT), "tmem"),
}
_VIEW_FIELDS = {
    "value": tuple(sc.name for sc in m.optee_msg_param_value.subcons),
    "rmem": tuple(sc.name for sc in m.optee_msg_param_rmem.subcons),
    "tmem": tuple(sc.name for sc in m.optee_msg_param_tmem.subcons),
}


def name_of(names: Mapping[int, str], value: int) -> str:
    """The header name of value in a name table, or ``unknown 0x..``."""
    return names.get(value, f"unknown {value:#x}")


@dataclass(frozen=True, slots=True)
class MsgParam:
    """One ``struct optee_msg_param``. ``attr`` and ``octets`` (the 24-byte union) are the wire form;
    the rest is derived from them. ``fields`` holds the (name, value) pairs of the union member the type
    selects (``view``: "value", "tmem", "rmem", or None for NONE and unknown types); ``p["a"]`` reads
    one. ``note`` flags oddities (unknown type, reserved attr bits set)."""

    attr: int
    type: int
    type_name: str
    meta: bool
    noncontig: bool
    cache: int
    view: str | None
    fields: tuple[tuple[str, int], ...]
    octets: bytes
    note: str = ""

    def __getitem__(self, name: str) -> int:
        return dict(self.fields)[name]

    @property
    def uuid(self) -> uuid.UUID:
        """The first 16 union octets as a UUID (how OPEN_SESSION and RPC LOAD_TA carry one)."""
        return uuid.UUID(bytes=self.octets[:16])


@dataclass(frozen=True, slots=True)
class MsgArg:
    """One ``struct optee_msg_arg``; ``rpc`` says whether ``cmd`` is an OPTEE_RPC_CMD_* value."""

    cmd: int
    func: int
    session: int
    cancel_id: int
    pad: int
    ret: int
    ret_origin: int
    params: tuple[MsgParam, ...] = ()
    rpc: bool = False

    @property
    def num_params(self) -> int:
        return len(self.params)

    @property
    def cmd_name(self) -> str:
        return name_of(m.OPTEE_RPC_CMD_NAMES if self.rpc else m.OPTEE_MSG_CMD_NAMES, self.cmd)


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """The meta parameters Linux puts first in OPEN_SESSION (call.c optee_open_session)."""

    ta_uuid: uuid.UUID
    client_uuid: uuid.UUID
    login: int
    login_name: str


def _param(p: c.Container) -> MsgParam:
    """MsgParam from a parsed optee_msg_param container."""
    bits = p.attr.value
    view = _VIEWS.get(bits.type)
    notes = []
    if bits.type not in m.OPTEE_MSG_ATTR_TYPE_NAMES:
        notes.append(f"unknown attribute type {bits.type:#x}")
    if bits.reserved_hi or bits.reserved_lo:
        notes.append("reserved attr bits set")
    return MsgParam(
        attr=int.from_bytes(p.attr.data, "little"),
        type=bits.type,
        type_name=name_of(m.OPTEE_MSG_ATTR_TYPE_NAMES, bits.type),
        meta=bits.meta,
        noncontig=bits.noncontig,
        cache=bits.cache,
        view=view,
        fields=tuple((k, p.u[view][k]) for k in _VIEW_FIELDS[view]) if view else (),
        octets=p.u.octets,
        note="; ".join(notes),
    )


def _construct_error(what: str, e: c.ConstructError) -> MsgError:
    """One line from a Construct error, which reads "Error in path (building) -> a -> b\\n<message>"."""
    path = (e.path or "").removeprefix("(building)").removeprefix("(parsing)").removeprefix(" -> ")
    return MsgError(f"{what}{' ' + path if path else ''}: {str(e).splitlines()[-1]}")


def _check_num_params(num_params: int) -> None:
    if num_params > m.OPTEE_MSG_MAX_NUM_PARAMS:
        raise MsgError(f"optee_msg_arg: num_params {num_params} exceeds OPTEE_MSG_MAX_NUM_PARAMS "
                       f"({m.OPTEE_MSG_MAX_NUM_PARAMS})")


def decode_msg_arg(data: bytes, *, rpc: bool = False) -> MsgArg:
    """Decode an optee_msg_arg; bytes after its OPTEE_MSG_GET_ARG_SIZE(num_params) are ignored (the
    buffer is often a whole page). ``rpc`` names cmd from OPTEE_RPC_CMD_* instead of OPTEE_MSG_CMD_*."""
    data = bytes(data)
    if len(data) < _HEADER_SIZE:
        raise MsgError(f"optee_msg_arg: {len(data)} bytes, the header needs {_HEADER_SIZE}")
    num_params = m.optee_msg_arg_header.parse(data).num_params
    _check_num_params(num_params)
    need = m.OPTEE_MSG_GET_ARG_SIZE(num_params)
    if len(data) < need:
        raise MsgError(f"optee_msg_arg: num_params {num_params} needs {need} bytes "
                       f"(OPTEE_MSG_GET_ARG_SIZE), got {len(data)}")
    try:
        parsed = m.optee_msg_arg.parse(data)
    except c.ConstructError as e:  # not expected once the sizes are checked
        raise _construct_error("optee_msg_arg: cannot decode", e) from None
    header = {k: parsed[k] for k in HEADER_FIELDS if k != "num_params"}
    return MsgArg(**header, params=tuple(_param(p) for p in parsed.params), rpc=rpc)


def encode_msg_arg(arg: MsgArg) -> bytes:
    """The bytes of arg (any object with MsgArg's header attributes and params of attr/octets)."""
    _check_num_params(len(arg.params))
    obj = {k: getattr(arg, k) for k in HEADER_FIELDS if k != "num_params"}
    obj["num_params"] = len(arg.params)
    try:
        obj["params"] = [{"attr": {"data": c.Int64ul.build(p.attr)}, "u": {"octets": bytes(p.octets)}}
                         for p in arg.params]
        return m.optee_msg_arg.build(obj)
    except c.ConstructError as e:
        raise _construct_error("optee_msg_arg: cannot encode", e) from None


def make_param(attr_type: int, *, meta: bool = False, noncontig: bool = False, cache: int = 0,
               **fields: int) -> MsgParam:
    """A MsgParam of the given OPTEE_MSG_ATTR_TYPE_*, its view's fields given by name (missing = 0)."""
    view = _VIEWS.get(attr_type)
    allowed = _VIEW_FIELDS[view] if view else ()
    if extra := set(fields) - set(allowed):
        raise MsgError(f"optee_msg_param: {name_of(m.OPTEE_MSG_ATTR_TYPE_NAMES, attr_type)} has no "
                       f"field {', '.join(sorted(extra))}")
    attr = {"reserved_hi": 0, "cache": cache, "reserved_lo": 0, "noncontig": noncontig, "meta": meta,
            "type": attr_type}
    union = {view: {k: fields.get(k, 0) for k in allowed}} if view else {"octets": bytes(24)}
    try:
        return _param(m.optee_msg_param.parse(m.optee_msg_param.build({"attr": {"value": attr}, "u": union})))
    except c.ConstructError as e:
        raise _construct_error("optee_msg_param: cannot encode", e) from None


def open_session_meta(arg: MsgArg) -> SessionMeta | None:
    """TA UUID, client UUID and login of an OPEN_SESSION whose first two params are META values, or None."""
    if arg.rpc or arg.cmd != m.OPTEE_MSG_CMD_OPEN_SESSION or len(arg.params) < 2:
        return None
    ta, client = arg.params[:2]
    if not (ta.meta and client.meta and ta.view == client.view == "value"):
        return None
    return SessionMeta(ta.uuid, client.uuid, client["c"], name_of(m.OPTEE_MSG_LOGIN_NAMES, client["c"]))


# --- hex text ---------------------------------------------------------------------------------------

_COLON_OFFSET = re.compile(r"(?:0[xX])?[0-9a-fA-F]+:")  # xxd, print_hex_dump: "00000010:"
_BARE_OFFSET = re.compile(r"[0-9a-fA-F]{6,16}")  # hexdump -C, od: "00000010"
_BYTE = re.compile(r"[0-9a-fA-F]{2}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_SEPARATORS = re.compile(r"[\s,:]+")


def _split_offset(line: str, in_dump: bool) -> tuple[int | None, str]:
    """(offset, hex part) of a dump line with its offset and ASCII columns removed; (None, line) else."""
    first, rest = (line.split(None, 1) + [""])[:2]
    if _COLON_OFFSET.fullmatch(first):
        # xxd and print_hex_dump put the ASCII column after two or more spaces.
        return int(first[:-1], 16), re.split(r"\s{2,}", rest, maxsplit=1)[0]
    hex_part = rest.split("|", 1)[0]  # hexdump -C: |ascii|
    if _BARE_OFFSET.fullmatch(first) and (
        (hex_part and all(_BYTE.fullmatch(t) for t in hex_part.split())) or (not rest and in_dump)
    ):
        return int(first, 16), hex_part
    return None, line


def _token_bytes(token: str, lineno: int, words_le: bool) -> bytes:
    digits = token[2:] if token[:2] in ("0x", "0X") else token
    if len(digits) == 1 and digits != token:
        digits = "0" + digits  # 0x1
    if len(digits) % 2 or not _HEX.fullmatch(digits):
        raise MsgError(f"parse_hex: line {lineno}: {token!r} is not hex bytes")
    data = bytes.fromhex(digits)
    return data[::-1] if words_le else data


def parse_hex(text: str, *, words_le: bool = False) -> bytes:
    """Bytes from pasted hex: contiguous or whitespace/colon/comma separated, optional ``0x``, or dump
    lines of ``hexdump -C`` (``*`` repeats are expanded), ``xxd`` and ``print_hex_dump`` with offset and
    ASCII columns. Multi-digit groups are read in text order; ``words_le`` reverses each group, for
    ``print_hex_dump`` with groupsize > 1, which prints little-endian words as numbers."""
    out = bytearray()
    base: int | None = None  # offset of the first dump line
    last = b""  # bytes of the previous dump line, for "*"
    repeat = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line == "*":
            repeat = True
            continue
        offset, body = _split_offset(line, base is not None)
        if offset is not None:
            base = offset if base is None else base
            if repeat:
                gap = offset - base - len(out)
                if not last or gap < 0 or gap % len(last):
                    raise MsgError(f"parse_hex: line {lineno}: offset {offset:#x} does not follow "
                                   f"'*' after {len(out):#x} bytes")
                out += last * (gap // len(last))
                repeat = False
        chunk = b"".join(_token_bytes(t, lineno, words_le) for t in _SEPARATORS.split(body) if t)
        last = chunk or last
        out += chunk
    if repeat:
        raise MsgError("parse_hex: '*' (repeated lines) is not followed by an offset line")
    return bytes(out)
