"""Workers: runs go on by themselves, on any machine, in a queue on procrastinate (the
`plangate[workers]` extra), kept in the project's PostgreSQL database.

With `workers:` in the project file, a door (`plangate approve`, `reject`, `resume`, `run`)
checks what it was given at once, as it would before running it (a decision is bound by
`bind_decision`: request id, digest, deadline, allowed decision, identity), then queues one
`go_on` job under the thread's lock and says `queued`. A worker (`plangate worker`) takes the
job and goes on with the run under its own project and profile until it pauses or ends.

A job's failures are split as the run service splits them: a refusal (a stale decision, a
profile mismatch, a tool not available, nothing pending) fails the job and leaves the run as it
was; the infrastructure (the database, a tool source, another process holding the run) is
retried with backoff. Tool retries stay in the graph, never in the queue. A worker that dies
has its jobs queued again once its heartbeat is `stall_seconds` old, and the step in flight
runs again with the same idempotency key.
"""

from plangate.workers._app import EXPIRE_AT, GO_ON, QUEUE, apply_schema, lock_of, worker_app
from plangate.workers._go_on import RunStart, is_refusal
from plangate.workers._queue import queue_go_on
from plangate.workers._worker import run_worker

__all__ = (
    "EXPIRE_AT",
    "GO_ON",
    "QUEUE",
    "RunStart",
    "apply_schema",
    "is_refusal",
    "lock_of",
    "queue_go_on",
    "run_worker",
    "worker_app",
)
