"""The run service's one rule for binding a decision to the requests it answers
(`plangate.runs.service.bind_decision`), tested once here; the CLI and the inbox each test only
how they translate it (arguments and exit codes, HTTP statuses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _support import CallLog, counting_tools, plan_of, plangate, serving, thread
from langgraph.types import Command

from plangate import build_graph, open_checkpointer
from plangate.cli import ExitCode
from plangate.errors import InvalidDecision, NoPendingApproval, PlangateUsageError, StaleDecision
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.service import bind_decision
from plangate.runs.stored import is_approval_request

APPROVE = {"decision": "approve", "approver": "lee"}


@pytest.fixture
def log() -> CallLog:
    return CallLog()


@pytest.fixture
def three_waiting(tmp_path: Path, log: CallLog) -> tuple[PlangateGraph, dict[str, Any]]:
    """A run whose three sends wait for approval at once, and its requests by interrupt id."""
    tools = counting_tools(log, "email.send", action="execute")
    graph = build_graph(
        tools, profile="smb", checkpointer=open_checkpointer(f"sqlite:///{tmp_path / 'r.db'}")
    )
    steps = [{"id": f"send-{n}", "tool": "email.send", "args": {"text": n}} for n in "abc"]
    out = graph.invoke({"plan": plan_of(*steps, order="dependencies")}, thread("t"))
    assert len(out["__interrupt__"]) == 3
    return graph, waiting(graph)


def waiting(graph: PlangateGraph) -> dict[str, Any]:
    state = graph.get_state(thread("t"))
    return {i.id: i.value for i in state.interrupts if is_approval_request(i.value)}


def test_a_bare_decision_while_several_wait_is_refused_naming_them(
    three_waiting: tuple[PlangateGraph, dict[str, Any]], log: CallLog
) -> None:
    graph, requests = three_waiting
    with pytest.raises(InvalidDecision) as refused:
        bind_decision("t", requests, APPROVE, graph=graph)
    assert refused.value.field == "interrupt_id"
    assert "3 approvals are pending ('send-a', 'send-b', 'send-c')" in str(refused.value)
    assert waiting(graph) == requests  # nothing changed
    assert log.calls == []


def test_a_decision_binds_to_its_step_its_interrupt_or_every_request(
    three_waiting: tuple[PlangateGraph, dict[str, Any]],
) -> None:
    graph, requests = three_waiting
    by_step = bind_decision("t", requests, APPROVE, graph=graph, step="send-b")
    assert [r["step_id"] for r in by_step.requests] == ["send-b"]
    (key,) = by_step.resume
    assert requests[key]["step_id"] == "send-b"
    assert by_step.resume[key]["request_id"] == requests[key]["request_id"]
    assert by_step.resume[key]["digest"] == requests[key]["digest"]

    by_id = bind_decision("t", requests, APPROVE, graph=graph, interrupt_id=key)
    assert by_id.resume == by_step.resume

    every = bind_decision("t", requests, APPROVE, graph=graph, every=True)
    assert [r["step_id"] for r in every.requests] == ["send-a", "send-b", "send-c"]
    assert set(every.resume) == set(requests)


def test_what_a_decision_names_must_wait(
    three_waiting: tuple[PlangateGraph, dict[str, Any]],
) -> None:
    graph, requests = three_waiting
    with pytest.raises(StaleDecision):
        bind_decision("t", requests, APPROVE, graph=graph, interrupt_id="decided-meanwhile")
    with pytest.raises(PlangateUsageError, match="is not waiting for step 'send-z'"):
        bind_decision("t", requests, APPROVE, graph=graph, step="send-z")
    with pytest.raises(PlangateUsageError, match="one way"):
        bind_decision("t", requests, APPROVE, graph=graph, step="send-a", every=True)
    with pytest.raises(NoPendingApproval):
        bind_decision("t", {}, APPROVE, graph=graph)


@pytest.mark.parametrize(
    ("decision", "field"),
    [
        ({"decision": "approve"}, "approver"),
        ({"decision": "approve", "approver": " \u200d"}, "approver"),
        ({"decision": "reject", "approver": "lee"}, "reason"),
        ({"decision": "reject", "approver": "lee", "reason": "  "}, "reason"),
        ({"decision": "edit", "approver": "lee", "args": {"text": 5}}, "args.text"),
        ({"decision": "edit", "approver": "lee", "args": {"to": "x"}}, "args"),
        ({**APPROVE, "digest": "0" * 64}, "digest"),
    ],
)
def test_a_decision_is_checked_before_anything_runs(
    three_waiting: tuple[PlangateGraph, dict[str, Any]],
    log: CallLog,
    decision: dict[str, Any],
    field: str,
) -> None:
    """No approver (or a blank one), a rejection without a reason, an edit the tool's schema
    refuses, a digest of another request: one `InvalidDecision` naming the field, nothing
    called, the run still waiting on the same requests."""
    graph, requests = three_waiting
    with pytest.raises(InvalidDecision) as refused:
        bind_decision("t", requests, decision, graph=graph, step="send-a")
    assert refused.value.field is not None
    assert refused.value.field.startswith(field)
    assert log.calls == []
    assert waiting(graph) == requests


def test_a_bound_decision_resumes_exactly_its_requests(
    three_waiting: tuple[PlangateGraph, dict[str, Any]], log: CallLog
) -> None:
    """One step's decision answers that request only; the wave's calls are made when every
    request of it is decided, each once."""
    graph, requests = three_waiting
    bound = bind_decision("t", requests, APPROVE, graph=graph, step="send-c")
    graph.invoke(bound.command, thread("t"))
    left = waiting(graph)
    assert sorted(r["step_id"] for r in left.values()) == ["send-a", "send-b"]
    rest = bind_decision("t", left, {**APPROVE, "approver": "kim"}, graph=graph, every=True)
    out = graph.invoke(rest.command, thread("t"))
    assert out["result"]["status"] == "success"
    assert sorted(args["text"] for _, args in log.calls) == ["a", "b", "c"]


# --- the faces translate the same rule ----------------------------------------------------------


def test_the_cli_and_the_inbox_refuse_a_bare_decision_while_several_wait_alike(
    tmp_path: Path,
) -> None:
    """`plangate approve THREAD` names the steps and says to give --step or --all (exit 1, one
    line); the inbox's decide endpoint answers 422 with the same message: one rule."""
    import httpx

    from plangate.project import Project
    from plangate.server import create_app

    sends = [
        {"id": f"send-{who}", "tool": "email.send", "args": {"to": f"{who}@acme.example",
         "subject": "Renewal", "body": "Hi"}}
        for who in ("ana", "ben")
    ]  # fmt: skip
    plan = tmp_path / "two.json"
    plan.write_text(json.dumps({"goal": "two", "steps": sends, "order": "dependencies"}))
    run = plangate(tmp_path, "run", str(plan), "--profile", "smb", "--thread", "two")
    assert run.returncode == ExitCode.PAUSED, run.stderr

    bare = plangate(tmp_path, "approve", "two", "--approver", "lee")
    assert bare.returncode == ExitCode.USER_ERROR
    message = (
        "invalid decision: 2 approvals are pending ('send-ana', 'send-ben'); name the one decided"
    )
    assert bare.stderr.strip() == (
        f"plangate: error: {message} "
        "(name one with --step STEP_ID, or decide each as printed with --all)"
    )

    db = str(tmp_path / "plangate.db")
    inbox = create_app(db, token="t0k", project=Project.demo(tmp_path))
    with serving(inbox) as base:
        answer = httpx.post(
            f"{base}/api/runs/two/decision",
            json={"decision": "approve", "approver": "lee"},
            headers={"Authorization": "Bearer t0k"},
            timeout=30,
        )
    assert answer.status_code == 422, answer.text
    assert message in answer.text
    listed = plangate(tmp_path, "pending").stdout
    assert "send-ana" in listed
    assert "send-ben" in listed


def test_a_decision_keyed_by_an_interrupt_that_waits_no_more_is_stale(
    three_waiting: tuple[PlangateGraph, dict[str, Any]], log: CallLog
) -> None:
    """A mapping by interrupt id whose request was decided meanwhile is refused as stale, not
    read as a decision on whatever waits now."""
    graph, requests = three_waiting
    bound = bind_decision("t", requests, APPROVE, graph=graph, step="send-a")
    graph.invoke(bound.command, thread("t"))
    with pytest.raises(StaleDecision):
        graph.invoke(Command(resume=bound.resume), thread("t"))
    assert sorted(r["step_id"] for r in waiting(graph).values()) == ["send-b", "send-c"]
    assert log.calls == []
