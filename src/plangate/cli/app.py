"""The `plangate` command: run a plan with a project's tools, list, approve, inspect.

Every command works on a project (`plangate.yaml`, see `plangate.project`): the one `--project`
or `PLANGATE_PROJECT` names, else the one in the current folder or its nearest parent, else the
built-in demo. A run goes on under the project it started under, from any folder.

Every user error (a missing file, a bad plan, an unknown thread, nothing pending) is one line on
stderr and exit status 1; tracebacks are for bugs only. `ExitCode` says what every other exit
status means. Everything printed goes through `say`, which writes the control, bidi and other
invisible characters of plan- or tool-supplied text as visible escapes: a plan must not be able
to hide or rewrite what the person approving it reads.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import secrets
import sys
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.types import Command, StateSnapshot

from plangate._files import read_document
from plangate._time import utc_now
from plangate.approval import EDIT_HINT
from plangate.audit import audit_records, verify_trace
from plangate.cli.describe import (
    SUMMARY_OVER,
    approvals_count,
    is_plan_review,
    print_done,
    print_pending,
    print_report,
    print_request,
    print_result,
    recorded_actions,
    undone,
    what_waits,
)
from plangate.cli.drive import drive
from plangate.cli.output import (
    EXIT_HELP,
    RUN_EXITS,
    ExitCode,
    OutputClosed,
    Stopped,
    human_size,
    json_line,
    plural,
    print_rows,
    say,
    warn,
)
from plangate.cli.where import (
    audited_run,
    db_flag,
    existing_run,
    find_project,
    new_run_project,
    open_reader,
    plan_steps,
    project_of_runs,
    read_run,
    require_db,
    saver_of,
)
from plangate.errors import (
    InvalidDecision,
    NoPendingApproval,
    PlangateError,
    PlangateUsageError,
    ProfileMismatch,
    RunNotFinished,
    UnknownThread,
)
from plangate.plan import Plan, PlanStep, tool_domain
from plangate.preflight import preflight
from plangate.project import Project, RunSetup, write_template
from plangate.runs.checkpoint import open_checkpointer, shown_url
from plangate.runs.expiry import CloseRun, sweep_expired, watch_expiry
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.history import (
    get_trace,
    interrupts_waiting,
    is_approval_request,
    is_expired,
    latest_checkpoints,
    pending_approvals,
    remaining_tools,
    run_state,
)
from plangate.runs.prune import PruneReport, prune_runs

app = typer.Typer(
    help="Run LLM-made plans of tool calls under governance: budgets, approvals, traces.\n\n"
    + EXIT_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: the rich one shows flags as `--offline <bool>` and eats `[server]` as markup.
    rich_markup_mode=None,
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Checkpoint database: a path, sqlite:///path.db or postgresql://... "
        "(default: the project's, else plangate.db).",
    ),
]
ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        envvar="PLANGATE_PROJECT",
        metavar="PATH",
        help="The project file (plangate.yaml) or its folder (default: the one in this folder "
        "or its nearest parent; else the built-in demo).",
    ),
]
ThreadArg = Annotated[str, typer.Argument(metavar="THREAD", help="The run's thread id.")]
ApproverOption = Annotated[
    str | None,
    typer.Option(
        help="Who decides (recorded as given; blank is anonymous; default: your user name)."
    ),
]
StepOption = Annotated[
    str | None,
    typer.Option(
        metavar="STEP_ID",
        help="The step decided; refused if the run waits on another (default: the one waiting).",
    ),
]
AllOption = Annotated[
    bool,
    typer.Option(
        "--all",
        help="Decide every step the run waits on, each as printed here (not with --step).",
    ),
]


def _print_version(wanted: bool) -> None:
    if wanted:
        from plangate import __version__

        print(f"plangate {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show what MCP servers write to stderr (else they write to plangate-mcp.log "
            "in their working folder, the project's).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    # The name `plangate.adapters.mcp.SERVER_LOG_VARIABLE` holds: that module is not imported
    # here, as it loads the MCP client stack, which most commands do not use.
    if verbose:
        os.environ.pop("PLANGATE_MCP_LOG", None)
    else:
        os.environ.setdefault("PLANGATE_MCP_LOG", "plangate-mcp.log")


def _user() -> str | None:
    """Who runs the command, for the approval record when no --approver is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return None


