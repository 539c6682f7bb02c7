"""Running plans through the compiled graph: budgets, dependencies, tool errors, capabilities,
tool kinds, results, traces (streaming, continuity, redaction, other processes) and state size.

Every graph test uses `runner`, so it runs once synchronously and once asynchronously, each on a
real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import CallLog, Runner, counting_tools, plan_of, thread
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from plangate import (
    ExecutionResult,
    PlangateGraph,
    PlangateUsageError,
    Profile,
    RetryPolicy,
    TraceEvent,
    aopen_checkpointer,
    build_graph,
    get_trace,
    load_profile,
    open_checkpointer,
)
from plangate._channels import SNAPSHOT_EVERY
from plangate.runs.history import trace_since

EVENT_KEYS = {"type", "trace_id", "seq", "ts", "step_id", "tool", "data", "hash"}
APPROVE = {"decision": "approve", "approver": "lee"}


# --- helpers -----------------------------------------------------------------------------------


def write_profile(tmp_path: Path, name: str = "custom", **fields: Any) -> str:
    """Write a YAML profile file with `fields` and return its path."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields}), encoding="utf-8")
    return str(path)


def step(id_: str, tool: str, text: str = "", **extra: Any) -> dict[str, Any]:
    return {"id": id_, "tool": tool, "args": {"text": text or id_}, **extra}


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in result["steps"]}


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {s["step_id"]: s["status"] for s in result["steps"]}


def of_type(events: list[TraceEvent], type_: str) -> list[TraceEvent]:
    return [e for e in events if e["type"] == type_]


def state_values(runner: Runner, graph: PlangateGraph, config: dict[str, Any]) -> dict[str, Any]:
    return dict(runner.state(graph, config).values)


def last_checkpoint_bytes(runner: Runner, graph: PlangateGraph, config: dict[str, Any]) -> int:
    saver = graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver)
    if runner.mode == "sync":
        tup = saver.get_tuple(config)
    else:
        tup = runner.loop.run_until_complete(saver.aget_tuple(config))
    assert tup is not None
    return len(saver.serde.dumps_typed(tup.checkpoint)[1])


