"""Runs: reading runs back from a checkpointer (the whole trace, pending approvals, threads),
and closing the approvals nobody answered in time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Interrupt, StateSnapshot

from plangate._time import parse_iso, utc_now
from plangate.errors import PlangateUsageError, ResumeConflict
from plangate.plan import Plan
from plangate.state import StepOutcome, StepReport
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


def _collect(events: dict[tuple[str, int], TraceEvent], checkpoint: CheckpointTuple) -> None:
    for _task, channel, value in checkpoint.pending_writes or ():
        if channel == "events" and isinstance(value, list):
            for event in value:
                events[(event["trace_id"], event["seq"])] = event


def _ordered(events: dict[tuple[str, int], TraceEvent]) -> list[TraceEvent]:
    return sorted(events.values(), key=lambda e: (e["seq"], e["ts"]))


def trace_of(checkpoints: Iterable[CheckpointTuple]) -> list[TraceEvent]:
    """The trace events written on `checkpoints` (newest first, as a saver lists them), in
    `seq` order: what `get_trace` returns when they are all of a thread's checkpoints."""
    events: dict[tuple[str, int], TraceEvent] = {}
    for checkpoint in checkpoints:
        _collect(events, checkpoint)
    return _ordered(events)


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
    """The trace events written on the checkpoint `checkpoint_id` and on every later one (all of
    them for `None`), in `seq` order: what a reader who last looked when `checkpoint_id` was
    the latest may have missed, since a running step writes onto the latest checkpoint. Costs
    the checkpoints read, not the thread's whole history."""
    return trace_of(_down_to(_saver(graph).list(_thread(config)), checkpoint_id))


def _down_to(
    newest_first: Iterable[CheckpointTuple], checkpoint_id: str | None
) -> Iterator[CheckpointTuple]:
    """The checkpoints of `newest_first` down to `checkpoint_id` (included; all for `None`)."""
    for checkpoint in newest_first:
        yield checkpoint
        reached = checkpoint.config["configurable"]["checkpoint_id"]
        if checkpoint_id is not None and reached <= checkpoint_id:  # ids grow with time
            return


async def aget_trace(graph: CompiledStateGraph, config: RunnableConfig) -> list[TraceEvent]:
    """`get_trace` for async checkpointers (`aopen_checkpointer`)."""
    events: dict[tuple[str, int], TraceEvent] = {}
    async for checkpoint in _saver(graph).alist(_thread(config)):
        _collect(events, checkpoint)
    return _ordered(events)


# The channels LangGraph records interrupts and resume values under, in a checkpoint's writes.
_INTERRUPT, _RESUME = "__interrupt__", "__resume__"


# The same queries on SQLite and PostgreSQL (whose saver names the writes table differently):
# one pass over the primary keys, not a scan of every checkpoint.
_LATEST = (
    "SELECT thread_id, MAX(checkpoint_id) AS last FROM checkpoints "
    "WHERE checkpoint_ns = '' GROUP BY thread_id"
)
_THREADS = f"{_LATEST} ORDER BY last DESC"
_INTERRUPTED = (
    f"SELECT thread_id, last FROM ({_LATEST}) AS latest "
    "WHERE EXISTS (SELECT 1 FROM {writes} AS w WHERE w.thread_id = latest.thread_id "
    "AND w.checkpoint_ns = '' AND w.checkpoint_id = latest.last "
    f"AND w.channel = '{_INTERRUPT}') ORDER BY last DESC"
)


def list_threads(saver: BaseCheckpointSaver[Any], *, interrupted: bool = False) -> list[str]:
    """Ids of every thread with a checkpoint, most recently written first; with `interrupted`,
    only those whose latest checkpoint holds an interrupt (a run that may wait for a decision)."""
    if isinstance(saver, SqliteSaver):
        query = _INTERRUPTED.format(writes="writes") if interrupted else _THREADS
        # Through the saver's cursor, which holds its lock: other threads share the connection.
        with saver.cursor(transaction=False) as cursor:
            return [row[0] for row in cursor.execute(query).fetchall()]
    if type(saver).__module__ == "langgraph.checkpoint.postgres":
        from langgraph.checkpoint.postgres import PostgresSaver

        from plangate.runs.postgres import fetch_all

        assert isinstance(saver, PostgresSaver)
        query = _INTERRUPTED.format(writes="checkpoint_writes") if interrupted else _THREADS
        return [row["thread_id"] for row in fetch_all(saver, query)]
    latest: dict[str, CheckpointTuple] = {}
    for saved in saver.list(None):  # each thread's checkpoints newest first
        latest.setdefault(saved.config["configurable"]["thread_id"], saved)
    # Checkpoint ids grow with time (the SQL's MAX relies on it too).
    newest_first = sorted(
        latest.items(), key=lambda item: item[1].config["configurable"]["checkpoint_id"]
    )[::-1]
    return [
        thread
        for thread, saved in newest_first
        if not interrupted or any(write[1] == _INTERRUPT for write in saved.pending_writes or [])
    ]


def latest_checkpoints(saver: BaseCheckpointSaver[Any]) -> Iterator[tuple[str, CheckpointTuple]]:
    """(thread id, its latest checkpoint) for every thread, most recently written first: what
    `run_state` reads. Costs one query for the ids, then one checkpoint read per thread (a
    listing of every run, unlike `waiting_approvals`, grows with the database)."""
    for thread_id in list_threads(saver):
        saved = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        if saved is not None:  # deleted since the listing
            yield thread_id, saved


