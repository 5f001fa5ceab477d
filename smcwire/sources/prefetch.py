"""Reading and parsing inputs in a child process, while the parent process tracks their flows.

Parsing a large trace and tracking its flows each keep a core busy. ``PrefetchReader`` forks a
child that runs a ``TraceReader`` and streams what it produces through a ``multiprocessing.Pipe``,
each message one pickle (protocol 5), in order:

- batches of events, as ``TraceReader.batches`` gives them (the events of a chunk of lines of one
  file; the pipe blocks the child when the parent lags, so few batches are ever in flight), each
  with the reader's ``Progress`` after it;
- the final ``FileStats`` of every file, once the file is read (one that could not be read carries
  its ``error``, recorded by the reader as in one process);
- the end, or the exception that stopped the child, raised again in the parent.

Only inputs on disk are prefetched (the child's stdin is not the parent's), and only with the
"fork" start method: the child inherits the inputs and the parsers without re-importing anything.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import traceback
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..model.events import Event
from .io import Input
from .reader import TraceReader

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

MIN_PREFETCH_BYTES = 4 << 20  # below this on disk, forking costs more than the overlap saves

# message kinds: (kind, payload)
_EVENTS = 0  # (list[Event], the reader's Progress after them)
_FILES = 1  # list[FileStats] of files read to their end (or to their error)
_END = 2  # None: every event and FileStats has been sent
_FAILED = 3  # the exception that stopped the child


class ReaderProcessError(RuntimeError):
    """The reader process failed with an exception that cannot cross the pipe, or died."""


def can_prefetch(inputs: Iterable[Input]) -> bool:
    """Whether ``PrefetchReader`` can read these inputs: the platform forks, none is stdin or followed."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods() and all(
        i.path is not None and i.until is None for i in inputs)


def prefetch_worthwhile(inputs: Iterable[Input]) -> bool:
    """Whether reading in a child process should pay: it can, a second core is free to run it,
    and the inputs hold at least ``MIN_PREFETCH_BYTES`` on disk."""
    inputs = list(inputs)
    if not can_prefetch(inputs) or usable_cores() < 2:
        return False
    size = 0
    for inp in inputs:
        try:
            size += os.path.getsize(inp.path)  # type: ignore[arg-type]  # can_prefetch: no stdin
        except OSError:  # the reader reports it
            pass
    return size >= MIN_PREFETCH_BYTES


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class PrefetchReader(TraceReader):
    """A ``TraceReader`` whose reading and parsing run in a forked child process.

    Iterating (or ``batches``) yields the same events in the same order; ``stats`` gets each file's ``FileStats``
    once the child has read the file. Stopping early (closing the iterator, an exception,
    KeyboardInterrupt) terminates and reaps the child. Inputs must pass ``can_prefetch``.
    """

    def batches(self) -> Iterator[list[Event]]:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_serve, args=(self.inputs, self.input_format, sender, receiver),
                                name="smcwire-reader", daemon=True)
        child.start()
        sender.close()  # the child holds the only write end: its exit ends the stream
        finished = False
        try:
            while True:
                try:
                    kind, payload = pickle.loads(receiver.recv_bytes())
                except EOFError:
                    child.join()
                    raise ReaderProcessError(f"the reader process died (exit code {child.exitcode})") from None
                if kind == _EVENTS:
                    batch, self.progress = payload
                    yield batch
                elif kind == _FILES:
                    self.stats.extend(payload)
                elif kind == _END:
                    finished = True
                    return
                else:
                    finished = True
                    raise payload
        finally:
            if not finished:
                child.terminate()
            child.join()
            receiver.close()


def _serve(inputs: list[Input], input_format: str | None, sender: Connection, receiver: Connection) -> None:
    """The child process: read the inputs and send what they hold (see the module docstring)."""
    receiver.close()
    # Ctrl-C reaches the whole process group: the parent handles it and terminates this child,
    # as it does whenever it stops early; a SIGTERM handler inherited from the parent must not run here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Nothing from the child reaches the terminal: no warning, no traceback (multiprocessing prints
    # one when the parent was killed and the last send fails); the parent reports what went wrong.
    quiet = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    os.dup2(quiet.fileno(), 1)
    os.dup2(quiet.fileno(), 2)
    sys.stdout = sys.stderr = quiet
    try:
        for message in _messages(TraceReader(inputs, input_format)):
            sender.send_bytes(pickle.dumps(message, protocol=5))
    except Exception as e:  # an event that does not pickle; or the parent is gone, and this fails too
        sender.send_bytes(pickle.dumps((_FAILED, _portable(e)), protocol=5))
    finally:
        sender.close()


def _messages(reader: TraceReader) -> Iterator[tuple[int, object]]:
    """The messages of one read, in order. The reader appends a file's ``FileStats`` when it starts
    the file, so the ones before the last are complete; all are once the reader stops."""
    stats = reader.stats
    sent = 0  # FileStats sent so far
    failure: Exception | None = None
    try:
        for batch in reader.batches():  # a batch holds the events of one file
            if len(stats) > sent + 1:  # this batch starts a new file: the previous ones are complete
                yield _FILES, stats[sent:-1]
                sent = len(stats) - 1
            yield _EVENTS, (batch, reader.progress)
    except Exception as e:  # the events before it and the FileStats still go first, as in one process
        failure = e
    yield _FILES, stats[sent:]
    yield (_END, None) if failure is None else (_FAILED, _portable(failure))


def _portable(error: Exception) -> Exception:
    """``error`` with the child's traceback as a note, if it survives pickling as itself; else a
    ``ReaderProcessError`` with its type, message and traceback."""
    where = "in the reader process:\n" + "".join(traceback.format_exception(error)).rstrip()
    error.add_note(where)
    try:
        copy = pickle.loads(pickle.dumps(error, protocol=5))
    except Exception:  # e.g. an __init__ that does not take the message back
        copy = None
    if type(copy) is type(error) and str(copy) == str(error):
        return error
    substitute = ReaderProcessError(f"{type(error).__module__}.{type(error).__qualname__}: {error}")
    substitute.add_note(where)
    return substitute
