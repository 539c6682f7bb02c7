"""Reading runs: `pending`, `runs`, `show`, `trace`.

They read runs with the saver alone (`plangate.runs.stored`), never through a graph, so that
they start without importing LangGraph's graph machinery: a graph is built only for a run whose
latest checkpoint does not tell what it waits for (an approval answered and asked again).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer
from langgraph.checkpoint.base import CheckpointTuple

from plangate._time import utc_now
from plangate.cli.describe import (
    SUMMARY_OVER,
    approvals_count,
    decided_text,
    is_plan_review,
    print_done,
    print_pending,
    print_result,
    recorded_actions,
    what_waits,
)
from plangate.cli.options import DbOption, ProjectOption, ServerOption, ThreadArg, user
from plangate.cli.output import json_line, say
from plangate.cli.where import (
    db_flag,
    find_project,
    open_runs,
    plan_steps,
    rereader,
    stored_run,
)
from plangate.errors import PlangateError
from plangate.identity import DecisionGate, unverified
from plangate.project import Project, RunSetup
from plangate.runs.checkpoint import is_postgres_url
from plangate.runs.locks import run_locks
from plangate.runs.stored import (
    FINISHED,
    Reread,
    WaitingInterrupt,
    interrupts_waiting,
    is_approval_request,
    is_expired,
    latest_checkpoints,
    run_status,
    thread_checkpoints,
    trace_of,
    waiting_approvals,
)

if TYPE_CHECKING:
    from plangate.runs.queue import QueuedDecision

__all__ = ("pending", "runs", "show", "trace")


def pending(
    db: DbOption = None,
    project: ProjectOption = None,
    mine: Annotated[
        bool,
        typer.Option(
            "--mine", help="Only the requests you may decide (the profiles' approver rules)."
        ),
    ] = False,
    server: ServerOption = None,
) -> None:
    """List every run in the database that waits for an approval.

    A request past its deadline is marked EXPIRED: `plangate expire` closes it. `plangate runs`
    also lists the runs that stopped mid-way. With --mine, only those you may decide: through
    --server as your token's person, else as your user name, unverified. With workers on, a
    request decided and queued for a worker says `decision queued` (and is not yours to
    decide); one whose last decision failed says why, and is decidable again.
    """
    now = utc_now()
    if server is not None:
        from plangate.cli.remote import Inbox

        shown = [(view["thread"], view, view.get("why_not")) for view in Inbox(server).pending()]
    else:
        shown = list(_waiting_here(project, db, mine=mine))
        _, db = find_project(project, db)
    found = False
    for thread, request, why_not in shown:
        if mine and (why_not is not None or request.get("queued")):
            continue
        found = True
        when = _when(request, now, db_flag(db) if db else "")
        count = approvals_count(request)
        what = (
            f"plan review ({len(request['steps'])} steps)  up to"
            if is_plan_review(request)
            else f"step {request['step_id']} ({request['tool']})"
        )
        say(
            f"{thread}  {what}  {request['risk']} risk  " + (f"{count}  " if count else "") + when,
            f"    {request['consequence']}",
        )
        if failed := request.get("last_failed"):
            said = f"the last decision failed ({decided_text(failed)}): {failed['error']}"
            say(f"    {said}; decide again")
    if not found:
        say("No run is waiting for " + ("your approval." if mine else "approval."))


def _when(request: dict[str, Any], now: datetime, flag: str) -> str:
    """Where a request stands, as `pending` ends its line: decided and queued, expired, or
    until when it waits."""
    if queued := request.get("queued"):
        return f"decision queued: {decided_text(queued)}, a worker applies it"
    if is_expired(request, now):
        return f"EXPIRED at {request['expires_at']} (run plangate expire{flag})"
    return f"expires {request['expires_at']}"


def _waiting_here(
    project: str | None, db: str | None, *, mine: bool
) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """(thread, request, why the operating-system user may not approve it, if `mine`) of
    every request waiting in the database; with workers on, each request says what the queue
    holds of its decision (`QueuedDecision.mark`)."""
    found, db = find_project(project, db)
    saver = open_runs(db)
    caller = unverified(user())
    gates: dict[RunSetup, DecisionGate | None] = {}
    listed = list(waiting_approvals(saver, rereader(db)))
    decided = _decisions_in_queue(found, db, {thread for thread, _ in listed})
    for thread, waiting in listed:
        gate = None
        if mine:
            saved = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
            setup = RunSetup.of(saved) if saved is not None else None
            if setup is not None and setup not in gates:
                gates[setup] = _gate_of(setup, db)
            gate = gates.get(setup) if setup is not None else None
        for interrupt in waiting:
            request = _marked(thread, interrupt, decided)
            why = None
            if mine:
                why = gate.why_not(caller, request) if gate else "its project or profile is gone"
            yield thread, request, why


def _marked(
    thread: str,
    interrupt: WaitingInterrupt,
    decided: Mapping[tuple[str, str], QueuedDecision],
) -> dict[str, Any]:
    """The request `interrupt` asks, with what the queue holds of its decision, if anything
    (`QueuedDecision.mark`)."""
    found = decided.get((thread, interrupt.id))
    return dict(interrupt.value) if found is None else {**interrupt.value, **found.mark()}


def _gate_of(setup: RunSetup, db: str) -> DecisionGate | None:
    """Who may decide the requests of runs with `setup`, as their graph judges it."""
    try:
        project = setup.project_for(db)
        return DecisionGate(project.load_profile(setup.profile), project.signer)
    except PlangateError:
        return None


def runs(
    db: DbOption = None,
    project: ProjectOption = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Also list the finished runs.")] = False,
) -> None:
    """List the runs that have not finished, newest first, each with what to do next.

    `stopped: plangate resume THREAD` (its process stopped mid-way: Ctrl-C, a crash),
    `running` (another process runs it now), or `waiting` for an approval. With workers on
    (`workers:`), a run with a job in the queue is `queued`, or `running on WORKER` while a
    worker has it; a start no worker has taken yet is listed `queued`. Reads every run's latest
    checkpoint, where `pending` reads only the waiting runs'.
    """
    found, db = find_project(project, db)
    saver = open_runs(db)
    locks = run_locks(saver)
    reread = rereader(db)
    flag = db_flag(db)
    now = utc_now()
    listed = 0
    in_queue = _in_queue(found, db)
    stored = list(latest_checkpoints(saver))
    # A start no worker has taken yet has no checkpoint: the queue alone knows it.
    known = {thread for thread, _ in stored}
    for thread, state in in_queue.items():
        if thread not in known:
            listed += 1
            say(f"{thread}  {state}")
    for thread, saved in stored:
        if thread in in_queue:
            listed += 1
            say(f"{thread}  {in_queue[thread]}")
            continue
        status = run_status(saved, partial(locks.is_running, thread))
        if status in FINISHED:
            if not all_runs:
                continue
            line = f"finished {status}: plangate show {thread}{flag}"
        elif status == "waiting":
            line = _waiting_line(reread, thread, saved, now, flag)
        elif status == "running":
            line = "running: another process runs it now"
        else:
            line = f"stopped: plangate resume {thread}{flag}"
        listed += 1
        say(f"{thread}  {line}")
    if not listed:
        say("No run in the database." if all_runs else "No unfinished run.")


def _reads_queue(found: Project | None, db: str) -> bool:
    """Whether the runs of `db` go on in `found`'s queue (`workers:`, its PostgreSQL
    database): the queue's tables are read beside the checkpoints, with psycopg alone."""
    return found is not None and found.queued and found.db == db and is_postgres_url(db)


