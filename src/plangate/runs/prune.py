"""Runs: pruning the checkpoints of finished runs, so that a database does not grow for ever.

Every superstep of a run writes a checkpoint, and a finished run keeps them all; reading it back
needs only two things, which pruning keeps, and nothing else:

- **its state** (`show`, `plangate runs`, a new plan on the thread): the latest checkpoint. The
  `DeltaChannel`s (`plan`, `outcomes`, `wave`, `events`) store only their writes, and LangGraph
  rebuilds their value on load by replaying the ancestors' writes back to a snapshot. So the
  latest checkpoint is first rewritten with a snapshot of each (`_DeltaSnapshot`, what LangGraph
  itself writes every `snapshot_frequency` updates): it then loads the same state on its own.
- **its trace** (`get_trace`, `plangate trace`): the `events` writes of every checkpoint. They
  are gathered, exactly as `get_trace` returns them, into one write on the thread's first
  checkpoint, which is kept. Not on the latest one: a new plan on the thread replays the latest
  checkpoint's writes into its state.

Each step leaves the run whole if the process stops after it: the rewritten checkpoint loads
on its own, the gathered trace repeats events `get_trace` reads once, and the deletions are
one transaction. A thread's run lock is held throughout, so no run of it moves meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, CheckpointTuple
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from plangate._time import parse_iso, utc_now
from plangate.errors import PlangateUsageError, ResumeConflict
from plangate.runs.locks import run_locks
from plangate.runs.stored import latest_checkpoints, run_state, trace_of
from plangate.state import PlanState

__all__ = ("PruneReport", "PrunedRun", "prune_runs")

# The channels whose value a checkpoint may leave to its ancestors' writes.
_DELTA_CHANNELS: dict[str, DeltaChannel[Any]] = {
    name: channel
    for name, channel in StateGraph(PlanState).channels.items()
    if isinstance(channel, DeltaChannel)
}
# Names the task whose write on the first checkpoint holds the whole trace, one per pruning (a
# pruned thread that ran again is pruned anew, and a write never replaces one of the same id).
_TRACE_TASK = uuid.UUID("6a4e0d52-51b5-4c1e-9d0f-2f1b8f4f7a11")


@dataclass(frozen=True)
class PrunedRun:
    """One finished run pruned (or, in a dry run, that would be).

    Attributes:
        thread_id: The run's thread.
        finished_at: When its latest checkpoint was written.
        checkpoints_removed: How many of its checkpoints went (two stay: the first, holding the
            trace, and the latest, holding the state).
    """

    thread_id: str
    finished_at: datetime
    checkpoints_removed: int


@dataclass(frozen=True)
class PruneReport:
    """What `prune_runs` did.

    Attributes:
        runs: The runs pruned, most recently finished first.
        skipped: Threads left alone because a run of them was going on (a new plan started on a
            finished thread meanwhile); the next pruning takes them.
        dry_run: Nothing was removed: `runs` says what would have been.
        bytes_before: The SQLite database's size on disk before (with its write-ahead log);
            `None` on PostgreSQL, whose own vacuum reuses the space.
        bytes_after: Its size after, compacted (`VACUUM`).
    """

    runs: tuple[PrunedRun, ...]
    skipped: tuple[str, ...]
    dry_run: bool
    bytes_before: int | None = None
    bytes_after: int | None = None

    @property
    def checkpoints_removed(self) -> int:
        return sum(run.checkpoints_removed for run in self.runs)

    @property
    def bytes_reclaimed(self) -> int | None:
        if self.bytes_before is None or self.bytes_after is None:
            return None
        return self.bytes_before - self.bytes_after


def prune_runs(
    saver_or_graph: BaseCheckpointSaver[Any] | CompiledStateGraph,
    *,
    finished_before: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Remove the intermediate checkpoints of every run that finished more than
    `finished_before` ago; its result, state and trace read back exactly as before.

    A run waiting for a decision, or not finished (stopped, or running now), is never touched;
    neither is a thread whose checkpoints are not a plangate run's. A new plan on a pruned thread
    runs as on any finished one, and its trace continues the old one. On SQLite the file is then
    compacted (`VACUUM`, which rewrites it: expect a pause as long as copying it).

    Args:
        saver_or_graph: A sync SQLite or PostgreSQL checkpointer (`open_checkpointer`), or a
            graph built with one.
        finished_before: How long ago a run must have finished (its latest checkpoint's time)
            to be pruned; `timedelta(0)` prunes every finished run.
        dry_run: Find the runs and count their checkpoints, and remove nothing.
        now: The time `finished_before` counts back from (default: the current time).

    Raises:
        PlangateUsageError: The checkpointer is neither (an async or in-memory one, say).

    Examples:
        >>> from datetime import timedelta
        >>> from plangate import open_checkpointer
        >>> report = prune_runs(open_checkpointer(":memory:"), finished_before=timedelta(days=30))
        >>> report.runs, report.checkpoints_removed
        ((), 0)
    """
    saver = _sync_saver(saver_or_graph)
    cutoff = (now or utc_now()) - finished_before
    bytes_before = _size_on_disk(saver)
    pruned: list[PrunedRun] = []
    skipped: list[str] = []
    locks = run_locks(saver)
    for thread_id, latest in list(latest_checkpoints(saver)):
        finished_at = parse_iso(latest.checkpoint["ts"])
        if finished_at >= cutoff or not _is_finished_run(latest):
            continue
        try:
            with locks.hold(thread_id):
                removed = _prune_thread(saver, latest, dry_run=dry_run)
        except ResumeConflict:
            skipped.append(thread_id)
            continue
        if removed:
            pruned.append(PrunedRun(thread_id, finished_at, removed))
    if bytes_before is not None and pruned and not dry_run:
        _compact(saver)
    return PruneReport(
        runs=tuple(pruned),
        skipped=tuple(skipped),
        dry_run=dry_run,
        bytes_before=bytes_before,
        bytes_after=_size_on_disk(saver),
    )


