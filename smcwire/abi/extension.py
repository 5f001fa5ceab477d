"""ABI extensions from TOML: vendor functions (a SiP call, a downstream OP-TEE function, a vendor
kernel's reuse of numbers 13-17) defined without code, built into the same Construct layouts.

Format (every key but ``name``, ``id`` and the register ``reg`` is optional)::

    [[function]]
    name = "RTK_SMC_SET_LOGBUF"          # identifier, as the vendor header names it
    id = 0xB2000011                      # 32-bit function ID
    summary = "set the log buffer"
    source = "vendor kernel optee_smc.h"
    replaces = true                      # required to redefine an ID the profile knows
    call = [                             # a0 is the ID; registers not listed are "not used"
      { reg = "a1:a2", name = "buf_pa", doc = "physical address of the buffer" },
      { reg = "a3", name = "size", width = 32 },
      { reg = "a7", role = "must be zero" },
    ]
    returns = [                          # the return layout; a0 usually the status
      { reg = "a0", name = "status", names = "optee" },   # optee | smccc | psci | { "0" = "OK" }
      { reg = "a1", name = "flags", flags = { LOGBUF_ON = 1, LOGBUF_WRAP = 2 } },
    ]
    [function.returns_by_status]         # optional: layouts for particular a0 values
    0 = [ { reg = "a0", name = "status", names = "optee" }, { reg = "a1", name = "value" } ]

Roles: field (default), "not used", "preserved", "must be zero", "resume information".
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import construct as c

from .function import DEFAULT, Function
from .optee import OPTEE_SMC_RETURN
from .profiles import Profile
from .psci import PSCI_RETURN
from .regs import NREGS, Pair, Reg, Role, layout, not_used
from .smccc import SMCCC_RETURN

NAMED_TABLES = {"optee": OPTEE_SMC_RETURN, "smccc": SMCCC_RETURN, "psci": PSCI_RETURN}
_ROLES = {r.value: r for r in Role}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REG = re.compile(r"a([0-7])(?::a([0-7]))?")
_FUNCTION_KEYS = {"name", "id", "summary", "source", "replaces", "call", "returns", "returns_by_status"}
_REG_KEYS = {"reg", "name", "doc", "width", "role", "names", "flags"}


class ExtensionError(ValueError):
    """A malformed extension file; the message names the file and the key."""


def load_extension(path: str | Path, profile: Profile) -> Profile:
    """``profile`` extended with the functions of the TOML file at ``path``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ExtensionError(f"{path}: cannot read: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ExtensionError(f"{path}: invalid TOML: {e}") from None
    return profile.with_functions(parse_extension(data, profile, str(path)), name=f"{profile.name}+{path.name}")


def parse_extension(data: Mapping[str, Any], profile: Profile, where: str = "<extension>") -> tuple[Function, ...]:
    """The functions of an already-parsed extension document."""
    unknown = set(data) - {"function"}
    if unknown:
        raise ExtensionError(f"{where}: unknown top-level key {sorted(unknown)[0]!r} (expected [[function]])")
    entries = data.get("function")
    if not isinstance(entries, list) or not entries:
        raise ExtensionError(f"{where}: no [[function]] entries")
    functions = [_function(e, f"{where}: function[{i}]", profile) for i, e in enumerate(entries)]
    seen: dict[int, str] = {}
    names: set[str] = set()
    for f in functions:
        if f.id in seen:
            raise ExtensionError(f"{where}: {f.name} and {seen[f.id]} share ID {f.id:#010x}")
        if f.name in names:
            raise ExtensionError(f"{where}: function name {f.name} is defined twice")
        seen[f.id] = f.name
        names.add(f.name)
    return tuple(functions)


def _function(entry: Any, where: str, profile: Profile) -> Function:
    if not isinstance(entry, dict):
        raise ExtensionError(f"{where}: expected a table")
    _no_unknown(entry, _FUNCTION_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise ExtensionError(f"{where}: key 'name' must be an identifier, got {name!r}")
    where = f"{where} ({name})"
    fid = entry.get("id")
    if isinstance(fid, bool) or not isinstance(fid, int) or not 0 <= fid <= 0xFFFFFFFF:
        raise ExtensionError(f"{where}: key 'id' must be a 32-bit integer, got {fid!r}")
    replaces = entry.get("replaces", False)
    if not isinstance(replaces, bool):
        raise ExtensionError(f"{where}: key 'replaces' must be true or false")
    known = profile.by_id.get(fid)
    if known is not None and known.name != name and not replaces:
        raise ExtensionError(f"{where}: id {fid:#010x} is {known.name} in profile {profile.name}; "
                             "set replaces = true to redefine it")
    same_name = profile.by_name.get(name)
    if same_name is not None and same_name.id != fid and not replaces:
        raise ExtensionError(f"{where}: {name} is {same_name.id:#010x} in profile {profile.name}; "
                             "set replaces = true to redefine it")
    call = _layout(entry.get("call", []), f"{where}: key 'call'", c.Const(fid, c.Int64ul))
    returns: dict[int | None, c.Struct] = {DEFAULT: _layout(entry.get("returns", []), f"{where}: key 'returns'")}
    by_status = entry.get("returns_by_status", {})
    if not isinstance(by_status, dict):
        raise ExtensionError(f"{where}: key 'returns_by_status' must be a table")
    for key, regs in by_status.items():
        try:
            status = int(key, 0)
        except ValueError:
            status = -1
        if not 0 <= status <= 0xFFFFFFFF:
            raise ExtensionError(f"{where}: key 'returns_by_status.{key}' is not a 32-bit status value")
        returns[status] = _layout(regs, f"{where}: key 'returns_by_status.{key}'")
    for key in ("summary", "source"):
        if not isinstance(entry.get(key, ""), str):
            raise ExtensionError(f"{where}: key '{key}' must be a string")
    return Function(name, fid, entry.get("summary", ""), entry.get("source", where.split(":")[0]),
                    call, returns, family="extension")


def _layout(regs: Any, where: str, a0: c.Construct | None = None) -> c.Struct:
    if not isinstance(regs, list):
        raise ExtensionError(f"{where} must be an array of register tables")
    slots: list[c.Construct | None] = [a0] + [None] * (NREGS - 1)
    for i, spec in enumerate(regs):
        here = f"{where}[{i}]"
        if not isinstance(spec, dict):
            raise ExtensionError(f"{here} must be a table like {{ reg = \"a1\", name = \"x\" }}")
        _no_unknown(spec, _REG_KEYS, here)
        m = _REG.fullmatch(str(spec.get("reg", "")))
        if m is None or (m.group(2) is not None and int(m.group(2)) != int(m.group(1)) + 1):
            raise ExtensionError(f"{here}.reg must be a register a0-a7 or a pair aN:aN+1, got {spec.get('reg')!r}")
        first = int(m.group(1))
        covered = [first, first + 1] if m.group(2) else [first]
        if any(slots[r] is not None for r in covered):
            what = "a0 is the function ID" if first == 0 and a0 is not None else f"{spec['reg']} is given twice"
            raise ExtensionError(f"{here}.reg: {what}")
        member = _register(spec, here, pair=len(covered) == 2)
        slots[first] = member
        if len(covered) == 2:
            slots[first + 1] = c.Pass  # marks the second half as taken
    members = [s for s in slots if s is not c.Pass]
    struct = layout(*(m if m is not None else not_used() for m in members))
    names = [m.name for m in struct.subcons]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ExtensionError(f"{where}: name {twice[0]!r} is used twice (a register not listed is named aN)")
    return struct


def _register(spec: dict[str, Any], where: str, pair: bool) -> c.Construct:
    role = _ROLES.get(spec.get("role", "field"))
    if role is None:
        raise ExtensionError(f"{where}.role is {spec.get('role')!r}; use one of {', '.join(map(repr, _ROLES))}")
    name = spec.get("name", spec["reg"].split(":")[0])
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise ExtensionError(f"{where}.name must be an identifier, got {name!r}")
    doc = spec.get("doc", "" if role is Role.FIELD else role.value)
    if not isinstance(doc, str):
        raise ExtensionError(f"{where}.doc must be a string")
    if pair:
        if {"width", "names", "flags"} & set(spec):
            raise ExtensionError(f"{where}: a register pair is one 64-bit value; width, names and flags do not apply")
        return name / Pair(doc, role=role)
    width = spec.get("width", 32)
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 64:
        raise ExtensionError(f"{where}.width must be an integer from 1 to 64, got {width!r}")
    return name / Reg(doc, role=role, width=width, names=_names(spec.get("names"), where),
                      flags=_flags(spec.get("flags"), where))


def _names(names: Any, where: str) -> Mapping[int, str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        if names not in NAMED_TABLES:
            raise ExtensionError(f"{where}.names must be one of {', '.join(NAMED_TABLES)} or a table")
        return NAMED_TABLES[names]
    if not isinstance(names, dict):
        raise ExtensionError(f"{where}.names must be a string or a table of value = name")
    out = {}
    for key, text in names.items():
        try:
            out[int(key, 0)] = str(text)
        except ValueError:
            raise ExtensionError(f"{where}.names.{key}: not an integer value") from None
    return out


def _flags(flags: Any, where: str) -> c.FlagsEnum | None:
    if flags is None:
        return None
    if not isinstance(flags, dict) or not all(
            _IDENT.fullmatch(k) and isinstance(v, int) and not isinstance(v, bool) and v > 0
            for k, v in flags.items()):
        raise ExtensionError(f"{where}.flags must be a table of IDENTIFIER = bit value (> 0)")
    return c.FlagsEnum(c.Int32ul, **flags)


def _no_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ExtensionError(f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")
