"""Around each tool call: the decision, then the call between its start and end events (part of
the integrations: `GovernanceMiddleware.wrap_tool_call`).

LangGraph runs a turn's calls as concurrent tasks, so each writes its events at the numbers
`after_model` reserved for it, and a gated call that did not run gives back its charge through
the `plangate` channel's reducer (a `Settlement`) rather than by writing the counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.messages import ToolMessage
from langgraph.types import Command

from plangate._governance import Governance, TraceWriter
from plangate.integrations.middleware._approval import decide
from plangate.integrations.middleware._replies import (
    error_reply,
    not_run,
    tool_reply,
    with_edit_notice,
)
from plangate.integrations.middleware._state import GovernanceCounters, Settlement, run_counters
from plangate.plan import PlanStep

__all__ = ("Admitted", "admit_call", "finish_call")


@dataclass(frozen=True, slots=True)
class Admitted:
    """A call cleared to run: what `wrap_tool_call` needs around the tool itself."""

    request: ToolCallRequest
    writer: TraceWriter
    step: PlanStep
    edited: bool
    started: float


def admit_call(
    request: ToolCallRequest, *, governance: Governance
) -> Admitted | ToolMessage | Command[Any]:
    """Ask for a decision when the call waits for one, then emit `tool_call_start`.

    Returns the call to run, or what the model reads instead when it does not run. Nothing
    before `interrupt()` (in `decide`) has an effect: on resume this runs again from its first
    line.
    """
    call = request.tool_call
    counters: GovernanceCounters | None = (request.state or {}).get("plangate")
    ticket = counters["calls"].get(call["id"] or "") if counters else None
    if counters is None or ticket is None or ticket["tool"] != call["name"]:
        # Not a call `after_model` saw under this name (added or renamed after it ran).
        return not_run(
            call,
            f"Blocked: this call of {call['name']!r} was not admitted by the agent's "
            "governance; the tool was not called.",
            "blocked",
        )
    step = PlanStep(
        id=call["id"] or "",
        tool=ticket["tool"],
        args=call["args"],
        action=ticket["action"],
        domain=ticket["domain"],
    )
    writer = TraceWriter(
        run_counters(counters, ticket["seq"]), governance, request.runtime.stream_writer
    )
    edited = False
    if "request" in ticket:
        outcome = decide(request, ticket["request"], step, writer, governance=governance)
        if isinstance(outcome, ToolMessage):
            settlement: Settlement = {"settle": step.id, "next_seq": writer.next_seq}
            return Command(update={"messages": [outcome], "plangate": settlement})
        if outcome.decision == "edit":
            edited = True
            request = request.override(tool_call={**call, "args": outcome.args or {}})
    writer.emit(
        "tool_call_start",
        {"args": request.tool_call["args"], "action": step.action},
        step=step,
    )
    return Admitted(request, writer, step, edited, time.perf_counter())


def finish_call(
    admitted: Admitted, outcome: ToolMessage | Command[Any] | Exception, *, halt: bool
) -> ToolMessage | Command[Any]:
    """Emit the call's end (`outcome` is what the tool returned, or what it raised) and return
    what the model reads.

    Raises:
        Exception: What the tool raised, when `halt` (the profile's `on_error: halt`).
    """
    duration = round((time.perf_counter() - admitted.started) * 1000, 3)
    writer, step, call = admitted.writer, admitted.step, admitted.request.tool_call
    if isinstance(outcome, Exception):
        message = str(outcome) or type(outcome).__name__
        writer.emit(
            "tool_call_error",
            {"error_type": type(outcome).__name__, "message": message, "duration_ms": duration},
            step=step,
        )
        if halt:
            raise outcome
        return error_reply(call, message)
    reply = tool_reply(outcome)
    content = reply.content if reply is not None else None
    if reply is not None and reply.status == "error":
        writer.emit(
            "tool_call_error",
            {"error_type": "tool_error", "message": content, "duration_ms": duration},
            step=step,
        )
    else:
        writer.emit("tool_call_complete", {"duration_ms": duration, "output": content}, step=step)
    if admitted.edited and isinstance(outcome, ToolMessage) and isinstance(content, str):
        return with_edit_notice(outcome, content, call["args"])
    return outcome
