"""The damage matrix: the real captures of tests/test_damage.py cut, spliced, repeated and shuffled
at many points, and the findings each damage adds to the undamaged capture's, by rule and severity,
with the captures that show them. No damage may add an error; the repeats (lines skipped as
printed twice), jumps (discontinuities: time went back) and LOST markers the tracker counted are
shown beside.

    python benchmarks/damage_matrix.py [--points 40] [--capture NAME ...] [--damage KIND ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from test_damage import CAPTURES, DAMAGE, matrix  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=40, help="damage points per capture and kind (default 40)")
    ap.add_argument("--capture", nargs="+", choices=list(CAPTURES), default=list(CAPTURES))
    ap.add_argument("--damage", nargs="+", choices=list(DAMAGE), default=list(DAMAGE))
    args = ap.parse_args()
    print(matrix(args.points, args.capture, args.damage))


if __name__ == "__main__":
    main()
