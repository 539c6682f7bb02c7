"""The `plangate` command: run a plan with a project's tools, list, approve, inspect.

Every command works on a project (`plangate.yaml`, see `plangate.project`): the one `--project`
or `PLANGATE_PROJECT` names, else the one in the current folder or its nearest parent, else the
built-in demo. A run goes on under the project it started under, from any folder.

Every user error (a missing file, a bad plan, an unknown thread, nothing pending) is one line on
stderr and exit status 1; tracebacks are for bugs only. `ExitCode` says what every other exit
status means. Everything printed goes through `_say`, which writes the control, bidi and other
invisible characters of plan- or tool-supplied text as visible escapes: a plan must not be able
to hide or rewrite what the person approving it reads.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import sys
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.types import Command, StateSnapshot

from plangate._files import read_document
from plangate._governance import utc_now
from plangate.errors import (
    NoPendingApproval,
    PlangateError,
    PlangateUsageError,
    ProfileMismatch,
    RunNotFinished,
    UnknownThread,
)
from plangate.plan import Plan, PlanStep
from plangate.preflight import PreflightReport, preflight
from plangate.project import Project, RunSetup, demo_root, reader, write_template
from plangate.runs.checkpoint import is_postgres_url, sqlite_path
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.history import (
    EXPIRED_DECISION,
    get_trace,
    interrupts_waiting,
    is_approval_request,
    is_expired,
    latest_checkpoints,
    pending_approvals,
    run_state,
)


class ExitCode(IntEnum):
    """What `plangate` exits with. `run`, `approve`, `reject` and `resume` say how the run
    stands when they return; the other commands exit 0 when they did their job."""

    SUCCESS = 0
    USER_ERROR = 1
    COMMAND_LINE = 2
    PAUSED = 3
    PARTIAL = 4
    FAILED = 5
    EXPIRED = 6
    INTERRUPTED = 130
    OUTPUT_CLOSED = 141


EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.SUCCESS: "the run finished, every step ok (other commands: done)",
    ExitCode.USER_ERROR: "user error, one line on stderr: nothing was done",
    ExitCode.COMMAND_LINE: "the command line is not understood",
    ExitCode.PAUSED: "the run paused: a step waits for approval",
    ExitCode.PARTIAL: "the run finished partial: some steps ok, not all",
    ExitCode.FAILED: "the run finished failed: no step ok",
    ExitCode.EXPIRED: "approve, reject: too late, the request had expired",
    ExitCode.INTERRUPTED: "Ctrl-C: the run stopped; plangate resume THREAD goes on",
    ExitCode.OUTPUT_CLOSED: "stdout closed (a pipe): the run stopped, as for Ctrl-C",
}

# `\b` keeps click from rewrapping the table.
_EXIT_HELP = (
    "Exit status of run, approve, reject and resume (`plangate expire` exits 0 whatever the "
    "runs it closed did next; every command exits 1 on a user error):\n\n\b\n"
    + "\n".join(f"{code.value:>5}  {text}" for code, text in EXIT_MEANINGS.items())
)
_RUN_EXITS = (
    "Exit status: 0 success, 3 paused for approval, 4 partial, 5 failed, 1 user error, "
    "130 Ctrl-C (see plangate --help)."
)

app = typer.Typer(
    help="Run LLM-made plans of tool calls under governance: budgets, approvals, traces.\n\n"
    + _EXIT_HELP,
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

SUMMARY_OVER = 50
"""A step table longer than this is summarised (`show --full` prints it whole)."""
FIRST_FAILURES = 5


# --- output -----------------------------------------------------------------------------------

# Control characters (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width
# characters), lone surrogates and line/paragraph separators: a terminal acts on them or hides
# them, so text from a plan or a tool that holds one could hide or fake part of a line.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _python_escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells a character beyond the BMP as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _escaped(text: str, escape: Callable[[str], str]) -> str:
    if text.isprintable():  # the usual case, checked at C speed
        return text
    return "".join(
        escape(char) if unicodedata.category(char) in _UNSAFE_CATEGORIES else char for char in text
    )


def visible(text: str) -> str:
    """`text` with every character a terminal would act on or not show written as its Python
    escape (`\\x1b`, `\\u202e`), so the reader sees that something is there."""
    return _escaped(text, _python_escape)


def json_line(value: Any) -> str:
    """`value` as one line of JSON that a terminal shows as it is: `json.dumps` escapes C0
    controls but leaves DEL, C1 controls and bidi overrides raw; these become `\\uXXXX`
    escapes too, so the line still parses to the same value. Other text stays readable."""
    return _escaped(json.dumps(value, ensure_ascii=False, default=str), _json_escape)


class _OutputClosed(Exception):
    """stdout was closed under the command (`plangate trace THREAD | head`)."""


class _Stopped(Exception):
    """A run stopped before it ended: Ctrl-C, or its output closed. `line` says how to go on."""

    def __init__(self, line: str, code: ExitCode) -> None:
        super().__init__(line)
        self.line = line
        self.code = code


def _say(*lines: str) -> None:
    """Print each line on stdout, made visible: the one way the CLI writes to its reader."""
    for line in lines:
        try:
            typer.echo(visible(line))
        except BrokenPipeError:
            raise _OutputClosed from None


def _warn(line: str) -> None:
    """One line on stderr, made visible; a closed stderr is no reason for a traceback."""
    with contextlib.suppress(OSError):
        typer.echo(visible(line), err=True)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def human_duration(ms: float) -> str:
    """A wait in the unit a person reads it in: `250 ms`, `2.8 s`, `1.5 min`, `2 h`."""
    seconds = ms / 1000
    if ms < 999.95:
        value, unit = ms, "ms"
    elif seconds < 59.95:
        value, unit = seconds, "s"
    elif seconds < 3597:
        value, unit = seconds / 60, "min"
    else:
        value, unit = seconds / 3600, "h"
    return f"{value:,.1f}".removesuffix(".0") + f" {unit}"


# The database a command uses when given no --db (`_where` sets it): hints leave it out.
_implied_db = [DEFAULT_DB]


def _db_flag(db: str) -> str:
    return "" if db in (DEFAULT_DB, _implied_db[0]) else f" --db {db}"


def _where(project: str | None, db: str | None) -> tuple[Project | None, str]:
    """The project the command works in (the one named, else the nearest), and its database:
    `--db`, else the project's, else `plangate.db`."""
    found = Project.find(project)
    _implied_db[0] = found.db if found else DEFAULT_DB
    return found, db or _implied_db[0]


