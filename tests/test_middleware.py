"""`GovernanceMiddleware`: a plangate profile governing a LangChain agent's own tool calls.

The agents here are real `create_agent` graphs on a real SQLite file, driven by a scripted chat
model; every whole-agent test runs twice, through `invoke`/`stream` and `ainvoke`/`astream`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _support import SAME_AS_LEE, CallLog, Clock, Runner, counting_tools, run_in, thread
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware, ToolCallLimitMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, ToolException
from langgraph.runtime import Runtime
from langgraph.types import Command, Interrupt

from plangate import (
    EVENT_TYPES,
    Budget,
    Decision,
    PlangateUsageError,
    Profile,
    TraceEvent,
    aopen_checkpointer,
    declare_action,
    load_profile,
    open_checkpointer,
)
from plangate.identity import DecisionSigner, Identity
from plangate.integrations.middleware import GovernanceMiddleware

TOOLS = ("crm.lookup", "crm.update", "crm.note", "email.send", "shell.run", "billing.pay")


class ScriptedModel(GenericFakeChatModel):
    """Answers with the scripted messages in order, whatever it is asked; binding tools only
    returns itself (the script names the tools)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


def script(*turns: Sequence[tuple[str, dict[str, Any]]] | str) -> ScriptedModel:
    """A model that asks for each turn's tool calls (ids `c1`, `c2`, ... in order), or answers
    a turn given as a string with that text, then says `done`."""
    messages: list[AIMessage] = []
    n = 0
    for calls in turns:
        if isinstance(calls, str):
            messages.append(AIMessage(content=calls))
            continue
        tool_calls = []
        for name, args in calls:
            n += 1
            tool_calls.append({"name": name, "args": args, "id": f"c{n}"})
        messages.append(AIMessage(content="", tool_calls=tool_calls))
    messages.append(AIMessage(content="done"))
    return ScriptedModel(messages=iter(messages))


def profile(base: str = "smb", **changes: Any) -> Profile:
    return load_profile(base).model_copy(update=changes)


@dataclass
class Turn:
    """What one invoke (or resume) of an agent did: its trace events and its interrupts."""

    events: list[TraceEvent]
    interrupts: list[Interrupt]

    def of(self, type_: str) -> list[TraceEvent]:
        return [e for e in self.events if e["type"] == type_]


@dataclass
class Agents:
    """Builds agents on a real SQLite file and drives them the way `runner` says (sync or
    async), collecting the custom stream and the interrupts of every invoke."""

    runner: Runner
    log: CallLog
    events: list[TraceEvent] = field(default_factory=list)

    def build(
        self,
        model: ScriptedModel,
        middleware: Sequence[Any],
        tools: Sequence[BaseTool] | None = None,
        **kwargs: Any,
    ) -> Any:
        url = f"sqlite:///{self.runner.db_path}"
        if self.runner.mode == "sync":
            saver = open_checkpointer(url)
        else:
            saver = self.runner.loop.run_until_complete(aopen_checkpointer(url))
        self.runner._savers.append(saver)  # closed by the `runner` fixture
        # Undeclared by default, as most agents' tools are: the middleware's `actions` govern.
        if tools is None:
            tools = counting_tools(self.log, *TOOLS, failing=("billing.pay",), action=None)
        return create_agent(
            model=model,
            tools=list(tools),
            middleware=list(middleware),
            checkpointer=saver,
            **kwargs,
        )

    def run(self, agent: Any, value: Any, name: str = "t1") -> Turn:
        """Stream one invoke; events land in `self.events` as they arrive, so a test still
        sees them when the run raises."""
        turn = Turn([], [])

        def take(mode: str, chunk: Any) -> None:
            if mode == "custom":
                turn.events.append(chunk)
                self.events.append(chunk)
            elif "__interrupt__" in chunk:
                turn.interrupts.extend(chunk["__interrupt__"])

        modes = ["custom", "updates"]
        if self.runner.mode == "sync":
            for mode, chunk in agent.stream(value, thread(name), stream_mode=modes):
                take(mode, chunk)
        else:

            async def collect() -> None:
                async for mode, chunk in agent.astream(value, thread(name), stream_mode=modes):
                    take(mode, chunk)

            self.runner.loop.run_until_complete(collect())
        return turn

    def start(self, agent: Any, name: str = "t1") -> Turn:
        return self.run(agent, {"messages": [HumanMessage("go")]}, name)

    def resume(self, agent: Any, decision: Any, name: str = "t1") -> Turn:
        return self.run(agent, Command(resume=decision), name)

    def state(self, agent: Any, name: str = "t1") -> dict[str, Any]:
        if self.runner.mode == "sync":
            snapshot = agent.get_state(thread(name))
        else:
            snapshot = self.runner.loop.run_until_complete(agent.aget_state(thread(name)))
        return snapshot.values  # type: ignore[no-any-return]


