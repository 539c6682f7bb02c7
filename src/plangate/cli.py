"""The `plangate` command: run a plan with the demo toolkit, list, approve, inspect.

Every user error (a missing file, a bad plan, an unknown thread, nothing pending) is one line on
stderr and a non-zero exit; tracebacks are for bugs only.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot

from plangate._governance import utc_now
from plangate.checkpoint import is_postgres_url, sqlite_path
from plangate.compiled import PlangateGraph
from plangate.errors import (
    NoPendingApproval,
    PlangateError,
    PlangateUsageError,
    UnknownThread,
)
from plangate.history import (
    EXPIRED_DECISION,
    get_trace,
    is_approval_request,
    is_expired,
    pending_approvals,
)
from plangate.plan import Plan
from plangate.profiles import BUILTIN_PROFILES, load_profile
from plangate.run_setup import RunSetup, outbox_for

app = typer.Typer(
    help="Run LLM-made plans of tool calls under governance: budgets, approvals, traces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DbOption = Annotated[
    str,
    typer.Option(
        "--db", help="Checkpoint database: a path, sqlite:///path.db or postgresql://...."
    ),
]
ThreadArg = Annotated[str, typer.Argument(metavar="THREAD", help="The run's thread id.")]
ApproverOption = Annotated[
    str | None, typer.Option(help="Who decides (recorded; default: your user name).")
]
StepOption = Annotated[
    str | None,
    typer.Option(
        metavar="STEP_ID",
        help="The step decided; refused if the run waits on another (default: the one waiting).",
    ),
]
DEFAULT_DB = "plangate.db"


def _profile_ref(profile: str) -> str:
    """What to store so that a later `approve` rebuilds the same profile from any directory."""
    return profile if profile in BUILTIN_PROFILES else str(Path(profile).resolve())


def _sqlite_exists(path: str) -> bool:
    return path == ":memory:" or Path(path).is_file()


def _existing(db: str, thread: str) -> tuple[PlangateGraph, RunnableConfig, StateSnapshot]:
    """The graph and config a thread was started with, from its checkpoint metadata, and the
    thread's state as read to find them (rebuilding it again would cost as much)."""
    if not is_postgres_url(db) and not _sqlite_exists(sqlite_path(db)):
        raise PlangateUsageError(f"database {db!r} does not exist", hint="pass --db PATH")
    probe = RunSetup.reader(db).graph(db)
    snapshot = probe.get_state({"configurable": {"thread_id": thread}})
    if not snapshot.values and not snapshot.next:
        raise UnknownThread(thread)
    setup = RunSetup.of(snapshot, db)
    return setup.graph(db), setup.config(thread), snapshot


def _describe(event: dict[str, Any]) -> str:
    data = event["data"]
    where = f"{event['step_id']} ({event['tool']})" if event["step_id"] else "plan"
    detail = {
        "plan_created": lambda: (
            f"goal: {data.get('goal')!r}, {data.get('steps')} steps, profile {data.get('profile')}"
        ),
        "policy_override": lambda: (
            f"the plan said {data.get('plan_action')}; runs as {data.get('action')} "
            f"(from {_SOURCES.get(data.get('action_source'), data.get('action_source'))})"
        ),
        "approval_invalidated": lambda: f"asked again: {data.get('reason')}",
        "budget_warning": lambda: f"{data['tier']} at {data['used']}/{data['limit']} calls",
        "budget_exceeded": lambda: f"{data['tier']} used up ({data['used']}/{data['limit']})",
        "approval_requested": lambda: f"{data.get('risk')} risk: {data.get('consequence')}",
        "approval_received": lambda: (
            f"{data.get('decision')} by {data.get('approver') or 'unknown'}"
            + (f": {data['reason']}" if data.get("reason") else "")
        ),
        "approval_timeout": lambda: f"expired at {data.get('expires_at')}",
        "adapter_fallback": lambda: (
            "offline: its mock answers"
            if data.get("reason") == "offline"
            else f"{data.get('error_type')}: {data.get('message')}; its mock answers"
        ),
        "tool_call_start": lambda: f"args {json.dumps(data.get('args'), default=str)}",
        "tool_call_retry": lambda: (
            f"try {data.get('attempt')} in {data.get('wait_seconds')} s after "
            f"{data.get('error_type')}: {data.get('message')}"
        ),
        "tool_call_complete": lambda: f"{data.get('duration_ms')} ms",
        "tool_call_error": lambda: f"{data.get('error_type')}: {data.get('message')}",
        "step_blocked": lambda: str(data.get("reason")),
        "step_skipped": lambda: str(data.get("reason")),
        "step_completed": lambda: str(data.get("status")),
        "plan_completed": lambda: f"status {data.get('status')}",
    }.get(event["type"], lambda: json.dumps(data, default=str))()
    return f"[{event['seq']:>3}] {event['type']:<19} {where}: {detail}"