def _in_queue(found: Project | None, db: str) -> dict[str, str]:
    """With workers on: thread -> `queued` or `running on WORKER`."""
    if not _reads_queue(found, db):
        return {}
    from plangate.runs.queue import queued_runs

    return queued_runs(db)


def _decisions_in_queue(
    found: Project | None, db: str, threads: set[str]
) -> dict[tuple[str, str], QueuedDecision]:
    """With workers on: the queue's newest decision on each request of `threads` not yet
    applied, or failed (`queued_decisions`)."""
    if not _reads_queue(found, db):
        return {}
    from plangate.runs.queue import queued_decisions

    return queued_decisions(db, threads)


def _waiting_line(
    reread: Reread, thread: str, saved: CheckpointTuple, now: datetime, flag: str
) -> str:
    waiting = interrupts_waiting(saved)
    if waiting is None:  # answered and asked again: only the rebuilt state tells
        waiting = list(reread(thread))
    requests = [i.value for i in waiting if is_approval_request(i.value)]
    requests.sort(key=lambda request: request["step_index"])
    if not requests:
        return f"waiting: plangate show {thread}{flag}"
    request = requests[0]
    step = what_waits(request)
    if len(requests) > 1:
        step = f"{len(requests)} steps ({', '.join(r['step_id'] for r in requests)})"
        expired = sum(is_expired(r, now) for r in requests)
        late = f", {expired} EXPIRED: plangate expire{flag}" if expired else ""
        return f"waiting: {step} need approval{late}: plangate show {thread}{flag}"
    if is_expired(request, now):
        return f"waiting: {step} approval EXPIRED at {request['expires_at']}: plangate expire{flag}"
    count = approvals_count(request)
    needs = f"needs approval ({count})" if count else "needs approval"
    return f"waiting: {step} {needs}: plangate show {thread}{flag}"


