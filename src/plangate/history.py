"""Reading runs back from a checkpointer (the whole trace, pending approvals, threads), and
closing the approvals nobody answered in time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from plangate._governance import parse_iso, utc_now
from plangate.errors import PlangateUsageError, ResumeConflict
from plangate.tracing import TraceEvent

__all__ = ("aget_trace", "expire_approvals", "get_trace", "list_threads", "pending_approvals")


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


def _collect(events: dict[tuple[str, int], TraceEvent], checkpoint: CheckpointTuple) -> None:
    for _task, channel, value in checkpoint.pending_writes or ():
        if channel == "events" and isinstance(value, list):
            for event in value:
                events[(event["trace_id"], event["seq"])] = event


def _ordered(events: dict[tuple[str, int], TraceEvent]) -> list[TraceEvent]:
    return sorted(events.values(), key=lambda e: (e["seq"], e["ts"]))


def get_trace(graph: CompiledStateGraph, config: RunnableConfig) -> list[TraceEvent]:
    """Every trace event a thread has written, in `seq` order, also from another process.

    The events are read from the writes the checkpointer stored for each step (the state holds
    only the latest batch), so reading costs one pass over the thread's history.

    Args:
        graph: A graph compiled with a checkpointer (`build_graph(..., checkpointer=...)`).
        config: A config naming the `thread_id`.
    """
    events: dict[tuple[str, int], TraceEvent] = {}
    checkpoints: Iterable[CheckpointTuple] = _saver(graph).list(_thread(config))
    for checkpoint in checkpoints:
        _collect(events, checkpoint)
    return _ordered(events)


async def aget_trace(graph: CompiledStateGraph, config: RunnableConfig) -> list[TraceEvent]:
    """`get_trace` for async checkpointers (`aopen_checkpointer`)."""
    events: dict[tuple[str, int], TraceEvent] = {}
    async for checkpoint in _saver(graph).alist(_thread(config)):
        _collect(events, checkpoint)
    return _ordered(events)


# The same query on SQLite and PostgreSQL: one pass over an index, not a scan of every checkpoint.
_THREADS = (
    "SELECT thread_id, MAX(checkpoint_id) AS last FROM checkpoints "
    "WHERE checkpoint_ns = '' GROUP BY thread_id ORDER BY last DESC"
)


def list_threads(saver: BaseCheckpointSaver[Any]) -> list[str]:
    """Ids of every thread with a checkpoint, most recently written first."""
    if isinstance(saver, SqliteSaver):
        # Through the saver's cursor, which holds its lock: other threads share the connection.
        with saver.cursor(transaction=False) as cursor:
            return [row[0] for row in cursor.execute(_THREADS).fetchall()]
    if type(saver).__module__ == "langgraph.checkpoint.postgres":
        from langgraph.checkpoint.postgres import PostgresSaver

        from plangate._postgres import fetch_all

        assert isinstance(saver, PostgresSaver)
        return [row["thread_id"] for row in fetch_all(saver, _THREADS)]
    seen: dict[str, None] = {}
    for checkpoint in saver.list(None):
        seen.setdefault(checkpoint.config["configurable"]["thread_id"], None)
    return list(seen)


def pending_approvals(graph: CompiledStateGraph) -> Iterator[tuple[str, dict[str, Any]]]:
    """(thread id, approval request) for every run in the checkpointer waiting for a decision."""
    for thread_id in list_threads(_saver(graph)):
        snapshot = graph.get_state({"configurable": {"thread_id": thread_id}})
        for pending in snapshot.interrupts:
            value = pending.value
            if isinstance(value, dict) and value.get("type") == "approval_request":
                yield thread_id, value


EXPIRED_DECISION = {"decision": "reject", "reason": "approval expired", "approver": "expire"}
"""What closes an expired approval: any decision taken after the deadline is recorded as
`expired` (and `approval_timeout` emitted); this one says why."""


def is_expired(request: dict[str, Any], now: datetime) -> bool:
    return parse_iso(request["expires_at"]) < now


def expire_approvals(
    graph: CompiledStateGraph, *, now: datetime | None = None
) -> Iterator[tuple[str, dict[str, Any] | ResumeConflict]]:
    """Resume, as expired, every run whose pending approval expired before `now` (default: the
    current time); each run goes on as its profile says (`on_reject`).

    Yields (thread id, the run's `result`, or its new pending request if it paused again) per
    run closed, or (thread id, `ResumeConflict`) when another worker was running it.
    """
    moment = now or utc_now()
    pending = list(pending_approvals(graph))
    for thread_id in [thread for thread, request in pending if is_expired(request, moment)]:
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        try:
            out = graph.invoke(Command(resume=EXPIRED_DECISION), config)
        except ResumeConflict as conflict:
            yield thread_id, conflict
            continue
        waiting = out.get("__interrupt__")
        yield thread_id, (waiting[0].value if waiting else out["result"])
