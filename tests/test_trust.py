"""The plan is untrusted: actions come from trusted sources, a plan can only raise them, and a
decision answers exactly the request a person was shown. Every refusal leaves the run paused
and resumable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _support import (
    ENTERPRISE_BY_STEP,
    CallLog,
    Runner,
    counting_tools,
    plan_of,
    plangate,
    run_in,
    thread,
)
from langchain_core.tools import StructuredTool
from langgraph.types import Command

from plangate import (
    InvalidDecision,
    PlangateUsageError,
    Profile,
    ProfileMismatch,
    StaleDecision,
    ToolNotAvailable,
    build_graph,
    declare_action,
    demo_outbox,
    demo_toolkit,
    load_profile,
    open_checkpointer,
)
from plangate.approval import approval_digest

EMAIL_AS_READ = {
    "id": "send",
    "tool": "email.send",
    "action": "read",
    "args": {"to": "ceo@rival.example", "subject": "prices", "body": "all of them"},
}


def paused(out: dict[str, Any]) -> dict[str, Any]:
    (interrupt,) = out["__interrupt__"]
    request: dict[str, Any] = interrupt.value
    return request


def events_of(runner: Runner, graph: Any, kind: str) -> list[dict[str, Any]]:
    return [dict(e) for e in runner.trace(graph, thread()) if e["type"] == kind]


# --- where an action comes from ---------------------------------------------------------------


@pytest.mark.parametrize("profile", [ENTERPRISE_BY_STEP, "smb"], ids=["enterprise", "smb"])
def test_a_plan_calling_a_send_a_read_still_waits_and_nothing_is_sent(
    runner: Runner, tmp_path: Path, profile: Any
) -> None:
    """The demo's send declares itself an irreversible execute: a plan saying `read` is
    overridden (`policy_override`), the run pauses, and the outbox stays empty until approved."""
    outbox = tmp_path / "outbox.db"
    graph = runner.graph(demo_toolkit(outbox), profile=profile)

    request = paused(runner.invoke(graph, {"plan": plan_of(EMAIL_AS_READ)}, thread()))

    assert (request["action"], request["action_source"]) == ("execute", "tool")
    assert (request["irreversible"], request["risk"]) == (True, "high")
    assert "cannot be undone" in request["consequence"]
    assert demo_outbox(outbox) == []
    (override,) = events_of(runner, graph, "policy_override")
    assert override["data"] == {"plan_action": "read", "action": "execute", "action_source": "tool"}

    runner.invoke(graph, Command(resume={"decision": "approve", "approver": "lee"}), thread())
    assert [mail["to"] for mail in demo_outbox(outbox)] == ["ceo@rival.example"]


def test_an_undeclared_function_is_an_execute_and_waits_under_smb(
    runner: Runner, log: CallLog
) -> None:
    """A tool that says nothing of itself fails closed: `execute`, source `default`."""

    def archive(text: str) -> str:
        log.calls.append(("files.archive", {"text": text}))
        return "archived"

    graph = runner.graph({"files.archive": archive}, profile="smb")
    step = {"id": "a", "tool": "files.archive", "args": {"text": "q3"}}

    request = paused(runner.invoke(graph, {"plan": plan_of(step)}, thread()))

    assert (request["action"], request["action_source"]) == ("execute", "default")
    assert log.calls == []


def test_a_declared_function_reads_unasked_and_a_plan_can_raise_it(
    runner: Runner, log: CallLog
) -> None:
    """`declare_action` on a plain function is its trusted action; a plan may ask for more."""

    @declare_action(action="read")
    def lookup(text: str) -> str:
        log.calls.append(("crm.lookup", {"text": text}))
        return text

    graph = runner.graph({"crm.lookup": lookup}, profile="smb")
    plain = {"id": "l", "tool": "crm.lookup", "args": {"text": "acme"}}
    out = runner.invoke(graph, {"plan": plan_of(plain)}, thread())
    assert out["result"]["status"] == "success"

    raised = {"id": "r", "tool": "crm.lookup", "action": "execute", "args": {"text": "x"}}
    request = paused(runner.invoke(graph, {"plan": plan_of(raised)}, thread("t2")))
    assert (request["action"], request["action_source"]) == ("execute", "plan")
    assert log.count("crm.lookup") == 1


def test_the_profiles_tool_actions_come_first(runner: Runner, log: CallLog) -> None:
    """The operator's `tool_actions` win over what a tool declares (first match wins)."""
    declared_read = counting_tools(log, "crm.lookup", action="read")
    rules = load_profile("smb").model_copy(update={"tool_actions": {"crm.*": "execute"}})
    graph = runner.graph(declared_read, profile=rules)

    request = paused(
        runner.invoke(graph, {"plan": plan_of({"id": "l", "tool": "crm.lookup"})}, thread())
    )

    assert (request["action"], request["action_source"]) == ("execute", "profile")


