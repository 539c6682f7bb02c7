"""Integrations: `as_tool`, plangate as one LangChain tool that an agent calls with a whole plan.

The tool runs the governed graph inside the agent's own run, as a subgraph under the agent's
checkpointer: an approval pauses the agent with plangate's approval request, resuming the agent
resumes the plan where it stopped, and the model gets back a compact summary of the result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException

from plangate._time import utc_now
from plangate.adapters.registry import ToolsLike
from plangate.errors import PlangateUsageError, PlanValidationError
from plangate.graph import RECURSION_LIMIT, build_graph
from plangate.plan import Plan, parse_plan
from plangate.profiles import Profile

__all__ = ("as_tool", "summarize_result")

DEFAULT_NAME = "execute_plan"
MAX_OUTPUT_CHARS = 400
"""Longest step output or error, as JSON text, that a summary carries whole."""


def as_tool(
    tools: ToolsLike,
    *,
    profile: str | Path | Profile = "enterprise",
    mocks: ToolsLike = (),
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    name: str = DEFAULT_NAME,
    description: str | None = None,
    max_output_chars: int = MAX_OUTPUT_CHARS,
) -> StructuredTool:
    """Wrap a governed plangate graph as a LangChain tool that runs a plan in one call.

    The model calls the tool with a plan (`goal`, `steps`, `order`: the JSON schema of `Plan`). The
    plan runs inside the agent's run, under the agent's checkpointer: a step that needs approval
    interrupts the *agent* with plangate's `ApprovalRequest` as the interrupt value, and
    `agent.invoke(Command(resume={"decision": "approve"}), config)` goes on from that step (the
    steps already run do not run again). Steps of one wave that need approval interrupt the
    agent together, one interrupt each: resume with `Command(resume={interrupt_id: decision,
    ...})`, as LangGraph asks whenever several interrupts are pending. Each call of the tool
    keeps its own nested state, so one agent run can execute several plans. The agent needs a
    checkpointer for approvals.

    The model gets back a JSON summary (`summarize_result`): the run's status, each step's
    status with a shortened output or error, why it halted, and the budget used. The full
    `ExecutionResult` dict is the `ToolMessage.artifact`. A malformed plan comes back to the
    model as an error message naming the step and field, so that it can fix the plan.

    Args:
        tools: The tools plans may call (as for `build_graph`).
        profile: The governance profile (as for `build_graph`).
        mocks: Stand-ins for tools (as for `build_graph`).
        clock: The current UTC time (as for `build_graph`; inject one in tests).
        sleep: Waits between retries (as for `build_graph`).
        name: The tool's name, as the model sees it.
        description: The tool's description; by default one that names the tools a plan may
            call and their arguments.
        max_output_chars: Longest step output or error (as JSON text) the summary keeps whole;
            longer ones are cut.

    Returns:
        A `StructuredTool` with a sync and an async body, for `create_agent(tools=[...])`.

    Raises:
        ProfileError: The profile is unknown or invalid.
        PlangateUsageError: Two tools share a name, or something is not a tool.

    Examples:
        >>> from plangate import demo_toolkit
        >>> from plangate.integrations.as_tool import as_tool
        >>> tool = as_tool(demo_toolkit("/tmp/outbox.db"), profile="smb")
        >>> tool.name, sorted(tool.args)
        ('execute_plan', ['goal', 'order', 'steps'])
    """
    graph = build_graph(
        tools, profile=profile, checkpointer=None, mocks=mocks, clock=clock, sleep=sleep
    )

    def run(config: RunnableConfig, **fields: Any) -> tuple[str, dict[str, Any]]:
        out = graph.invoke({"plan": _plan(fields, name)}, _nested(config))
        return _answer(out, max_output_chars)

    async def arun(config: RunnableConfig, **fields: Any) -> tuple[str, dict[str, Any]]:
        out = await graph.ainvoke({"plan": _plan(fields, name)}, _nested(config))
        return _answer(out, max_output_chars)

    return StructuredTool(
        name=name,
        description=description or _describe(graph.tools),
        args_schema=_plan_schema(),
        func=run,
        coroutine=arun,
        response_format="content_and_artifact",
        handle_tool_error=True,
    )


def summarize_result(
    result: Mapping[str, Any], *, max_output_chars: int = MAX_OUTPUT_CHARS
) -> dict[str, Any]:
    """A compact view of an `ExecutionResult` dict, small enough to hand back to a model.

    Each step keeps its id, tool and status, its output when `ok` and its error if any, each
    cut to `max_output_chars` characters of JSON; the summary adds why the run halted (if it
    did), the total calls used against their limit, and the trace id.

    Examples:
        >>> summary = summarize_result({"status": "success", "trace_id": "t", "halted": None,
        ...     "budget": {"total": {"used": 1, "limit": 50}},
        ...     "steps": [{"step_id": "a", "tool": "x.y", "status": "ok", "output": "hi"}]})
        >>> summary["steps"], summary["budget"]
        ([{'id': 'a', 'tool': 'x.y', 'status': 'ok', 'output': 'hi'}], {'used': 1, 'limit': 50})
    """
    steps = []
    for step in result["steps"]:
        entry: dict[str, Any] = {
            "id": step["step_id"],
            "tool": step["tool"],
            "status": step["status"],
        }
        if step["status"] == "ok":
            entry["output"] = _shorten(step.get("output"), max_output_chars)
        if step.get("error"):
            entry["error"] = _shorten(step["error"], max_output_chars)
        steps.append(entry)
    summary: dict[str, Any] = {"status": result["status"], "steps": steps}
    if result.get("halted"):
        summary["halted"] = result["halted"]
    total = result.get("budget", {}).get("total")
    if total:
        summary["budget"] = {"used": total["used"], "limit": total["limit"]}
    summary["trace_id"] = result["trace_id"]
    return summary


def _plan(fields: Mapping[str, Any], tool: str) -> dict[str, Any]:
    # Raised as a `ToolException`, the error goes back to the model (`handle_tool_error`), which
    # can fix the plan; any other exception would end the agent's run.
    try:
        return parse_plan(dict(fields), source="invalid plan").to_input()
    except PlanValidationError as exc:
        raise ToolException(f"{exc}. Fix the plan and call {tool} again.") from None


def _nested(config: RunnableConfig) -> RunnableConfig:
    """The config the graph runs with inside the tool call.

    The agent's config carries its checkpointer and this tool call's checkpoint namespace, so
    the graph runs as a subgraph of the agent. An agent's recursion limit counts the agent's own
    steps, not the plan's (about four per step), so the graph keeps its own.
    """
    return {**config, "recursion_limit": RECURSION_LIMIT}


def _answer(out: Mapping[str, Any], max_output_chars: int) -> tuple[str, dict[str, Any]]:
    result = out.get("result")
    if result is None:
        # Only a graph run on its own returns with an interrupt; nested in a parent's run, the
        # interrupt is raised to the parent, which can be resumed.
        raise PlangateUsageError(
            "the plan stopped for an approval, but the tool was not called inside a graph "
            "that can pause and resume",
            hint="give the tool to an agent or graph compiled with a checkpointer",
        )
    summary = summarize_result(result, max_output_chars=max_output_chars)
    return json.dumps(summary, ensure_ascii=False, default=str), result


def _shorten(value: Any, limit: int) -> Any:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return value
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def _plan_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema()
    schema["description"] = "A plan: a goal and the ordered tool calls that reach it."
    return schema


def _describe(tools: Mapping[str, BaseTool]) -> str:
    listed = "\n".join(
        f"- {name}({', '.join(tool.args)})"
        + (f": {_first_line(tool.description)}" if tool.description else "")
        for name, tool in tools.items()
    )
    return (
        "Run a plan: an ordered list of tool calls, under governance (budgets, human "
        "approval of risky steps, a trace). Give each step an id, the tool, its args, and its "
        "action: 'read' (no side effect), 'propose' (a draft a person will see) or 'execute' "
        "(changes the world: sends, books, pays), with a description a person approving it "
        "will read. Steps that change something run in the order listed. Use depends_on to "
        "run a step only if others succeeded. Returns the status "
        "of the plan and of each step with its output.\n"
        f"Tools a plan may call:\n{listed}"
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
