"""A gated tool call waits for a person (part of the integrations:
`GovernanceMiddleware.wrap_tool_call`).

The approval request was built by `after_model`, before the tool was at hand; the person is
asked here, with the tool's own argument schema, through the same `interrupt()` and decision
checks as a plan's step (`collect_decisions`). LangGraph runs this from its first line again on
resume, so nothing before `interrupt()` has an effect.
"""

from __future__ import annotations

from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.messages import ToolMessage

from plangate._governance import Governance, TraceWriter
from plangate._time import parse_iso
from plangate.approval import Decision, response_schema
from plangate.integrations.middleware._replies import not_run
from plangate.nodes.approval_interrupt import collect_decisions, who_decided
from plangate.plan import PlanStep
from plangate.state import ApprovalRequest

__all__ = ("decide",)


def decide(
    request: ToolCallRequest,
    approval: ApprovalRequest,
    step: PlanStep,
    writer: TraceWriter,
    *,
    governance: Governance,
) -> Decision | ToolMessage:
    """Wait for the person's decision on a gated call: the decision when the call runs
    (`approve` / `edit`), else the message the model reads.

    Raises:
        GraphInterrupt: No decision yet (the agent pauses).
    """
    # The request asks with the tool's own argument schema, and an `edit` is checked against it.
    tools = {step.tool: request.tool} if request.tool is not None else {}
    asking = Governance(
        profile=governance.profile, tools=tools, clock=governance.clock, signer=governance.signer
    )
    asked: ApprovalRequest = {**approval, "response_schema": response_schema(request.tool)}
    decision = collect_decisions(asked, step, asking).effective
    decided = governance.clock()
    call = request.tool_call
    if decided > parse_iso(approval["expires_at"]):
        writer.emit(
            "approval_timeout",
            {"request_id": approval["request_id"], "expires_at": approval["expires_at"]},
            step=step,
        )
        return not_run(
            call,
            f"The approval request for this call of {step.tool!r} expired at "
            f"{approval['expires_at']}; the tool was not called.",
            "expired",
        )
    wait = decided - parse_iso(approval["requested_at"])
    writer.emit(
        "approval_received",
        {
            "request_id": approval["request_id"],
            "decision": decision.decision,
            "approver": decision.approver,
            "reason": decision.reason,
            "args": decision.args,
            "wait_ms": round(wait.total_seconds() * 1000, 3),
            **who_decided(decision),
        },
        step=step,
    )
    if decision.decision == "reject":
        reason = f": {decision.reason}" if decision.reason else ""
        return not_run(
            call,
            f"A person rejected this call of {step.tool!r}{reason}. The tool was not "
            "called; do not call it again unless the user asks.",
            "rejected",
        )
    if decision.decision == "respond":
        return not_run(call, decision.message or "", "responded", status="success")
    return decision
