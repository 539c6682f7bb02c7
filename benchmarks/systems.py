"""The systems the benchmark runs, each doing N trivial tool calls on a SQLite file.

- `plangate`: plangate under `technical` (no approvals), one step at a time
  (`max_concurrency: 1`, the order of a plan run step by step).
- `plangate_width10`: the same plan (its steps are independent) ten steps at a time.
- `plangate_approvals`: plangate with every 5th step gated, approved as fast as possible, one
  step at a time.
- `floor`: the cheapest LangGraph loop that checkpoints once per step: one node, a cursor.
- `peer`: `langchain.agents.create_agent` with `ToolCallLimitMiddleware` and
  `HumanInTheLoopMiddleware`, driven by a scripted chat model that makes one tool call per turn,
  with the same every-5th approval schedule.

Each `run_*` function builds its graph on a fresh checkpointer at `db`, then times only the run
itself (invoke plus every resume) and returns the wall time in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware, ToolCallLimitMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from plangate import Profile, build_graph, declare_action, load_profile, open_checkpointer

GATE_EVERY = 5
SYSTEMS = ("plangate", "plangate_width10", "plangate_approvals", "floor", "peer")


@declare_action(action="read")  # plans raise it to `execute` where an approval is wanted
def noop(n: int) -> int:
    """Return n: the trivial tool every system calls."""
    return n


def gated(step: int) -> bool:
    """Whether the step at 0-based position `step` waits for approval (every 5th)."""
    return (step + 1) % GATE_EVERY == 0


def _config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 10**7}


# --- plangate -----------------------------------------------------------------------------

SEQUENTIAL_PROFILE: Profile = load_profile("technical").model_copy(
    update={"name": "technical-sequential", "max_concurrency": 1}
)
APPROVALS_PROFILE: Profile = SEQUENTIAL_PROFILE.model_copy(
    update={"name": "technical-approvals", "require_approval": ["execute"]}
)


def plangate_plan(steps: int, *, approvals: bool) -> dict[str, Any]:
    return {
        "goal": "bench",
        "steps": [
            {
                "tool": "bench.noop",
                "args": {"n": i},
                "action": "execute" if approvals and gated(i) else "read",
            }
            for i in range(steps)
        ],
    }


def plangate_graph(saver: SqliteSaver, *, approvals: bool, width: int = 1) -> Any:
    profile = APPROVALS_PROFILE if approvals else SEQUENTIAL_PROFILE
    profile = profile.model_copy(update={"max_concurrency": width})
    return build_graph({"bench.noop": noop}, profile=profile, checkpointer=saver)


def drive_plangate(graph: Any, first: Any, config: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Invoke, then approve every pause until the run ends; returns (output, resumes)."""
    out = graph.invoke(first, config)
    resumes = 0
    while out.get("__interrupt__"):
        decision = {"decision": "approve", "approver": "bench"}
        # Every request that waits, by interrupt id (one at a time, there is one).
        out = graph.invoke(Command(resume={i.id: decision for i in out["__interrupt__"]}), config)
        resumes += 1
    return out, resumes


def run_plangate(steps: int, db: Path, *, approvals: bool = False, width: int = 1) -> float:
    saver = open_checkpointer(str(db))
    graph = plangate_graph(saver, approvals=approvals, width=width)
    plan = plangate_plan(steps, approvals=approvals)
    started = time.perf_counter()
    out, resumes = drive_plangate(graph, {"plan": plan}, _config("bench"))
    elapsed = time.perf_counter() - started
    assert out["result"]["status"] == "success", out["result"]["status"]
    assert resumes == (sum(gated(i) for i in range(steps)) if approvals else 0)
    _close(saver)
    return elapsed


