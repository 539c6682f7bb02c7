"""Chains of reads go on beside a slow call: a read takes the chain that goes on from it along
in its task, so each next link starts as the one before it ends, not when the slowest call of
its wave does. Nothing else about a step changes: what may run, what asks a person, what the
budget allows, how a failure is handled, and the order of the trace.

As in `test_concurrency`, nothing is timed: a slow call `io.hold` waits until the chain's last
link was called, which it never is while the chain waits for the end of the hold's wave.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _support import CallLog, Runner, counting_tools, plan_of, thread
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.types import Command
from test_side_effects import script_runner

from plangate import Profile, declare_action, demo_outbox, load_profile

HOLD_TIMEOUT = 20.0  # seconds: only reached when the chain waits for the hold's wave to end


@dataclass
class Hold:
    """`io.hold`: waits until `io.link` is called with `last`, and fails if it never is;
    `io.link` echoes its text with a `!`, and records its calls."""

    released: threading.Event = field(default_factory=threading.Event)
    links: list[str] = field(default_factory=list)

    def tools(self) -> list[BaseTool]:
        def hold() -> str:
            """Wait for the chain beside this call."""
            if not self.released.wait(HOLD_TIMEOUT):
                raise ToolException("the chain did not go on beside this call")
            return "released"

        async def ahold() -> str:
            """Wait for the chain beside this call."""
            deadline = time.monotonic() + HOLD_TIMEOUT
            while not self.released.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            return hold()

        def link(text: str) -> str:
            """Echo `text` with a `!`."""
            self.links.append(text)
            if text.startswith("last"):
                self.released.set()
            return text + "!"

        return [
            declare_action(
                StructuredTool.from_function(hold, coroutine=ahold, name="io.hold"), action="read"
            ),
            declare_action(StructuredTool.from_function(link, name="io.link"), action="read"),
        ]


def technical(**changes: Any) -> Profile:
    return load_profile("technical").model_copy(update=changes)


def chain(*texts: str, tool: str = "io.link") -> list[dict[str, Any]]:
    """Steps `c0`, `c1`, ... each depending on the one before; from the second on, each
    passes on the output of the one before (`${steps.<id>.output}`) after its own text."""
    steps: list[dict[str, Any]] = []
    for n, text in enumerate(texts):
        args = {"text": text if n == 0 else f"{text} after ${{steps.c{n - 1}.output}}"}
        steps.append({"id": f"c{n}", "tool": tool, "args": args})
    return steps


def tool_exec_reports(chunks: list[Any]) -> list[list[int]]:
    """The step indices each `tool_exec` task reported, from an `updates` stream."""
    return [
        [report["index"] for report in chunk["tool_exec"]["wave"]]
        for chunk in chunks
        if "tool_exec" in chunk
    ]


def test_a_chain_of_reads_goes_on_beside_a_slow_call(runner: Runner) -> None:
    """Each link starts as the one before it ends, its reference resolved, while the slow
    call of the same wave is still in flight; the trace stays in plan order and gap-free."""
    hold = Hold()
    graph = runner.graph(hold.tools(), profile="technical")
    plan = plan_of({"id": "slow", "tool": "io.hold"}, *chain("a", "b", "last"))
    chunks = runner.stream(graph, {"plan": plan}, thread(), stream_mode="updates")
    result = runner.state(graph, thread()).values["result"]
    assert [s["status"] for s in result["steps"]] == ["ok"] * 4, result["failure_context"]
    assert hold.links == ["a", "b after a!", "last after b after a!!"]
    assert [1, 2, 3] in tool_exec_reports(chunks)  # the chain, in the task of its first link
    events = runner.trace(graph, thread())
    assert [e["seq"] for e in events] == list(range(len(events)))
    started = [e["step_id"] for e in events if e["type"] == "tool_call_start"]
    assert started == ["slow", "c0", "c1", "c2"]


def test_a_link_that_fails_hands_the_rest_back_to_be_skipped(runner: Runner, log: CallLog) -> None:
    """The links after a failed one are not called: the next wave skips them, as it skips any
    step whose dependency failed; under `on_error: halt` the plan halts there instead."""
    tools = counting_tools(log, "crm.lookup", "crm.broken", failing=("crm.broken",))
    plan = plan_of(
        {"id": "c0", "tool": "crm.lookup", "args": {"text": "0"}},
        {"id": "c1", "tool": "crm.broken", "args": {"text": "1"}, "depends_on": ["c0"]},
        {"id": "c2", "tool": "crm.lookup", "args": {"text": "2"}, "depends_on": ["c1"]},
        {"id": "c3", "tool": "crm.lookup", "args": {"text": "3"}, "depends_on": ["c2"]},
    )
    graph = runner.graph(tools, profile="technical")
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "error", "skipped", "skipped"]
    assert result["steps"][2]["failure_context"]["error_type"] == "dependency_failed"
    assert [args["text"] for _, args in log.calls] == ["0", "1"]
    assert result["budget"]["total"]["used"] == 2  # the links handed back were never charged

    halting = runner.graph(tools, profile=technical(on_error="halt"))
    config = thread("halting")
    result = runner.invoke(halting, {"plan": plan}, config)["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "error", "skipped", "skipped"]
    assert result["steps"][2]["failure_context"]["error_type"] == "plan_halted"


def test_a_link_that_needs_a_person_waits_for_one(runner: Runner, log: CallLog) -> None:
    """A read the profile gates ends the chain before it: it is asked about in the next wave,
    and nothing after it is called until a person approved it."""
    tools = counting_tools(log, "crm.lookup", "crm.secret")
    profile = technical(approval_required_tools=["crm.secret"])
    graph = runner.graph(tools, profile=profile)
    plan = plan_of(
        {"id": "c0", "tool": "crm.lookup", "args": {"text": "0"}},
        {"id": "c1", "tool": "crm.secret", "args": {"text": "1"}, "depends_on": ["c0"]},
        {"id": "c2", "tool": "crm.lookup", "args": {"text": "2"}, "depends_on": ["c1"]},
    )
    runner.invoke(graph, {"plan": plan}, thread())
    (asked,) = runner.state(graph, thread()).interrupts
    assert asked.value["step_id"] == "c1"
    assert [args["text"] for _, args in log.calls] == ["0"]
    decision = {"decision": "approve", "approver": "lee"}
    result = runner.invoke(graph, Command(resume=decision), thread())["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "ok", "ok"]
    assert [args["text"] for _, args in log.calls] == ["0", "1", "2"]


def test_a_plan_cannot_put_an_effect_in_a_chain_by_calling_it_a_read(
    runner: Runner, log: CallLog
) -> None:
    """`crm.update` declares itself `execute`; a plan that calls its step a `read` does not
    make it one: under `smb` it waits for a person with the links after it, and under
    `technical` it runs in a task of its own, never in the task of the read before it."""
    tools = [
        *counting_tools(log, "crm.lookup"),
        *counting_tools(log, "crm.update", action="execute"),
    ]
    plan = plan_of(
        {"id": "c0", "tool": "crm.lookup", "args": {"text": "0"}},
        {
            "id": "c1",
            "tool": "crm.update",
            "action": "read",
            "args": {"text": "1"},
            "depends_on": ["c0"],
        },
        {"id": "c2", "tool": "crm.lookup", "args": {"text": "2"}, "depends_on": ["c1"]},
    )
    gated = runner.graph(tools, profile="smb")
    runner.invoke(gated, {"plan": plan}, thread())
    (asked,) = runner.state(gated, thread()).interrupts
    assert (asked.value["step_id"], asked.value["action"]) == ("c1", "execute")
    assert [args["text"] for _, args in log.calls] == ["0"]

    unattended = runner.graph(tools, profile="technical")
    chunks = runner.stream(unattended, {"plan": plan}, thread("t"), stream_mode="updates")
    assert tool_exec_reports(chunks) == [[0], [1], [2]]


def test_a_chain_spends_the_budget_as_its_steps_would_one_by_one(
    runner: Runner, log: CallLog
) -> None:
    """With two calls in the budget, a chain of four runs two links; the third is blocked,
    `budget_exceeded`, and the fourth skipped, as when each link was a wave of its own."""
    tools = counting_tools(log, "crm.lookup")
    budget = load_profile("technical").budget.model_copy(update={"total_calls": 2})
    graph = runner.graph(tools, profile=technical(budget=budget))
    plan = plan_of(
        *[
            {
                "id": f"c{n}",
                "tool": "crm.lookup",
                "args": {"text": str(n)},
                "depends_on": [f"c{n - 1}"] if n else [],
            }
            for n in range(4)
        ]
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    statuses = [
        (s["status"], (s["failure_context"] or {}).get("error_type")) for s in result["steps"]
    ]
    assert statuses == [
        ("ok", None),
        ("ok", None),
        ("blocked", "budget_exceeded"),
        ("skipped", "dependency_failed"),
    ]
    assert [args["text"] for _, args in log.calls] == ["0", "1"]


def test_a_chain_fans_out_into_steps_that_run_together() -> None:
    """A step two others depend on ends the chain: they run together in the next wave, not one
    after the other in its task."""
    from plangate.plan import chain_followers, parse_plan

    plan = parse_plan(
        plan_of(
            {"id": "a", "tool": "t.x"},
            {"id": "b", "tool": "t.x", "depends_on": ["a"]},
            {"id": "c", "tool": "t.x", "depends_on": ["b"]},
            {"id": "d", "tool": "t.x", "depends_on": ["b"]},
            {"id": "e", "tool": "t.x", "depends_on": ["c", "d"]},
        )
    )
    assert chain_followers(plan.steps) == [1, -1, -1, -1, -1]
    alone = parse_plan(plan_of({"id": "a", "tool": "t.x"}, {"id": "b", "tool": "t.x"}))
    assert chain_followers(alone.steps) is None


def test_max_concurrency_is_not_part_of_the_fingerprint() -> None:
    """How many calls run at once is not governance: a run paused under one concurrency goes
    on under another, and the built-in profiles kept the fingerprints runs are bound to."""
    smb = load_profile("smb")
    assert smb.max_concurrency == 16
    assert smb.model_copy(update={"max_concurrency": 2}).fingerprint == smb.fingerprint
    assert smb.fingerprint == "56f938f0c414cea1"


CHAIN_RUN = """
import json, os, signal, sys
from plangate import build_graph, declare_action, demo_toolkit, load_profile, open_checkpointer

