"""`trace_emit`: close the current step: record its outcome, emit its end, move the cursor.

Every step ends here exactly once, whatever happened to it, so this is where a step's end
becomes a trace event and where the profile's `on_error` / `on_reject` decide whether the plan
goes on. When the plan halts, the steps left are closed as `skipped` in one go. A step that
`tool_exec` sent back (`route: recheck`, its approval no longer holds) does not end: it goes to
`budget_check` again, to be asked about anew.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from plangate._governance import Governance, TraceWriter, step_at
from plangate.nodes._outcome import closed_outcome
from plangate.state import SNAPSHOT_EVERY, PlanState, StepOutcome, stored_outcome

_END_EVENTS = {"blocked": "step_blocked", "skipped": "step_skipped"}


def trace_emit(
    state: PlanState, runtime: Runtime[Any], *, governance: Governance
) -> dict[str, Any]:
    if state["current"].get("route") == "recheck":
        return {}  # the cursor stays: `budget_check` takes the same step again
    profile = governance.profile
    index = state["current"]["index"]
    step = step_at(state, index)
    outcome = state["current"]["outcome"]
    writer = TraceWriter(state["run"], governance, runtime.stream_writer)
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

    halted = state["run"]["halted"]
    if status == "error" and profile.on_error == "halt":
        halted = f"step {step.id!r} failed and profile {profile.name!r} halts on error"
    elif status in ("rejected", "expired") and profile.on_reject == "halt":
        # An approval nobody gave in time is no approval: it halts like a rejection.
        what = "was rejected" if status == "rejected" else "was not approved in time"
        halted = f"step {step.id!r} {what} and profile {profile.name!r} halts on reject"

    closed: dict[str, StepOutcome] = {step.id: outcome}
    cursor = index + 1
    if halted:
        steps = state["plan"]["steps"]
        for later in range(cursor, len(steps)):
            rest = step_at(state, later)
            closed[rest.id] = closed_outcome(rest, "skipped", "plan_halted", halted)
            writer.emit("step_skipped", {"reason": halted, "error_type": "plan_halted"}, step=rest)
        cursor = len(steps)
    update: dict[str, Any] = {"outcomes": {k: stored_outcome(o) for k, o in closed.items()}}
    if cursor % SNAPSHOT_EVERY == 0:
        update["plan"] = None  # a no-op write that makes the plan snapshot (see SNAPSHOT_EVERY)
    return {**update, **writer.update(cursor=cursor, halted=halted)}


def next_after_trace(state: PlanState) -> str:
    """Route: the next step's `budget_check`, or `finalize` when the plan is done."""
    return "budget_check" if state["run"]["cursor"] < len(state["plan"]["steps"]) else "finalize"