def _runs_of(project: str | None, db: str | None) -> tuple[Project | None, str]:
    """For commands on existing runs: the project named with --project (a run goes on under
    its own project unless one is named) and the database (see `_where`)."""
    found, url = _where(project, db)
    return (found if project else None), url


# --- reading runs -----------------------------------------------------------------------------


def _require_db(db: str) -> None:
    """Refuse a SQLite database that does not exist: opening it would create it (and its
    folders), leaving an empty database behind a mistyped --db. A folder goes on, for opening
    it to say it is one."""
    if is_postgres_url(db):
        return
    path = sqlite_path(db)
    if path != ":memory:" and not Path(path).exists():
        raise PlangateUsageError(
            f"no database at {path}; pass --db PATH or start a run with plangate run"
        )


def _reader(db: str) -> PlangateGraph:
    """A graph over an existing database, for reading its runs; it loads no tools. A project's
    database that no run has made yet reads as empty (and is not made by reading it)."""
    implied = db != DEFAULT_DB and db == _implied_db[0] and not is_postgres_url(db)
    if implied and not Path(sqlite_path(db)).exists():
        return reader("sqlite:///:memory:")
    _require_db(db)
    return reader(db)


def _read(db: str, thread: str) -> tuple[PlangateGraph, StateSnapshot]:
    """A reader of `db` and the state of `thread` in it."""
    probe = _reader(db)
    snapshot = probe.get_state({"configurable": {"thread_id": thread}})
    if not snapshot.values and not snapshot.next:
        raise UnknownThread(thread)
    return probe, snapshot


def _existing(
    db: str, thread: str, project: Project | None
) -> tuple[PlangateGraph, RunnableConfig, StateSnapshot]:
    """The graph and config a thread was started with (in its own project, unless `project`
    is named), from its checkpoint metadata, and the thread's state as read to find them."""
    _, snapshot = _read(db, thread)
    setup = RunSetup.of(snapshot)
    return setup.graph(setup.project_for(db, project), db), setup.config(thread), snapshot


