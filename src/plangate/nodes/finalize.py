"""`finalize`: assemble the run's `result` (an `ExecutionResult` as JSON) and end the trace."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from plangate._channels import outcome_from_state
from plangate._governance import Governance, TraceWriter
from plangate.budget import usage_report
from plangate.plan import Plan
from plangate.state import PlanState, StepStatus
from plangate.tracing import outcome_signals


def finalize(state: PlanState, runtime: Runtime[Any], *, governance: Governance) -> dict[str, Any]:
    outcomes = state["outcomes"]
    plan = Plan.from_state(state["plan"])
    steps = [outcome_from_state(outcomes[step.id]) for step in plan.steps]
    statuses = [outcome["status"] for outcome in steps]
    ok = statuses.count("ok")
    status = "success" if ok == len(steps) else ("partial" if ok else "failed")
    approvals = [outcome["approval"] for outcome in steps if outcome["approval"]]
    run = state["run"]
    budget = usage_report(run["usage"], governance.profile.budget)
    signals = outcome_signals(steps, budget["utilisation"])
    failure = next(
        (o["failure_context"] for o in steps if o["failure_context"] and o["status"] != "skipped"),
        None,
    ) or next((o["failure_context"] for o in steps if o["failure_context"]), None)
    counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
    writer = TraceWriter(run, governance, runtime.stream_writer)
    writer.emit(
        "plan_completed",
        {"status": status, "counts": counts, "halted": run["halted"], "signals": signals},
    )
    result = {
        "status": status,
        "trace_id": run["trace_id"],
        "goal": plan.goal,
        "profile": governance.profile.name,
        "steps": steps,
        "failure_context": failure,
        "budget": budget,
        "approvals": approvals,
        "signals": signals,
        "halted": run["halted"],
        "next_seq": writer.next_seq,
    }
    if governance.telemetry is not None and "telemetry" in run:
        governance.telemetry.run(run["telemetry"], result, run_id=run["run_id"])
    update: dict[str, Any] = {"result": result, **writer.update()}
    if state.get("messages"):
        # A run a chat client started with a message: the outcome, for the client to show.
        update["messages"] = [AIMessage(content=_summary(result, counts))]
    return update


def _summary(result: dict[str, Any], counts: Mapping[StepStatus, int]) -> str:
    """The outcome in one line: status, goal, how the steps ended, and who decided what."""
    steps = ", ".join(f"{n} {status}" for status, n in counts.items())
    decided = "; ".join(
        f"{a['step_id']}: {a['decision']} by {a['approver'] or 'no one named'}"
        for a in result["approvals"]
    )
    return f"{result['status']}: {result['goal']} (steps: {steps})" + (
        f"; {decided}" if decided else ""
    )
