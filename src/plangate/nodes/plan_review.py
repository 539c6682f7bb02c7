"""`plan_review`: one person's review of the whole plan, before any step runs.

Under a profile with `plan_review`, `plan_start` builds the review request (the pre-flight
report of the plan: every step's tool, args, effective action and its source, risk, and what
the review covers; the budget forecast per tier) and this node waits on it with one interrupt.
A plan none of whose steps would ask anyone runs without a review.

- `approve` pre-approves the steps the request showed as covered (those that would ask and whose
  risk is at most `covers`, unless they need several approvers or their tool always waits for its
  own decision), each as its row showed it: its action and source, irreversibility, risk and tool
  declaration (`REVIEWED`), all bound by the digest. Such a step runs without asking, its
  approval record saying `covered_by: plan_review` and naming the reviewer, unless any of them
  differs when it runs: then it asks on its own, and its request says what changed. The other
  steps still ask on their own.
- `reject` (or a decision that comes after the request expired) runs nothing: every step is
  closed `skipped`, with `failure_context.error_type` `plan_rejected` (or `plan_review_expired`),
  and the run ends `failed`.
- `edit` gives a new plan (in `args`), validated as any plan; this node then asks again, about
  the new plan.

The request was built before this node ran, so that its id and timestamps stay the same when
LangGraph runs the node again on resume.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Command

from plangate._channels import stored_outcome
from plangate._governance import Governance, TraceWriter
from plangate._time import iso, parse_iso
from plangate.nodes._outcome import closed_outcome, span_of_closed
from plangate.nodes.approval_interrupt import ask_for_decision, signed_decision, who_decided
from plangate.plan import Plan, parse_plan
from plangate.preflight import plan_report
from plangate.profiles import Risk
from plangate.state import PlanReviewRequest, PlanState, ReviewGrant, RunCounters

REVIEW_DECISIONS = ("approve", "edit", "reject")
"""`respond` answers a single call in a tool's place; a plan has no one output to stand for."""

_RISKS: tuple[Risk, ...] = ("low", "medium", "high")


REVIEWED = ("action", "action_source", "irreversible", "risk", "declaration")
"""What a covered step must still be when it runs for the review's approval to stand for it: as
the reviewer was shown it."""


