"""`approval_interrupt`: pause for a human decision on one step of a wave.

Each step of a wave that needs approval is a task of its own, so several requests wait at once,
one interrupt each; a decision on one lets its step go on to `tool_exec` while the others wait.

LangGraph runs this node again from its first line when the run resumes, so it does nothing
before `interrupt()` that must not happen twice: the request was built by `budget_check` and the
tool runs only in `tool_exec`. A resume value that is not a valid decision is never raised on
here (LangGraph would keep that stale value attached to the interrupt and the run could never be
resumed); the node asks again with a fresh `interrupt()` whose request carries an `error`.
`PlangateGraph` rejects such values before they enter the graph in the first place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from langgraph.config import get_config
from langgraph.types import Command, Send, interrupt

from plangate._governance import Governance, TraceWriter
from plangate._time import iso, parse_iso
from plangate.approval import Decision, approval_digest, consequence_of, parse_decision
from plangate.errors import InvalidDecision
from plangate.hitl import approver_of, in_form, interrupt_mode_of
from plangate.identity._identity import Identity, unverified
from plangate.nodes._outcome import closed_outcome
from plangate.plan import PlanStep, step_from_state
from plangate.state import (
    ApprovalRecord,
    ApprovalRequest,
    GivenApproval,
    PlanReviewRequest,
    SignedDecision,
    StepReport,
    StepTask,
)

RECEIVED_AT = "received_at"
"""The key under which `PlangateGraph` stamps the time a decision arrived onto the resume value:
the node runs again from its first line on every resume, so the time of an earlier approval
(of several a request needs) must come with it, not from the clock of a later run."""


def ask_for_decision(
    request: ApprovalRequest | PlanReviewRequest, governance: Governance
) -> tuple[Decision, str]:
    """Interrupt until the resume value is a valid decision on this very request: the decision,
    and when it arrived."""
    tool = governance.described(request["tool"]) if request["tool"] else None
    config = get_config()
    mode = interrupt_mode_of(config)
    # Not this run's config: the node replays every earlier decision on resume, and who made
    # each was settled when it was admitted (`PlangateGraph`), with that run's config (the
    # user LangGraph's server vouched for, the approver it named). The value carries it: a
    # proof, or the name it gave. Read with this run's config, an earlier person's decision
    # would be judged as, or given to, whoever resumes now.
    gate = governance.gate(None)
    asked: Mapping[str, Any] = request
    while True:
        # The schema also rides on the Interrupt itself, where LangGraph clients look for it;
        # LangChain's keys let approval UIs made for its middleware show the request.
        value = interrupt(in_form(asked, mode), response_schema=request["response_schema"])
        received = governance.now()
        if isinstance(value, Mapping) and RECEIVED_AT in value:
            value = dict(value)
            received = str(value.pop(RECEIVED_AT))
        try:
            # A resume in LangChain's form names no approver: the run's config does.
            decision = parse_decision(
                value, tool=tool, request=request, approver=approver_of(config), gate=gate
            )
        except InvalidDecision as exc:
            asked = {**request, "error": exc.message}
            continue
        if decision.request_id in (None, request["request_id"]):
            return decision, received
        asked = {
            **request,
            "error": f"the decision answers request {decision.request_id!r}, which is not "
            "pending; decide on this request",
        }


@dataclass(frozen=True, slots=True)
class Decided:
    """How a request was decided: the request as last shown (an `edit` gives it new args), the
    decision that settled it, and every decision on the way, with when it arrived."""

    request: ApprovalRequest
    decision: Decision
    decisions: tuple[tuple[Decision, str], ...]

    @property
    def approvals(self) -> list[GivenApproval]:
        """The approvals that counted: those since the last edit, which started the count."""
        given: list[GivenApproval] = []
        for decision, at in self.decisions:
            if decision.decision == "edit":
                given = []
            # An anonymous one counts only where one is enough (`approvals_problem`).
            if decision.decision in ("approve", "edit"):
                approval: GivenApproval = {
                    "approver": decision.approver,
                    "decision": decision.decision,
                    "at": at,
                }
                if decision.identity is not None:
                    approval["identity"] = cast("Identity", decision.identity)
                given.append(approval)
        return given

    @property
    def proofs(self) -> list[SignedDecision]:
        """Every verified decision on the way, as its proof covers it."""
        return [signed for decision, _ in self.decisions if (signed := signed_decision(decision))]

    @property
    def effective(self) -> Decision:
        """The settling decision as one: an approval of a call an earlier approver edited
        approves that edit."""
        if self.decision.decision == "approve" and any(
            a["decision"] == "edit" for a in self.approvals
        ):
            return self.decision.model_copy(
                update={"decision": "edit", "args": self.request["args"]}
            )
        return self.decision


def signed_decision(decision: Decision) -> SignedDecision | None:
    """A verified decision as its proof covers it, for the approval record; `None` unverified.
    The request's id and digest are the decision's own: `bind_decision` and the gate bound it."""
    if decision.proof is None or decision.identity is None:
        return None
    return {
        "request_id": str(decision.request_id),
        "digest": decision.digest,
        "decision": decision.decision,
        "args": decision.args,
        "message": decision.message,
        "reason": decision.reason,
        "identity": cast("Identity", decision.identity),
        "proof": decision.proof,
    }


def who_decided(decision: Decision) -> dict[str, Any]:
    """What the approval record and the `approval_received` event say of who decided."""
    identity = decision.identity or unverified(decision.approver)
    said: dict[str, Any] = {"identity": identity, "verified_by": identity["verified_by"]}
    if decision.proof is not None:
        said["proof"] = decision.proof
    return said


def collect_decisions(request: ApprovalRequest, step: PlanStep, governance: Governance) -> Decided:
    """Ask until the request is settled: rejected (or answered), or approved by as many people
    as the profile wants for its risk (`approvals_required`). Between approvals it is asked
    again showing who approved so far; an `edit` makes it a request for the edited call (new
    args, consequence and digest), whose count starts at the edit's author: the others approved
    something else."""
    needed = request.get("approvals_required", 1)
    decisions: list[tuple[Decision, str]] = []
    while True:
        decision, received = ask_for_decision(request, governance)
        decisions.append((decision, received))
        decided = Decided(request, decision, tuple(decisions))
        if decision.decision not in ("approve", "edit") or len(decided.approvals) >= needed:
            return decided
        if decision.decision == "edit" and decision.args is not None:
            policy = governance.policy(step)
            request = {
                **request,
                "args": decision.args,
                "consequence": consequence_of(step, policy, decision.args),
                "digest": decided_digest(request, decision, governance),
            }
            request.pop("references", None)  # the edit's args are its own
        request = {**request, "approvals_so_far": decided.approvals}


def _wait_ms(request: ApprovalRequest, until: datetime) -> float:
    return round((until - parse_iso(request["requested_at"])).total_seconds() * 1000, 3)


def decided_digest(request: ApprovalRequest, decision: Decision, governance: Governance) -> str:
    """The digest of the call a decision lets run: the request's own, or for an `edit` that of
    the edited call (the same tool, action, risk and profile, the new args)."""
    if decision.decision != "edit" or decision.args is None:
        return request.get("digest", "")  # none on requests made before digests existed
    return approval_digest(
        request["tool"],
        decision.args,
        request["action"],
        request["risk"],
        governance.fingerprint,
        declaration=governance.declaration(request["tool"]),
    )


def approval_interrupt(task: StepTask, *, governance: Governance) -> Command:
    step = step_from_state(task["step"])
    decided = collect_decisions(task["request"], step, governance)
    request, decision = decided.request, decided.effective

    now = governance.clock()
    expired = now > parse_iso(request["expires_at"])
    record: ApprovalRecord = {
        "request_id": request["request_id"],
        "step_id": step.id,
        "tool": step.tool,
        "decision": "expired" if expired else decision.decision,
        "approver": decision.approver,
        "reason": decision.reason,
        "args": decision.args,
        "message": decision.message,
        "requested_at": request["requested_at"],
        "decided_at": iso(now),
        "wait_ms": _wait_ms(request, now),
        "digest": decided_digest(request, decision, governance),
        "identity": who_decided(decided.decision)["identity"],
    }
    if "approvals_required" in request:
        record["approvals"] = decided.approvals
    if decided.proofs:
        record["proofs"] = decided.proofs
    writer = TraceWriter.unnumbered(task["trace_id"], governance)
    # The writer's own list: the events emitted below are in the report.
    report: StepReport = {"index": task["index"], "events": writer.events}
    if expired:
        writer.emit(
            "approval_timeout",
            {"request_id": record["request_id"], "expires_at": request["expires_at"]},
            step=step,
        )
        outcome = closed_outcome(
            step,
            "expired",
            "approval_expired",
            f"the approval request expired at {request['expires_at']}",
        )
        report["outcome"] = {**outcome, "approval": record}
        return Command(update={"wave": [report]}, goto="trace_emit")

    *earlier, _ = decided.decisions
    # Each person's decision in the order they came; the last is the record's own.
    for given, at in [*earlier, (decided.decision, "")]:
        received = {
            "request_id": record["request_id"],
            "decision": given.decision,
            "approver": given.approver,
            "reason": given.reason,
            "args": given.args,
            "wait_ms": _wait_ms(request, parse_iso(at)) if at else record["wait_ms"],
            **who_decided(given),
        }
        writer.emit("approval_received", received, step=step)
    if decision.decision in ("approve", "edit"):
        # Without an edit, the args the request showed (references resolved, or edited by an
        # earlier approver).
        args = decision.args if decision.args is not None else request["args"]
        approved: StepTask = {**task, "args": args, "approval": record}
        # Recorded with its call's report: `trace_emit` need not run for it twice.
        return Command(update={"wave": [report]}, goto=Send("tool_exec", approved))
    if decision.decision == "reject":
        outcome = closed_outcome(
            step, "rejected", "rejected", decision.reason or "rejected by the approver"
        )
        report["outcome"] = {**outcome, "approval": record}
    else:  # respond: the human's message stands in for the tool's output
        report["outcome"] = {
            **closed_outcome(step, "ok", "", ""),
            "output": decision.message,
            "error": None,
            "failure_context": None,
            "approval": record,
        }
    return Command(update={"wave": [report]}, goto="trace_emit")
