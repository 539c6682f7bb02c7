"""Deciding: `approve`, `reject`, and `expire` (closing what nobody decided in time)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plangate._time import utc_now
from plangate.cli.describe import print_request, what_waits
from plangate.cli.options import (
    DEFAULT_SWEEP_EVERY,
    AllOption,
    ApproverOption,
    DbOption,
    ProjectOption,
    ServerOption,
    StepOption,
    ThreadArg,
    duration_option,
    shown_duration,
    user,
)
from plangate.cli.output import ExitCode, say
from plangate.cli.where import (
    existing_run,
    open_reader,
    plan_steps,
    project_of_runs,
    require_db,
)
from plangate.errors import PlangateError, PlangateUsageError
from plangate.runs.checkpoint import shown_url
from plangate.runs.stored import is_approval_request, is_expired

# LangGraph's graph machinery (through the drive loop, the graph and `Command`) is imported in
# the commands that go on with a run: the commands that only read runs must not pay for it at
# start-up, and every command module is imported to build the command line.
if TYPE_CHECKING:
    from langgraph.types import StateSnapshot

    from plangate.project import Project, RunSetup
    from plangate.runs.expiry import CloseRun
    from plangate.runs.guarded_graph import PlangateGraph

__all__ = ("approve", "expire", "reject")


def approve(
    thread: ThreadArg,
    *,
    approver: ApproverOption = None,
    args: Annotated[
        str | None, typer.Option(help="New arguments as JSON: approve with an edit.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    step: StepOption = None,
    every: AllOption = False,
    db: DbOption = None,
    project: ProjectOption = None,
    server: ServerOption = None,
) -> None:
    """Approve the pending step of a run (with --args, edit it first) and go on.

    The decision answers the request printed here, and only it: if someone decides it first,
    this one is refused and changes nothing. After the request's deadline it is recorded as
    expired (exit status 6). With --server, the inbox decides it as the token's person.
    """
    decision: dict[str, Any] = {"decision": "approve", "reason": reason}
    if args is not None:
        try:
            decision.update(decision="edit", args=json.loads(args))
        except json.JSONDecodeError as exc:
            raise PlangateUsageError(
                f"--args is not valid JSON: {exc.msg} at char {exc.pos}"
            ) from None
    where = Where(approver, step, every, server, project, db)
    raise typer.Exit(where.decide(thread, decision))


def reject(
    thread: ThreadArg,
    *,
    reason: Annotated[str, typer.Option(help="Why the step is rejected (recorded).")],
    approver: ApproverOption = None,
    step: StepOption = None,
    every: AllOption = False,
    db: DbOption = None,
    project: ProjectOption = None,
    server: ServerOption = None,
) -> None:
    """Reject the pending step of a run and go on (or halt, as the profile says).

    A run with a rejected step ends partial (exit status 4) or failed (5), if nothing else
    pauses it.
    """
    if not reason.strip():
        raise PlangateUsageError("--reason is empty", hint="say why the step is rejected")
    decision = {"decision": "reject", "reason": reason}
    raise typer.Exit(Where(approver, step, every, server, project, db).decide(thread, decision))


@dataclass(frozen=True)
class Where:
    """Where `approve` and `reject` decide, from their options: through the inbox at `server`,
    as its token's person, or on the database, as `approver` (default: the operating-system
    user), unverified; the requests named by `step`, or `every` one."""

    approver: str | None
    step: str | None
    every: bool
    server: str | None
    project: str | None
    db: str | None

    def decide(self, thread: str, decision: dict[str, Any]) -> int:
        _one_or_every(self.step, self.every, edit=decision["decision"] == "edit")
        if self.server is None:
            decision["approver"] = user() if self.approver is None else self.approver
            where = project_of_runs(self.project, self.db)
            return _decide(thread, decision, self.step, *where, every=self.every)
        from plangate.cli.remote import decide_through

        if self.approver is not None or self.every or self.project or self.db:
            raise PlangateUsageError(
                "--server decides one request as your token's person, in the server's "
                "project: --approver, --all, --project and --db do not go with it",
                hint="drop them; name the request with --step STEP_ID when several wait",
            )
        return decide_through(self.server, thread, decision, self.step)


def _one_or_every(step: str | None, every: bool, *, edit: bool) -> None:
    if every and step is not None:
        raise PlangateUsageError("--all and --step exclude each other", hint="give one of them")
    if every and edit:
        raise PlangateUsageError(
            "--all and --args exclude each other: an edit is for one call",
            hint="edit with --step STEP_ID --args '{...}'",
        )


def _waiting(snapshot: StateSnapshot) -> dict[str, dict[str, Any]]:
    """Interrupt id -> approval request, of each request the run waits on."""
    waiting = [i for i in snapshot.interrupts if is_approval_request(i.value)]
    return {i.id: i.value for i in sorted(waiting, key=lambda i: i.value["step_index"])}


def _decide(
    thread: str,
    decision: dict[str, Any],
    step: str | None,
    project: Project | None,
    db: str,
    *,
    every: bool = False,
) -> ExitCode:
    """Bind `decision` to the requests the run waits on now, by the service's one rule
    (`plangate.runs.service.bind_decision`: the one of `step`; each, with `every`; the only
    one, when no step is named), show those requests, and go on with the run here, printing as
    it goes (in `project`, if named)."""
    from plangate.cli.drive import drive
    from plangate.runs.history import remaining_tools
    from plangate.runs.service import bind_decision

    graph, config, snapshot = existing_run(db, thread, project)
    waiting = _waiting(snapshot)
    if not waiting:
        with graph.hold(config):  # `ResumeConflict` while another process runs it
            # A run read between two of its steps may have paused again since.
            waiting = _waiting(graph.get_state(config))
    bound = bind_decision(thread, waiting, decision, graph=graph, step=step, every=every)
    # A source the steps left need that is down: refused now, before a decision lets an
    # irreversible step act and the run then stops at the next one.
    graph.reach(remaining_tools(snapshot))
    from plangate.cli.commands.workers import queue, queued_project, run_project

    queued = queued_project(run_project(db, snapshot, project), db)
    if queued is not None:  # a decision queued on the request already: refused before shown
        from plangate.runs.queue import refuse_queued

        refuse_queued(db, thread, bound.resume)
    verb = {"approve": "Approving", "edit": "Approving, edited,", "reject": "Rejecting"}
    for request in bound.requests:
        say(f"{verb[decision['decision']]} {what_waits(request)} of run {thread}:")
        print_request(request, edited=decision.get("args"))
    first = bound.requests[0]
    if queued is not None:  # `workers:` on: a worker goes on with it
        code = queue(queued, thread, bound.resume)
        if not every and is_expired(first, utc_now()):
            say(f"Too late: the request expired at {first['expires_at']}; it is closed as expired.")
            return ExitCode.EXPIRED
        return code
    code = drive(
        graph,
        bound.command,
        config,
        db,
        steps=plan_steps(snapshot.values),
        decided_step=None if every else first["step_id"],
    )
    if code == ExitCode.EXPIRED:
        say(
            f"Too late: the request expired at {first['expires_at']}, so the decision was "
            "recorded as expired, not as given."
        )
    return code


def expire(
    db: DbOption = None,
    project: ProjectOption = None,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Go on closing approvals as they expire, until Ctrl-C."),
    ] = False,
    every: Annotated[
        float | None,
        duration_option(
            "--every",
            help="With --watch: the longest wait between two looks at the database, for the "
            "requests made since (30s, 5m, 1h; default 30s). A request waiting is closed as "
            "it expires.",
        ),
    ] = None,
) -> None:
    """Close every approval that expired unanswered: each run goes on as its profile says
    (`on_expiry`).

    Exits 0 whatever the runs it closed did next (each one's outcome is printed); a run it
    cannot go on with is printed as skipped, and stays paused. With --watch it goes on: each
    request is closed a moment after it expires, a skipped run is tried again at the next
    look, and Ctrl-C stops it (exit 0; Ctrl-C while a closed run goes on stops that run as it
    would stop `plangate run`). With `workers:` on, --watch says so in one line and exits 0:
    the workers close expired approvals at their deadline; without --watch, each closing is
    queued for a worker.
    """
    from plangate.runs.expiry import sweep_expired, watch_expiry

    if every is not None and not watch:
        raise PlangateUsageError(
            "--every needs --watch", hint="plangate expire --watch --every 30s"
        )
    named, db = project_of_runs(project, db)
    if watch:
        require_db(db)  # a watch over a database no run has made yet would never see one
    graph = open_reader(db)
    close, queued = _expired_run_closer(db, named)
    if watch and queued:  # a second sweep would only queue the workers' closings again
        say("Workers on: `plangate worker` closes expired approvals at their deadline; no watch.")
        return
    if not watch:
        if not _print_skipped(sweep_expired(graph, now=utc_now(), close=close)):
            say("No approval has expired.")
        return
    seconds = every or DEFAULT_SWEEP_EVERY
    say(
        f"Watching {shown_url(db)} for approvals that expire, looking at least every "
        f"{shown_duration(seconds)}; Ctrl-C stops."
    )
    try:
        _print_skipped(watch_expiry(graph, every=seconds, now=utc_now, close=close))
    except KeyboardInterrupt:
        say("Stopped watching.")


def _expired_run_closer(db: str, project: Project | None) -> tuple[CloseRun, bool]:
    """Closes an expired run as `plangate expire` shows it: a line naming it, then the run
    going on under its own setup (profile, offline mode), printed as `plangate run` prints;
    and whether the runs are queued for workers instead (`workers:` on)."""
    from langgraph.types import Command

    from plangate.cli.commands.workers import queue, queued_project
    from plangate.cli.drive import drive
    from plangate.cli.where import find_project

    graphs: dict[RunSetup, PlangateGraph] = {}
    queued = queued_project(project or find_project(None, db)[0], db)

    def close(thread: str, closing: Mapping[str, dict[str, Any]]) -> ExitCode:
        count = f"{len(closing)} approvals" if len(closing) > 1 else "approval"
        say("", f"{thread}: {count} expired")
        if queued is not None:  # `workers:` on: a worker closes them and goes on
            return queue(queued, thread, dict(closing))
        run_graph, config, snapshot = existing_run(db, thread, project, graphs=graphs)
        return drive(
            run_graph, Command(resume=dict(closing)), config, db, steps=plan_steps(snapshot.values)
        )

    return close, queued is not None


def _print_skipped(closed: Iterator[tuple[str, Any]]) -> int:
    """Say which runs were skipped, and why (each one closed has printed itself); the count
    of runs closed or skipped."""
    count = 0
    for thread, outcome in closed:
        count += 1
        if isinstance(outcome, PlangateError):  # another worker has it, or it cannot go on here
            say(f"{thread}: skipped, {outcome}")
    return count
