"""One review for the whole plan: under a profile with `plan_review`, a run pauses once before any
step runs, with the pre-flight report of the plan; `approve` pre-approves the steps it covers,
`reject` runs nothing, `edit` gives a new plan that is reviewed again, and a late decision is an
expiry. Nothing the plan says widens what a review covers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import CallLog, Clock, Runner, counting_tools, plan_of, plangate, thread
from langchain_core.tools import StructuredTool
from langgraph.types import Command

from plangate import (
    InvalidDecision,
    PlangateGraph,
    Profile,
    ProfileError,
    build_graph,
    declare_action,
    expire_approvals,
    load_profile,
    open_checkpointer,
    preflight,
)

LOOKUP = {"id": "look", "tool": "crm.lookup", "args": {"text": "acme"}}
DRAFT = {"id": "draft", "tool": "email.draft", "action": "propose", "args": {"text": "hi"}}
SEND = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "hi"}}
TOOLS = ("crm.lookup", "email.draft", "email.send")


def reviewed(**changes: Any) -> Profile:
    """`enterprise`: propose and execute ask, `email.send` is irreversible (high risk), and the
    plan is reviewed, the review covering risk up to medium."""
    return Profile.model_validate({**load_profile("enterprise").model_dump(), **changes})


@pytest.fixture
def graph(runner: Runner, log: CallLog, clock: Clock) -> PlangateGraph:
    return runner.graph(counting_tools(log, *TOOLS), profile=reviewed(), clock=clock)


def review_of(out: dict[str, Any]) -> dict[str, Any]:
    (waiting,) = out["__interrupt__"]
    assert waiting.value["type"] == "plan_review"
    return dict(waiting.value)


def decide(runner: Runner, graph: PlangateGraph, **decision: Any) -> dict[str, Any]:
    return runner.invoke(graph, Command(resume=decision), thread())


def test_the_run_pauses_once_before_any_step_with_the_whole_plan(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    review = review_of(runner.invoke(graph, {"plan": plan_of(LOOKUP, DRAFT, SEND)}, thread()))

    assert log.calls == []
    rows = {s["step_id"]: s for s in review["steps"]}
    assert [(s["tool"], s["action"], s["action_source"], s["risk"]) for s in rows.values()] == [
        ("crm.lookup", "read", "tool", "low"),
        ("email.draft", "propose", "plan", "low"),
        ("email.send", "execute", "plan", "high"),
    ]
    assert (rows["look"]["covered"], rows["look"]["asks"]) == (False, False)  # asks nobody
    assert (rows["draft"]["covered"], rows["draft"]["asks"]) == (True, False)
    assert (rows["send"]["covered"], rows["send"]["asks"]) == (False, True)  # above `covers`
    assert review["covers"] == "medium"
    assert review["risk"] == "high"
    assert review["args"]["steps"][2]["args"] == {"text": "hi"}
    assert review["allowed_decisions"] == ["approve", "edit", "reject"]
    assert len(review["digest"]) == 64
    total = next(t for t in review["budget"] if t["tier"] == "total")
    assert (total["calls"], total["limit"], total["blocked"]) == (3, 20, [])


def test_approval_runs_the_covered_steps_without_asking_and_the_rest_still_ask(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    review = review_of(runner.invoke(graph, {"plan": plan_of(LOOKUP, DRAFT, SEND)}, thread()))

    asked = decide(runner, graph, decision="approve", approver="rev", digest=review["digest"])

    assert [name for name, _ in log.calls] == ["crm.lookup", "email.draft"]
    (waiting,) = asked["__interrupt__"]
    assert (waiting.value["type"], waiting.value["step_id"]) == ("approval_request", "send")
    done = decide(runner, graph, decision="approve", approver="lee")
    steps = {s["step_id"]: s for s in done["result"]["steps"]}
    assert done["result"]["status"] == "success"
    covered = steps["draft"]["approval"]
    assert (covered["covered_by"], covered["approver"], covered["request_id"]) == (
        "plan_review",
        "rev",
        review["request_id"],
    )
    assert steps["look"]["approval"] is None
    assert "covered_by" not in steps["send"]["approval"]
    events = runner.trace(graph, thread())
    received = [e for e in events if e["type"] == "approval_received" and e["step_id"] is None]
    assert received[0]["data"]["covered"] == ["draft"]
    assert received[0]["data"]["approver"] == "rev"


def test_reject_runs_nothing_and_the_run_fails_with_the_reason(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    runner.invoke(graph, {"plan": plan_of(LOOKUP, DRAFT, SEND)}, thread())

    out = decide(runner, graph, decision="reject", approver="rev", reason="wrong customer")

    assert log.calls == []
    result = out["result"]
    assert result["status"] == "failed"
    assert [s["status"] for s in result["steps"]] == ["skipped"] * 3
    assert result["failure_context"]["error_type"] == "plan_rejected"
    assert "wrong customer" in result["failure_context"]["message"]


def test_an_edit_is_validated_then_the_new_plan_is_reviewed_again(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    first = review_of(runner.invoke(graph, {"plan": plan_of(LOOKUP, SEND)}, thread()))

    bad = {"goal": "g", "steps": [{"id": "a", "tool": "crm.lookup", "depends_on": ["nope"]}]}
    with pytest.raises(InvalidDecision, match="the new plan is not valid") as refused:
        decide(runner, graph, decision="edit", args=bad, approver="rev")
    assert refused.value.field == "args"
    (still,) = runner.state(graph, thread()).interrupts
    assert still.value["request_id"] == first["request_id"]

    new_plan = plan_of(LOOKUP, DRAFT, goal="just draft")
    again = review_of(decide(runner, graph, decision="edit", args=new_plan, approver="rev"))

    assert log.calls == []
    assert again["request_id"] != first["request_id"]
    assert again["digest"] != first["digest"]
    assert [s["step_id"] for s in again["steps"]] == ["look", "draft"]
    assert again["goal"] == "just draft"
    done = decide(runner, graph, decision="approve", approver="kim")
    assert done["result"]["status"] == "success"
    assert [name for name, _ in log.calls] == ["crm.lookup", "email.draft"]
    assert done["result"]["goal"] == "just draft"


@pytest.mark.parametrize(
    ("decision", "field"),
    [
        ({"decision": "respond", "message": "done"}, "decision"),
        ({"decision": "approve", "digest": "0" * 64}, "digest"),
    ],
)
def test_a_decision_a_review_cannot_take_is_refused_and_the_run_waits(
    runner: Runner, graph: PlangateGraph, log: CallLog, decision: dict[str, Any], field: str
) -> None:
    review = review_of(runner.invoke(graph, {"plan": plan_of(DRAFT)}, thread()))

    with pytest.raises(InvalidDecision) as refused:
        decide(runner, graph, **decision)

    assert refused.value.field == field
    (still,) = runner.state(graph, thread()).interrupts
    assert still.value["request_id"] == review["request_id"]
    assert decide(runner, graph, decision="approve")["result"]["status"] == "success"


def test_a_review_decided_after_it_expired_runs_nothing(
    runner: Runner, graph: PlangateGraph, log: CallLog, clock: Clock
) -> None:
    runner.invoke(graph, {"plan": plan_of(DRAFT)}, thread())
    clock.advance(hours=25)

    out = decide(runner, graph, decision="approve", approver="rev")

    assert log.calls == []
    assert out["result"]["status"] == "failed"
    assert out["result"]["failure_context"]["error_type"] == "plan_review_expired"


def test_the_expiry_sweep_closes_a_review_nobody_decided_and_nothing_runs(
    tmp_path: Path, log: CallLog, clock: Clock
) -> None:
    saver = open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}")
    graph = build_graph(
        counting_tools(log, *TOOLS), profile=reviewed(), clock=clock, checkpointer=saver
    )
    graph.invoke({"plan": plan_of(DRAFT)}, thread())
    clock.advance(hours=25)

    (closed,) = [(t, r) for t, r in expire_approvals(graph, now=clock()) if t == "t1"]

    assert closed[1]["status"] == "failed"
    assert closed[1]["failure_context"]["error_type"] == "plan_review_expired"
    assert log.calls == []


def test_steps_needing_several_approvers_or_always_asking_are_not_covered(
    runner: Runner, log: CallLog
) -> None:
    """A review covering high risk still leaves a high-risk call that needs two approvers, and a
    tool the profile always asks about, to ask on their own."""
    profile = reviewed(
        plan_review={"covers": "high"},
        approvals_required={"high": 2},
        approval_required_tools=["crm.*"],
    )
    graph = runner.graph(counting_tools(log, *TOOLS), profile=profile)
    plan = plan_of(LOOKUP, DRAFT, SEND, order="dependencies")  # both ask at once
    review = review_of(runner.invoke(graph, {"plan": plan}, thread()))

    assert {s["step_id"]: s["covered"] for s in review["steps"]} == {
        "look": False,
        "draft": True,
        "send": False,
    }
    asked = decide(runner, graph, decision="approve", approver="rev")
    assert sorted(i.value["step_id"] for i in asked["__interrupt__"]) == ["look", "send"]
    assert [name for name, _ in log.calls] == ["email.draft"]


def test_a_plan_cannot_make_a_step_covered_by_saying_it_reads(runner: Runner, log: CallLog) -> None:
    """`email.send` declared irreversible `execute` stays high risk whatever the plan's action."""
    tools = counting_tools(log, "email.send", action="execute")
    graph = runner.graph(tools, profile=reviewed(plan_review={"covers": "medium"}))
    lying = {**SEND, "action": "read"}
    review = review_of(runner.invoke(graph, {"plan": plan_of(lying)}, thread()))
    assert review["steps"][0]["risk"] == "high"
    assert review["steps"][0]["covered"] is False
    asked = decide(runner, graph, decision="approve", approver="rev")
    assert asked["__interrupt__"][0].value["step_id"] == "send"
    assert log.calls == []


