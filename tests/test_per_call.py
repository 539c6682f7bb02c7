"""LangChain's per-call HITL form (`interrupt_mode="per_call"`, LangChain 1.5): with the run's
config naming it, a request about one tool call is valid against LangChain's own
`ToolApprovalRequest`; a single decision built with LangChain's own types (`ApproveDecision`,
`EditDecision`, `RejectDecision`, `RespondDecision`) answers a request in either form, on every
path: the graph, `as_tool` inside an agent, `GovernanceMiddleware` inside `create_agent`, and
LangGraph's server. A per-call answer is bound by where it is sent (its interrupt's id, or the
only request waiting) and any `tool_call_id` it names; whatever is refused leaves the run paused
on the same request, and a correct answer then goes on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from _support import CallLog, Runner, counting_tools, plan_of, thread
from langchain.agents import create_agent
from langchain.agents.middleware.human_in_the_loop import (
    Action,
    ApproveDecision,
    Decision,
    EditDecision,
    HITLRequest,
    RejectDecision,
    RespondDecision,
    ToolApprovalRequest,
)
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.types import Command, Interrupt
from langgraph_sdk.client import SyncLangGraphClient
from pydantic import TypeAdapter
from test_langgraph_server import (  # noqa: F401  (the server's fixtures, used by name)
    GRAPH_ID,
    Server,
    _emails,
    _pending,
    _thread,
    client,
    plan,
    server,
)
from test_langgraph_server import pytestmark as needs_langgraph_dev

from plangate import InvalidDecision, PlangateGraph, PlangateUsageError, load_profile
from plangate.integrations.as_tool import as_tool
from plangate.integrations.middleware import GovernanceMiddleware

TOOL_APPROVAL = TypeAdapter(ToolApprovalRequest)
HITL_REQUEST = TypeAdapter(HITLRequest)
DECISION: TypeAdapter[Decision] = TypeAdapter(Decision)

SEND = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "to ana"}}
APPROVE = ApproveDecision(type="approve")


def per_call(name: str = "t1") -> dict[str, Any]:
    """A run's config on thread `name` asking for the per-call form, naming the approver."""
    return {"configurable": {"thread_id": name, "interrupt_mode": "per_call", "approver": "lee"}}


def edit(tool: str, **args: Any) -> EditDecision:
    return EditDecision(type="edit", edited_action=Action(name=tool, args=args))


def answer(decision: Any) -> Command:
    """A resume carrying `decision`, checked first to be one of LangChain's own decisions."""
    DECISION.validate_python(decision)
    return Command(resume=decision)


@pytest.fixture
def graph(runner: Runner, log: CallLog) -> PlangateGraph:
    return runner.graph(counting_tools(log, "email.send", "email.draft"), profile="smb")


def waiting(runner: Runner, graph: PlangateGraph, config: dict[str, Any]) -> list[Interrupt]:
    return list(runner.state(graph, config).interrupts)


# --- the graph ----------------------------------------------------------------------------------


def test_a_step_asks_with_a_tool_approval_request_under_per_call(
    runner: Runner, graph: PlangateGraph
) -> None:
    out = runner.invoke(graph, {"plan": plan_of({**SEND, "description": "Tell Ana"})}, per_call())

    (pause,) = out["__interrupt__"]
    request = pause.value
    assert TOOL_APPROVAL.validate_python(request) == {
        "type": "tool_approval",
        "tool_call_id": "send",
        "name": "email.send",
        "args": {"text": "to ana"},
        "description": request["description"],
    }
    assert request["description"].startswith("Tell Ana\n\nIf approved, plangate will tell Ana")
    assert "action_requests" not in request  # one form per request
    # plangate's own fields stay: what binds a plangate decision and what the approver reads.
    assert {"request_id", "digest", "risk", "consequence", "step_id"} <= set(request)