# --- commands ---------------------------------------------------------------------------------


ProfileOption = Annotated[
    str | None,
    typer.Option(
        help="A profile of the project's, enterprise, smb, technical, or a profile file "
        "(default: the project's)."
    ),
]
OfflineOption = Annotated[
    bool, typer.Option("--offline", help="Call every tool's mock; nothing is sent.")
]
FixturesOption = Annotated[
    list[Path] | None,
    typer.Option(
        metavar="FILE",
        help="Fixture file of mocks (repeatable); replaces the project's mock of a tool.",
    ),
]


@app.command(epilog=RUN_EXITS)
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
    # The graph records the run's setup itself (`Project.graph`).
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    raise typer.Exit(drive(graph, {"plan": parsed}, config, url, steps=steps))


@app.command()
def check(
    plan: Annotated[Path, typer.Argument(help="Plan file (YAML or JSON).")],
    *,
    profile: ProfileOption = None,
    project: ProjectOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check against the mocks, as --offline runs.")
    ] = False,
    fixtures: FixturesOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (PreflightReport).")
    ] = False,
) -> None:
    """Check a plan against the project's tools and a profile before anything runs: unknown or
    blocked tools, args against each tool's schema, each step's effective action, risk and
    whether it will ask, and the budget tier it would run out of. Exits 1 on a problem."""
    try:
        document = read_document(plan, what="plan")
    except ValueError as exc:
        raise PlangateUsageError(str(exc)) from None
    where, _ = new_run_project(project, None)
    graph = where.graph(
        profile=profile, offline=offline, fixtures=[str(path) for path in fixtures or ()]
    )
    report = preflight(graph, document)
    if as_json:
        say(json_line(report.model_dump(mode="json")))
    else:
        print_report(report)
    raise typer.Exit(ExitCode.SUCCESS if report.ok else ExitCode.USER_ERROR)


