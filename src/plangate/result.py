"""`ExecutionResult`: the typed view of the `result` a finished run leaves in its state."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ("ApprovalInfo", "ExecutionResult", "FailureInfo", "StepResult")


class FailureInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step_id: str
    tool: str
    error_type: str
    message: str


class ApprovalInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str
    step_id: str
    tool: str
    decision: Literal["approve", "edit", "reject", "respond", "expired"]
    approver: str | None
    reason: str | None
    args: dict[str, Any] | None
    message: str | None
    requested_at: str
    decided_at: str
    wait_ms: float
    digest: str | None = None
    # Each approval that counted, where the profile wants several (`approvals_required`).
    approvals: list[dict[str, Any]] | None = None
    # Who decided and how they were known (`plangate.identity.Identity`), and the proof of
    # each verified decision on the request.
    identity: dict[str, Any] | None = None
    proofs: list[dict[str, Any]] | None = None
    # Set when the plan review's approval stood for this call.
    covered_by: Literal["plan_review"] | None = None


class StepResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step_id: str
    tool: str
    status: Literal["ok", "error", "rejected", "expired", "skipped", "blocked"]
    output: Any = None
    error: str | None = None
    attempts: int = 0
    duration_ms: float | None = None
    approval: ApprovalInfo | None = None
    failure_context: FailureInfo | None = None
    mocked: bool = False
    """The output came from a mock (offline, or a fallback), not from the real tool."""
    action: Literal["read", "propose", "execute"] | None = None
    """The effective action the tool ran under (`None`: the tool never ran)."""
    action_source: str | None = None
    """Who said so: `profile`, `tool`, `mcp`, `openapi`, `default` or `plan`."""


class ExecutionResult(BaseModel):
    """What a finished run produced; `ExecutionResult.model_validate(state["result"])`.

    Attributes:
        status: `success` (every step ok), `partial` (some), or `failed` (none).
        trace_id: The trace the run wrote to.
        steps: One outcome per plan step, in execution order.
        failure_context: The first failure (step id, tool, error type, message), if any.
        budget: Used and limit per tier (`total`, `domains`, `tools`) and `utilisation`.
        approvals: Every decision taken, who took it and when.
        signals: Golden signals: success and error rates, tool latency, approval wait, budget.
        halted: Why the plan stopped early, if it did.
        next_seq: The `seq` the trace continues from (pass as `trace_seq` to continue it).
    """

    model_config = ConfigDict(extra="forbid")

    status: Literal["success", "partial", "failed"]
    trace_id: str
    goal: str = ""
    profile: str = ""
    steps: list[StepResult]
    failure_context: FailureInfo | None = None
    budget: dict[str, Any]
    approvals: list[ApprovalInfo]
    signals: dict[str, Any]
    halted: str | None = None
    next_seq: int = 0
