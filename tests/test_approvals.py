"""Approvals through the compiled graph: the request a run pauses with, every decision, expiry,
invalid resume values, resuming in a new process, and the graph used as a subgraph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import ENTERPRISE_BY_STEP, CallLog, Clock, Runner, counting_tools, plan_of, thread
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Interrupt, StateSnapshot
from typing_extensions import TypedDict

from plangate import (
    Decision,
    InvalidDecision,
    NoPendingApproval,
    PlangateGraph,
    RunNotFinished,
    UnknownThread,
    aopen_checkpointer,
    build_graph,
    demo_outbox,
    demo_toolkit,
    get_trace,
    list_threads,
    load_profile,
    open_checkpointer,
    pending_approvals,
)

REQUEST_FIELDS = {
    "type",
    "request_id",
    "trace_id",
    "step_id",
    "step_index",
    "tool",
    "args",
    "action",
    "action_source",
    "irreversible",
    "domain",
    "description",
    "risk",
    "consequence",
    "profile",
    "digest",
    "requested_at",
    "expires_at",
    "allowed_decisions",
    "response_schema",
    # LangChain's HITL form of the same request (tests/test_hitl.py).
    "action_requests",
    "review_configs",
}
RECORD_FIELDS = {
    "decision",
    "approver",
    "reason",
    "args",
    "message",
    "requested_at",
    "decided_at",
    "wait_ms",
}
START_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def send_step(text: str = "hi", **extra: Any) -> dict[str, Any]:
    """An `execute` step of the counting tool `email.send`."""
    return {
        "id": "send",
        "tool": "email.send",
        "action": "execute",
        "args": {"text": text},
        **extra,
    }


def read_step(step_id: str, tool: str = "crm.lookup", **extra: Any) -> dict[str, Any]:
    """A `read` step of a counting tool."""
    return {"id": step_id, "tool": tool, "args": {"text": step_id}, **extra}


def profile_file(tmp_path: Path, name: str, **fields: Any) -> Path:
    """A YAML profile file in `tmp_path`."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields}), encoding="utf-8")
    return path


def the_interrupt(out: dict[str, Any]) -> Interrupt:
    """The one interrupt a paused run returned; fails unless there is exactly one."""
    interrupts = out.get("__interrupt__")
    assert interrupts is not None, f"the run did not pause: {sorted(out)}"
    assert len(interrupts) == 1
    interrupt: Interrupt = interrupts[0]
    return interrupt


def the_request(out: dict[str, Any]) -> dict[str, Any]:
    """The approval request of the one interrupt a paused run returned."""
    request: dict[str, Any] = the_interrupt(out).value
    assert request["type"] == "approval_request"
    return request


def state_of(runner: Runner, graph: Any, config: dict[str, Any]) -> StateSnapshot:
    """`get_state` / `aget_state`, by the runner's mode."""
    if runner.mode == "sync":
        snapshot: StateSnapshot = graph.get_state(config)
        return snapshot
    return runner.loop.run_until_complete(graph.aget_state(config))  # type: ignore[no-any-return]


def parse_utc(text: str) -> datetime:
    """An ISO 8601 timestamp that must carry a UTC offset."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() == timedelta(0), text
    return moment


def step_by_id(result: dict[str, Any], step_id: str) -> dict[str, Any]:
    (step,) = (s for s in result["steps"] if s["step_id"] == step_id)
    return step  # type: ignore[no-any-return]


def approve(approver: str = "lee") -> Command:
    return Command(resume={"decision": "approve", "approver": approver})


# --- the request ----------------------------------------------------------------------------------


def test_smb_execute_step_pauses_with_a_complete_request_of_real_args(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """Under smb an execute step pauses with one interrupt carrying every documented field: the
    real args for the person deciding, while the trace's copy is redacted."""
    graph = runner.graph(
        counting_tools(log, "crm.lookup", "email.send"), profile="smb", clock=clock
    )
    step = send_step("write to ana.lopez@acme.example", description="Send the follow-up to Ana")
    out = runner.invoke(graph, {"plan": plan_of(step)}, thread())

    interrupt = the_interrupt(out)
    request = interrupt.value
    assert set(request) == REQUEST_FIELDS
    assert request["type"] == "approval_request"
    assert isinstance(request["request_id"], str)
    assert request["request_id"]
    trace = runner.trace(graph, thread())
    assert request["trace_id"] == trace[0]["trace_id"] != ""
    assert (request["step_id"], request["step_index"]) == ("send", 0)
    assert (request["tool"], request["action"], request["domain"]) == (
        "email.send",
        "execute",
        "email",
    )
    assert request["args"] == {"text": "write to ana.lopez@acme.example"}
    assert (request["action_source"], request["irreversible"]) == ("plan", True)
    assert request["profile"] == "smb"
    assert len(request["digest"]) == 64
    assert request["description"] == "Send the follow-up to Ana"
    assert request["risk"] == "high"  # execute (medium) on an irreversible tool
    assert request["consequence"].startswith("If approved, plangate will send the follow-up")
    assert "cannot be undone" in request["consequence"]
    assert parse_utc(request["requested_at"]) == START_TIME
    assert parse_utc(request["expires_at"]) == START_TIME + timedelta(hours=24)
    assert sorted(request["allowed_decisions"]) == ["approve", "edit", "reject", "respond"]

    schema = request["response_schema"]
    assert schema["required"] == ["decision"]
    assert set(schema["properties"]["decision"]["enum"]) == set(request["allowed_decisions"])
    args_schema = schema["properties"]["args"]["anyOf"][0]
    assert args_schema["properties"]["text"]["type"] == "string"
    assert interrupt.response_schema == schema

    assert log.calls == []
    fresh = runner.graph(counting_tools(log, "email.send"), profile="smb", clock=clock)
    snapshot = state_of(runner, fresh, thread())
    assert [i.value for i in snapshot.interrupts] == [request]
    assert snapshot.interrupts[0].response_schema == schema
    requested = [e for e in trace if e["type"] == "approval_requested"]
    assert [e["data"]["request_id"] for e in requested] == [request["request_id"]]
    assert requested[0]["data"]["args"] == {"text": "write to [REDACTED_EMAIL]"}