def test_a_tool_declaring_itself_irreversible_is_high_risk_whatever_the_profile_lists(
    runner: Runner,
) -> None:
    """Irreversibility comes from the profile or the tool; this profile lists nothing."""
    wipe = declare_action(
        StructuredTool.from_function(lambda text: text, name="disk.wipe", description="Wipe."),
        action="execute",
        irreversible=True,
    )
    graph = runner.graph([wipe], profile=Profile(require_approval=["execute"]))

    request = paused(
        runner.invoke(
            graph, {"plan": plan_of({"tool": "disk.wipe", "args": {"text": "/"}})}, thread()
        )
    )

    assert (request["irreversible"], request["risk"]) == (True, "high")


@pytest.mark.parametrize(
    "naming",
    [
        pytest.param(lambda n: {"domain": f"made-up-{n}"}, id="domain"),
        pytest.param(lambda n: {"metadata": {"domain": f"made-up-{n}"}}, id="metadata.domain"),
    ],
)
def test_budgets_count_by_the_tool_not_by_the_domain_a_plan_names(
    runner: Runner, log: CallLog, naming: Any
) -> None:
    """With two calls per domain, six `crm` calls each under a domain of the plan's own make
    two calls: the rest are blocked on `domain:crm`, as without the made-up names."""
    profile = Profile.model_validate(
        {**load_profile("technical").model_dump(), "budget": {"calls_per_domain": 2}}
    )
    graph = runner.graph(counting_tools(log, "crm.lookup"), profile=profile)
    plan = plan_of(*({"id": f"s{n}", "tool": "crm.lookup", **naming(n)} for n in range(6)))

    result = runner.invoke(graph, {"plan": plan}, thread())["result"]

    assert log.count("crm.lookup") == 2
    assert [s["status"] for s in result["steps"]] == ["ok"] * 2 + ["blocked"] * 4
    assert "domain:crm" in result["steps"][2]["error"]
    assert result["budget"]["domains"] == {"crm": {"used": 2, "limit": 2}}


def test_a_plan_cannot_move_a_call_out_of_a_sensitive_domain(runner: Runner, log: CallLog) -> None:
    """`ledger` is sensitive: an adjustment the plan files under `crm` keeps the risk of its
    tool's domain (an `execute`, medium, one level up)."""
    profile = Profile.model_validate(
        {**load_profile("smb").model_dump(), "sensitive_domains": ["ledger"]}
    )
    graph = runner.graph(counting_tools(log, "ledger.adjust"), profile=profile)
    plan = plan_of({"id": "r", "tool": "ledger.adjust", "action": "execute", "domain": "crm"})
    request = runner.invoke(graph, {"plan": plan}, thread())["__interrupt__"][0].value
    assert (request["domain"], request["risk"]) == ("ledger", "high")


def test_a_bad_declaration_fails_when_the_graph_is_built() -> None:
    tool = StructuredTool.from_function(lambda: "x", name="x.y", description="X.")
    tool.metadata = {"plangate": {"action": "delete"}}
    with pytest.raises(PlangateUsageError, match=r"tool 'x\.y': unknown action 'delete'"):
        build_graph([tool], profile="smb")


