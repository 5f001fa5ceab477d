"""The command-line contract, command by command: bad usage and bad input exit 2 with one line on
stderr naming the problem and nothing on stdout that could pass for results."""

import pytest
from click.testing import CliRunner

from smcwire.cli import cli

COMMANDS = sorted(cli.commands)
READERS = ["analyze", "check", "explain", "parse", "regs", "stats", "watch"]  # commands that read files
BAD_INPUT = {  # a value each command rejects
    "decode": ["zz-not-hex"], "encode": ["OPTEE_SMC_NO_SUCH_FUNCTION"], "caps": ["0xzz"], "msg": ["nothex!"],
    "functions": ["--family", "nosuchfamily"], "rules": ["--format", "xml"], "tracing-setup": ["--arch", "mips"],
}


def _one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    return result.stderr


def test_every_command_is_covered():
    assert set(COMMANDS) == set(READERS) | set(BAD_INPUT)


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_option(command):
    assert "--no-such-option" in _one_line_error(CliRunner().invoke(cli, [command, "--no-such-option"]))


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("fmt", [None, "json"])
def test_missing_file(command, fmt, tmp_path):
    args = [command, str(tmp_path / "missing.txt")]
    if fmt and command not in ("watch", "regs"):
        args += ["--format", fmt]
    assert "missing.txt: no such file" in _one_line_error(CliRunner().invoke(cli, args))


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_value(command):
    _one_line_error(CliRunner().invoke(cli, [command, *BAD_INPUT[command]]))


def test_check_documents_its_exit_statuses():
    text = " ".join(CliRunner().invoke(cli, ["check", "--help"]).stdout.split())
    assert "0 no finding at or above --fail-on, 1 such findings, 2 bad usage or input" in text