@pytest.fixture
def agents(runner: Runner, log: CallLog) -> Agents:
    return Agents(runner, log)


def tool_message(values: dict[str, Any], call_id: str) -> ToolMessage:
    messages: list[BaseMessage] = values["messages"]
    return next(m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id == call_id)


# --- the hooks, called directly ----------------------------------------------------------------


def test_after_model_admits_blocks_and_reserves_event_numbers(clock: Clock) -> None:
    """One turn: a gated call, a call outside the allowlist, and a read. `after_model` blocks
    the second with a ToolMessage, builds the first's approval request, and reserves two event
    numbers for the read (it runs at once) before three for the gated call."""
    governance = GovernanceMiddleware(
        profile=profile(allowed_tools=["crm.*", "email.*"]),
        actions={"crm.*": "read"},
        clock=clock,
    )
    streamed: list[Any] = []
    ai = AIMessage(
        content="",
        tool_calls=[
            {"name": "email.send", "args": {"text": "hi"}, "id": "a"},
            {"name": "shell.run", "args": {"text": "ls"}, "id": "b"},
            {"name": "crm.lookup", "args": {"text": "acme"}, "id": "c"},
        ],
    )
    update = governance.after_model(
        {"messages": [HumanMessage("go"), ai]}, Runtime(stream_writer=streamed.append)
    )

    assert update is not None
    [blocked] = update["messages"]
    assert (blocked.tool_call_id, blocked.status) == ("b", "error")
    assert [(e["seq"], e["type"], e["step_id"]) for e in streamed] == [
        (0, "approval_requested", "a"),
        (1, "step_blocked", "b"),
    ]
    counters = update["plangate"]
    assert set(counters["calls"]) == {"a", "c"}
    assert (counters["calls"]["c"]["seq"], counters["calls"]["a"]["seq"]) == (2, 4)
    assert counters["seq"] == 7
    assert counters["calls"]["a"]["request"]["requested_at"] == "2026-01-05T09:00:00Z"
    assert counters["usage"]["total"] == 2  # the blocked call is not charged


def test_options_are_checked_once_and_early() -> None:
    """An unknown action is a usage mistake named at construction; the domain of a name
    without a dot is the whole name unless `domains` groups it."""
    with pytest.raises(PlangateUsageError, match="unknown action 'write'"):
        GovernanceMiddleware(actions={"crm.*": "write"})  # type: ignore[dict-item]
    governance = GovernanceMiddleware(
        actions={"crm_lookup": "read"}, default_action="propose", domains={"crm_*": "crm"}
    )
    assert governance.action_of("crm_lookup") == "read"
    assert governance.action_of("send_email") == "propose"
    assert governance.domain_of("crm_lookup") == "crm"
    assert governance.domain_of("send_email") == "send_email"
    assert governance.domain_of("crm.lookup") == "crm"


# --- budgets and the allowlist -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "calls", "tier"),
    [
        ({"total_calls": 2}, ["crm.lookup", "crm.note", "shell.run"], "total"),
        ({"calls_per_domain": 2}, ["crm.lookup", "crm.update", "crm.note"], "domain:crm"),
        ({"calls_per_tool": 2}, ["crm.lookup", "crm.lookup", "crm.lookup"], "tool:crm.lookup"),
    ],
)
def test_each_budget_tier_warns_once_then_blocks(
    agents: Agents, log: CallLog, budget: dict[str, Any], calls: list[str], tier: str
) -> None:
    """Three calls against a tier of two with a 50 % threshold: one `budget_warning` for the
    tier, then the third call is blocked (`budget_exceeded`, `step_blocked`, an error
    ToolMessage) and its tool is never called."""
    governance = GovernanceMiddleware(
        profile=profile("technical", budget=Budget(warning_threshold=0.5, **budget)),
    )
    agent = agents.build(script(*[[(name, {"text": "x"})] for name in calls]), [governance])
    turn = agents.start(agent)

    assert [e["data"]["tier"] for e in turn.of("budget_warning")].count(tier) == 1
    [exceeded] = turn.of("budget_exceeded")
    assert exceeded["data"] == {"tier": tier, "used": 2, "limit": 2}
    assert exceeded["step_id"] == "c3"
    [blocked] = turn.of("step_blocked")
    assert blocked["data"]["error_type"] == "budget_exceeded"
    assert len(log.calls) == 2
    message = tool_message(agents.state(agent), "c3")
    assert message.status == "error"
    assert "was not called" in str(message.content)


