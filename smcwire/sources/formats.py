"""The input formats smcwire reads, and how a file's format is chosen.

Each family module (``ftrace``, ``kernel``, ``tfa``, ``optee_log``, ``regdump``) defines a
``PARSERS`` tuple of ``Parser`` classes. A file whose head one parser claims with certainty
(an ftrace header, a JSON register list) is read by that parser alone; anything else is read as
a console capture, where every line is offered to every family: a serial log interleaving
TF-A, OP-TEE and Linux lines is the normal case.
"""

from __future__ import annotations

import importlib
import re
from functools import cache

from .base import Events, Malformed, Outcome, Parser

FAMILIES = ("ftrace", "optee_log", "tfa", "regdump", "kernel")  # console order: most specific first
CERTAIN = 90  # sniff score from which a parser reads a file alone
CONSOLE = "console"


@cache
def parsers() -> dict[str, type[Parser]]:
    """Every parser class by its --input-format name, in console order."""
    out: dict[str, type[Parser]] = {}
    for family in FAMILIES:
        for cls in importlib.import_module(f".{family}", __package__).PARSERS:
            out[cls.name] = cls
    return out


def format_names() -> tuple[str, ...]:
    return (CONSOLE, *parsers())


# Host-side time stamps that serial tools put before each line: "[17:00:00.123] ",
# "2026-11-25 17:00:00.123 ", "2026-11-25T17:00:00,123 " (not the kernel's "[    1.234567]").
_HOST_TIME = re.compile(
    rb"(?:\[\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\]|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)\s?")
_HOST_TIME_STARTS = frozenset((b"[", *(bytes([c]) for c in b"0123456789")))


class ConsoleParser(Parser):
    """Every family's parser at once; each line goes to the first that claims it. A parser in
    the middle of a multi-line event (it answered ``()``) is asked first for the next line."""

    name = CONSOLE

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.members = [cls(file) for cls in parsers().values()]
        self.pending: Parser | None = None

    def feed(self, lineno: int, line: bytes) -> Outcome:
        if line[:1] in _HOST_TIME_STARTS:
            stamp = _HOST_TIME.match(line)
            if stamp is not None:  # a serial-capture tool's own time stamp (tio, grabserial, ts)
                line = line[stamp.end():]
        pending = self.pending
        malformed: Malformed | None = None
        if pending is not None:
            out = pending.feed(lineno, line)
            if out is not None and type(out) is not Malformed:
                if not out:
                    return out
                self.pending = None
                return out
            self.pending = None
            if out is not None:
                malformed = out
        for parser in self.members:
            if parser is pending:
                continue
            out = parser.feed(lineno, line)
            if out is None:
                continue
            if type(out) is Malformed:
                malformed = malformed or out
                continue
            if not out:
                self.pending = parser
            return out
        return malformed

    def finish(self) -> Events:
        return tuple(e for p in self.members for e in p.finish())


def choose(head: list[bytes], forced: str | None = None) -> type[Parser]:
    """The parser class for a file whose first lines are ``head`` (or the one ``forced``)."""
    if forced is not None:
        if forced == CONSOLE:
            return ConsoleParser
        try:
            return parsers()[forced]
        except KeyError:
            raise ValueError(f"unknown input format {forced!r}; choose from {', '.join(format_names())}") from None
    best, score = None, 0
    for cls in parsers().values():
        s = cls.sniff(head)
        if s > score:
            best, score = cls, s
    return best if best is not None and score >= CERTAIN else ConsoleParser