def test_request_args_are_raw_without_redaction(
    runner: Runner, log: CallLog, tmp_path: Path
) -> None:
    """`technical` with approvals for execute (from a file) shows the args unredacted."""
    data = load_profile("technical").model_dump(mode="json")
    data.update(name="technical-gated", require_approval=["execute"])
    path = profile_file(
        tmp_path, "technical-gated", **{k: v for k, v in data.items() if k != "name"}
    )
    assert load_profile(path).redact is False

    graph = runner.graph(counting_tools(log, "email.send"), profile=path)
    out = runner.invoke(graph, {"plan": plan_of(send_step("to ana.lopez@acme.example"))}, thread())

    request = the_request(out)
    assert request["args"] == {"text": "to ana.lopez@acme.example"}
    assert the_interrupt(out).response_schema == request["response_schema"]
    assert log.calls == []


def test_technical_profile_does_not_pause_a_reversible_execute(
    runner: Runner, log: CallLog
) -> None:
    """The built-in `technical` profile runs an execute step that can be undone without an
    interrupt (an irreversible one always asks: tests/test_irreversible.py)."""
    graph = runner.graph(counting_tools(log, "crm.update"), profile="technical")
    step = {"id": "update", "tool": "crm.update", "action": "execute"}
    out = runner.invoke(graph, {"plan": plan_of(step)}, thread())
    assert "__interrupt__" not in out
    assert out["result"]["status"] == "success"
    assert log.count("crm.update") == 1


# --- decisions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_model", [False, True], ids=["dict", "Decision"])
def test_approve_runs_the_tool_once_and_records_the_decision(
    runner: Runner, log: CallLog, clock: Clock, as_model: bool
) -> None:
    """Approving (as a dict or a `Decision`) runs the tool once and records who, when, how long."""
    tools = counting_tools(log, "email.send")
    graph = runner.graph(tools, profile="smb", clock=clock)
    request = the_request(runner.invoke(graph, {"plan": plan_of(send_step())}, thread()))

    clock.advance(minutes=30)
    fields = {"decision": "approve", "approver": "lee", "reason": "looks right"}
    decision: Any = Decision(**fields) if as_model else fields
    resumed = runner.graph(tools, profile="smb", clock=clock)
    out = runner.invoke(resumed, Command(resume=decision), thread())

    assert "__interrupt__" not in out
    result = out["result"]
    assert result["status"] == "success"
    assert log.calls == [("email.send", {"text": "hi"})]
    step = step_by_id(result, "send")
    assert step["status"] == "ok"
    assert step["output"] == {"tool": "email.send", "echo": "hi"}
    record = step["approval"]
    assert set(record) >= RECORD_FIELDS
    assert record["request_id"] == request["request_id"]
    assert (record["decision"], record["approver"], record["reason"]) == (
        "approve",
        "lee",
        "looks right",
    )
    assert record["args"] is None
    assert record["message"] is None
    assert record["requested_at"] == request["requested_at"]
    assert parse_utc(record["requested_at"]) == START_TIME
    assert parse_utc(record["decided_at"]) == START_TIME + timedelta(minutes=30)
    assert record["wait_ms"] == 30 * 60 * 1000
    assert result["approvals"] == [record]
    assert result["signals"]["approval_wait_ms"]["count"] == 1
    assert result["signals"]["approval_wait_ms"]["max"] == 30 * 60 * 1000

    trace = runner.trace(resumed, thread())
    assert [e["seq"] for e in trace] == list(range(len(trace)))
    types = [e["type"] for e in trace]
    assert types.count("approval_received") == 1
    assert types.count("tool_call_start") == 1
    assert (
        types.index("approval_requested")
        < types.index("approval_received")
        < types.index("tool_call_start")
    )
    received = trace[types.index("approval_received")]
    assert received["data"]["decision"] == "approve"
    assert received["data"]["approver"] == "lee"


