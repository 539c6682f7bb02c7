"""Integrations: `GovernanceMiddleware`, a plangate profile applied to a LangChain agent's own
tool calls.

`langchain.agents.create_agent` runs a loop: the model asks for tool calls, the tools run, the
model reads their results. This middleware governs that loop the way plangate governs a plan,
with no plan at all: each tool call the model asks for is one step.

Where each rule is applied, and why there:

- `after_model` (one task, right after the model's turn, never paused) goes through the turn's
  tool calls in the order the model listed them: a tool outside the allowlist is blocked, a call
  past a budget tier is blocked (`budget_exceeded`), the rest are charged (`budget_warning`
  once per tier crossing its threshold) and, when the profile gates their action, get their
  approval request, built here so that its id and timestamps are in state before anyone waits
  (`approval_requested`). A blocked call gets an error `ToolMessage` and is never sent to its
  tool. The state update also reserves the sequence numbers of every admitted call's events.
- `wrap_model_call` only notes what the agent's tools declare of themselves
  (`metadata["plangate"]`, MCP annotations), so that `after_model` governs each call by its
  tool's trusted action.
- `wrap_tool_call` (one task per call; LangGraph runs a turn's calls concurrently) pauses a
  gated call with `interrupt()`: all of a turn's gated calls wait at once, each answered by its
  interrupt id. It does nothing before `interrupt()` (the task runs again from its first line on
  resume), then applies the decision and runs the tool between `tool_call_start` and
  `tool_call_complete` / `tool_call_error`.

Everything that must survive a pause (budget usage, warned tiers, the trace id and the next
sequence number, the turn's admitted calls) is one channel of agent state, `plangate`, so it is
per thread and kept by the agent's checkpointer.

One module per part: `_rules` (what a call is governed as), `_admission` (`after_model`),
`_approval` and `_tool_call` (`wrap_tool_call`), `_replies` (what the model reads back),
`_state` (the `plangate` channel), `_middleware` (the class, wiring them to LangChain's hooks).
"""

from plangate.integrations.middleware._middleware import GovernanceMiddleware
from plangate.integrations.middleware._state import (
    CallTicket,
    GovernanceCounters,
    GovernanceState,
)

__all__ = (
    "CallTicket",
    "GovernanceCounters",
    "GovernanceMiddleware",
    "GovernanceState",
)
