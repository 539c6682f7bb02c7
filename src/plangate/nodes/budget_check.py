"""`budget_check`: decide what happens to the next step before anything runs.

In order: a step whose dependencies did not end `ok` is skipped; a tool nobody registered
(offline: with no mock), or that the profile does not allow, is blocked; a call that would exceed
a budget tier is blocked. Then the step's policy is worked out from trusted sources (the plan may
raise its action, never lower it; a lowering is recorded as `policy_override`). A step the
profile gates has its args checked against the tool's schema (refused args end it `error`
without asking anyone) and gets an approval request carrying the real args and a digest that
binds the decision to them (built here, once, so that the timestamps do not change when
`approval_interrupt` runs again on resume); anything else goes to `tool_exec`.
"""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.runtime import Runtime

from plangate._governance import Governance, TraceWriter, iso, step_at
from plangate.actions import StepPolicy
from plangate.approval import DECISIONS, approval_digest, args_problem, consequence_of
from plangate.budget import exceeded_tier
from plangate.nodes._outcome import closed_outcome
from plangate.plan import MAX_PLAN_SIZE, PlanStep
from plangate.references import Resolved, UnresolvedReference, resolve
from plangate.state import (
    ApprovalRequest,
    CurrentStep,
    PlanState,
    StepOutcome,
    outcome_from_state,
)


def budget_check(
    state: PlanState, runtime: Runtime[Any], *, governance: Governance
) -> dict[str, Any]:
    run = state["run"]
    index = run["cursor"]
    step = step_at(state, index)
    profile = governance.profile
    writer = TraceWriter(run, governance, runtime.stream_writer)
    current: CurrentStep = {"index": index, "route": "close", "args": step.args}
    stored = state.get("outcomes", {})
    # Only the dependencies' outcomes are read (and decoded), never the whole map.
    deps = {dep: outcome_from_state(stored[dep]) for dep in step.depends_on}
    unmet = [(dep, o["status"]) for dep, o in deps.items() if o["status"] != "ok"]
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
    else:
        _gate(state, step, current, governance=governance, writer=writer, deps=deps)
    return {"current": current, **writer.update()}


def _gate(
    state: PlanState,
    step: PlanStep,
    current: CurrentStep,
    *,
    governance: Governance,
    writer: TraceWriter,
    deps: dict[str, StepOutcome],
) -> None:
    """Route a step that may run: to `tool_exec`, to a person, or closed for refused args."""
    try:
        # References are all among the dependencies, which ended `ok`.
        outputs = {dep: o["output"] for dep, o in deps.items()}
        resolved = resolve(step.args, outputs, limit=MAX_PLAN_SIZE)
    except UnresolvedReference as exc:
        current["outcome"] = closed_outcome(
            step, "error", "unresolved_reference", f"{step.tool}: {exc}"
        )
        return
    current["args"] = resolved.args
    policy = governance.policy(step)
    if policy.lowered is not None:
        writer.emit(
            "policy_override",
            {
                "plan_action": policy.lowered,
                "action": policy.action,
                "action_source": policy.source,
            },
            step=step,
        )
    tool = governance.described(step.tool)
    problem = args_problem(tool, resolved.args) if policy.needs_approval and tool else None
    if problem is not None:
        field, message = problem
        current["outcome"] = closed_outcome(
            step,
            "error",
            "invalid_arguments",
            f"{step.tool}: invalid arguments: {field}: {message}",
        )
    elif policy.needs_approval:
        request = ask_for_approval(
            state,
            step,
            current["index"],
            resolved,
            governance=governance,
            policy=policy,
            writer=writer,
        )
        current.update({"route": "approve", "request": request})
    else:
        current["route"] = "execute"


_TRACED = (
    "request_id",
    "action",
    "action_source",
    "risk",
    "consequence",
    "expires_at",
    "args",
    "digest",
)
"""The request's fields the trace keeps (redacted as the profile says)."""


def ask_for_approval(
    state: PlanState,
    step: PlanStep,
    index: int,
    resolved: Resolved,
    *,
    governance: Governance,
    policy: StepPolicy,
    writer: TraceWriter,
) -> ApprovalRequest:
    """The approval request of `step`, traced as `approval_requested`: what the person deciding
    sees, the real args with references resolved (the trace gets a redacted copy), which args
    came from which step, the effective action and where it came from, the risk, and a digest
    binding all of it."""
    requested = governance.clock()
    args = resolved.args
    request: ApprovalRequest = {
        "type": "approval_request",
        "request_id": uuid.uuid4().hex,
        "trace_id": state["run"]["trace_id"],
        "step_id": step.id,
        "step_index": index,
        "tool": step.tool,
        "args": args,
        "action": policy.action,
        "action_source": policy.source,
        "irreversible": policy.irreversible,
        "domain": step.domain or "",
        "description": step.description,
        "risk": policy.risk,
        "consequence": consequence_of(step, policy, args),
        "profile": governance.profile.name,
        "digest": approval_digest(
            step.tool, args, policy.action, policy.risk, governance.fingerprint
        ),
        "requested_at": iso(requested),
        "expires_at": iso(requested + governance.profile.approval_timeout),
        "allowed_decisions": list(DECISIONS),
        "response_schema": governance.response_schema(step.tool),
    }
    if resolved.sources:
        request["references"] = resolved.sources
    fields: dict[str, Any] = dict(request)
    traced = {k: fields[k] for k in (*_TRACED, "references") if k in fields}
    writer.emit("approval_requested", traced, step=step)
    return request
