"""PSCI function table: IDs against abi.md §11, ID bits, layouts and return-code names."""

from __future__ import annotations

import pytest

from smcwire.abi import psci
from smcwire.abi.function import Function
from smcwire.abi.regs import NREGS, pack, unpack

# abi.md §11, copied literally: base name -> (SMC32 ID or None, SMC64 ID or None, PSCI version).
EXPECTED = {
    "PSCI_VERSION": (0x84000000, None, "0.2"),
    "CPU_SUSPEND": (0x84000001, 0xC4000001, "0.2"),
    "CPU_OFF": (0x84000002, None, "0.2"),
    "CPU_ON": (0x84000003, 0xC4000003, "0.2"),
    "AFFINITY_INFO": (0x84000004, 0xC4000004, "0.2"),
    "MIGRATE": (0x84000005, 0xC4000005, "0.2"),
    "MIGRATE_INFO_TYPE": (0x84000006, None, "0.2"),
    "MIGRATE_INFO_UP_CPU": (0x84000007, 0xC4000007, "0.2"),
    "SYSTEM_OFF": (0x84000008, None, "0.2"),
    "SYSTEM_RESET": (0x84000009, None, "0.2"),
    "PSCI_FEATURES": (0x8400000A, None, "1.0"),
    "CPU_FREEZE": (0x8400000B, None, "1.0"),
    "CPU_DEFAULT_SUSPEND": (0x8400000C, 0xC400000C, "1.0"),
    "NODE_HW_STATE": (0x8400000D, 0xC400000D, "1.0"),
    "SYSTEM_SUSPEND": (0x8400000E, 0xC400000E, "1.0"),
    "SET_SUSPEND_MODE": (0x8400000F, None, "1.0"),
    "STAT_RESIDENCY": (0x84000010, 0xC4000010, "1.0"),
    "STAT_COUNT": (0x84000011, 0xC4000011, "1.0"),
    "SYSTEM_RESET2": (0x84000012, 0xC4000012, "1.1"),
    "MEM_PROTECT": (0x84000013, None, "1.1"),
    "MEM_PROTECT_CHECK_RANGE": (0x84000014, 0xC4000014, "1.1"),
    "SYSTEM_OFF2": (0x84000015, 0xC4000015, "1.3"),
    "CLEAN_INV_MEMREGION": (None, 0xC4000016, "1.3"),
    "CLEAN_INV_MEMREGION_ATTRIBUTES": (0x84000017, None, "1.3"),
}


def _expected_ids() -> dict[str, int]:
    """Linux-style names (PSCI_<ver>_FN[64]_<name>) -> ID, from EXPECTED."""
    out = {}
    for base, (id32, id64, ver) in EXPECTED.items():
        prefix = "PSCI_" + ver.replace(".", "_")
        if id32 is not None:
            out[f"{prefix}_FN_{base}"] = id32
        if id64 is not None:
            out[f"{prefix}_FN64_{base}"] = id64
    return out


BY_NAME = {f.name: f for f in psci.FUNCTIONS}
IDS = pytest.mark.parametrize("fn", psci.FUNCTIONS, ids=lambda f: f.name)


def test_ids_match_abi_md() -> None:
    assert {f.name: f.id for f in psci.FUNCTIONS} == _expected_ids()
    assert len(BY_NAME) == len(psci.FUNCTIONS)


@pytest.mark.parametrize("name", sorted(_expected_ids()))
def test_module_constant(name: str) -> None:
    assert getattr(psci, name) == _expected_ids()[name]


def test_linux_uapi_names() -> None:
    for name in ("PSCI_0_2_FN_PSCI_VERSION", "PSCI_0_2_FN_CPU_SUSPEND", "PSCI_0_2_FN64_CPU_SUSPEND",
                 "PSCI_1_0_FN_PSCI_FEATURES", "PSCI_1_1_FN_SYSTEM_RESET2", "PSCI_1_1_FN64_SYSTEM_RESET2"):
        assert name in BY_NAME
    assert psci.PSCI_1_1_FN_MEM_PROTECT_CHECK_RANGE == 0x84000014  # not the uapi slip 0x84000013


def test_fn_macros() -> None:
    assert psci.PSCI_0_2_FN(0) == 0x84000000
    assert psci.PSCI_0_2_FN64(0x12) == 0xC4000012