def test_calls_made_together_cannot_overrun_a_tier(agents: Agents, log: CallLog) -> None:
    """Three calls in one turn run concurrently; the budget is settled before any runs."""
    governance = GovernanceMiddleware(profile=profile("technical", budget=Budget(total_calls=2)))
    agent = agents.build(script([("crm.lookup", {"text": str(i)}) for i in range(3)]), [governance])
    turn = agents.start(agent)

    assert len(log.calls) == 2
    assert [e["step_id"] for e in turn.of("step_blocked")] == ["c3"]


def test_a_call_whose_args_no_plan_could_hold_is_blocked_and_the_agent_goes_on(
    agents: Agents, log: CallLog
) -> None:
    """A model asking with arguments nested deeper than a plan step may hold gets a blocked
    call it can read and fix, not a crashed run; the other call of its turn runs."""
    deep: Any = "x"
    for _ in range(80):
        deep = [deep]
    governance = GovernanceMiddleware(profile="technical")
    agent = agents.build(
        script([("crm.lookup", {"text": deep}), ("crm.note", {"text": "ok"})]), [governance]
    )
    turn = agents.start(agent)

    assert log.calls == [("crm.note", {"text": "ok"})]
    [blocked] = turn.of("step_blocked")
    assert (blocked["step_id"], blocked["data"]["error_type"]) == ("c1", "invalid_arguments")
    reply = tool_message(agents.state(agent), "c1")
    assert reply.status == "error"
    assert "invalid arguments: args.text" in str(reply.content)


def test_under_technical_an_irreversible_call_of_the_agent_still_asks(
    agents: Agents, log: CallLog
) -> None:
    """No auto-send for an agent's own calls either: `technical` asks nobody about the lookup,
    but `billing.pay` (irreversible by the profile's patterns) waits for a person, unless the
    profile names it exempt."""
    governance = GovernanceMiddleware(profile="technical")
    agent = agents.build(
        script([("crm.lookup", {"text": "acme"}), ("billing.pay", {"text": "10"})]), [governance]
    )
    turn = agents.start(agent)

    [waiting] = turn.interrupts
    assert (waiting.value["tool"], waiting.value["irreversible"]) == ("billing.pay", True)
    assert log.calls == [("crm.lookup", {"text": "acme"})]

    exempt = GovernanceMiddleware(profile=profile("technical", irreversible_exempt=["billing.pay"]))
    unattended = agents.build(script([("billing.pay", {"text": "10"})]), [exempt])
    assert agents.start(unattended).interrupts == []


def test_a_call_whose_args_hold_a_lone_surrogate_is_blocked_and_the_agent_goes_on(
    agents: Agents, log: CallLog
) -> None:
    """A lone surrogate (`"\\udfff"`) cannot be stored as UTF-8: the call is blocked with a
    message naming the arg, the agent reads it, and the other call of its turn runs."""
    governance = GovernanceMiddleware(profile="technical")
    agent = agents.build(
        script([("crm.lookup", {"text": "ana\udfff"}), ("crm.note", {"text": "ok"})]),
        [governance],
    )
    agents.start(agent)

    assert log.calls == [("crm.note", {"text": "ok"})]
    reply = tool_message(agents.state(agent), "c1")
    assert reply.status == "error"
    assert "invalid arguments: args.text: a string holds a lone surrogate" in str(reply.content)


def test_tool_outside_the_allowlist_is_never_called(agents: Agents, log: CallLog) -> None:
    governance = GovernanceMiddleware(profile=profile("technical", allowed_tools=["crm.*"]))
    agent = agents.build(
        script([("shell.run", {"text": "rm -rf /"}), ("crm.lookup", {"text": "acme"})]),
        [governance],
    )
    turn = agents.start(agent)

    assert log.calls == [("crm.lookup", {"text": "acme"})]
    [blocked] = turn.of("step_blocked")
    assert (blocked["tool"], blocked["data"]["error_type"]) == ("shell.run", "tool_not_allowed")
    values = agents.state(agent)
    assert tool_message(values, "c1").artifact == {"plangate": {"outcome": "blocked"}}
    assert values["plangate"]["usage"]["total"] == 1


