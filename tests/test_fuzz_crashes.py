"""Every input the fuzz targets (fuzz/targets.py) found crashing, replayed through both targets:
each must now end without an exception other than smcwire's InputFileError, with the line
accounting balanced. The files are in tests/data/fuzz/ (README.md there says what each broke)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))
from fuzz.targets import TARGETS, guarded  # noqa: E402

CRASHES = sorted(p for p in (ROOT / "tests/data/fuzz").iterdir() if p.name != "README.md")


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("path", CRASHES, ids=lambda p: p.name)
def test_fuzz_crash_is_fixed(path, target, monkeypatch):
    monkeypatch.setattr(sys, "stdin", sys.stdin)  # the targets read the input as stdin
    guarded(TARGETS[target])(path.read_bytes())
