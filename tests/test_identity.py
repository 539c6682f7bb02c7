"""Who decided, checked by the graph: a decision with a proof made by the project's key is
verified, anything else is the name it gives (`unverified`); the profile's `identity_required`,
`approvers` and `self_approval`, and four eyes, judge that person whatever door the decision
came through. Each refusal leaves the run paused, resumable by the right person."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import CallLog, copy_demo, counting_tools, plan_of, plangate, thread
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command

from plangate import (
    ExecutionResult,
    InvalidDecision,
    PlangateGraph,
    Profile,
    build_graph,
    get_trace,
    load_profile,
    open_checkpointer,
)
from plangate.identity import DecisionSigner, Identity, unverified
from plangate.identity._gate import LANGGRAPH_AUTH_USER, STARTED_BY, STARTER
from plangate.project import Project
from plangate.runs.service import RunService

SERDE = JsonPlusSerializer()
SIGNER = DecisionSigner(b"a key only the doors and the graph hold")
SEND = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "to ana"}}
ANA: Identity = {
    "subject": "u-ana",
    "name": "Ana",
    "email": "ana@example.com",
    "groups": ["payments-leads"],
    "verified_by": "oidc",
}
BEN: Identity = {
    "subject": "u-ben",
    "name": "Ben",
    "email": "ben@example.com",
    "groups": ["payments-leads", "sales"],
    "verified_by": "oidc",
}
# Ana again, through another door: a plangate token named by her email.
ANA_BY_TOKEN: Identity = {
    "subject": "ANA@example.com",
    "name": "ANA@example.com",
    "email": "ANA@example.com",
    "groups": [],
    "verified_by": "token",
}


def smb(**changes: Any) -> Profile:
    """`smb`: a send (irreversible) asks, at high risk."""
    return Profile.model_validate({**load_profile("smb").model_dump(), **changes})


def graph_of(tmp_path: Path, log: CallLog, profile: Profile, **kwargs: Any) -> PlangateGraph:
    saver = open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}")
    return build_graph(
        counting_tools(log, "email.send", action="execute"),
        profile=profile,
        checkpointer=saver,
        **kwargs,
    )


def started(graph: PlangateGraph, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start the one-send plan; the request it waits on."""
    out = graph.invoke({"plan": plan_of(SEND)}, config or thread())
    (interrupt,) = out["__interrupt__"]
    return dict(interrupt.value)


def waiting(graph: PlangateGraph) -> dict[str, Any]:
    (interrupt,) = graph.get_state(thread()).interrupts
    return dict(interrupt.value)


def signed(request: dict[str, Any], identity: Identity, **decision: Any) -> dict[str, Any]:
    """`decision` as a door that authenticated `identity` sends it: with its proof."""
    fields = {"decision": "approve", **decision}
    proof = SIGNER.sign_decision(
        fields, request_id=request["request_id"], digest=request["digest"], identity=identity
    )
    return {**fields, "identity": identity, "proof": proof}


def approval_of(graph: PlangateGraph) -> dict[str, Any]:
    (step,) = graph.get_state(thread()).values["result"]["steps"]
    return step["approval"]


def received(graph: PlangateGraph) -> list[dict[str, Any]]:
    events = get_trace(graph, thread())
    return [e["data"] for e in events if e["type"] == "approval_received"]


@pytest.fixture
def log() -> CallLog:
    return CallLog()


def test_a_signed_decision_is_recorded_verified_with_its_proof(
    tmp_path: Path, log: CallLog
) -> None:
    graph = graph_of(tmp_path, log, smb(), signer=SIGNER)
    request = started(graph)

    graph.invoke(Command(resume=signed(request, ANA)), thread())

    record = approval_of(graph)
    assert record["identity"] == ANA
    assert record["approver"] == "Ana"
    (proof,) = record["proofs"]
    assert proof["identity"] == ANA
    assert proof["request_id"] == request["request_id"]
    (event,) = received(graph)
    assert event["verified_by"] == "oidc"
    assert event["proof"] == proof["proof"]
    assert len(log.calls) == 1


def test_without_a_key_or_with_a_proof_for_something_else_the_decision_is_unverified(
    tmp_path: Path, log: CallLog
) -> None:
    """A proof holds for exactly the decision, request and person it was made for: replayed
    with other args, or checked by a graph without the key, it proves nothing, and the
    decision is the name it gives."""
    graph = graph_of(tmp_path, log, smb(), signer=SIGNER)
    request = started(graph)
    proof = signed(request, ANA)
    edited = {**proof, "decision": "edit", "args": {"text": "to mallory"}}

    graph.invoke(Command(resume={**edited, "approver": "Ana"}), thread())

    record = approval_of(graph)
    assert record["identity"] == unverified("Ana")
    assert "proofs" not in record
    assert log.calls == [("email.send", {"text": "to mallory"})]