@app.command()
def tools(
    profile: ProfileOption = None,
    project: ProjectOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Also list the tools only a mock stands for.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the project's tools: source, domain, effective action and where it comes from,
    risk, and whether the profile lets it run and makes it ask.

    Reaches every MCP server and OpenAPI document of the project.
    """
    where, _ = new_run_project(project, None)
    graph = where.graph(profile=profile, offline=offline)
    governance = graph.governance
    names = list(graph.tools)
    mocked = [name for name in governance.mocks if name not in graph.tools] if offline else []
    rows = []
    for name in sorted({*names, *mocked}):
        policy = governance.policy(PlanStep(id="tool", tool=name))
        rows.append(
            {
                "tool": name,
                "source": "mock" if name in mocked else where.tools.source_of(name),
                "domain": tool_domain(name),
                "action": policy.action,
                "action_source": policy.source,
                "irreversible": policy.irreversible,
                "exempt": policy.exempt,
                "risk": policy.risk,
                "allowed": governance.profile.allows(name),
                "asks": policy.needs_approval,
            }
        )
    if as_json:
        for row in rows:
            say(json_line(row))
        return
    say(f"{plural(len(rows), 'tool')} of project {where.name}, profile {governance.profile.name}:")
    print_rows(
        [("tool", "source", "domain", "action", "risk", "runs")]
        + [
            (
                str(row["tool"]),
                str(row["source"]),
                str(row["domain"]),
                f"{row['action']} ({row['action_source']}){undone(row)}",
                str(row["risk"]),
                ("asks" if row["asks"] else "yes") if row["allowed"] else "blocked",
            )
            for row in rows
        ]
    )


@app.command()
def init(
    folder: Annotated[
        Path, typer.Argument(help="Where to write the project (default: this folder).")
    ] = Path("."),
    demo: Annotated[
        bool, typer.Option("--demo", help="Write the demo project (a sales workflow) instead.")
    ] = False,
) -> None:
    """Write a starter project: plangate.yaml, a toolkit of your own (tools.py) and a plan.

    Refuses to overwrite a file that is there.
    """
    written = write_template("demo" if demo else "starter", folder)
    say(*(f"wrote {path}" for path in written))
    plan = next(
        path.name for path in written if path.suffix == ".yaml" and path.name != "plangate.yaml"
    )
    where = "" if folder.resolve() == Path.cwd() else f"cd {folder} && "
    say(f"Next: {where}plangate tools && plangate check {plan} && plangate run {plan}")


@app.command()
def pending(db: DbOption = None, project: ProjectOption = None) -> None:
    """List every run in the database that waits for an approval.

    A request past its deadline is marked EXPIRED: `plangate expire` closes it. `plangate runs`
    also lists the runs that stopped mid-way.
    """
    _, db = find_project(project, db)
    graph = open_reader(db)
    now = utc_now()
    found = False
    for thread, request in pending_approvals(graph):
        found = True
        when = (
            f"EXPIRED at {request['expires_at']} (run plangate expire{db_flag(db)})"
            if is_expired(request, now)
            else f"expires {request['expires_at']}"
        )
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
    if not found:
        say("No run is waiting for approval.")


@app.command()
def runs(
    db: DbOption = None,
    project: ProjectOption = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Also list the finished runs.")] = False,
) -> None:
    """List the runs that have not finished, newest first, each with what to do next.

    `stopped: plangate resume THREAD` (its process stopped mid-way: Ctrl-C, a crash),
    `running` (another process runs it now), or `waiting` for an approval. Reads every run's
    latest checkpoint, where `pending` reads only the waiting runs'.
    """
    _, db = find_project(project, db)
    graph = open_reader(db)
    flag = db_flag(db)
    now = utc_now()
    listed = 0
    for thread, saved in latest_checkpoints(saver_of(graph)):
        state = run_state(saved)
        if state == "finished":
            if not all_runs:
                continue
            result = saved.checkpoint["channel_values"].get("result") or {}
            line = f"finished {result.get('status')}: plangate show {thread}{flag}"
        elif state == "waiting":
            line = _waiting_line(graph, thread, saved, now, flag)
        elif graph.is_running({"configurable": {"thread_id": thread}}):
            line = "running: another process runs it now"
        else:
            line = f"stopped: plangate resume {thread}{flag}"
        listed += 1
        say(f"{thread}  {line}")
    if not listed:
        say("No run in the database." if all_runs else "No unfinished run.")


def _waiting_line(
    graph: PlangateGraph, thread: str, saved: CheckpointTuple, now: Any, flag: str
) -> str:
    waiting = interrupts_waiting(saved)
    if waiting is None:  # answered and asked again: only the rebuilt state tells
        waiting = list(graph.get_state({"configurable": {"thread_id": thread}}).interrupts)
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


_DURATION = re.compile(r"(\d+(?:\.\d*)?)([smhdw])?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST_WAIT = 24 * 3600.0  # a longer wait is a mistake (and `inf` overflows the sleep)


def _duration(text: str) -> timedelta:
    """A duration as the command line takes it: `30s`, `5m`, `12h`, `30d`, `2w` (a bare
    number is seconds)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration: a number and s, m, h, d or w, as in 30s or 30d"
        )
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2] or "s"])


def _wait(text: str) -> float:
    """Seconds between two sweeps: more than none, at most a day."""
    seconds = _duration(text).total_seconds()
    if not 0 < seconds <= _LONGEST_WAIT:
        raise typer.BadParameter(
            f"{text!r} is not a duration of at most 24h: write it as 30s, 5m or 1h"
        )
    return seconds


