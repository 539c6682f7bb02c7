"""`tool_exec`: call the step's tool; the only node with side effects.

A tool's exception never ends the run: the step becomes `error` with a failure context, and
`trace_emit` applies the profile's `on_error`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from langgraph.runtime import Runtime
from pydantic import BaseModel

from plangate._governance import Governance, TraceWriter, step_at
from plangate.budget import charge, crossed_warnings
from plangate.state import CurrentStep, PlanState, StepOutcome


def jsonable(value: Any) -> Any:
    """A tool's output as plain JSON data, so that checkpoints and results stay JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def tool_exec(state: PlanState, runtime: Runtime[Any], *, governance: Governance) -> dict[str, Any]:
    current: CurrentStep = dict(state["current"])  # type: ignore[assignment]
    step = step_at(state, current["index"])
    args = current.get("args", step.args)
    tool = governance.tools[step.tool]
    writer = TraceWriter(state, governance, runtime)
    usage = charge(state["usage"], step)
    warnings = crossed_warnings(usage, step, governance.profile.budget, state.get("warned", []))
    for warning in warnings:
        writer.emit("budget_warning", warning, step=step)

    writer.emit("tool_call_start", {"args": args, "action": step.action}, step=step)
    started = time.perf_counter()
    outcome: StepOutcome = {
        "step_id": step.id,
        "tool": step.tool,
        "status": "ok",
        "output": None,
        "error": None,
        "attempts": 1,
        "duration_ms": None,
        "approval": current.get("approval"),
        "failure_context": None,
    }
    try:
        output = tool.invoke(
            args,
            config={
                "run_name": step.tool,
                "metadata": {
                    "plangate_step_id": step.id,
                    "plangate_trace_id": state.get("trace_id"),
                },
            },
        )
    except Exception as exc:  # a failing tool is a step outcome, never a crashed run
        duration = round((time.perf_counter() - started) * 1000, 3)
        message = str(exc) or type(exc).__name__
        outcome.update(
            {
                "status": "error",
                "error": message,
                "duration_ms": duration,
                "failure_context": {
                    "step_id": step.id,
                    "tool": step.tool,
                    "error_type": type(exc).__name__,
                    "message": message,
                },
            }
        )
        writer.emit(
            "tool_call_error",
            {"error_type": type(exc).__name__, "message": message, "duration_ms": duration},
            step=step,
        )
    else:
        duration = round((time.perf_counter() - started) * 1000, 3)
        outcome.update({"output": jsonable(output), "duration_ms": duration})
        writer.emit(
            "tool_call_complete", {"duration_ms": duration, "output": outcome["output"]}, step=step
        )
    current["outcome"] = outcome
    return {
        "current": current,
        "usage": usage,
        "warned": [*state.get("warned", []), *(w["tier"] for w in warnings)],
        **writer.update(),
    }
