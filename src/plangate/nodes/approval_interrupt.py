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

from langgraph.types import Command, Send, interrupt

from plangate._governance import Governance, TraceWriter, parse_iso
from plangate.approval import Decision, approval_digest, parse_decision
from plangate.errors import InvalidDecision
from plangate.nodes._outcome import closed_outcome
from plangate.plan import step_from_state
from plangate.state import ApprovalRecord, ApprovalRequest, StepReport, StepTask


def ask_for_decision(request: ApprovalRequest, governance: Governance) -> Decision:
    """Interrupt until the resume value is a valid decision on this very request."""
    tool = governance.described(request["tool"])
    asked = request
    while True:
        # The schema also rides on the Interrupt itself, where LangGraph clients look for it.
        value = interrupt(asked, response_schema=request["response_schema"])
        try:
            decision = parse_decision(value, tool=tool, request=request)
        except InvalidDecision as exc:
            asked = {**request, "error": exc.message}
            continue
        if decision.request_id in (None, request["request_id"]):
            return decision
        asked = {
            **request,
            "error": f"the decision answers request {decision.request_id!r}, which is not "
            "pending; decide on this request",
        }


def decided_digest(request: ApprovalRequest, decision: Decision, governance: Governance) -> str:
    """The digest of the call a decision lets run: the request's own, or for an `edit` that of
    the edited call (the same tool, action, risk and profile, the new args)."""
    if decision.decision != "edit" or decision.args is None:
        return request.get("digest", "")  # none on requests made before digests existed
    return approval_digest(
        request["tool"], decision.args, request["action"], request["risk"], governance.fingerprint
    )


def approval_interrupt(task: StepTask, *, governance: Governance) -> Command:
    request = task["request"]
    decision = ask_for_decision(request, governance)

    step = step_from_state(task["step"])
    decided = governance.clock()
    expired = decided > parse_iso(request["expires_at"])
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
        "decided_at": governance.now(),
        "wait_ms": round((decided - parse_iso(request["requested_at"])).total_seconds() * 1000, 3),
        "digest": decided_digest(request, decision, governance),
    }
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

    writer.emit(
        "approval_received",
        {k: record[k] for k in ("request_id", "decision", "approver", "reason", "args", "wait_ms")},
        step=step,
    )
    if decision.decision in ("approve", "edit"):
        # Without an edit, the args the request showed (references resolved).
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