def _shown_duration(seconds: float) -> str:
    for unit in ("h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds / _UNIT_SECONDS[unit]:g}{unit}"
    return f"{seconds:g}s"


DEFAULT_SWEEP_EVERY = 30.0


def _duration_option(*flags: str, help: str) -> Any:
    """An option taking a duration (`30s`, `5m`, `1h`) as seconds."""
    return typer.Option(*flags, parser=_wait, metavar="DURATION", help=help)


@app.command()
def expire(
    db: DbOption = None,
    project: ProjectOption = None,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Go on closing approvals as they expire, until Ctrl-C."),
    ] = False,
    every: Annotated[
        float | None,
        _duration_option(
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
    would stop `plangate run`).
    """
    if every is not None and not watch:
        raise PlangateUsageError(
            "--every needs --watch", hint="plangate expire --watch --every 30s"
        )
    named, db = project_of_runs(project, db)
    if watch:
        require_db(db)  # a watch over a database no run has made yet would never see one
    graph = open_reader(db)
    close = _expired_run_closer(db, named)
    if not watch:
        if not _print_skipped(sweep_expired(graph, now=utc_now(), close=close)):
            say("No approval has expired.")
        return
    seconds = every or DEFAULT_SWEEP_EVERY
    say(
        f"Watching {shown_url(db)} for approvals that expire, looking at least every "
        f"{_shown_duration(seconds)}; Ctrl-C stops."
    )
    try:
        _print_skipped(watch_expiry(graph, every=seconds, now=utc_now, close=close))
    except KeyboardInterrupt:
        say("Stopped watching.")


def _expired_run_closer(db: str, project: Project | None) -> CloseRun:
    """Closes an expired run as `plangate expire` shows it: a line naming it, then the run
    going on under its own setup (profile, offline mode), printed as `plangate run` prints."""
    graphs: dict[RunSetup, PlangateGraph] = {}

    def close(thread: str, closing: Mapping[str, dict[str, Any]]) -> ExitCode:
        count = f"{len(closing)} approvals" if len(closing) > 1 else "approval"
        say("", f"{thread}: {count} expired")
        run_graph, config, snapshot = existing_run(db, thread, project, graphs=graphs)
        return drive(
            run_graph, Command(resume=dict(closing)), config, db, steps=plan_steps(snapshot.values)
        )

    return close


def _print_skipped(closed: Iterator[tuple[str, Any]]) -> int:
    """Say which runs were skipped, and why (each one closed has printed itself); the count
    of runs closed or skipped."""
    count = 0
    for thread, outcome in closed:
        count += 1
        if isinstance(outcome, PlangateError):  # another worker has it, or it cannot go on here
            say(f"{thread}: skipped, {outcome}")
    return count


@app.command(epilog=RUN_EXITS.replace("5 failed, ", "5 failed, 6 decided too late, "))
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
) -> None:
    """Approve the pending step of a run (with --args, edit it first) and go on.

    The decision answers the request printed here, and only it: if someone decides it first,
    this one is refused and changes nothing. After the request's deadline it is recorded as
    expired (exit status 6).
    """
    decision: dict[str, Any] = {
        "decision": "approve",
        "approver": _user() if approver is None else approver,
        "reason": reason,
    }
    if args is not None:
        try:
            decision.update(decision="edit", args=json.loads(args))
        except json.JSONDecodeError as exc:
            raise PlangateUsageError(
                f"--args is not valid JSON: {exc.msg} at char {exc.pos}"
            ) from None
    _one_or_every(step, every, edit=args is not None)
    raise typer.Exit(_decide(thread, decision, step, *project_of_runs(project, db), every=every))


def _waiting(snapshot: StateSnapshot) -> dict[str, dict[str, Any]]:
    """Interrupt id -> approval request, of each request the run waits on."""
    waiting = [i for i in snapshot.interrupts if is_approval_request(i.value)]
    return {i.id: i.value for i in sorted(waiting, key=lambda i: i.value["step_index"])}


def _requests(snapshot: StateSnapshot) -> list[dict[str, Any]]:
    return list(_waiting(snapshot).values())


def _decide(
    thread: str,
    decision: dict[str, Any],
    step: str | None,
    project: Project | None,
    db: str,
    *,
    every: bool = False,
) -> ExitCode:
    """Bind `decision` to the request the run waits on now (the one of `step`, if given; with
    `every`, to each request it waits on), show those requests, and resume the run with it (in
    `project`, if named)."""
    graph, config, snapshot = existing_run(db, thread, project)
    waiting = _waiting(snapshot)
    if not waiting:
        with graph.hold(config):  # `ResumeConflict` while another process runs it
            # A run read between two of its steps may have paused again since.
            waiting = _waiting(graph.get_state(config))
        if not waiting:
            raise NoPendingApproval(thread)
    chosen = [
        (key, request)
        for key, request in waiting.items()
        if every or step is None or request["step_id"] == step
    ]
    if not chosen:
        listed = ", ".join(repr(r["step_id"]) for r in waiting.values())
        raise PlangateUsageError(
            f"run {thread!r} is not waiting for step {step!r} (it waits for {listed})",
            hint="`plangate show THREAD` prints what it waits for",
        )
    if not every:
        chosen = chosen[:1]  # the one of `step`, else the first in plan order
    # A source the steps left need that is down: refused now, before a decision lets an
    # irreversible step act and the run then stops at the next one.
    graph.reach(remaining_tools(snapshot))
    verb = {"approve": "Approving", "edit": "Approving, edited,", "reject": "Rejecting"}
    resume: dict[str, dict[str, Any]] = {}
    for key, request in chosen:
        say(f"{verb[decision['decision']]} {what_waits(request)} of run {thread}:")
        print_request(request, edited=decision.get("args"))
        resume[key] = {
            **decision,
            "request_id": request["request_id"],
            "digest": request.get("digest"),
        }
    first = chosen[0][1]
    code = drive(
        graph,
        # One decision is bound by its request id; several by their interrupts' ids.
        Command(resume=resume if every else resume[chosen[0][0]]),
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


@app.command(epilog=RUN_EXITS.replace("5 failed, ", "5 failed, 6 decided too late, "))
def reject(
    thread: ThreadArg,
    *,
    reason: Annotated[str, typer.Option(help="Why the step is rejected (recorded).")],
    approver: ApproverOption = None,
    step: StepOption = None,
    every: AllOption = False,
    db: DbOption = None,
    project: ProjectOption = None,
) -> None:
    """Reject the pending step of a run and go on (or halt, as the profile says).

    A run with a rejected step ends partial (exit status 4) or failed (5), if nothing else
    pauses it.
    """
    if not reason.strip():
        raise PlangateUsageError("--reason is empty", hint="say why the step is rejected")
    decision = {
        "decision": "reject",
        "reason": reason,
        "approver": _user() if approver is None else approver,
    }
    _one_or_every(step, every, edit=False)
    raise typer.Exit(_decide(thread, decision, step, *project_of_runs(project, db), every=every))


def _one_or_every(step: str | None, every: bool, *, edit: bool) -> None:
    if every and step is not None:
        raise PlangateUsageError("--all and --step exclude each other", hint="give one of them")
    if every and edit:
        raise PlangateUsageError(
            "--all and --args exclude each other: an edit is for one call",
            hint="edit with --step STEP_ID --args '{...}'",
        )


@app.command(epilog=RUN_EXITS)
def resume(thread: ThreadArg, db: DbOption = None, project: ProjectOption = None) -> None:
    """Continue a run whose process stopped mid-way (Ctrl-C, a crash, a kill).

    The step it was in runs again with the same idempotency key, so tools that honour it do not
    act twice. `plangate runs` lists the runs that stopped.
    """
    named, db = project_of_runs(project, db)
    graph, config, snapshot = existing_run(db, thread, named)
    if snapshot.interrupts:
        raise PlangateUsageError(
            f"run {thread!r} is waiting for an approval",
            hint="use `plangate approve` or `plangate reject`",
        )
    # Not `next` alone: a process killed after a step saved its writes, but before the
    # checkpoint that follows them, leaves that step's task (with its writes) and no `next`.
    if not snapshot.next and not snapshot.tasks:
        raise PlangateUsageError(
            f"run {thread!r} has finished", hint="`plangate show THREAD` prints its result"
        )
    graph.reach(remaining_tools(snapshot))
    raise typer.Exit(drive(graph, None, config, db, steps=plan_steps(snapshot.values)))


@app.command()
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
    _, db = find_project(project, db)
    graph, snapshot = read_run(db, thread)
    requests = _requests(snapshot)
    actions = recorded_actions(snapshot, requests)
    result = snapshot.values.get("result")
    if requests:
        print_done(snapshot, actions, thread=thread, db=db, full=full)
        print_pending(thread, requests, db)
    elif result:
        print_result(result, actions, thread=thread, db=db, full=full)
    else:
        at = ", ".join(task.name for task in snapshot.tasks) or "nothing"
        if graph.is_running({"configurable": {"thread_id": thread}}):
            say(
                f"Run {thread} has not finished: another process runs it now (at: {at}); "
                f"`plangate show {thread}{db_flag(db)}` again tells how it ended."
            )
        else:
            say(
                f"Run {thread} has not finished: it stopped (at: {at}); "
                f"`plangate resume {thread}{db_flag(db)}` goes on."
            )
        print_done(snapshot, actions, thread=thread, db=db, full=full)


@app.command()
def trace(thread: ThreadArg, db: DbOption = None, project: ProjectOption = None) -> None:
    """Print a run's whole trace as JSON lines.

    Control and bidi characters in strings are written as \\uXXXX escapes (still the same JSON).
    """
    _, db = find_project(project, db)
    graph, _ = read_run(db, thread)
    for event in get_trace(graph, {"configurable": {"thread_id": thread}}):
        say(json_line(event))


AnchorsOption = Annotated[
    Path | None,
    typer.Option(
        "--anchors",
        metavar="FILE",
        help="Check against the anchors in FILE (JSON lines: an anchor file, or the bodies of "
        "the anchor log records) instead of the project's.",
    ),
]


@app.command(epilog="Exit status: 0 the chain holds, 7 it breaks, 1 user error.")
def verify(
    thread: ThreadArg,
    db: DbOption = None,
    project: ProjectOption = None,
    anchors: AnchorsOption = None,
) -> None:
    """Check a run's audit trail: compute its trace's hash chain again and name the first event
    that does not match (an event changed, removed or added in the database); check it against
    the run's anchors (kept outside the database: `anchors:` in the project file), which find
    the run's last checkpoints deleted whole; and check the approvals its state records
    (what `show` prints) against the chained ones.

    Set PLANGATE_AUDIT_KEY to the key the run was written with, if any.
    """
    graph, sink = audited_run(project, db, thread, anchors)
    check = verify_trace(graph, {"configurable": {"thread_id": thread}}, anchors=sink)
    events = f"the hash chain of its {plural(check.events, 'event')} holds"
    if check.found_by == "chain" and not check.ok:
        say(f"Run {thread}: the hash chain breaks at {check.problem}")
        say(f"{check.events} events before it match.")
        raise typer.Exit(ExitCode.CHAIN_BROKEN)
    if not check.ok:
        if not check.events:  # every checkpoint of an anchored run is gone
            events = "no event of it is stored"
        say(f"Run {thread}: {events}, but {check.problem}.")
        raise typer.Exit(ExitCode.CHAIN_BROKEN)
    if check.anchors:
        say(f"Run {thread}: {events}, and reaches its {plural(check.anchors, 'anchor')}.")
        return
    say(f"Run {thread}: {events}.")
    say(
        ("No anchor of this run was found" if check.anchors == 0 else "No anchors")
        + ": a rollback of whole checkpoints (the run's last events and its head deleted "
        "together) cannot be detected; `anchors:` in the project file keeps each run's head "
        "outside the database."
    )


@app.command()
def audit(
    thread: ThreadArg,
    db: DbOption = None,
    project: ProjectOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout."),
    ] = None,
    anchors: AnchorsOption = None,
) -> None:
    """Export a run's audit trail as JSON lines: a header (with the check `verify` makes),
    each decision as the chained events record it, then each trace event with its hash,
    redacted as the trace is.
    """
    graph, sink = audited_run(project, db, thread, anchors)
    records = audit_records(graph, {"configurable": {"thread_id": thread}}, anchors=sink)
    if output is None:
        for record in records:
            say(json_line(record))
        return
    try:
        with output.open("w", encoding="utf-8") as file:
            for record in records:
                file.write(json_line(record) + "\n")
    except OSError as exc:
        raise PlangateUsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    say(f"Wrote the audit trail of run {thread} to {output}.")


@app.command()
def prune(
    finished_before: Annotated[
        timedelta,
        typer.Option(
            "--finished-before",
            metavar="AGE",
            parser=_duration,
            help="Prune the runs that finished at least AGE ago: 30d, 12h, 45m, 2w; "
            "0s prunes every finished run.",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    db: DbOption = None,
    project: ProjectOption = None,
) -> None:
    """Remove the intermediate checkpoints of finished runs: `show`, `trace` and `runs` read
    each one back as before, and a new plan on its thread continues its trace.

    Runs waiting for a decision and unfinished runs are never touched. On SQLite the file is
    then compacted (VACUUM), which rewrites it once.
    """
    _, db = find_project(project, db)
    report = prune_runs(open_reader(db), finished_before=finished_before, dry_run=dry_run)
    removes = "would remove" if dry_run else "removed"
    for run in report.runs:
        finished = run.finished_at.isoformat(timespec="seconds")
        say(
            f"{run.thread_id}  finished {finished}: "
            f"{removes} {plural(run.checkpoints_removed, 'checkpoint')}"
        )
    for thread in report.skipped:
        say(f"{thread}  skipped: another process runs it now")
    say(_prune_summary(report))


def _prune_summary(report: PruneReport) -> str:
    if not report.runs:
        return "No finished run to prune."
    runs = plural(len(report.runs), "run")
    checkpoints = plural(report.checkpoints_removed, "checkpoint")
    if report.dry_run:
        return f"Would prune {runs}: {checkpoints} (dry run: nothing was removed)."
    summary = f"Pruned {runs}: {checkpoints} removed"
    if report.bytes_before is not None and report.bytes_after is not None:
        summary += (
            f"; {human_size(report.bytes_before - report.bytes_after)} reclaimed "
            f"({human_size(report.bytes_before)} -> {human_size(report.bytes_after)})"
        )
    return summary + "."


@app.command()
def serve(
    *,
    db: DbOption = None,
    project: ProjectOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: one the system picks).", min=0, max=65535)
    ] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token every API request needs, reads included: approval requests "
            "carry real args (default: $PLANGATE_TOKEN, else a new one, printed)."
        ),
    ] = None,
    expire: Annotated[
        bool,
        typer.Option(
            "--expire/--no-expire",
            help="Close approvals that expire unanswered as they expire, as plangate expire "
            "--watch does, while it serves.",
        ),
    ] = True,
    expire_every: Annotated[
        float | None,
        _duration_option(
            "--expire-every",
            help="The longest wait between two looks at the database for requests made "
            "elsewhere (30s, 5m, 1h; default 30s).",
        ),
    ] = None,
) -> None:
    """Serve the approvals inbox: a page and a JSON API over the database (plangate[server]).

    While it serves, it closes each approval that expires unanswered a moment after it expires
    (--no-expire leaves them to `plangate expire`).
    """
    try:
        import uvicorn  # noqa: F401  (missing, it is the one-line "needs the server extra")

        from plangate.server import create_app, listen
        from plangate.server import serve as serve_inbox
    except ImportError as exc:
        raise PlangateUsageError(
            f"`plangate serve` needs {exc.name or 'fastapi and uvicorn'}",
            hint="install plangate's `server` extra (from a checkout: pip install '.[server]')",
        ) from None
    where, db = new_run_project(project, db)
    given = token or os.environ.get("PLANGATE_TOKEN")
    secret = given or secrets.token_urlsafe(24)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    # On loopback, only requests addressed to loopback names: a second wall behind the token,
    # against a web page reaching the inbox through a DNS-rebound host name.
    hosts = ["127.0.0.1", "localhost", "[::1]"] if loopback else None
    if expire_every is not None and not expire:
        raise PlangateUsageError(
            "--expire-every and --no-expire exclude each other", hint="give one of them"
        )
    sweep = (expire_every or DEFAULT_SWEEP_EVERY) if expire else None
    inbox = create_app(db, token=secret, allowed_hosts=hosts, project=where, expire_every=sweep)
    sock = listen(host, port)  # bound before the URL is printed, so that it names the real port
    port = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    say(f"plangate inbox on {url} (project {where.name}, database {shown_url(db)})")
    if given:
        say(f"Token: the one given (--token or PLANGATE_TOKEN); open {url}#token=...")
    else:
        # A fragment never reaches a server or a proxy's log.
        say(f"Token: {secret}", f"Open: {url}#token={secret}")
    if not loopback:
        say(
            "Note: plain HTTP carries the token in clear; serve beyond loopback only behind "
            "a TLS proxy."
        )
    if sweep is not None:
        say(
            "Approvals that expire unanswered are closed as they expire (the database looked "
            f"at every {_shown_duration(sweep)} at least; --no-expire leaves them waiting)."
        )
    sys.stdout.flush()  # the token must reach a pipe (a log, a test) before serving blocks
    serve_inbox(inbox, sock)


# --- the entry point --------------------------------------------------------------------------


def cli_message(exc: PlangateError) -> str:
    """An error in the CLI's words: some of the library's hints name Python calls
    (`Command(resume=...)`), which a person at the command line cannot make."""
    hint = exc.hint
    if isinstance(exc, RunNotFinished):
        thread = exc.thread_id
        hint = (
            f"decide it first with `plangate approve {thread}` or `plangate reject {thread}`, "
            "or start the plan with another --thread"
            if exc.waiting
            else f"finish it first with `plangate resume {thread}`, "
            "or start the plan with another --thread"
        )
    elif isinstance(exc, UnknownThread):
        hint = "`plangate runs --all` lists the runs in the database"
    elif isinstance(exc, ProfileMismatch):
        hint = "it goes on only under the rules it started under: restore its profile file"
    elif isinstance(exc, InvalidDecision) and exc.hint == EDIT_HINT:
        hint = (
            "fix those args and give --args again: the run still waits; "
            "`plangate show THREAD` prints the args it was asked with"
        )
    elif hint and any(call in hint for call in _PYTHON_CALLS):
        hint = None  # advice for a program, not for the person at the command line
    return f"{exc.message} ({hint})" if hint else exc.message


_PYTHON_CALLS = ("Command(", "invoke(", "build_graph(", "open_checkpointer(")


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what is left in its buffer at exit does not
    print a `BrokenPipeError` of its own."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _command_line_error(exc: typer.TyperException) -> int:
    """The command line itself is wrong: one line, as for any user error, and click's status."""
    message = exc.format_message().strip()
    if "\n" in message:  # `plangate` alone: its help is the answer
        _warn_raw(message)
        return exc.exit_code
    context = getattr(exc, "ctx", None)
    command = getattr(context, "command_path", None) or "plangate"
    warn(f"plangate: error: {message.removesuffix('.')} (see `{command} --help`)")
    return exc.exit_code if exc.exit_code != ExitCode.USER_ERROR else ExitCode.COMMAND_LINE


def _warn_raw(text: str) -> None:
    with contextlib.suppress(OSError):
        typer.echo(text, err=True)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 1; a run
    stopped by Ctrl-C or a closed stdout says how to go on (`ExitCode`)."""
    status: Any
    try:
        status = app(standalone_mode=False)
    except PlangateError as exc:
        warn(f"plangate: error: {cli_message(exc)}")
        status = ExitCode.USER_ERROR
    except Stopped as stopped:
        if stopped.code == ExitCode.OUTPUT_CLOSED:
            _silence_stdout()
        warn(stopped.line)
        status = stopped.code
    except OutputClosed:  # a listing cut short (`plangate trace THREAD | head`): nothing to say
        _silence_stdout()
        status = ExitCode.OUTPUT_CLOSED
    except typer.TyperException as exc:
        status = _command_line_error(exc)
    except typer.Abort:  # end of input at a prompt
        status = ExitCode.INTERRUPTED
    sys.exit(int(status) if isinstance(status, int) else ExitCode.SUCCESS)