def test_edit_runs_the_tool_with_the_new_args_and_records_them(
    runner: Runner, log: CallLog
) -> None:
    """An edit runs the tool with the edited args, and the record keeps them."""
    graph = runner.graph(counting_tools(log, "email.send"), profile="smb")
    the_request(runner.invoke(graph, {"plan": plan_of(send_step("original"))}, thread()))

    edit = Decision(decision="edit", args={"text": "edited"}, approver="kim")
    out = runner.invoke(graph, Command(resume=edit), thread())

    assert log.calls == [("email.send", {"text": "edited"})]
    step = step_by_id(out["result"], "send")
    assert step["status"] == "ok"
    assert step["output"] == {"tool": "email.send", "echo": "edited"}
    assert step["approval"]["decision"] == "edit"
    assert step["approval"]["args"] == {"text": "edited"}
    assert step["approval"]["approver"] == "kim"
    assert out["result"]["approvals"] == [step["approval"]]


def test_edit_failing_the_tool_schema_raises_and_the_run_stays_paused(
    runner: Runner, tmp_path: Path
) -> None:
    """An edit missing a required tool arg raises naming `args.to`; a valid edit then works."""
    outbox = tmp_path / "outbox.db"
    tools = demo_toolkit(outbox)
    graph = runner.graph(tools, profile="smb")
    step = {
        "id": "send",
        "tool": "email.send",
        "action": "execute",
        "args": {"to": "ana@acme.example", "subject": "Renewal", "body": "Hi"},
    }
    request = the_request(runner.invoke(graph, {"plan": plan_of(step)}, thread()))

    bad = {"decision": "edit", "args": {"subject": "Renewal", "body": "Hi"}}
    with pytest.raises(InvalidDecision, match=r"args\.to") as caught:
        runner.invoke(graph, Command(resume=bad), thread())
    assert caught.value.field == "args.to"

    snapshot = state_of(runner, graph, thread())
    assert [i.value["request_id"] for i in snapshot.interrupts] == [request["request_id"]]
    assert demo_outbox(outbox) == []

    good = {"decision": "edit", "args": {"to": "bo@acme.example", "subject": "Edited", "body": "."}}
    out = runner.invoke(runner.graph(tools, profile="smb"), Command(resume=good), thread())
    assert out["result"]["status"] == "success"
    assert [(m["to"], m["subject"]) for m in demo_outbox(outbox)] == [("bo@acme.example", "Edited")]


def test_reject_with_on_reject_skip_goes_on(runner: Runner, log: CallLog, tmp_path: Path) -> None:
    """A rejected step is `rejected`; independent later steps run, dependants are skipped."""
    path = profile_file(tmp_path, "gate-skip", require_approval=["execute"], on_reject="skip")
    graph = runner.graph(counting_tools(log, "crm.lookup", "email.send"), profile=path)
    plan = plan_of(send_step(), read_step("after"), read_step("needs-send", depends_on=["send"]))
    the_request(runner.invoke(graph, {"plan": plan}, thread()))

    reject = {"decision": "reject", "reason": "wrong tone", "approver": "kim"}
    out = runner.invoke(graph, Command(resume=reject), thread())

    result = out["result"]
    assert [s["status"] for s in result["steps"]] == ["rejected", "ok", "skipped"]
    assert log.calls == [("crm.lookup", {"text": "after"})]
    rejected = step_by_id(result, "send")
    assert rejected["error"] == "wrong tone"
    assert rejected["failure_context"]["error_type"] == "rejected"
    assert rejected["approval"]["decision"] == "reject"
    assert rejected["approval"]["reason"] == "wrong tone"
    assert rejected["approval"]["approver"] == "kim"
    assert step_by_id(result, "needs-send")["failure_context"]["error_type"] == "dependency_failed"
    assert result["halted"] is None
    assert result["status"] == "partial"
    assert result["approvals"] == [rejected["approval"]]


