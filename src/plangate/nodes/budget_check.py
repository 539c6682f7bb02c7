"""`budget_check`: decide what happens to the next step before anything runs.

In order: a step whose dependencies did not end `ok` is skipped; a tool nobody registered
(offline: with no mock), or that the profile does not allow, is blocked; a call that would exceed
a budget tier is blocked; a step whose action the profile gates gets an approval request (built
here, once, so that the timestamps do not change when `approval_interrupt` runs again on resume);
anything else goes to `tool_exec`.
"""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.runtime import Runtime

from plangate._governance import Governance, TraceWriter, iso, step_at
from plangate.approval import DECISIONS, consequence_of
from plangate.budget import exceeded_tier
from plangate.nodes._outcome import closed_outcome
from plangate.plan import PlanStep
from plangate.state import ApprovalRequest, CurrentStep, PlanState
from plangate.tracing import redact


def budget_check(
    state: PlanState, runtime: Runtime[Any], *, governance: Governance
) -> dict[str, Any]:
    run = state["run"]
    index = run["cursor"]
    step = step_at(state, index)
    profile = governance.profile
    writer = TraceWriter(run, governance, runtime.stream_writer)
    current: CurrentStep = {"index": index, "route": "close", "args": step.args}
    outcomes = state.get("outcomes", {})
    unmet = [
        (dep, outcomes[dep]["status"]) for dep in step.depends_on if outcomes[dep]["status"] != "ok"
    ]
    exceeded = exceeded_tier(run["usage"], step, profile.budget)

    if unmet:
        dep, status = unmet[0]
        current["outcome"] = closed_outcome(
            step, "skipped", "dependency_failed", f"depends on step {dep!r}, which ended {status}"
        )
    elif governance.tool(step.tool) is None:
        reason, message = (
            ("no_mock", f"running offline, and no mock of {step.tool!r} is registered")
            if profile.offline
            else ("tool_not_registered", f"no tool named {step.tool!r} is registered")
        )
        current["outcome"] = closed_outcome(step, "blocked", reason, f"{message} with this graph")
    elif not profile.allows(step.tool):
        current["outcome"] = closed_outcome(
            step,
            "blocked",
            "tool_not_allowed",
            f"tool {step.tool!r} is not in the allowlist of profile {profile.name!r}",
        )
    elif exceeded is not None:
        writer.emit("budget_exceeded", exceeded, step=step)
        tier, used, limit = exceeded["tier"], exceeded["used"], exceeded["limit"]
        current["outcome"] = closed_outcome(
            step,
            "blocked",
            "budget_exceeded",
            f"budget tier {tier} is used up ({used}/{limit} calls)",
        )
    elif profile.needs_approval(step.tool, step.action):
        request = approval_request(state, step, index, governance)
        writer.emit(
            "approval_requested",
            {k: request[k] for k in ("request_id", "risk", "consequence", "expires_at", "args")},
            step=step,
        )
        current.update({"route": "approve", "request": request})
    else:
        current["route"] = "execute"
    return {"current": current, **writer.update()}


def approval_request(
    state: PlanState, step: PlanStep, index: int, governance: Governance
) -> ApprovalRequest:
    profile = governance.profile
    requested = governance.clock()
    risk = profile.risk(step.tool, step.action, step.domain or "")
    consequence = consequence_of(step, profile, risk)
    return {
        "type": "approval_request",
        "request_id": uuid.uuid4().hex,
        "trace_id": state["run"]["trace_id"],
        "step_id": step.id,
        "step_index": index,
        "tool": step.tool,
        "args": redact(step.args) if profile.redact else step.args,
        "action": step.action,
        "domain": step.domain or "",
        "description": step.description,
        "risk": risk,
        "consequence": redact(consequence) if profile.redact else consequence,
        "requested_at": iso(requested),
        "expires_at": iso(requested + profile.approval_timeout),
        "allowed_decisions": list(DECISIONS),
        "response_schema": governance.response_schema(step.tool),
    }
