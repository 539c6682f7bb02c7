"""Embedding plangate: `as_tool` inside a LangChain agent, and the compiled graph as a subgraph of
a user's own graph. Approvals pause the parent and resume from it, steps already run never run
again, each plan keeps its own nested state, and trace events stream through the parent.

The agent is `langchain.agents.create_agent` with a scripted chat model (no network), on a real
SQLite checkpointer; agent and parent-graph cases run sync and async through the `runner` fixture.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from _support import CallLog, Clock, Runner, counting_tools, plan_of, thread
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Interrupt
from typing_extensions import TypedDict

from plangate import (
    PlangateUsageError,
    aopen_checkpointer,
    build_graph,
    demo_outbox,
    demo_toolkit,
    load_profile,
    open_checkpointer,
)
from plangate.integrations.as_tool import as_tool, summarize_result

# --- helpers --------------------------------------------------------------------------------------


class ScriptedModel(GenericFakeChatModel):
    """A chat model that answers with its scripted messages in order, whatever it is asked."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


def calls(*plans: tuple[str, Any]) -> AIMessage:
    """A model turn that calls `execute_plan` once per (tool call id, plan) pair."""
    return AIMessage(
        content="",
        tool_calls=[
            {"name": "execute_plan", "args": plan, "id": call_id} for call_id, plan in plans
        ],
    )


def saver(runner: Runner, name: str = "agent.db") -> BaseCheckpointSaver[Any]:
    """A SQLite checkpointer (sync or async, by the runner's mode), closed by the fixture."""
    url = f"sqlite:///{runner.db_path.parent / name}"
    checkpointer: BaseCheckpointSaver[Any]
    if runner.mode == "sync":
        checkpointer = open_checkpointer(url)
    else:
        checkpointer = runner.loop.run_until_complete(aopen_checkpointer(url))
    runner._savers.append(checkpointer)
    return checkpointer


def agent(runner: Runner, tool: StructuredTool, *turns: AIMessage) -> Any:
    """An agent whose model plays `turns`, with `tool`, on a SQLite checkpointer (a new
    connection to the same file each time)."""
    return create_agent(
        ScriptedModel(messages=iter(turns)), tools=[tool], checkpointer=saver(runner)
    )


def ask(text: str = "follow up with acme") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def approve(approver: str = "lee") -> Command:
    return Command(resume={"decision": "approve", "approver": approver})


def the_interrupt(out: dict[str, Any]) -> Interrupt:
    interrupts = out.get("__interrupt__")
    assert interrupts, f"the agent did not pause: {sorted(out)}"
    assert len(interrupts) == 1
    interrupt: Interrupt = interrupts[0]
    return interrupt


def tool_messages(out: dict[str, Any]) -> list[ToolMessage]:
    messages: list[BaseMessage] = out["messages"]
    return [m for m in messages if isinstance(m, ToolMessage)]


def summary_of(message: ToolMessage) -> dict[str, Any]:
    """The summary the model read, as JSON."""
    assert isinstance(message.content, str)
    summary: dict[str, Any] = json.loads(message.content)
    return summary


def step(step_id: str, tool: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "tool": tool, "args": {"text": step_id}, **extra}


def lookup_then_send() -> dict[str, Any]:
    """A read step, then an `execute` step (smb asks for approval) that depends on it."""
    return plan_of(
        step("lookup", "crm.lookup"),
        step("send", "email.send", action="execute", depends_on=["lookup"]),
        goal="follow up",
    )


def governed_tool(log: CallLog, clock: Clock) -> StructuredTool:
    """`execute_plan` over counting tools under smb: `execute` steps wait for approval."""
    return as_tool(counting_tools(log, "crm.lookup", "email.send"), profile="smb", clock=clock)


# --- the tool itself ------------------------------------------------------------------------------


def test_tool_takes_a_plan_and_describes_the_tools_a_plan_may_call(
    log: CallLog, clock: Clock
) -> None:
    """The model sees `goal`, `steps` and `order` (the `Plan` schema) and a description naming
    the tools."""
    tool = governed_tool(log, clock)

    assert tool.name == "execute_plan"
    assert set(tool.args) == {"goal", "steps", "order"}
    schema = tool.tool_call_schema
    assert isinstance(schema, dict)
    assert schema["required"] == ["steps"]
    assert "crm.lookup(text)" in tool.description
    assert "email.send(text)" in tool.description
    assert as_tool([], name="run_plan", description="Runs plans.").name == "run_plan"


