"""The analysis of one capture, end to end: read its files → track flows → run the rules.

A capture is what one run of a board left behind: a directory argument is one capture (all its
files — the ftrace, dmesg and console logs of one run — read together into one tracker, so their
evidence combines); every file argument is a capture of its own. Flows stream out of
``Analysis.flows()``; findings, state, statistics and line accounting are complete once it is
exhausted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..abi.profiles import Profile
from ..codec.decode import Decoder
from ..explain.features import Feature, explain
from ..explain.stats import StatsCollector
from ..flows.model import Finding, Flow
from ..flows.state import TraceState
from ..flows.tracker import Tracker
from ..model.events import DriverMessage, Event, LostEvents, SmcCall, SmcReturn
from ..rules.catalog import Rule
from ..rules.engine import RuleEngine
from ..sources.io import Input, expand_inputs
from ..sources.prefetch import PrefetchReader, can_prefetch, prefetch_worthwhile
from ..sources.reader import FileStats, Progress, TraceReader


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


class Replays:
    """Drops the events of a file that replays another file of the same capture: a serial log
    holding the dumps of the ftrace and dmesg files beside it. A file replays another when its
    first SMC event (or driver message) is the other's first, to the microsecond (the reports of
    one trace.dat print µs or ns); only those first events are remembered. Repeats inside one file
    (a serial log holding several reports) are not recognised."""

    def __init__(self) -> None:
        self.first: dict[tuple[object, ...], str] = {}  # identity of a file's first event -> file
        self.decided: dict[tuple[str, str], bool] = {}  # (file, kind) -> keep its events?
        self.found: list[str] = []

    def keep(self, event: Event) -> bool:
        identity: tuple[object, ...]
        if isinstance(event, (SmcCall, SmcReturn, LostEvents)):
            ts = getattr(event, "ts", None)  # to the microsecond: trace-cmd report -t prints nanoseconds
            kind, identity = "SMC", (event.KIND, None if ts is None else ts // 1000, event.cpu,
                                     getattr(event, "regs", None))
        elif isinstance(event, DriverMessage):
            kind, identity = "driver", (event.ts, event.text)
        else:
            return True
        decided = self.decided.get((event.file, kind))
        if decided is not None:
            return decided
        original = self.first.get(identity)
        keep = original is None or original == event.file
        self.decided[(event.file, kind)] = keep
        if keep:
            self.first[identity] = event.file
        else:
            self.found.append(f"{event.file} repeats the {kind} events of {original}: counted once")
        return keep


@dataclass
class Analysis:
    """Runs one capture through the tracker and the rules."""

    capture: Capture
    profile: Profile
    select: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    input_format: str | None = None
    findings: list[Finding] = field(default_factory=list)  # all, in the order the rules made them
    final_findings: list[Finding] = field(default_factory=list)  # those only the whole capture shows (leaks…)
    stats: StatsCollector | None = None  # set one to collect statistics as flows complete
    files: list[FileStats] = field(default_factory=list)
    state: TraceState | None = None
    not_run: list[tuple[Rule, str]] = field(default_factory=list)
    replays: list[str] = field(default_factory=list)  # files whose SMC or driver events repeat another's
    # read and parse in a child process, overlapping the tracking (same results): None decides by
    # the inputs' size and the free cores, True wherever it can (not stdin, platforms that fork)
    prefetch: bool | None = None
    on_progress: Callable[[Progress], None] | None = None  # called after each batch of lines, e.g. for a bar
    _of_flow: dict[int, list[Finding]] = field(default_factory=dict, repr=False)  # the findings of recent flows

    def flows(self) -> Iterator[Flow]:
        """Completed flows, in the order they complete, with their findings attached."""
        inputs = self.capture.inputs
        prefetch = prefetch_worthwhile(inputs) if self.prefetch is None else self.prefetch and can_prefetch(inputs)
        reader = (PrefetchReader if prefetch else TraceReader)(inputs, self.input_format)
        self.files = reader.stats
        tracker = Tracker(self.capture.name, Decoder(self.profile))
        self.state = tracker.state
        engine = RuleEngine(tracker.state, self.profile, self.select, self.ignore)
        replays = Replays() if len(inputs) > 1 else None
        if replays is not None:
            self.replays = replays.found
        feed = tracker.feed
        on_progress = self.on_progress
        for batch in reader.batches():  # a batch at a time: each stage's code stays hot in the caches
            if on_progress is not None:
                on_progress(reader.progress)
            completed: list[Flow] = []
            for event in batch:
                if replays is None or replays.keep(event):
                    flows = feed(event)
                    if flows:
                        completed += flows
            yield from self._done(completed, engine)
        yield from self._done(tracker.finish(), engine)
        self.final_findings = engine.finish()
        self.findings.extend(self.final_findings)
        self.not_run = engine.not_run()

    def _done(self, flows: Sequence[Flow], engine: RuleEngine) -> Sequence[Flow]:
        """Runs the rules over completed flows (a batch at a time, as the tracker does)."""
        self._of_flow.clear()
        for flow in flows:
            found = engine.on_flow(flow)
            if found:
                self.findings.extend(found)
                self._of_flow[flow.index] = found
            if self.stats is not None:
                self.stats.add(flow)
        return flows

    def findings_of(self, flow: Flow) -> list[Finding]:
        """The findings the rules made when ``flow`` completed (ask while it is the flow at hand)."""
        return self._of_flow.get(flow.index, [])

    def run(self) -> None:
        """Analyse without keeping the flows (findings, state and statistics only)."""
        for _ in self.flows():
            pass

    def features(self) -> list[Feature]:
        assert self.state is not None, "run the analysis first"
        return explain(self.state, self.profile.name)
