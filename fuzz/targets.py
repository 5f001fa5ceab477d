"""Coverage-guided fuzz targets (atheris, libFuzzer): any bytes, as a file a user might feed smcwire.

    python -m fuzz.targets reader --runs 1000000     # trace reader, then flows, rules and rendering
    python -m fuzz.targets regdump --runs 1000000    # register-dump reader, then a0-a7 and decoding

The seed corpus is cut from the real captures in ``traces/`` and ``tests/data/`` (pieces of up
to ``SEED_BYTES`` of each, decompressed) into a temporary directory, or ``--corpus DIR`` (kept, so
that runs build on each other). The input is read as a user's file would be, through stdin, so
format detection and decompression are fuzzed too. Anything but smcwire's documented error for an
unreadable input (``InputFileError``) is a crash, and so is a file whose line accounting does not add
up (``lines == event_lines + foreign + malformed``). libFuzzer's options go after ``--``
(e.g. ``-- -max_len=8192 -jobs=2``).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import lzma
import sys
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

try:
    import atheris
except ImportError:  # the targets still run without it: tests replay the crashes found
    atheris = None

with atheris.instrument_imports(include=["smcwire"]) if atheris else nullcontext():
    from smcwire.abi.profiles import get_profile
    from smcwire.codec.decode import Decoder
    from smcwire.model.events import RegisterDump
    from smcwire.pipeline import Analysis, Capture
    from smcwire.render.flows import flow_jsonl, flow_text
    from smcwire.sources.io import Input, InputFileError
    from smcwire.sources.reader import FileStats, TraceReader
    from smcwire.sources.regset import smc_registers

ROOT = Path(__file__).parent.parent
SEED_BYTES = 4096
STDIN = Input("<stdin>", None)
PROFILE = get_profile()
DECODER = Decoder(PROFILE)


def _as_stdin(data: bytes) -> None:
    sys.stdin = io.TextIOWrapper(io.BytesIO(data))


def _balanced(stats: list[FileStats]) -> None:
    for s in stats:
        if s.lines != s.event_lines + s.foreign + s.malformed:
            raise AssertionError(f"line accounting: {s}")


def reader(data: bytes) -> None:
    """The whole analysis of one file: read, track, check, render."""
    _as_stdin(data)
    analysis = Analysis(Capture("<stdin>", (STDIN,)), PROFILE, prefetch=False)
    for flow in analysis.flows():
        flow_jsonl(flow)
        flow_text(flow, analysis.findings_of(flow))
    analysis.features()
    _balanced(analysis.files)


def regdump(data: bytes) -> None:
    """Register dumps read as such, their a0-a7 found and decoded."""
    _as_stdin(data)
    read = TraceReader([STDIN], input_format="regs")
    for event in read:
        if isinstance(event, RegisterDump):
            regset = smc_registers(event)
            if regset is not None:
                DECODER.call(regset.regs)
    _balanced(read.stats)


TARGETS = {"reader": reader, "regdump": regdump}


def guarded(target: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``target``, with smcwire's documented error for unreadable input let through."""
    def run(data: bytes) -> None:
        try:
            target(data)
        except InputFileError:  # an input that cannot be read or decompressed
            pass

    return run


def seeds(directory: Path) -> int:
    """Write the seed corpus: pieces of the real captures, plain and compressed."""
    count = 0
    for path in sorted([*ROOT.glob("traces/**/*"), *ROOT.glob("tests/data/**/*")]):
        if not path.is_file() or path.suffix == ".md":
            continue
        data = path.read_bytes()
        if path.suffix == ".xz":
            data = lzma.decompress(data)
        for n, start in enumerate(range(0, min(len(data), 4 * SEED_BYTES), SEED_BYTES)):
            piece = data[start:start + SEED_BYTES]
            (directory / f"{path.stem}-{n}").write_bytes(piece)
            count += 1
        (directory / f"{path.stem}.gz").write_bytes(gzip.compress(data[:SEED_BYTES]))
        (directory / f"{path.stem}.bz2").write_bytes(bz2.compress(data[:SEED_BYTES]))
        count += 2
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=sorted(TARGETS))
    ap.add_argument("--runs", type=int, default=100_000, help="executions (default 100,000)")
    ap.add_argument("--corpus", type=Path, help="corpus directory, kept (default: seeds in a temporary one)")
    ap.add_argument("libfuzzer", nargs="*", help="libFuzzer options, after --")
    args = ap.parse_args()
    if atheris is None:
        raise SystemExit("fuzzing needs atheris: pip install 'smcwire[fuzz]'")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or Path(tmp)
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            print(f"seed corpus: {seeds(corpus)} pieces of the real captures", file=sys.stderr)
        atheris.Setup([sys.argv[0], f"-runs={args.runs}", *args.libfuzzer, str(corpus)],
                      guarded(TARGETS[args.target]))
        atheris.Fuzz()


if __name__ == "__main__":
    main()