def test_reject_with_on_reject_halt_stops_the_plan(
    runner: Runner, log: CallLog, tmp_path: Path
) -> None:
    """Under `on_reject: halt` the steps after a rejected one are `skipped` and `halted` is set."""
    path = profile_file(tmp_path, "gate-halt", require_approval=["execute"], on_reject="halt")
    graph = runner.graph(counting_tools(log, "crm.lookup", "email.send"), profile=path)
    plan = plan_of(read_step("before"), send_step(), read_step("after"), read_step("last"))
    the_request(runner.invoke(graph, {"plan": plan}, thread()))

    out = runner.invoke(graph, Command(resume={"decision": "reject"}), thread())

    result = out["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "rejected", "skipped", "skipped"]
    assert log.calls == [("crm.lookup", {"text": "before"})]
    assert result["halted"]
    assert "'send'" in result["halted"]
    for step_id in ("after", "last"):
        assert step_by_id(result, step_id)["failure_context"]["error_type"] == "plan_halted"
    skipped = [e["step_id"] for e in runner.trace(graph, thread()) if e["type"] == "step_skipped"]
    assert skipped == ["after", "last"]


def test_respond_answers_in_the_tools_place(runner: Runner, log: CallLog) -> None:
    """`respond` does not call the tool; the step is `ok` with the message as its output."""
    graph = runner.graph(counting_tools(log, "email.send"), profile="smb")
    the_request(runner.invoke(graph, {"plan": plan_of(send_step())}, thread()))

    answer = Decision(decision="respond", message="Already called Ana.", approver="lee")
    out = runner.invoke(graph, Command(resume=answer), thread())

    assert log.calls == []
    step = step_by_id(out["result"], "send")
    assert step["status"] == "ok"
    assert step["output"] == "Already called Ana."
    assert step["error"] is None
    assert step["approval"]["decision"] == "respond"
    assert step["approval"]["message"] == "Already called Ana."
    assert out["result"]["status"] == "success"
    assert "tool_call_start" not in [e["type"] for e in runner.trace(graph, thread())]


# --- expiry ---------------------------------------------------------------------------------------


def test_a_decision_after_expiry_makes_the_step_expired(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """Approving 25 h after a 24 h request: `expired`, no tool call, an `approval_timeout` event."""
    tools = counting_tools(log, "email.send")
    graph = runner.graph(tools, profile="smb", clock=clock)
    request = the_request(runner.invoke(graph, {"plan": plan_of(send_step())}, thread()))

    clock.advance(hours=25)
    resumed = runner.graph(tools, profile="smb", clock=clock)
    out = runner.invoke(resumed, approve(), thread())

    assert log.calls == []
    step = step_by_id(out["result"], "send")
    assert step["status"] == "expired"
    assert step["failure_context"]["error_type"] == "approval_expired"
    assert step["approval"]["decision"] == "expired"
    assert step["approval"]["wait_ms"] == 25 * 3600 * 1000
    assert out["result"]["status"] == "failed"
    trace = runner.trace(resumed, thread())
    timeouts = [e for e in trace if e["type"] == "approval_timeout"]
    assert len(timeouts) == 1
    assert timeouts[0]["step_id"] == "send"
    assert timeouts[0]["data"]["expires_at"] == request["expires_at"]
    types = {e["type"] for e in trace}
    assert "approval_received" not in types
    assert "tool_call_start" not in types


def test_a_decision_at_the_expiry_instant_still_counts(
    runner: Runner, log: CallLog, clock: Clock, tmp_path: Path
) -> None:
    """With `approval_timeout_seconds: 60`, approving exactly 60 s later runs the tool."""
    path = profile_file(
        tmp_path, "quick", require_approval=["execute"], approval_timeout_seconds=60
    )
    graph = runner.graph(counting_tools(log, "email.send"), profile=path, clock=clock)
    request = the_request(runner.invoke(graph, {"plan": plan_of(send_step())}, thread()))
    assert parse_utc(request["expires_at"]) == START_TIME + timedelta(seconds=60)

    clock.advance(seconds=60)
    out = runner.invoke(graph, approve(), thread())

    assert log.count("email.send") == 1
    assert step_by_id(out["result"], "send")["status"] == "ok"


# --- invalid resume values ------------------------------------------------------------------------

INVALID_RESUMES = [
    pytest.param({"decision": "maybe"}, id="unknown-decision"),
    pytest.param({"decision": "edit"}, id="edit-without-args"),
    pytest.param({"decision": 5}, id="decision-not-a-string"),
    pytest.param("approve", id="a-string"),
    pytest.param({"decision": "approve", "args": {"text": "x"}}, id="approve-with-args"),
    pytest.param({"decision": "respond"}, id="respond-without-message"),
    pytest.param({"decision": "edit", "args": {"text": 5}}, id="edit-with-wrong-arg-type"),
]


@pytest.mark.parametrize("value", INVALID_RESUMES)
def test_an_invalid_resume_raises_and_the_run_can_still_be_approved(
    runner: Runner, log: CallLog, clock: Clock, value: Any
) -> None:
    """A bad resume value raises `InvalidDecision`; the run stays paused and approves once."""
    tools = counting_tools(log, "crm.lookup", "email.send")
    graph = runner.graph(tools, profile="smb", clock=clock)
    plan = plan_of(read_step("lookup"), send_step(depends_on=["lookup"]))
    request = the_request(runner.invoke(graph, {"plan": plan}, thread()))

    with pytest.raises(InvalidDecision):
        runner.invoke(graph, Command(resume=value), thread())

    snapshot = state_of(runner, graph, thread())
    assert [i.value for i in snapshot.interrupts] == [request]
    assert snapshot.next == ("approval_interrupt",)
    assert log.count("email.send") == 0

    clock.advance(minutes=1)
    out = runner.invoke(runner.graph(tools, profile="smb", clock=clock), approve(), thread())
    assert out["result"]["status"] == "success"
    assert step_by_id(out["result"], "send")["approval"]["decision"] == "approve"
    assert (log.count("crm.lookup"), log.count("email.send")) == (1, 1)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        pytest.param({"decision": "maybe"}, "decision", id="unknown-decision"),
        pytest.param({"decision": 5}, "decision", id="decision-not-a-string"),
        pytest.param("approve", "decision", id="a-string"),
        pytest.param({"decision": "edit", "args": {"text": 5}}, "args.text", id="edit-arg-type"),
        pytest.param({"decision": "edit", "args": "x"}, "args", id="edit-args-not-a-mapping"),
        pytest.param({"decision": "edit"}, "args", id="edit-without-args"),
        pytest.param({"decision": "approve", "args": {"text": "x"}}, "args", id="approve-args"),
        pytest.param({"decision": "respond"}, "message", id="respond-without-message"),
    ],
)
def test_invalid_decision_names_the_offending_field(
    runner: Runner, log: CallLog, value: Any, field: str
) -> None:
    """`InvalidDecision.field` and its message name the field at fault."""
    graph = runner.graph(counting_tools(log, "email.send"), profile="smb")
    the_request(runner.invoke(graph, {"plan": plan_of(send_step())}, thread()))

    with pytest.raises(InvalidDecision) as caught:
        runner.invoke(graph, Command(resume=value), thread())

    assert caught.value.field == field
    assert field in caught.value.message
    assert log.calls == []