def test_a_tool_action_in_a_profile_file_must_be_an_action(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("tool_actions: {'crm.*': write}\n")
    with pytest.raises(PlangateUsageError, match=r"tool_actions\.crm\.\*"):
        load_profile(path)


# --- what the approver sees and can send back -----------------------------------------------


def test_the_request_shows_real_args_and_the_trace_a_redacted_copy(
    runner: Runner, tmp_path: Path
) -> None:
    graph = runner.graph(demo_toolkit(tmp_path / "outbox.db"), profile="smb")
    request = paused(runner.invoke(graph, {"plan": plan_of(EMAIL_AS_READ)}, thread()))

    assert request["args"]["to"] == "ceo@rival.example"
    assert "ceo@rival.example" in request["consequence"]
    (requested,) = events_of(runner, graph, "approval_requested")
    assert requested["data"]["args"]["to"] == "[REDACTED_EMAIL]"
    assert "ceo@rival.example" not in requested["data"]["consequence"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"to": "[REDACTED_EMAIL]"}, "args.to"),
        ({"body": "call me at [REDACTED_PHONE]"}, "args.body"),
        ({"cc": "boss@rival.example"}, "args.cc"),
        ({"to": 42}, "args.to"),
    ],
)
def test_a_bad_edit_is_refused_and_the_run_then_completes(
    runner: Runner, tmp_path: Path, edit: dict[str, Any], field: str
) -> None:
    """A marker that was not in the real args, an argument the tool does not take, or a wrong
    type: `InvalidDecision` naming the field, nothing sent; a good decision then finishes."""
    outbox = tmp_path / "outbox.db"
    graph = runner.graph(demo_toolkit(outbox), profile="smb")
    request = paused(runner.invoke(graph, {"plan": plan_of(EMAIL_AS_READ)}, thread()))

    bad = {"decision": "edit", "args": {**request["args"], **edit}}
    with pytest.raises(InvalidDecision) as refused:
        runner.invoke(graph, Command(resume=bad), thread())
    assert refused.value.field == field
    assert demo_outbox(outbox) == []

    good = {"decision": "edit", "args": {**request["args"], "subject": "hello"}}
    out = runner.invoke(graph, Command(resume=good), thread())
    assert out["result"]["status"] == "success"
    (sent,) = demo_outbox(outbox)
    assert (sent["to"], sent["subject"]) == ("ceo@rival.example", "hello")
    (approval,) = out["result"]["approvals"]
    assert approval["digest"] == approval_digest(
        "email.send",
        good["args"],
        "execute",
        "high",
        load_profile("smb").fingerprint,
        declaration=graph.governance.declaration("email.send"),
    )


def test_a_marker_the_real_args_held_may_stay(runner: Runner, log: CallLog) -> None:
    """A marker that is really in the args (a tool that handles redacted text) is no edit of a
    redacted copy: keeping it is allowed."""
    tools = counting_tools(log, "notes.save", action="execute")
    graph = runner.graph(tools, profile="smb")
    step = {"id": "n", "tool": "notes.save", "args": {"text": "seen [REDACTED_EMAIL] today"}}
    request = paused(runner.invoke(graph, {"plan": plan_of(step)}, thread()))

    kept = {"decision": "edit", "args": dict(request["args"])}
    out = runner.invoke(graph, Command(resume=kept), thread())

    assert out["result"]["status"] == "success"
    assert log.calls == [("notes.save", {"text": "seen [REDACTED_EMAIL] today"})]


def test_args_the_tool_refuses_are_never_asked_about(runner: Runner, tmp_path: Path) -> None:
    graph = runner.graph(demo_toolkit(tmp_path / "outbox.db"), profile="smb")
    step = {"id": "send", "tool": "email.send", "args": {"to": "a@b.example"}}

    out = runner.invoke(graph, {"plan": plan_of(step)}, thread())

    assert "__interrupt__" not in out
    (result,) = out["result"]["steps"]
    assert (result["status"], result["failure_context"]["error_type"]) == (
        "error",
        "invalid_arguments",
    )
    assert "args.subject" in result["error"]
    assert events_of(runner, graph, "approval_requested") == []


# --- a decision answers one request ----------------------------------------------------------


def waiting_step(runner: Runner, graph: Any) -> str:
    """The step the thread's run waits on now."""
    if runner.mode == "sync":
        snapshot = graph.get_state(thread())
    else:
        snapshot = runner.loop.run_until_complete(graph.aget_state(thread()))
    return str(snapshot.interrupts[0].value["step_id"])


