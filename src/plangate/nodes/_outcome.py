"""Outcomes of steps whose tool never ran."""

from __future__ import annotations

from plangate.plan import PlanStep
from plangate.state import StepOutcome, StepStatus


def closed_outcome(
    step: PlanStep, status: StepStatus, error_type: str, message: str
) -> StepOutcome:
    """The outcome of a step that ends without its tool running."""
    return {
        "step_id": step.id,
        "tool": step.tool,
        "status": status,
        "output": None,
        "error": message,
        "attempts": 0,
        "duration_ms": None,
        "approval": None,
        "failure_context": {
            "step_id": step.id,
            "tool": step.tool,
            "error_type": error_type,
            "message": message,
        },
        "mocked": False,
    }
