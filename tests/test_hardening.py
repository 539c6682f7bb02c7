"""Hostile or careless input gets a one-line usage error, never a traceback, and never harms a
paused run: args that are not plain JSON, inputs over the documented limits, and a resume that
carries no decision. Each case goes through the compiled graph on a real SQLite file."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from _support import CallLog, Runner, plan_of, thread
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.types import Command, StateSnapshot

from plangate import (
    Decision,
    InvalidDecision,
    PlangateGraph,
    PlanValidationError,
    declare_action,
)
from plangate.plan import (
    MAX_DEPTH,
    MAX_NAME_CHARS,
    MAX_PLAN_SIZE,
    MAX_STEPS,
    MAX_STRING_CHARS,
    MAX_TEXT_CHARS,
)


def mail_tools(log: CallLog) -> list[BaseTool]:
    """`mail.send(to, meta)`: an `execute` tool (so `smb` waits for approval) whose `meta` takes
    anything, so that only plangate's own checks stand between a value and the checkpoint."""

    def send(to: str, meta: Any = None) -> str:
        log.calls.append(("mail.send", {"to": to, "meta": meta}))
        return f"sent to {to}"

    tool = StructuredTool.from_function(send, name="mail.send", description="Send mail.")
    return [declare_action(tool, action="execute")]


def send_step(meta: Any = None) -> dict[str, Any]:
    return {"id": "send", "tool": "mail.send", "args": {"to": "ana@example.com", "meta": meta}}


def nested(depth: int) -> Any:
    """A value `depth` mappings deep: {"a": {"a": ... "leaf" ...}}."""
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


class Thing:
    """An arbitrary object, as a careless caller might put in args."""


# Each value sits at `args.meta.when`; the message names that path and says what to send.
NOT_PLAIN_JSON = [
    pytest.param(datetime(2026, 1, 5, tzinfo=timezone.utc), "ISO 8601", id="datetime"),
    pytest.param(b"\x00\x01", "base64", id="bytes"),
    pytest.param(Thing(), "'Thing' is not plain JSON", id="object"),
    pytest.param(2**64 + 1, "64-bit", id="int-above-2**64"),
    pytest.param(2**63, "64-bit", id="int-above-int64"),
    pytest.param(-(2**63) - 1, "64-bit", id="int-below-int64"),
    pytest.param(float("nan"), "finite", id="nan"),
    pytest.param(float("inf"), "finite", id="infinity"),
    pytest.param(("a", "b"), "send a list", id="tuple"),
    pytest.param({"a"}, "send a list", id="set"),
    pytest.param({1: "one"}, "keys must be strings", id="int-key"),
    pytest.param(nested(900), f"more than {MAX_DEPTH} deep", id="nested-900-deep"),
    pytest.param([[[[]]]] * 2 + [nested(MAX_DEPTH)], f"more than {MAX_DEPTH} deep", id="deep-list"),
    pytest.param("x" * (MAX_STRING_CHARS + 1), "1,000,000", id="string-over-the-limit"),
]


def state_of(runner: Runner, graph: PlangateGraph, config: dict[str, Any]) -> StateSnapshot:
    if runner.mode == "sync":
        return graph.get_state(config)  # type: ignore[arg-type]
    return runner.loop.run_until_complete(graph.aget_state(config))  # type: ignore[arg-type]


def paused(runner: Runner, log: CallLog) -> tuple[PlangateGraph, dict[str, Any]]:
    """A graph under `smb` whose run on `thread()` waits for approval of `send`."""
    graph = runner.graph(mail_tools(log), profile="smb")
    out = runner.invoke(graph, {"plan": plan_of(send_step({"when": "monday"}))}, thread())
    assert [i.value["step_id"] for i in out["__interrupt__"]] == ["send"]
    return graph, out["__interrupt__"][0].value


def assert_still_paused_then_approves(
    runner: Runner, graph: PlangateGraph, request: dict[str, Any], log: CallLog
) -> None:
    """The run waits on the very same request, and one approval then runs the tool once."""
    snapshot = state_of(runner, graph, thread())
    assert [i.value for i in snapshot.interrupts] == [request]
    assert log.calls == []
    out = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())
    assert out["result"]["status"] == "success"
    assert log.calls == [("mail.send", {"to": "ana@example.com", "meta": {"when": "monday"}})]


def one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text
    assert len(text) < 2000
    return text


# --- a resume without a decision -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [pytest.param(Command(resume=None), id="resume-None"), pytest.param(Command(), id="empty")],
)
def test_a_resume_without_a_decision_is_refused_and_the_run_still_approves(
    runner: Runner, log: CallLog, command: Command
) -> None:
    """`Command(resume=None)` is no resume to LangGraph, which then failed deep in its run loop
    (`UnboundLocalError`); plangate refuses it first, and the run stays paused."""
    graph, request = paused(runner, log)

    with pytest.raises(InvalidDecision, match="a resume needs a decision") as caught:
        runner.invoke(graph, command, thread())

    assert caught.value.field == "resume"
    one_line(caught.value)
    assert_still_paused_then_approves(runner, graph, request, log)


