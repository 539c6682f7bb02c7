"""Independent steps at once: waves of ready steps, `max_concurrency`, budgets charged in plan
order, approvals that wait together, and a trace whose order does not depend on timing.

Concurrency is shown without timing anything: the tools of a wave meet (each waits until the
others have been called), so steps run one after the other would never meet and fail.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _support import CallLog, Runner, counting_tools, plan_of, thread
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from plangate import (
    InvalidDecision,
    Profile,
    ProfileError,
    build_graph,
    declare_action,
    load_profile,
)

MEET_TIMEOUT = 20.0  # seconds: only reached when the calls do not run at once


@dataclass
class Meeting:
    """`io.meet`: each call waits until `size` calls are in at once (then every call passes),
    and records the most calls ever in at once. A call left waiting fails the step."""

    size: int
    inside: int = 0
    peak: int = 0
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    met: threading.Event = field(default_factory=threading.Event)

    def _enter(self, text: str) -> None:
        with self.lock:
            self.calls.append(text)
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            if self.inside >= self.size:
                self.met.set()

    def _leave(self, met: bool) -> str:
        with self.lock:
            self.inside -= 1
        if not met:
            raise ToolException(f"only {self.peak} of {self.size} calls ever ran at once")
        return "met"

    def tool(self) -> BaseTool:
        def meet(text: str) -> str:
            """Wait for the other calls of the wave."""
            self._enter(text)
            return self._leave(self.met.wait(MEET_TIMEOUT))

        async def ameet(text: str) -> str:
            """Wait for the other calls of the wave."""
            self._enter(text)
            deadline = time.monotonic() + MEET_TIMEOUT
            while not self.met.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            return self._leave(self.met.is_set())

        tool = StructuredTool.from_function(meet, coroutine=ameet, name="io.meet")
        return declare_action(tool, action="read")


def technical(**changes: Any) -> Profile:
    return load_profile("technical").model_copy(update=changes)


def meets(n: int) -> list[dict[str, Any]]:
    return [{"id": f"m{i}", "tool": "io.meet", "args": {"text": str(i)}} for i in range(n)]


def test_independent_steps_run_at_once(runner: Runner) -> None:
    """Four steps with no dependencies run at once: their calls meet (sync tools in threads
    under `invoke`, async tools awaited together under `ainvoke`)."""
    meeting = Meeting(size=4)
    graph = runner.graph([meeting.tool()], profile="technical")
    result = runner.invoke(graph, {"plan": plan_of(*meets(4))}, thread())["result"]
    assert [s["status"] for s in result["steps"]] == ["ok"] * 4, result["failure_context"]
    assert meeting.peak == 4


def test_no_more_than_max_concurrency_steps_run_at_once(runner: Runner) -> None:
    """With `max_concurrency: 3`, seven independent steps run three at a time: the first three
    meet, and never more than three calls are in at once."""
    meeting = Meeting(size=3)
    graph = runner.graph([meeting.tool()], profile=technical(max_concurrency=3))
    result = runner.invoke(graph, {"plan": plan_of(*meets(7))}, thread())["result"]
    assert result["status"] == "success", result["failure_context"]
    assert meeting.peak == 3
    assert [s["step_id"] for s in result["steps"]] == [f"m{i}" for i in range(7)]


def test_max_concurrency_one_runs_the_steps_in_plan_order(runner: Runner, log: CallLog) -> None:
    """`max_concurrency: 1` runs one step at a time in plan order: each step's events, start to
    end, come before the next step's."""
    tools = counting_tools(log, "crm.lookup", "crm.note")
    graph = runner.graph(tools, profile=technical(max_concurrency=1))
    plan = plan_of(
        *[{"id": f"s{i}", "tool": "crm.lookup", "args": {"text": str(i)}} for i in range(4)],
        {"id": "last", "tool": "crm.note", "args": {"text": "x"}},
    )
    runner.invoke(graph, {"plan": plan}, thread())
    assert [args["text"] for _, args in log.calls] == ["0", "1", "2", "3", "x"]
    events = runner.trace(graph, thread())
    steps = [(e["type"], e["step_id"]) for e in events if e["step_id"]]
    expected = [
        (kind, step)
        for step in ("s0", "s1", "s2", "s3", "last")
        for kind in ("tool_call_start", "tool_call_complete", "step_completed")
    ]
    assert steps == expected


def test_of_two_steps_that_would_cross_a_tier_the_first_listed_runs(
    runner: Runner, log: CallLog
) -> None:
    """A call is charged before it is dispatched: with two calls left in the budget, four ready
    steps give the first two `ok` and the last two `blocked`, in every run."""
    graph = runner.graph(
        counting_tools(log, "crm.lookup"),
        profile=technical(
            budget=load_profile("technical").budget.model_copy(update={"total_calls": 2})
        ),
    )
    plan = plan_of(
        *[{"id": f"s{i}", "tool": "crm.lookup", "args": {"text": str(i)}} for i in range(4)]
    )
    for run in range(3):
        result = runner.invoke(graph, {"plan": plan}, thread(f"budget-{run}"))["result"]
        assert [s["status"] for s in result["steps"]] == ["ok", "ok", "blocked", "blocked"]
        assert result["budget"]["total"] == {"used": 2, "limit": 2}
    assert sorted(args["text"] for _, args in log.calls) == ["0", "0", "0", "1", "1", "1"]


