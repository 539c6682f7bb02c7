"""Workers: the procrastinate `App` of a project, its schema, and its tasks.

One task goes on with runs, `plangate.go_on`, always deferred with its thread's lock
(`lock=plangate:THREAD`): procrastinate runs the jobs of one lock one at a time, in order, on
any worker; the graph's own per-thread lock (`PlangateGraph.hold`) stays the guard against
anything outside the queue (a terminal, the inbox). Three periodic tasks keep the queue honest,
each without a lock (procrastinate #1408: a stalled-job sweep given one stalls itself):

- `plangate.sweep_expired`: requests past their deadline get a `go_on` closing them
  (`EXPIRED_DECISION`), a backstop run once per tick across all workers; no job is ever
  scheduled in the future under a thread's lock (#1599: it would block the lock's queue);
- `plangate.sweep_stalled`: the jobs of a worker silent for `stall_seconds` (killed, its
  machine gone) are queued again; the step in flight runs again with the same idempotency key;
- `plangate.sweep_stopped`: runs whose process died between two steps outside the queue get a
  `go_on` (with `workers.sweep_stopped`).

A retry waits under the thread's lock on purpose: the thread's later jobs (a decision after a
run the database failed) wait behind it, in order. No task uses `queueing_lock` (#1446:
retrying a stalled job whose queueing lock has a queued sibling raises and leaves it `doing`);
the sweeps skip a thread with a job queued or running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from procrastinate import App, BaseRetryStrategy, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.jobs import Job
from procrastinate.retry import RetryDecision

from plangate.errors import PlangateError
from plangate.project import Project, WorkersSettings
from plangate.runs.queue import NOTES_TABLE
from plangate.workers._go_on import Drains, GoOn, RunStart, is_refusal

__all__ = ("GO_ON", "QUEUE", "apply_schema", "lock_of", "worker_app")

log = logging.getLogger("plangate.workers")

GO_ON = "plangate.go_on"
"""The name of the task that goes on with a run."""
QUEUE = "plangate"
"""The queue plangate's jobs go to."""
# Serialises applying procrastinate's schema between workers starting together.
_SCHEMA_LOCK = 0x706C616E67717565  # "plangque"
# The jobs a sweep leaves alone: a thread with one of these goes on by it.
_PENDING = (
    "SELECT lock FROM procrastinate_jobs WHERE task_name = %(task)s "
    "AND status IN ('todo', 'doing') AND lock IS NOT NULL"
)


def lock_of(thread: str) -> str:
    """The procrastinate lock of `thread`'s jobs."""
    return f"plangate:{thread}"


class _InfrastructureRetry(BaseRetryStrategy):
    """Retries what the infrastructure failed (`is_refusal` says what it refused), with
    exponential backoff; a refusal fails the job at once, the run left as it was."""

    def __init__(self, settings: WorkersSettings) -> None:
        self._backoff = RetryStrategy(
            max_attempts=settings.retries, exponential_wait=settings.retry_backoff_seconds
        )

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if is_refusal(exception):
            log.warning("job %s of %s failed, not retried: %s", job.id, job.lock, exception)
            return None
        return self._backoff.get_retry_decision(exception=exception, job=job)


def apply_schema(url: str) -> None:
    """Create procrastinate's tables in `url`'s database unless they are there; safe when
    several workers and doors start together (an advisory lock serialises them)."""
    from plangate.runs.postgres import connect_checked, setup_lock

    with connect_checked(url) as conn:
        setup_lock(conn, _SCHEMA_LOCK)
        try:
            row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if row is None or row[0] is None:
                from procrastinate.schema import SchemaManager

                conn.execute(SchemaManager.get_schema().encode())
            conn.execute(NOTES_TABLE)  # also in a database a worker of an older plangate made
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


def _note(app: App, job: int | None, column: str, value: str | None) -> None:
    """Note a job's worker or error (`plangate_jobs`), for `plangate jobs` and `runs`; a note
    that cannot be written (the database gone away) never fails the job."""
    try:
        app.connector.get_sync_connector().execute_query(
            f"INSERT INTO plangate_jobs (job_id, {column}) VALUES (%(job)s, %(value)s) "
            f"ON CONFLICT (job_id) DO UPDATE SET {column} = EXCLUDED.{column}",
            job=job,
            value=value,
        )
    except Exception as exc:
        log.warning("job %s: could not note its %s: %s", job, column, exc)