def test_budget_survives_a_pause_and_is_per_thread(agents: Agents, log: CallLog) -> None:
    """Usage and warned tiers are agent state: a resume keeps counting where the run paused
    (no second warning, the limit still applies), and another thread starts from zero. A gated
    call is charged, and warned about, when it is admitted, before it waits."""
    governance = GovernanceMiddleware(
        profile=profile(budget=Budget(calls_per_tool=2, warning_threshold=0.5)),
        actions={"crm.*": "read"},
    )
    turns: list[Any] = [[("crm.lookup", {"text": "1"})], [("email.send", {"text": "hi"})]]
    turns += [[("crm.lookup", {"text": "2"})], [("crm.lookup", {"text": "3"})]]
    agent = agents.build(script(*turns, "done", [("crm.lookup", {"text": "4"})]), [governance])

    first = agents.start(agent)
    warned = [e["data"]["tier"] for e in first.of("budget_warning")]
    assert warned == ["tool:crm.lookup", "tool:email.send"]
    assert first.interrupts
    second = agents.resume(agent, {"decision": "approve"})
    assert second.of("budget_warning") == []
    assert [e["step_id"] for e in second.of("budget_exceeded")] == ["c4"]
    assert log.count("crm.lookup") == 2
    assert agents.state(agent)["plangate"]["warned"] == warned

    other = agents.start(agent, name="t2")
    assert [e["data"]["tier"] for e in other.of("budget_warning")] == ["tool:crm.lookup"]
    assert agents.state(agent, "t2")["plangate"]["usage"]["tools"] == {"crm.lookup": 1}
    assert log.count("crm.lookup") == 3


# --- approvals ---------------------------------------------------------------------------------


def test_gated_call_pauses_with_a_plangate_approval_request(
    agents: Agents, log: CallLog, clock: Clock
) -> None:
    governance = GovernanceMiddleware(profile="smb", clock=clock)
    agent = agents.build(script([("email.send", {"text": "Hi ana@example.com"})]), [governance])
    turn = agents.start(agent)

    assert log.calls == []
    [pause] = turn.interrupts
    request = pause.value
    assert request["type"] == "approval_request"
    assert (request["tool"], request["step_id"]) == ("email.send", "c1")
    assert request["action"] == "execute"  # the default action of an unclassified tool
    assert request["risk"] == "high"  # execute on an irreversible tool
    assert "cannot be undone" in request["consequence"]
    assert request["requested_at"] == "2026-01-05T09:00:00Z"
    assert request["expires_at"] == "2026-01-06T09:00:00Z"
    assert request["args"] == {"text": "Hi ana@example.com"}  # the person deciding sees it
    assert "text" in request["response_schema"]["properties"]["args"]["anyOf"][0]["properties"]
    assert request["trace_id"] == agents.state(agent)["plangate"]["trace_id"]
    [asked] = turn.of("approval_requested")
    assert asked["data"]["request_id"] == request["request_id"]


def test_four_eyes_hold_for_an_agents_own_call(agents: Agents, log: CallLog) -> None:
    """Under `approvals_required: {high: 2}` an agent's high-risk call waits for two different
    approvers: the same one again is asked about anew, with why, and nothing runs until a
    second person approves."""
    four_eyes = load_profile("smb").model_copy(update={"approvals_required": {"high": 2}})
    governance = GovernanceMiddleware(profile=four_eyes)
    agent = agents.build(script([("email.send", {"text": "hi"})], "sent"), [governance])
    [pause] = agents.start(agent).interrupts
    assert pause.value["approvals_required"] == 2

    [again] = agents.resume(agent, {"decision": "approve", "approver": "lee"}).interrupts
    assert [a["approver"] for a in again.value["approvals_so_far"]] == ["lee"]
    [refused] = agents.resume(agent, {"decision": "approve", "approver": "lee"}).interrupts
    assert "'lee' has approved this request already" in refused.value["error"]
    assert log.calls == []

    agents.resume(agent, {"decision": "approve", "approver": "kim"})
    assert log.calls == [("email.send", {"text": "hi"})]