def _sync_saver(saver_or_graph: BaseCheckpointSaver[Any] | CompiledStateGraph) -> Any:
    saver = (
        saver_or_graph.checkpointer
        if isinstance(saver_or_graph, CompiledStateGraph)
        else saver_or_graph
    )
    if isinstance(saver, SqliteSaver) or _is_postgres(saver):
        return saver
    raise PlangateUsageError(
        f"cannot prune the runs of a {type(saver).__name__}",
        hint="open the database with open_checkpointer(url), a SQLite file or PostgreSQL",
    )


def _is_postgres(saver: Any) -> bool:
    return type(saver).__module__ == "langgraph.checkpoint.postgres"


def _is_finished_run(latest: CheckpointTuple) -> bool:
    """A plangate run (its counters are there) whose `result` is written and nothing waits."""
    return "run" in latest.checkpoint["channel_values"] and run_state(latest) == "finished"


def _prune_thread(saver: Any, listed: CheckpointTuple, *, dry_run: bool) -> int:
    """Prune one thread whose lock is held; returns how many checkpoints went (or would)."""
    thread_id = listed.config["configurable"]["thread_id"]
    history = list(saver.list({"configurable": {"thread_id": thread_id}}))  # newest first
    latest, first = history[0], history[-1]
    in_subgraphs = any(c.config["configurable"]["checkpoint_ns"] for c in history)
    if in_subgraphs or _id(latest) != _id(listed):
        # A parent graph's thread (plangate ran in it as a subgraph), or a run started since
        # the listing.
        return 0
    removed = [_id(c) for c in history[1:-1]]
    if dry_run or not removed:
        return len(removed)
    trace = trace_of(history)
    _rewrite_with_snapshots(saver, latest)
    task = str(uuid.uuid5(_TRACE_TASK, _id(latest)))
    if trace:
        saver.put_writes(first.config, [("events", trace)], task_id=task)
    if _is_postgres(saver):
        from plangate.runs.postgres import delete_pruned

        delete_pruned(
            saver, thread_id, first=_id(first), latest=_id(latest), task=task, removed=removed
        )
    else:
        _delete_pruned_sqlite(
            saver, thread_id, first=_id(first), latest=_id(latest), task=task, removed=removed
        )
    return len(removed)


