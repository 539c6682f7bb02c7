"""Running: `run` a plan, `resume` a run whose process stopped."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plangate.cli.commands.workers import queue, queued_project, run_project
from plangate.cli.options import (
    DbOption,
    FixturesOption,
    OfflineOption,
    ProfileOption,
    ProjectOption,
    ThreadArg,
    user,
)
from plangate.cli.output import say
from plangate.cli.where import existing_run, new_run_project, plan_steps, project_of_runs
from plangate.errors import UnknownThread
from plangate.identity._gate import STARTED_BY
from plangate.plan import Plan
from plangate.runs.checkpoint import open_checkpointer, shown_url

# LangGraph's graph machinery (through the drive loop, the graph and `Command`) is imported in
# the commands that go on with a run: the commands that only read runs must not pay for it at
# start-up, and every command module is imported to build the command line.
if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from plangate.workers import RunStart

__all__ = ("resume", "run")


def run(
    plan: Annotated[Path, typer.Argument(help="Plan file (YAML or JSON).")],
    *,
    profile: ProfileOption = None,
    project: ProjectOption = None,
    db: DbOption = None,
    thread: Annotated[str | None, typer.Option(help="Thread id (default: a new one).")] = None,
    offline: OfflineOption = False,
    fixtures: FixturesOption = None,
) -> None:
    """Run a plan with the project's tools; stops when a step needs approval.

    On a terminal, each step's trace line says `step k of N`. Ctrl-C waits for the tool calls in
    flight, keeps their results and stops the run; `plangate resume THREAD` goes on.
    """
    from plangate.cli.drive import drive

    parsed = Plan.from_file(plan)
    where, url = new_run_project(project, db)
    # Checks the profile (named as typed) and fixtures before anything is stored.
    graph = where.graph(
        profile=profile,
        offline=offline,
        fixtures=[str(path) for path in fixtures or ()],
        checkpointer=open_checkpointer(url),
    )
    graph.reach(step.tool for step in parsed.steps)  # one that is down: nothing is stored
    thread_id = thread or f"run-{uuid.uuid4().hex[:8]}"
    mode = ", offline" if offline else ""
    say(
        f"Thread {thread_id} (project {where.name}, profile {graph.governance.profile.name}{mode}, "
        f"database {shown_url(url)})"
    )
    steps = [step.id for step in parsed.steps]
    queued = queued_project(where, url)
    if queued is not None:  # `workers:` on: recorded in the queue, started on a worker
        if graph.checkpointer.get_tuple({"configurable": {"thread_id": thread_id}}):  # type: ignore[union-attr]
            from plangate.runs.service import ThreadExists

            raise ThreadExists(thread_id)
        start: RunStart = {
            "plan": parsed.to_input(),
            "project": str(where.file or ""),
            "profile": profile,
            "offline": offline,
            "fixtures": [str(Path(path).resolve()) for path in fixtures or ()],
            "started_by": user(),
            "start_id": uuid.uuid4().hex,
        }
        raise typer.Exit(queue(queued, thread_id, start=start))
    # The graph records the run's setup itself (`Project.graph`).
    # On the database, the operating-system user is who started it, as nobody checked it.
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id},
        "metadata": {STARTED_BY: user()},
    }
    raise typer.Exit(drive(graph, {"plan": parsed}, config, url, steps=steps))


def resume(thread: ThreadArg, db: DbOption = None, project: ProjectOption = None) -> None:
    """Continue a run whose process stopped mid-way (Ctrl-C, a crash, a kill).

    The step it was in runs again with the same idempotency key, so tools that honour it do not
    act twice. `plangate runs` lists the runs that stopped.
    """
    from plangate.cli.drive import drive
    from plangate.runs.history import remaining_tools
    from plangate.runs.service import require_stopped

    named, db = project_of_runs(project, db)
    graph, config, snapshot = existing_run(db, thread, named)
    saved = graph.checkpointer.get_tuple(config)  # type: ignore[union-attr]
    if saved is None:
        raise UnknownThread(thread)
    require_stopped(thread, saved)  # as the inbox's Resume: the same rule, the same errors
    graph.reach(remaining_tools(snapshot))
    queued = queued_project(run_project(db, snapshot, named), db)
    if queued is not None:  # `workers:` on: a worker goes on with it
        raise typer.Exit(queue(queued, thread))
    raise typer.Exit(drive(graph, None, config, db, steps=plan_steps(snapshot.values)))