def resume_latencies(done_steps: int, db: Path, *, samples: int = 7) -> list[float]:
    """Seconds from `invoke(Command(resume=...))` to the next pause, on a thread that has
    already completed `done_steps` steps: the plan is `done_steps` reads, then `samples + 1`
    gated steps, so every resume runs one approved step and pauses at the next."""
    saver = open_checkpointer(str(db))
    graph = plangate_graph(saver, approvals=True)
    steps = [{"tool": "bench.noop", "args": {"n": i}} for i in range(done_steps)]
    steps += [
        {"tool": "bench.noop", "args": {"n": i}, "action": "execute"} for i in range(samples + 1)
    ]
    config = _config("resume")
    out = graph.invoke({"plan": {"goal": "resume", "steps": steps}}, config)
    latencies = []
    for _ in range(samples):
        assert out.get("__interrupt__"), "expected a pause"
        started = time.perf_counter()
        out = graph.invoke(Command(resume={"decision": "approve"}), config)
        latencies.append(time.perf_counter() - started)
    _close(saver)
    return latencies


# --- the floor ----------------------------------------------------------------------------


class CursorState(TypedDict):
    cursor: int
    steps: int


def _floor_step(state: CursorState) -> dict[str, int]:
    noop(state["cursor"])
    return {"cursor": state["cursor"] + 1}


def _floor_next(state: CursorState) -> str:
    return "step" if state["cursor"] < state["steps"] else END


def run_floor(steps: int, db: Path) -> float:
    saver = open_checkpointer(str(db))
    builder = StateGraph(CursorState)
    builder.add_node("step", _floor_step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", _floor_next, ["step", END])
    graph = builder.compile(checkpointer=saver)
    started = time.perf_counter()
    out = graph.invoke({"cursor": 0, "steps": steps}, _config("bench"))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert out["cursor"] == steps
    _close(saver)
    return elapsed


# --- the peer: a LangChain v1 agent with the same governance middlewares --------------------


class ScriptedToolCaller(BaseChatModel):
    """A chat model that asks for one tool call per turn, `calls` times, then answers.

    It reads only the last message (the previous call's `ToolMessage`), so the model itself
    costs the same at every turn; every 5th call goes to `bench_gated`, which the
    `HumanInTheLoopMiddleware` gates.
    """

    calls: int

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolCaller:  # type: ignore[override]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        last = messages[-1]
        done = int(str(last.tool_call_id).split("-")[1]) + 1 if isinstance(last, ToolMessage) else 0
        if done >= self.calls:
            message = AIMessage(content="done")
        else:
            name = "bench_gated" if gated(done) else "bench_noop"
            message = AIMessage(
                content="", tool_calls=[{"name": name, "args": {"n": done}, "id": f"call-{done}"}]
            )
        return ChatResult(generations=[ChatGeneration(message=message)])


def peer_agent(steps: int, saver: SqliteSaver) -> Any:
    tools = [
        StructuredTool.from_function(noop, name="bench_noop"),
        StructuredTool.from_function(noop, name="bench_gated"),
    ]
    return create_agent(
        ScriptedToolCaller(calls=steps),
        tools=tools,
        middleware=[
            ToolCallLimitMiddleware(run_limit=steps + 1),
            HumanInTheLoopMiddleware(interrupt_on={"bench_gated": True}),
        ],
        checkpointer=saver,
    )


def run_peer(steps: int, db: Path) -> float:
    saver = open_checkpointer(str(db))
    agent = peer_agent(steps, saver)
    config = _config("bench")
    started = time.perf_counter()
    out = agent.invoke({"messages": [{"role": "user", "content": "go"}]}, config)
    resumes = 0
    while out.get("__interrupt__"):
        out = agent.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
        resumes += 1
    elapsed = time.perf_counter() - started
    tool_messages = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_messages) == steps, len(tool_messages)
    assert resumes == sum(gated(i) for i in range(steps))
    _close(saver)
    return elapsed


def _close(saver: SqliteSaver) -> None:
    # Fold the WAL into the main file so that its size is what the run stored.
    saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    saver.conn.close()


RUNNERS: dict[str, Callable[[int, Path], float]] = {
    "plangate": run_plangate,
    "plangate_width10": lambda steps, db: run_plangate(steps, db, width=10),
    "plangate_approvals": lambda steps, db: run_plangate(steps, db, approvals=True),
    "floor": run_floor,
    "peer": run_peer,
}
