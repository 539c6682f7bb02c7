"""Runs, approval requests, results and pre-flight reports as lines a person reads."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plangate._time import utc_now
from plangate.cli.output import human_duration, plural, print_rows, say, visible
from plangate.cli.where import db_flag
from plangate.runs.stored import EXPIRED_DECISION, is_expired

if TYPE_CHECKING:
    from plangate.preflight import PreflightReport
    from plangate.state import StepOutcome

SUMMARY_OVER = 50
"""A step table longer than this is summarised (`show --full` prints it whole)."""
FIRST_FAILURES = 5


# --- describing runs --------------------------------------------------------------------------

ACTION_SOURCES = {
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
            f"goal: {data.get('goal')!r}, {plural(int(data.get('steps') or 0), 'step')}, "
            f"profile {data.get('profile')}"
        ),
        "policy_override": lambda: (
            f"the plan said {data.get('plan_action')}; runs as {data.get('action')} "
            f"(from {ACTION_SOURCES.get(data.get('action_source'), data.get('action_source'))})"
        ),
        "approval_invalidated": lambda: f"asked again: {data.get('reason')}",
        "budget_warning": lambda: f"{data['tier']} at {data['used']}/{data['limit']} calls",
        "budget_exceeded": lambda: f"{data['tier']} used up ({data['used']}/{data['limit']})",
        "approval_requested": lambda: (
            f"plan review of {data.get('steps')} steps; approving covers "
            f"{len(data.get('covered') or ())} of them (risk up to {data.get('covers')})"
            if data.get("kind") == "plan_review"
            else f"{data.get('risk')} risk: {data.get('consequence')}"
        ),
        "approval_received": lambda: (
            f"{data.get('decision')} by {data.get('approver') or 'unknown'}"
            + (f" ({data['verified_by']})" if data.get("verified_by") else "")
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
    # `-1`: an event of a step that ended beside steps still waiting, not numbered yet.
    seq = f"{event['seq']:>3}" if event["seq"] >= 0 else "  -"
    return f"[{seq}] {event['type']:<19} {where}: {detail}"


def action_line(request: Mapping[str, Any]) -> str:
    """`execute, irreversible (from the tool's declaration)`."""
    source = request.get("action_source")
    return (
        str(request["action"])
        + undone(request)
        + (f" (from {ACTION_SOURCES.get(source, source)})" if source else "")
    )


def undone(row: Mapping[str, Any]) -> str:
    """`, irreversible`, and whether the profile exempts it from asking; `` when reversible."""
    if not row.get("irreversible"):
        return ""
    return ", irreversible" + (" (exempt: runs unasked)" if row.get("exempt") else "")


ORDERS = {
    "listed": "listed (each propose or execute step waits for the steps before it, and the "
    "steps after it wait for it; reads between them run together)",
    "dependencies": "dependencies (only depends_on and references order the steps)",
}
"""How the CLI names the order a plan runs in (`plangate.plan.Order`)."""


def approvals_count(request: Mapping[str, Any]) -> str | None:
    """`1 of 2 approvals (lee at ...)` for a request the profile wants several people to
    approve; `None` when one is enough."""
    needed = request.get("approvals_required", 1)
    if needed <= 1:
        return None
    given = request.get("approvals_so_far") or []
    who = ", ".join(f"{a['approver']} at {a['at']}" for a in given)
    return f"{len(given)} of {needed} approvals" + (f" ({who})" if who else "")


def is_plan_review(request: Mapping[str, Any]) -> bool:
    return request.get("type") == "plan_review"


def what_waits(request: Mapping[str, Any]) -> str:
    """`step 'send' (email.send)`, or `the plan review` for a review of the whole plan."""
    if is_plan_review(request):
        return "the plan review"
    return f"step {request['step_id']!r} ({request['tool']})"


def forecast_lines(tiers: Iterable[Mapping[str, Any]]) -> list[str]:
    """The budget tiers a plan fills or runs out of: `tool:email.send 5/5 calls; blocks d5`."""
    lines = []
    for tier in tiers:
        if tier["limit"] is not None and (tier["blocked"] or tier["calls"] >= tier["limit"]):
            blocked = f"; blocks {', '.join(tier['blocked'])}" if tier["blocked"] else ""
            lines.append(f"{tier['tier']} {tier['calls']}/{tier['limit']} calls{blocked}")
    return lines


def print_review(request: Mapping[str, Any]) -> None:
    """What the reviewer of a whole plan sees: every step with its real args (references as
    written), effective action and its source, risk, and what the review's approval covers;
    then the budget forecast."""
    rows = [
        [
            step["step_id"],
            step["tool"],
            action_line(step),
            step["risk"],
            "covered" if step["covered"] else ("asks" if step["asks"] else "-"),
            json.dumps(step["args"], ensure_ascii=False, default=str),
        ]
        for step in request["steps"]
    ]
    say(
        f"  goal:        {request['goal']}",
        f"  order:       {ORDERS.get(request.get('order', 'listed'), request.get('order'))}",
        f"  consequence: {request['consequence']}",
    )
    print_rows([["step", "tool", "action", "risk", "approval", "args"], *rows])
    for line in forecast_lines(request["budget"]):
        say(f"  budget:      {line}")
    for problem in request["problems"]:
        say(f"  problem:     {problem['step_id'] or 'plan'}: {problem['message']}")
    say(
        f"  covers:      risk up to {request['covers']} ('covered' steps run without asking)",
        f"  expires at:  {request['expires_at']}",
    )


def references_text(sources: str | Sequence[str]) -> str:
    """How an arg's value was made, after its name: `= ${steps.a.output.x}` from one reference,
    `from ${steps.a.output.x}, ${steps.b.output.y}` from several (a request stored before
    requests listed every reference holds one, as a string)."""
    listed = [sources] if isinstance(sources, str) else list(sources)
    shown = ", ".join(f"${{{source}}}" for source in listed)
    return f"= {shown}" if len(listed) == 1 else f"from {shown}"


def print_request(request: Mapping[str, Any], *, edited: Any = None) -> None:
    """What the person deciding sees: the real args, unredacted. With `edited` (an edit's
    args), those are the args shown, the request's own after them as `was:`; the references
    are left out, as they made the request's args, not the edit's."""
    if is_plan_review(request):
        print_review(request)
        if edited is not None:
            say(f"  edited to:   {json.dumps(edited, ensure_ascii=False, default=str)}")
        return
    count = approvals_count(request)
    if edited is None:
        args = [f"  args:        {json.dumps(request['args'], ensure_ascii=False, default=str)}"]
        args += [
            f"  from:        args.{arg} {references_text(sources)}"
            for arg, sources in (request.get("references") or {}).items()
        ]
    else:
        args = [
            f"  args:        {json.dumps(edited, ensure_ascii=False, default=str)}",
            f"  was:         {json.dumps(request['args'], ensure_ascii=False, default=str)}",
        ]
    say(
        f"  action:      {action_line(request)}",
        f"  risk:        {request['risk']}",
        *([f"  approvals:   {count}; each from a different approver"] if count else []),
        *([f"  asks again:  {request['review_changed']}"] if request.get("review_changed") else []),
        f"  consequence: {request['consequence']}",
        *args,
        f"  expires at:  {request['expires_at']}",
    )


def decided_text(mark: Mapping[str, Any]) -> str:
    """A decision queued for a worker, or whose job failed (`QueuedDecision.mark`), in a
    line: `approve by lee, job 12`."""
    return f"{mark['decision']} by {mark['approver']}, job {mark['job']}"


def print_pending(thread: str, requests: Sequence[Mapping[str, Any]], db: str) -> None:
    """What a paused run waits for: each pending request, and the commands that decide the
    ones still to decide (not one whose decision is queued for a worker)."""
    flag = db_flag(db)
    if len(requests) == 1 and is_plan_review(requests[0]):
        say("", "Paused: the plan waits for review before any step runs.")
    elif len(requests) == 1:
        request = requests[0]
        say("", f"Paused: step {request['step_id']!r} ({request['tool']}) needs approval.")
    else:
        waiting = ", ".join(f"{r['step_id']!r} ({r['tool']})" for r in requests)
        say("", f"Paused: {len(requests)} steps need approval: {waiting}.")
    now = utc_now()
    for request in requests:
        if len(requests) > 1:
            say("", f"Step {request['step_id']!r}:")
        print_request(request)
        if queued := request.get("queued"):  # workers on: a worker is yet to apply it
            say(f"Decided ({decided_text(queued)}): queued, a worker applies it.")
        elif failed := request.get("last_failed"):
            say(f"The last decision ({decided_text(failed)}) failed: {failed['error']}.")
        if is_expired(dict(request), now):
            say(
                "This request has EXPIRED: a decision now is recorded as expired; "
                f"`plangate expire{flag}` closes it."
            )
    print_decide_hints(thread, requests, flag)


def print_decide_hints(thread: str, requests: Sequence[Mapping[str, Any]], flag: str) -> None:
    """The commands that decide `requests`, but for those decided already: a decision queued
    for a worker (`queued`) answers its request, and another one on it would be refused."""
    undecided = [request for request in requests if not request.get("queued")]
    if not undecided:
        say("No decision to take now: a worker applies the queued one, then the run goes on.")
        return
    if is_plan_review(undecided[0]):
        say(
            "Resume with one of:",
            f"  plangate approve {thread}{flag} --approver NAME",
            f'  plangate approve {thread}{flag} --approver NAME --args \'{{"goal": ..., '
            '"steps": [...]}\'   (edit: a new plan, reviewed again)',
            f"  plangate reject {thread}{flag} --reason TEXT   (nothing runs)",
        )
        return
    step = undecided[0]["step_id"] if len(undecided) == 1 else "STEP_ID"
    say(
        *([""] if len(requests) > 1 else []),
        *(
            [f"Still to decide: {', '.join(repr(r['step_id']) for r in undecided)}."]
            if len(undecided) < len(requests)
            else []
        ),
        "Resume with one of:",
        f"  plangate approve {thread}{flag} --step {step} --approver NAME",
        f"  plangate approve {thread}{flag} --step {step} --approver NAME --args '{{...}}'"
        "   (edit: the args replace all of them)",
        f"  plangate reject {thread}{flag} --step {step} --reason TEXT",
    )
    if len(undecided) > 1 and len(undecided) == len(requests):
        say(
            f"  plangate approve {thread}{flag} --all --approver NAME"
            "   (or reject --all: the same decision on every step shown)"
        )


def recorded_actions(
    ended: Mapping[str, StepOutcome], requests: Sequence[Mapping[str, Any]] = ()
) -> dict[str, str]:
    """Each step's effective action and where it came from (`execute (tool)`), as the outcome
    of each step that has `ended` or its pending approval request records it: reading a run
    reaches none of its tools."""
    found = {
        step: f"{outcome['action']} ({outcome.get('action_source')})"
        for step, outcome in ended.items()
        if outcome.get("action")
    }
    # A step's request, or the plan review's row of each step.
    shown = [r for r in requests if not is_plan_review(r)]
    shown += [step for r in requests if is_plan_review(r) for step in r["steps"]]
    for request in shown:
        if request.get("step_id") not in found:
            found[request["step_id"]] = f"{request['action']} ({request.get('action_source')})"
    return found


def decided_line(approval: Mapping[str, Any]) -> str:
    """`approve by lee` (`approve by lee (approve), kim (approve)` where several approved), or
    why a step's approval ran out."""
    if approval["decision"] == "expired":
        return "expired: no decision in time" + (
            ""
            if approval["approver"] in (None, EXPIRED_DECISION["approver"])
            else f" (decided late by {approval['approver']})"
        )
    given = approval.get("approvals") or ()
    if len(given) > 1:  # four eyes: each approval as recorded, in the order they came
        return f"{approval['decision']} by " + ", ".join(
            f"{a['approver']} ({a['decision']})" for a in given
        )
    return f"{approval['decision']} by {approval['approver'] or 'unknown'}"


