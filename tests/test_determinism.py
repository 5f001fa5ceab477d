"""The same input gives byte-identical output, run to run (hash seeds differ between processes)
and whatever --jobs is, for every analyzer command and JSON format."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CAPTURES = ["traces/qemu-dbg-kretprobe/", "traces/qemu-misconf-nobl32/", "traces/qemu-dbg-probe/ftrace.txt",
            *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests/data/rules").glob("*.xz"))]


def _run(args: list[str], seed: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run([sys.executable, "-m", "smcwire", *args], cwd=ROOT, env=env, capture_output=True,
                          timeout=300, check=False)


@pytest.mark.parametrize("command", [
    ["analyze", "--format", "json"], ["analyze", "--format", "jsonl"], ["analyze", "--format", "perfetto"],
    ["check", "--format", "json"], ["stats", "--format", "json"], ["explain", "--format", "json"],
])
def test_byte_identical_across_runs_and_jobs(command):
    first = _run([*command, *CAPTURES, *(["--jobs", "1"] if command[0] != "explain" else [])], "1")
    assert first.returncode in (0, 1) and first.stdout
    again = _run([*command, *CAPTURES, *(["--jobs", "2"] if command[0] != "explain" else [])], "2")
    assert (again.returncode, again.stdout, again.stderr) == (first.returncode, first.stdout, first.stderr)
