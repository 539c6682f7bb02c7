"""What the model reads back from a governed tool call (part of the integrations:
`GovernanceMiddleware`).

A call that did not run is answered all the same, since the model waits for an answer to each of
its calls; the answer says why in words the model acts on, and, in `artifact` (never sent to the
model), in a word the application reads.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import ToolCall, ToolMessage
from langgraph.types import Command

__all__ = ("error_reply", "not_run", "tool_reply", "with_edit_notice")

_EDIT_NOTICE = (
    "Note: a person edited the arguments of this tool call before it ran; it ran with {args}."
)


def not_run(call: ToolCall, content: str, outcome: str, *, status: str = "error") -> ToolMessage:
    """The message the model reads in place of a call's result, when the call did not run.

    `artifact` (never sent to the model) says why, for the application: `outcome` is
    `blocked`, `rejected`, `expired` or `responded`.
    """
    return ToolMessage(
        content=content,
        name=call["name"],
        tool_call_id=call["id"],
        status=status,
        artifact={"plangate": {"outcome": outcome}},
    )


def error_reply(call: ToolCall, message: str) -> ToolMessage:
    """What the model reads when the tool raised and the profile goes on after errors."""
    return ToolMessage(
        content=f"Error: {message}", name=call["name"], tool_call_id=call["id"], status="error"
    )


def tool_reply(result: ToolMessage | Command[Any]) -> ToolMessage | None:
    """The `ToolMessage` in what a tool returned, if any."""
    if isinstance(result, ToolMessage):
        return result
    update = result.update if isinstance(result.update, dict) else {}
    found = [m for m in update.get("messages", []) if isinstance(m, ToolMessage)]
    return found[0] if found else None


def with_edit_notice(reply: ToolMessage, content: str, args: dict[str, Any]) -> ToolMessage:
    """`reply`, whose text is `content`, told that a person edited the call to `args`: the
    model asked for other args and must not take the result as theirs."""
    notice = _EDIT_NOTICE.format(args=json.dumps(args, default=str))
    return reply.model_copy(update={"content": f"{notice}\n\n{content}"})