_SOURCES = {
    "profile": "the profile's tool_actions",
    "tool": "the tool's declaration",
    "mcp": "the tool's MCP annotations",
    "openapi": "the operation's HTTP method",
    "default": "no declaration: fail closed",
    "plan": "the plan, raising it",
}


def _action_line(request: dict[str, Any]) -> str:
    """`execute, irreversible (from the tool's declaration)`."""
    source = request.get("action_source")
    return (
        str(request["action"])
        + (", irreversible" if request.get("irreversible") else "")
        + (f" (from {_SOURCES.get(source, source)})" if source else "")
    )


def _print_request(request: dict[str, Any]) -> None:
    """What the person deciding sees: the real args, unredacted."""
    typer.echo(f"  action:      {_action_line(request)}")
    typer.echo(f"  risk:        {request['risk']}")
    typer.echo(f"  consequence: {request['consequence']}")
    typer.echo(f"  args:        {json.dumps(request['args'], ensure_ascii=False, default=str)}")
    typer.echo(f"  expires at:  {request['expires_at']}")


def _print_pending(thread: str, request: dict[str, Any], db: str) -> None:
    db_flag = "" if db == DEFAULT_DB else f" --db {db}"
    step = request["step_id"]
    typer.echo(f"\nPaused: step {step!r} ({request['tool']}) needs approval.")
    _print_request(request)
    typer.echo("Resume with one of:")
    typer.echo(f"  plangate approve {thread}{db_flag} --step {step} --approver NAME")
    typer.echo(
        f"  plangate approve {thread}{db_flag} --step {step} --approver NAME --args '{{...}}'"
        "   (edit: the args replace all of them)"
    )
    typer.echo(f"  plangate reject {thread}{db_flag} --step {step} --reason TEXT")


def _actions(graph: PlangateGraph, values: dict[str, Any]) -> dict[str, str]:
    """Each step's effective action and where it came from (`execute (tool)`), as the graph
    governs it."""
    if graph.governance is None or not values.get("plan"):
        return {}
    plan = Plan.model_validate(values["plan"])
    policies = {step.id: graph.governance.policy(step) for step in plan.steps}
    return {step: f"{p.action} ({p.source})" for step, p in policies.items()}


def _print_result(result: dict[str, Any], actions: dict[str, str]) -> None:
    typer.echo(f"\nRun {result['status']} (trace {result['trace_id']})")
    rows = [("step", "tool", "action", "status", "ms", "detail")]
    for step in result["steps"]:
        detail = step["error"] or ""
        if step["approval"]:
            detail = "; ".join(filter(None, (_decided(step["approval"]), detail)))
        ms = "" if step["duration_ms"] is None else f"{step['duration_ms']:.1f}"
        status = f"{step['status']} (mock)" if step.get("mocked") else step["status"]
        action = actions.get(step["step_id"], "")
        rows.append((step["step_id"], step["tool"], action, status, ms, detail))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        typer.echo(
            "  "
            + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
            + "  "
            + row[5]
        )
    signals = result["signals"]
    latency = signals["tool_latency_ms"]
    wait = signals["approval_wait_ms"]
    budget = result["budget"]["total"]
    parts = [
        f"success rate {signals['success_rate']:.0%}",
        f"error rate {signals['error_rate']:.0%}",
        "no tool calls"
        if latency["max"] is None
        else f"tool latency p50 {latency['p50']} / p95 {latency['p95']} / max {latency['max']} ms",
        f"approvals {wait['count']}" + (f" (max wait {wait['max']} ms)" if wait["count"] else ""),
        f"budget {budget['used']}"
        + ("" if budget["limit"] is None else f"/{budget['limit']}")
        + f" calls ({signals['budget_utilisation']:.0%} of the fullest tier)",
    ]
    typer.echo("Signals: " + ", ".join(parts))


def _user() -> str | None:
    """Who runs the command, for the approval record when no --approver is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return None


def _decided(approval: dict[str, Any]) -> str:
    """`approve by lee`, or why a step's approval ran out."""
    if approval["decision"] == "expired":
        return "expired: no decision in time" + (
            ""
            if approval["approver"] in (None, EXPIRED_DECISION["approver"])
            else f" (decided late by {approval['approver']})"
        )
    return f"{approval['decision']} by {approval['approver'] or 'unknown'}"