def test_resume_by_interrupt_id(runner: Runner, log: CallLog) -> None:
    """A mapping of interrupt id to decision is checked and resumes the run too."""
    graph = runner.graph(counting_tools(log, "email.send"), profile="smb")
    interrupt = the_interrupt(runner.invoke(graph, {"plan": plan_of(send_step())}, thread()))

    with pytest.raises(InvalidDecision):
        runner.invoke(graph, Command(resume={interrupt.id: {"decision": "nope"}}), thread())
    assert len(state_of(runner, graph, thread()).interrupts) == 1

    out = runner.invoke(graph, Command(resume={interrupt.id: {"decision": "approve"}}), thread())
    assert out["result"]["status"] == "success"
    assert log.count("email.send") == 1


# --- nothing to resume ----------------------------------------------------------------------------


def test_resuming_a_finished_run_raises_no_pending_approval(runner: Runner, log: CallLog) -> None:
    """Once approved and finished, another resume raises `NoPendingApproval` and runs nothing."""
    graph = runner.graph(counting_tools(log, "email.send"), profile="smb")
    the_request(runner.invoke(graph, {"plan": plan_of(send_step())}, thread("done")))
    assert runner.invoke(graph, approve(), thread("done"))["result"]["status"] == "success"

    with pytest.raises(NoPendingApproval) as caught:
        runner.invoke(graph, approve(), thread("done"))
    assert caught.value.thread_id == "done"
    assert log.count("email.send") == 1


def test_resuming_a_run_that_never_paused_raises_no_pending_approval(
    runner: Runner, log: CallLog
) -> None:
    """A run that finished without an approval is not waiting for one."""
    graph = runner.graph(counting_tools(log, "crm.lookup"), profile="smb")
    out = runner.invoke(graph, {"plan": plan_of(read_step("lookup"))}, thread("reads"))
    assert out["result"]["status"] == "success"

    with pytest.raises(NoPendingApproval):
        runner.invoke(graph, approve(), thread("reads"))
    assert log.count("crm.lookup") == 1


def test_resuming_an_unknown_thread_raises_unknown_thread(runner: Runner, log: CallLog) -> None:
    """A decision for a thread that never ran raises `UnknownThread` naming it."""
    graph = runner.graph(counting_tools(log, "email.send"), profile="smb")
    with pytest.raises(UnknownThread) as caught:
        runner.invoke(graph, approve(), thread("ghost"))
    assert caught.value.thread_id == "ghost"
    assert "ghost" in str(caught.value)


# --- a new plan on a thread whose run has not finished ------------------------------------------