def test_a_plan_none_of_whose_steps_would_ask_runs_without_a_review(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    out = runner.invoke(graph, {"plan": plan_of(LOOKUP)}, thread())

    assert out["result"]["status"] == "success"
    assert log.calls == [("crm.lookup", {"text": "acme"})]
    assert not [e for e in runner.trace(graph, thread()) if e["type"] == "approval_requested"]


def test_an_edit_to_a_plan_that_asks_nobody_runs_it_without_another_review(
    runner: Runner, graph: PlangateGraph, log: CallLog
) -> None:
    runner.invoke(graph, {"plan": plan_of(SEND)}, thread())

    out = decide(runner, graph, decision="edit", args=plan_of(LOOKUP), approver="rev")

    assert out["result"]["status"] == "success"
    assert log.calls == [("crm.lookup", {"text": "acme"})]


def test_the_review_is_off_by_default_and_a_bad_setting_names_the_field(tmp_path: Path) -> None:
    assert load_profile("smb").plan_review is None
    assert load_profile("enterprise").plan_review is not None
    path = tmp_path / "p.yaml"
    path.write_text("plan_review: {covers: extreme}\n")
    with pytest.raises(ProfileError) as refused:
        load_profile(path)
    assert refused.value.field == "plan_review.covers"


def test_the_preflight_report_forecasts_each_budget_tier_and_whom_it_blocks(
    log: CallLog,
) -> None:
    graph = build_graph(counting_tools(log, *TOOLS), profile="enterprise")
    drafts = [{**DRAFT, "id": f"d{n}"} for n in range(7)]

    report = preflight(graph, plan_of(*drafts))

    tiers = {t.tier: t for t in report.budget}
    assert (tiers["tool:email.draft"].calls, tiers["tool:email.draft"].limit) == (5, 5)
    assert tiers["tool:email.draft"].blocked == ["d5", "d6"]
    assert tiers["total"].blocked == []


def test_the_cli_shows_the_review_and_a_second_process_approves_it(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "goal": "draft",
                "steps": [
                    {"id": "look", "tool": "crm.lookup_account", "args": {"account": "acme"}},
                    {
                        "id": "draft",
                        "tool": "email.draft",
                        "args": {"to": "ana@acme.example", "subject": "Hi", "body": "."},
                    },
                ],
            }
        )
    )
    run = plangate(tmp_path, "run", "plan.yaml", "--profile", "enterprise", "--thread", "t")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "Paused: the plan waits for review before any step runs." in run.stdout
    assert re.search(r"^  draft +email.draft .* low +covered ", run.stdout, re.M)
    assert "plan review (2 steps)" in plangate(tmp_path, "pending").stdout

    approved = plangate(tmp_path, "approve", "t", "--approver", "rev")

    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "Approving the plan review of run t:" in approved.stdout
    assert "Run success" in approved.stdout
    assert "[  2] approval_received   plan: approve by rev" in approved.stdout