def test_four_eyes_take_a_name_read_as_the_first_approvers_as_the_same_person(
    agents: Agents, log: CallLog
) -> None:
    """After `lee`, each spelling a person reads as `lee` again (or a blank name) is asked about
    anew with why, and the agent's call runs only after a second person approves."""
    four_eyes = load_profile("smb").model_copy(update={"approvals_required": {"high": 2}})
    agent = agents.build(
        script([("email.send", {"text": "hi"})], "sent"), [GovernanceMiddleware(profile=four_eyes)]
    )
    agents.start(agent)
    agents.resume(agent, {"decision": "approve", "approver": "lee"})

    for again in SAME_AS_LEE:
        [refused] = agents.resume(agent, {"decision": "approve", "approver": again}).interrupts
        assert "invalid decision: approver:" in refused.value["error"], again
        assert [a["approver"] for a in refused.value["approvals_so_far"]] == ["lee"]
    assert log.calls == []

    agents.resume(agent, {"decision": "approve", "approver": "kim"})
    assert log.calls == [("email.send", {"text": "hi"})]


def test_tools_declaring_themselves_are_governed_by_their_declaration(
    agents: Agents, log: CallLog
) -> None:
    """With no `actions` at all, a tool's own declaration decides: a declared read runs
    unasked, a declared irreversible execute waits as high risk, even though the operator's
    `default_action` for undeclared tools is `read`; the operator's `actions` still come first."""
    tools = [
        *counting_tools(log, "crm.lookup", action="read"),
        *(
            declare_action(tool, action="execute", irreversible=True)
            for tool in counting_tools(log, "files.shred", action=None)
        ),
        *counting_tools(log, "crm.note", action="execute"),
    ]
    governance = GovernanceMiddleware(
        profile="smb", default_action="read", actions={"crm.note": "read"}
    )
    calls = [("crm.lookup", {"text": "a"}), ("files.shred", {"text": "b"}), ("crm.note", {})]
    agent = agents.build(script(calls), [governance], tools=tools)

    turn = agents.start(agent)

    assert sorted(name for name, _ in log.calls) == ["crm.lookup", "crm.note"]
    [pause] = turn.interrupts
    request = pause.value
    assert (request["tool"], request["action"], request["action_source"]) == (
        "files.shred",
        "execute",
        "tool",
    )
    assert (request["irreversible"], request["risk"]) == (True, "high")
    assert governance.action_of("crm.note") == "read"  # the operator's word first


@pytest.mark.parametrize(
    "case",
    [
        ({"decision": "approve", "approver": "lee"}, {"text": "hi"}, "success", "echo"),
        (
            {"decision": "edit", "args": {"text": "hello"}},
            {"text": "hello"},
            "success",
            "a person edited the arguments",
        ),
        ({"decision": "reject", "reason": "wrong customer"}, None, "error", "wrong customer"),
        ({"decision": "respond", "message": "sent it myself"}, None, "success", "sent it myself"),
        (Decision(decision="approve"), {"text": "hi"}, "success", "echo"),
    ],
    ids=["approve", "edit", "reject", "respond", "decision-model"],
)
def test_each_decision(
    agents: Agents, log: CallLog, clock: Clock, case: tuple[Any, dict[str, Any] | None, str, str]
) -> None:
    """approve and edit run the tool (edit with the new args, and the model is told); reject
    and respond do not, and give the charge back; the model reads the reason or the reply."""
    decision, ran_with, status, content = case
    governance = GovernanceMiddleware(profile="smb", clock=clock)
    agent = agents.build(script([("email.send", {"text": "hi"})]), [governance])
    agents.start(agent)
    clock.advance(minutes=5)
    turn = agents.resume(agent, decision)

    assert log.calls == ([("email.send", ran_with)] if ran_with else [])
    [received] = turn.of("approval_received")
    assert received["data"]["wait_ms"] == 300_000
    values = agents.state(agent)
    message = tool_message(values, "c1")
    assert (message.status, content in str(message.content)) == (status, True)
    assert values["plangate"]["usage"]["total"] == (1 if ran_with else 0)
    assert values["messages"][-1].content == "done"