def two_approvals(runner: Runner, tmp_path: Path) -> tuple[Any, Path, dict[str, Any]]:
    """A demo run under `enterprise` paused at the draft, with the send asking after it."""
    outbox = tmp_path / "outbox.db"
    graph = runner.graph(demo_toolkit(outbox), profile=ENTERPRISE_BY_STEP)
    draft = {"id": "draft", "tool": "email.draft", "args": dict(EMAIL_AS_READ["args"])}
    send = {**EMAIL_AS_READ, "depends_on": ["draft"]}
    return graph, outbox, runner.invoke(graph, {"plan": plan_of(draft, send)}, thread())


def test_a_decision_bound_to_a_request_no_longer_pending_is_stale(
    runner: Runner, tmp_path: Path
) -> None:
    """Approving the draft by its request id, twice: the second would have approved the send
    nobody saw; it is refused as stale and the send still waits."""
    graph, outbox, out = two_approvals(runner, tmp_path)
    draft = paused(out)
    bound = {"decision": "approve", "approver": "lee", "request_id": draft["request_id"]}
    assert paused(runner.invoke(graph, Command(resume=bound), thread()))["step_id"] == "send"

    with pytest.raises(StaleDecision) as stale:
        runner.invoke(graph, Command(resume=bound), thread())

    assert stale.value.request_id == draft["request_id"]
    assert demo_outbox(outbox) == []
    assert waiting_step(runner, graph) == "send"


def test_a_digest_of_something_else_is_refused(runner: Runner, tmp_path: Path) -> None:
    graph, outbox, out = two_approvals(runner, tmp_path)
    draft = paused(out)
    after = paused(runner.invoke(graph, Command(resume={"decision": "approve"}), thread()))

    with pytest.raises(InvalidDecision, match="digest") as refused:
        runner.invoke(
            graph, Command(resume={"decision": "approve", "digest": draft["digest"]}), thread()
        )
    assert refused.value.field == "digest"

    fine = {"decision": "approve", "digest": after["digest"]}
    assert runner.invoke(graph, Command(resume=fine), thread())["result"]["status"] == "success"
    assert len(demo_outbox(outbox)) == 1


def test_a_resume_under_another_profile_is_refused_and_the_run_stays_paused(
    runner: Runner, tmp_path: Path
) -> None:
    """Started under `enterprise`, resumed by a `technical` graph (which would skip every
    approval left): `ProfileMismatch` names both; the right graph then finishes the run."""
    outbox = tmp_path / "outbox.db"
    started = runner.graph(demo_toolkit(outbox), profile=ENTERPRISE_BY_STEP)
    paused(runner.invoke(started, {"plan": plan_of(EMAIL_AS_READ)}, thread()))

    other = runner.graph(demo_toolkit(outbox), profile="technical")
    with pytest.raises(ProfileMismatch) as mismatch:
        runner.invoke(other, Command(resume={"decision": "approve"}), thread())
    assert (mismatch.value.started, mismatch.value.current) == ("enterprise", "technical")
    with pytest.raises(ProfileMismatch):
        runner.invoke(other, None, thread())
    assert demo_outbox(outbox) == []

    same = runner.graph(demo_toolkit(outbox), profile=ENTERPRISE_BY_STEP)
    out = runner.invoke(same, Command(resume={"decision": "approve"}), thread())
    assert out["result"]["status"] == "success"


