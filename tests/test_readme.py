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


def _block(after: str) -> str:
    return README.split(after + "\n\n```\n")[1].split("\n```")[0]


def test_main_job_analyzes_the_shipped_capture_as_shown(monkeypatch):
    monkeypatch.chdir(ROOT)
    job = re.search(r"^python3 -m venv .venv && .venv/bin/pip install -q \. && \.venv/bin/smcwire (.*)$",
                    README, re.M).group(1)
    result = CliRunner().invoke(cli, shlex.split(job))
    head, tail = _block("then a summary of the capture:").split("\n...\n")
    assert result.exit_code == 0 and result.stdout.startswith(head) and result.stdout.rstrip().endswith(tail)


def test_parse_check_and_explain_examples_print_as_shown(monkeypatch):
    monkeypatch.chdir(ROOT)
    head, tail = _block("with the line accounting on stderr:").split("\n...\n")
    parsed = CliRunner().invoke(cli, ["parse", "traces/qemu-dbg-probe/ftrace.txt"])
    assert parsed.stdout.startswith(head) and parsed.stderr.strip() == tail.strip()
    checked = CliRunner().invoke(cli, ["check", "traces/qemu-misconf-nobl32/"])
    assert checked.exit_code == 1
    assert checked.stdout.rstrip() == _block("(TF-A with the OP-TEE dispatcher but no BL32) exits 1:")
    explained = CliRunner().invoke(cli, ["explain", "traces/qemu-misconf-nobl32/"])
    assert explained.stdout.rstrip() == _block("`smcwire explain traces/qemu-misconf-nobl32/`:")


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


def test_mermaid_example_is_what_analyze_draws(monkeypatch):
    monkeypatch.chdir(ROOT)
    command = "analyze traces/qemu-dbg-kretprobe/ --format mermaid --flow 7"
    assert f"`smcwire {command}`:" in README.replace("\n", " ")
    shown = "```mermaid\n" + README.split("```mermaid\n")[1].split("```\n")[0] + "```"
    assert CliRunner().invoke(cli, command.split()).stdout.rstrip() == shown