def _noting(app: App, context: JobContext, run: Callable[[], str]) -> str:
    """`run()` for the job of `context`, its worker noted first, and its error if it fails."""
    _note(app, context.job.id, "worker", context.worker_name)
    try:
        return run()
    except Exception as exc:
        _note(app, context.job.id, "error", _one_line(exc))
        raise


def _one_line(exc: BaseException) -> str:
    """`exc` as `plangate jobs` shows a failed job's error: its type and first line."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


def _cron(seconds: int) -> str:
    """A cron line firing every `seconds` (procrastinate's sixth column is seconds)."""
    if seconds < 60:
        return f"* * * * * */{seconds}"
    return f"*/{max(1, seconds // 60)} * * * *"


def worker_app(project: Project, *, drains: Drains | None = None) -> App:
    """The procrastinate `App` of `project` (its `workers:` settings, its PostgreSQL database),
    with plangate's tasks. Open it (`with app.open():`) to defer, or run a worker with it.

    Raises:
        ProjectError: The project has no `workers:`, or its database is not PostgreSQL.
    """
    settings = project.workers
    db = project.db
    app = App(connector=PsycopgConnector(conninfo=db))
    runner: list[GoOn] = []

    def going_on() -> GoOn:
        if not runner:  # built in the worker, at its first job: a door never needs it
            runner.append(GoOn(db, project, drains or Drains()))
        return runner[0]

    @app.task(name=GO_ON, queue=QUEUE, retry=_InfrastructureRetry(settings), pass_context=True)
    def go_on(
        context: JobContext,
        thread: str,
        resume: dict[str, Any] | None = None,
        start: RunStart | None = None,
    ) -> str:
        retried = context.job.attempts > 0
        outcome = _noting(app, context, lambda: going_on()(thread, resume, start, retried=retried))
        if outcome == "drained":  # the worker stops: the rest of the run in another job
            go_on.configure(lock=lock_of(thread)).defer(thread=thread)
        return outcome

    def pending() -> set[str]:
        rows = app.connector.get_sync_connector().execute_query_all(_PENDING, task=GO_ON)
        return {str(row["lock"]) for row in rows}

    every = _cron(settings.sweep_every_seconds)

    @app.periodic(cron=every, periodic_id="expired")
    @app.task(name="plangate.sweep_expired", queue=QUEUE)
    def sweep_expired(timestamp: int) -> int:
        from plangate.runs.history import expired_approvals

        now = datetime.now(timezone.utc)
        busy = pending()
        queued = 0
        for thread, closing in list(expired_approvals(going_on().reader, now)):
            if lock_of(thread) not in busy:
                go_on.configure(lock=lock_of(thread)).defer(thread=thread, resume=dict(closing))
                queued += 1
        return queued

    @app.periodic(cron=every, periodic_id="stalled")
    @app.task(name="plangate.sweep_stalled", queue=QUEUE)
    async def sweep_stalled(timestamp: int) -> int:
        stalled = await app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=settings.stall_seconds
        )
        count = 0
        for job in stalled:
            if not job.task_name.startswith("plangate."):
                continue  # another application's job in the same database
            log.warning("job %s of %s: its worker stopped; queued again", job.id, job.lock)
            await app.job_manager.retry_job(job)
            count += 1
        return count

    if settings.sweep_stopped:

        @app.periodic(cron=every, periodic_id="stopped")
        @app.task(name="plangate.sweep_stopped", queue=QUEUE)
        def sweep_stopped(timestamp: int) -> int:
            from plangate.runs.stored import latest_checkpoints, run_state

            reader = going_on().reader
            busy = pending()
            queued = 0
            assert reader.checkpointer is not None
            for thread, saved in list(latest_checkpoints(reader.checkpointer)):  # type: ignore[arg-type]
                if run_state(saved) != "unfinished" or lock_of(thread) in busy:
                    continue
                try:
                    running = reader.is_running({"configurable": {"thread_id": thread}})
                except PlangateError:
                    continue
                if not running:
                    go_on.configure(lock=lock_of(thread)).defer(thread=thread)
                    queued += 1
            return queued

    return app
