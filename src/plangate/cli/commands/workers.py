"""Workers: `worker` runs the project's queue (`workers:`), `jobs` lists and retries its jobs,
and the doors' way into it: with `workers:` on, `run`, `approve`, `reject` and `resume` check
what they were given, queue the run and say `queued` (`queue`), instead of running it in the
terminal."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plangate.cli.commands import needs_extra
from plangate.cli.options import ProjectOption
from plangate.cli.output import ExitCode, json_line, say
from plangate.cli.where import find_project
from plangate.errors import PlangateUsageError
from plangate.project import Project
from plangate.runs.checkpoint import shown_url

if TYPE_CHECKING:
    from langgraph.types import StateSnapshot

    from plangate.runs.queue import QueuedJob
    from plangate.workers import RunStart

__all__ = ("jobs", "queue", "queued_project", "run_project", "worker")


def worker(
    *,
    concurrency: Annotated[
        int,
        typer.Option(min=1, max=64, metavar="N", help="Runs that go on at once in this worker."),
    ] = 2,
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues", metavar="QUEUE", help="Queues to take jobs from (default: plangate's)."
        ),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Run a worker: go on with the project's queued runs (`workers:` in plangate.yaml, a
    PostgreSQL database), on this machine, until stopped.

    The first SIGTERM or Ctrl-C lets each run finish the step it is in and queues the rest;
    a second one stops at once (another worker takes its jobs once it is seen dead).
    """
    found, _ = find_project(project, None)
    if found is None:
        raise PlangateUsageError(
            "`plangate worker` needs a project file with a workers: section",
            hint="add `workers: {}` and a postgresql:// db to plangate.yaml",
        )
    settings = found.workers  # one line when there is none, or the database is SQLite
    try:
        from plangate.workers import run_worker
    except ImportError as exc:
        raise needs_extra("worker", exc, extra="workers", missing="procrastinate") from None
    logging.basicConfig(level=logging.WARNING, format="plangate worker: %(message)s")
    say(
        f"Worker for {found.name} on {shown_url(found.db)} (concurrency {concurrency}, "
        f"heartbeat {settings.heartbeat_seconds:g}s, stall {settings.stall_seconds:g}s); "
        "SIGTERM stops after the steps in flight."
    )
    run_worker(found, concurrency=concurrency, queues=queues)


def queued_project(project: Project | None, db: str) -> Project | None:
    """`project`, when its runs go on in its queue (`workers:`) and `db` is its database;
    `None` when the door runs them itself, as it always did."""
    if project is None or not project.queued or project.db != db:
        return None
    _ = project.workers  # a SQLite database with workers: one line, before anything is done
    return project


def run_project(db: str, snapshot: StateSnapshot, named: Project | None) -> Project:
    """The project a stored run goes on in (its own, unless one is named)."""
    from plangate.project import RunSetup

    return RunSetup.of(snapshot).project_for(db, named)


def queue(
    project: Project,
    thread: str,
    resume: Mapping[str, Any] | None = None,
    *,
    start: RunStart | None = None,
) -> ExitCode:
    """Queue `thread` to go on on a worker of `project`, and say so."""
    try:
        from plangate.workers import queue_go_on
    except ImportError as exc:
        raise needs_extra("worker", exc, extra="workers", missing="procrastinate") from None
    job = queue_go_on(project, thread, resume, start=start)
    say(f"queued: run {thread} goes on on a worker (job {job})")
    return ExitCode.SUCCESS


def jobs(
    failed: Annotated[bool, typer.Option("--failed", help="Only the failed jobs.")] = False,
    retry: Annotated[
        int | None,
        typer.Option("--retry", metavar="ID", help="Put the failed job ID back in the queue."),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(min=0, metavar="N", help="List the newest N jobs; 0 lists them all."),
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    project: ProjectOption = None,
) -> None:
    """List the project's queued jobs (`workers:`), the newest 50 first: id, thread, kind
    (start, decision, resume, expiry, sweep), status, attempts, worker, when queued, and why a
    failed one failed. A decision's arguments are never shown, only its kind.

    --retry ID puts a failed job back in the queue: it runs again, after the jobs its thread
    has queued since (fix what failed it first: a profile, a tool source).
    """
    from plangate.runs.checkpoint import is_postgres_url
    from plangate.runs.queue import count_jobs, list_jobs

    found, _ = find_project(project, None)
    if found is None or not found.queued:
        say("Workers are off: the project file has no workers: section (runs go on in the door).")
        return
    if not is_postgres_url(found.db):
        say("Workers are off: they need a PostgreSQL database, and db is SQLite.")
        return
    if retry is not None:
        _retry(found, retry, list_jobs(found.db, job_id=retry))
        return
    listed = list_jobs(found.db, failed=failed, limit=limit or None)
    for job in listed:
        queued_at = job.queued_at.isoformat(timespec="seconds") if job.queued_at else None
        if as_json:
            say(json_line({**_fields(job), "queued_at": queued_at}))
            continue
        line = (
            f"{job.id}  {job.thread or '-'}  {job.kind}  {job.status}  "
            f"attempts {job.attempts}  {job.worker or '-'}  queued {queued_at or '-'}"
        )
        say(line + (f"  error: {job.error}" if job.error else ""))
    if as_json:
        return
    if not listed:
        say("No failed job." if failed else "No job in the queue.")
    elif limit and len(listed) == limit and (total := count_jobs(found.db, failed=failed)) > limit:
        say(f"The newest {limit} of {total:,}; --limit 0 lists them all.")


def _fields(job: QueuedJob) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(job)


def _retry(project: Project, job_id: int, listed: list[QueuedJob]) -> None:
    """Put the failed job `job_id` back in the queue, or say in one line why not."""
    job = next((j for j in listed if j.id == job_id), None)
    if job is None:
        raise PlangateUsageError(
            f"no job {job_id} of plangate in the queue", hint="`plangate jobs` lists them"
        )
    if job.status != "failed":
        raise PlangateUsageError(
            f"job {job_id} is {job.status}, not failed: only a failed job is retried"
        )
    try:
        from plangate.workers import worker_app
    except ImportError as exc:
        raise needs_extra("jobs", exc, extra="workers", missing="procrastinate") from None
    from plangate._time import utc_now

    app = worker_app(project)
    with app.open():
        app.job_manager.retry_job_by_id(job_id, retry_at=utc_now())
    say(f"Job {job_id} ({job.kind} of {job.thread or 'the sweeps'}) is queued again.")