def test_a_decision_after_expiry_does_not_run_the_call(
    agents: Agents, log: CallLog, clock: Clock
) -> None:
    governance = GovernanceMiddleware(profile="smb", clock=clock)
    agent = agents.build(script([("email.send", {"text": "hi"})]), [governance])
    agents.start(agent)
    clock.advance(hours=25)
    turn = agents.resume(agent, {"decision": "approve"})

    assert log.calls == []
    [timeout] = turn.of("approval_timeout")
    assert timeout["data"]["expires_at"] == "2026-01-06T09:00:00Z"
    assert turn.of("tool_call_start") == []
    message = tool_message(agents.state(agent), "c1")
    assert (message.status, message.artifact) == ("error", {"plangate": {"outcome": "expired"}})


def test_an_invalid_decision_is_asked_again(agents: Agents, log: CallLog) -> None:
    """An edit without args (or with args the tool rejects) never runs the tool: the same
    request is asked again, with an `error`, and a valid decision still works."""
    governance = GovernanceMiddleware(profile="smb")
    agent = agents.build(script([("email.send", {"text": "hi"})]), [governance])
    agents.start(agent)

    again = agents.resume(agent, {"decision": "edit"})
    [pause] = again.interrupts
    assert "args" in pause.value["error"]
    again = agents.resume(agent, {"decision": "edit", "args": {"text": 3}})
    [pause] = again.interrupts
    assert "args.text" in pause.value["error"]
    assert log.calls == []
    agents.resume(agent, {"decision": "approve"})
    assert log.calls == [("email.send", {"text": "hi"})]


def test_gated_calls_of_one_turn_wait_together(agents: Agents, log: CallLog) -> None:
    """Two gated calls in one turn pause at once, each answered by its interrupt id; the read
    in the same turn runs meanwhile."""
    governance = GovernanceMiddleware(profile="smb", actions={"crm.*": "read"})
    agent = agents.build(
        script(
            [
                ("email.send", {"text": "to ana"}),
                ("crm.lookup", {"text": "acme"}),
                ("billing.pay", {"text": "10 EUR"}),
            ]
        ),
        [governance],
    )
    turn = agents.start(agent)
    assert log.calls == [("crm.lookup", {"text": "acme"})]
    by_tool = {i.value["tool"]: i for i in turn.interrupts}
    assert set(by_tool) == {"email.send", "billing.pay"}
    assert by_tool["billing.pay"].value["risk"] == "high"  # irreversible, sensitive domain

    answers = {
        by_tool["email.send"].id: {"decision": "reject", "reason": "no"},
        by_tool["billing.pay"].id: {"decision": "approve"},
    }
    agents.resume(agent, answers)
    # billing.pay runs and fails: under on_error `continue` the model reads the error.
    assert [name for name, _ in log.calls] == ["crm.lookup", "billing.pay"]
    values = agents.state(agent)
    assert tool_message(values, "c3").status == "error"
    [failed] = [e for e in agents.events if e["type"] == "tool_call_error"]
    assert (failed["step_id"], failed["data"]["message"]) == ("c3", "billing.pay is down")
    assert values["plangate"]["usage"]["total"] == 2  # the rejected call is given back


# --- trace events ------------------------------------------------------------------------------


def test_seq_grows_by_one_across_turns_pauses_and_resumes(agents: Agents) -> None:
    """A read, a gated send (pause, resume), another read: one trace, numbered 0..n-1."""
    governance = GovernanceMiddleware(profile="smb", actions={"crm.*": "read"})
    agent = agents.build(
        script(
            [("crm.lookup", {"text": "acme"})],
            [("email.send", {"text": "hi"})],
            [("crm.update", {"text": "sent"})],
        ),
        [governance],
    )
    agents.start(agent)
    agents.resume(agent, {"decision": "approve"})

    events = agents.events
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert len({e["trace_id"] for e in events}) == 1
    assert all(e["type"] in EVENT_TYPES for e in events)
    assert [(e["type"], e["step_id"]) for e in events] == [
        ("tool_call_start", "c1"),
        ("tool_call_complete", "c1"),
        ("approval_requested", "c2"),
        ("approval_received", "c2"),
        ("tool_call_start", "c2"),
        ("tool_call_complete", "c2"),
        ("tool_call_start", "c3"),
        ("tool_call_complete", "c3"),
    ]
    assert agents.state(agent)["plangate"]["seq"] == len(events)