def interrupts_waiting(saved: CheckpointTuple) -> list[Interrupt] | None:
    """Interrupts raised by tasks of `saved` that no resume value has answered yet, read from
    the checkpoint's pending writes; `None` when a task was answered and asked again, which
    only `get_state` untangles. Much cheaper than `get_state`, which rebuilds the whole state
    (replaying its delta channels) to find the same interrupts."""
    writes = saved.pending_writes or []
    # A task that wrote anything else has ended: answered, and it went on (with several
    # requests waiting at once, some may be decided while the others still wait).
    ended = {task for task, channel, _ in writes if channel not in (_INTERRUPT, _RESUME)}
    asked = [(t, value) for t, channel, value in writes if channel == _INTERRUPT and t not in ended]
    answered = {task for task, channel, _ in writes if channel == _RESUME}
    if any(task in answered for task, _ in asked):
        return None
    return [item for _, values in asked for item in values if isinstance(item, Interrupt)]


def reported_outcomes(snapshot: StateSnapshot) -> dict[str, StepOutcome]:
    """Step id -> outcome, of the steps of the wave in progress that have ended but are not
    recorded yet: a step that ran beside steps waiting for a decision is recorded (in
    `outcomes` and the trace) only when the whole wave is over, but a person reading the run
    meanwhile should see that it ran and how it ended."""
    reports = list(snapshot.values.get("wave") or ())
    for task in snapshot.tasks:
        written = task.result.get("wave") if isinstance(task.result, Mapping) else None
        if written:  # a task's reports (`trace_emit` writes `None`, emptying the wave)
            reports += written
    return {r["outcome"]["step_id"]: r["outcome"] for r in reports if r.get("outcome")}


def unnumbered_events(saved: CheckpointTuple) -> list[TraceEvent]:
    """The events of the steps of the wave in progress that have ended beside steps still
    waiting for a decision, in the order they happened: read from the wave's channel and from
    what the tasks of the superstep in progress stored (their pending writes). `trace_emit`
    numbers them (in plan order, so that `seq` does not depend on timing) only when the whole
    wave is over; meanwhile they carry `seq` -1 and a reader can show them as they are."""
    values = saved.checkpoint["channel_values"]
    recorded = (values.get("run") or {}).get("recorded", 0)
    reports: list[StepReport] = list(values.get("wave") or ())[recorded:]
    for _task, channel, value in saved.pending_writes or ():
        if channel == "wave" and isinstance(value, list):
            reports += value
    ended = [event for report in reports if report.get("outcome") for event in report["events"]]
    return sorted(ended, key=lambda event: event["ts"])


def remaining_tools(snapshot: StateSnapshot) -> list[str]:
    """The tools of a run's steps that have not ended yet (those waiting for a decision
    included), in plan order, each once: what going on with the run may call."""
    ended = {*(snapshot.values.get("outcomes") or {}), *reported_outcomes(snapshot)}
    steps = Plan.from_state(snapshot.values.get("plan") or {}).steps
    return list(dict.fromkeys(step.tool for step in steps if step.id not in ended))


RunState = Literal["waiting", "unfinished", "finished"]
"""Where a thread's run stands: `waiting` for a decision, `finished` (its `result` is written),
or `unfinished`: between two steps, so either running now in some process or stopped (a crash,
Ctrl-C) until something resumes it (`PlangateGraph.hold` tells the two apart)."""


def run_state(saved: CheckpointTuple) -> RunState:
    """The `RunState` of a thread, from its latest checkpoint alone."""
    waiting = interrupts_waiting(saved)
    if waiting is None or waiting:
        return "waiting"
    finished = saved.checkpoint["channel_values"].get("result") is not None
    return "finished" if finished else "unfinished"


def is_approval_request(value: Any) -> bool:
    """Whether an interrupt's value asks a person for a decision: on one step, or on the whole
    plan (`plan_review`)."""
    return isinstance(value, Mapping) and value.get("type") in ("approval_request", "plan_review")


def waiting_approvals(graph: CompiledStateGraph) -> Iterator[tuple[str, list[Interrupt]]]:
    """(thread id, its approval interrupts) for every run waiting for a decision, most recently
    written first. Costs one query, then one checkpoint read per run holding an interrupt: not
    a read per run in the database. Only a re-asked approval rebuilds its run's state."""
    saver = _saver(graph)
    for thread_id in list_threads(saver, interrupted=True):
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        saved = saver.get_tuple(config)
        if saved is None:  # deleted since the listing
            continue
        waiting = interrupts_waiting(saved)
        if waiting is None:
            waiting = list(graph.get_state(config).interrupts)
        requests = [i for i in waiting if is_approval_request(i.value)]
        if requests:
            yield thread_id, requests


def pending_approvals(graph: CompiledStateGraph) -> Iterator[tuple[str, dict[str, Any]]]:
    """(thread id, approval request) for every run in the checkpointer waiting for a decision."""
    for thread_id, requests in waiting_approvals(graph):
        for request in requests:
            yield thread_id, request.value


EXPIRED_DECISION = {"decision": "reject", "reason": "approval expired", "approver": "expire"}
"""What closes an expired approval: any decision taken after the deadline is recorded as
`expired` (and `approval_timeout` emitted); this one says why."""


def is_expired(request: dict[str, Any], now: datetime) -> bool:
    return parse_iso(request["expires_at"]) < now


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