def test_tool_called_on_its_own_runs_a_plan_without_approvals(log: CallLog, clock: Clock) -> None:
    """Outside any graph a plan that needs no approval still runs, and returns the summary."""
    tool = governed_tool(log, clock)

    message = tool.invoke(
        {
            "type": "tool_call",
            "name": "execute_plan",
            "id": "c1",
            "args": plan_of(step("a", "crm.lookup")),
        }
    )

    assert isinstance(message, ToolMessage)
    assert summary_of(message)["status"] == "success"
    assert message.artifact["steps"][0]["output"] == {"tool": "crm.lookup", "echo": "a"}


def test_tool_called_on_its_own_cannot_wait_for_an_approval(log: CallLog, clock: Clock) -> None:
    """Without a parent graph that can pause, an approval is a usage error, not a silent stop."""
    tool = governed_tool(log, clock)

    with pytest.raises(PlangateUsageError, match="checkpointer"):
        tool.invoke(lookup_then_send())


def test_summary_cuts_long_outputs_and_keeps_what_the_model_needs() -> None:
    """Long outputs and errors are cut; status, halt reason, budget and trace id stay."""
    result = {
        "status": "partial",
        "trace_id": "t1",
        "halted": "rejected",
        "budget": {"total": {"used": 2, "limit": 50}, "utilisation": 0.04},
        "steps": [
            {"step_id": "a", "tool": "x.read", "status": "ok", "output": "x" * 1000, "error": None},
            {"step_id": "b", "tool": "x.send", "status": "rejected", "output": None, "error": "no"},
        ],
    }

    summary = summarize_result(result, max_output_chars=10)

    assert summary["steps"][0]["output"] == "xxxxxxxxxx... [990 more characters]"
    assert summary["steps"][1] == {"id": "b", "tool": "x.send", "status": "rejected", "error": "no"}
    assert (summary["halted"], summary["budget"], summary["trace_id"]) == (
        "rejected",
        {"used": 2, "limit": 50},
        "t1",
    )


# --- in an agent ----------------------------------------------------------------------------------