def record_handed_checkpoints(saver: Any) -> list[dict[str, Any]]:
    """Keep a reference to every checkpoint LangGraph hands to `saver` (sync or async), so a
    test can see whether the objects change after they were handed over."""
    handed: list[dict[str, Any]] = []
    put, aput = saver.put, saver.aput

    def recording_put(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        handed.append(checkpoint)
        return put(config, checkpoint, metadata, versions)

    async def recording_aput(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        handed.append(checkpoint)
        return await aput(config, checkpoint, metadata, versions)

    saver.put, saver.aput = recording_put, recording_aput
    return handed


def run_script(script: str, tmp_path: Path, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **(env or {})},
    )


# --- budget ------------------------------------------------------------------------------------


def test_budget_warning_once_per_tier_when_crossing_threshold(
    runner: Runner, log: CallLog, tmp_path: Path
) -> None:
    """Each tier (total, domain:<d>, tool:<t>) warns once, at the call that crosses the
    threshold; tiers that stay below it never warn."""
    profile = write_profile(
        tmp_path,
        budget={
            "total_calls": 8,
            "calls_per_domain": 4,
            "calls_per_tool": 2,
            "warning_threshold": 0.75,
        },
    )
    tools = counting_tools(log, "crm.lookup", "crm.note", "email.send", "email.draft")
    graph = runner.graph(tools, profile=profile)
    plan = plan_of(
        step("s1", "crm.lookup"),
        step("s2", "crm.lookup"),
        step("s3", "crm.note"),
        step("s4", "email.send"),
        step("s5", "crm.note"),
        step("s6", "email.draft"),
    )
    out = runner.invoke(graph, {"plan": plan}, thread())
    assert out["result"]["status"] == "success"
    warnings = of_type(runner.trace(graph, thread()), "budget_warning")
    seen = [
        (w["step_id"], w["data"]["tier"], w["data"]["used"], w["data"]["limit"]) for w in warnings
    ]
    assert seen == [
        ("s2", "tool:crm.lookup", 2, 2),
        ("s3", "domain:crm", 3, 4),
        ("s5", "tool:crm.note", 2, 2),
        ("s6", "total", 6, 8),
    ]
    assert all(w["data"]["threshold"] == 0.75 for w in warnings)
    assert max(Counter(tier for _, tier, _, _ in seen).values()) == 1


TIER_CASES = {
    "total": ({"total_calls": 1}, ("crm.lookup", "email.send")),
    "domain:crm": ({"calls_per_domain": 1}, ("crm.lookup", "crm.note")),
    "tool:crm.lookup": ({"calls_per_tool": 1}, ("crm.lookup", "crm.lookup")),
}


@pytest.mark.parametrize("tier", list(TIER_CASES))
def test_call_exceeding_a_tier_is_blocked_and_not_made(
    runner: Runner, log: CallLog, tmp_path: Path, tier: str
) -> None:
    """A call that would exceed a tier is `blocked` with a `budget_exceeded` event naming the
    tier, used and limit, and its tool is never called."""
    budget, tools = TIER_CASES[tier]
    profile = write_profile(tmp_path, budget=budget)
    graph = runner.graph(
        counting_tools(log, "crm.lookup", "crm.note", "email.send"), profile=profile
    )
    plan = plan_of(step("first", tools[0]), step("second", tools[1]))
    out = runner.invoke(graph, {"plan": plan}, thread())
    result = out["result"]
    assert statuses(result) == {"first": "ok", "second": "blocked"}
    second = by_id(result)["second"]
    assert second["failure_context"]["error_type"] == "budget_exceeded"
    assert second["attempts"] == 0
    assert log.calls == [(tools[0], {"text": "first"})]
    trace = runner.trace(graph, thread())
    exceeded = of_type(trace, "budget_exceeded")
    assert [(e["step_id"], e["data"]) for e in exceeded] == [
        ("second", {"tier": tier, "used": 1, "limit": 1})
    ]
    assert [e["step_id"] for e in of_type(trace, "step_blocked")] == ["second"]
    assert not [e for e in trace if e["type"] == "tool_call_start" and e["step_id"] == "second"]


def test_exhausted_total_budget_blocks_every_remaining_step(
    runner: Runner, log: CallLog, tmp_path: Path
) -> None:
    """Once the total budget is used up, every later step is blocked and no tool runs."""
    profile = write_profile(tmp_path, budget={"total_calls": 2})
    graph = runner.graph(
        counting_tools(log, "crm.lookup", "crm.note", "email.send"), profile=profile
    )
    plan = plan_of(
        step("a", "crm.lookup"),
        step("b", "email.send"),
        step("c", "crm.note"),
        step("d", "email.send"),
        step("e", "crm.lookup"),
    )
    out = runner.invoke(graph, {"plan": plan}, thread())
    result = out["result"]
    assert statuses(result) == {
        "a": "ok",
        "b": "ok",
        "c": "blocked",
        "d": "blocked",
        "e": "blocked",
    }
    assert result["status"] == "partial"
    assert [name for name, _ in log.calls] == ["crm.lookup", "email.send"]
    exceeded = of_type(runner.trace(graph, thread()), "budget_exceeded")
    assert [(e["step_id"], e["data"]["tier"], e["data"]["used"]) for e in exceeded] == [
        ("c", "total", 2),
        ("d", "total", 2),
        ("e", "total", 2),
    ]
    assert result["budget"]["total"] == {"used": 2, "limit": 2}
    assert result["budget"]["utilisation"] == 1.0


def test_budget_report_has_used_and_limit_per_tier_and_utilisation(
    runner: Runner, log: CallLog, tmp_path: Path
) -> None:
    """`result["budget"]` reports used/limit per tier and the fullest tier's share."""
    profile = write_profile(
        tmp_path, budget={"total_calls": 10, "calls_per_domain": 5, "calls_per_tool": 4}
    )
    graph = runner.graph(counting_tools(log, "crm.lookup", "email.send"), profile=profile)
    plan = plan_of(
        step("a", "crm.lookup"),
        step("b", "crm.lookup"),
        step("c", "email.send"),
        step("d", "crm.lookup"),
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    budget = result["budget"]
    assert budget["total"] == {"used": 4, "limit": 10}
    assert budget["domains"] == {"crm": {"used": 3, "limit": 5}, "email": {"used": 1, "limit": 5}}
    assert budget["tools"] == {
        "crm.lookup": {"used": 3, "limit": 4},
        "email.send": {"used": 1, "limit": 4},
    }
    assert budget["utilisation"] == 0.75
    assert result["signals"]["budget_utilisation"] == 0.75


def test_budget_usage_survives_pause_and_resume_in_a_new_graph(
    runner: Runner, log: CallLog, tmp_path: Path
) -> None:
    """Calls made before an approval pause still count after resuming on a new graph object:
    the steps after the resume are blocked by them."""
    profile = write_profile(tmp_path, require_approval=["execute"], budget={"total_calls": 2})
    tools = counting_tools(log, "crm.lookup", "crm.note", "email.send")
    plan = plan_of(
        step("a", "crm.lookup"),
        step("send", "email.send", action="execute"),
        step("c", "crm.lookup"),
        step("d", "crm.note"),
    )
    first = runner.graph(tools, profile=profile)
    paused = runner.invoke(first, {"plan": plan}, thread())
    assert paused["__interrupt__"][0].value["step_id"] == "send"
    assert log.calls == [("crm.lookup", {"text": "a"})]

    second = runner.graph(tools, profile=profile)
    out = runner.invoke(second, Command(resume=APPROVE), thread())
    result = out["result"]
    assert statuses(result) == {"a": "ok", "send": "ok", "c": "blocked", "d": "blocked"}
    assert [name for name, _ in log.calls] == ["crm.lookup", "email.send"]
    assert by_id(result)["c"]["failure_context"]["error_type"] == "budget_exceeded"
    assert result["budget"]["total"] == {"used": 2, "limit": 2}
    assert [a["decision"] for a in result["approvals"]] == ["approve"]
    assert result["signals"]["approval_wait_ms"]["count"] == 1
    exceeded = of_type(runner.trace(second, thread()), "budget_exceeded")
    assert [(e["step_id"], e["data"]) for e in exceeded] == [
        ("c", {"tier": "total", "used": 2, "limit": 2}),
        ("d", {"tier": "total", "used": 2, "limit": 2}),
    ]


# --- dependencies ------------------------------------------------------------------------------


def test_failed_or_blocked_dependency_skips_dependents_transitively(
    runner: Runner, log: CallLog
) -> None:
    """A step depending on a failed or blocked step is skipped with a reason naming that
    dependency, its own dependents are skipped too, and independent steps still run."""
    tools = counting_tools(log, "crm.lookup", "crm.bad", "email.send", failing=("crm.bad",))
    graph = runner.graph(tools, profile="technical")
    plan = plan_of(
        step("bad", "crm.bad"),
        step("x", "email.send", depends_on=["bad"]),
        step("y", "email.send", depends_on=["x"]),
        step("free", "crm.lookup"),
        step("ghost", "nobody.home"),
        step("z", "email.send", depends_on=["ghost"]),
        step("after", "crm.lookup", depends_on=["free"]),
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert statuses(result) == {
        "bad": "error",
        "x": "skipped",
        "y": "skipped",
        "free": "ok",
        "ghost": "blocked",
        "z": "skipped",
        "after": "ok",
    }
    steps = by_id(result)
    for skipped, dep in (("x", "bad"), ("y", "x"), ("z", "ghost")):
        assert f"'{dep}'" in steps[skipped]["error"]
        assert steps[skipped]["failure_context"]["error_type"] == "dependency_failed"
        assert steps[skipped]["attempts"] == 0
    assert log.count("email.send") == 0
    assert log.count("crm.lookup") == 2
    skipped_events = of_type(runner.trace(graph, thread()), "step_skipped")
    # In list order: each is an effect (email.send cannot be undone), so each waits for the
    # steps listed before it.
    assert [e["step_id"] for e in skipped_events] == ["x", "y", "z"]
    assert "'bad'" in skipped_events[0]["data"]["reason"]


# --- tool errors -------------------------------------------------------------------------------


def test_tool_error_records_failure_context_and_run_continues(runner: Runner, log: CallLog) -> None:
    """Under `on_error: continue` a failing tool makes its step `error` with a structured
    failure context, later steps still run, the run is `partial`, and the result's
    failure_context is the first failure."""
    tools = counting_tools(
        log, "crm.lookup", "crm.bad", "crm.worse", "email.queue", failing=("crm.bad", "crm.worse")
    )
    graph = runner.graph(tools, profile="technical")
    plan = plan_of(
        step("a", "crm.lookup"),
        step("b", "crm.bad"),
        step("c", "email.queue"),
        step("d", "crm.worse"),
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert result["status"] == "partial"
    assert statuses(result) == {"a": "ok", "b": "error", "c": "ok", "d": "error"}
    expected = {
        "step_id": "b",
        "tool": "crm.bad",
        "error_type": "ToolException",
        "message": "crm.bad is down",
    }
    assert by_id(result)["b"]["failure_context"] == expected
    assert by_id(result)["b"]["error"] == "crm.bad is down"
    assert by_id(result)["b"]["attempts"] == 1
    assert by_id(result)["d"]["failure_context"]["step_id"] == "d"
    assert result["failure_context"] == expected
    assert result["halted"] is None
    assert [name for name, _ in log.calls] == ["crm.lookup", "crm.bad", "email.queue", "crm.worse"]
    errors = of_type(runner.trace(graph, thread()), "tool_call_error")
    assert [(e["step_id"], e["data"]["error_type"]) for e in errors] == [
        ("b", "ToolException"),
        ("d", "ToolException"),
    ]


def test_tool_error_under_halt_stops_the_plan(runner: Runner, log: CallLog, tmp_path: Path) -> None:
    """Under `on_error: halt` the steps after a failing one are skipped, `halted` is set, and
    no later tool is called."""
    profile = write_profile(tmp_path, on_error="halt")
    tools = counting_tools(log, "crm.lookup", "crm.bad", "email.send", failing=("crm.bad",))
    graph = runner.graph(tools, profile=profile)
    plan = plan_of(
        step("a", "crm.lookup"),
        step("b", "crm.bad"),
        step("c", "email.send"),
        step("d", "crm.lookup"),
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert statuses(result) == {"a": "ok", "b": "error", "c": "skipped", "d": "skipped"}
    assert result["status"] == "partial"
    assert result["halted"]
    assert "'b'" in result["halted"]
    for later in ("c", "d"):
        assert by_id(result)[later]["failure_context"]["error_type"] == "plan_halted"
    assert result["failure_context"]["step_id"] == "b"
    assert [name for name, _ in log.calls] == ["crm.lookup", "crm.bad"]
    trace = runner.trace(graph, thread())
    assert [e["step_id"] for e in of_type(trace, "step_skipped")] == ["c", "d"]
    assert of_type(trace, "plan_completed")[0]["data"]["halted"] == result["halted"]


def test_all_steps_failing_makes_the_run_failed(runner: Runner, log: CallLog) -> None:
    """When no step ends ok the run is `failed`, with success rate 0 and error rate 1."""
    tools = counting_tools(log, "crm.bad", "crm.worse", failing=("crm.bad", "crm.worse"))
    graph = runner.graph(tools, profile="technical")
    plan = plan_of(step("a", "crm.bad"), step("b", "crm.worse"))
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert result["status"] == "failed"
    assert statuses(result) == {"a": "error", "b": "error"}
    assert result["failure_context"]["step_id"] == "a"
    assert result["signals"]["success_rate"] == 0.0
    assert result["signals"]["error_rate"] == 1.0
    assert log.count("crm.bad") == 1
    assert log.count("crm.worse") == 1


def test_arguments_the_tool_schema_refuses_fail_the_step_in_one_line(runner: Runner) -> None:
    """Bad arguments never reach the tool: the step is an `invalid_arguments` error naming the
    tool and every bad field on one line, is not retried, and the run goes on."""
    calls: list[tuple[int, int]] = []

    def record(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    retrying = Profile(name="retrying", retry=RetryPolicy(max_attempts=3))
    graph = runner.graph({"calc.add": record}, profile=retrying, sleep=[].append)
    plan = plan_of(
        {"id": "bad", "tool": "calc.add", "args": {"a": "one"}},
        {"id": "ok", "tool": "calc.add", "args": {"a": 1, "b": 2}},
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    bad = by_id(result)["bad"]
    assert bad["error"] == (
        "calc.add: invalid arguments: a: Input should be a valid integer, unable to parse "
        "string as an integer; b: Field required"
    )
    assert (bad["failure_context"]["error_type"], bad["attempts"]) == ("invalid_arguments", 1)
    assert by_id(result)["ok"]["output"] == 3
    assert calls == [(1, 2)]


# --- capability --------------------------------------------------------------------------------


def test_tool_outside_allowlist_is_blocked_and_never_called(
    runner: Runner, log: CallLog, tmp_path: Path
) -> None:
    """A registered tool the profile's `allowed_tools` excludes is blocked and never runs."""
    profile = write_profile(tmp_path, allowed_tools=["crm.*"])
    graph = runner.graph(counting_tools(log, "crm.lookup", "email.send"), profile=profile)
    plan = plan_of(step("a", "crm.lookup"), step("send", "email.send"))
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert statuses(result) == {"a": "ok", "send": "blocked"}
    send = by_id(result)["send"]
    assert send["failure_context"]["error_type"] == "tool_not_allowed"
    assert "email.send" in send["error"]
    assert log.count("email.send") == 0
    blocked = of_type(runner.trace(graph, thread()), "step_blocked")
    assert [(e["step_id"], e["data"]["error_type"]) for e in blocked] == [
        ("send", "tool_not_allowed")
    ]


def test_unregistered_tool_is_blocked_with_a_reason_naming_it(runner: Runner, log: CallLog) -> None:
    """A plan naming a tool nobody registered blocks that step, naming the tool, and goes on."""
    graph = runner.graph(counting_tools(log, "crm.lookup"), profile="technical")
    plan = plan_of(step("ghost", "crm.vanish"), step("a", "crm.lookup"))
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert statuses(result) == {"ghost": "blocked", "a": "ok"}
    ghost = by_id(result)["ghost"]
    assert "'crm.vanish'" in ghost["error"]
    assert ghost["failure_context"] == {
        "step_id": "ghost",
        "tool": "crm.vanish",
        "error_type": "tool_not_registered",
        "message": ghost["error"],
    }
    assert result["budget"]["total"]["used"] == 1
    blocked = of_type(runner.trace(graph, thread()), "step_blocked")
    assert "crm.vanish" in blocked[0]["data"]["reason"]


# --- tool kinds --------------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    return a + b


async def multiply(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a * b


async def shout(text: str) -> str:
    await asyncio.sleep(0)
    return text.upper()


def test_plain_function_registered_under_a_dotted_name_runs(runner: Runner) -> None:
    """A plain function in a mapping runs under its dotted name and counts in that domain."""
    graph = runner.graph({"math.add": add}, profile="technical")
    plan = plan_of({"id": "sum", "tool": "math.add", "args": {"a": 2, "b": 3}})
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert result["status"] == "success"
    assert by_id(result)["sum"]["output"] == 5
    assert result["budget"]["domains"] == {"math": {"used": 1, "limit": 5000}}
    complete = of_type(runner.trace(graph, thread()), "tool_call_complete")
    assert complete[0]["data"]["output"] == 5


def test_async_function_tool_is_awaited_and_its_output_recorded(runner: Runner) -> None:
    """An `async def` function registered in a mapping runs, and its awaited value (not a
    coroutine object) is the step's output."""
    graph = runner.graph({"math.add": add, "math.mul": multiply}, profile="technical")
    plan = plan_of(
        {"id": "sum", "tool": "math.add", "args": {"a": 2, "b": 3}},
        {"id": "product", "tool": "math.mul", "args": {"a": 4, "b": 5}},
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert statuses(result) == {"sum": "ok", "product": "ok"}
    assert by_id(result)["product"]["output"] == 20
    assert result["status"] == "success"


def test_structured_tool_with_only_a_coroutine_runs(runner: Runner) -> None:
    """A LangChain StructuredTool defined by a coroutine alone runs and its output lands in the
    result."""
    tool = StructuredTool.from_function(
        coroutine=shout, name="text.shout", description="Upper-case the text."
    )
    graph = runner.graph([tool], profile="technical")
    plan = plan_of({"id": "loud", "tool": "text.shout", "args": {"text": "hello"}})
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert by_id(result)["loud"]["status"] == "ok", by_id(result)["loud"]["error"]
    assert by_id(result)["loud"]["output"] == "HELLO"
    assert result["status"] == "success"


# --- results -----------------------------------------------------------------------------------


def mixed_plan() -> dict[str, Any]:
    """Two ok steps, one tool error, one unregistered tool, one skipped dependent."""
    return plan_of(
        step("a", "crm.lookup"),
        step("b", "email.queue"),
        step("c", "crm.bad"),
        step("d", "nobody.home"),
        step("e", "email.queue", depends_on=["c"]),
    )


def mixed_tools(log: CallLog) -> list[Any]:
    return counting_tools(log, "crm.lookup", "crm.bad", "email.queue", failing=("crm.bad",))


def test_result_is_json_that_validates_with_golden_signals(runner: Runner, log: CallLog) -> None:
    """The result is plain JSON that `ExecutionResult` accepts, and its golden signals carry
    the right rates and latency percentiles."""
    graph = runner.graph(mixed_tools(log), profile="technical")
    result = runner.invoke(graph, {"plan": mixed_plan()}, thread())["result"]
    assert json.loads(json.dumps(result)) == result
    parsed = ExecutionResult.model_validate(result)
    assert parsed.status == "partial"
    assert [s.status for s in parsed.steps] == ["ok", "ok", "error", "blocked", "skipped"]
    assert parsed.trace_id == result["trace_id"]

    signals = result["signals"]
    assert signals["success_rate"] == 0.4  # 2 ok of 5 steps
    assert signals["error_rate"] == 0.3333  # 1 failed of 3 tool calls
    latency = signals["tool_latency_ms"]
    assert set(latency) == {"p50", "p95", "max"}
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["max"]
    ran = [s["duration_ms"] for s in result["steps"] if s["attempts"]]
    assert len(ran) == 3
    assert latency["max"] == max(ran)
    assert signals["approval_wait_ms"] == {"count": 0, "mean": None, "max": None}
    assert signals["budget_utilisation"] == result["budget"]["utilisation"]
    assert result["next_seq"] == len(runner.trace(graph, thread()))


# --- trace -------------------------------------------------------------------------------------


def test_custom_stream_yields_only_trace_events_matching_get_trace(
    runner: Runner, log: CallLog
) -> None:
    """`stream_mode="custom"` yields only trace events, numbered 0..n-1, of every kind a mixed
    plan produces, and they equal the trace read back afterwards."""
    graph = runner.graph(mixed_tools(log), profile="technical")
    events = runner.stream(graph, {"plan": mixed_plan()}, thread(), stream_mode="custom")
    assert events
    assert all(isinstance(e, dict) and set(e) == EVENT_KEYS for e in events)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert len({e["trace_id"] for e in events}) == 1
    types = {e["type"] for e in events}
    assert types >= {
        "plan_created",
        "tool_call_start",
        "tool_call_complete",
        "tool_call_error",
        "step_blocked",
        "step_skipped",
        "step_completed",
        "plan_completed",
    }
    assert events[0]["type"] == "plan_created"
    assert events[-1]["type"] == "plan_completed"
    assert len(of_type(events, "step_completed")) == 5
    assert runner.trace(graph, thread()) == events
    result = state_values(runner, graph, thread())["result"]
    assert result["trace_id"] == events[0]["trace_id"]
    assert result["next_seq"] == len(events)


def test_updates_stream_names_the_governance_nodes(runner: Runner, log: CallLog) -> None:
    """With `stream_mode=["updates", "custom"]` node updates name budget_check, tool_exec and
    trace_emit (once per step or per call, one step at a time), and the custom chunks are trace
    events."""
    one_at_a_time = load_profile("technical").model_copy(update={"max_concurrency": 1})
    graph = runner.graph(mixed_tools(log), profile=one_at_a_time)
    chunks = runner.stream(
        graph, {"plan": mixed_plan()}, thread(), stream_mode=["updates", "custom"]
    )
    assert {mode for mode, _ in chunks} == {"updates", "custom"}
    nodes = Counter(node for mode, data in chunks if mode == "updates" for node in data)
    assert nodes["budget_check"] == 5
    assert nodes["trace_emit"] == 5
    assert nodes["tool_exec"] == 3  # a, b, c ran; d was blocked, e skipped
    assert nodes["plan_start"] == 1
    assert nodes["finalize"] == 1
    custom = [data for mode, data in chunks if mode == "custom"]
    assert all(set(e) == EVENT_KEYS for e in custom)
    assert [e["seq"] for e in custom] == list(range(len(custom)))


def test_trace_continues_in_a_new_thread(runner: Runner, log: CallLog) -> None:
    """Plan B on a new thread given A's trace_id and next_seq writes to the same trace, its
    seq continuing A's without gaps or repeats."""
    graph = runner.graph(mixed_tools(log), profile="technical")
    a = runner.invoke(graph, {"plan": plan_of(step("a1", "crm.lookup"))}, thread("t1"))["result"]
    b_input = {
        "plan": plan_of(step("b1", "email.queue"), step("b2", "crm.bad")),
        "trace_id": a["trace_id"],
        "trace_seq": a["next_seq"],
    }
    b = runner.invoke(graph, b_input, thread("t2"))["result"]
    assert b["trace_id"] == a["trace_id"]
    first = runner.trace(graph, thread("t1"))
    second = runner.trace(graph, thread("t2"))
    assert [e["seq"] for e in first] == list(range(a["next_seq"]))
    assert [e["seq"] for e in second] == list(range(a["next_seq"], b["next_seq"]))
    assert {e["trace_id"] for e in first + second} == {a["trace_id"]}
    assert second[0]["type"] == "plan_created"


def test_second_plan_on_the_same_thread_continues_its_trace(runner: Runner, log: CallLog) -> None:
    """A second plan on a thread keeps the thread's trace id and continues its seq."""
    graph = runner.graph(mixed_tools(log), profile="technical")
    a = runner.invoke(graph, {"plan": plan_of(step("a1", "crm.lookup"))}, thread())["result"]
    b = runner.invoke(graph, {"plan": plan_of(step("b1", "email.queue"))}, thread())["result"]
    assert b["trace_id"] == a["trace_id"]
    assert b["next_seq"] > a["next_seq"]
    trace = runner.trace(graph, thread())
    assert [e["seq"] for e in trace] == list(range(b["next_seq"]))
    assert {e["trace_id"] for e in trace} == {a["trace_id"]}
    created = of_type(trace, "plan_created")
    assert [e["seq"] for e in created] == [0, a["next_seq"]]


@pytest.mark.parametrize(("profile", "redacted"), [("smb", True), ("technical", False)])
def test_pii_in_args_and_outputs_is_redacted_only_when_the_profile_says_so(
    runner: Runner, log: CallLog, profile: str, redacted: bool
) -> None:
    """Under `smb` emails and phone numbers in tool args and outputs appear as `[REDACTED_*]`
    in streamed and stored trace data; under `technical` they appear raw."""
    email, phone = "ana.lopez@acme.example", "+1 415 555 0100"
    text = f"write to {email} or call {phone}"
    graph = runner.graph(counting_tools(log, "crm.lookup"), profile=profile)
    plan = plan_of(step("a", "crm.lookup", text=text))
    streamed = runner.stream(graph, {"plan": plan}, thread(), stream_mode="custom")
    stored = runner.trace(graph, thread())
    assert stored == streamed
    assert log.calls == [("crm.lookup", {"text": text})]  # the tool itself gets the raw args
    (start,) = of_type(stored, "tool_call_start")
    (complete,) = of_type(stored, "tool_call_complete")
    dumped = json.dumps(stored)
    if redacted:
        masked = "write to [REDACTED_EMAIL] or call [REDACTED_PHONE]"
        assert start["data"]["args"] == {"text": masked}
        assert complete["data"]["output"]["echo"] == masked
        assert email not in dumped
        assert phone not in dumped
    else:
        assert start["data"]["args"] == {"text": text}
        assert complete["data"]["output"]["echo"] == text
        assert "REDACTED" not in dumped


# --- other processes ---------------------------------------------------------------------------


def test_a_new_process_reads_the_same_trace(log: CallLog, tmp_path: Path) -> None:
    """A separate process opening the same SQLite file reads back as many trace events as the
    process that wrote them."""
    db = tmp_path / "shared.db"
    saver = open_checkpointer(f"sqlite:///{db}")
    graph = build_graph(mixed_tools(log), profile="technical", checkpointer=saver)
    graph.invoke({"plan": mixed_plan()}, thread("shared"))
    count = len(get_trace(graph, thread("shared")))
    saver.conn.close()
    assert count > 10

    proc = run_script(
        f"""
        from plangate import build_graph, get_trace, open_checkpointer
        saver = open_checkpointer({f"sqlite:///{db}"!r})
        graph = build_graph({{}}, profile="technical", checkpointer=saver)
        print(len(get_trace(graph, {{"configurable": {{"thread_id": "shared"}}}})))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) == count


@pytest.mark.parametrize("what", ["folder", "not-a-database"])
def test_a_path_that_is_no_sqlite_database_is_one_line_sync_and_async(
    tmp_path: Path, what: str
) -> None:
    path = tmp_path / "plan.yaml"
    if what == "folder":
        path.mkdir()
        message = f"database {str(path)!r} is a folder"
    else:
        path.write_text("steps: []\n")
        message = f"cannot open SQLite database {str(path)!r}: file is not a database"
    with pytest.raises(PlangateUsageError) as caught:
        open_checkpointer(str(path))
    assert str(caught.value).startswith(message)
    with pytest.raises(PlangateUsageError) as caught:
        asyncio.run(aopen_checkpointer(f"sqlite:///{path}"))
    assert str(caught.value).startswith(message)


def test_a_follower_reads_each_event_once_and_never_the_whole_history_again(
    log: CallLog, tmp_path: Path
) -> None:
    """Polling `trace_since` from the checkpoint seen last, as the inbox's live trace does while
    a run goes on, gathers the whole trace, each event once, and each poll reads only the few
    events of the newest checkpoints."""
    saver = open_checkpointer(f"sqlite:///{tmp_path / 'follow.db'}")
    tools = counting_tools(log, "crm.lookup")
    graph = build_graph(tools, profile="technical", checkpointer=saver)
    plan = plan_of(*({"tool": "crm.lookup", "args": {"text": str(i)}} for i in range(20)))
    seen: str | None = None
    followed: list[TraceEvent] = []
    batches: list[int] = []

    def poll() -> None:
        nonlocal seen
        latest = saver.get_tuple(thread("follow")).config["configurable"]["checkpoint_id"]
        if latest == seen:
            return
        batch = trace_since(graph, thread("follow"), seen)
        seen = latest
        batches.append(len(batch))
        last = followed[-1]["seq"] if followed else -1
        followed.extend(event for event in batch if event["seq"] > last)

    for _ in graph.stream({"plan": plan}, thread("follow"), stream_mode="updates"):
        poll()
    poll()
    whole = get_trace(graph, thread("follow"))
    saver.conn.close()

    assert followed == whole
    assert len(whole) > 60
    # A checkpoint holds the events of at most one wave: three per step of it.
    assert max(batches) <= 3 * load_profile("technical").max_concurrency, batches


def test_pause_and_resume_under_strict_msgpack(tmp_path: Path) -> None:
    """With LANGGRAPH_STRICT_MSGPACK=true a run pauses for approval, resumes from SQLite on a
    new graph and finishes `success`, with no unregistered-type warnings."""
    proc = run_script(
        f"""
        import json, logging, warnings
        logging.basicConfig(level=logging.WARNING)
        warnings.simplefilter("default")
        from langgraph.types import Command
        from plangate import ExecutionResult, build_graph, declare_action, get_trace
        from plangate import open_checkpointer

        @declare_action(action="read")
        def lookup(account: str) -> dict:
            return {{"account": account, "owner": "ana.lopez@acme.example"}}

        def send(to: str, body: str) -> str:
            return f"sent to {{to}}"

        tools = {{"crm.lookup": lookup, "email.send": send}}
        url = {f"sqlite:///{tmp_path / 'strict.db'}"!r}
        config = {{"configurable": {{"thread_id": "strict"}}}}
        plan = {{"goal": "g", "steps": [
            {{"id": "lookup", "tool": "crm.lookup", "args": {{"account": "acme"}}}},
            {{"id": "send", "tool": "email.send", "action": "execute", "depends_on": ["lookup"],
              "args": {{"to": "ana.lopez@acme.example", "body": "hi"}}}},
        ]}}
        first = build_graph(tools, profile="smb", checkpointer=open_checkpointer(url))
        out = first.invoke({{"plan": plan}}, config)
        assert out["__interrupt__"][0].value["step_id"] == "send"
        second = build_graph(tools, profile="smb", checkpointer=open_checkpointer(url))
        out = second.invoke(Command(resume={{"decision": "approve", "approver": "lee"}}), config)
        result = ExecutionResult.model_validate(out["result"])
        print(json.dumps({{"status": result.status, "trace": len(get_trace(second, config)),
                          "state": second.get_state(config).values["result"]["status"]}}))
        """,
        tmp_path,
        env={"LANGGRAPH_STRICT_MSGPACK": "true"},
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == "success"
    assert report["state"] == "success"
    assert report["trace"] > 0
    stderr = proc.stderr.lower()
    assert "unregistered" not in stderr, proc.stderr
    assert "blocked deserialization" not in stderr, proc.stderr


# --- state size --------------------------------------------------------------------------------


def run_long_plan(runner: Runner, graph: PlangateGraph, steps: int) -> dict[str, Any]:
    config = thread(f"long-{steps}")
    plan = plan_of(*[step(f"s{i}", "crm.lookup") for i in range(steps)])
    out = runner.invoke(graph, {"plan": plan}, config)
    assert out["result"]["status"] == "success"
    return config


def checkpoint_sizes(runner: Runner, log: CallLog, steps: int) -> list[tuple[int, bool]]:
    """(serialised bytes, whether it is special) of every checkpoint a `steps`-long run hands to
    its saver, measured as it is handed over. Special: the input checkpoint (which holds the
    plan as given), a snapshot of the plan or outcomes, or of the wave's reports or the trace's
    latest batch (each at most a wave's: they do not grow with the plan), or the final
    result."""
    graph = runner.graph(counting_tools(log, "crm.lookup"), profile="technical")
    saver = graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver)
    handed = record_handed_checkpoints(saver)
    sizes: list[tuple[int, bool]] = []
    put, aput = saver.put, saver.aput

    def measure(checkpoint: dict[str, Any]) -> None:
        values = checkpoint["channel_values"]
        special = (
            "__start__" in values
            or values.get("result") is not None
            or any(
                type(values.get(key)).__name__ == "_DeltaSnapshot"
                for key in ("plan", "outcomes", "wave", "events")
            )
        )
        sizes.append((len(saver.serde.dumps_typed(checkpoint)[1]), special))

    def measuring_put(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        measure(checkpoint)
        return put(config, checkpoint, metadata, versions)

    async def measuring_aput(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        measure(checkpoint)
        return await aput(config, checkpoint, metadata, versions)

    saver.put, saver.aput = measuring_put, measuring_aput  # type: ignore[method-assign]
    run_long_plan(runner, graph, steps)
    assert handed
    return sizes


def test_checkpoints_stay_flat_between_snapshots(runner: Runner, log: CallLog) -> None:
    """Every checkpoint of a 250-step run, except the periodic snapshots and the final result, is
    under twice the largest of a 20-step run's; and snapshots come once per SNAPSHOT_EVERY steps,
    not more."""
    small = checkpoint_sizes(runner, log, 20)
    large = checkpoint_sizes(runner, log, 250)
    ordinary_small = max(size for size, special in small if not special)
    ordinary_large = [size for size, special in large if not special]
    assert max(ordinary_large) < 2 * ordinary_small, (ordinary_small, max(ordinary_large))
    snapshots = sum(special for _, special in large)
    # The input, the plan's first snapshots (as given, then validated), one per SNAPSHOT_EVERY
    # steps for each of the plan and the outcomes, the wave's and the trace's every 30 of their
    # writes (each written about twice per wave of 8 steps), and the final result.
    waves = -(-250 // load_profile("technical").max_concurrency)
    assert snapshots <= 3 + 2 * (250 // SNAPSHOT_EVERY) + 2 * (2 * waves // 30 + 1) + 1, snapshots


def test_checkpoints_handed_to_the_saver_are_not_changed_afterwards(
    runner: Runner, log: CallLog
) -> None:
    """With `durability="async"` (a caller's choice plangate honours), every checkpoint handed
    to the saver still holds, after the run, outcomes for exactly the steps before its `cursor`:
    plangate never mutates state a checkpoint already references, so what the background writer
    stores cannot depend on when it serialises."""
    graph = runner.graph(counting_tools(log, "crm.lookup"), profile="technical")
    handed = record_handed_checkpoints(graph.checkpointer)
    plan = plan_of(*[step(f"s{i}", "crm.lookup") for i in range(20)])
    chunks = runner.stream(
        graph, {"plan": plan}, thread(), stream_mode="values", durability="async"
    )
    assert chunks[-1]["result"]["status"] == "success"
    assert len(log.calls) == 20
    assert len(handed) > 6  # a few per wave of 8 steps
    ids = [f"s{i}" for i in range(20)]
    wrong = []
    for checkpoint in handed:
        values = checkpoint["channel_values"]
        if "outcomes" not in values or "cursor" not in values:
            continue
        outcomes = getattr(values["outcomes"], "value", values["outcomes"])
        if set(outcomes) != set(ids[: values["cursor"]]):
            wrong.append((values["cursor"], len(outcomes)))
    assert not wrong, f"(cursor, outcomes held) of checkpoints changed after the put: {wrong}"


def test_an_outcome_stored_as_text_or_as_a_mapping_reads_back_the_same() -> None:
    """Outcomes are kept as JSON text (a resume loads text fast); a run stored before, with
    mappings, reads back the same."""
    from plangate._channels import outcome_from_state, outcomes_from_state, stored_outcome

    outcome: Any = {
        "step_id": "s",
        "tool": "t.x",
        "status": "ok",
        "output": {"é": [1, 2.5, None, True]},
        "error": None,
        "attempts": 1,
        "duration_ms": 0.25,
        "approval": None,
        "failure_context": None,
        "mocked": False,
    }
    assert outcome_from_state(stored_outcome(outcome)) == outcome
    assert outcome_from_state(outcome) == outcome
    assert outcomes_from_state({"outcomes": {"s": stored_outcome(outcome)}}) == {"s": outcome}