def _id(saved: CheckpointTuple) -> str:
    checkpoint_id: str = saved.config["configurable"]["checkpoint_id"]
    return checkpoint_id


def _rewrite_with_snapshots(saver: Any, latest: CheckpointTuple) -> None:
    """Store `latest` again with a snapshot of every delta channel it leaves to its ancestors,
    rebuilt as LangGraph rebuilds it on load (`channels_from_checkpoint`): the seed, then the
    writes since, through the channel's reducer."""
    checkpoint = latest.checkpoint
    values = checkpoint["channel_values"]
    replayed = [
        name
        for name in _DELTA_CHANNELS
        if name in checkpoint["channel_versions"] and name not in values
    ]
    if not replayed:
        return
    histories = saver.get_delta_channel_history(config=latest.config, channels=replayed)
    snapshots = {}
    for name in replayed:
        channel = _DELTA_CHANNELS[name].from_checkpoint(histories[name].get("seed"))
        channel.replay_writes(histories[name]["writes"])
        snapshots[name] = _DeltaSnapshot(channel.get())
    rewritten = Checkpoint(**{**checkpoint, "channel_values": {**values, **snapshots}})
    # The counters say how far the last snapshots are; now they are here.
    metadata = {k: v for k, v in latest.metadata.items() if k != "counters_since_delta_snapshot"}
    parent: RunnableConfig = latest.parent_config or {"configurable": {}}
    saver.put(
        {
            "configurable": {
                "thread_id": latest.config["configurable"]["thread_id"],
                "checkpoint_ns": "",
                "checkpoint_id": parent["configurable"].get("checkpoint_id"),
            }
        },
        rewritten,
        metadata,
        {name: checkpoint["channel_versions"][name] for name in replayed},
    )


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _delete_pruned_sqlite(
    saver: SqliteSaver, thread_id: str, *, first: str, latest: str, task: str, removed: list[str]
) -> None:
    """Delete the `removed` checkpoints and their writes, and the first checkpoint's writes
    but the trace (`task`'s), in one transaction; the latest checkpoint follows the first."""
    with saver.lock, saver.conn:  # commits, or rolls back on an error
        for chunk in _chunks(removed):
            marks = ",".join("?" * len(chunk))
            for table in ("writes", "checkpoints"):
                saver.conn.execute(
                    f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = '' "
                    f"AND checkpoint_id IN ({marks})",
                    (thread_id, *chunk),
                )
        saver.conn.execute(
            "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = '' "
            "AND checkpoint_id = ? AND task_id <> ?",
            (thread_id, first, task),
        )
        saver.conn.execute(
            "UPDATE checkpoints SET parent_checkpoint_id = ? "
            "WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id = ?",
            (first, thread_id, latest),
        )


def _database_file(saver: Any) -> str | None:
    if not isinstance(saver, SqliteSaver):
        return None
    with saver.cursor(transaction=False) as cursor:
        rows = cursor.execute("PRAGMA database_list").fetchall()
    return next((str(row[2]) for row in rows if row[1] == "main" and row[2]), None)


def _size_on_disk(saver: Any) -> int | None:
    path = _database_file(saver)
    if path is None:
        return None
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


def _compact(saver: SqliteSaver) -> None:
    """Give the freed pages back to the file system: `VACUUM` rewrites the database without
    them (into the write-ahead log), and the checkpoint moves it into the file and empties it."""
    with saver.lock:
        try:
            saver.conn.execute("VACUUM")
            saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:  # another process holds the database
            raise PlangateUsageError(
                f"pruned, but could not compact the database: {exc}",
                hint="run the prune again when no other process uses the database",
            ) from None
