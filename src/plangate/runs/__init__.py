"""Runs: persisting them, locking them, reading them back.

The checkpointer a run pauses into and resumes from (`checkpoint`), one run of a thread at a
time (`locks`), the trace, pending approvals and threads read back (`history`), finished runs
pruned to what reading them back needs (`prune`), and the compiled graph that checks what enters
it and holds a run's lock (`guarded_graph`). PostgreSQL support (`postgres`, extra
`plangate[postgres]`) is internal to the package and imported only when used.
"""

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
    latest_checkpoints,
    list_threads,
    pending_approvals,
    run_state,
    trace_of,
    trace_since,
    waiting_approvals,
)
from plangate.runs.locks import RunLocks, arun_locks, run_locks
from plangate.runs.prune import PrunedRun, PruneReport, prune_runs

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