def test_an_unsigned_python_decision_on_a_high_risk_request_is_refused_under_identity_required(
    tmp_path: Path, log: CallLog
) -> None:
    graph = graph_of(tmp_path, log, smb(identity_required="medium"), signer=SIGNER)
    request = started(graph)
    assert request["risk"] == "high"

    with pytest.raises(InvalidDecision) as refused:
        graph.invoke(Command(resume={"decision": "approve", "approver": "Ana"}), thread())

    assert refused.value.field == "identity"
    assert "wants a verified identity from medium up; 'Ana' is unverified" in str(refused.value)
    assert waiting(graph)["request_id"] == request["request_id"]  # still paused
    assert log.calls == []

    graph.invoke(Command(resume=signed(request, ANA)), thread())
    assert approval_of(graph)["identity"]["verified_by"] == "oidc"
    assert len(log.calls) == 1


def test_a_verified_person_cannot_name_another_approver(tmp_path: Path, log: CallLog) -> None:
    graph = graph_of(tmp_path, log, smb(), signer=SIGNER)
    request = started(graph)

    with pytest.raises(InvalidDecision) as refused:
        graph.invoke(Command(resume={**signed(request, ANA), "approver": "Ben"}), thread())

    assert "you are 'Ana' (oidc); a decision cannot name 'Ben'" in str(refused.value)
    assert waiting(graph)["request_id"] == request["request_id"]
    assert log.calls == []


@pytest.mark.parametrize("second", [ANA, ANA_BY_TOKEN], ids=["same-door", "token-by-email"])
def test_one_person_cannot_complete_four_eyes_through_one_or_two_doors(
    tmp_path: Path, log: CallLog, second: Identity
) -> None:
    graph = graph_of(tmp_path, log, smb(approvals_required={"high": 2}), signer=SIGNER)
    request = started(graph)
    graph.invoke(Command(resume=signed(request, ANA)), thread())
    again = waiting(graph)
    assert [a["identity"]["subject"] for a in again["approvals_so_far"]] == ["u-ana"]

    with pytest.raises(InvalidDecision) as refused:
        graph.invoke(Command(resume=signed(again, second)), thread())

    assert "has approved this request already; it needs 2 different approvers" in str(refused.value)
    assert log.calls == []
    graph.invoke(Command(resume=signed(waiting(graph), BEN)), thread())
    record = approval_of(graph)
    assert [a["identity"]["subject"] for a in record["approvals"]] == ["u-ana", "u-ben"]
    assert len(record["proofs"]) == 2
    assert len(log.calls) == 1
    typed = ExecutionResult.model_validate(graph.get_state(thread()).values["result"])
    (step,) = typed.steps
    assert step.approval is not None
    assert step.approval.identity == BEN


def test_with_identities_on_four_eyes_counts_only_verified_people(
    tmp_path: Path, log: CallLog
) -> None:
    graph = graph_of(tmp_path, log, smb(approvals_required={"high": 2}), signer=SIGNER)
    started(graph)

    with pytest.raises(InvalidDecision) as refused:
        graph.invoke(Command(resume={"decision": "approve", "approver": "Carl"}), thread())

    assert "2 approvals from different verified people" in str(refused.value)
    assert waiting(graph)["approvals_so_far"] == []


def vouched(identity: Identity, signer: DecisionSigner = SIGNER) -> dict[str, Any]:
    """What plangate's auth handler puts in LangGraph's server's user."""
    return {"plangate": {"identity": identity, "assertion": signer.assert_identity(identity)}}


def test_the_runs_starter_cannot_approve_it_under_self_approval_forbidden_but_may_reject(
    tmp_path: Path, log: CallLog
) -> None:
    graph = graph_of(tmp_path, log, smb(self_approval="forbidden"), signer=SIGNER)
    door = {"identity": ANA, "assertion": SIGNER.assert_identity(ANA)}
    request = started(graph, {**thread(), "metadata": {STARTER: door}})
    assert request["started_by"] == ANA

    # Neither as herself nor through her token, nor by a later config naming another starter.
    for who in (ANA, ANA_BY_TOKEN):
        with pytest.raises(InvalidDecision) as refused:
            graph.invoke(Command(resume=signed(request, who)), thread())
        assert "started this run, and the profile forbids approving one's own run" in str(
            refused.value
        )
    forged = {**thread(), "metadata": {STARTED_BY: "someone else"}}
    with pytest.raises(InvalidDecision):
        graph.invoke(Command(resume=signed(request, ANA)), forged)
    assert log.calls == []

    graph.invoke(Command(resume=signed(request, ANA, decision="reject", reason="no")), thread())
    assert approval_of(graph)["decision"] == "reject"


