"""What the commands share: the group that turns input errors into one line and exit status 2,
JSON output, and the --profile/--abi-extension/--format options."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from ..abi.extension import ExtensionError, load_extension
from ..abi.profiles import DEFAULT_PROFILE, PROFILE_NAMES, Profile, get_profile
from ..abi.regs import EncodeError
from ..codec.msg import MsgError
from ..codec.values import InputError
from ..sources.io import InputFileError

EXIT_FINDINGS = 1
EXIT_INPUT = 2


class InputFailure(click.ClickException):
    """Bad input or usage: one line on stderr, exit status 2."""

    exit_code = EXIT_INPUT


_INPUT_ERRORS = (InputError, EncodeError, ExtensionError, MsgError, InputFileError)
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2 shows help this way


class Group(click.Group):
    """Turns smcwire's input errors and click's usage errors into one line and exit status 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as e:
            raise InputFailure(e.format_message()) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _INPUT_ERRORS as e:
            raise InputFailure(str(e)) from None
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as e:
            raise InputFailure(e.format_message()) from None


def echo(line: str) -> None:
    """One line of bulk output (a flow, a finding) to stdout, buffered: ``click.echo`` flushes
    each line, which costs more than rendering it."""
    sys.stdout.write(line + "\n")


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def profile_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--profile and --abi-extension (resolved by ``_profile``)."""
    f = click.option("--abi-extension", "extensions", multiple=True, type=click.Path(dir_okay=False),
                     help="TOML file of extra function definitions (repeatable).")(f)
    return click.option("--profile", type=click.Choice(PROFILE_NAMES), default=DEFAULT_PROFILE,
                        show_default=True, help="ABI generation the values are read in.")(f)


def resolve_profile(name: str, extensions: tuple[str, ...]) -> Profile:
    profile = get_profile(name)
    for path in extensions:
        profile = load_extension(path, profile)
    return profile


def format_option(*choices: str) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
                        help="Output format.")