# --- what the review covered is what the reviewer saw ------------------------------------------


def redeclared(log: CallLog, action: str, *, new_arg: str | None = None) -> list[Any]:
    """The review's tools as another deploy declares them: `crm.lookup` now says `action`, and
    takes `new_arg` besides its `text`, when given."""
    tools = counting_tools(log, "email.draft", "email.send")
    lookup = counting_tools(log, "crm.lookup", action=action)[0]
    if new_arg is not None:

        def upgraded(**kwargs: Any) -> dict[str, Any]:
            return {"tool": "crm.lookup", "echo": kwargs}

        schema = {"type": "object", "properties": {"text": {"type": "string"}, new_arg: {}}}
        lookup = declare_action(
            StructuredTool.from_function(
                upgraded, name="crm.lookup", description="Test tool.", args_schema=schema
            ),
            action=action,  # type: ignore[arg-type]
        )
    return [lookup, *tools]


def test_a_tool_redeclared_after_the_review_shown_as_a_read_asks(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """The reviewer saw `crm.lookup` as a read that asks nobody; by the time the decision lands,
    another process declares it `execute`. The review's approval does not stand for it: the
    step asks on its own, and the call waits until a person approves it."""
    first = runner.graph(counting_tools(log, *TOOLS), profile=reviewed(), clock=clock)
    review = review_of(runner.invoke(first, {"plan": plan_of(LOOKUP, DRAFT)}, thread()))
    (look,) = [s for s in review["steps"] if s["step_id"] == "look"]
    assert (look["action"], look["covered"]) == ("read", False)  # a read asks nobody

    later = runner.graph(redeclared(log, "execute"), profile=reviewed(), clock=clock)
    out = decide(runner, later, decision="approve", approver="rev", digest=review["digest"])

    (waiting,) = out["__interrupt__"]
    assert (waiting.value["step_id"], waiting.value["action"]) == ("look", "execute")
    assert log.count("crm.lookup") == 0
    done = decide(runner, later, decision="approve", approver="lee")["result"]
    steps = {s["step_id"]: s for s in done["steps"]}
    assert steps["look"]["approval"]["approver"] == "lee"
    assert "covered_by" not in steps["look"]["approval"]


def test_a_covered_step_that_runs_as_more_than_it_was_shown_asks_and_says_why(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """Shown as `propose` (low, covered), then redeclared `execute` (medium, which `covers`
    still reaches): it asks on its own, and the request names what changed."""
    draft = {"id": "draft", "tool": "crm.lookup", "args": {"text": "hi"}}
    first = runner.graph(
        counting_tools(log, *TOOLS, action="propose"), profile=reviewed(), clock=clock
    )
    review = review_of(runner.invoke(first, {"plan": plan_of(draft)}, thread()))
    assert [(s["action"], s["risk"], s["covered"]) for s in review["steps"]] == [
        ("propose", "low", True)
    ]

    later = runner.graph(redeclared(log, "execute"), profile=reviewed(), clock=clock)
    out = decide(runner, later, decision="approve", approver="rev", digest=review["digest"])

    (waiting,) = out["__interrupt__"]
    request = waiting.value
    assert (request["action"], request["risk"]) == ("execute", "medium")
    assert request["review_changed"].startswith(
        "the plan review showed it as propose (tool), low risk, reversible; it is now "
        "execute (tool), medium risk, reversible"
    )
    assert log.count("crm.lookup") == 0
    asked = [
        e
        for e in runner.trace(later, thread())
        if e["type"] == "approval_requested" and e["step_id"] == "draft"
    ]
    assert "review_changed" in asked[0]["data"]


def test_a_covered_step_whose_tool_declaration_changed_asks(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """Same action and risk, but the tool now takes another argument (a server upgrade): the
    reviewer approved another tool than the one that would run, so the step asks."""
    draft = {"id": "draft", "tool": "crm.lookup", "args": {"text": "hi"}}
    first = runner.graph(
        counting_tools(log, *TOOLS, action="propose"), profile=reviewed(), clock=clock
    )
    review = review_of(runner.invoke(first, {"plan": plan_of(draft)}, thread()))

    later = runner.graph(redeclared(log, "propose", new_arg="cc"), profile=reviewed(), clock=clock)
    out = decide(runner, later, decision="approve", approver="rev", digest=review["digest"])

    (waiting,) = out["__interrupt__"]
    assert waiting.value["step_id"] == "draft"
    assert "its tool's declaration changed" in waiting.value["review_changed"]


def test_the_review_digest_covers_every_row_shown(
    runner: Runner, log: CallLog, clock: Clock
) -> None:
    """The same plan under tools that declare themselves otherwise is another review: its digest
    differs, so a decision bound to the first is refused by the second."""
    first = runner.graph(counting_tools(log, *TOOLS), profile=reviewed(), clock=clock)
    review = review_of(runner.invoke(first, {"plan": plan_of(LOOKUP, DRAFT)}, thread()))
    other = runner.graph(redeclared(log, "propose"), profile=reviewed(), clock=clock)
    again = review_of(runner.invoke(other, {"plan": plan_of(LOOKUP, DRAFT)}, thread("t2")))
    assert review["digest"] != again["digest"]
    assert review["order"] == again["order"] == "listed"
