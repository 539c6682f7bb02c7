"""After the model's turn: each new tool call admitted or blocked (part of the integrations:
`GovernanceMiddleware.after_model`).

`after_model` is one task, right after the model's turn, never paused, so every rule that needs
no person is applied here, before any tool runs: the allowlist, the budget (a call is charged
when admitted), the approval request of a gated call (built here so that its id and timestamps
are in state before anyone waits), and the sequence numbers of every admitted call's events,
reserved in one place because the turn's calls then run concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langgraph.runtime import Runtime
from pydantic import ValidationError

from plangate._files import dotted, first_error
from plangate._governance import Governance, TraceWriter
from plangate.budget import charge, crossed_warnings, exceeded_tier
from plangate.integrations.middleware._replies import not_run
from plangate.integrations.middleware._rules import CallRules
from plangate.integrations.middleware._state import (
    CallTicket,
    GovernanceCounters,
    GovernanceState,
    new_counters,
    run_counters,
)
from plangate.nodes.budget_check import ask_for_approval
from plangate.plan import PlanStep
from plangate.references import Resolved

__all__ = ("admit_turn",)

_RAN = 2
"""Events of a call that runs: `tool_call_start`, then `tool_call_complete` or `_error`."""
_GATED = 3
"""Events of a gated call that runs: `approval_received` before the two of `_RAN`."""


def admit_turn(
    state: GovernanceState[Any], runtime: Runtime[Any], *, rules: CallRules, governance: Governance
) -> dict[str, Any] | None:
    """Admit or block each new tool call, charge the budget, build approval requests, and
    reserve the event numbers of the admitted calls.

    Returns:
        The `plangate` counters, and an error `ToolMessage` for each blocked call; `None` when
        the model asked for no tool.
    """
    pending = _pending_calls(state["messages"])
    if not pending:
        return None
    counters = state.get("plangate") or new_counters()
    profile = governance.profile
    run = run_counters(counters, counters["seq"])
    writer = TraceWriter(run, governance, runtime.stream_writer)
    usage, warned = counters["usage"], counters["warned"]
    blocked: list[ToolMessage] = []
    admitted: list[tuple[str, CallTicket]] = []
    for index, call in pending:
        try:
            step = PlanStep(
                id=call["id"] or "",
                tool=call["name"],
                args=call["args"],
                domain=rules.domain_of(call["name"]),
            )
        except ValidationError as exc:  # args that are not plain JSON within the limits
            blocked.append(_refuse_args(call, exc, writer, rules))
            continue
        policy = rules.policy(step)
        exceeded = exceeded_tier(usage, step, profile.budget)
        if not profile.allows(step.tool) or exceeded is not None:
            blocked.append(_block(call, step, exceeded, writer, governance))
            continue
        usage = charge(usage, step)
        for warning in crossed_warnings(usage, step, profile.budget, warned):
            writer.emit("budget_warning", warning, step=step)
            warned = [*warned, warning["tier"]]
        ticket: CallTicket = {
            "tool": step.tool,
            "domain": step.domain or "",
            "action": policy.action,
            "seq": 0,
            "size": _RAN,
        }
        if policy.needs_approval:
            request = ask_for_approval(
                run,
                step,
                index,
                # A model's call has no plan to reference: its args are taken as they are.
                Resolved(step.args),
                governance=governance,
                policy=policy,
                writer=writer,
            )
            ticket.update({"size": _GATED, "request": request})
        admitted.append((step.id, ticket))
    seq = writer.next_seq
    # Calls that run now are numbered first, calls that wait for a person after them.
    for _, ticket in sorted(admitted, key=lambda item: "request" in item[1]):
        ticket["seq"], seq = seq, seq + ticket["size"]
    update: GovernanceCounters = {
        "trace_id": counters["trace_id"],
        "seq": seq,
        "usage": usage,
        "warned": warned,
        "calls": dict(admitted),
    }
    return {"plangate": update, **({"messages": blocked} if blocked else {})}


def _pending_calls(messages: Sequence[AnyMessage]) -> list[tuple[int, ToolCall]]:
    """The latest AI message's tool calls that no `ToolMessage` answers yet, with their index."""
    answered: set[str] = set()
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return [
                (index, call)
                for index, call in enumerate(message.tool_calls)
                if call["id"] not in answered
            ]
        if isinstance(message, ToolMessage):
            answered.add(message.tool_call_id)
    return []


def _block(
    call: ToolCall,
    step: PlanStep,
    exceeded: dict[str, Any] | None,
    writer: TraceWriter,
    governance: Governance,
) -> ToolMessage:
    profile = governance.profile
    if not profile.allows(step.tool):
        error_type = "tool_not_allowed"
        reason = f"tool {step.tool!r} is not in the allowlist of profile {profile.name!r}"
    else:
        assert exceeded is not None
        writer.emit("budget_exceeded", exceeded, step=step)
        error_type = "budget_exceeded"
        reason = (
            f"budget tier {exceeded['tier']} is used up "
            f"({exceeded['used']}/{exceeded['limit']} calls)"
        )
    writer.emit("step_blocked", {"reason": reason, "error_type": error_type}, step=step)
    return not_run(
        call,
        f"Blocked: {reason}. The tool was not called; do not call it again.",
        "blocked",
    )


def _refuse_args(
    call: ToolCall, error: ValidationError, writer: TraceWriter, rules: CallRules
) -> ToolMessage:
    """Block a call whose arguments a plan step could not hold (not plain JSON, past a size
    limit): the model reads why, and the agent's run goes on."""
    loc, msg = first_error(error)
    reason = f"invalid arguments: {dotted(loc)}: {msg}"
    # Built without validation: the args are what failed it, and the event is redacted.
    step = PlanStep.model_construct(
        id=call["id"] or "", tool=call["name"], args={}, domain=rules.domain_of(call["name"])
    )
    writer.emit("step_blocked", {"reason": reason, "error_type": "invalid_arguments"}, step=step)
    return not_run(
        call, f"Blocked: {reason}. The tool was not called; fix the arguments.", "blocked"
    )