def test_a_resume_without_a_decision_on_a_new_thread_is_refused(
    runner: Runner, log: CallLog
) -> None:
    """With nothing paused, an empty resume is the same mistake, and the same one-line error."""
    graph = runner.graph(mail_tools(log), profile="technical")
    with pytest.raises(InvalidDecision, match="a resume needs a decision"):
        runner.invoke(graph, Command(resume=None), thread("nothing-here"))


# --- args that are not plain JSON ----------------------------------------------------------------


@pytest.mark.parametrize(("value", "says"), NOT_PLAIN_JSON)
def test_a_plan_with_args_that_are_not_plain_json_is_refused_naming_the_path(
    runner: Runner, log: CallLog, value: Any, says: str
) -> None:
    """Some of these failed with a traceback as the checkpoint was written (`TypeError: Integer
    exceeds 64-bit range`, `ValueError: Maximum serialization depth exceeded`), others entered
    the run silently changed (a datetime turned into a string). The plan is refused before
    anything runs, in one line naming the step and the path to the value; the thread stays
    unused and takes a good plan next."""
    graph = runner.graph(mail_tools(log), profile="technical")

    with pytest.raises(PlanValidationError) as caught:
        runner.invoke(graph, {"plan": plan_of(send_step({"when": value}))}, thread())

    message = one_line(caught.value)
    assert message.startswith("plan: step 'send', field 'args.meta.when")
    assert says in message
    assert caught.value.step_id == "send"
    assert log.calls == []
    assert state_of(runner, graph, thread()).values == {}
    out = runner.invoke(graph, {"plan": plan_of(send_step({"when": "monday"}))}, thread())
    assert out["result"]["status"] == "success"


def test_metadata_must_be_plain_json_too(runner: Runner, log: CallLog) -> None:
    """Metadata rides in the checkpoint with the args: the same rule, naming `metadata.<path>`."""
    graph = runner.graph(mail_tools(log), profile="technical")
    step = {**send_step(), "metadata": {"seen": {"at": datetime.now(timezone.utc)}}}
    with pytest.raises(PlanValidationError, match=r"step 'send', field 'metadata\.seen\.at'"):
        runner.invoke(graph, {"plan": plan_of(step)}, thread())


def test_every_kind_of_plain_json_at_the_limits_runs_and_reaches_the_tool_unchanged(
    runner: Runner, log: CallLog
) -> None:
    """What the rule allows is all of JSON: the int64 bounds, floats, booleans, null, unicode,
    lists and mappings nested exactly `MAX_DEPTH` deep; the tool gets it back as it was sent."""
    meta = {
        "ints": [-(2**63), 2**63 - 1, 0],
        "floats": [1.5, -0.0, 1e308],
        "flags": [True, False, None],
        "text": "naïve café ✓",
        "deep": nested(MAX_DEPTH - 1),  # meta (1) + MAX_DEPTH - 1 below it
    }
    graph = runner.graph(mail_tools(log), profile="technical")
    out = runner.invoke(graph, {"plan": plan_of(send_step(meta))}, thread())
    assert out["result"]["status"] == "success"
    assert log.calls == [("mail.send", {"to": "ana@example.com", "meta": meta})]


@pytest.mark.parametrize(("value", "says"), NOT_PLAIN_JSON)
def test_an_edit_with_args_that_are_not_plain_json_is_refused_and_the_run_still_approves(
    runner: Runner, log: CallLog, value: Any, says: str
) -> None:
    """An edit's args go into the checkpoint and on to the tool: the same rule, as a one-line
    `InvalidDecision` whose `field` is the path to the value; nothing is stored, and the run
    still approves."""
    graph, request = paused(runner, log)
    edit = {"decision": "edit", "args": {"to": "bo@example.com", "meta": {"when": value}}}

    with pytest.raises(InvalidDecision) as caught:
        runner.invoke(graph, Command(resume=edit), thread())

    assert caught.value.field is not None
    assert caught.value.field.startswith("args.meta.when")
    message = one_line(caught.value)
    assert message.startswith("invalid decision: args.meta.when")
    assert says in message
    assert_still_paused_then_approves(runner, graph, request, log)