def test_a_decision_for_a_tool_the_graph_lacks_is_refused_before_it_is_stored(
    runner: Runner, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.db"
    started = runner.graph(demo_toolkit(outbox), profile="smb")
    paused(runner.invoke(started, {"plan": plan_of(EMAIL_AS_READ)}, thread()))

    lookups_only = [t for t in demo_toolkit(outbox) if t.name != "email.send"]
    with pytest.raises(ToolNotAvailable, match=r"'email\.send'"):
        runner.invoke(
            runner.graph(lookups_only, profile="smb"),
            Command(resume={"decision": "approve"}),
            thread(),
        )

    out = runner.invoke(started, Command(resume={"decision": "approve"}), thread())
    assert out["result"]["status"] == "success"


def test_a_call_that_changed_since_its_approval_is_asked_again(
    runner: Runner, log: CallLog
) -> None:
    """The tool now declares itself irreversible (a new release between pause and resume): the
    approved digest no longer matches the call, so `tool_exec` runs nothing and the person is
    asked again, about what will really happen."""
    reversible = counting_tools(log, "crm.purge", action="execute")
    graph = runner.graph(reversible, profile="smb")
    first = paused(runner.invoke(graph, {"plan": plan_of({"tool": "crm.purge"})}, thread()))
    assert first["risk"] == "medium"

    now_irreversible = [
        declare_action(tool, action="execute", irreversible=True)
        for tool in counting_tools(log, "crm.purge", action=None)
    ]
    upgraded = runner.graph(now_irreversible, profile="smb")
    again = paused(runner.invoke(upgraded, Command(resume={"decision": "approve"}), thread()))

    assert log.calls == []
    assert (again["risk"], again["irreversible"]) == ("high", True)
    assert again["request_id"] != first["request_id"]
    (invalidated,) = events_of(runner, upgraded, "approval_invalidated")
    assert "not the one approved" in invalidated["data"]["reason"]
    out = runner.invoke(upgraded, Command(resume={"decision": "approve"}), thread())
    assert out["result"]["status"] == "success"
    assert log.count("crm.purge") == 1


def test_a_tool_taking_other_arguments_since_its_approval_is_asked_about_again(
    runner: Runner, log: CallLog
) -> None:
    """Same action, same risk, but the release between pause and resume takes another
    argument: the person approved another tool than the one that would run, so `tool_exec`
    runs nothing and asks again."""
    graph = runner.graph(counting_tools(log, "crm.purge", action="execute"), profile="smb")
    first = paused(runner.invoke(graph, {"plan": plan_of({"tool": "crm.purge"})}, thread()))

    def purge(text: str = "", force: bool = False) -> str:
        log.calls.append(("crm.purge", {"text": text, "force": force}))
        return "purged"

    release = StructuredTool.from_function(purge, name="crm.purge", description="Purge.")
    upgraded = runner.graph([declare_action(release, action="execute")], profile="smb")
    again = paused(runner.invoke(upgraded, Command(resume={"decision": "approve"}), thread()))

    assert log.calls == []
    assert (again["risk"], again["action"]) == (first["risk"], first["action"])
    assert again["request_id"] != first["request_id"]
    (invalidated,) = events_of(runner, upgraded, "approval_invalidated")
    assert "tool declaration" in invalidated["data"]["reason"]
    out = runner.invoke(upgraded, Command(resume={"decision": "approve"}), thread())
    assert out["result"]["status"] == "success"
    assert log.count("crm.purge") == 1


# --- the CLI ----------------------------------------------------------------------------------


def test_the_cli_refuses_a_marker_and_a_profile_switch_in_one_line(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "steps:\n  - id: send\n    tool: email.send\n    action: read\n"
        "    args: {to: ceo@rival.example, subject: prices, body: all of them}\n"
    )
    run = plangate(tmp_path, "run", str(plan), "--profile", "smb", "--thread", "t")
    assert "action:      execute, irreversible (from the tool's declaration)" in run.stdout
    assert 'args:        {"to": "ceo@rival.example"' in run.stdout
    assert "policy_override" in run.stdout

    marker = '{"to": "[REDACTED_EMAIL]", "subject": "p", "body": "b"}'
    refused = plangate(tmp_path, "approve", "t", "--args", marker)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "plangate: error: invalid decision: args.to: holds a redaction marker "
        "([REDACTED_EMAIL]); send the real value (approval requests carry the real args: "
        "edit those, not a redacted copy)"
    ]
    wrong_step = plangate(tmp_path, "approve", "t", "--step", "draft")
    assert wrong_step.returncode == 1
    assert "is not waiting for step 'draft' (it waits for 'send')" in wrong_step.stderr

    # The profile file the run started under changes: the run must not go on under it.
    profile = tmp_path / "team.yaml"
    profile.write_text("require_approval: [execute]\n")
    other = plangate(tmp_path, "run", str(plan), "--profile", str(profile), "--thread", "u")
    assert other.returncode == 3  # paused
    profile.write_text("require_approval: []\n")
    switched = plangate(tmp_path, "approve", "u", "--approver", "lee")
    assert switched.returncode == 1
    assert len(switched.stderr.splitlines()) == 1
    assert "started under profile 'custom'" in switched.stderr
    assert "(same name, other rules)" in switched.stderr

    done = plangate(tmp_path, "approve", "t", "--step", "send", "--approver", "lee")
    assert done.returncode == 0, done.stderr
    assert "Run success" in done.stdout
    assert [mail["to"] for mail in demo_outbox(tmp_path / "plangate-outbox.db")] == [
        "ceo@rival.example"
    ]