def review_digest(
    plan: Plan, covers: str, fingerprint: str, steps: list[dict[str, Any]] | None = None
) -> str:
    """SHA-256 over what a reviewer approves: the whole plan, every row of steps shown (its
    action and source, irreversibility, risk, tool declaration, whether it is covered), what
    the review covers, and the profile's fingerprint."""
    canonical = json.dumps(
        ["plan_review", plan.to_input(), steps, covers, fingerprint],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def review_request(
    run: RunCounters, plan: Plan, governance: Governance, writer: TraceWriter
) -> PlanReviewRequest | None:
    """The plan review request of `plan`, traced as `approval_requested` (with no step); `None`
    when no step of the plan would ask anyone: a review approves calls, and there are none to
    approve."""
    profile = governance.profile
    assert profile.plan_review is not None
    covers = profile.plan_review.covers
    report = plan_report(governance, plan)
    steps = []
    for step, checked in zip(plan.steps, report.steps, strict=True):
        covered = checked.asks and profile.review_covers(step.tool, checked.risk)
        steps.append(
            {
                **checked.model_dump(mode="json"),
                "declaration": governance.declaration(step.tool),
                "description": step.description,
                "args": step.args,
                "depends_on": list(step.depends_on),
                "covered": covered,
                "asks": checked.asks and not covered,
            }
        )
    if not any(s["covered"] or s["asks"] for s in steps):
        return None
    risk: Risk = max((s.risk for s in report.steps), key=_RISKS.index, default="low")
    covered_count = sum(s["covered"] for s in steps)
    asking = sum(s["asks"] for s in steps)
    requested = governance.clock()
    request: PlanReviewRequest = {
        "type": "plan_review",
        "request_id": uuid.uuid4().hex,
        "trace_id": run["trace_id"],
        "step_id": None,
        "step_index": -1,
        "tool": None,
        "goal": plan.goal,
        "args": plan.to_input(),
        "steps": steps,
        "budget": [tier.model_dump(mode="json") for tier in report.budget],
        "problems": [problem.model_dump(mode="json") for problem in report.problems],
        "covers": covers,
        "risk": risk,
        "consequence": (
            f"If approved, plangate will run this plan of {_count(len(steps), 'step')}: "
            f"{_count(covered_count, 'step')} that would ask (risk up to {covers}) without "
            f"asking again; {_count(asking, 'step')} will still ask on "
            f"{'its' if asking == 1 else 'their'} own."
        ),
        "profile": profile.name,
        "order": report.order,
        "digest": review_digest(plan, covers, governance.fingerprint, steps),
        "requested_at": iso(requested),
        "expires_at": iso(requested + profile.approval_timeout),
        "allowed_decisions": list(REVIEW_DECISIONS),
        "response_schema": _review_schema(governance),
    }
    if run.get("started_by") is not None:
        request["started_by"] = run["started_by"]
    writer.emit(
        "approval_requested",
        {
            "request_id": request["request_id"],
            "kind": "plan_review",
            "covers": covers,
            "steps": len(steps),
            "covered": [s["step_id"] for s in steps if s["covered"]],
            "digest": request["digest"],
            "expires_at": request["expires_at"],
        },
    )
    return request


def _count(number: int, word: str) -> str:
    return f"{number} {word}" + ("" if number == 1 else "s")


def _review_schema(governance: Governance) -> dict[str, Any]:
    schema = governance.response_schema(None)
    schema["description"] = (
        "A decision on the plan review: approve (the steps it covers run without asking), "
        "edit (with args: a new plan, reviewed again) or reject (with a reason: nothing runs)."
    )
    schema["properties"]["decision"]["enum"] = list(REVIEW_DECISIONS)
    schema["properties"]["args"] = {
        "anyOf": [{"type": "object"}, {"type": "null"}],
        "description": "The new plan ({goal, steps}), for an edit.",
    }
    return schema


def plan_review(state: PlanState, runtime: Runtime[Any], *, governance: Governance) -> Command:
    request = state["review"]
    assert request is not None
    decision, _received = ask_for_decision(request, governance)

    run = state["run"]
    writer = TraceWriter(run, governance, runtime.stream_writer)
    now = governance.clock()
    wait_ms = round((now - parse_iso(request["requested_at"])).total_seconds() * 1000, 3)
    if now > parse_iso(request["expires_at"]):
        writer.emit(
            "approval_timeout",
            {"request_id": request["request_id"], "expires_at": request["expires_at"]},
        )
        return _nothing_runs(
            state,
            governance,
            writer,
            "plan_review_expired",
            f"the plan review request expired at {request['expires_at']}",
        )
    covered = [s["step_id"] for s in request["steps"] if s["covered"]]
    writer.emit(
        "approval_received",
        {
            "request_id": request["request_id"],
            "kind": "plan_review",
            "decision": decision.decision,
            "approver": decision.approver,
            "reason": decision.reason,
            "args": decision.args,
            "wait_ms": wait_ms,
            **who_decided(decision),
            **({"covered": covered} if decision.decision == "approve" else {}),
        },
    )
    if decision.decision == "reject":
        why = decision.reason or "rejected by the reviewer"
        return _nothing_runs(
            state, governance, writer, "plan_rejected", f"the plan was rejected: {why}"
        )
    if decision.decision == "edit":
        plan = parse_plan(decision.args)  # `parse_decision` has checked it is a valid plan
        again = review_request(run, plan, governance, writer)
        update = {"plan": plan.to_state(), "review": again, **writer.update()}
        # A new plan none of whose steps would ask has nothing left to review.
        return Command(update=update, goto="plan_review" if again else "budget_check")
    grant: ReviewGrant = {
        "request_id": request["request_id"],
        "approver": decision.approver,
        "requested_at": request["requested_at"],
        "decided_at": iso(now),
        "wait_ms": wait_ms,
        "identity": who_decided(decision)["identity"],
    }
    signed = signed_decision(decision)
    if signed is not None:
        grant["proofs"] = [signed]
    # The rows shown as covered go with the plan, written once: `budget_check` lets a step run
    # on the review's approval only while it is what its row showed. In the run's counters they
    # would be written again with every step.
    shown = {s["step_id"]: {k: s[k] for k in REVIEWED} for s in request["steps"] if s["covered"]}
    update = {"review": None, "plan": {**state["plan"], "covered": shown}}
    return Command(update={**update, **writer.update(review=grant)}, goto="budget_check")


def _nothing_runs(
    state: PlanState, governance: Governance, writer: TraceWriter, error_type: str, why: str
) -> Command:
    """Close every step `skipped` (the review did not let the plan run) and finish the run."""
    plan = Plan.from_state(state["plan"])
    outcomes = {}
    for step in plan.steps:
        outcome = closed_outcome(step, "skipped", error_type, why)
        outcomes[step.id] = stored_outcome(outcome)
        writer.emit("step_skipped", {"reason": why, "error_type": error_type}, step=step)
        span_of_closed(governance, state["run"], step, outcome)
    update = {"review": None, "outcomes": outcomes}
    changes = {"cursor": len(plan.steps), "halted": why}
    return Command(update={**update, **writer.update(**changes)}, goto="finalize")