def jittery_tools() -> list[BaseTool]:
    """`io.jitter`: answers after a random few milliseconds, so calls end in any order."""

    def jitter(text: str) -> str:
        """Answer after a while."""
        time.sleep(random.uniform(0, 0.02))
        return text

    async def ajitter(text: str) -> str:
        """Answer after a while."""
        await asyncio.sleep(random.uniform(0, 0.02))
        return text

    tool = StructuredTool.from_function(jitter, coroutine=ajitter, name="io.jitter")
    return [declare_action(tool, action="read")]


def test_the_trace_is_gap_free_and_the_same_whichever_call_ends_first(runner: Runner) -> None:
    """Calls that end in random order give the same trace every time: `seq` is gap-free, the
    events are in plan order within each wave, and the result lists the steps in plan order."""
    graph = runner.graph(jittery_tools(), profile="technical")
    first = [{"id": f"a{i}", "tool": "io.jitter", "args": {"text": str(i)}} for i in range(6)]
    second = [
        {"id": f"b{i}", "tool": "io.jitter", "args": {"text": f"${{steps.a{i}.output}}!"}}
        for i in range(6)
    ]
    plan = plan_of(*first, *second)
    orders = []
    for run in range(4):
        out = runner.invoke(graph, {"plan": plan}, thread(f"jitter-{run}"))
        events = runner.trace(graph, thread(f"jitter-{run}"))
        assert [e["seq"] for e in events] == list(range(len(events)))
        assert [s["step_id"] for s in out["result"]["steps"]] == [s["id"] for s in plan["steps"]]
        assert out["result"]["steps"][-1]["output"] == "5!"
        orders.append([(e["type"], e["step_id"]) for e in events])
    assert all(order == orders[0] for order in orders)
    starts = [step for kind, step in orders[0] if kind == "tool_call_start"]
    assert starts == [s["id"] for s in plan["steps"]]


def gated_plan() -> dict[str, Any]:
    """Three sends that need approval under `smb`, and a lookup that does not, in data-flow
    order: the sends wait together."""
    sends = [
        {"id": f"send-{who}", "tool": "email.send", "action": "execute", "args": {"text": who}}
        for who in ("ana", "ben", "cy")
    ]
    lookup = {"id": "lookup", "tool": "crm.lookup", "args": {"text": "acme"}}
    return plan_of(*sends, lookup, order="dependencies")


def test_steps_that_need_approval_wait_together_and_others_run_meanwhile(
    runner: Runner, log: CallLog
) -> None:
    """Three ready sends pause together, one interrupt each, while the lookup beside them runs.
    One decided by its interrupt id is recorded while the other two still wait, and runs with
    them once they are decided too (a LangGraph superstep ends when all its tasks have); the
    last two are decided together."""
    graph = runner.graph(counting_tools(log, "email.send", "crm.lookup"), profile="smb")
    out = runner.invoke(graph, {"plan": gated_plan()}, thread())
    waiting = out["__interrupt__"]
    assert sorted(i.value["step_id"] for i in waiting) == ["send-ana", "send-ben", "send-cy"]
    assert len({i.id for i in waiting}) == 3
    assert log.calls == [("crm.lookup", {"text": "acme"})]
    assert {i.id for i in runner.state(graph, thread()).interrupts} == {i.id for i in waiting}

    ben = next(i for i in waiting if i.value["step_id"] == "send-ben")
    out = runner.invoke(graph, Command(resume={ben.id: {"decision": "approve"}}), thread())
    still = out["__interrupt__"]
    assert sorted(i.value["step_id"] for i in still) == ["send-ana", "send-cy"]
    assert {i.id for i in still} == {i.id for i in waiting} - {ben.id}
    assert log.count("email.send") == 0

    decisions = {
        still[0].id: {"decision": "approve", "approver": "lee"},
        still[1].id: {"decision": "reject", "reason": "not now", "approver": "lee"},
    }
    result = runner.invoke(graph, Command(resume=decisions), thread())["result"]
    statuses = {s["step_id"]: s["status"] for s in result["steps"]}
    rejected = next(s for s in result["steps"] if s["status"] == "rejected")["step_id"]
    assert statuses == {
        "send-ana": "ok" if rejected != "send-ana" else "rejected",
        "send-ben": "ok",
        "send-cy": "ok" if rejected != "send-cy" else "rejected",
        "lookup": "ok",
    }
    assert log.count("email.send") == 2
    assert len(result["approvals"]) == 3
    assert next(a for a in result["approvals"] if a["step_id"] == "send-ben")["approver"] is None
    events = runner.trace(graph, thread())
    assert [e["seq"] for e in events] == list(range(len(events)))