def test_a_new_plan_on_a_paused_thread_is_refused_and_the_approval_still_stands(
    runner: Runner, log: CallLog
) -> None:
    """Starting a plan where a run waits for a decision raises `RunNotFinished` before anything
    is stored: the request is still pending, unchanged, and approving it sends once."""
    graph = runner.graph(counting_tools(log, "email.send", "crm.lookup"), profile="smb")
    request = the_request(runner.invoke(graph, {"plan": plan_of(send_step())}, thread("busy")))

    with pytest.raises(RunNotFinished) as caught:
        runner.invoke(graph, {"plan": plan_of(read_step("other"))}, thread("busy"))
    assert (caught.value.thread_id, caught.value.waiting) == ("busy", True)
    assert "run 'busy' is waiting for an approval" in str(caught.value)
    assert state_of(runner, graph, thread("busy")).interrupts[0].value == request

    out = runner.invoke(graph, approve(), thread("busy"))
    assert [s["step_id"] for s in out["result"]["steps"]] == ["send"]
    assert log.calls == [("email.send", {"text": "hi"})]


def test_a_new_plan_on_a_stopped_run_is_refused_until_it_is_finished(
    tmp_path: Path, log: CallLog
) -> None:
    """A run whose process stopped mid-way must be finished (`invoke(None)`) before its thread
    takes a new plan; a finished thread takes one and goes on with its trace."""
    saver = open_checkpointer(str(tmp_path / "stopped.db"))
    graph = build_graph(counting_tools(log, "crm.lookup"), profile="smb", checkpointer=saver)
    plan = plan_of(read_step("first"), read_step("second"))
    # Stopping before the second tool call leaves the thread as a killed process would.
    graph.invoke({"plan": plan}, thread("cut"), interrupt_before=["tool_exec"])
    graph.invoke(None, thread("cut"), interrupt_before=["trace_emit"])

    with pytest.raises(RunNotFinished) as caught:
        graph.invoke({"plan": plan_of(read_step("third"))}, thread("cut"))
    assert caught.value.waiting is False
    assert "invoke(None, config)" in str(caught.value)

    assert graph.invoke(None, thread("cut"))["result"]["status"] == "success"
    again = graph.invoke({"plan": plan_of(read_step("third"))}, thread("cut"))
    assert [s["step_id"] for s in again["result"]["steps"]] == ["third"]
    assert [text for _, args in log.calls for text in args.values()] == [
        "first",
        "second",
        "third",
    ]
    saver.conn.close()  # type: ignore[attr-defined]


# --- resuming -------------------------------------------------------------------------------------


