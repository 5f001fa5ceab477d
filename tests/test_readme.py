"""README.md tells the truth: CI runs its test command, and its main job decodes a real line of
a shipped trace into the output it shows."""

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from smcwire.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    command = re.search(r'^TEST_COMMAND="(.*)"$', ci, re.M).group(1)
    assert f"\n{command}\n" in README


def test_main_job_reads_the_shipped_trace_as_shown():
    job = re.search(r"^python3 -m venv .venv && .venv/bin/pip install -q \. && \.venv/bin/smcwire (.*)$",
                    README, re.M).group(1)
    result = CliRunner().invoke(cli, shlex.split(job))
    shown = README.split("then the line accounting on stderr:\n\n```\n")[1].split("\n```")[0]
    head, tail = shown.split("\n...\n")
    assert result.exit_code == 0 and result.stdout.startswith(head)
    assert result.stderr.strip() == tail.strip()


def test_decode_example_is_lines_13_14_of_the_trace_and_prints_as_shown():
    example = re.search(r"Any single SMC decodes register by register: `smcwire (.*?)`", README, re.S).group(1)
    args = shlex.split(example.replace("\n", " "))
    lines = (ROOT / "traces/qemu-dbg-probe/ftrace.txt").read_text().splitlines()
    begin, end = lines[12], lines[13]
    i = args.index("--return")
    assert f"({', '.join(args[1:i])})" in begin and "optee_invoke_fn_begin" in begin
    assert f"ret ({', '.join(args[i + 1:])})" in end and "optee_invoke_fn_end" in end
    out = CliRunner().invoke(cli, args).output
    shown = README.split("(lines 13-14 above) prints\n\n```\n")[1].split("\n...\n")[0]
    assert out.startswith(shown)