def test_one_decision_for_several_waiting_requests_is_refused_and_nothing_is_lost(
    runner: Runner, log: CallLog
) -> None:
    """A bare decision when three requests wait is refused in one line naming the interrupt
    ids; the run still waits on all three, and a mapping then decides them."""
    graph = runner.graph(counting_tools(log, "email.send", "crm.lookup"), profile="smb")
    waiting = runner.invoke(graph, {"plan": gated_plan()}, thread())["__interrupt__"]
    with pytest.raises(InvalidDecision) as refused:
        runner.invoke(graph, Command(resume={"decision": "approve"}), thread())
    assert "3 approvals are pending" in str(refused.value)
    assert all(i.id in str(refused.value) for i in waiting)
    assert len(runner.state(graph, thread()).interrupts) == 3
    everything = {i.id: {"decision": "approve", "approver": "lee"} for i in waiting}
    result = runner.invoke(graph, Command(resume=everything), thread())["result"]
    assert result["status"] == "success"
    assert log.count("email.send") == 3


def test_on_reject_halt_runs_nothing_listed_after_a_step_waiting_for_a_decision(
    runner: Runner, log: CallLog
) -> None:
    """Under `on_reject: halt` a wave stops at the first step that waits for a person: the
    steps listed before it run meanwhile, the ones after wait, and a rejection skips them."""
    profile = load_profile("smb").model_copy(update={"on_reject": "halt"})
    graph = runner.graph(counting_tools(log, "email.send", "crm.lookup"), profile=profile)
    plan = plan_of(
        {"id": "before", "tool": "crm.lookup", "args": {"text": "before"}},
        {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "x"}},
        {"id": "after", "tool": "crm.lookup", "args": {"text": "after"}},
    )
    out = runner.invoke(graph, {"plan": plan}, thread())
    assert [i.value["step_id"] for i in out["__interrupt__"]] == ["send"]
    assert log.calls == [("crm.lookup", {"text": "before"})]
    reject = {"decision": "reject", "reason": "no", "approver": "lee"}
    result = runner.invoke(graph, Command(resume=reject), thread())["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "rejected", "skipped"]
    assert log.calls == [("crm.lookup", {"text": "before"})]


def test_on_error_halt_runs_one_step_at_a_time(runner: Runner, log: CallLog) -> None:
    """Under `on_error: halt` any step may stop the plan, so nothing listed after a failing step
    runs, even with steps that could have run beside it."""
    profile = technical(on_error="halt")
    tools = counting_tools(log, "crm.lookup", "crm.broken", failing=("crm.broken",))
    graph = runner.graph(tools, profile=profile)
    plan = plan_of(
        {"id": "ok", "tool": "crm.lookup", "args": {"text": "1"}},
        {"id": "bad", "tool": "crm.broken", "args": {"text": "2"}},
        {"id": "later", "tool": "crm.lookup", "args": {"text": "3"}},
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "error", "skipped"]
    assert [args["text"] for _, args in log.calls] == ["1", "2"]


def test_max_concurrency_is_checked_when_the_profile_loads(tmp_path: Path) -> None:
    """`max_concurrency` below 1 or past 256 is refused in one line naming the field."""
    for bad in (0, 257):
        path = tmp_path / f"bad-{bad}.yaml"
        path.write_text(f"name: bad\nmax_concurrency: {bad}\n", encoding="utf-8")
        with pytest.raises(ProfileError) as refused:
            load_profile(path)
        assert "max_concurrency" in str(refused.value)
        assert "\n" not in str(refused.value)


class ParentState(TypedDict, total=False):
    plan: Any
    result: Any


def test_steps_waiting_together_in_a_subgraph_pause_the_parent_and_resume_by_id(
    runner: Runner, log: CallLog
) -> None:
    """Under a parent graph's checkpointer, two sends of one wave pause the parent with two
    interrupts; a mapping of their ids resumes it, and each send runs once."""
    plangate = build_graph(counting_tools(log, "email.send"), profile="smb", checkpointer=None)
    builder = StateGraph(ParentState)
    builder.add_node("plangate", plangate)
    builder.add_edge(START, "plangate")
    builder.add_edge("plangate", END)
    graph = builder.compile(checkpointer=runner.saver())
    sends = [
        {"id": who, "tool": "email.send", "action": "execute", "args": {"text": who}}
        for who in ("ana", "ben")
    ]
    plan = plan_of(*sends, order="dependencies")
    waiting = runner.invoke(graph, {"plan": plan}, thread())["__interrupt__"]
    assert sorted(i.value["step_id"] for i in waiting) == ["ana", "ben"]
    decisions = {i.id: {"decision": "approve", "approver": "lee"} for i in waiting}
    result = runner.invoke(graph, Command(resume=decisions), thread())["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "ok"]
    assert sorted(args["text"] for _, args in log.calls) == ["ana", "ben"]