mode, folder, _ = sys.argv[1], sys.argv[2], sys.argv[3]
demo = {tool.name: tool for tool in demo_toolkit(folder + "/outbox.db")}


@declare_action(action="read")
def lookup(account: str) -> str:
    with open(folder + "/lookups", "a") as calls:
        calls.write(account + "\\n")
    if mode == "start" and account == "b":
        os.kill(os.getpid(), signal.SIGKILL)  # mid-chain, the send before it stored
    return account


rules = load_profile("technical").model_copy(update={"irreversible_exempt": ["email.send"]})
graph = build_graph(
    {"crm.lookup_account": lookup, "email.send": demo["email.send"]},
    profile=rules,
    checkpointer=open_checkpointer(folder + "/runs.db"),
)
steps = [
    {"id": "send", "tool": "email.send",
     "args": {"to": "ana@acme.example", "subject": "Hi", "body": "Hello"}},
    {"id": "a", "tool": "crm.lookup_account", "args": {"account": "a"}},
    {"id": "b", "tool": "crm.lookup_account", "args": {"account": "b"}, "depends_on": ["a"]},
    {"id": "c", "tool": "crm.lookup_account", "args": {"account": "c"}, "depends_on": ["b"]},
]
config = {"configurable": {"thread_id": "chain"}}
out = graph.invoke({"plan": {"goal": "send, then look up", "steps": steps}} if mode == "start"
                   else None, config)
print(json.dumps(out["result"]))
"""


def test_a_chain_killed_mid_way_runs_its_reads_again_and_no_effect(tmp_path: Path) -> None:
    """A process killed in the middle of a chain: a new process runs the chain's reads again
    (a task's calls are stored when it ends) and never the send stored before it."""
    run = script_runner(CHAIN_RUN, tmp_path, "-")
    killed = run("start")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert [s["status"] for s in result["steps"]] == ["ok"] * 4
    assert [mail["to"] for mail in demo_outbox(tmp_path / "outbox.db")] == ["ana@acme.example"]
    assert (tmp_path / "lookups").read_text().splitlines() == ["a", "b", "a", "b", "c"]
