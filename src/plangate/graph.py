"""`build_graph`: wiring only. Each node lives in its own module under `plangate.nodes`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from plangate._governance import Governance
from plangate._time import utc_now
from plangate.adapters.registry import ToolsLike, tool_registry
from plangate.identity._proof import DecisionSigner
from plangate.nodes import (
    approval_interrupt,
    atool_exec,
    budget_check,
    finalize,
    plan_review,
    plan_start,
    tool_exec,
    trace_emit,
)
from plangate.nodes.plan_start import after_plan_start
from plangate.nodes.trace_emit import next_after_trace
from plangate.profiles import Profile, load_profile
from plangate.runs.anchors import AnchorSink
from plangate.runs.guarded_graph import PlangateGraph
from plangate.state import PlanInput, PlanState, StepTask
from plangate.telemetry import Telemetry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ("build_graph",)

RECURSION_LIMIT = 1_000_000


def build_graph(
    tools: ToolsLike,
    *,
    profile: str | Path | Profile = "enterprise",
    checkpointer: BaseCheckpointSaver[Any] | bool | None = None,
    mocks: ToolsLike = (),
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    name: str = "plangate",
    tracer_provider: TracerProvider | None = None,
    anchors: AnchorSink | None = None,
    signer: DecisionSigner | None = None,
) -> PlangateGraph:
    """Compile the governed plan-execution graph.

    Args:
        tools: LangChain `BaseTool`s or plain callables, as a sequence or a name -> tool mapping.
        profile: A built-in profile name, a profile file path, or a `Profile`.
        checkpointer: Where runs pause and resume (see `open_checkpointer`); `None` compiles
            the graph for use as a subgraph under a parent's checkpointer.
        mocks: Stand-ins for tools, by the same names (`mock_tools("fixtures.yaml")`, or any
            tools): called instead of the tools when the profile is `offline`, and when a tool
            cannot be reached under `mock_fallback`.
        clock: Returns the current UTC time; approval expiry reads it (inject one in tests).
        sleep: Waits between retries of a tool call (inject one in tests; async runs use
            `asyncio.sleep` unless this is replaced).
        name: The graph's name, as shown in streams and traces of a parent graph.
        tracer_provider: An OpenTelemetry tracer provider: each run becomes a trace in it,
            each step a span (`plangate.telemetry`); the profile's `telemetry: otel` uses the
            global one.
        anchors: Where each thread's latest trace hash is appended, outside the checkpoint
            database (`FileAnchors(path)`, `OtelAnchors()`): `verify_trace` then finds a
            rollback of whole checkpoints, which the hash chain alone cannot.
        signer: The project's signing key (`DecisionSigner`): a decision carrying a proof made
            with it is verified (`plangate.identity`), as is a LangGraph server user plangate's
            auth handler vouched for; every other decision is `unverified`, and the profile's
            `identity_required` refuses those where it says.

    Returns:
        A `PlangateGraph` (a LangGraph `CompiledStateGraph`). Invoke it with
        `{"plan": plan}` and a config naming a `thread_id`.

    Raises:
        ProfileError: The profile is unknown or invalid.
        PlangateUsageError: Two tools share a name, or something is not a tool.

    Examples:
        >>> from plangate import build_graph, open_checkpointer
        >>> def echo(text: str) -> str:
        ...     return text
        >>> graph = build_graph({"echo.say": echo}, profile="technical",
        ...                     checkpointer=open_checkpointer("sqlite:///:memory:"))
        >>> out = graph.invoke({"plan": {"goal": "hi", "steps": [{"tool": "echo.say",
        ...     "args": {"text": "hi"}}]}}, {"configurable": {"thread_id": "t1"}})
        >>> out["result"]["status"], out["result"]["steps"][0]["output"]
        ('success', 'hi')
    """
    registry = tool_registry(tools)
    rules = load_profile(profile)
    governance = Governance(
        profile=rules,
        telemetry=Telemetry.of(rules, tracer_provider),
        anchors=anchors,
        signer=signer,
        tools=registry,
        mocks=tool_registry(mocks),
        clock=clock,
        sleep=sleep,
    )

    builder = StateGraph(PlanState, input_schema=PlanInput)
    for node in (plan_start, finalize):
        builder.add_node(node.__name__, partial(node, governance=governance))
    # `budget_check` sends each step of a wave to a task of its own (`StepTask`); `trace_emit`
    # records what they report, after each superstep of the wave.
    builder.add_node(
        "budget_check",
        partial(budget_check, governance=governance),
        destinations=("approval_interrupt", "tool_exec", "trace_emit"),
    )
    builder.add_node(
        "approval_interrupt",
        partial(approval_interrupt, governance=governance),
        input_schema=StepTask,
        destinations=("tool_exec", "trace_emit"),
    )
    # Sync and async bodies, so that `ainvoke` awaits async tools natively.
    builder.add_node(
        "tool_exec",
        RunnableLambda(
            partial(tool_exec, governance=governance),
            afunc=partial(atool_exec, governance=governance),
            name="tool_exec",
        ),
        input_schema=StepTask,
    )
    builder.add_node("trace_emit", partial(trace_emit, governance=governance))
    builder.add_edge(START, "plan_start")
    builder.add_conditional_edges("plan_start", after_plan_start, ["plan_review", "budget_check"])
    # Under a profile with `plan_review`: one decision on the whole plan before the first wave.
    builder.add_node(
        "plan_review",
        partial(plan_review, governance=governance),
        destinations=("plan_review", "budget_check", "finalize"),
    )
    builder.add_edge("tool_exec", "trace_emit")
    builder.add_conditional_edges("trace_emit", next_after_trace, ["budget_check", "finalize", END])
    builder.add_edge("finalize", END)
    compiled = builder.compile(checkpointer=checkpointer, name=name)
    # Every wave takes three or four supersteps; LangGraph's default limit of 25 would stop any
    # plan longer than a handful of steps.
    # LangGraph runs a superstep's sync tasks in a thread pool as large as `max_concurrency`
    # (by default a few per CPU), and its own background work (storing each task's writes,
    # feeding a stream) in the same pool: a wave needs a thread per step and room beside them,
    # or a pool the wave fills waits forever. Threads start only as they are needed.
    threads = 2 * governance.profile.max_concurrency + 8
    return PlangateGraph.from_compiled(compiled, governance).with_config(
        recursion_limit=RECURSION_LIMIT, max_concurrency=threads
    )