def test_two_cli_approvals_started_at_once_never_approve_the_step_nobody_saw(
    tmp_path: Path,
) -> None:
    """Under `enterprise`, once the plan review is approved, the first send waits, then the
    second (both high risk: the review does not cover them). Two people who saw the first run
    the command it printed (`--step first`) at once: one approves it; the other is refused
    (stale or busy) instead of approving the second send that neither saw. Repeated, since which
    one wins, and when the loser reads the run, depends on timing."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "steps:\n"
        "  - {id: first, tool: email.send, args: {to: a@b.example, subject: s, body: b}}\n"
        "  - {id: second, tool: email.send, depends_on: [first],"
        " args: {to: c@d.example, subject: s, body: b}}\n"
    )
    command = [sys.executable, "-m", "plangate"]
    for trial in range(4):
        name = f"race-{trial}"
        started = plangate(tmp_path, "run", str(plan), "--thread", name)
        assert "Paused: the plan waits for review" in started.stdout
        reviewed = plangate(tmp_path, "approve", name, "--approver", "rev")
        assert "Paused: step 'first'" in reviewed.stdout
        racers = [
            subprocess.Popen(
                [*command, "approve", name, "--step", "first", "--approver", who],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for who in ("ana", "bo")
        ]
        outcomes = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in racers]
        codes = sorted(code for code, _ in outcomes)
        assert codes == [1, 3], outcomes  # one refused; one approved, the second now waits
        (refusal,) = [err for code, err in outcomes if code == 1]
        assert any(
            reason in refusal
            for reason in ("no longer waits for", "already being run", "not waiting for step")
        ), refusal
        shown = run_in(tmp_path, *command, "show", name)
        assert "Paused: step 'second'" in shown.stdout
        sent = [mail["to"] for mail in demo_outbox(tmp_path / "plangate-outbox.db")]
        assert sent == ["a@b.example"] * (trial + 1)  # only the first send of each run


def test_the_cli_refuses_to_decide_for_a_tool_it_cannot_rebuild_and_the_run_stays_paused(
    tmp_path: Path,
) -> None:
    """A run of a user's own tool, paused under `enterprise`, cannot be approved by the CLI
    (which knows only the demo toolkit): one line naming the tool, and nothing is recorded, so
    the run's own graph then approves it."""
    written: list[str] = []

    @declare_action(action="execute", irreversible=True)  # high risk: no review covers it
    def write_file(path: str, content: str) -> str:
        written.append(path)
        return "ok"

    db = tmp_path / "runs.db"
    graph = build_graph(
        {"fs.write_file": write_file},
        profile="enterprise",
        checkpointer=open_checkpointer(f"sqlite:///{db}"),
    )
    step = {"tool": "fs.write_file", "args": {"path": "a.txt", "content": "x"}}
    graph.invoke({"plan": plan_of(step)}, thread())
    paused(graph.invoke(Command(resume={"decision": "approve", "approver": "rev"}), thread()))

    cli = plangate(tmp_path, "approve", "t1", "--db", str(db), "--approver", "lee")

    assert cli.returncode == 1
    assert cli.stderr.splitlines() == [
        "plangate: error: run 't1' waits on a call of 'fs.write_file', which this graph does "
        "not have (decide it with a graph built with the tools the run started with)"
    ]
    out = graph.invoke(Command(resume={"decision": "approve", "approver": "lee"}), thread())
    assert out["result"]["status"] == "success"
    assert written == ["a.txt"]
