"""What every input parser is: a per-line state machine over raw lines.

A parser is fed one line at a time (bytes, without its line ending) and answers with what the
line was:

- ``None``: foreign, recognised as not this parser's (another parser may still claim it);
- ``Malformed(reason)``: it looked like this parser's format but did not parse;
- a tuple of events (often of one): the line went into events. An empty tuple means the line
  belongs to a multi-line event still being collected (a register dump); the parser must emit
  that event later, from ``feed`` or at the latest from ``finish``, so that every line it
  claimed ends up in an event.

Parsers keep only the state of what is in flight (an open register dump), never the trace.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from ..model.events import Event

Events = tuple[Event, ...]


class Malformed(NamedTuple):
    """A line that looked like the parser's format but did not parse, and why."""

    reason: str


Outcome = Events | Malformed | None


class Parser:
    """Base class of the line parsers of one format family."""

    name: ClassVar[str] = "?"  # the --input-format name

    def __init__(self, file: str) -> None:
        self.file = file

    def feed(self, lineno: int, line: bytes) -> Outcome:
        raise NotImplementedError

    def finish(self) -> Events:
        """Events still in flight at the end of the input (an unterminated dump)."""
        return ()

    @classmethod
    def sniff(cls, head: list[bytes]) -> int:
        """How sure the parser is that ``head`` (the file's first lines) is its format: 0 (not at all)
        to 100 (certain). Used to pick a parser per file; the default never claims a file."""
        return 0


NO_EVENTS: Events = ()
