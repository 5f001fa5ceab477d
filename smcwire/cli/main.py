"""The ``smcwire`` command group; the commands live in ``abi_cmds`` and ``trace_cmds``."""

from __future__ import annotations

import gc
import io
import sys

import click

from .. import __version__
from . import abi_cmds, analysis_cmds, trace_cmds, watch_cmd
from .common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smcwire")
def cli() -> None:
    """Decode and encode OP-TEE SMC calls (SMCCC, PSCI, OP-TEE SMC ABI).

    \b
    Examples:
      smcwire decode 32000004 0 4632c000
      smcwire decode b2000009 --return 0 f5 42 4
      smcwire encode OPTEE_SMC_CALL_WITH_ARG arg_pa=0x4632c000 --format regs
      smcwire functions --family OP-TEE
      smcwire caps 0xf5
    """


for _command in (abi_cmds.decode, abi_cmds.encode, abi_cmds.functions, abi_cmds.caps, abi_cmds.msg,
                 trace_cmds.parse, trace_cmds.regs, trace_cmds.tracing_setup, analysis_cmds.analyze,
                 analysis_cmds.check, analysis_cmds.stats, analysis_cmds.explain, analysis_cmds.rules,
                 watch_cmd.watch):
    cli.add_command(_command)


def main() -> None:
    # A trace makes millions of short-lived containers (events, steps, flows) and almost no
    # reference cycles: collecting the young generation every 100,000 allocations instead of
    # every 700 takes a tenth off `analyze`, and the little cyclic garbage stays bounded.
    gc.set_threshold(100_000, 50, 100)
    _block_buffered_stdout()
    cli(prog_name="smcwire")


def _block_buffered_stdout() -> None:
    """Bulk output (a flow a line) to a file or a pipe goes out in blocks, as grep's does, even
    under PYTHONUNBUFFERED / ``python -u``, whose stdout makes a system call of every write (1.6 s
    for the 45,000 flows of a 1,000,000-line trace); a terminal keeps its line buffering."""
    out = sys.stdout
    raw = getattr(out, "buffer", None)
    if isinstance(out, io.TextIOWrapper) and isinstance(raw, io.RawIOBase) and not out.isatty():
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors)
