"""SIGTERM handled like Ctrl-C.

`kill PID`, a job scheduler's time limit or `accelerate`'s teardown send
SIGTERM, whose default action ends the process at once: no `finally` runs, so
temporary files stay and records of a run keep saying "running". Within
`sigterm_as_interrupt`, SIGTERM instead raises `Terminated`, a
`KeyboardInterrupt`, where the program is: everything unwinds exactly as after
Ctrl-C, and whoever catches it can tell the two apart.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it unwinds like after Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated`; outside it, SIGTERM does what it did before."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: only the main thread can catch signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def was_terminated(error: BaseException) -> bool:
    """True when `error` (or what caused it, as click's Abort wraps it) is a SIGTERM."""
    return isinstance(error, Terminated) or isinstance(error.__cause__, Terminated)
