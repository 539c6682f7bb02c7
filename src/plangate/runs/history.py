"""Runs: reading runs back through their graph (the whole trace, pending approvals, the state
of the step in progress), and closing the approvals nobody answered in time. What needs only
the saver is in `plangate.runs.stored`, which this builds on (and re-exports the names of)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Interrupt, StateSnapshot

from plangate._time import utc_now
from plangate.errors import PlangateUsageError, ResumeConflict
from plangate.plan import Plan
from plangate.runs.stored import (
    EXPIRED_DECISION,
    WaitingInterrupt,
    collect_events,
    ended_outcomes,
    is_expired,
    latest_checkpoints,
    list_threads,
    ordered_events,
    run_state,
    trace_of,
)
from plangate.runs.stored import trace_since as stored_trace_since
from plangate.runs.stored import waiting_approvals as stored_waiting_approvals
from plangate.state import StepOutcome
from plangate.tracing import TraceEvent

__all__ = (
    "aget_trace",
    "expire_approvals",
    "get_trace",
    "latest_checkpoints",
    "list_threads",
    "pending_approvals",
    "remaining_tools",
    "run_state",
    "trace_of",
    "trace_since",
    "waiting_approvals",
)


def _saver(graph: CompiledStateGraph) -> BaseCheckpointSaver[Any]:
    saver = graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        raise PlangateUsageError(
            "this graph has no checkpointer of its own",
            hint="build it with checkpointer=open_checkpointer(...) to read runs back",
        )
    return saver


def _thread(config: RunnableConfig) -> RunnableConfig:
    return {"configurable": {"thread_id": config["configurable"]["thread_id"], "checkpoint_ns": ""}}


def get_trace(graph: CompiledStateGraph, config: RunnableConfig) -> list[TraceEvent]:
    """Every trace event a thread has written, in `seq` order, also from another process.

    The events are read from the writes the checkpointer stored for each step (the state holds
    only the latest batch), so reading costs one pass over the thread's history.

    Args:
        graph: A graph compiled with a checkpointer (`build_graph(..., checkpointer=...)`).
        config: A config naming the `thread_id`.
    """
    return trace_since(graph, config, None)


def trace_since(
    graph: CompiledStateGraph, config: RunnableConfig, checkpoint_id: str | None
) -> list[TraceEvent]:
    """`plangate.runs.stored.trace_since` of `graph`'s checkpointer: the events written on the
    checkpoint `checkpoint_id` and on every later one (all of them for `None`)."""
    return stored_trace_since(_saver(graph), config["configurable"]["thread_id"], checkpoint_id)


async def aget_trace(graph: CompiledStateGraph, config: RunnableConfig) -> list[TraceEvent]:
    """`get_trace` for async checkpointers (`aopen_checkpointer`)."""
    events: dict[tuple[str, int], TraceEvent] = {}
    async for checkpoint in _saver(graph).alist(_thread(config)):
        collect_events(events, checkpoint)
    return ordered_events(events)


def ended_so_far(snapshot: StateSnapshot) -> dict[str, StepOutcome]:
    """`ended_outcomes` of a run's state as its graph rebuilt it: the tasks of the step in
    progress hold what they wrote."""
    written = (
        task.result.get("wave") for task in snapshot.tasks if isinstance(task.result, Mapping)
    )
    return ended_outcomes(snapshot.values, written)


def remaining_tools(snapshot: StateSnapshot) -> list[str]:
    """The tools of a run's steps that have not ended yet (those waiting for a decision
    included), in plan order, each once: what going on with the run may call."""
    ended = ended_so_far(snapshot)
    steps = Plan.from_state(snapshot.values.get("plan") or {}).steps
    return list(dict.fromkeys(step.tool for step in steps if step.id not in ended))


def waiting_approvals(graph: CompiledStateGraph) -> Iterator[tuple[str, list[WaitingInterrupt]]]:
    """`plangate.runs.stored.waiting_approvals` of `graph`'s checkpointer: a re-asked approval
    is read from the run's rebuilt state."""

    def reread(thread_id: str) -> list[Interrupt]:
        return list(graph.get_state({"configurable": {"thread_id": thread_id}}).interrupts)

    return stored_waiting_approvals(_saver(graph), reread)


def pending_approvals(graph: CompiledStateGraph) -> Iterator[tuple[str, dict[str, Any]]]:
    """(thread id, approval request) for every run in the checkpointer waiting for a decision."""
    for thread_id, requests in waiting_approvals(graph):
        for request in requests:
            yield thread_id, request.value


def expired_approvals(
    graph: CompiledStateGraph, now: datetime
) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """(thread id, the resume value that closes its expired requests: interrupt id ->
    `EXPIRED_DECISION`) for every run with an approval that expired before `now`. A run waiting
    on several requests at once has only those closed that expired."""
    for thread_id, waiting in waiting_approvals(graph):
        expired = {i.id: dict(EXPIRED_DECISION) for i in waiting if is_expired(i.value, now)}
        if expired:
            yield thread_id, expired


def close_expired(
    graph: CompiledStateGraph, thread_id: str, expired: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """Resume `thread_id` with `expired` (from `expired_approvals`), closing its expired
    requests; it goes on as its profile says (`on_expiry`). Returns the run's `result`, or its
    new pending request if it paused again.

    Raises:
        ResumeConflict: Another worker is running it; it was left as it was.
    """
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    out = graph.invoke(Command(resume=dict(expired)), config)
    waiting = out.get("__interrupt__")
    return waiting[0].value if waiting else out["result"]  # type: ignore[no-any-return]


def expire_approvals(
    graph: CompiledStateGraph, *, now: datetime | None = None
) -> Iterator[tuple[str, dict[str, Any] | ResumeConflict]]:
    """Resume, as expired, every run whose pending approval expired before `now` (default: the
    current time); each run goes on as its profile says (`on_expiry`). `watch_expiry` does it
    again and again, as requests expire.

    Yields (thread id, the run's `result`, or its new pending request if it paused again) per
    run closed, or (thread id, `ResumeConflict`) when another worker was running it.
    """
    for thread_id, expired in list(expired_approvals(graph, now or utc_now())):
        closed: dict[str, Any] | ResumeConflict
        try:
            closed = close_expired(graph, thread_id, expired)
        except ResumeConflict as conflict:
            closed = conflict
        yield thread_id, closed
