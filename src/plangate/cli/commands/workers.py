"""Workers: `worker` runs the project's queue (`workers:`), and the doors' way into it: with
`workers:` on, `run`, `approve`, `reject` and `resume` check what they were given, queue the
run and say `queued` (`queue`), instead of running it in the terminal."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plangate.cli.commands import needs_extra
from plangate.cli.options import ProjectOption
from plangate.cli.output import ExitCode, say
from plangate.cli.where import find_project
from plangate.errors import PlangateUsageError
from plangate.project import Project
from plangate.runs.checkpoint import shown_url

if TYPE_CHECKING:
    from langgraph.types import StateSnapshot

    from plangate.workers import RunStart

__all__ = ("queue", "queued_project", "run_project", "worker")


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