def test_without_the_option_a_request_stays_batched_and_takes_a_per_call_answer(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    """The issue's case: a single `{"type": "approve"}` used to be refused as an extra field."""
    config = {"configurable": {"thread_id": "t1", "approver": "kim"}}
    request = runner.invoke(graph, {"plan": plan_of(SEND)}, config)["__interrupt__"][0].value
    HITL_REQUEST.validate_python(request)
    assert request["type"] == "approval_request"

    out = runner.invoke(graph, answer(APPROVE), config)

    assert out["result"]["status"] == "success"
    assert out["result"]["approvals"][0]["approver"] == "kim"
    assert log.calls == [("email.send", {"text": "to ana"})]


@pytest.mark.parametrize(
    ("decision", "recorded", "calls"),
    [
        (APPROVE, ("approve", None, None), [("email.send", {"text": "to ana"})]),
        (
            edit("email.send", text="to bo"),
            ("edit", None, {"text": "to bo"}),
            [("email.send", {"text": "to bo"})],
        ),
        (RejectDecision(type="reject", message="not ana"), ("reject", "not ana", None), []),
        (RespondDecision(type="respond", message="ana said yes"), ("respond", None, None), []),
    ],
)
def test_each_per_call_decision_is_recorded_as_the_batch_form_records_it(
    runner: Runner,
    graph: PlangateGraph,
    log: CallLog,
    *,
    decision: Decision,
    recorded: tuple[str, str | None, dict[str, Any] | None],
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, per_call())

    out = runner.invoke(graph, answer(decision), per_call())

    (approval,) = out["result"]["approvals"]
    assert (approval["decision"], approval["reason"], approval["args"]) == recorded
    assert approval["approver"] == "lee"  # from the run's config, as for the batch form
    assert log.calls == calls
    if decision["type"] == "respond":
        assert out["result"]["steps"][0]["output"] == "ana said yes"


def test_a_plan_review_stays_batched_and_the_steps_after_it_ask_per_call(
    runner: Runner, log: CallLog
) -> None:
    """A plan review is about no one tool call, so it keeps the batch form; it takes a per-call
    answer all the same."""
    graph = runner.graph(counting_tools(log, "email.send"), profile="enterprise")
    review = runner.invoke(graph, {"plan": plan_of(SEND)}, per_call())["__interrupt__"][0].value
    assert review["type"] == "plan_review"
    HITL_REQUEST.validate_python(review)

    out = runner.invoke(graph, answer(APPROVE), per_call())

    # enterprise's review covers what is below high risk: the send still asks, per call.
    step = out["__interrupt__"][0].value
    assert TOOL_APPROVAL.validate_python(step)["tool_call_id"] == "send"
    out = runner.invoke(graph, answer(APPROVE), per_call())
    assert out["result"]["status"] == "success"


@pytest.mark.parametrize(
    ("resume", "field", "says"),
    [
        (edit("email.send", to="bo"), "args.to", "email.send takes no argument 'to'"),
        (edit("email.send", text=3), "args.text", "Input should be a valid string"),
        (edit("email.draft", text="x"), "edited_action.name", "cannot call 'email.draft'"),
        ({**APPROVE, "tool_call_id": "draft"}, "tool_call_id", "about tool call 'draft'"),
        ({"type": "ignore"}, "type", "does not match any of the expected tags"),
        ({"type": "accept"}, "type", "does not match any of the expected tags"),
        ({**APPROVE, "approver": "mallory"}, "approve.approver", "Extra inputs"),
        ({**APPROVE, "decision": "approve"}, "approve.decision", "Extra inputs"),
        ({**APPROVE, "request_id": "x"}, "approve.request_id", "Extra inputs"),
        (
            {"type": "reject", "message": "no", "reason": "no"},
            "reject.reason",
            "Extra inputs",
        ),
    ],
)
def test_a_bad_per_call_answer_is_refused_in_one_line_and_the_run_waits(
    runner: Runner,
    graph: PlangateGraph,
    log: CallLog,
    *,
    resume: dict[str, Any],
    field: str,
    says: str,
) -> None:
    request = runner.invoke(graph, {"plan": plan_of(SEND)}, per_call())["__interrupt__"][0].value

    with pytest.raises(InvalidDecision) as refused:
        runner.invoke(graph, Command(resume=resume), per_call())

    assert "\n" not in str(refused.value)
    assert refused.value.field == field
    assert says in refused.value.message
    (still,) = waiting(runner, graph, per_call())
    assert still.value["request_id"] == request["request_id"]
    assert log.calls == []

    out = runner.invoke(graph, answer(APPROVE), per_call())
    assert out["result"]["status"] == "success"
    assert log.calls == [("email.send", {"text": "to ana"})]


def test_a_bare_per_call_answer_while_two_wait_is_refused_then_each_is_answered_by_its_id(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    two = plan_of(SEND, {**SEND, "id": "send2", "args": {"text": "to bo"}}, order="dependencies")
    out = runner.invoke(graph, {"plan": two}, per_call())
    by_call = {i.value["tool_call_id"]: i for i in out["__interrupt__"]}
    assert set(by_call) == {"send", "send2"}

    for bare in (APPROVE, {**APPROVE, "tool_call_id": "send"}):
        with pytest.raises(InvalidDecision, match="2 approvals are pending") as refused:
            runner.invoke(graph, Command(resume=bare), per_call())
        assert "\n" not in str(refused.value)
        assert len(waiting(runner, graph, per_call())) == 2
    # Keyed by interrupt id, but naming the other call: the request it was sent to is the one.
    crossed = {by_call["send"].id: {**APPROVE, "tool_call_id": "send2"}}
    with pytest.raises(InvalidDecision, match="about tool call 'send2'"):
        runner.invoke(graph, Command(resume=crossed), per_call())
    assert log.calls == []

    out = runner.invoke(
        graph,
        Command(
            resume={
                by_call["send"].id: APPROVE,
                by_call["send2"].id: RejectDecision(type="reject", message="not bo"),
            }
        ),
        per_call(),
    )

    steps = {s["step_id"]: s["status"] for s in out["result"]["steps"]}
    assert steps == {"send": "ok", "send2": "rejected"}
    assert log.calls == [("email.send", {"text": "to ana"})]


def test_an_interrupt_mode_nobody_speaks_is_refused_before_anything_runs(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    config = {"configurable": {"thread_id": "t1", "interrupt_mode": "per-call"}}

    with pytest.raises(PlangateUsageError, match="interrupt_mode: must be 'batched' or 'per_call'"):
        runner.invoke(graph, {"plan": plan_of(SEND)}, config)

    assert runner.state(graph, thread()).values == {}
    assert log.calls == []


# --- agents: `as_tool` and `GovernanceMiddleware` -----------------------------------------------


class ScriptedModel(GenericFakeChatModel):
    """Answers with its scripted messages in order; binding tools only returns itself."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


def agent(runner: Runner, tools: Sequence[Any], *turns: AIMessage, **kwargs: Any) -> Any:
    """An agent on the runner's SQLite file whose model plays `turns`, then says `done`."""
    model = ScriptedModel(messages=iter([*turns, AIMessage(content="done")]))
    return create_agent(model, tools=list(tools), checkpointer=runner.saver(), **kwargs)


def calling(*calls: tuple[str, str, dict[str, Any]]) -> AIMessage:
    """A model turn asking for (tool call id, tool, args) calls."""
    return AIMessage(
        content="", tool_calls=[{"id": i, "name": name, "args": args} for i, name, args in calls]
    )


def tool_message(out: dict[str, Any], call_id: str) -> ToolMessage:
    messages: list[BaseMessage] = out["messages"]
    return next(m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id == call_id)


GO = {"messages": [HumanMessage("go")]}


def test_as_tool_asks_the_agent_per_call_and_takes_langchains_decisions(
    runner: Runner, log: CallLog
) -> None:
    tool = as_tool(counting_tools(log, "email.send"), profile="smb")
    bot = agent(runner, [tool], calling(("plan-1", "execute_plan", plan_of(SEND))))
    (pause,) = runner.invoke(bot, GO, per_call("chat"))["__interrupt__"]
    assert TOOL_APPROVAL.validate_python(pause.value)["tool_call_id"] == "send"  # the plan's step

    # Refused inside the agent: the same request is asked again with the one-line `error`.
    crossed = runner.invoke(bot, Command(resume={**APPROVE, "tool_call_id": "x"}), per_call("chat"))
    (again,) = crossed["__interrupt__"]
    assert again.value["error"].startswith("invalid decision: tool_call_id: ")
    assert "\n" not in again.value["error"]
    assert again.value["request_id"] == pause.value["request_id"]
    bad_edit = runner.invoke(bot, answer(edit("email.send", to="bo")), per_call("chat"))
    assert "args.to" in bad_edit["__interrupt__"][0].value["error"]
    assert log.calls == []

    out = runner.invoke(bot, answer(edit("email.send", text="to bo")), per_call("chat"))

    approval = tool_message(out, "plan-1").artifact["approvals"][0]
    assert (approval["decision"], approval["approver"]) == ("edit", "lee")
    assert log.calls == [("email.send", {"text": "to bo"})]


def test_governance_middleware_asks_per_call_with_the_models_tool_call_ids(
    runner: Runner, log: CallLog
) -> None:
    tools = counting_tools(log, "email.send", "billing.pay", action=None)
    turn = calling(("c1", "email.send", {"text": "to ana"}), ("c2", "billing.pay", {"text": "9"}))
    bot = agent(runner, tools, turn, middleware=[GovernanceMiddleware(profile="smb")])
    out = runner.invoke(bot, GO, per_call("chat"))
    by_call = {i.value["tool_call_id"]: i for i in out["__interrupt__"]}
    assert set(by_call) == {"c1", "c2"}
    for pause in by_call.values():
        assert TOOL_APPROVAL.validate_python(pause.value)["name"] == pause.value["tool"]

    # Two wait: LangGraph itself refuses an answer that says not which; nothing changes.
    with pytest.raises(RuntimeError, match="multiple pending interrupts"):
        runner.invoke(bot, answer(APPROVE), per_call("chat"))
    # Sent to c1's interrupt but naming c2: c1 is asked again, with the error.
    crossed = {by_call["c1"].id: {**APPROVE, "tool_call_id": "c2"}}
    out = runner.invoke(bot, Command(resume=crossed), per_call("chat"))
    errors = {i.value["tool_call_id"]: i.value.get("error") for i in out["__interrupt__"]}
    assert str(errors["c1"]).startswith("invalid decision: tool_call_id: ")
    assert errors["c2"] is None
    assert log.calls == []

    answers = {i.value["tool_call_id"]: i.id for i in out["__interrupt__"]}
    out = runner.invoke(
        bot,
        Command(
            resume={
                answers["c1"]: edit("email.send", text="to bo"),
                answers["c2"]: RejectDecision(type="reject", message="not today"),
            }
        ),
        per_call("chat"),
    )

    assert log.calls == [("email.send", {"text": "to bo"})]
    assert "not today" in str(tool_message(out, "c2").content)
    assert tool_message(out, "c2").artifact == {"plangate": {"outcome": "rejected"}}


def test_governance_middleware_refuses_an_interrupt_mode_nobody_speaks_before_asking(
    runner: Runner, log: CallLog
) -> None:
    tools = counting_tools(log, "email.send", action=None)
    turn = calling(("c1", "email.send", {"text": "hi"}))
    bot = agent(runner, tools, turn, middleware=[GovernanceMiddleware(profile="smb")])
    config = {"configurable": {"thread_id": "chat", "interrupt_mode": "batch"}}

    with pytest.raises(PlangateUsageError, match="interrupt_mode: must be"):
        runner.invoke(bot, GO, config)

    assert log.calls == []


def test_the_same_per_call_answers_resume_langchains_own_middleware_and_plangates(
    runner: Runner, log: CallLog
) -> None:
    """What a client written for `HumanInTheLoopMiddleware(interrupt_mode="per_call")` reads and
    sends works unchanged against `GovernanceMiddleware`."""
    from langchain.agents.middleware import HumanInTheLoopMiddleware

    theirs = HumanInTheLoopMiddleware(interrupt_on={"email.send": True}, interrupt_mode="per_call")
    ours = GovernanceMiddleware(profile=load_profile("smb"))
    for name, middleware in (("langchain", theirs), ("plangate", ours)):
        tools = counting_tools(log, "email.send", action=None)
        bot = agent(
            runner, tools, calling(("c1", "email.send", {"text": "hi"})), middleware=[middleware]
        )
        (pause,) = runner.invoke(bot, GO, per_call(name))["__interrupt__"]
        request = TOOL_APPROVAL.validate_python(pause.value)
        assert (request["tool_call_id"], request["name"]) == ("c1", "email.send"), name

        runner.invoke(
            bot, Command(resume={pause.id: edit(request["name"], text="edited")}), per_call(name)
        )

    assert log.calls == [("email.send", {"text": "edited"})] * 2


# --- LangGraph's server -------------------------------------------------------------------------


@needs_langgraph_dev
def test_the_server_asks_per_call_refuses_a_crossed_answer_and_takes_a_keyed_one(
    server: Server,  # noqa: F811  (the fixtures imported above)
    client: SyncLangGraphClient,  # noqa: F811
    plan: dict[str, Any],  # noqa: F811
) -> None:
    """Through `langgraph dev` and its Python SDK: the run's config asks for the per-call form;
    an answer naming another tool call fails its run by name and the request still waits; an
    answer keyed by the interrupt's id, the approver in the config, sends once."""
    emails_before = len(_emails(server))
    thread_id = _thread(client)
    config = {"configurable": {"interrupt_mode": "per_call", "approver": "lee"}}
    client.runs.wait(thread_id, GRAPH_ID, input={"plan": plan}, config=config)
    (pending,) = _pending(client, thread_id)
    request = TOOL_APPROVAL.validate_python(pending["value"])
    assert (request["tool_call_id"], request["name"]) == ("send", "email.send")

    failed = client.runs.wait(
        thread_id,
        GRAPH_ID,
        command={"resume": {**APPROVE, "tool_call_id": "lookup"}},
        config=config,
        raise_error=False,
    )
    assert failed["__error__"]["error"] == "InvalidDecision"
    assert "invalid decision: tool_call_id:" in failed["__error__"]["message"]
    assert [i["id"] for i in _pending(client, thread_id)] == [pending["id"]]
    assert len(_emails(server)) == emails_before

    client.runs.wait(
        thread_id, GRAPH_ID, command={"resume": {pending["id"]: APPROVE}}, config=config
    )

    result = client.threads.get_state(thread_id)["values"]["result"]
    assert result["status"] == "success"
    assert [(a["decision"], a["approver"]) for a in result["approvals"]] == [("approve", "lee")]
    assert len(_emails(server)) == emails_before + 1