def _drive(graph: PlangateGraph, value: Any, config: RunnableConfig, db: str) -> None:
    """Run until the graph ends or pauses, printing trace events as they happen."""
    for event in _custom_events(graph.stream(value, config, stream_mode="custom")):
        typer.echo(_describe(event))
    snapshot = graph.get_state(config)
    thread = config["configurable"]["thread_id"]
    requests = [i.value for i in snapshot.interrupts]
    if requests:
        _print_pending(thread, requests[0], db)
    elif snapshot.values.get("result"):
        _print_result(snapshot.values["result"], _actions(graph, snapshot.values))


def _custom_events(chunks: Iterator[Any]) -> Iterator[dict[str, Any]]:
    for chunk in chunks:
        if isinstance(chunk, dict) and "type" in chunk and "seq" in chunk:
            yield chunk


@app.command()
def run(
    plan: Annotated[Path, typer.Argument(help="Plan file (YAML or JSON).")],
    *,
    profile: Annotated[
        str, typer.Option(help="enterprise, smb, technical, or a profile file.")
    ] = "enterprise",
    db: DbOption = DEFAULT_DB,
    thread: Annotated[str | None, typer.Option(help="Thread id (default: a new one).")] = None,
    outbox: Annotated[
        str | None, typer.Option(help="Demo outbox file (default: beside the database).")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Call every tool's mock; nothing is sent.")
    ] = False,
    fixtures: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE", help="Fixture file of mocks (repeatable); replaces the demo's per tool."
        ),
    ] = None,
) -> None:
    """Run a plan with the demo toolkit; stops when a step needs approval."""
    parsed = Plan.from_file(plan)
    name = load_profile(profile).name  # before the path is resolved: errors name what was typed
    setup = RunSetup(
        profile=_profile_ref(profile),
        outbox=str(Path(outbox).resolve()) if outbox else outbox_for(db),
        offline=offline,
        fixtures=tuple(str(path.resolve()) for path in fixtures or ()),
    )
    graph = setup.graph(db)  # checks the profile and fixtures before anything is stored
    thread_id = thread or f"run-{uuid.uuid4().hex[:8]}"
    mode = ", offline" if offline else ""
    typer.echo(f"Thread {thread_id} (profile {name}{mode}, database {db})")
    _drive(graph, {"plan": parsed}, setup.config(thread_id), db)


@app.command()
def pending(db: DbOption = DEFAULT_DB) -> None:
    """List every run in the database that waits for an approval."""
    graph = RunSetup.reader(db).graph(db)
    found = False
    for thread, request in pending_approvals(graph):
        found = True
        typer.echo(
            f"{thread}  step {request['step_id']} ({request['tool']})  {request['risk']} risk  "
            f"expires {request['expires_at']}\n    {request['consequence']}"
        )
    if not found:
        typer.echo("No run is waiting for approval.")


@app.command()
def expire(db: DbOption = DEFAULT_DB) -> None:
    """Close every approval that expired unanswered: each run goes on as its profile says."""
    graph = RunSetup.reader(db).graph(db)
    now = utc_now()
    expired = [thread for thread, request in pending_approvals(graph) if is_expired(request, now)]
    if not expired:
        typer.echo("No approval has expired.")
    for thread in expired:
        typer.echo(f"\n{thread}: approval expired")
        try:
            # Each run goes on under its own setup (profile, offline mode), not the probe's.
            run_graph, config, _ = _existing(db, thread)
            _drive(run_graph, Command(resume=EXPIRED_DECISION), config, db)
        except PlangateError as refused:  # another worker has it, or it cannot go on here
            typer.echo(f"{thread}: skipped, {refused}")