def _saver(graph: PlangateGraph) -> BaseCheckpointSaver[Any]:
    saver = graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver)  # every CLI graph is built with one
    return saver


def _plan_steps(values: Mapping[str, Any]) -> list[str]:
    """The ids of a run's steps, in the order they run (the plan is stored in that order)."""
    return [str(step.get("id", "")) for step in (values.get("plan") or {}).get("steps", [])]


# --- describing runs --------------------------------------------------------------------------

_SOURCES = {
    "profile": "the profile's tool_actions",
    "tool": "the tool's declaration",
    "mcp": "the tool's MCP annotations",
    "openapi": "the operation's HTTP method",
    "default": "no declaration: fail closed",
    "plan": "the plan, raising it",
}


def step_positions(steps: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each step id's (position from 1, number of steps), for `step k of N`."""
    return {step: (k, len(steps)) for k, step in enumerate(steps, 1)}


def describe(
    event: Mapping[str, Any], positions: Mapping[str, tuple[int, int]] | None = None
) -> str:
    """One trace event as a line; with `positions`, a step's event says `step k of N`."""
    data = event["data"]
    step = event["step_id"]
    where = f"{step} ({event['tool']})" if step else "plan"
    if step and positions and step in positions:
        where += ", step {} of {}".format(*(f"{n:,}" for n in positions[step]))
    detail = {
        "plan_created": lambda: (
            f"goal: {data.get('goal')!r}, {_plural(int(data.get('steps') or 0), 'step')}, "
            f"profile {data.get('profile')}"
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


def _action_line(request: Mapping[str, Any]) -> str:
    """`execute, irreversible (from the tool's declaration)`."""
    source = request.get("action_source")
    return (
        str(request["action"])
        + (", irreversible" if request.get("irreversible") else "")
        + (f" (from {_SOURCES.get(source, source)})" if source else "")
    )


def _print_request(request: Mapping[str, Any]) -> None:
    """What the person deciding sees: the real args, unredacted."""
    _say(
        f"  action:      {_action_line(request)}",
        f"  risk:        {request['risk']}",
        f"  consequence: {request['consequence']}",
        f"  args:        {json.dumps(request['args'], ensure_ascii=False, default=str)}",
        f"  expires at:  {request['expires_at']}",
    )


def _print_pending(thread: str, request: Mapping[str, Any], db: str) -> None:
    flag = _db_flag(db)
    step = request["step_id"]
    _say("", f"Paused: step {step!r} ({request['tool']}) needs approval.")
    _print_request(request)
    if is_expired(dict(request), utc_now()):
        _say(
            "This request has EXPIRED: a decision now is recorded as expired; "
            f"`plangate expire{flag}` closes it."
        )
    _say(
        "Resume with one of:",
        f"  plangate approve {thread}{flag} --step {step} --approver NAME",
        f"  plangate approve {thread}{flag} --step {step} --approver NAME --args '{{...}}'"
        "   (edit: the args replace all of them)",
        f"  plangate reject {thread}{flag} --step {step} --reason TEXT",
    )


def _actions(values: Mapping[str, Any]) -> dict[str, str]:
    """Each step's effective action and where it came from (`execute (tool)`), as its outcome
    or its approval request records it: reading a run reaches none of its tools."""
    outcomes: Mapping[str, Any] = values.get("outcomes") or {}
    found = {
        step: f"{outcome['action']} ({outcome.get('action_source')})"
        for step, outcome in outcomes.items()
        if outcome.get("action")
    }
    request = (values.get("current") or {}).get("request")
    if request and request.get("step_id") not in found:
        found[request["step_id"]] = f"{request['action']} ({request.get('action_source')})"
    return found


def _decided(approval: Mapping[str, Any]) -> str:
    """`approve by lee`, or why a step's approval ran out."""
    if approval["decision"] == "expired":
        return "expired: no decision in time" + (
            ""
            if approval["approver"] in (None, EXPIRED_DECISION["approver"])
            else f" (decided late by {approval['approver']})"
        )
    return f"{approval['decision']} by {approval['approver'] or 'unknown'}"


def _print_table(steps: Iterable[Mapping[str, Any]], actions: Mapping[str, str]) -> None:
    rows = [["step", "tool", "action", "status", "ms", "detail"]]
    for step in steps:
        detail = step["error"] or ""
        if step["approval"]:
            detail = "; ".join(filter(None, (_decided(step["approval"]), detail)))
        ms = "" if step["duration_ms"] is None else f"{step['duration_ms']:.1f}"
        status = f"{step['status']} (mock)" if step.get("mocked") else step["status"]
        cells = (step["step_id"], step["tool"], actions.get(step["step_id"], ""), status, ms)
        # Made visible before measuring, so that escapes do not break the columns.
        rows.append([visible(str(cell)) for cell in (*cells, detail)])
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    _say(
        *(
            (
                "  "
                + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                + "  "
                + row[5]
            ).rstrip()
            for row in rows
        )
    )


def _print_steps(
    steps: Sequence[Mapping[str, Any]],
    actions: Mapping[str, str],
    *,
    thread: str,
    db: str,
    full: bool,
) -> None:
    """The step table, or past `SUMMARY_OVER` steps a summary: the count per status and the
    first steps that did not end ok."""
    if full or len(steps) <= SUMMARY_OVER:
        _print_table(steps, actions)
        return
    counts = Counter(str(step["status"]) for step in steps).most_common()
    _say(
        f"  {_plural(len(steps), 'step')}: " + ", ".join(f"{n:,} {status}" for status, n in counts)
    )
    not_ok = [step for step in steps if step["status"] != "ok"]
    if not_ok:
        shown = not_ok[:FIRST_FAILURES]
        _say(f"  The first {len(shown)} of {len(not_ok):,} not ok:")
        _print_table(shown, actions)
    _say(f"  (`plangate show {thread}{_db_flag(db)} --full` prints every step)")


def _signals(result: Mapping[str, Any]) -> str:
    signals = result["signals"]
    latency = signals["tool_latency_ms"]
    wait = signals["approval_wait_ms"]
    budget = result["budget"]
    total = budget["total"]
    tiers = [total, *budget.get("domains", {}).values(), *budget.get("tools", {}).values()]
    limited = any(tier.get("limit") is not None for tier in tiers)
    calls = (
        _plural(total["used"], "call")
        if total["limit"] is None
        else f"{total['used']:,}/{total['limit']:,} calls"
    )
    parts = [
        f"success rate {signals['success_rate']:.0%}",
        f"error rate {signals['error_rate']:.0%}",
        "no tool calls"
        if latency["max"] is None
        else f"tool latency p50 {latency['p50']} / p95 {latency['p95']} / max {latency['max']} ms",
        f"approvals {wait['count']}"
        + (f" (max wait {human_duration(wait['max'])})" if wait["count"] else ""),
        f"budget {calls}"
        + (f" ({signals['budget_utilisation']:.0%} of the fullest tier)" if limited else ""),
    ]
    return "Signals: " + ", ".join(parts)


def _print_result(
    result: Mapping[str, Any],
    actions: Mapping[str, str],
    *,
    thread: str,
    db: str,
    full: bool = False,
) -> None:
    _say("", f"Run {result['status']} (trace {result['trace_id']})")
    _print_steps(result["steps"], actions, thread=thread, db=db, full=full)
    _say(_signals(result))


def _print_done(
    values: Mapping[str, Any], actions: Mapping[str, str], *, thread: str, db: str, full: bool
) -> None:
    """The steps a run that has not finished has done so far."""
    steps = _plan_steps(values)
    outcomes = values.get("outcomes") or {}
    done = [outcomes[step] for step in steps if step in outcomes]
    if not done:
        _say(f"No step done yet (of {_plural(len(steps), 'step')}).")
        return
    _say(f"Steps done: {len(done):,} of {len(steps):,}")
    _print_steps(done, actions, thread=thread, db=db, full=full)


def _user() -> str | None:
    """Who runs the command, for the approval record when no --approver is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return None


# --- driving runs -----------------------------------------------------------------------------

_RESULT_CODES = {
    "success": ExitCode.SUCCESS,
    "partial": ExitCode.PARTIAL,
    "failed": ExitCode.FAILED,
}


def _drive(
    graph: PlangateGraph,
    value: Any,
    config: RunnableConfig,
    db: str,
    *,
    steps: Sequence[str],
    decided_step: str | None = None,
) -> ExitCode:
    """Run until the graph ends or pauses, printing trace events as they happen; the exit code
    says how it stands. `decided_step` names the step a decision was sent for: that decision
    expiring is `EXPIRED`, whatever the run did next."""
    thread = str(config["configurable"]["thread_id"])
    # On a terminal only: output read by programs stays as it was.
    positions = step_positions(steps) if sys.stdout.isatty() else None
    late = False
    try:
        # Closed at once when the output closes: the run lets go of its thread's lock.
        stream = cast(Generator[Any, None, None], graph.stream(value, config, stream_mode="custom"))
        with contextlib.closing(stream) as chunks:
            for event in _custom_events(chunks):
                late = late or (
                    event["type"] == "approval_timeout" and event["step_id"] == decided_step
                )
                _say(describe(event, positions))
        snapshot = graph.get_state(config)
        requests = [i.value for i in snapshot.interrupts]
        result = snapshot.values.get("result")
        if requests:
            _print_pending(thread, requests[0], db)
            code = ExitCode.PAUSED
        elif result:
            _print_result(result, _actions(snapshot.values), thread=thread, db=db)
            code = _RESULT_CODES[result["status"]]
        else:  # not seen: a stream ends paused or finished
            _say(f"Run {thread} has not finished; `plangate resume {thread}{_db_flag(db)}`.")
            code = ExitCode.FAILED
    except KeyboardInterrupt:
        raise _Stopped(_stopped(graph, config, db, "interrupted"), ExitCode.INTERRUPTED) from None
    except _OutputClosed:
        raise _Stopped(
            _stopped(graph, config, db, "output closed"), ExitCode.OUTPUT_CLOSED
        ) from None
    return ExitCode.EXPIRED if late else code


def _stopped(graph: PlangateGraph, config: RunnableConfig, db: str, why: str) -> str:
    """The line that says where a run stopped by `why` stands, and the command that goes on."""
    thread = str(config["configurable"]["thread_id"])
    flag = _db_flag(db)
    saved: CheckpointTuple | None = None
    with contextlib.suppress(Exception):  # what is stored is read again by the next command
        saved = _saver(graph).get_tuple(config)
    state = None if saved is None else run_state(saved)
    if state == "waiting":
        return (
            f"plangate: {why}: run {thread} waits for an approval; "
            f"`plangate show {thread}{flag}` prints it"
        )
    if state == "finished":
        return (
            f"plangate: {why}: run {thread} has finished; "
            f"`plangate show {thread}{flag}` prints its result"
        )
    return (
        f"plangate: {why}: run {thread} stopped before it finished; "
        f"`plangate resume {thread}{flag}` goes on"
    )


def _custom_events(chunks: Iterator[Any]) -> Iterator[dict[str, Any]]:
    for chunk in chunks:
        if isinstance(chunk, dict) and "type" in chunk and "seq" in chunk:
            yield chunk


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


def _project(project: str | None, db: str | None) -> tuple[Project, str]:
    """The project new runs start in, and its database; without a project file, the built-in
    demo beside the database."""
    found, url = _where(project, db)
    return found or Project.demo(demo_root(url)), url


@app.command(epilog=_RUN_EXITS)
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

    On a terminal, each step's trace line says `step k of N`. Ctrl-C stops the run between two
    of its writes; `plangate resume THREAD` goes on.
    """
    parsed = Plan.from_file(plan)
    where, url = _project(project, db)
    rules = where.load_profile(profile)  # errors name the profile as it was typed
    setup = RunSetup.start(
        where, profile=profile, offline=offline, fixtures=[str(path) for path in fixtures or ()]
    )
    graph = setup.graph(where, url)  # checks the profile and fixtures before anything is stored
    if not offline:  # reach the servers the plan needs now: one that is down stores nothing
        for step in parsed.steps:
            graph.tools.get(step.tool)
    thread_id = thread or f"run-{uuid.uuid4().hex[:8]}"
    mode = ", offline" if offline else ""
    _say(f"Thread {thread_id} (project {where.name}, profile {rules.name}{mode}, database {url})")
    steps = [step.id for step in parsed.steps]
    raise typer.Exit(_drive(graph, {"plan": parsed}, setup.config(thread_id), url, steps=steps))


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
    where, _ = _project(project, None)
    setup = RunSetup.start(
        where, profile=profile, offline=offline, fixtures=[str(path) for path in fixtures or ()]
    )
    report = preflight(setup.graph(where, None), document)
    if as_json:
        _say(json.dumps(report.model_dump(mode="json"), ensure_ascii=False))
    else:
        _print_report(report)
    raise typer.Exit(ExitCode.SUCCESS if report.ok else ExitCode.USER_ERROR)


def _print_rows(rows: Sequence[Sequence[str]]) -> None:
    """A table: its first row the header, each cell made visible before it is measured."""
    shown = [[visible(str(cell)) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(len(shown[0]))]
    for row in shown:
        _say("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _print_report(report: PreflightReport) -> None:
    rows = [("step", "tool", "action", "risk", "asks", "budget")]
    for step in report.steps:
        action = f"{step.action} ({step.action_source})" + (
            ", irreversible" if step.irreversible else ""
        )
        rows.append(
            (
                step.step_id,
                step.tool,
                action,
                step.risk,
                "yes" if step.asks else "no",
                f"blocked: {step.blocked_by}" if step.blocked_by else "ok",
            )
        )
    if report.steps:
        _print_rows(rows)
    if report.ok:
        _say(f"No problem found under profile {report.profile}.")
        return
    _say(f"{_plural(len(report.problems), 'problem')} under profile {report.profile}:")
    for problem in report.problems:
        # A plan problem's message names its step already.
        named = problem.step_id and problem.kind != "plan"
        where = f"step {problem.step_id!r}: " if named else ""
        _say(f"  {problem.kind}: {where}{problem.message}")


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
    where, _ = _project(project, None)
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
                "domain": name.split(".", 1)[0],
                "action": policy.action,
                "action_source": policy.source,
                "irreversible": policy.irreversible,
                "risk": policy.risk,
                "allowed": governance.profile.allows(name),
                "asks": policy.needs_approval,
            }
        )
    if as_json:
        for row in rows:
            _say(json_line(row))
        return
    _say(
        f"{_plural(len(rows), 'tool')} of project {where.name}, profile {governance.profile.name}:"
    )
    _print_rows(
        [("tool", "source", "domain", "action", "risk", "runs")]
        + [
            (
                str(row["tool"]),
                str(row["source"]),
                str(row["domain"]),
                f"{row['action']} ({row['action_source']})"
                + (", irreversible" if row["irreversible"] else ""),
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
    _say(*(f"wrote {path}" for path in written))
    plan = next(
        path.name for path in written if path.suffix == ".yaml" and path.name != "plangate.yaml"
    )
    where = "" if folder.resolve() == Path.cwd() else f"cd {folder} && "
    _say(f"Next: {where}plangate tools && plangate check {plan} && plangate run {plan}")


@app.command()
def pending(db: DbOption = None, project: ProjectOption = None) -> None:
    """List every run in the database that waits for an approval.

    A request past its deadline is marked EXPIRED: `plangate expire` closes it. `plangate runs`
    also lists the runs that stopped mid-way.
    """
    _, db = _where(project, db)
    graph = _reader(db)
    now = utc_now()
    found = False
    for thread, request in pending_approvals(graph):
        found = True
        when = (
            f"EXPIRED at {request['expires_at']} (run plangate expire{_db_flag(db)})"
            if is_expired(request, now)
            else f"expires {request['expires_at']}"
        )
        _say(
            f"{thread}  step {request['step_id']} ({request['tool']})  {request['risk']} risk  "
            + when,
            f"    {request['consequence']}",
        )
    if not found:
        _say("No run is waiting for approval.")


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
    _, db = _where(project, db)
    graph = _reader(db)
    flag = _db_flag(db)
    now = utc_now()
    listed = 0
    for thread, saved in latest_checkpoints(_saver(graph)):
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
        _say(f"{thread}  {line}")
    if not listed:
        _say("No run in the database." if all_runs else "No unfinished run.")


def _waiting_line(
    graph: PlangateGraph, thread: str, saved: CheckpointTuple, now: Any, flag: str
) -> str:
    waiting = interrupts_waiting(saved)
    if waiting is None:  # answered and asked again: only the rebuilt state tells
        waiting = list(graph.get_state({"configurable": {"thread_id": thread}}).interrupts)
    requests = [i.value for i in waiting if is_approval_request(i.value)]
    if not requests:
        return f"waiting: plangate show {thread}{flag}"
    request = requests[0]
    step = f"step {request['step_id']} ({request['tool']})"
    if is_expired(request, now):
        return f"waiting: {step} approval EXPIRED at {request['expires_at']}: plangate expire{flag}"
    return f"waiting: {step} needs approval: plangate show {thread}{flag}"


@app.command()
def expire(db: DbOption = None, project: ProjectOption = None) -> None:
    """Close every approval that expired unanswered: each run goes on as its profile says.

    Exits 0 whatever the runs it closed did next (each one's outcome is printed); a run it
    cannot go on with is printed as skipped.
    """
    named, db = _runs_of(project, db)
    graph = _reader(db)
    now = utc_now()
    expired = [thread for thread, request in pending_approvals(graph) if is_expired(request, now)]
    if not expired:
        _say("No approval has expired.")
    for thread in expired:
        _say("", f"{thread}: approval expired")
        try:
            # Each run goes on under its own setup (profile, offline mode), not the probe's.
            run_graph, config, snapshot = _existing(db, thread, named)
            _drive(
                run_graph,
                Command(resume=EXPIRED_DECISION),
                config,
                db,
                steps=_plan_steps(snapshot.values),
            )
        except PlangateError as refused:  # another worker has it, or it cannot go on here
            _say(f"{thread}: skipped, {refused}")


@app.command(epilog=_RUN_EXITS.replace("5 failed, ", "5 failed, 6 decided too late, "))
def approve(
    thread: ThreadArg,
    *,
    approver: ApproverOption = None,
    args: Annotated[
        str | None, typer.Option(help="New arguments as JSON: approve with an edit.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    step: StepOption = None,
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
    raise typer.Exit(_decide(thread, decision, step, *_runs_of(project, db)))


def _requests(snapshot: StateSnapshot) -> list[dict[str, Any]]:
    return [i.value for i in snapshot.interrupts if is_approval_request(i.value)]


def _decide(
    thread: str, decision: dict[str, Any], step: str | None, project: Project | None, db: str
) -> ExitCode:
    """Bind `decision` to the request the run waits on now (the one of `step`, if given),
    show that request, and resume the run with it (in `project`, if named)."""
    graph, config, snapshot = _existing(db, thread, project)
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
    _say(
        f"{verb[decision['decision']]} step {request['step_id']!r} ({request['tool']}) "
        f"of run {thread}:"
    )
    _print_request(request)
    bound = {**decision, "request_id": request["request_id"], "digest": request.get("digest")}
    code = _drive(
        graph,
        Command(resume=bound),
        config,
        db,
        steps=_plan_steps(snapshot.values),
        decided_step=request["step_id"],
    )
    if code == ExitCode.EXPIRED:
        _say(
            f"Too late: the request expired at {request['expires_at']}, so the decision was "
            "recorded as expired, not as given."
        )
    return code


@app.command(epilog=_RUN_EXITS.replace("5 failed, ", "5 failed, 6 decided too late, "))
def reject(
    thread: ThreadArg,
    *,
    reason: Annotated[str, typer.Option(help="Why the step is rejected (recorded).")],
    approver: ApproverOption = None,
    step: StepOption = None,
    db: DbOption = None,
    project: ProjectOption = None,
) -> None:
    """Reject the pending step of a run and go on (or halt, as the profile says).

    A run with a rejected step ends partial (exit status 4) or failed (5), if nothing else
    pauses it.
    """
    if not reason.strip():
        raise PlangateUsageError("--reason is empty", hint="say why the step is rejected")
    decision = {"decision": "reject", "reason": reason, "approver": approver or _user()}
    raise typer.Exit(_decide(thread, decision, step, *_runs_of(project, db)))


@app.command(epilog=_RUN_EXITS)
def resume(thread: ThreadArg, db: DbOption = None, project: ProjectOption = None) -> None:
    """Continue a run whose process stopped mid-way (Ctrl-C, a crash, a kill).

    The step it was in runs again with the same idempotency key, so tools that honour it do not
    act twice. `plangate runs` lists the runs that stopped.
    """
    named, db = _runs_of(project, db)
    graph, config, snapshot = _existing(db, thread, named)
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
    raise typer.Exit(_drive(graph, None, config, db, steps=_plan_steps(snapshot.values)))


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
    _, db = _where(project, db)
    graph, snapshot = _read(db, thread)
    actions = _actions(snapshot.values)
    result = snapshot.values.get("result")
    if snapshot.interrupts:
        _print_done(snapshot.values, actions, thread=thread, db=db, full=full)
        _print_pending(thread, snapshot.interrupts[0].value, db)
    elif result:
        _print_result(result, actions, thread=thread, db=db, full=full)
    else:
        at = ", ".join(task.name for task in snapshot.tasks) or "nothing"
        if graph.is_running({"configurable": {"thread_id": thread}}):
            _say(
                f"Run {thread} has not finished: another process runs it now (at: {at}); "
                f"`plangate show {thread}{_db_flag(db)}` again tells how it ended."
            )
        else:
            _say(
                f"Run {thread} has not finished: it stopped (at: {at}); "
                f"`plangate resume {thread}{_db_flag(db)}` goes on."
            )
        _print_done(snapshot.values, actions, thread=thread, db=db, full=full)


@app.command()
def trace(thread: ThreadArg, db: DbOption = None, project: ProjectOption = None) -> None:
    """Print a run's whole trace as JSON lines.

    Control and bidi characters in strings are written as \\uXXXX escapes (still the same JSON).
    """
    _, db = _where(project, db)
    graph, _ = _read(db, thread)
    for event in get_trace(graph, {"configurable": {"thread_id": thread}}):
        _say(json_line(event))


@app.command()
def serve(
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
) -> None:
    """Serve the approvals inbox: a page and a JSON API over the database (plangate[server])."""
    try:
        import uvicorn  # noqa: F401  (missing, it is the one-line "needs the server extra")

        from plangate.server import create_app, listen
        from plangate.server import serve as serve_inbox
    except ImportError as exc:
        raise PlangateUsageError(
            f"`plangate serve` needs {exc.name or 'fastapi and uvicorn'}",
            hint="install plangate's `server` extra (from a checkout: pip install '.[server]')",
        ) from None
    where, db = _project(project, db)
    given = token or os.environ.get("PLANGATE_TOKEN")
    secret = given or secrets.token_urlsafe(24)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    # On loopback, only requests addressed to loopback names: a second wall behind the token,
    # against a web page reaching the inbox through a DNS-rebound host name.
    hosts = ["127.0.0.1", "localhost", "[::1]"] if loopback else None
    inbox = create_app(db, token=secret, allowed_hosts=hosts, project=where)
    sock = listen(host, port)  # bound before the URL is printed, so that it names the real port
    port = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    _say(f"plangate inbox on {url} (project {where.name}, database {db})")
    if given:
        _say(f"Token: the one given (--token or PLANGATE_TOKEN); open {url}#token=...")
    else:
        # A fragment never reaches a server or a proxy's log.
        _say(f"Token: {secret}", f"Open: {url}#token={secret}")
    if not loopback:
        _say(
            "Note: plain HTTP carries the token in clear; serve beyond loopback only behind "
            "a TLS proxy."
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
    _warn(f"plangate: error: {message.removesuffix('.')} (see `{command} --help`)")
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
        _warn(f"plangate: error: {cli_message(exc)}")
        status = ExitCode.USER_ERROR
    except _Stopped as stopped:
        if stopped.code == ExitCode.OUTPUT_CLOSED:
            _silence_stdout()
        _warn(stopped.line)
        status = stopped.code
    except _OutputClosed:  # a listing cut short (`plangate trace THREAD | head`): nothing to say
        _silence_stdout()
        status = ExitCode.OUTPUT_CLOSED
    except typer.TyperException as exc:
        status = _command_line_error(exc)
    except typer.Abort:  # end of input at a prompt
        status = ExitCode.INTERRUPTED
    sys.exit(int(status) if isinstance(status, int) else ExitCode.SUCCESS)