def test_resume_does_not_run_finished_steps_again(runner: Runner, log: CallLog) -> None:
    """read -> execute -> read: after the resume every tool has run exactly once."""
    tools = counting_tools(log, "crm.lookup", "email.send", "crm.notes")
    graph = runner.graph(tools, profile="smb")
    plan = plan_of(
        read_step("lookup"),
        send_step(depends_on=["lookup"]),
        read_step("notes", tool="crm.notes", depends_on=["send"]),
    )
    request = the_request(runner.invoke(graph, {"plan": plan}, thread()))
    assert request["step_index"] == 1
    assert log.calls == [("crm.lookup", {"text": "lookup"})]

    out = runner.invoke(runner.graph(tools, profile="smb"), approve(), thread())

    assert [name for name, _ in log.calls] == ["crm.lookup", "email.send", "crm.notes"]
    assert {name: log.count(name) for name in ("crm.lookup", "email.send", "crm.notes")} == {
        "crm.lookup": 1,
        "email.send": 1,
        "crm.notes": 1,
    }
    result = out["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "ok", "ok"]
    assert step_by_id(result, "lookup")["output"] == {"tool": "crm.lookup", "echo": "lookup"}
    assert result["budget"]["total"]["used"] == 3


def test_two_approvals_in_one_plan_resume_one_after_the_other(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """Under enterprise a propose then an execute step each pause, and each resume goes on."""
    tools = counting_tools(log, "email.draft", "email.send")
    plan = plan_of(
        {"id": "draft", "tool": "email.draft", "action": "propose", "args": {"text": "d"}},
        send_step(depends_on=["draft"]),
    )
    graph = runner.graph(tools, profile=ENTERPRISE_BY_STEP, clock=clock)
    first = the_request(runner.invoke(graph, {"plan": plan}, thread()))
    assert (first["step_id"], first["step_index"], first["action"]) == ("draft", 0, "propose")
    assert first["risk"] == "low"
    assert log.calls == []

    clock.advance(minutes=5)
    out = runner.invoke(graph, approve("ann"), thread())
    second = the_request(out)
    assert (second["step_id"], second["step_index"], second["action"]) == ("send", 1, "execute")
    assert second["request_id"] != first["request_id"]
    assert parse_utc(second["requested_at"]) == START_TIME + timedelta(minutes=5)
    assert log.calls == [("email.draft", {"text": "d"})]

    clock.advance(minutes=10)
    out = runner.invoke(
        runner.graph(tools, profile=ENTERPRISE_BY_STEP, clock=clock), approve("bo"), thread()
    )

    result = out["result"]
    assert result["status"] == "success"
    assert [(a["step_id"], a["approver"], a["wait_ms"]) for a in result["approvals"]] == [
        ("draft", "ann", 5 * 60 * 1000),
        ("send", "bo", 10 * 60 * 1000),
    ]
    assert (log.count("email.draft"), log.count("email.send")) == (1, 1)
    with pytest.raises(NoPendingApproval):
        runner.invoke(graph, approve(), thread())


SCRIPT = """
import json
import os
import sys

from langgraph.types import Command
from plangate import build_graph, demo_toolkit, open_checkpointer

graph = build_graph(
    demo_toolkit({outbox!r}),
    profile="smb",
    checkpointer=open_checkpointer("sqlite:///" + {db!r}),
)
config = {{"configurable": {{"thread_id": "follow-up"}}}}
plan = {{
    "goal": "Follow up with Acme",
    "steps": [
        {{"id": "lookup", "tool": "crm.lookup_account", "args": {{"account": "acme"}}}},
        {{
            "id": "send",
            "tool": "email.send",
            "action": "execute",
            "depends_on": ["lookup"],
            "args": {{"to": "ana.lopez@acme.example", "subject": "Renewal", "body": "Hi Ana"}},
        }},
    ],
}}
if sys.argv[1] == "start":
    out = graph.invoke({{"plan": plan}}, config)
    report = {{"requests": [i.value for i in out.get("__interrupt__", [])]}}
else:
    out = graph.invoke(Command(resume={{"decision": "approve", "approver": "ops"}}), config)
    report = {{"result": out["result"]}}
print(json.dumps({{"pid": os.getpid(), **report}}))
"""


def test_pause_in_one_process_and_resume_in_another(tmp_path: Path) -> None:
    """A run paused by one Python process is approved by a new one; one email goes out."""
    db, outbox = tmp_path / "runs.db", tmp_path / "outbox.db"
    script = tmp_path / "run_plan.py"
    script.write_text(textwrap.dedent(SCRIPT).format(db=str(db), outbox=str(outbox)))

    def run(command: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, str(script), command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return report

    started = run("start")
    (request,) = started["requests"]
    assert (request["step_id"], request["tool"], request["risk"]) == ("send", "email.send", "high")
    assert request["args"]["to"] == "ana.lopez@acme.example"  # the approver sees it
    assert demo_outbox(outbox) == []

    resumed = run("resume")
    assert len({started["pid"], resumed["pid"], os.getpid()}) == 3
    result = resumed["result"]
    assert result["status"] == "success"
    assert [s["status"] for s in result["steps"]] == ["ok", "ok"]
    assert result["steps"][0]["output"]["name"] == "Acme Corp"
    assert [(a["decision"], a["approver"]) for a in result["approvals"]] == [("approve", "ops")]
    sent = demo_outbox(outbox)
    assert len(sent) == 1
    assert (sent[0]["to"], sent[0]["subject"]) == ("ana.lopez@acme.example", "Renewal")

    saver = open_checkpointer(f"sqlite:///{db}")
    try:
        graph = build_graph(demo_toolkit(outbox), profile="smb", checkpointer=saver)
        trace = get_trace(graph, thread("follow-up"))
    finally:
        saver.conn.close()
    assert [e["seq"] for e in trace] == list(range(len(trace)))
    types = [e["type"] for e in trace]
    assert types.count("approval_requested") == types.count("approval_received") == 1
    assert types[-1] == "plan_completed"


# --- listing what waits ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def listing_saver(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[BaseCheckpointSaver[Any]]:
    """Each kind of checkpointer the listing reads: SQL on SQLite and PostgreSQL, `list` else."""
    if request.param == "memory":
        yield InMemorySaver()
        return
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path / 'listing.db'}"
    )
    saver = open_checkpointer(url)
    yield saver
    saver.conn.close()  # type: ignore[attr-defined]


def test_only_runs_waiting_for_a_decision_are_listed_newest_first(
    listing_saver: BaseCheckpointSaver[Any], log: CallLog
) -> None:
    """Finished runs, rejected runs and runs that never paused are not listed; a run approved
    once and paused again is listed with its second request only."""
    tools = counting_tools(log, "crm.lookup", "email.draft", "email.send")
    graph = build_graph(tools, profile=ENTERPRISE_BY_STEP, checkpointer=listing_saver)
    prefix = uuid.uuid4().hex[:8]  # the PostgreSQL database is shared by the module

    def run(name: str, *steps: dict[str, Any]) -> dict[str, Any]:
        return graph.invoke({"plan": plan_of(*steps)}, thread(f"{prefix}-{name}"))

    run("finished", read_step("look"))
    first = the_request(run("waiting", send_step()))
    run("rejected", send_step())
    graph.invoke(
        Command(resume={"decision": "reject", "reason": "no"}), thread(f"{prefix}-rejected")
    )
    draft = {"id": "draft", "tool": "email.draft", "action": "propose", "args": {"text": "d"}}
    run("twice", draft, send_step(depends_on=["draft"]))
    second = the_request(graph.invoke(approve(), thread(f"{prefix}-twice")))

    ours = [t for t in list_threads(listing_saver) if t.startswith(prefix)]
    assert sorted(ours) == sorted(
        f"{prefix}-{n}" for n in ("finished", "waiting", "rejected", "twice")
    )
    waiting = [t for t in list_threads(listing_saver, interrupted=True) if t.startswith(prefix)]
    assert waiting == [f"{prefix}-twice", f"{prefix}-waiting"]
    listed = [(t, r) for t, r in pending_approvals(graph) if t.startswith(prefix)]
    assert listed == [(f"{prefix}-twice", second), (f"{prefix}-waiting", first)]
    assert second["step_id"] == "send"


def test_a_run_asked_again_after_a_bad_decision_is_listed_with_the_error(
    tmp_path: Path, log: CallLog
) -> None:
    """A bad value resumed through a parent graph (past plangate's own check) is asked again on
    the same checkpoint: the listing shows the request as asked again, with its error."""
    runner = Runner(mode="sync", db_path=tmp_path / "governed.db")
    try:
        parent = parent_graph(runner, counting_tools(log, "email.send"))
        parent.invoke({"plan": plan_of(send_step())}, thread("parent"))
        again = the_request(parent.invoke(Command(resume={"decision": "maybe"}), thread("parent")))

        listed = list(pending_approvals(parent))
    finally:
        runner.close()
    assert listed == [("parent", again)]
    assert "decision" in again["error"]


# --- as a subgraph --------------------------------------------------------------------------------


class ParentState(TypedDict, total=False):
    plan: Any
    result: Any
    summary: str


def parent_graph(runner: Runner, tools: Any) -> Any:
    """A parent graph with its own SQLite checkpointer and the plangate graph as a node."""
    url = f"sqlite:///{runner.db_path.parent / 'parent.db'}"
    saver: BaseCheckpointSaver[Any]
    if runner.mode == "sync":
        saver = open_checkpointer(url)
    else:
        saver = runner.loop.run_until_complete(aopen_checkpointer(url))
    runner._savers.append(saver)  # closed by the runner fixture

    governed = build_graph(tools, profile="smb", checkpointer=None)
    assert isinstance(governed, PlangateGraph)
    builder = StateGraph(ParentState)
    builder.add_node("governed", governed)
    builder.add_node("summarise", lambda state: {"summary": state["result"]["status"]})
    builder.add_edge(START, "governed")
    builder.add_edge("governed", "summarise")
    builder.add_edge("summarise", END)
    return builder.compile(checkpointer=saver)


def test_subgraph_approval_reaches_the_parent_and_resumes_from_it(
    runner: Runner, log: CallLog
) -> None:
    """Under a parent graph the interrupt surfaces on the parent; resuming the parent finishes."""
    parent = parent_graph(runner, counting_tools(log, "crm.lookup", "email.send"))
    plan = plan_of(read_step("lookup"), send_step(depends_on=["lookup"]))

    out = runner.invoke(parent, {"plan": plan}, thread("parent"))
    interrupt = the_interrupt(out)
    request = interrupt.value
    assert request["type"] == "approval_request"
    assert (request["step_id"], request["tool"]) == ("send", "email.send")
    assert interrupt.response_schema == request["response_schema"]
    assert log.calls == [("crm.lookup", {"text": "lookup"})]
    assert len(state_of(runner, parent, thread("parent")).interrupts) == 1

    out = runner.invoke(parent, approve(), thread("parent"))

    assert "__interrupt__" not in out
    assert out["summary"] == "success"
    assert out["result"]["status"] == "success"
    assert out["result"]["approvals"][0]["approver"] == "lee"
    assert (log.count("crm.lookup"), log.count("email.send")) == (1, 1)
    assert state_of(runner, parent, thread("parent")).interrupts == ()


def test_subgraph_asks_again_when_a_bad_decision_arrives_through_the_parent(
    runner: Runner, log: CallLog
) -> None:
    """A bad value resumed on the parent re-asks with an `error`; a `Decision` then finishes."""
    parent = parent_graph(runner, counting_tools(log, "email.send"))
    first = the_request(runner.invoke(parent, {"plan": plan_of(send_step())}, thread("parent")))

    out = runner.invoke(parent, Command(resume={"decision": "maybe"}), thread("parent"))

    again = the_request(out)
    assert "decision" in again["error"]
    assert {k: v for k, v in again.items() if k != "error"} == first
    assert log.calls == []

    decision = Decision(decision="approve", approver="lee")
    out = runner.invoke(parent, Command(resume=decision), thread("parent"))
    assert out["summary"] == "success"
    assert out["result"]["approvals"][0]["approver"] == "lee"
    assert log.count("email.send") == 1