def test_approval_pauses_the_agent_and_resuming_it_runs_each_step_once(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """The agent pauses with plangate's request; approving on the agent finishes the plan from
    where it stopped (the lookup is not run again) and the model reads the summary."""
    bot = agent(
        runner,
        governed_tool(log, clock),
        calls(("call-1", lookup_then_send())),
        AIMessage(content="Sent."),
    )

    out = runner.invoke(bot, ask(), thread("chat"))

    request = the_interrupt(out).value
    assert request["type"] == "approval_request"
    assert (request["tool"], request["step_id"], request["risk"]) == ("email.send", "send", "high")
    assert "cannot be undone" in request["consequence"]
    assert log.calls == [("crm.lookup", {"text": "lookup"})]
    assert tool_messages(out) == []

    out = runner.invoke(bot, approve(), thread("chat"))

    assert "__interrupt__" not in out
    assert (log.count("crm.lookup"), log.count("email.send")) == (1, 1)
    (message,) = tool_messages(out)
    assert (message.tool_call_id, message.status) == ("call-1", "success")
    summary = summary_of(message)
    assert summary["status"] == "success"
    assert summary["steps"] == [
        {
            "id": "lookup",
            "tool": "crm.lookup",
            "status": "ok",
            "output": {"tool": "crm.lookup", "echo": "lookup"},
        },
        {
            "id": "send",
            "tool": "email.send",
            "status": "ok",
            "output": {"tool": "email.send", "echo": "send"},
        },
    ]
    assert summary["budget"] == {"used": 2, "limit": 50}
    assert message.artifact["approvals"][0]["approver"] == "lee"
    assert out["messages"][-1].content == "Sent."


def test_under_enterprise_the_agent_pauses_for_the_plan_review_then_for_what_it_leaves(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """`as_tool` under `enterprise`: the agent pauses first with the review of the whole plan;
    approved, the covered draft runs without asking, and the high-risk send still asks, from a
    profile that wants two approvers for it."""
    profile = load_profile("enterprise").model_copy(update={"approvals_required": {"high": 2}})
    tool = as_tool(
        counting_tools(log, "crm.lookup", "email.draft", "email.send"), profile=profile, clock=clock
    )
    plan = plan_of(
        step("lookup", "crm.lookup"),
        step("draft", "email.draft", action="propose", depends_on=["lookup"]),
        step("send", "email.send", action="execute", depends_on=["draft"]),
        goal="follow up",
    )
    bot = agent(runner, tool, calls(("call-1", plan)), AIMessage(content="Sent."))

    review = the_interrupt(runner.invoke(bot, ask(), thread("chat"))).value
    assert review["type"] == "plan_review"
    assert [s["step_id"] for s in review["steps"] if s["covered"]] == ["draft"]
    assert log.calls == []

    send = the_interrupt(runner.invoke(bot, approve("rev"), thread("chat"))).value
    assert (send["step_id"], send["approvals_required"]) == ("send", 2)
    assert [name for name, _ in log.calls] == ["crm.lookup", "email.draft"]
    again = the_interrupt(runner.invoke(bot, approve("lee"), thread("chat"))).value
    assert [a["approver"] for a in again["approvals_so_far"]] == ["lee"]
    out = runner.invoke(bot, approve("kim"), thread("chat"))

    (message,) = tool_messages(out)
    assert summary_of(message)["status"] == "success"
    assert log.count("email.send") == 1
    approvals = {a["step_id"]: a for a in message.artifact["approvals"]}
    assert approvals["draft"]["covered_by"] == "plan_review"
    assert [a["approver"] for a in approvals["send"]["approvals"]] == ["lee", "kim"]


def test_an_agent_using_the_tool_is_answered_in_langchains_hitl_form(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """The agent's interrupt is a LangChain HITL request; a HITL edit resumes it, the approver
    coming from the agent run's config."""
    bot = agent(
        runner,
        governed_tool(log, clock),
        calls(("call-1", lookup_then_send())),
        AIMessage(content="Sent."),
    )
    request = the_interrupt(runner.invoke(bot, ask(), thread("chat"))).value
    assert request["action_requests"][0]["name"] == "email.send"
    assert request["review_configs"][0]["allowed_decisions"][:3] == ["approve", "edit", "reject"]

    edit = {"type": "edit", "edited_action": {"name": "email.send", "args": {"text": "edited"}}}
    named = {"configurable": {**thread("chat")["configurable"], "approver": "lee"}}
    out = runner.invoke(bot, Command(resume={"decisions": [edit]}), named)

    (message,) = tool_messages(out)
    approval = message.artifact["approvals"][0]
    assert (approval["decision"], approval["approver"]) == ("edit", "lee")
    assert log.calls[-1] == ("email.send", {"text": "edited"})


def test_rejecting_on_the_agent_skips_the_step_and_tells_the_model(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """A rejection never runs the tool; the model reads `rejected` with the approver's reason."""
    bot = agent(
        runner,
        governed_tool(log, clock),
        calls(("call-1", lookup_then_send())),
        AIMessage(content="Not sent."),
    )
    the_interrupt(runner.invoke(bot, ask(), thread("chat")))

    out = runner.invoke(
        bot, Command(resume={"decision": "reject", "reason": "wrong person"}), thread("chat")
    )

    assert log.count("email.send") == 0
    summary = summary_of(tool_messages(out)[0])
    assert summary["status"] == "partial"
    assert summary["steps"][1] == {
        "id": "send",
        "tool": "email.send",
        "status": "rejected",
        "error": "wrong person",
    }
    assert out["messages"][-1].content == "Not sent."


def test_a_plan_without_approvals_finishes_in_one_call(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """No step needs approval: the agent never pauses and reads the result in the same run."""
    plan = plan_of(step("a", "crm.lookup"), step("b", "crm.lookup", depends_on=["a"]))
    bot = agent(runner, governed_tool(log, clock), calls(("c1", plan)), AIMessage(content="ok"))

    out = runner.invoke(bot, ask(), thread("chat"))

    assert "__interrupt__" not in out
    summary = summary_of(tool_messages(out)[0])
    assert (summary["status"], [s["status"] for s in summary["steps"]]) == ("success", ["ok", "ok"])
    assert log.count("crm.lookup") == 2
    assert out["messages"][-1].content == "ok"


@pytest.mark.parametrize(
    ("plan", "named"),
    [
        pytest.param({"goal": "x", "steps": []}, "field 'steps'", id="no-steps"),
        pytest.param({"steps": [{"args": {}}]}, "step 'step-1', field 'tool'", id="no-tool"),
        pytest.param(
            {"steps": [{"tool": "crm.lookup", "tool_name": "x"}]},
            "field 'tool_name'",
            id="unknown-field",
        ),
        pytest.param(
            {"steps": [{"id": "a", "tool": "crm.lookup", "depends_on": ["z"]}]},
            "unknown step 'z'",
            id="unknown-dependency",
        ),
        pytest.param({"plan": {"steps": []}}, "field 'plan'", id="wrapped"),
    ],
)
def test_a_bad_plan_goes_back_to_the_model_and_the_agent_goes_on(
    runner: Runner, log: CallLog, clock: Clock, plan: dict[str, Any], named: str
) -> None:
    """A malformed plan becomes an error `ToolMessage` naming the culprit; nothing runs, and the
    model gets its next turn (here: a corrected plan)."""
    good = plan_of(step("a", "crm.lookup"))
    bot = agent(
        runner,
        governed_tool(log, clock),
        calls(("bad", plan)),
        calls(("good", good)),
        AIMessage(content="done"),
    )

    out = runner.invoke(bot, ask(), thread("chat"))

    bad, fixed = tool_messages(out)
    assert (bad.tool_call_id, bad.status) == ("bad", "error")
    assert named in bad.content
    assert "call execute_plan again" in bad.content
    assert (fixed.status, summary_of(fixed)["status"]) == ("success", "success")
    assert log.calls == [("crm.lookup", {"text": "a"})]
    assert out["messages"][-1].content == "done"


def test_two_plans_in_one_turn_keep_their_own_state(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """Two plans called at once pause with one request each; each resumes from its own checkpoint
    (the lookups ran once), and a third plan that needed no approval is not run again."""
    first = plan_of(step("lookup", "crm.lookup"), step("send", "email.send", action="execute"))
    second = plan_of(step("lookup2", "crm.lookup"), step("send2", "email.send", action="execute"))
    third = plan_of(step("lookup3", "crm.lookup"))
    bot = agent(
        runner,
        governed_tool(log, clock),
        calls(("c1", first), ("c2", second), ("c3", third)),
        AIMessage(content="done"),
    )

    out = runner.invoke(bot, ask(), thread("chat"))

    requests = {i.value["step_id"]: i.id for i in out["__interrupt__"]}
    assert set(requests) == {"send", "send2"}
    assert log.count("crm.lookup") == 3

    decisions = {
        requests["send"]: {"decision": "approve"},
        requests["send2"]: {"decision": "reject", "reason": "not now"},
    }
    out = runner.invoke(bot, Command(resume=decisions), thread("chat"))

    assert "__interrupt__" not in out
    assert log.calls.count(("crm.lookup", {"text": "lookup"})) == 1
    assert log.calls.count(("crm.lookup", {"text": "lookup2"})) == 1
    assert log.calls.count(("crm.lookup", {"text": "lookup3"})) == 1
    assert log.calls.count(("email.send", {"text": "send"})) == 1
    assert log.count("email.send") == 1
    statuses = {m.tool_call_id: summary_of(m)["status"] for m in tool_messages(out)}
    assert statuses == {"c1": "success", "c2": "partial", "c3": "success"}


def test_the_same_plan_called_again_later_runs_again(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """A second call with an identical plan, in a later turn, starts afresh: its state is not the
    first call's finished run."""
    plan = plan_of(step("a", "crm.lookup"))
    bot = agent(
        runner,
        governed_tool(log, clock),
        calls(("c1", plan)),
        calls(("c2", plan)),
        AIMessage(content="done"),
    )

    out = runner.invoke(bot, ask(), thread("chat"))

    assert log.count("crm.lookup") == 2
    first, second = (summary_of(m) for m in tool_messages(out))
    assert first["status"] == second["status"] == "success"
    assert first["trace_id"] != second["trace_id"]


def test_a_bad_decision_on_the_agent_asks_again(runner: Runner, log: CallLog, clock: Clock) -> None:
    """A resume value that is not a decision re-asks with an `error`; a valid one then finishes."""
    bot = agent(
        runner,
        governed_tool(log, clock),
        calls(("c1", lookup_then_send())),
        AIMessage(content="Sent."),
    )
    first = the_interrupt(runner.invoke(bot, ask(), thread("chat"))).value

    out = runner.invoke(bot, Command(resume={"decision": "maybe"}), thread("chat"))

    again = the_interrupt(out).value
    assert "decision" in again["error"]
    assert again["request_id"] == first["request_id"]
    assert log.count("email.send") == 0

    out = runner.invoke(bot, approve(), thread("chat"))
    assert summary_of(tool_messages(out)[0])["status"] == "success"
    assert (log.count("crm.lookup"), log.count("email.send")) == (1, 1)


def test_a_long_plan_is_not_bound_by_the_agents_recursion_limit(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """The plan's own supersteps (about four per step) do not count against the agent's limit."""
    plan = plan_of(*(step(f"s{n}", "crm.lookup") for n in range(12)))
    bot = agent(runner, governed_tool(log, clock), calls(("c1", plan)), AIMessage(content="ok"))

    out = runner.invoke(bot, ask(), {**thread("chat"), "recursion_limit": 10})

    assert summary_of(tool_messages(out)[0])["status"] == "success"
    assert log.count("crm.lookup") == 12


def test_demo_send_approved_and_resumed_by_a_new_agent_sends_one_email(
    runner: Runner, tmp_path: Path
) -> None:
    """The demo workflow: the agent pauses before the send; a new agent on a new connection to
    the same database (another process) approves, and exactly one email leaves the outbox."""
    outbox = tmp_path / "outbox.db"
    plan = {
        "goal": "Follow up with Acme",
        "steps": [
            {"id": "lookup", "tool": "crm.lookup_account", "args": {"account": "acme"}},
            {
                "id": "send",
                "tool": "email.send",
                "action": "execute",
                "depends_on": ["lookup"],
                "args": {"to": "ana.lopez@acme.example", "subject": "Renewal", "body": "Hi Ana"},
            },
        ],
    }
    tool = as_tool(demo_toolkit(outbox), profile="smb")
    out = runner.invoke(agent(runner, tool, calls(("c1", plan))), ask(), thread("demo"))
    assert the_interrupt(out).value["args"]["to"] == "ana.lopez@acme.example"  # real, to decide
    assert demo_outbox(outbox) == []

    later = agent(runner, as_tool(demo_toolkit(outbox), profile="smb"), AIMessage(content="Sent."))
    out = runner.invoke(later, approve("ops"), thread("demo"))

    sent = demo_outbox(outbox)
    assert len(sent) == 1
    assert (sent[0]["to"], sent[0]["subject"]) == ("ana.lopez@acme.example", "Renewal")
    summary = summary_of(tool_messages(out)[0])
    assert summary["status"] == "success"
    assert summary["steps"][0]["output"]["name"] == "Acme Corp"
    assert out["messages"][-1].content == "Sent."


def test_an_agent_without_a_checkpointer_runs_plans_that_need_no_approval(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """A checkpointer is only needed to wait for a person; without one a plan still runs."""
    plan = plan_of(step("a", "crm.lookup"))
    bot = create_agent(
        ScriptedModel(messages=iter([calls(("c1", plan)), AIMessage(content="ok")])),
        tools=[governed_tool(log, clock)],
    )

    out = runner.invoke(bot, ask(), {})

    assert summary_of(tool_messages(out)[0])["status"] == "success"
    assert log.count("crm.lookup") == 1


async def test_the_async_agent_runs_the_plan_on_its_own_event_loop(
    tmp_path: Path, clock: Clock
) -> None:
    """Under `ainvoke` the tool's coroutine runs the plan with `ainvoke`: an async tool is awaited
    on the agent's own event loop (not in a thread with a loop of its own), and the approval
    resumes."""
    loops: list[asyncio.AbstractEventLoop] = []

    async def send(text: str) -> str:
        loops.append(asyncio.get_running_loop())
        return f"sent {text}"

    tool = as_tool(
        [StructuredTool.from_function(coroutine=send, name="email.send", description="Send.")],
        profile="smb",
        clock=clock,
    )
    checkpointer = await aopen_checkpointer(f"sqlite:///{tmp_path / 'agent.db'}")
    try:
        bot = create_agent(
            ScriptedModel(
                messages=iter(
                    [
                        calls(("c1", plan_of(step("s", "email.send", action="execute")))),
                        AIMessage(content="ok"),
                    ]
                )
            ),
            tools=[tool],
            checkpointer=checkpointer,
        )
        out = await bot.ainvoke(ask(), thread("chat"))
        assert the_interrupt(out).value["tool"] == "email.send"

        out = await bot.ainvoke(approve(), thread("chat"))
    finally:
        await checkpointer.conn.close()  # type: ignore[attr-defined]

    assert loops == [asyncio.get_running_loop()]
    assert summary_of(tool_messages(out)[0])["steps"][0]["output"] == "sent s"


# --- streaming through the agent ------------------------------------------------------------------


def split(
    chunks: list[Any],
) -> tuple[list[tuple[tuple[str, ...], Any]], list[tuple[tuple[str, ...], Any]]]:
    """(namespace, custom event) and (namespace, node update) pairs of a `subgraphs=True` stream."""
    custom = [(ns, chunk) for ns, mode, chunk in chunks if mode == "custom"]
    updates = [(ns, chunk) for ns, mode, chunk in chunks if mode == "updates"]
    return custom, updates


STREAM = {"stream_mode": ["custom", "updates"], "subgraphs": True}


def test_trace_events_and_node_updates_stream_through_the_agent(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """With `subgraphs=True` the agent's stream carries plangate's trace events (custom) and node
    updates, under the tool call's namespace, before and after the approval."""
    bot = agent(
        runner,
        governed_tool(log, clock),
        calls(("call-1", lookup_then_send())),
        AIMessage(content="Sent."),
    )

    custom, updates = split(runner.stream(bot, ask(), thread("chat"), **STREAM))

    assert {ns for ns, _ in custom} == {ns for ns, u in updates if "plan_start" in u}
    (namespace,) = {ns for ns, _ in custom}
    assert namespace[0].startswith("tools:")
    assert [e["type"] for _, e in custom] == [
        "plan_created",
        "tool_call_start",
        "tool_call_complete",
        "step_completed",
        "approval_requested",
    ]
    nodes = [node for ns, u in updates if ns == namespace for node in u]
    assert nodes[:4] == ["plan_start", "budget_check", "tool_exec", "trace_emit"]
    assert any("__interrupt__" in u for ns, u in updates if ns == ())

    custom, updates = split(runner.stream(bot, approve(), thread("chat"), **STREAM))

    assert {ns for ns, _ in custom} == {namespace}
    assert [e["type"] for _, e in custom] == [
        "approval_received",
        "tool_call_start",
        "tool_call_complete",
        "step_completed",
        "plan_completed",
    ]
    assert [node for ns, u in updates if ns == namespace for node in u] == [
        "approval_interrupt",
        "tool_exec",
        "trace_emit",
        "finalize",
    ]
    assert [node for ns, u in updates if ns == () for node in u][-2:] == ["tools", "model"]
    assert (log.count("crm.lookup"), log.count("email.send")) == (1, 1)


# --- as a subgraph of the user's own graph --------------------------------------------------------


class ParentState(TypedDict, total=False):
    plan: Any
    result: Any
    summary: str


def parent_graph(runner: Runner, tools: Any) -> Any:
    """The user's own graph: the plangate graph as node `governed`, then a node that reads
    `result`; compiled with a SQLite checkpointer."""
    builder = StateGraph(ParentState)
    builder.add_node("governed", build_graph(tools, profile="smb", checkpointer=None))
    builder.add_node("summarise", lambda state: {"summary": state["result"]["status"]})
    builder.add_edge(START, "governed")
    builder.add_edge("governed", "summarise")
    builder.add_edge("summarise", END)
    return builder.compile(checkpointer=saver(runner, "parent.db"))


def test_trace_events_and_node_updates_stream_through_a_parent_graph(
    runner: Runner, log: CallLog
) -> None:
    """Streaming the parent with `subgraphs=True` shows plangate's trace events and node updates
    under the `governed` namespace; the resume streams the rest and the parent's next node."""
    parent = parent_graph(runner, counting_tools(log, "crm.lookup", "email.send"))

    chunks = runner.stream(parent, {"plan": lookup_then_send()}, thread("p"), **STREAM)

    custom, updates = split(chunks)
    (namespace,) = {ns for ns, _ in custom}
    assert namespace[0].startswith("governed:")
    assert [e["type"] for _, e in custom][-1] == "approval_requested"
    assert "tool_call_start" in [e["type"] for _, e in custom]
    assert any("budget_check" in u for ns, u in updates if ns == namespace)
    interrupts = [u["__interrupt__"] for ns, u in updates if ns == () and "__interrupt__" in u]
    assert interrupts[0][0].value["tool"] == "email.send"

    custom, updates = split(runner.stream(parent, approve(), thread("p"), **STREAM))

    assert {ns for ns, _ in custom} == {namespace}
    assert [e["type"] for _, e in custom][-1] == "plan_completed"
    assert [node for ns, u in updates if ns == () for node in u] == ["governed", "summarise"]
    assert updates[-1] == ((), {"summarise": {"summary": "success"}})
    assert (log.count("crm.lookup"), log.count("email.send")) == (1, 1)
