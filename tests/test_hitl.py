"""LangChain's human-in-the-loop format: every request carries `action_requests` and
`review_configs` valid against LangChain's own TypedDicts (and what Agent Chat UI checks before
it shows buttons), and a resume `{"decisions": [...]}` is taken on every path, checked like a
plangate decision, its approver read from the run's config."""

from __future__ import annotations

from typing import Any

import pytest
from _support import SAME_AS_LEE, CallLog, Runner, counting_tools, plan_of
from langchain.agents.middleware.human_in_the_loop import HITLRequest, HITLResponse
from langgraph.types import Command
from pydantic import TypeAdapter

from plangate import InvalidDecision, PlangateGraph, load_profile

SEND = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "to ana"}}
DRAFT = {"id": "draft", "tool": "email.draft", "action": "propose", "args": {"text": "hi"}}
HITL_REQUEST = TypeAdapter(HITLRequest)
HITL_RESPONSE = TypeAdapter(HITLResponse)


def config(approver: str | None = "lee", *, where: str = "configurable") -> dict[str, Any]:
    """A run's config on thread `t1`, naming the approver where a LangGraph client would."""
    found: dict[str, Any] = {"configurable": {"thread_id": "t1"}}
    if approver is not None:
        found.setdefault(where, {})["approver"] = approver
    return found


@pytest.fixture
def graph(runner: Runner, log: CallLog) -> PlangateGraph:
    return runner.graph(counting_tools(log, "email.send", "email.draft"), profile="smb")


def paused(runner: Runner, graph: PlangateGraph, *steps: dict[str, Any]) -> dict[str, Any]:
    out = runner.invoke(graph, {"plan": plan_of(*steps)}, config())
    return dict(out["__interrupt__"][0].value)


def resume(runner: Runner, graph: PlangateGraph, *decisions: dict[str, Any], **kw: Any) -> Any:
    response = {"decisions": list(decisions)}
    HITL_RESPONSE.validate_python(response)  # what LangChain's own clients send
    return runner.invoke(graph, Command(resume=response), config(**kw))


def agent_chat_ui_shows_buttons(value: Any) -> bool:
    """The checks Agent Chat UI makes (`isAgentInboxInterruptSchema`) before it renders its
    approve/edit/reject view instead of raw JSON."""
    requests, configs = value.get("action_requests"), value.get("review_configs")
    return (
        isinstance(requests, list)
        and bool(requests)
        and all(
            isinstance(r.get("name"), str) and isinstance(r.get("args"), dict) for r in requests
        )
        and isinstance(configs, list)
        and bool(configs)
        and all(
            isinstance(c.get("action_name"), str) and isinstance(c.get("allowed_decisions"), list)
            for c in configs
        )
    )


def test_a_request_is_a_valid_hitl_request_naming_the_call(
    runner: Runner, graph: PlangateGraph
) -> None:
    request = paused(runner, graph, {**SEND, "description": "Tell Ana"})

    HITL_REQUEST.validate_python(request)
    assert agent_chat_ui_shows_buttons(request)
    (action,) = request["action_requests"]
    assert (action["name"], action["args"]) == ("email.send", {"text": "to ana"})
    assert action["description"].startswith("Tell Ana\n\nIf approved, plangate will tell Ana")
    assert "(high risk)" in action["description"]
    (review,) = request["review_configs"]
    assert review == {
        "action_name": "email.send",
        "allowed_decisions": ["approve", "edit", "reject", "respond"],
    }
    assert request["type"] == "approval_request"  # plangate's own fields stay as they were