@IDS
def test_id_bits(fn: Function) -> None:
    assert fn.fast
    assert fn.owner == 4  # Standard Secure Service
    assert fn.smc64 == ("_FN64_" in fn.name)
    assert fn.family == "PSCI"
    assert fn.number == fn.id & 0xFFFF
    assert fn.extra["psci"] == fn.name.split("_FN")[0].removeprefix("PSCI_").replace("_", ".")


@IDS
def test_layouts_cover_eight_registers(fn: Function) -> None:
    assert fn.call.sizeof() == NREGS * 8
    for lay in fn.returns.values():
        assert lay.sizeof() == NREGS * 8


def _values(fn: Function) -> dict[str, int]:
    """A distinct value per field, using the field's full width."""
    return {s.name: (0x0123_4567_89AB_CDEF * (i + 1)) & s.mask
            for i, s in enumerate(fn.call_layout.fields)}


@IDS
def test_call_round_trip(fn: Function) -> None:
    fields = _values(fn)
    others = {s.name: 0 for s in fn.call_layout.slots if s.name not in fields}
    raw = fn.call.build({**fields, **others})
    regs = unpack(raw)
    assert regs[0] == fn.id
    assert pack(regs) == raw
    parsed = fn.call.parse(raw)
    for name, value in fields.items():
        assert parsed[name] == value
        assert fn.call_layout.slot(name).get(regs) == value


def test_smc32_args_are_32_bit_smc64_native() -> None:
    lay = BY_NAME["PSCI_0_2_FN_CPU_ON"].call_layout
    assert [(s.name, s.regs, s.mask) for s in lay.fields] == [
        ("target_cpu", "a1", 0xFFFF_FFFF), ("entry_point_address", "a2", 0xFFFF_FFFF),
        ("context_id", "a3", 0xFFFF_FFFF)]
    lay = BY_NAME["PSCI_0_2_FN64_CPU_SUSPEND"].call_layout
    assert [(s.name, s.mask.bit_length()) for s in lay.fields] == [
        ("power_state", 32), ("entry_point_address", 64), ("context_id", 64)]
    # uint32 arguments stay 32 bits wide in SMC64 calls (TF-A psci_smc_handler casts them).
    assert BY_NAME["PSCI_1_1_FN64_SYSTEM_RESET2"].call_layout.slot("reset_type").mask == 0xFFFF_FFFF
    assert BY_NAME["PSCI_1_1_FN64_SYSTEM_RESET2"].call_layout.slot("cookie").mask == (1 << 64) - 1


@pytest.mark.parametrize(("name", "args"), [
    ("PSCI_0_2_FN_CPU_SUSPEND", ["power_state", "entry_point_address", "context_id"]),
    ("PSCI_0_2_FN64_CPU_ON", ["target_cpu", "entry_point_address", "context_id"]),
    ("PSCI_0_2_FN_AFFINITY_INFO", ["target_affinity", "lowest_affinity_level"]),
    ("PSCI_0_2_FN64_MIGRATE", ["target_cpu"]),
    ("PSCI_1_0_FN_PSCI_FEATURES", ["psci_func_id"]),
    ("PSCI_1_0_FN64_SYSTEM_SUSPEND", ["entry_point_address", "context_id"]),
    ("PSCI_1_0_FN_SET_SUSPEND_MODE", ["mode"]),
    ("PSCI_1_0_FN64_STAT_COUNT", ["target_cpu", "power_state"]),
    ("PSCI_1_0_FN_NODE_HW_STATE", ["target_cpu", "power_level"]),
    ("PSCI_1_1_FN64_SYSTEM_RESET2", ["reset_type", "cookie"]),
    ("PSCI_1_1_FN_MEM_PROTECT", ["enable"]),
    ("PSCI_1_1_FN64_MEM_PROTECT_CHECK_RANGE", ["base", "length"]),
    ("PSCI_1_3_FN64_SYSTEM_OFF2", ["type", "cookie"]),
    ("PSCI_1_3_FN64_CLEAN_INV_MEMREGION", ["base", "size", "timeout", "flags"]),
    ("PSCI_0_2_FN_CPU_OFF", []),
])
def test_arguments(name: str, args: list[str]) -> None:
    assert list(BY_NAME[name].call_layout.field_names) == args