def print_table(steps: Iterable[Mapping[str, Any]], actions: Mapping[str, str]) -> None:
    rows = [["step", "tool", "action", "status", "ms", "detail"]]
    for step in steps:
        detail = step["error"] or ""
        if step["approval"]:
            detail = "; ".join(filter(None, (decided_line(step["approval"]), detail)))
        ms = "" if step["duration_ms"] is None else f"{step['duration_ms']:.1f}"
        status = f"{step['status']} (mock)" if step.get("mocked") else step["status"]
        cells = (step["step_id"], step["tool"], actions.get(step["step_id"], ""), status, ms)
        # Made visible before measuring, so that escapes do not break the columns.
        rows.append([visible(str(cell)) for cell in (*cells, detail)])
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    say(
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


def print_steps(
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
        print_table(steps, actions)
        return
    counts = Counter(str(step["status"]) for step in steps).most_common()
    say(f"  {plural(len(steps), 'step')}: " + ", ".join(f"{n:,} {status}" for status, n in counts))
    not_ok = [step for step in steps if step["status"] != "ok"]
    if not_ok:
        shown = not_ok[:FIRST_FAILURES]
        say(f"  The first {len(shown)} of {len(not_ok):,} not ok:")
        print_table(shown, actions)
    say(f"  (`plangate show {thread}{db_flag(db)} --full` prints every step)")


def signals_line(result: Mapping[str, Any]) -> str:
    signals = result["signals"]
    latency = signals["tool_latency_ms"]
    wait = signals["approval_wait_ms"]
    budget = result["budget"]
    total = budget["total"]
    tiers = [total, *budget.get("domains", {}).values(), *budget.get("tools", {}).values()]
    limited = any(tier.get("limit") is not None for tier in tiers)
    calls = (
        plural(total["used"], "call")
        if total["limit"] is None
        else f"{total['used']:,}/{total['limit']:,} calls"
    )
    parts = [
        f"success rate {signals['success_rate']:.0%}",
        f"error rate {signals['error_rate']:.0%}"
        # Results stored before this signal existed lack it.
        + (
            f" ({before} failed before calling)"
            if (before := signals.get("failed_before_call"))
            else ""
        ),
        "no tool calls"
        if latency["max"] is None
        else f"tool latency p50 {latency['p50']} / p95 {latency['p95']} / max {latency['max']} ms",
        f"approvals {wait['count']}"
        + (f" (max wait {human_duration(wait['max'])})" if wait["count"] else ""),
        f"budget {calls}"
        + (f" ({signals['budget_utilisation']:.0%} of the fullest tier)" if limited else ""),
    ]
    return "Signals: " + ", ".join(parts)


def print_result(
    result: Mapping[str, Any],
    actions: Mapping[str, str],
    *,
    thread: str,
    db: str,
    full: bool = False,
) -> None:
    say("", f"Run {result['status']} (trace {result['trace_id']})")
    print_steps(result["steps"], actions, thread=thread, db=db, full=full)
    say(signals_line(result))


def print_done(
    steps: Sequence[str],
    ended: Mapping[str, StepOutcome],
    actions: Mapping[str, str],
    *,
    thread: str,
    db: str,
    full: bool,
) -> None:
    """The steps (of a run's `steps`) that a run that has not finished has done so far: those
    that have `ended` (`plangate.runs.stored.ended_outcomes`)."""
    done = [ended[step] for step in steps if step in ended]
    if not done:
        say(f"No step done yet (of {plural(len(steps), 'step')}).")
        return
    say(f"Steps done: {len(done):,} of {len(steps):,}")
    print_steps(done, actions, thread=thread, db=db, full=full)


def print_report(report: PreflightReport) -> None:
    rows = [("step", "tool", "action", "risk", "asks", "budget")]
    for step in report.steps:
        rows.append(
            (
                step.step_id,
                step.tool,
                f"{step.action} ({step.action_source}){undone(step.model_dump())}",
                step.risk,
                "yes" if step.asks else "no",
                f"blocked: {step.blocked_by}" if step.blocked_by else "ok",
            )
        )
    if report.steps:
        print_rows(rows)
        say(f"Order: {ORDERS[report.order]}")
    for line in forecast_lines(tier.model_dump() for tier in report.budget):
        say(f"Budget: {line}")
    if report.ok:
        say(f"No problem found under profile {report.profile}.")
        return
    say(f"{plural(len(report.problems), 'problem')} under profile {report.profile}:")
    for problem in report.problems:
        # A plan problem's message names its step already.
        named = problem.step_id and problem.kind != "plan"
        where = f"step {problem.step_id!r}: " if named else ""
        say(f"  {problem.kind}: {where}{problem.message}")