def test_seq_stays_increasing_when_gated_calls_of_one_turn_do_not_run(agents: Agents) -> None:
    """Numbers are reserved per call before the calls run concurrently: a rejected call that
    is not the last reserved leaves unused numbers, and nothing is ever numbered twice."""
    governance = GovernanceMiddleware(profile="smb")
    agent = agents.build(
        script([("email.send", {"text": "a"}), ("crm.update", {"text": "b"})], [("crm.note", {})]),
        [governance],
    )
    turn = agents.start(agent)
    first, second = turn.interrupts
    agents.resume(agent, {first.id: {"decision": "reject"}, second.id: {"decision": "reject"}})
    tail = agents.resume(agent, {"decision": "reject"})

    seqs = [e["seq"] for e in agents.events]
    assert sorted(seqs) == sorted(set(seqs))
    assert min(e["seq"] for e in tail.events) > max(seqs[: -len(tail.events)])


@pytest.mark.parametrize("redact", [True, False])
def test_redaction_follows_the_profile(agents: Agents, redact: bool) -> None:
    """The trace is redacted as the profile says; the approval request never is."""
    governance = GovernanceMiddleware(profile=profile(redact=redact), actions={"crm.*": "read"})
    agent = agents.build(
        script(
            [("crm.lookup", {"text": "ana@example.com"})], [("email.send", {"text": "bo@x.io"})]
        ),
        [governance],
    )
    turn = agents.start(agent)

    [start] = turn.of("tool_call_start")
    [pause] = turn.interrupts
    assert start["data"]["args"]["text"] == ("[REDACTED_EMAIL]" if redact else "ana@example.com")
    assert pause.value["args"]["text"] == "bo@x.io"
    [requested] = turn.of("approval_requested")
    assert requested["data"]["args"]["text"] == ("[REDACTED_EMAIL]" if redact else "bo@x.io")
    # The model and the tool always get the real values.
    content = str(tool_message(agents.state(agent), "c1").content)
    assert "ana@example.com" in content


def test_a_failing_tool_ends_the_run_when_the_profile_halts(agents: Agents, log: CallLog) -> None:
    # `billing.pay` cannot be undone: exempt, so that it runs unasked and fails.
    rules = profile("technical", on_error="halt", irreversible_exempt=["billing.pay"])
    governance = GovernanceMiddleware(profile=rules)
    agent = agents.build(script([("billing.pay", {"text": "10"})]), [governance])
    with pytest.raises(ToolException, match=r"billing\.pay is down"):
        agents.start(agent)
    assert [e["type"] for e in agents.events] == ["tool_call_start", "tool_call_error"]


# --- side by side with LangChain's own middleware ------------------------------------------------


