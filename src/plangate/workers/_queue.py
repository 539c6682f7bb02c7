"""Workers: what a door does instead of running a run itself, with `workers:` on: it queues a
`go_on` job under the thread's lock, once it has checked what it queues."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, cast

from plangate.project import Project
from plangate.runs.queue import job_kind, refuse_queued
from plangate.workers._app import GO_ON, apply_schema, lock_of, worker_app
from plangate.workers._go_on import RunStart

__all__ = ("queue_go_on",)

# The first key of the lock doors take to queue a decision ("plgd"); the second, the thread's.
_DECIDING = 0x706C6764


def queue_go_on(
    project: Project,
    thread: str,
    resume: Mapping[str, Any] | None = None,
    *,
    start: RunStart | None = None,
) -> int:
    """Queue a job that goes on with `thread` on a worker of `project`; returns its job id.

    Check first, then queue: the door binds a decision (`bind_decision`) or validates a plan
    before calling this; the job runs it under the thread's lock, after the thread's jobs
    queued before it.

    Args:
        project: The project whose `workers:` and database hold the queue.
        thread: The run's thread id.
        resume: The resume value, by interrupt id (`BoundDecision.resume`, or an expiry's
            closing); `None` to go on with a run that stopped, or to start one.
        start: The plan and setup of a run to start in `thread`.

    Raises:
        ProjectError: The project has no `workers:`, or its database is not PostgreSQL.
        DecisionQueued: `resume` decides a request that a decision queued earlier answers,
            not yet applied by a worker.
        PlangateUsageError: The database cannot be reached.

    Examples:
        >>> job = queue_go_on(project, "run-1a2b3c4d", bound.resume)  # doctest: +SKIP
    """
    app = worker_app(project)
    apply_schema(project.db)
    decided = resume is not None and job_kind(GO_ON, {"resume": resume}) == "decision"
    # A decision is checked against those queued on its request, by one door at a time.
    with app.open(), _one_decision_at_a_time(project.db, thread) if decided else nullcontext():
        if decided:
            refuse_queued(project.db, thread, resume or {})
        task = app.tasks[GO_ON].configure(lock=lock_of(thread))
        return task.defer(
            thread=thread,
            resume=dict(resume) if resume is not None else None,
            start=cast("dict[str, Any] | None", start),
        )


@contextmanager
def _one_decision_at_a_time(url: str, thread: str) -> Iterator[None]:
    """Doors queueing decisions on `thread` one at a time (a transaction's advisory lock, in
    a key space of its own): two decisions on one request sent together queue one, and the
    other is refused as the queued one's twin (`refuse_queued`)."""
    from plangate.runs.postgres import connect_checked

    with connect_checked(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_DECIDING, thread))
        yield