@pytest.mark.parametrize(("value", "name"), [
    (0, "PSCI_RET_SUCCESS"),
    (0xFFFFFFFF, "PSCI_RET_NOT_SUPPORTED"),
    (0xFFFFFFFE, "PSCI_RET_INVALID_PARAMS"),
    (0xFFFFFFFC, "PSCI_RET_ALREADY_ON"),
    (0xFFFFFFF7, "PSCI_RET_INVALID_ADDRESS"),
    (0xFFFFFFF4, "PSCI_RET_BUSY"),
])
def test_return_code_names(value: int, name: str) -> None:
    assert psci.PSCI_RETURN[value] == name
    assert getattr(psci, name) == value


@pytest.mark.parametrize(("name", "a0", "expected"), [
    ("PSCI_0_2_FN_CPU_ON", "status", {0xFFFFFFFC: "PSCI_RET_ALREADY_ON"}),
    ("PSCI_0_2_FN64_CPU_ON", "status", {0: "PSCI_RET_SUCCESS"}),
    ("PSCI_0_2_FN_PSCI_VERSION", "version", {0x10001: "1.1", 0x2: "0.2"}),
    ("PSCI_0_2_FN64_AFFINITY_INFO", "state", {1: "PSCI_0_2_AFFINITY_LEVEL_OFF",
                                             0xFFFFFFFE: "PSCI_RET_INVALID_PARAMS"}),
    ("PSCI_0_2_FN_MIGRATE_INFO_TYPE", "type", {2: "PSCI_0_2_TOS_MP", 0xFFFFFFFF: "PSCI_RET_NOT_SUPPORTED"}),
    ("PSCI_1_0_FN_PSCI_FEATURES", "features", {0xFFFFFFFF: "PSCI_RET_NOT_SUPPORTED"}),
])
def test_return_names(name: str, a0: str, expected: dict[int, str]) -> None:
    slot = BY_NAME[name].return_layout(0).slot(a0)
    assert slot is not None and slot.reg == 0
    for value, text in expected.items():
        assert slot.names[value] == text


@pytest.mark.parametrize(("name", "a0", "bits"), [
    ("PSCI_0_2_FN_MIGRATE_INFO_UP_CPU", "cpu", 32),
    ("PSCI_0_2_FN64_MIGRATE_INFO_UP_CPU", "cpu", 64),
    ("PSCI_1_0_FN_STAT_RESIDENCY", "value", 32),
    ("PSCI_1_0_FN64_STAT_RESIDENCY", "value", 64),
    ("PSCI_1_0_FN64_STAT_COUNT", "value", 64),
    ("PSCI_0_2_FN64_CPU_SUSPEND", "status", 32),
])
def test_return_widths(name: str, a0: str, bits: int) -> None:
    fn = BY_NAME[name]
    slot = fn.return_layout(0).slot(a0)
    assert slot.mask.bit_length() == bits
    value = (1 << bits) - 2
    parsed = fn.returns[None].parse(pack((value,)))
    assert parsed[a0] == value


def test_status_in_smc64_return_is_low_32_bits() -> None:
    # TF-A returns (u_register_t)(int) errors: sign-extended in x0.
    fn = BY_NAME["PSCI_0_2_FN64_CPU_ON"]
    parsed = fn.returns[None].parse(pack((-4 & ((1 << 64) - 1),)))
    assert psci.PSCI_RETURN[parsed.status] == "PSCI_RET_ALREADY_ON"


def test_value_dicts() -> None:
    assert psci.AFFINITY_INFO_STATE == {0: "PSCI_0_2_AFFINITY_LEVEL_ON", 1: "PSCI_0_2_AFFINITY_LEVEL_OFF",
                                        2: "PSCI_0_2_AFFINITY_LEVEL_ON_PENDING"}
    assert sorted(psci.MIGRATE_INFO_TYPE) == [0, 1, 2]


def test_version_word() -> None:
    assert psci.PSCI_VERSION(1, 1) == 0x10001
    assert psci.version_str(0x10003) == "1.3"
    assert psci.version_str(0x2) == "0.2"
    parsed = psci.VERSION_WORD.parse((0x10002).to_bytes(4, "little"))
    assert (parsed.major, parsed.minor) == (1, 2)
    assert psci.PSCI_VERSION_MAJOR_MASK == 0xFFFF0000