def test_a_decision_object_changed_after_it_was_made_is_checked_again(
    runner: Runner, log: CallLog
) -> None:
    """A `Decision` is validated when made, but its args dict can change afterwards (or it can
    be built with `model_construct`): the graph checks it again before storing it."""
    graph, request = paused(runner, log)
    changed = Decision(decision="edit", args={"to": "bo@example.com", "meta": {}})
    assert changed.args is not None
    changed.args["meta"]["when"] = 2**70
    constructed = Decision.model_construct(decision="edit", args={"to": b"bo@example.com"})

    for decision in (changed, constructed):
        with pytest.raises(InvalidDecision, match=r"64-bit|base64"):
            runner.invoke(graph, Command(resume=decision), thread())

    assert_still_paused_then_approves(runner, graph, request, log)


# --- limits --------------------------------------------------------------------------------------


def test_a_plan_over_the_step_limit_is_refused_naming_the_limit(
    runner: Runner, log: CallLog
) -> None:
    """`MAX_STEPS` + 1 steps: refused before a single step is validated."""
    graph = runner.graph(mail_tools(log), profile="technical")
    steps = [{"tool": "mail.send", "args": {"to": "a@example.com"}}] * (MAX_STEPS + 1)

    with pytest.raises(PlanValidationError) as caught:
        runner.invoke(graph, {"plan": {"steps": steps}}, thread())

    message = one_line(caught.value)
    assert "field 'steps'" in message
    assert f"at most {MAX_STEPS:,} steps, not {MAX_STEPS + 1:,}" in message
    assert log.calls == []


def test_a_plan_over_the_size_limit_is_refused_naming_the_limit(
    runner: Runner, log: CallLog
) -> None:
    """Steps each within the per-string limit that add up to over `MAX_PLAN_SIZE`."""
    graph = runner.graph(mail_tools(log), profile="technical")
    body = "x" * MAX_STRING_CHARS
    count = MAX_PLAN_SIZE // MAX_STRING_CHARS + 1
    steps = [{"tool": "mail.send", "args": {"to": "a@example.com", "meta": body}}] * count

    with pytest.raises(PlanValidationError) as caught:
        runner.invoke(graph, {"plan": {"steps": steps}}, thread())

    message = one_line(caught.value)
    assert "field 'steps'" in message
    assert f"over the limit of {MAX_PLAN_SIZE:,}" in message
    assert log.calls == []


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        pytest.param("id", "i" * (MAX_NAME_CHARS + 1), MAX_NAME_CHARS, id="id"),
        pytest.param("tool", "t" * (MAX_NAME_CHARS + 1), MAX_NAME_CHARS, id="tool"),
        pytest.param("domain", "d" * (MAX_NAME_CHARS + 1), MAX_NAME_CHARS, id="domain"),
        pytest.param("description", "d" * (MAX_TEXT_CHARS + 1), MAX_TEXT_CHARS, id="description"),
    ],
)
def test_a_step_field_over_its_limit_is_refused_naming_field_and_limit(
    runner: Runner, log: CallLog, field: str, value: str, limit: int
) -> None:
    """The message names the field and the limit, and does not repeat the long value."""
    graph = runner.graph(mail_tools(log), profile="technical")
    step = {**send_step(), field: value}

    with pytest.raises(PlanValidationError) as caught:
        runner.invoke(graph, {"plan": plan_of(step)}, thread())

    message = one_line(caught.value)
    assert f"field '{field}'" in message
    assert f"at most {limit} characters" in message
    assert value not in message


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        pytest.param(
            {"decision": "reject", "reason": "r" * (MAX_TEXT_CHARS + 1)},
            "reason",
            f"{MAX_TEXT_CHARS}",
            id="reason",
        ),
        pytest.param(
            {"decision": "respond", "message": "m" * (MAX_STRING_CHARS + 1)},
            "message",
            f"{MAX_STRING_CHARS}",
            id="message",
        ),
        pytest.param(
            {"decision": "approve", "approver": "a" * (MAX_NAME_CHARS + 1)},
            "approver",
            f"{MAX_NAME_CHARS}",
            id="approver",
        ),
        pytest.param(
            {
                "decision": "edit",
                "args": {
                    "to": "bo@example.com",
                    "meta": ["x" * MAX_STRING_CHARS] * (MAX_PLAN_SIZE // MAX_STRING_CHARS + 1),
                },
            },
            "args",
            f"{MAX_PLAN_SIZE:,}",
            id="edit-args-size",
        ),
    ],
)
def test_a_decision_over_a_limit_is_refused_and_the_run_still_approves(
    runner: Runner, log: CallLog, fields: dict[str, Any], field: str, limit: str
) -> None:
    """A decision's free text is bounded too: one line naming the field and the limit."""
    graph, request = paused(runner, log)

    with pytest.raises(InvalidDecision) as caught:
        runner.invoke(graph, Command(resume=fields), thread())

    assert caught.value.field == field
    message = one_line(caught.value)
    assert f"invalid decision: {field}:" in message
    assert limit in message
    assert_still_paused_then_approves(runner, graph, request, log)
