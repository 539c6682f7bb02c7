"""Four eyes: a profile's `approvals_required` makes a call at that risk wait for that many
approvals from different people. Between them the request stays pending and says who approved;
the same approver twice and an anonymous approval are refused before anything is stored; one
rejection ends it; an edit starts the count again; the CLI shows "1 of 2"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import (
    BLANK_NAMES,
    SAME_AS_LEE,
    CallLog,
    Clock,
    Runner,
    counting_tools,
    plan_of,
    plangate,
    thread,
)
from langgraph.types import Command

from plangate import Decision, InvalidDecision, PlangateGraph, Profile, load_profile
from plangate.approval import same_person_key

SEND = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "to ana"}}
LOOKUP = {"id": "look", "tool": "crm.lookup", "action": "read", "args": {"text": "acme"}}


def four_eyes(**changes: Any) -> Profile:
    """`smb` (execute asks; `email.send` is irreversible: high risk), two approvers on high."""
    return load_profile("smb").model_copy(update={"approvals_required": {"high": 2}, **changes})


@pytest.fixture
def graph(runner: Runner, log: CallLog, clock: Clock) -> PlangateGraph:
    return runner.graph(
        counting_tools(log, "email.send", "crm.lookup"), profile=four_eyes(), clock=clock
    )


def waiting(runner: Runner, graph: PlangateGraph) -> dict[str, Any]:
    (interrupt,) = runner.state(graph, thread()).interrupts
    return dict(interrupt.value)


def approve(runner: Runner, graph: PlangateGraph, **decision: Any) -> dict[str, Any]:
    return runner.invoke(graph, Command(resume={"decision": "approve", **decision}), thread())


def test_a_call_runs_only_after_two_different_people_approve(
    runner: Runner, graph: PlangateGraph, log: CallLog, clock: Clock
) -> None:
    paused = runner.invoke(graph, {"plan": plan_of(SEND)}, thread())
    request = paused["__interrupt__"][0].value
    assert request["approvals_required"] == 2
    assert request["approvals_so_far"] == []

    first = approve(runner, graph, approver="lee")
    assert "result" not in first
    assert log.calls == []
    again = waiting(runner, graph)
    assert again["request_id"] == request["request_id"]
    assert again["digest"] == request["digest"]
    assert [(a["approver"], a["decision"]) for a in again["approvals_so_far"]] == [
        ("lee", "approve")
    ]
    lee_at = again["approvals_so_far"][0]["at"]

    clock.advance(minutes=30)
    done = approve(runner, graph, approver="kim")

    assert done["result"]["status"] == "success"
    assert log.count("email.send") == 1
    record = done["result"]["steps"][0]["approval"]
    assert next((a["approver"], a["at"]) for a in record["approvals"]) == ("lee", lee_at)
    assert [a["approver"] for a in record["approvals"]] == ["lee", "kim"]
    assert record["approvals"][1]["at"] > lee_at  # each when it came, not when the step ran
    assert record["approver"] == "kim"
    received = [e for e in runner.trace(graph, thread()) if e["type"] == "approval_received"]
    assert [e["data"]["approver"] for e in received] == ["lee", "kim"]


@pytest.mark.parametrize(
    ("decision", "says"),
    [
        ({"decision": "approve", "approver": "lee"}, "'lee' has approved this request already"),
        ({"decision": "approve"}, "needs 2 approvals from different people"),
        (
            {"decision": "edit", "args": {"text": "to bo"}, "approver": "lee"},
            "'lee' has approved this request already",
        ),
    ],
)
def test_the_same_approver_twice_or_nobody_named_is_refused_and_the_run_waits(
    runner: Runner, graph: PlangateGraph, log: CallLog, decision: dict[str, Any], says: str
) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, thread())
    approve(runner, graph, approver="lee")
    before = waiting(runner, graph)

    with pytest.raises(InvalidDecision, match=says) as refused:
        runner.invoke(graph, Command(resume=decision), thread())

    assert refused.value.field == "approver"
    assert waiting(runner, graph) == before
    assert log.calls == []
    assert approve(runner, graph, approver="kim")["result"]["status"] == "success"


@pytest.mark.parametrize("again", SAME_AS_LEE)
def test_a_name_read_as_the_first_approvers_is_refused_and_the_run_waits(
    runner: Runner, graph: PlangateGraph, log: CallLog, again: str
) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, thread())
    approve(runner, graph, approver="lee")
    before = waiting(runner, graph)

    with pytest.raises(InvalidDecision) as refused:
        approve(runner, graph, approver=again)

    assert refused.value.field == "approver"
    says = "name the approver" if again.isspace() else f"{again!r} reads as 'lee', who has"
    assert says in refused.value.message
    assert waiting(runner, graph) == before
    assert log.calls == []
    done = approve(runner, graph, approver="kim")
    assert [a["approver"] for a in done["result"]["steps"][0]["approval"]["approvals"]] == [
        "lee",
        "kim",
    ]


@pytest.mark.parametrize("blank", BLANK_NAMES)
def test_a_blank_name_is_anonymous_and_cannot_start_the_count(
    runner: Runner, graph: PlangateGraph, log: CallLog, blank: str
) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, thread())
    before = waiting(runner, graph)

    for name in (blank, "  "):  # `" "` then `"  "`: neither is anyone
        with pytest.raises(InvalidDecision, match="name the approver"):
            approve(runner, graph, approver=name)

    assert waiting(runner, graph) == before
    assert log.calls == []


def test_names_are_recorded_as_given_and_a_blank_one_as_anonymous(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, thread())
    approve(runner, graph, approver="Lee ")
    done = approve(runner, graph, approver="Kim")

    record = done["result"]["steps"][0]["approval"]
    assert [a["approver"] for a in record["approvals"]] == ["Lee ", "Kim"]
    assert Decision(decision="approve", approver=" \u200d").approver is None


def test_names_compare_as_a_person_reads_them() -> None:
    named = [name for name in SAME_AS_LEE if name.strip()]
    assert {same_person_key(name) for name in ("lee", *named, "LEE", "Iee")} == {"lee"}
    assert {same_person_key(name) for name in (None, *BLANK_NAMES)} == {None}
    # Different names stay different people.
    keys = [same_person_key(name) for name in ("lee", "lea", "leo", "kim", "kira", "ana", "anna")]
    assert len(set(keys)) == len(keys)


def test_one_rejection_ends_it(runner: Runner, graph: PlangateGraph, log: CallLog) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, thread())
    approve(runner, graph, approver="lee")

    out = runner.invoke(
        graph, Command(resume={"decision": "reject", "approver": "kim", "reason": "no"}), thread()
    )

    assert out["result"]["steps"][0]["status"] == "rejected"
    assert log.calls == []


def test_an_edit_starts_the_count_again_for_the_edited_call(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, thread())
    shown = waiting(runner, graph)
    approve(runner, graph, approver="lee")
    runner.invoke(
        graph,
        Command(resume={"decision": "edit", "args": {"text": "to bo"}, "approver": "kim"}),
        thread(),
    )

    edited = waiting(runner, graph)
    assert edited["args"] == {"text": "to bo"}
    assert edited["digest"] != shown["digest"]
    assert [(a["approver"], a["decision"]) for a in edited["approvals_so_far"]] == [("kim", "edit")]
    assert log.calls == []
    # lee approved the call as it was: approving the edit takes a decision of its own, on it.
    with pytest.raises(InvalidDecision, match="digest"):
        approve(runner, graph, approver="lee", digest=shown["digest"])

    done = approve(runner, graph, approver="lee", digest=edited["digest"])

    assert done["result"]["status"] == "success"
    assert log.calls == [("email.send", {"text": "to bo"})]
    record = done["result"]["steps"][0]["approval"]
    assert record["decision"] == "edit"
    assert record["args"] == {"text": "to bo"}
    assert [(a["approver"], a["decision"]) for a in record["approvals"]] == [
        ("kim", "edit"),
        ("lee", "approve"),
    ]


def test_other_risks_need_one_approval_and_may_be_anonymous(runner: Runner, log: CallLog) -> None:
    profile = four_eyes(require_approval=["read", "execute"])
    graph = runner.graph(counting_tools(log, "email.send", "crm.lookup"), profile=profile)
    paused = runner.invoke(graph, {"plan": plan_of(LOOKUP)}, thread())
    assert "approvals_required" not in paused["__interrupt__"][0].value

    out = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())

    assert out["result"]["status"] == "success"
    assert "approvals" not in out["result"]["steps"][0]["approval"]


def test_an_approval_short_of_the_count_when_the_request_expires_is_no_approval(
    runner: Runner, graph: PlangateGraph, log: CallLog, clock: Clock
) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, thread())
    approve(runner, graph, approver="lee")
    clock.advance(hours=25)

    out = approve(runner, graph, approver="kim")

    assert out["result"]["steps"][0]["status"] == "expired"
    assert log.calls == []


def paused_in_cli(tmp_path: Path) -> None:
    """A run `t` of one irreversible send under a four-eyes profile, paused by the CLI."""
    profile = {**load_profile("smb").model_dump(mode="json"), "approvals_required": {"high": 2}}
    (tmp_path / "four-eyes.yaml").write_text(yaml.safe_dump(profile))
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "goal": "send",
                "steps": [
                    {
                        "id": "send",
                        "tool": "email.send",
                        "args": {"to": "ana@acme.example", "subject": "Hi", "body": "."},
                    }
                ],
            }
        )
    )
    run = plangate(tmp_path, "run", "plan.yaml", "--profile", "four-eyes.yaml", "--thread", "t")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "approvals:   0 of 2 approvals; each from a different approver" in run.stdout


def test_the_cli_shows_one_of_two_and_takes_a_second_approver(tmp_path: Path) -> None:
    paused_in_cli(tmp_path)

    first = plangate(tmp_path, "approve", "t", "--approver", "lee")
    assert first.returncode == 3, first.stdout + first.stderr
    assert "approvals:   1 of 2 approvals (lee at " in first.stdout
    listed = plangate(tmp_path, "pending").stdout
    assert "high risk  1 of 2 approvals (lee at " in listed
    assert "needs approval (1 of 2 approvals" in plangate(tmp_path, "runs").stdout

    twice = plangate(tmp_path, "approve", "t", "--approver", "lee")
    assert twice.returncode == 1
    assert twice.stderr.count("\n") == 1
    assert "'lee' has approved this request already" in twice.stderr

    second = plangate(tmp_path, "approve", "t", "--approver", "kim")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Run success" in second.stdout


def test_the_cli_refuses_a_second_approval_under_the_first_approvers_name(tmp_path: Path) -> None:
    """`--approver` spelled so that a person reads `lee` again, or blank, is refused in one line;
    `show` prints each approval as recorded."""
    paused_in_cli(tmp_path)
    for blank in BLANK_NAMES:
        refused = plangate(tmp_path, "approve", "t", "--approver", blank)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "name the approver" in refused.stderr
    assert plangate(tmp_path, "approve", "t", "--approver", "lee").returncode == 3

    for again in SAME_AS_LEE:
        refused = plangate(tmp_path, "approve", "t", "--approver", again)
        assert refused.returncode == 1, (again, refused.stdout + refused.stderr)
        assert refused.stderr.count("\n") == 1
        assert "invalid decision: approver:" in refused.stderr
    assert "1 of 2 approvals (lee at " in plangate(tmp_path, "pending").stdout

    done = plangate(tmp_path, "approve", "t", "--approver", "Kim")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "approve by lee (approve), Kim (approve)" in plangate(tmp_path, "show", "t").stdout


def test_the_request_trace_records_both_decisions_in_order(
    runner: Runner, graph: PlangateGraph
) -> None:
    runner.invoke(graph, {"plan": plan_of(LOOKUP, SEND)}, thread())
    approve(runner, graph, approver="lee")
    approve(runner, graph, approver="kim")

    types = [(e["type"], e["step_id"]) for e in runner.trace(graph, thread())]
    send = [t for t, step in types if step == "send"]
    assert send[:4] == [
        "approval_requested",
        "approval_received",
        "approval_received",
        "tool_call_start",
    ]
