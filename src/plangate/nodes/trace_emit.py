"""`trace_emit`: record what the tasks of a wave reported: each step's end, and the cursor.

It runs after every superstep in which a task of the wave reported, and takes the reports it
has not recorded yet in plan order: so their events get their `seq` in plan order, gap-free and
the same on every replay of the same outcomes and decisions, whichever call ended first. Each
call that was made is charged to the budget here (`budget_warning` when it crosses the profile's
threshold), just before its own events. A step approved in this wave is still in flight (its
call runs beside this node); once no step of the wave is, the next wave starts.

Every step ends here exactly once, whatever happened to it, so this is where a step's end
becomes a trace event and where the profile's `on_error` / `on_reject` / `on_expiry` decide
whether the plan goes on. When the plan halts, the steps that have not started are closed as
`skipped` in one go (steps of the same wave may already have run). A step that `tool_exec`
sent back (its approval no longer holds, or the chain it was in stopped before it) does not end:
the next wave takes it again, to be asked about anew, or skipped.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END
from langgraph.runtime import Runtime

from plangate._channels import SNAPSHOT_EVERY, stored_outcome
from plangate._governance import Governance, TraceWriter, step_at, step_links
from plangate.budget import charge, crossed_warnings
from plangate.nodes._outcome import closed_outcome, span_of_closed
from plangate.plan import PlanStep
from plangate.profiles import Profile
from plangate.state import PlanState, StepOutcome

_END_EVENTS = {"blocked": "step_blocked", "skipped": "step_skipped"}


def trace_emit(
    state: PlanState, runtime: Runtime[Any], *, governance: Governance
) -> dict[str, Any]:
    profile = governance.profile
    run = state["run"]
    writer = TraceWriter(run, governance, runtime.stream_writer)
    usage, warned, halted = run["usage"], run["warned"], run["halted"]
    wave = state.get("wave") or []
    running = set(run.get("running") or ())
    closed: dict[str, StepOutcome] = {}
    for report in sorted(wave[run.get("recorded", 0) :], key=lambda r: r["index"]):
        step = step_at(state, report["index"])
        if report.get("charged"):
            usage = charge(usage, step)
            for warning in crossed_warnings(usage, step, profile.budget, warned):
                writer.emit("budget_warning", warning, step=step)
                warned = [*warned, warning["tier"]]
        writer.adopt(report["events"])
        if report.get("recheck"):
            running.discard(step.id)
        outcome = report.get("outcome")
        if outcome is None:  # approved: its call's report follows; or to be asked again
            continue
        _emit_end(writer, step, outcome)
        if not outcome["attempts"]:  # a call made its own span as it ended
            span_of_closed(governance, run, step, outcome)
        closed[step.id] = outcome
        running.discard(step.id)
        halted = halted or _halts(profile, step, outcome)

    steps = state["plan"]["steps"]
    ended = state.get("outcomes") or {}
    cursor = run["cursor"]
    if halted:
        for later in range(cursor, len(steps)):
            step_id = step_links(steps[later]).id
            if step_id in ended or step_id in closed or step_id in running:
                continue
            rest = step_at(state, later)
            closed[rest.id] = closed_outcome(rest, "skipped", "plan_halted", halted)
            writer.emit("step_skipped", {"reason": halted, "error_type": "plan_halted"}, step=rest)
            span_of_closed(governance, run, rest, closed[rest.id])
    while cursor < len(steps) and (
        (step_id := step_links(steps[cursor]).id) in ended or step_id in closed
    ):
        cursor += 1

    update: dict[str, Any] = {}
    if closed:
        update["outcomes"] = {k: stored_outcome(o) for k, o in closed.items()}
    if cursor // SNAPSHOT_EVERY > run["cursor"] // SNAPSHOT_EVERY:
        update["plan"] = None  # a no-op write that makes the plan snapshot (see SNAPSHOT_EVERY)
    changes: dict[str, Any] = {"cursor": cursor, "halted": halted, "usage": usage}
    changes.update(warned=warned, running=[s for s in run.get("running") or () if s in running])
    if running:  # calls still in flight beside this node report to it again
        changes["recorded"] = len(wave)
    else:  # nothing else runs now: the wave is over
        changes["recorded"] = 0
        update["wave"] = None
    return {**update, **writer.update(**changes)}


def _emit_end(writer: TraceWriter, step: PlanStep, outcome: StepOutcome) -> None:
    status = outcome["status"]
    if status in _END_EVENTS:
        context: dict[str, Any] = dict(outcome["failure_context"] or {})
        writer.emit(
            _END_EVENTS[status],  # type: ignore[arg-type]
            {"reason": outcome["error"], "error_type": context.get("error_type")},
            step=step,
        )
    writer.emit(
        "step_completed",
        {"status": status, "duration_ms": outcome["duration_ms"], "error": outcome["error"]},
        step=step,
    )


def _halts(profile: Profile, step: PlanStep, outcome: StepOutcome) -> str | None:
    """Why the plan halts after `step` ended with `outcome`, or `None` when it goes on."""
    status = outcome["status"]
    if status == "error" and profile.on_error == "halt":
        return f"step {step.id!r} failed and profile {profile.name!r} halts on error"
    if status == "rejected" and profile.on_reject == "halt":
        return f"step {step.id!r} was rejected and profile {profile.name!r} halts on reject"
    if status == "expired" and profile.expiry_policy == "halt":
        # Unless the profile says otherwise, an approval nobody gave in time is no approval: it
        # halts like a rejection.
        rule = "halts on expiry" if profile.on_expiry else "halts on reject"
        return f"step {step.id!r} was not approved in time and profile {profile.name!r} {rule}"
    return None


def next_after_trace(state: PlanState) -> str:
    """Route: nowhere while a call of the wave is in flight (its report brings this node back),
    else the next wave's `budget_check`, or `finalize` when every step has ended."""
    run = state["run"]
    if run.get("running"):
        return END
    return "budget_check" if run["cursor"] < len(state["plan"]["steps"]) else "finalize"