def test_approve_records_the_approver_from_the_config(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    paused(runner, graph, SEND)

    out = resume(runner, graph, {"type": "approve"}, approver="kim")

    assert out["result"]["status"] == "success"
    assert out["result"]["approvals"][0]["approver"] == "kim"
    assert log.calls == [("email.send", {"text": "to ana"})]


def test_the_approver_may_come_from_the_metadata(runner: Runner, graph: PlangateGraph) -> None:
    paused(runner, graph, SEND)

    out = resume(runner, graph, {"type": "approve"}, approver="ops", where="metadata")

    assert out["result"]["approvals"][0]["approver"] == "ops"


def test_an_edit_runs_the_edited_args_of_the_same_tool(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    paused(runner, graph, SEND)
    edit = {"type": "edit", "edited_action": {"name": "email.send", "args": {"text": "to bo"}}}

    out = resume(runner, graph, edit)

    assert out["result"]["approvals"][0]["decision"] == "edit"
    assert log.calls == [("email.send", {"text": "to bo"})]


def test_reject_takes_its_message_as_the_reason_and_respond_answers_for_the_tool(
    runner: Runner, log: CallLog
) -> None:
    graph = runner.graph(
        counting_tools(log, "email.send", "email.draft"),
        profile=load_profile("smb").model_copy(update={"max_concurrency": 1}),
    )
    paused(runner, graph, SEND, {**SEND, "id": "ask"})
    rejected = resume(runner, graph, {"type": "reject", "message": "not to ana"})
    assert rejected["__interrupt__"][0].value["step_id"] == "ask"

    out = resume(runner, graph, {"type": "respond", "message": "ana said yes"})

    steps = {s["step_id"]: s for s in out["result"]["steps"]}
    assert (steps["send"]["status"], steps["send"]["error"]) == ("rejected", "not to ana")
    assert (steps["ask"]["status"], steps["ask"]["output"]) == ("ok", "ana said yes")
    assert log.calls == []


@pytest.mark.parametrize(
    ("decisions", "refused_as"),
    [
        (
            [{"type": "edit", "edited_action": {"name": "email.draft", "args": {"text": "x"}}}],
            ("decisions.0.edited_action.name", "an edit cannot call 'email.draft' instead"),
        ),
        ([{"type": "approve"}, {"type": "approve"}], ("decisions", "at most 1 item")),
        ([{"type": "ignore"}], ("decisions.0", "does not match any of the expected tags")),
        (  # args the tool's schema refuses, as for a plangate edit
            [{"type": "edit", "edited_action": {"name": "email.send", "args": {"to": "x"}}}],
            ("args.to", "email.send takes no argument 'to'"),
        ),
    ],
)
def test_a_bad_hitl_decision_is_refused_in_one_line_and_the_run_waits(
    runner: Runner,
    graph: PlangateGraph,
    log: CallLog,
    decisions: list[dict[str, Any]],
    refused_as: tuple[str, str],
) -> None:
    request = paused(runner, graph, SEND)

    with pytest.raises(InvalidDecision) as refused:
        runner.invoke(graph, Command(resume={"decisions": decisions}), config())

    assert "\n" not in refused.value.message
    assert (refused.value.field, refused_as[1] in refused.value.message) == (refused_as[0], True)
    (still,) = runner.state(graph, config()).interrupts
    assert still.value["request_id"] == request["request_id"]
    assert log.calls == []


def test_four_eyes_count_the_approvers_the_configs_name(runner: Runner, log: CallLog) -> None:
    four_eyes = load_profile("smb").model_copy(update={"approvals_required": {"high": 2}})
    graph = runner.graph(counting_tools(log, "email.send"), profile=four_eyes)
    paused(runner, graph, SEND)
    again = resume(runner, graph, {"type": "approve"}, approver="lee")["__interrupt__"][0].value
    HITL_REQUEST.validate_python(again)  # asked again, still in both forms

    with pytest.raises(InvalidDecision, match="'lee' has approved this request already"):
        resume(runner, graph, {"type": "approve"}, approver="lee")
    with pytest.raises(InvalidDecision, match="name the approver"):
        resume(runner, graph, {"type": "approve"}, approver=None)

    out = resume(runner, graph, {"type": "approve"}, approver="kim")
    assert [a["approver"] for a in out["result"]["approvals"][0]["approvals"]] == ["lee", "kim"]


@pytest.mark.parametrize("where", ["configurable", "metadata"])
def test_four_eyes_take_a_config_name_read_as_the_first_approvers_as_the_same_person(
    runner: Runner, log: CallLog, where: str
) -> None:
    """`Lee`, `lee `, a zero-width joiner, a Cyrillic e, fullwidth letters or a blank name in
    `configurable.approver` or `metadata.approver` after `lee`: refused, and the run waits."""
    four_eyes = load_profile("smb").model_copy(update={"approvals_required": {"high": 2}})
    graph = runner.graph(counting_tools(log, "email.send"), profile=four_eyes)
    paused(runner, graph, SEND)
    resume(runner, graph, {"type": "approve"}, approver="lee", where=where)

    for again in SAME_AS_LEE:
        with pytest.raises(InvalidDecision) as refused:
            resume(runner, graph, {"type": "approve"}, approver=again, where=where)
        assert refused.value.field == "approver", again
    assert log.calls == []

    out = resume(runner, graph, {"type": "approve"}, approver="kim", where=where)
    assert [a["approver"] for a in out["result"]["approvals"][0]["approvals"]] == ["lee", "kim"]


def test_a_plan_review_is_a_hitl_request_for_the_plan_and_takes_an_edited_plan(
    runner: Runner, log: CallLog
) -> None:
    graph = runner.graph(counting_tools(log, "email.send", "email.draft"), profile="enterprise")
    review = paused(runner, graph, DRAFT, SEND)
    HITL_REQUEST.validate_python(review)
    (action,) = review["action_requests"]
    assert (action["name"], action["args"]) == ("plan", review["args"])
    assert review["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]

    edit = {"type": "edit", "edited_action": {"name": "plan", "args": plan_of(DRAFT)}}
    again = resume(runner, graph, edit)["__interrupt__"][0].value
    assert [s["step_id"] for s in again["steps"]] == ["draft"]
    out = resume(runner, graph, {"type": "approve"})

    assert out["result"]["status"] == "success"
    assert log.calls == [("email.draft", {"text": "hi"})]
