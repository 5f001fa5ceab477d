"""A progress line on stderr while a large input is read: bytes read of the total, events per second.

Shown only on a terminal, for inputs of at least ``MIN_BYTES`` on disk, and never with ``--quiet``;
redrawn at most every ``INTERVAL`` seconds, and erased when the capture is done, so that it never
mixes with the results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from ..sources.reader import Progress

MIN_BYTES = 8 << 20
INTERVAL = 0.2
WIDTH = 24  # characters of the bar itself


class ProgressLine:
    """Call it with the reader's ``Progress`` after each batch; ``close`` erases the line."""

    def __init__(self, label: str, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()
        self.drawn_at: float | None = None
        self.width = 0  # of the last line drawn

    @classmethod
    def for_terminal(cls, label: str, quiet: bool) -> ProgressLine | None:
        """A progress line when stderr is a terminal and ``quiet`` is off; None otherwise."""
        return None if quiet or not sys.stderr.isatty() else cls(label)

    def __call__(self, progress: Progress) -> None:
        total = progress.total_bytes
        now = self.clock()
        if total is None or total < MIN_BYTES or (self.drawn_at is not None and now - self.drawn_at < INTERVAL):
            return
        self.drawn_at = now
        done = min(progress.done_bytes, total)
        filled = WIDTH * done // total
        rate = progress.events / max(now - self.started, 1e-9)
        line = (f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {100 * done // total:3d}% "
                f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB, {rate:,.0f} events/s")
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def close(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
