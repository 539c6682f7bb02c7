"""Workers: the procrastinate `App` of a project, its schema, and its tasks.

One task goes on with runs, `plangate.go_on`, always deferred with its thread's lock
(`lock=plangate:THREAD`): procrastinate runs the jobs of one lock one at a time, in order, on
any worker; the graph's own per-thread lock (`PlangateGraph.hold`) stays the guard against
anything outside the queue (a terminal, the inbox).

A `go_on` that leaves its run waiting schedules `plangate.expire_at` at the earliest deadline
of what the run waits on, without a lock: a job scheduled in the future under a thread's lock
would block that lock's queue until it is due (procrastinate #1599), the decision it waits for
included. When due, it queues a `go_on` under the thread's lock closing what has expired then
(`EXPIRED_DECISION`), behind the thread's other jobs. It may fire twice, after the request was
decided, or beside the sweep: what it closes is read when it fires, and a closing that finds its
requests closed or decided does nothing (`GoOn`), so a request ends `expired` once, and a
decided one is left alone. Every `go_on` that ends (waiting or finished) cancels the thread's
scheduled expiries of deadlines its run no longer waits on, so that none lingers for a day in
`plangate jobs`; a cancel that loses to the expiry starting is harmless, as above.

Three periodic tasks keep the queue honest, each without a lock (procrastinate #1408: a
stalled-job sweep given one stalls itself):

- `plangate.sweep_expired`: requests past their deadline get a `go_on` closing them, the
  backstop of `expire_at`, run once per tick across all workers: for runs paused where no job
  scheduled their expiry (LangGraph's server, a process before workers were on, a job that
  failed);
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

from plangate._time import iso, parse_iso
from plangate.errors import PlangateError
from plangate.project import Project, WorkersSettings
from plangate.runs.queue import NOTES_TABLE
from plangate.runs.stored import EXPIRED_DECISION
from plangate.workers._go_on import Drains, GoOn, RunStart, is_refusal

__all__ = ("EXPIRE_AT", "GO_ON", "QUEUE", "apply_schema", "lock_of", "worker_app")

log = logging.getLogger("plangate.workers")

GO_ON = "plangate.go_on"
"""The name of the task that goes on with a run."""
EXPIRE_AT = "plangate.expire_at"
"""The name of the task that closes a run's requests at their deadline."""
QUEUE = "plangate"
"""The queue plangate's jobs go to."""
# Serialises applying procrastinate's schema between workers starting together.
_SCHEMA_LOCK = 0x706C616E67717565  # "plangque"
# The jobs a sweep leaves alone: a thread with one of these goes on by it.
_PENDING = (
    "SELECT lock FROM procrastinate_jobs WHERE task_name = %(task)s "
    "AND status IN ('todo', 'doing') AND lock IS NOT NULL"
)
# The expiries scheduled for a thread, by deadline: a job retried, or a run drained and taken
# again, finds its deadline's there already; those of deadlines the run no longer waits on go.
_SCHEDULED = (
    "SELECT id, args->>'deadline' AS deadline FROM procrastinate_jobs "
    "WHERE task_name = %(task)s AND status = 'todo' AND args->>'thread' = %(thread)s"
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

    _add_run_tasks(app, settings, going_on)
    _add_sweeps(app, settings, going_on)
    return app


def _add_run_tasks(app: App, settings: WorkersSettings, going_on: Callable[[], GoOn]) -> None:
    """`go_on`, and `expire_at`, which a `go_on` that leaves its run waiting schedules (and
    one that leaves it waiting on other deadlines, or finished, cancels)."""

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
        else:
            try:
                keep_expiry(thread, finished=outcome == "finished")
            except Exception as exc:  # the run went on: its expiry is left to the sweep
                log.warning("run %s: could not schedule or cancel its expiry: %s", thread, exc)
        return outcome

    def keep_expiry(thread: str, *, finished: bool) -> None:
        """Schedule `expire_at` at the earliest deadline `thread` waits on, unless it is, and
        cancel those scheduled at a deadline it no longer waits on (decided, finished): only
        a job to do is cancelled, so one that a worker took meanwhile runs, and does nothing."""
        waited = set() if finished else set(going_on().deadlines(thread).values())
        scheduled = app.connector.get_sync_connector().execute_query_all(
            _SCHEDULED, task=EXPIRE_AT, thread=thread
        )
        for job in scheduled:
            if parse_iso(job["deadline"]) not in waited:
                app.job_manager.cancel_job_by_id(job["id"])
        if waited:
            due = min(waited)
            if due not in {parse_iso(job["deadline"]) for job in scheduled}:
                expire_at.configure(schedule_at=due).defer(thread=thread, deadline=iso(due))

    @app.task(name=EXPIRE_AT, queue=QUEUE)
    def expire_at(thread: str, deadline: str) -> int:
        """Close what `thread` waits on that has expired now (a request `deadline` was
        scheduled for, and any other past its own), by a `go_on` under the thread's lock;
        the number of requests it closes."""
        now = datetime.now(timezone.utc)
        if now <= parse_iso(deadline):  # taken a moment early: a request expires after it
            if parse_iso(deadline) in set(going_on().deadlines(thread).values()):
                expire_at.configure(schedule_at=parse_iso(deadline)).defer(
                    thread=thread, deadline=deadline
                )
            return 0
        closing: dict[str, Any] = {
            key: dict(EXPIRED_DECISION)
            for key, due in going_on().deadlines(thread).items()
            if due < now
        }
        if closing:
            go_on.configure(lock=lock_of(thread)).defer(thread=thread, resume=closing)
        return len(closing)


def _add_sweeps(app: App, settings: WorkersSettings, going_on: Callable[[], GoOn]) -> None:
    """The periodic sweeps (see the module's doc): expired requests, stalled jobs, stopped
    runs."""
    go_on = app.tasks[GO_ON]

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
