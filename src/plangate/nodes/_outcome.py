"""Outcomes of steps whose tool never ran."""

from __future__ import annotations

import time

from plangate._governance import Governance
from plangate.plan import PlanStep
from plangate.state import RunCounters, StepOutcome, StepStatus


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


def span_of_closed(
    governance: Governance, run: RunCounters, step: PlanStep, outcome: StepOutcome
) -> None:
    """The telemetry span of a step that ended without a call: no length, when it ended."""
    if governance.telemetry is not None and "telemetry" in run:
        now = time.time_ns()
        governance.telemetry.step(run["telemetry"], step, outcome, start_ns=now, end_ns=now)