def test_an_unverified_starter_is_compared_by_name(tmp_path: Path, log: CallLog) -> None:
    """The CLI on the database records the operating-system user: a typed name that reads as
    theirs is them."""
    graph = graph_of(tmp_path, log, smb(self_approval="forbidden"))
    started(graph, {**thread(), "metadata": {STARTED_BY: "lee"}})

    with pytest.raises(InvalidDecision):
        graph.invoke(Command(resume={"decision": "approve", "approver": "LEE "}), thread())
    graph.invoke(Command(resume={"decision": "approve", "approver": "ana"}), thread())
    assert approval_of(graph)["identity"] == unverified("ana")


def test_approver_rules_name_groups_by_risk_and_tool_and_a_typed_name_matches_none(
    tmp_path: Path, log: CallLog
) -> None:
    rules = {"high": ["group:payments-leads"], "email.*": ["group:sales"]}
    graph = graph_of(tmp_path, log, smb(approvers=rules), signer=SIGNER)
    request = started(graph)

    with pytest.raises(InvalidDecision) as refused:  # a lead, not in sales
        graph.invoke(Command(resume=signed(request, ANA)), thread())
    assert "'Ana' may not decide this request: the profile's approvers.email.* names" in str(
        refused.value
    )
    with pytest.raises(InvalidDecision) as typed:  # a name typed is no group
        graph.invoke(Command(resume={"decision": "approve", "approver": "Ben"}), thread())
    assert "(unverified, so no rule names it)" in str(typed.value)
    assert log.calls == []

    graph.invoke(Command(resume=signed(request, BEN)), thread())
    assert approval_of(graph)["identity"]["subject"] == "u-ben"


def test_the_plan_review_obeys_the_rules_of_the_steps_it_shows(
    tmp_path: Path, log: CallLog
) -> None:
    profile = smb(plan_review={"covers": "high"}, approvers={"email.*": ["group:sales"]})
    graph = graph_of(tmp_path, log, profile, signer=SIGNER)
    review = started(graph)
    assert review["type"] == "plan_review"

    with pytest.raises(InvalidDecision) as refused:
        graph.invoke(Command(resume=signed(review, ANA)), thread())
    assert "approvers.email.* names group:sales" in str(refused.value)

    graph.invoke(Command(resume=signed(review, BEN)), thread())
    record = approval_of(graph)
    assert record["covered_by"] == "plan_review"
    assert record["identity"]["subject"] == "u-ben"


def test_langgraph_servers_vouched_user_decides_and_a_forged_one_is_nobody(
    tmp_path: Path, log: CallLog
) -> None:
    graph = graph_of(tmp_path, log, smb(identity_required="low"), signer=SIGNER)
    started(graph)
    hitl = {"decisions": [{"type": "approve"}]}
    other_key = DecisionSigner(b"a key somebody made up for this")
    for forged in ({"plangate": {"identity": ANA}}, vouched(ANA, other_key)):
        config = {"configurable": {**thread()["configurable"], LANGGRAPH_AUTH_USER: forged}}
        with pytest.raises(InvalidDecision) as refused:
            graph.invoke(Command(resume=hitl), config)
        assert refused.value.field == "identity"

    as_ben = {"configurable": {**thread()["configurable"], LANGGRAPH_AUTH_USER: vouched(ANA)}}
    as_ben["configurable"]["approver"] = "Ben"  # configurable names another approver
    with pytest.raises(InvalidDecision) as named:
        graph.invoke(Command(resume=hitl), as_ben)
    assert "a decision cannot name 'Ben'" in str(named.value)
    assert log.calls == []

    config = {"configurable": {**thread()["configurable"], LANGGRAPH_AUTH_USER: vouched(ANA)}}
    graph.invoke(Command(resume=hitl), config)
    record = approval_of(graph)
    assert record["identity"] == ANA
    (proof,) = record["proofs"]  # the graph signed it itself
    assert SIGNER.decision_holds(
        proof,
        **{k: proof[k] for k in ("request_id", "digest")},
        identity=proof["identity"],
        proof=proof["proof"],
    )


# -- the run service and `plangate verify`, on the demo project ------------------------------


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    folder = copy_demo(tmp_path / "demo")
    spec = yaml.safe_load((folder / "plangate.yaml").read_text())
    spec["identity"] = {"signing_key": "${PLANGATE_SIGNING_KEY}"}
    (folder / "plangate.yaml").write_text(yaml.safe_dump(spec))
    return folder