def test_side_by_side_with_langchain_hitl_and_tool_call_limit(
    agents: Agents, log: CallLog, clock: Clock
) -> None:
    """The same scripted conversation, governed once by plangate and once by LangChain's
    `HumanInTheLoopMiddleware` + `ToolCallLimitMiddleware`.

    Alike: the gated `email.send` pauses the agent before it runs, and runs once approved; a
    second `crm.lookup` past a per-tool limit of one is blocked with an error ToolMessage.
    plangate adds: risk, consequence and expiry in the request, with PII redacted; a
    per-domain tier (a third `crm` call); an allowlist (`shell.run`); canonical trace events.
    """
    conversation: list[list[tuple[str, dict[str, Any]]]] = [
        [("crm.lookup", {"text": "acme"})],
        [("crm.lookup", {"text": "acme again"})],
        [("crm.update", {"text": "stage: won"})],
        [("crm.note", {"text": "call back"})],
        [("email.send", {"text": "Hi ana@example.com"})],
        [("shell.run", {"text": "rm -rf /"})],
    ]
    plangate = GovernanceMiddleware(
        profile=profile(
            budget=Budget(calls_per_tool=1, calls_per_domain=2),
            allowed_tools=["crm.*", "email.*"],
        ),
        actions={"crm.*": "read"},
        clock=clock,
    )
    langchain = [
        ToolCallLimitMiddleware(tool_name="crm.lookup", thread_limit=1),
        HumanInTheLoopMiddleware(interrupt_on={"email.send": True}),
    ]
    ours, theirs = CallLog(), CallLog()
    outcomes = {}
    for name, calls, middleware, approve in [
        ("plangate", ours, [plangate], {"decision": "approve"}),
        ("langchain", theirs, langchain, {"decisions": [{"type": "approve"}]}),
    ]:
        agents.log = calls
        agents.events = []
        agent = agents.build(script(*conversation), middleware)
        paused = agents.start(agent, name=name)
        sent_before_approval = calls.count("email.send")
        agents.resume(agent, approve, name=name)
        outcomes[name] = (agent, paused, sent_before_approval, list(agents.events))

    # Alike: the pause, and the per-tool limit.
    for name, calls in [("plangate", ours), ("langchain", theirs)]:
        agent, paused, sent_before_approval, _ = outcomes[name]
        assert len(paused.interrupts) == 1
        assert (sent_before_approval, calls.count("email.send")) == (0, 1)
        assert calls.count("crm.lookup") == 1
        assert tool_message(agents.state(agent, name), "c2").status == "error"

    # plangate's request says how risky the action is, what it does, and until when it may be
    # approved; LangChain's names the tool and its raw arguments.
    ours_request = outcomes["plangate"][1].interrupts[0].value
    theirs_request = outcomes["langchain"][1].interrupts[0].value
    assert ours_request["risk"] == "high"
    assert "cannot be undone" in ours_request["consequence"]
    assert ours_request["expires_at"] == "2026-01-06T09:00:00Z"
    assert ours_request["args"] == {"text": "Hi ana@example.com"}
    [action] = theirs_request["action_requests"]
    assert action["args"] == {"text": "Hi ana@example.com"}
    assert not {"risk", "consequence", "expires_at"} & (set(theirs_request) | set(action))

    # The per-domain tier and the allowlist exist only in plangate.
    assert (ours.count("crm.note"), theirs.count("crm.note")) == (0, 1)
    assert (ours.count("shell.run"), theirs.count("shell.run")) == (0, 1)

    # Canonical trace events: plangate's custom stream holds the whole story; LangChain's is
    # empty.
    events = outcomes["plangate"][3]
    assert [e["seq"] for e in events] == list(range(len(events)))
    blocked = {e["tool"]: e["data"]["error_type"] for e in events if e["type"] == "step_blocked"}
    assert blocked == {
        "crm.lookup": "budget_exceeded",
        "crm.note": "budget_exceeded",
        "shell.run": "tool_not_allowed",
    }
    assert [e["data"]["tier"] for e in events if e["type"] == "budget_exceeded"] == [
        "tool:crm.lookup",
        "domain:crm",
    ]
    assert outcomes["langchain"][3] == []


def test_without_langchain_the_middleware_names_the_extra_to_install(tmp_path: Path) -> None:
    """`import plangate` works without `langchain`; asking for the middleware then says which
    extra brings it, in one line."""
    code = (
        "import sys\n"
        "sys.modules['langchain'] = None  # as if it were not installed\n"
        "import plangate\n"
        "try:\n"
        "    plangate.GovernanceMiddleware\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = run_in(tmp_path, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "GovernanceMiddleware needs langchain: install plangate's `langchain` extra "
        "(from a checkout: pip install '.[langchain]')"
    )


def test_an_agents_own_call_obeys_identity_required_and_takes_a_signed_decision(
    agents: Agents, log: CallLog
) -> None:
    """Under `identity_required`, an unsigned decision on the agent's high-risk call is asked
    again with why; one with a proof made by the middleware's key runs it, recorded as that
    person."""
    signer = DecisionSigner(b"the agent's project signing key")
    governance = GovernanceMiddleware(profile=profile(identity_required="high"), signer=signer)
    agent = agents.build(script([("email.send", {"text": "hi"})], "sent"), [governance])
    [pause] = agents.start(agent).interrupts

    [again] = agents.resume(agent, {"decision": "approve", "approver": "lee"}).interrupts
    assert "wants a verified identity from high up; 'lee' is unverified" in again.value["error"]
    assert log.calls == []

    lee: Identity = {
        "subject": "u-lee",
        "name": "Lee",
        "email": None,
        "groups": [],
        "verified_by": "token",
    }
    request = pause.value
    proof = signer.sign_decision(
        {"decision": "approve"},
        request_id=request["request_id"],
        digest=request["digest"],
        identity=lee,
    )
    turn = agents.resume(agent, {"decision": "approve", "identity": lee, "proof": proof})
    assert log.calls == [("email.send", {"text": "hi"})]
    (received,) = turn.of("approval_received")
    assert received["data"]["verified_by"] == "token"
    assert received["data"]["identity"]["subject"] == "u-lee"
