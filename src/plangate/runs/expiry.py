"""Runs: closing the approvals nobody answered in time, as they expire.

`sweep_expired` closes, once, every run whose approval request has expired; `watch_expiry` sweeps
again and again, waking when the next waiting request expires (or every `every` seconds, to see
the requests made since), so that a request is closed a moment after its deadline, not up to a
whole interval later. `plangate expire --watch` and the inbox (`plangate serve`) run it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from plangate._time import parse_iso, utc_now
from plangate.errors import PlangateError, PlangateUsageError
from plangate.runs.history import close_expired, expired_approvals, waiting_approvals
from plangate.runs.stored import is_expired

__all__ = ("CloseRun", "next_expiry", "sweep_expired", "watch_expiry")

CloseRun = Callable[[str, Mapping[str, dict[str, Any]]], Any]
"""Closes one run: called with its thread id and the resume value that closes its expired
requests (interrupt id -> `EXPIRED_DECISION`); raises a `PlangateError` when it cannot go on with
the run, which must then be left as it was."""

# How long past a deadline a sweep wakes: the request has then expired by the clock of the graph
# that closes it too (a decision taken at the deadline itself is in time, not expired).
_PAST_DEADLINE = timedelta(milliseconds=50)


def _clock_of(graph: CompiledStateGraph) -> Callable[[], datetime]:
    governance = getattr(graph, "governance", None)  # a `PlangateGraph`'s; absent on others
    return governance.clock if governance is not None else utc_now


def next_expiry(graph: CompiledStateGraph, now: datetime) -> datetime | None:
    """When the first request waiting in `graph`'s checkpointer that has not expired by `now`
    expires; `None` when no such request waits."""
    deadlines = (
        parse_iso(request.value["expires_at"])
        for _, waiting in waiting_approvals(graph)
        for request in waiting
        if not is_expired(request.value, now)
    )
    return min(deadlines, default=None)


def sweep_expired(
    graph: CompiledStateGraph,
    *,
    now: datetime | None = None,
    close: CloseRun | None = None,
) -> Iterator[tuple[str, Any]]:
    """Close every run waiting in `graph`'s checkpointer on an approval that expired before
    `now` (default: the graph's clock); each run goes on as its profile says (`on_expiry`).

    Yields (thread id, what `close` returned) per run closed, or (thread id, the `PlangateError`
    it raised) per run it cannot go on with (another worker runs it: `ResumeConflict`; the graph
    lacks its tool: `ToolNotAvailable`; it started under another profile: `ProfileMismatch`),
    which stays paused as it was, and the sweep goes on with the next.

    Args:
        graph: A graph compiled with a checkpointer (`build_graph(..., checkpointer=...)`).
        now: The time requests are expired by.
        close: Closes one run (see `CloseRun`); default: `close_expired` with `graph`, which
            returns the run's `result`, or its new pending request if it paused again.
    """
    at = now or _clock_of(graph)()
    for thread_id, expired in list(expired_approvals(graph, at)):
        closed: Any
        try:
            closed = (
                close(thread_id, expired) if close else close_expired(graph, thread_id, expired)
            )
        except PlangateError as refused:
            closed = refused
        yield thread_id, closed


def watch_expiry(
    graph: CompiledStateGraph,
    *,
    every: float = 30.0,
    stop: threading.Event | None = None,
    now: Callable[[], datetime] | None = None,
    close: CloseRun | None = None,
) -> Iterator[tuple[str, Any]]:
    """`sweep_expired` again and again until `stop` is set: a request that expires while
    nobody looks is closed a moment after its deadline, and its run goes on as its profile
    says (`on_expiry`).

    After each sweep it sleeps until the next waiting request expires, or for `every` seconds,
    whichever is sooner; a request made meanwhile is seen within `every` seconds. A run it
    cannot go on with is yielded with the error, left paused, and tried again at the next sweep
    (it is not counted as waiting to expire, so it never makes the sweep spin).

    It does its work as it is iterated: iterate it in a thread of its own. Setting `stop` ends
    it at once while it sleeps, else once the run it is closing has gone on.

    Args:
        graph: A graph compiled with a checkpointer (`build_graph(..., checkpointer=...)`).
        every: The longest wait between two sweeps, in seconds (> 0).
        stop: Ends the watch when set; `None`: it never ends.
        now: Returns the current UTC time (default: the graph's clock).
        close: Closes one run (see `sweep_expired`).

    Yields:
        As `sweep_expired`: (thread id, what closing it returned, or the `PlangateError` that
        kept it from going on).

    Raises:
        PlangateUsageError: `every` is not a positive number of seconds.

    Examples:
        >>> import threading
        >>> stop = threading.Event()
        >>> def watch() -> None:
        ...     for thread_id, closed in watch_expiry(graph, every=60, stop=stop):
        ...         print(thread_id, closed)
        >>> watcher = threading.Thread(target=watch)  # doctest: +SKIP
        >>> watcher.start()  # doctest: +SKIP
        >>> stop.set(); watcher.join()  # doctest: +SKIP
    """
    if not every > 0:  # also NaN
        raise PlangateUsageError(
            f"every={every!r}: the sweep needs a positive number of seconds between sweeps",
            hint="pass every=30, say",
        )
    return _watching(graph, every, stop or threading.Event(), now or _clock_of(graph), close)


def _watching(
    graph: CompiledStateGraph,
    every: float,
    stopped: threading.Event,
    clock: Callable[[], datetime],
    close: CloseRun | None,
) -> Iterator[tuple[str, Any]]:
    while not stopped.is_set():
        yield from sweep_expired(graph, now=clock(), close=close)
        # Read after closing: a run closed may wait on a new request by now.
        checked = clock()
        upcoming = next_expiry(graph, checked)
        wait = every
        if upcoming is not None:
            wait = min(every, (upcoming + _PAST_DEADLINE - checked).total_seconds())
        stopped.wait(wait)