def until(read: Callable[[], list[Any]], seconds: float = 20.0) -> list[Any]:
    """What `read` gives once it gives something (a run the service started pauses soon)."""
    deadline = time.monotonic() + seconds
    while not (found := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


KEY_ENV = {"PLANGATE_SIGNING_KEY": "the demo's signing key, 32 bytes+"}


def test_a_decision_proof_edited_in_sqlite_fails_verify(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANGATE_SIGNING_KEY", KEY_ENV["PLANGATE_SIGNING_KEY"])
    project = Project.load(demo / "plangate.yaml")
    service = RunService(project.db, project=project)
    plan = (demo / "sales_followup.yaml").read_text()
    service.start(plan=plan, profile="smb", thread="signed", offline=True, caller=BEN)
    (pending,) = until(lambda: service.pending(caller=ANA))
    assert pending["may_decide"] is True
    service.decide("signed", {"decision": "approve"}, caller=ANA)
    service.close()
    env = {**os.environ, **KEY_ENV}

    verified = plangate(demo, "verify", "signed", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    database = project.db.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT rowid, type, value FROM writes WHERE channel = 'outcomes'"
        ).fetchall()
        edited = 0
        for rowid, kind, value in rows:
            outcomes = SERDE.loads_typed((kind, value))
            if not isinstance(outcomes, dict):  # the run's start clears them (an Overwrite)
                continue
            for step, text in outcomes.items():
                if '"proofs"' in text:
                    outcome = json.loads(text)
                    outcome["approval"]["identity"]["subject"] = "u-mallory"
                    outcome["approval"]["proofs"][0]["identity"]["subject"] = "u-mallory"
                    outcomes[step] = json.dumps(outcome)
                    edited += 1
            conn.execute(
                "UPDATE writes SET type = ?, value = ? WHERE rowid = ?",
                (*SERDE.dumps_typed(outcomes), rowid),
            )
    conn.close()
    assert edited == 1

    broken = plangate(demo, "verify", "signed", env=env)
    assert broken.returncode == 7, broken.stdout + broken.stderr
    assert "the proof of approve by 'Ana' does not hold" in broken.stdout
    without_key = plangate(demo, "verify", "signed", env={**os.environ})
    assert without_key.returncode != 0


def test_on_the_database_the_cli_starts_and_decides_as_the_os_user_unverified(
    tmp_path: Path,
) -> None:
    """`enterprise` forbids approving one's own run: `plangate run` records the user who ran
    it, so the same user's `approve` is refused (the run still waits), and is not listed by
    `pending --mine`; another name may approve, recorded unverified."""
    demo = copy_demo(tmp_path / "demo")
    plan = "sales_followup.yaml"
    ran = plangate(demo, "run", plan, "--profile", "enterprise", "--offline", "--thread", "mine")
    assert ran.returncode == 3, ran.stdout + ran.stderr

    listed = plangate(demo, "pending").stdout
    assert "mine  plan review" in listed
    assert plangate(demo, "pending", "--mine").stdout.strip() == (
        "No run is waiting for your approval."
    )

    refused = plangate(demo, "approve", "mine")
    assert refused.returncode == 1
    assert refused.stderr.startswith("plangate: error: invalid decision: approver: ")
    assert refused.stderr.count("\n") == 1
    assert "started this run, and the profile forbids approving one's own run" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "mine  plan review" in plangate(demo, "pending").stdout  # still waiting

    approved = plangate(demo, "approve", "mine", "--approver", "lee")
    assert approved.returncode in (0, 3), approved.stdout + approved.stderr
    audit = [json.loads(line) for line in plangate(demo, "audit", "mine").stdout.splitlines()]
    (review,) = [r for r in audit if r["record"] == "decision"][:1]
    assert review["approver"] == "lee"
    assert review["verified_by"] == "unverified"


def test_each_vouched_user_keeps_their_own_approval_when_the_next_one_resumes(
    tmp_path: Path, log: CallLog
) -> None:
    """The node replays earlier decisions on every resume: each stays the person's who made
    it, though the run is resumed by another user naming themselves in `configurable`."""
    graph = graph_of(tmp_path, log, smb(approvals_required={"high": 2}), signer=SIGNER)
    started(graph)
    hitl = {"decisions": [{"type": "approve"}]}

    def as_user(identity: Identity, **configurable: Any) -> dict[str, Any]:
        own = {**thread()["configurable"], LANGGRAPH_AUTH_USER: vouched(identity)}
        return {"configurable": {**own, **configurable}}

    graph.invoke(Command(resume=hitl), as_user(ANA))
    graph.invoke(Command(resume=hitl), as_user(BEN, approver="ben@example.com"))

    record = approval_of(graph)
    assert [a["identity"]["subject"] for a in record["approvals"]] == ["u-ana", "u-ben"]
    assert len(log.calls) == 1


def test_a_signing_key_too_short_is_one_line_naming_the_key(demo: Path) -> None:
    from plangate import ProjectError

    project = Project.load(demo / "plangate.yaml", environ={"PLANGATE_SIGNING_KEY": "short"})
    with pytest.raises(ProjectError) as refused:
        _ = project.signer
    assert "identity.signing_key" in str(refused.value)
    assert "at least 16 characters" in str(refused.value)
    assert "\n" not in str(refused.value)
