"""Runs: persisting them, locking them, reading them back.

The checkpointer a run pauses into and resumes from (`checkpoint`), one run of a thread at a
time (`locks`), the trace, pending approvals and threads read back with the saver alone
(`stored`, what the commands that only read runs use) or through a graph (`history`), finished runs
pruned to what reading them back needs (`prune`), and the compiled graph that checks what enters
it and holds a run's lock (`guarded_graph`). PostgreSQL support (`postgres`, extra
`plangate[postgres]`) is internal to the package and imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plangate._lazy import lazy_exports

if TYPE_CHECKING:
    from plangate.runs.checkpoint import (
        aopen_checkpointer,
        is_postgres_url,
        open_checkpointer,
        sqlite_path,
    )
    from plangate.runs.guarded_graph import PlangateGraph
    from plangate.runs.history import (
        aget_trace,
        expire_approvals,
        get_trace,
        pending_approvals,
        trace_since,
        waiting_approvals,
    )
    from plangate.runs.locks import RunLocks, arun_locks, run_locks
    from plangate.runs.prune import PrunedRun, PruneReport, prune_runs
    from plangate.runs.stored import latest_checkpoints, list_threads, run_state, trace_of

# Each name's module is imported on first use (see `plangate._lazy`).
lazy_exports(
    __name__,
    {
        "PlangateGraph": "plangate.runs.guarded_graph",
        "PruneReport": "plangate.runs.prune",
        "PrunedRun": "plangate.runs.prune",
        "RunLocks": "plangate.runs.locks",
        "aget_trace": "plangate.runs.history",
        "aopen_checkpointer": "plangate.runs.checkpoint",
        "arun_locks": "plangate.runs.locks",
        "expire_approvals": "plangate.runs.history",
        "get_trace": "plangate.runs.history",
        "is_postgres_url": "plangate.runs.checkpoint",
        "latest_checkpoints": "plangate.runs.stored",
        "list_threads": "plangate.runs.stored",
        "open_checkpointer": "plangate.runs.checkpoint",
        "pending_approvals": "plangate.runs.history",
        "prune_runs": "plangate.runs.prune",
        "run_locks": "plangate.runs.locks",
        "run_state": "plangate.runs.stored",
        "sqlite_path": "plangate.runs.checkpoint",
        "trace_of": "plangate.runs.stored",
        "trace_since": "plangate.runs.history",
        "waiting_approvals": "plangate.runs.history",
    },
)

__all__ = (
    "PlangateGraph",
    "PruneReport",
    "PrunedRun",
    "RunLocks",
    "aget_trace",
    "aopen_checkpointer",
    "arun_locks",
    "expire_approvals",
    "get_trace",
    "is_postgres_url",
    "latest_checkpoints",
    "list_threads",
    "open_checkpointer",
    "pending_approvals",
    "prune_runs",
    "run_locks",
    "run_state",
    "sqlite_path",
    "trace_of",
    "trace_since",
    "waiting_approvals",
)
