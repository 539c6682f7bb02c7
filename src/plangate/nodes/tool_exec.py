"""`tool_exec`: call the step's tool; the only node with side effects.

It has a sync body (`tool_exec`, for `invoke`/`stream`) and an async one (`atool_exec`, for
`ainvoke`/`astream`, where async tools are awaited natively); both share everything but the call.
A tool's exception never ends the run: the step becomes `error` with a failure context, and
`trace_emit` applies the profile's `on_error`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_stream_writer
from pydantic import BaseModel

from plangate._governance import Governance, TraceWriter, step_at
from plangate.budget import charge, crossed_warnings
from plangate.plan import PlanStep
from plangate.state import BudgetUsage, CurrentStep, PlanState, StepOutcome

__all__ = ("IDEMPOTENCY_KEY", "atool_exec", "idempotency_key", "tool_exec")

IDEMPOTENCY_KEY = "plangate_idempotency_key"
"""The run-config metadata key under which a tool finds its call's idempotency key."""
_KEYS = uuid.UUID("6f1c3b0e-8d2a-4c4e-9b57-2f0d3e4a1c90")


def idempotency_key(run_id: str, step_id: str) -> str:
    """The key of the call of step `step_id` in plan run `run_id`: the same every time that call
    is made again (a resume, a restart after a crash), different for any other call."""
    return str(uuid.uuid5(_KEYS, f"{run_id}/{step_id}"))


def jsonable(value: Any) -> Any:
    """A tool's output as plain JSON data, so that checkpoints and results stay JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


@dataclass(slots=True)
class _ToolCall:
    """One call in progress: what `tool_exec` and `atool_exec` share around the call itself."""

    state: PlanState
    current: CurrentStep
    step: PlanStep
    tool: BaseTool
    args: dict[str, Any]
    usage: BudgetUsage
    warned: list[str]
    writer: TraceWriter
    started: float

    @property
    def key(self) -> str:
        return idempotency_key(self.state["run"]["run_id"], self.step.id)

    @property
    def config(self) -> RunnableConfig:
        # A LangChain tool that takes a `config: RunnableConfig` parameter reads these.
        return {
            "run_name": self.step.tool,
            "metadata": {
                "plangate_step_id": self.step.id,
                "plangate_trace_id": self.state["run"]["trace_id"],
                IDEMPOTENCY_KEY: self.key,
            },
        }


def _begin(state: PlanState, governance: Governance) -> _ToolCall:
    current: CurrentStep = dict(state["current"])  # type: ignore[assignment]
    step = step_at(state, current["index"])
    run = state["run"]
    writer = TraceWriter(run, governance, get_stream_writer())
    usage = charge(run["usage"], step)
    warned = run["warned"]
    for warning in crossed_warnings(usage, step, governance.profile.budget, warned):
        writer.emit("budget_warning", warning, step=step)
        warned = [*warned, warning["tier"]]
    args = current.get("args", step.args)
    call = _ToolCall(
        state=state,
        current=current,
        step=step,
        tool=governance.tools[step.tool],
        args=args,
        usage=usage,
        warned=warned,
        writer=writer,
        started=0.0,  # set below, once the start event is out
    )
    writer.emit(
        "tool_call_start",
        {"args": args, "action": step.action, "idempotency_key": call.key},
        step=step,
    )
    call.started = time.perf_counter()
    return call


def _end(call: _ToolCall, *, output: Any = None, error: Exception | None = None) -> dict[str, Any]:
    duration = round((time.perf_counter() - call.started) * 1000, 3)
    step = call.step
    outcome: StepOutcome = {
        "step_id": step.id,
        "tool": step.tool,
        "status": "ok",
        "output": None,
        "error": None,
        "attempts": 1,
        "duration_ms": duration,
        "approval": call.current.get("approval"),
        "failure_context": None,
    }
    if error is None:
        outcome["output"] = jsonable(output)
        call.writer.emit(
            "tool_call_complete", {"duration_ms": duration, "output": outcome["output"]}, step=step
        )
    else:
        message = str(error) or type(error).__name__
        error_type = type(error).__name__
        outcome.update(
            {
                "status": "error",
                "error": message,
                "failure_context": {
                    "step_id": step.id,
                    "tool": step.tool,
                    "error_type": error_type,
                    "message": message,
                },
            }
        )
        call.writer.emit(
            "tool_call_error",
            {"error_type": error_type, "message": message, "duration_ms": duration},
            step=step,
        )
    call.current["outcome"] = outcome
    return {"current": call.current, **call.writer.update(usage=call.usage, warned=call.warned)}


def _only_async(tool: BaseTool) -> bool:
    return isinstance(tool, StructuredTool) and tool.func is None and tool.coroutine is not None


def tool_exec(state: PlanState, *, governance: Governance) -> dict[str, Any]:
    call = _begin(state, governance)
    try:
        if _only_async(call.tool):
            # A sync run calling an async-only tool: run it on an event loop of its own, in a
            # worker thread, since the caller's thread may already run a loop (a notebook).
            with ThreadPoolExecutor(max_workers=1) as pool:
                output = pool.submit(
                    asyncio.run, call.tool.ainvoke(call.args, config=call.config)
                ).result()
        else:
            output = call.tool.invoke(call.args, config=call.config)
    except Exception as exc:  # a failing tool is a step outcome, never a crashed run
        return _end(call, error=exc)
    return _end(call, output=output)


async def atool_exec(state: PlanState, *, governance: Governance) -> dict[str, Any]:
    call = _begin(state, governance)
    try:
        output = await call.tool.ainvoke(call.args, config=call.config)
    except Exception as exc:  # a failing tool is a step outcome, never a crashed run
        return _end(call, error=exc)
    return _end(call, output=output)