@app.command()
def approve(
    thread: ThreadArg,
    *,
    approver: ApproverOption = None,
    args: Annotated[
        str | None, typer.Option(help="New arguments as JSON: approve with an edit.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    step: StepOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Approve the pending step of a run (with --args, edit it first) and go on.

    The decision answers the request printed here, and only it: if someone decides it first,
    this one is refused and changes nothing.
    """
    decision: dict[str, Any] = {
        "decision": "approve",
        "approver": approver or _user(),
        "reason": reason,
    }
    if args is not None:
        try:
            decision.update(decision="edit", args=json.loads(args))
        except json.JSONDecodeError as exc:
            raise PlangateUsageError(
                f"--args is not valid JSON: {exc.msg} at char {exc.pos}"
            ) from None
    _decide(thread, decision, step, db)


def _requests(snapshot: StateSnapshot) -> list[dict[str, Any]]:
    return [i.value for i in snapshot.interrupts if is_approval_request(i.value)]


def _decide(thread: str, decision: dict[str, Any], step: str | None, db: str) -> None:
    """Bind `decision` to the request the run waits on now (the one of `step`, if given),
    show that request, and resume the run with it."""
    graph, config, snapshot = _existing(db, thread)
    requests = _requests(snapshot)
    if not requests:
        with graph.hold(config):  # `ResumeConflict` while another process runs it
            # A run read between two of its steps may have paused again since.
            requests = _requests(graph.get_state(config))
        if not requests:
            raise NoPendingApproval(thread)
    chosen = [r for r in requests if step is None or r["step_id"] == step]
    if not chosen:
        waiting = ", ".join(repr(r["step_id"]) for r in requests)
        raise PlangateUsageError(
            f"run {thread!r} is not waiting for step {step!r} (it waits for {waiting})",
            hint="`plangate show THREAD` prints what it waits for",
        )
    request = chosen[0]
    verb = {"approve": "Approving", "edit": "Approving, edited,", "reject": "Rejecting"}
    typer.echo(
        f"{verb[decision['decision']]} step {request['step_id']!r} ({request['tool']}) "
        f"of run {thread}:"
    )
    _print_request(request)
    bound = {**decision, "request_id": request["request_id"], "digest": request.get("digest")}
    _drive(graph, Command(resume=bound), config, db)


@app.command()
def reject(
    thread: ThreadArg,
    *,
    reason: Annotated[str, typer.Option(help="Why the step is rejected (recorded).")],
    approver: ApproverOption = None,
    step: StepOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Reject the pending step of a run and go on (or halt, as the profile says)."""
    if not reason.strip():
        raise PlangateUsageError("--reason is empty", hint="say why the step is rejected")
    decision = {"decision": "reject", "reason": reason, "approver": approver or _user()}
    _decide(thread, decision, step, db)


@app.command()
def resume(thread: ThreadArg, db: DbOption = DEFAULT_DB) -> None:
    """Continue a run whose process stopped mid-way (a crash, a kill).

    The step it was in runs again with the same idempotency key, so tools that honour it do not
    act twice.
    """
    graph, config, snapshot = _existing(db, thread)
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
    _drive(graph, None, config, db)


@app.command()
def show(thread: ThreadArg, db: DbOption = DEFAULT_DB) -> None:
    """Print a run's result, step table and golden signals (or what it waits for)."""
    graph, _, snapshot = _existing(db, thread)
    if snapshot.interrupts:
        _print_pending(thread, snapshot.interrupts[0].value, db)
    elif snapshot.values.get("result"):
        _print_result(snapshot.values["result"], _actions(graph, snapshot.values))
    else:
        steps = ", ".join(task.name for task in snapshot.tasks) or "nothing"
        typer.echo(
            f"Run {thread} has not finished (at: {steps}); `plangate resume {thread}` goes on."
        )


@app.command()
def trace(thread: ThreadArg, db: DbOption = DEFAULT_DB) -> None:
    """Print a run's whole trace as JSON lines."""
    graph, config, _ = _existing(db, thread)
    for event in get_trace(graph, config):
        typer.echo(json.dumps(event, ensure_ascii=False))


@app.command()
def serve(
    db: DbOption = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token every API request needs, reads included: approval requests "
            "carry real args (default: $PLANGATE_TOKEN, else a new one, printed)."
        ),
    ] = None,
) -> None:
    """Serve the approvals inbox: a page and a JSON API over the database (plangate[server])."""
    try:
        import uvicorn

        from plangate.server import create_app
    except ImportError as exc:
        raise PlangateUsageError(
            f"`plangate serve` needs {exc.name or 'fastapi and uvicorn'}",
            hint="install plangate's `server` extra (from a checkout: pip install '.[server]')",
        ) from None
    given = token or os.environ.get("PLANGATE_TOKEN")
    secret = given or secrets.token_urlsafe(24)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    # On loopback, only requests addressed to loopback names: a second wall behind the token,
    # against a web page reaching the inbox through a DNS-rebound host name.
    hosts = ["127.0.0.1", "localhost", "[::1]"] if loopback else None
    inbox = create_app(db, token=secret, allowed_hosts=hosts)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    typer.echo(f"plangate inbox on {url} (database {db})")
    if given:
        typer.echo(f"Token: the one given (--token or PLANGATE_TOKEN); open {url}#token=...")
    else:
        typer.echo(f"Token: {secret}")
        # A fragment never reaches a server or a proxy's log.
        typer.echo(f"Open: {url}#token={secret}")
    if not loopback:
        typer.echo(
            "Note: plain HTTP carries the token in clear; serve beyond loopback only behind "
            "a TLS proxy."
        )
    sys.stdout.flush()  # the token must reach a pipe (a log, a test) before serving blocks
    uvicorn.run(inbox, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 1."""
    try:
        app()
    except PlangateError as exc:
        typer.echo(f"plangate: error: {exc}", err=True)
        sys.exit(1)