def show(
    thread: ThreadArg,
    db: DbOption = None,
    project: ProjectOption = None,
    full: Annotated[
        bool,
        typer.Option("--full", help=f"Print every step, also past {SUMMARY_OVER} steps."),
    ] = False,
) -> None:
    """Print a run's result, step table and golden signals, or the steps it has done and what
    it waits for.

    Past 50 steps, the table is summarised: the count per status and the first steps not ok.
    """
    found, db = find_project(project, db)
    saver, run = stored_run(db, thread)
    waiting = run.interrupts if run.interrupts is not None else rereader(db)(thread)
    asked = [i for i in waiting if is_approval_request(i.value)]
    decided = _decisions_in_queue(found, db, {thread} if asked else set())
    requests = sorted(
        (_marked(thread, i, decided) for i in asked), key=lambda request: request["step_index"]
    )
    ended = run.ended
    actions = recorded_actions(ended, requests)
    steps = plan_steps(run.values)
    result = run.values.get("result")
    if requests:
        print_done(steps, ended, actions, thread=thread, db=db, full=full)
        print_pending(thread, requests, db)
    elif result:
        print_result(result, actions, thread=thread, db=db, full=full)
    else:
        running = (run.values.get("run") or {}).get("running") or ()
        at = f" (steps in flight: {', '.join(running)})" if running else ""
        if run_locks(saver).is_running(thread):
            say(
                f"Run {thread} has not finished: another process runs it now{at}; "
                f"`plangate show {thread}{db_flag(db)}` again tells how it ended."
            )
        else:
            say(
                f"Run {thread} has not finished: it stopped{at}; "
                f"`plangate resume {thread}{db_flag(db)}` goes on."
            )
        print_done(steps, ended, actions, thread=thread, db=db, full=full)


def trace(thread: ThreadArg, db: DbOption = None, project: ProjectOption = None) -> None:
    """Print a run's whole trace as JSON lines.

    Control and bidi characters in strings are written as \\uXXXX escapes (still the same JSON).
    """
    _, db = find_project(project, db)
    saver, _ = stored_run(db, thread)
    for event in trace_of(thread_checkpoints(saver, thread)):
        say(json_line(event))
