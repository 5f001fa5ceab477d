"""Commands over the ABI: decode, encode, functions, caps, msg."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..abi.rpc import RPC_FUNCTIONS
from ..codec.caps import decode_caps
from ..codec.decode import Decoder
from ..codec.encode import (
    call_layout,
    encode_call,
    encode_return,
    return_layout,
    rpc_function,
)
from ..codec.msg import decode_msg_arg, parse_hex
from ..codec.values import InputError, parse_registers, parse_value
from ..render import jsonout, text
from ..render.msg import msg_json, msg_text
from .common import emit, format_option, profile_options, resolve_profile


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("registers", nargs=-1, required=True)
@click.option("--rpc", "rpc", metavar="FUNC", help="For RETURN_FROM_RPC: the RPC it answers (ALLOC, FREE, "
              "FOREIGN_INTR, CMD or a number), which selects its reply layout.")
@click.option("--decimal", is_flag=True, help="Read values as decimal instead of hexadecimal.")
@profile_options
@format_option("table", "json")
def decode(registers: tuple[str, ...], rpc: str | None, decimal: bool, profile: str,
           extensions: tuple[str, ...], fmt: str) -> None:
    """Decode one SMC: a function ID, up to eight register values, or aN=/xN=/wN=/rN= pairs.

    Values are hexadecimal with or without 0x, as traces print them; commas and parentheses
    copied from an ftrace line are ignored. --return A0 [A1 A2 A3] after the call's registers
    decodes the return too (the values up to the next option).

    \b
    Examples:
      smcwire decode 32000004
      smcwire decode 32000013 ffff5bf3 45cc9800 --return ffff0004 0 0 1
      smcwire decode "(32000012, 0, 4632c000, 0, 0, 0, 0, 0)"
      smcwire decode a0=0x32000003 a3=1 --rpc FOREIGN_INTR
      smcwire decode x0=0xb200000f --return 0 2 --format json
      smcwire decode 0x32000014 --profile sysinv-v1
    """
    call_tokens, ret = _split_return(registers)
    decoder = Decoder(resolve_profile(profile, extensions))
    rpc_num = None if rpc is None else rpc_function(_rpc_arg(rpc)).func
    call = decoder.call(parse_registers(call_tokens, decimal), rpc_num)
    result = decoder.ret(call, parse_registers(ret, decimal)) if ret is not None else None
    if fmt == "json":
        data = jsonout.call_json(call)
        if result is not None:
            data["return"] = jsonout.return_json(result)
        emit(data)
    else:
        click.echo(text.call_text(call) + ("\n\n" + text.return_text(result) if result is not None else ""))


def _split_return(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """The call's tokens and, after ``--return``, the return's (None without ``--return``)."""
    for t in tokens:
        if t.startswith("--") and t != "--return":
            raise InputError(f"no such option: {t}")
    if "--return" not in tokens:
        return tokens, None
    i = tokens.index("--return")
    if "--return" in tokens[i + 1:]:
        raise InputError("--return given twice")
    if not tokens[i + 1:]:
        raise InputError("--return needs at least a0")
    return tokens[:i], tokens[i + 1:]


def _rpc_arg(rpc: str) -> int | str:
    return int(rpc, 0) if rpc[:1].isdigit() else rpc.upper()


@click.command()
@click.argument("function")
@click.argument("fields", nargs=-1)
@click.option("--return", "as_return", is_flag=True, help="Encode the function's return instead of its call.")
@click.option("--rpc", metavar="FUNC", help="With --return: an RPC request of this function (ALLOC, FREE, "
              "FOREIGN_INTR, CMD); with OPTEE_SMC_CALL_RETURN_FROM_RPC: the reply to it.")
@click.option("--decimal", is_flag=True, help="Read values as decimal instead of hexadecimal.")
@profile_options
@format_option("table", "json", "regs")
def encode(function: str, fields: tuple[str, ...], as_return: bool, rpc: str | None, decimal: bool, profile: str,
           extensions: tuple[str, ...], fmt: str) -> None:
    """Encode FUNCTION with field=value pairs into the eight registers a0-a7.

    Fields not given are 0. Values are hexadecimal unless --decimal (0x prefix optional). A
    register that is not a field can be set by name (a5=1) to build deliberately bad calls.

    \b
    Examples:
      smcwire encode OPTEE_SMC_CALL_WITH_REGD_ARG cookie=ffff5bf345cc9800 offset=180
      smcwire encode OPTEE_SMC_EXCHANGE_CAPABILITIES --return status=0 sec_caps=f5 rpc_param_count=4
      smcwire encode OPTEE_SMC_CALL_WITH_ARG --return --rpc ALLOC size=1000 thread_id=1
      smcwire encode PSCI_0_2_FN64_CPU_ON target_cpu=1 entry_point_address=40080000 --format regs
    """
    prof = resolve_profile(profile, extensions)
    values = {}
    for item in fields:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise InputError(f"{item!r}: expected field=value")
        values[name] = parse_value(raw, decimal)
    rpc_arg = None if rpc is None else _rpc_arg(rpc)
    if as_return:
        regs = encode_return(function, values, prof, rpc=rpc_arg)
        layout = return_layout(function, regs[0] & 0xFFFFFFFF, prof, rpc=rpc_arg)
    else:
        regs = encode_call(function, values, prof, rpc=rpc_arg)
        layout = call_layout(function, prof, rpc=rpc_arg)
    if fmt == "json":
        emit(jsonout.registers_json(regs))
    elif fmt == "regs":
        click.echo(" ".join(f"a{i}={v:#x}" for i, v in enumerate(regs)))
    else:
        click.echo(text.registers_text(regs, layout, "RPC code" if as_return else "function ID"))


@click.command()
@click.option("--family", type=click.Choice(["SMCCC", "PSCI", "OP-TEE", "extension"]),
              help="Only functions of this family.")
@click.option("--rpc", is_flag=True, help="List the OP-TEE RPC functions (0xFFFF0000 | func) instead.")
@profile_options
@format_option("table", "json", "markdown")
def functions(family: str | None, rpc: bool, profile: str, extensions: tuple[str, ...], fmt: str) -> None:
    """The reference table: every function of a profile with its layouts and source.

    \b
    Examples:
      smcwire functions --family OP-TEE
      smcwire functions --profile sysinv-v2 --format json
      smcwire functions --rpc
    """
    tablefmt = "github" if fmt == "markdown" else "simple"
    if rpc:
        rpcs = list(RPC_FUNCTIONS.values())
        if fmt == "json":
            emit([jsonout.rpc_json(r) for r in rpcs])
        else:
            click.echo(text.rpc_text(rpcs, tablefmt))
        return
    prof = resolve_profile(profile, extensions)
    chosen = sorted((f for f in prof.functions if family is None or f.family == family),
                    key=lambda f: (f.family, f.owner, f.fast, f.number, f.smc64))
    if fmt == "json":
        emit([jsonout.function_json(f) for f in chosen])
    else:
        click.echo(text.functions_text(chosen, tablefmt))


@click.command()
@click.argument("value")
@click.option("--nsec", is_flag=True, help="A normal-world (NSEC) mask, as passed in a1 of EXCHANGE_CAPABILITIES.")
@click.option("--decimal", is_flag=True, help="Read the value as decimal.")
@profile_options
@format_option("table", "json")
def caps(value: str, nsec: bool, decimal: bool, profile: str, extensions: tuple[str, ...], fmt: str) -> None:
    """Decode a capability mask (secure-world by default) in a profile.

    \b
    Examples:
      smcwire caps f5                       # OP-TEE 4.10 under QEMU
      smcwire caps 0x80 --profile sysinv-v1  # bit 7: SYSTEM_THREAD, not RPMB_PROBE
      smcwire caps 1 --nsec
    """
    prof = resolve_profile(profile, extensions)
    result = decode_caps(parse_value(value, decimal, bits=32), nsec, prof)
    if fmt == "json":
        emit(jsonout.caps_json(result))
    else:
        click.echo(text.caps_text(result, (prof.nsec_caps if nsec else prof.sec_caps).flags))


@click.command()
@click.argument("data")
@click.option("--rpc", is_flag=True, help="The message of an RPC (OPTEE_RPC_CMD_* command names).")
@format_option("table", "json")
def msg(data: str, rpc: bool, fmt: str) -> None:
    """Decode a struct optee_msg_arg from hex (a dump as hexdump -C, xxd or the kernel print), or
    from @FILE, or @- for stdin.

    \b
    Examples:
      smcwire msg @arg.hex
      smcwire msg "01000000 00000000 ..." --format json
    """
    if data.startswith("@"):
        source = data[1:]
        try:
            raw = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise InputError(f"{source}: cannot read: {e.strerror}") from None
    else:
        raw = data
    arg = decode_msg_arg(parse_hex(raw), rpc=rpc)
    if fmt == "json":
        emit(msg_json(arg))
    else:
        click.echo(msg_text(arg))
