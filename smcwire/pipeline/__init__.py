"""The analysis of one capture, end to end: read its files → track flows → run the rules.

A capture is what one run of a board left behind: a directory argument is one capture (all its
files — the ftrace, dmesg and console logs of one run — read together into one tracker, so their
evidence combines); every file argument is a capture of its own. Flows stream out of
``Analysis.flows()``; findings, state, statistics and line accounting are complete once it is
exhausted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..abi.profiles import Profile
from ..codec.decode import Decoder
from ..explain.features import Feature, explain
from ..explain.stats import StatsCollector
from ..flows.model import Finding, Flow
from ..flows.state import TraceState
from ..flows.tracker import Tracker
from ..rules.catalog import Rule
from ..rules.engine import RuleEngine
from ..sources.io import Input, expand_inputs
from ..sources.reader import FileStats, TraceReader


@dataclass(frozen=True)
class Capture:
    """One capture: a name (the file or directory given) and its inputs."""

    name: str
    inputs: tuple[Input, ...]


def captures(names: Iterable[str]) -> list[Capture]:
    """Captures from command-line names: a directory is one capture, a file or ``-`` another."""
    out = []
    for name in names:
        inputs = tuple(expand_inputs([name]))
        out.append(Capture("<stdin>" if name == "-" else name.rstrip("/") if Path(name).is_dir() else name, inputs))
    return out


@dataclass
class Analysis:
    """Runs one capture through the tracker and the rules."""

    capture: Capture
    profile: Profile
    select: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    input_format: str | None = None
    findings: list[Finding] = field(default_factory=list)
    stats: StatsCollector = field(default_factory=StatsCollector)
    files: list[FileStats] = field(default_factory=list)
    state: TraceState | None = None
    not_run: list[tuple[Rule, str]] = field(default_factory=list)

    def flows(self) -> Iterator[Flow]:
        """Completed flows, in the order they complete, with their findings attached."""
        reader = TraceReader(self.capture.inputs, self.input_format)
        self.files = reader.stats
        tracker = Tracker(self.capture.name, Decoder(self.profile))
        self.state = tracker.state
        engine = RuleEngine(tracker.state, self.profile, self.select, self.ignore)
        for event in reader:
            for flow in tracker.feed(event):
                yield self._done(flow, engine)
        for flow in tracker.finish():
            yield self._done(flow, engine)
        self.findings.extend(engine.finish())
        self.not_run = engine.not_run()

    def _done(self, flow: Flow, engine: RuleEngine) -> Flow:
        self.findings.extend(engine.on_flow(flow))
        self.stats.add(flow)
        return flow

    def run(self) -> None:
        """Analyse without keeping the flows (findings, state and statistics only)."""
        for _ in self.flows():
            pass

    def features(self) -> list[Feature]:
        assert self.state is not None, "run the analysis first"
        return explain(self.state, self.profile.name)
