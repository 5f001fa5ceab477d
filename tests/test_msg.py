"""The optee_msg layer: constants against abi.md §4/§6, schemas, decode/encode, parse_hex, rendering."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smcwire.abi import msg as m
from smcwire.codec.msg import (
    MsgArg,
    MsgError,
    decode_msg_arg,
    encode_msg_arg,
    make_param,
    open_session_meta,
    parse_hex,
)
from smcwire.render.msg import msg_json, msg_text

# Expected values written literally from abi.md §4 (RPC) and §6 (optee_msg).
CONSTANTS = {
    "OPTEE_MSG_ATTR_TYPE_NONE": 0, "OPTEE_MSG_ATTR_TYPE_VALUE_INPUT": 1,
    "OPTEE_MSG_ATTR_TYPE_VALUE_OUTPUT": 2, "OPTEE_MSG_ATTR_TYPE_VALUE_INOUT": 3,
    "OPTEE_MSG_ATTR_TYPE_RMEM_INPUT": 5, "OPTEE_MSG_ATTR_TYPE_RMEM_OUTPUT": 6,
    "OPTEE_MSG_ATTR_TYPE_RMEM_INOUT": 7, "OPTEE_MSG_ATTR_TYPE_FMEM_INPUT": 5,
    "OPTEE_MSG_ATTR_TYPE_FMEM_OUTPUT": 6, "OPTEE_MSG_ATTR_TYPE_FMEM_INOUT": 7,
    "OPTEE_MSG_ATTR_TYPE_TMEM_INPUT": 9, "OPTEE_MSG_ATTR_TYPE_TMEM_OUTPUT": 0xA,
    "OPTEE_MSG_ATTR_TYPE_TMEM_INOUT": 0xB, "OPTEE_MSG_ATTR_TYPE_MASK": 0xFF,
    "OPTEE_MSG_ATTR_META": 1 << 8, "OPTEE_MSG_ATTR_NONCONTIG": 1 << 9,
    "OPTEE_MSG_ATTR_CACHE_SHIFT": 16, "OPTEE_MSG_ATTR_CACHE_MASK": 0x7, "OPTEE_MSG_ATTR_CACHE_PREDEFINED": 0,
    "OPTEE_MSG_FMEM_INVALID_GLOBAL_ID": 0xFFFFFFFFFFFFFFFF,
    "OPTEE_MSG_CMD_OPEN_SESSION": 0, "OPTEE_MSG_CMD_INVOKE_COMMAND": 1, "OPTEE_MSG_CMD_CLOSE_SESSION": 2,
    "OPTEE_MSG_CMD_CANCEL": 3, "OPTEE_MSG_CMD_REGISTER_SHM": 4, "OPTEE_MSG_CMD_UNREGISTER_SHM": 5,
    "OPTEE_MSG_CMD_DO_BOTTOM_HALF": 6, "OPTEE_MSG_CMD_STOP_ASYNC_NOTIF": 7,
    "OPTEE_MSG_CMD_LEND_PROTMEM": 8, "OPTEE_MSG_CMD_RECLAIM_PROTMEM": 9,
    "OPTEE_MSG_CMD_GET_PROTMEM_CONFIG": 10, "OPTEE_MSG_CMD_ASSIGN_PROTMEM": 11,
    "OPTEE_MSG_PROTMEM_RESERVED": 0, "OPTEE_MSG_PROTMEM_SECURE_VIDEO_PLAY": 1,
    "OPTEE_MSG_PROTMEM_TRUSTED_UI": 2, "OPTEE_MSG_PROTMEM_SECURE_VIDEO_RECORD": 3,
    "OPTEE_MSG_LOGIN_PUBLIC": 0, "OPTEE_MSG_LOGIN_USER": 1, "OPTEE_MSG_LOGIN_GROUP": 2,
    "OPTEE_MSG_LOGIN_APPLICATION": 4, "OPTEE_MSG_LOGIN_APPLICATION_USER": 5,
    "OPTEE_MSG_LOGIN_APPLICATION_GROUP": 6,
    "OPTEE_MSG_NONCONTIG_PAGE_SIZE": 4096, "OPTEE_MSG_MAX_NUM_PARAMS": 127,
    "OPTEE_MSG_REVISION_MAJOR": 2, "OPTEE_MSG_REVISION_MINOR": 0,
    "OPTEE_MSG_UID_0": 0x384FB3E0, "OPTEE_MSG_UID_1": 0xE7F811E3, "OPTEE_MSG_UID_2": 0xAF630002,
    "OPTEE_MSG_UID_3": 0xA5D5C51B,
    "OPTEE_MSG_OS_OPTEE_UUID_0": 0x486178E0, "OPTEE_MSG_OS_OPTEE_UUID_1": 0xE7F811E3,
    "OPTEE_MSG_OS_OPTEE_UUID_2": 0xBC5E0002, "OPTEE_MSG_OS_OPTEE_UUID_3": 0xA5D5C51B,
    "OPTEE_MSG_IMAGE_LOAD_UID_0": 0xA3FBEAB1, "OPTEE_MSG_IMAGE_LOAD_UID_1": 0x1246315D,
    "OPTEE_MSG_IMAGE_LOAD_UID_2": 0xC7C406B9, "OPTEE_MSG_IMAGE_LOAD_UID_3": 0xC03CBEA4,
    "OPTEE_RPC_CMD_LOAD_TA": 0, "OPTEE_RPC_CMD_RPMB": 1, "OPTEE_RPC_CMD_FS": 2, "OPTEE_RPC_CMD_GET_TIME": 3,
    "OPTEE_RPC_CMD_NOTIFICATION": 4, "OPTEE_RPC_CMD_SUSPEND": 5, "OPTEE_RPC_CMD_SHM_ALLOC": 6,
    "OPTEE_RPC_CMD_SHM_FREE": 7, "OPTEE_RPC_CMD_SQL_FS_RESERVED": 8, "OPTEE_RPC_CMD_GPROF": 9,
    "OPTEE_RPC_CMD_SOCKET": 10, "OPTEE_RPC_CMD_FTRACE": 11, "OPTEE_RPC_CMD_SUPP_PLUGIN": 12,
    "OPTEE_RPC_CMD_BENCH_REG": 20, "OPTEE_RPC_CMD_I2C_TRANSFER": 21, "OPTEE_RPC_CMD_RPMB_PROBE_RESET": 22,
    "OPTEE_RPC_CMD_RPMB_PROBE_NEXT": 23, "OPTEE_RPC_CMD_RPMB_FRAMES": 24,
    "OPTEE_RPC_NOTIFICATION_WAIT": 0, "OPTEE_RPC_NOTIFICATION_SEND": 1,
    "OPTEE_RPC_SHM_TYPE_APPL": 0, "OPTEE_RPC_SHM_TYPE_KERNEL": 1, "OPTEE_RPC_SHM_TYPE_GLOBAL": 2,
}


@pytest.mark.parametrize(("name", "value"), CONSTANTS.items())
def test_constant(name: str, value: int) -> None:
    assert getattr(m, name) == value


@pytest.mark.parametrize(("table", "prefix", "count"), [
    (m.OPTEE_MSG_CMD_NAMES, "OPTEE_MSG_CMD_", 12), (m.OPTEE_RPC_CMD_NAMES, "OPTEE_RPC_CMD_", 18),
    (m.OPTEE_MSG_ATTR_TYPE_NAMES, "OPTEE_MSG_ATTR_TYPE_", 10),
    (m.OPTEE_MSG_LOGIN_NAMES, "OPTEE_MSG_LOGIN_", 6),
    (m.OPTEE_MSG_PROTMEM_NAMES, "OPTEE_MSG_PROTMEM_", 4),
    (m.OPTEE_RPC_NOTIFICATION_NAMES, "OPTEE_RPC_NOTIFICATION_", 2),
    (m.OPTEE_RPC_SHM_TYPE_NAMES, "OPTEE_RPC_SHM_TYPE_", 3),
])
def test_name_tables(table: dict[int, str], prefix: str, count: int) -> None:
    assert len(table) == count
    assert all(name.startswith(prefix) and CONSTANTS[name] == value for value, name in table.items())
    assert "FMEM" not in "".join(table.values())  # RMEM names win over the FMEM aliases


def test_sizes() -> None:
    assert m.optee_msg_arg_header.sizeof() == 32
    assert m.optee_msg_param.sizeof() == 32
    assert [m.OPTEE_MSG_GET_ARG_SIZE(n) for n in (0, 1, 127)] == [32, 64, 4096]


def test_attr_bits() -> None:
    attr = 0xB | 1 << 8 | 1 << 9 | 5 << 16
    bits = m.optee_msg_attr.parse(attr.to_bytes(8, "little"))
    assert (bits.type, bits.meta, bits.noncontig, bits.cache, bits.reserved_lo, bits.reserved_hi) == (
        0xB, True, True, 5, 0, 0)


def test_fmem_view() -> None:
    raw = struct.pack("<QIHHQQ", 5, 0x11223344, 0x5566, 0x10, 0x2000, m.OPTEE_MSG_FMEM_INVALID_GLOBAL_ID)
    fmem = m.optee_msg_param.parse(raw).u.fmem
    assert (fmem.offs_low, fmem.offs_high, fmem.internal_offs, fmem.size, fmem.global_id) == (
        0x11223344, 0x5566, 0x10, 0x2000, 0xFFFFFFFFFFFFFFFF)


def header(cmd: int, num_params: int, func: int = 0, session: int = 0, cancel_id: int = 0,
           ret: int = 0, ret_origin: int = 0) -> bytes:
    return struct.pack("<8I", cmd, func, session, cancel_id, 0, ret, ret_origin, num_params)


def param(attr: int, a: int = 0, b: int = 0, c: int = 0) -> bytes:
    return struct.pack("<4Q", attr, a, b, c)


TA = uuid.UUID("8aaaf200-2450-11e4-abe2-0002a5d5c51b")
CLIENT = uuid.UUID("12345678-9abc-def0-1122-334455667788")
META_VALUE_IN = m.OPTEE_MSG_ATTR_TYPE_VALUE_INPUT | m.OPTEE_MSG_ATTR_META


def open_session_bytes() -> bytes:
    # Linux call.c optee_open_session: memcpy of the TA UUID, export_uuid of the client UUID, login in c.
    return (header(0, 2, cancel_id=3) + struct.pack("<Q", META_VALUE_IN) + TA.bytes + bytes(8)
            + struct.pack("<Q", META_VALUE_IN) + CLIENT.bytes + struct.pack("<Q", 5))


def test_decode_open_session() -> None:
    arg = decode_msg_arg(open_session_bytes())
    assert (arg.cmd, arg.cmd_name, arg.cancel_id, arg.num_params) == (0, "OPTEE_MSG_CMD_OPEN_SESSION", 3, 2)
    for p in arg.params:
        assert (p.type_name, p.meta, p.noncontig, p.cache, p.view, p.note) == (
            "OPTEE_MSG_ATTR_TYPE_VALUE_INPUT", True, False, 0, "value", "")
    assert arg.params[0]["a"] == int.from_bytes(TA.bytes[:8], "little")
    assert arg.params[1]["c"] == m.OPTEE_MSG_LOGIN_APPLICATION_USER
    meta = open_session_meta(arg)
    assert meta is not None
    assert (meta.ta_uuid, meta.client_uuid, meta.login) == (TA, CLIENT, 5)
    assert meta.login_name == "OPTEE_MSG_LOGIN_APPLICATION_USER"
    assert open_session_meta(decode_msg_arg(open_session_bytes(), rpc=True)) is None


def invoke_bytes() -> bytes:
    tmem = m.OPTEE_MSG_ATTR_TYPE_TMEM_INOUT | m.OPTEE_MSG_ATTR_NONCONTIG
    return (header(1, 2, func=0x10, session=0x2A, cancel_id=7)
            + param(tmem, 0x80001000, 0x40, 0xFFFF000012345678)
            + param(m.OPTEE_MSG_ATTR_TYPE_RMEM_INPUT, 0x10, 0x20, 0xFFFF00001234ABCD))


def test_decode_invoke() -> None:
    arg = decode_msg_arg(invoke_bytes() + bytes(100))  # trailing page content is ignored
    assert arg.cmd_name == "OPTEE_MSG_CMD_INVOKE_COMMAND"
    assert (arg.func, arg.session, arg.cancel_id, arg.ret, arg.ret_origin) == (0x10, 0x2A, 7, 0, 0)
    tmem, rmem = arg.params
    assert (tmem.type_name, tmem.noncontig, tmem.view) == ("OPTEE_MSG_ATTR_TYPE_TMEM_INOUT", True, "tmem")
    assert tmem.fields == (("buf_ptr", 0x80001000), ("size", 0x40), ("shm_ref", 0xFFFF000012345678))
    assert (rmem.type_name, rmem.view) == ("OPTEE_MSG_ATTR_TYPE_RMEM_INPUT", "rmem")
    assert rmem.fields == (("offs", 0x10), ("size", 0x20), ("shm_ref", 0xFFFF00001234ABCD))


def test_decode_rpc_and_none() -> None:
    alloc = param(m.OPTEE_MSG_ATTR_TYPE_VALUE_INPUT, m.OPTEE_RPC_SHM_TYPE_KERNEL, 4096, 8)
    data = header(m.OPTEE_RPC_CMD_SHM_ALLOC, 2) + alloc + param(m.OPTEE_MSG_ATTR_TYPE_NONE)
    arg = decode_msg_arg(data, rpc=True)
    assert arg.cmd_name == "OPTEE_RPC_CMD_SHM_ALLOC"
    assert decode_msg_arg(data).cmd_name == "OPTEE_MSG_CMD_DO_BOTTOM_HALF"
    assert decode_msg_arg(header(99, 0)).cmd_name == "unknown 0x63"
    none = arg.params[1]
    assert (none.type_name, none.view, none.fields) == ("OPTEE_MSG_ATTR_TYPE_NONE", None, ())


@pytest.mark.parametrize(("data", "message"), [
    (b"", "optee_msg_arg: 0 bytes, the header needs 32"),
    (bytes(31), "optee_msg_arg: 31 bytes, the header needs 32"),
    (header(0, 200), "optee_msg_arg: num_params 200 exceeds OPTEE_MSG_MAX_NUM_PARAMS (127)"),
    (header(0, 2) + bytes(40), "optee_msg_arg: num_params 2 needs 96 bytes (OPTEE_MSG_GET_ARG_SIZE), got 72"),
])
def test_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(MsgError) as err:
        decode_msg_arg(data)
    assert str(err.value) == message


def test_decode_notes() -> None:
    arg = decode_msg_arg(header(1, 2) + param(4, 1, 2, 3) + param(1 | 1 << 12 | 1 << 40))
    unknown, reserved = arg.params
    assert (unknown.type_name, unknown.view, unknown.fields, unknown.note) == (
        "unknown 0x4", None, (), "unknown attribute type 0x4")
    assert unknown.octets == struct.pack("<3Q", 1, 2, 3)
    assert (reserved.view, reserved.note) == ("value", "reserved attr bits set")


def test_make_param_and_encode() -> None:
    p = make_param(m.OPTEE_MSG_ATTR_TYPE_TMEM_INPUT, noncontig=True, cache=1, buf_ptr=0x1000, size=8)
    assert (p.attr, p.fields) == (0x9 | 1 << 9 | 1 << 16, (("buf_ptr", 0x1000), ("size", 8), ("shm_ref", 0)))
    arg = MsgArg(cmd=1, func=0x10, session=0x2A, cancel_id=7, pad=0, ret=0, ret_origin=0, params=(
        make_param(m.OPTEE_MSG_ATTR_TYPE_TMEM_INOUT, noncontig=True, buf_ptr=0x80001000, size=0x40,
                   shm_ref=0xFFFF000012345678),
        make_param(m.OPTEE_MSG_ATTR_TYPE_RMEM_INPUT, offs=0x10, size=0x20, shm_ref=0xFFFF00001234ABCD)))
    assert encode_msg_arg(arg) == invoke_bytes()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: make_param(m.OPTEE_MSG_ATTR_TYPE_VALUE_INPUT, offs=1),
     "optee_msg_param: OPTEE_MSG_ATTR_TYPE_VALUE_INPUT has no field offs"),
    (lambda: make_param(m.OPTEE_MSG_ATTR_TYPE_NONE, a=1),
     "optee_msg_param: OPTEE_MSG_ATTR_TYPE_NONE has no field a"),
    (lambda: make_param(m.OPTEE_MSG_ATTR_TYPE_VALUE_INPUT, a=1 << 64),
     "optee_msg_param: cannot encode u -> value -> a: struct '<Q' error during building, given value "
     "18446744073709551616"),
    (lambda: make_param(m.OPTEE_MSG_ATTR_TYPE_VALUE_INPUT, cache=8),
     "optee_msg_param: cannot encode attr -> cache: number 8 is out of range (min=0, max=7)"),
    (lambda: encode_msg_arg(MsgArg(0, 0, 0, 0, 0, 0, 0, params=(make_param(0),) * 128)),
     "optee_msg_arg: num_params 128 exceeds OPTEE_MSG_MAX_NUM_PARAMS (127)"),
    (lambda: encode_msg_arg(MsgArg(1 << 32, 0, 0, 0, 0, 0, 0)),
     "optee_msg_arg: cannot encode cmd: struct '<L' error during building, given value 4294967296"),
])
def test_encode_errors(call: Callable[[], object], message: str) -> None:
    with pytest.raises(MsgError) as err:
        call()
    assert str(err.value) == message


u32 = st.integers(0, 2**32 - 1)
param_bytes = st.builds(
    lambda t, meta, nc, cache, reserved, octets: struct.pack(
        "<Q", t | meta << 8 | nc << 9 | cache << 16 | reserved << 19) + octets,
    st.sampled_from(sorted(m.OPTEE_MSG_ATTR_TYPE_NAMES) + [4, 8, 0xFF]), st.booleans(), st.booleans(),
    st.integers(0, 7), st.integers(0, 2**45 - 1) | st.just(0), st.binary(min_size=24, max_size=24),
)


@given(st.tuples(u32, u32, u32, u32, u32, u32, u32), st.lists(param_bytes, max_size=6), st.booleans())
def test_round_trip(fields: tuple[int, ...], params: list[bytes], rpc: bool) -> None:
    data = struct.pack("<8I", *fields, len(params)) + b"".join(params)
    arg = decode_msg_arg(data, rpc=rpc)
    assert encode_msg_arg(arg) == data
    assert decode_msg_arg(encode_msg_arg(arg), rpc=rpc) == arg
    json.dumps(msg_json(arg))
    assert msg_text(arg).startswith("cmd")


@given(st.sampled_from(sorted(m.OPTEE_MSG_ATTR_TYPE_NAMES)), st.booleans(), st.integers(0, 7),
       st.lists(st.integers(0, 2**64 - 1), min_size=3, max_size=3))
def test_make_param_round_trip(attr_type: int, meta: bool, cache: int, values: list[int]) -> None:
    p = make_param(attr_type, meta=meta, cache=cache)
    names = [k for k, _ in p.fields]
    q = make_param(attr_type, meta=meta, cache=cache, **dict(zip(names, values, strict=False)))
    assert q.fields == tuple(zip(names, values, strict=False)) and (q.type, q.meta, q.cache) == (attr_type, meta, cache)


# parse_hex: the dumps below are real `hexdump -C`, `xxd`, `xxd -g1`, `od -Ax -tx1` output of invoke_bytes(),
# and print_hex_dump lines as lib/hexdump.c formats them.
INVOKE_HEXDUMP = """\
00000000  01 00 00 00 10 00 00 00  2a 00 00 00 07 00 00 00  |........*.......|
00000010  00 00 00 00 00 00 00 00  00 00 00 00 02 00 00 00  |................|
00000020  0b 02 00 00 00 00 00 00  00 10 00 80 00 00 00 00  |................|
00000030  40 00 00 00 00 00 00 00  78 56 34 12 00 00 ff ff  |@.......xV4.....|
00000040  05 00 00 00 00 00 00 00  10 00 00 00 00 00 00 00  |................|
00000050  20 00 00 00 00 00 00 00  cd ab 34 12 00 00 ff ff  | .........4.....|
00000060
"""
INVOKE_XXD = """\
00000000: 0100 0000 1000 0000 2a00 0000 0700 0000  ........*.......
00000010: 0000 0000 0000 0000 0000 0000 0200 0000  ................
00000020: 0b02 0000 0000 0000 0010 0080 0000 0000  ................
00000030: 4000 0000 0000 0000 7856 3412 0000 ffff  @.......xV4.....
00000040: 0500 0000 0000 0000 1000 0000 0000 0000  ................
00000050: 2000 0000 0000 0000 cdab 3412 0000 ffff   .........4.....
"""
INVOKE_OD = """\
000000 01 00 00 00 10 00 00 00 2a 00 00 00 07 00 00 00
000010 00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00
000020 0b 02 00 00 00 00 00 00 00 10 00 80 00 00 00 00
000030 40 00 00 00 00 00 00 00 78 56 34 12 00 00 ff ff
000040 05 00 00 00 00 00 00 00 10 00 00 00 00 00 00 00
000050 20 00 00 00 00 00 00 00 cd ab 34 12 00 00 ff ff
000060
"""
ZERO_HEXDUMP = """\
00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
00000010  00 00 00 00 00 00 00 00  00 00 00 00 01 00 00 00  |................|
00000020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000040
"""
INVOKE_HEX = invoke_bytes().hex()


@pytest.mark.parametrize(("text", "expected"), [
    (INVOKE_HEX, invoke_bytes()),
    ("\n".join(INVOKE_HEX[i:i + 32] for i in range(0, len(INVOKE_HEX), 32)), invoke_bytes()),
    (" ".join(INVOKE_HEX[i:i + 2] for i in range(0, len(INVOKE_HEX), 2)), invoke_bytes()),
    (":".join(INVOKE_HEX[i:i + 2] for i in range(0, len(INVOKE_HEX), 2)), invoke_bytes()),
    ("0x01, 0x0, 0X2a,\n0xff", b"\x01\x00\x2a\xff"),
    ("0x0100000010000000", bytes.fromhex("0100000010000000")),
    (INVOKE_HEXDUMP, invoke_bytes()),
    (INVOKE_XXD, invoke_bytes()),
    (INVOKE_OD, invoke_bytes()),
    (ZERO_HEXDUMP, header(0, 1) + bytes(32)),
    (ZERO_HEXDUMP.replace("00000000  ", "00000100  ").replace("00000040", "00000140"),  # offsets from 0x100
     header(0, 1) + bytes(32)),
    ("00000000: 01 00 00 00 10 00 00 00 2a 00 00 00 07 00 00 00  ........*.......\n"
     "00000010: 00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00  ................", invoke_bytes()[:32]),
    ("ffff0000c1a2b000: 01 00 00 00 10 00 00 00 2a 00 00 00 07 00 00 00\n"
     "ffff0000c1a2b010: 00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00", invoke_bytes()[:32]),
])
def test_parse_hex(text: str, expected: bytes) -> None:
    assert parse_hex(text) == expected


def test_parse_hex_kernel_words() -> None:
    # print_hex_dump(..., DUMP_PREFIX_OFFSET, 16, 4, buf, len, true) on a little-endian CPU.
    text = "00000000: 00000001 00000010 0000002a 00000007  ........*.......\n"
    assert parse_hex(text, words_le=True) == invoke_bytes()[:16]


def test_parse_hex_feeds_decode() -> None:
    assert decode_msg_arg(parse_hex(INVOKE_XXD)) == decode_msg_arg(invoke_bytes())


@pytest.mark.parametrize(("text", "message"), [
    ("01 0g", "parse_hex: line 1: '0g' is not hex bytes"),
    ("01 02\n123", "parse_hex: line 2: '123' is not hex bytes"),
    ("0x", "parse_hex: line 1: '0x' is not hex bytes"),
    ("[  1.0] optee: 01", "parse_hex: line 1: '[' is not hex bytes"),
    ("00000000: 0100 0000  ....\n*", "parse_hex: '*' (repeated lines) is not followed by an offset line"),
    ("00000000  01 02 03  |...|\n*\n00000010",
     "parse_hex: line 3: offset 0x10 does not follow '*' after 0x3 bytes"),
])
def test_parse_hex_errors(text: str, message: str) -> None:
    with pytest.raises(MsgError) as err:
        parse_hex(text)
    assert str(err.value) == message


def test_render() -> None:
    arg = decode_msg_arg(open_session_bytes())
    text = msg_text(arg)
    assert "OPTEE_MSG_CMD_OPEN_SESSION (0)" in text and str(TA) in text and str(CLIENT) in text
    assert "OPTEE_MSG_LOGIN_APPLICATION_USER (5)" in text and "VALUE_INPUT" in text and "META" in text
    doc = msg_json(arg)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["open_session"] == {"ta_uuid": str(TA), "client_uuid": str(CLIENT), "login": 5,
                                   "login_name": "OPTEE_MSG_LOGIN_APPLICATION_USER"}
    assert doc["params"][1]["fields"]["c"] == 5 and doc["num_params"] == 2
    noted = msg_json(decode_msg_arg(header(1, 1) + param(4, 1)))["params"][0]
    assert noted["note"] == "unknown attribute type 0x4" and noted["octets"] == "01" + "00" * 23
