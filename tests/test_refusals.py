"""Small holes in the gate, closed: text UTF-8 cannot hold, a run without a thread, a fixture
file that is not one, a request body too large to read, and edits with keys the tool does not
take. Each is refused in one line, through the doors a user meets (Python, the CLI, the inbox,
LangChain's HITL form), and a paused run stays resumable after it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import (
    BILLING_TOKEN,
    CallLog,
    Runner,
    billing_service,
    free_port,
    plan_of,
    plangate,
    serving,
    thread,
    write_team_project,
)
from langchain_core.tools import StructuredTool
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict
from test_hardening import assert_still_paused_then_approves, mail_tools, paused, send_step

from plangate import (
    InvalidDecision,
    MissingThreadId,
    PlanValidationError,
    Project,
    ProjectError,
    declare_action,
    demo_outbox,
    open_checkpointer,
)
from plangate.cli import ExitCode
from plangate.project import template
from plangate.server import create_app

SALES = Path(__file__).resolve().parents[1] / "examples" / "demo" / "sales_followup.yaml"
TOKEN = "test-token-refusals"
LONE = "\udfff"  # the second half of a surrogate pair, alone: JSON spells it "\udfff"


def one_line(text: str) -> str:
    assert "\n" not in text
    assert "Traceback" not in text
    return text


# --- lone surrogates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "path"),
    [
        pytest.param(LONE, "args.meta", id="value"),
        pytest.param({"note": ["ok", f"é{LONE}"]}, "args.meta.note.1", id="nested"),
        pytest.param({f"k{LONE}": 1}, "args.meta.k?", id="key"),
    ],
)
def test_a_plan_with_a_lone_surrogate_in_args_is_refused_naming_the_path(
    runner: Runner, log: CallLog, meta: Any, path: str
) -> None:
    """Such a plan failed as its first checkpoint was written (`PydanticSerializationError`
    from `plan_start`); it is refused before anything runs, and the thread takes a good plan."""
    graph = runner.graph(mail_tools(log), profile="technical")

    with pytest.raises(PlanValidationError) as caught:
        runner.invoke(graph, {"plan": plan_of(send_step(meta))}, thread())

    message = one_line(str(caught.value))
    assert f"step 'send', field '{path}'" in message
    assert "holds a lone surrogate (\\udfff)" in message
    assert caught.value.step_id == "send"
    out = runner.invoke(graph, {"plan": plan_of(send_step("fine"))}, thread())
    assert out["result"]["status"] == "success"


def test_a_lone_surrogate_in_a_plans_text_fields_is_refused(runner: Runner, log: CallLog) -> None:
    """Goal, ids and descriptions are text too."""
    graph = runner.graph(mail_tools(log), profile="technical")
    for plan, where in [
        (plan_of(send_step(), goal=f"g{LONE}"), "field 'goal'"),
        (plan_of({**send_step(), "description": LONE}), "field 'description'"),
        (plan_of({**send_step(), "id": f"s{LONE}"}), "step 'step-1', field 'id'"),
    ]:
        with pytest.raises(PlanValidationError, match=where) as caught:
            runner.invoke(graph, {"plan": plan}, thread())
        one_line(str(caught.value))
    assert log.calls == []


@pytest.mark.parametrize(
    ("decision", "field"),
    [
        pytest.param(
            {"decision": "edit", "args": {"to": f"ana{LONE}@example.com"}}, "args.to", id="edit"
        ),
        pytest.param({"decision": "reject", "reason": LONE}, "reason", id="reason"),
        pytest.param({"decision": "approve", "approver": LONE}, "approver", id="approver"),
        pytest.param(
            {
                "decisions": [
                    {
                        "type": "edit",
                        "edited_action": {
                            "name": "mail.send",
                            "args": {"to": "ana@example.com", "meta": LONE},
                        },
                    }
                ]
            },
            "args.meta",
            id="hitl-edit",
        ),
        pytest.param(
            {"decisions": [{"type": "reject", "message": LONE}]}, "reason", id="hitl-reject"
        ),
    ],
)
def test_a_decision_with_a_lone_surrogate_is_refused_and_the_run_stays_paused(
    runner: Runner, log: CallLog, decision: dict[str, Any], field: str
) -> None:
    """Edits, reasons and approvers, in plangate's form and LangChain's HITL form."""
    graph, request = paused(runner, log)

    with pytest.raises(InvalidDecision) as caught:
        runner.invoke(graph, Command(resume=decision), thread())

    assert caught.value.field == field
    one_line(str(caught.value))
    assert_still_paused_then_approves(runner, graph, request, log)


def test_the_cli_refuses_a_plan_with_a_lone_surrogate_in_one_line(tmp_path: Path) -> None:
    """`plangate run` printed a `PydanticSerializationError` traceback."""
    plan = {
        "goal": "look up",
        "steps": [{"id": "a", "tool": "crm.lookup_account", "args": {"account": LONE}}],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))  # ASCII JSON: "\udfff" as an escape

    ran = plangate(tmp_path, "run", "plan.json", "--offline", "--db", "runs.db")

    assert ran.returncode == 1, ran.stderr
    assert one_line(ran.stderr.strip()) == (
        "plangate: error: plan file 'plan.json': step 'a', field 'args.account': a string "
        "holds a lone surrogate (\\udfff) at character 0, which UTF-8 cannot encode: send "
        "valid Unicode text"
    )


def test_the_cli_refuses_a_decision_with_a_lone_surrogate_and_the_run_still_approves(
    tmp_path: Path,
) -> None:
    """In `--args` JSON, or from a command line that is not UTF-8 (`--reason $'\\xff'`, which
    Python reads as the surrogate `\\udcff`): one line, exit 1, and the run waits as before."""
    (tmp_path / "plan.yaml").write_text(SALES.read_text())
    ran = plangate(tmp_path, "run", "plan.yaml", "--profile", "smb", "--offline", "--thread", "d1")
    assert ran.returncode == ExitCode.PAUSED, ran.stdout + ran.stderr
    edit = json.dumps({"to": LONE, "subject": "s", "body": "b"})  # ASCII: "\udfff" escaped
    for command, says in [
        (["approve", "d1", "--approver", "lee", "--args", edit], "args.to: a string holds a"),
        (["reject", "d1", "--approver", "lee", "--reason", "bad\udcff"], "reason: Input should"),
    ]:
        refused = plangate(tmp_path, *command)
        assert refused.returncode == ExitCode.USER_ERROR, refused.stdout + refused.stderr
        assert one_line(refused.stderr.strip()).startswith(
            f"plangate: error: invalid decision: {says}"
        )
    approved = plangate(tmp_path, "approve", "d1", "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stdout + approved.stderr


# --- a run without a thread ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [None, {"configurable": {}}, {"configurable": {"thread_id": ""}}],
    ids=["no-config", "no-thread", "empty-thread"],
)
def test_a_run_without_a_thread_id_says_what_to_pass(
    runner: Runner, log: CallLog, config: dict[str, Any] | None
) -> None:
    """LangGraph's own error was a bare `ValueError` about `checkpoint_ns` and `checkpoint_id`;
    plangate's says to pass a thread_id, and is still a `ValueError`."""
    graph = runner.graph(mail_tools(log), profile="technical")

    with pytest.raises(MissingThreadId) as caught:
        runner.invoke(graph, {"plan": plan_of(send_step())}, config)  # type: ignore[arg-type]

    assert isinstance(caught.value, ValueError)
    assert "{'configurable': {'thread_id': " in one_line(str(caught.value))
    assert log.calls == []


# --- fixture files -------------------------------------------------------------------------------


def test_a_project_fixture_that_is_not_a_fixture_file_is_named_not_quoted(tmp_path: Path) -> None:
    """`fixtures: [/etc/shadow]` printed the file's first line in its error."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3t-salt$hash-of-the-root-password:19000:0:99999:7:::\n")
    (tmp_path / "plangate.yaml").write_text(f"fixtures: [{secret}]\n")

    listed = plangate(tmp_path, "tools", "--offline")
    with pytest.raises(ProjectError) as caught:
        Project.load(tmp_path).mocks()

    assert listed.returncode == 1
    for message in (listed.stderr.strip(), str(caught.value)):
        one_line(message)
        assert "s3cr3t" not in message
        assert "19000" not in message
        assert f"plangate.yaml: fixtures.0: fixture file '{secret}': expected a mapping" in message
    assert caught.value.key == "fixtures.0"


# --- the inbox -----------------------------------------------------------------------------------


@contextmanager
def served(project: Project, db: Path) -> Iterator[httpx.Client]:
    """The inbox of `project` served on a loopback port; a client with the token."""
    app = create_app(str(db), token=TOKEN, project=project, expire_every=None)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(app) as base, httpx.Client(base_url=base, headers=auth, timeout=30) as api:
        yield api


def demo_project(folder: Path, extra: str = "") -> Project:
    """The demo project (its tools, mocks and outbox in `folder`), under `smb`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plangate.yaml").write_text(template("demo") + "profile: smb\n" + extra)
    return Project.load(folder)


def wait_for(api: httpx.Client, thread_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = api.get(f"/api/runs/{thread_id}").json()
        if run["status"] == status:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


AS_JSON = {"content-type": "application/json"}


def test_the_inbox_refuses_lone_surrogates_in_plans_and_decisions(tmp_path: Path) -> None:
    """A plan with one was taken (201) and failed in the server; now it is a 422 naming the
    field, as is a decision carrying one, and the paused run then approves."""
    project = demo_project(tmp_path / "project")
    with served(project, tmp_path / "runs.db") as api:
        plan = {"goal": "g", "steps": [{"tool": "crm.lookup_account", "args": {"account": LONE}}]}
        body = json.dumps({"plan": plan, "thread": "bad"}).encode()  # the escape, as JSON has it
        refused = api.post("/api/runs", content=body, headers=AS_JSON)
        assert refused.status_code == 422, refused.text
        assert one_line(refused.json()["detail"]).startswith(
            "plan: step 'step-1', field 'args.account': a string holds a lone surrogate"
        )
        assert api.get("/api/runs").json()["runs"] == []

        started = api.post("/api/runs", json={"plan": SALES.read_text(), "thread": "demo"})
        assert started.status_code == 201, started.text
        wait_for(api, "demo", "waiting")
        for decision, field in [
            ({"decision": "edit", "approver": "lee", "args": {"to": LONE}}, "args.to"),
            ({"decision": "reject", "approver": "lee", "reason": LONE}, "reason"),
            ({"decision": "approve", "approver": f"lee{LONE}"}, "approver"),
        ]:
            body = json.dumps(decision).encode()
            answer = api.post("/api/runs/demo/decision", content=body, headers=AS_JSON)
            assert answer.status_code == 422, answer.text
            assert answer.json()["field"] == field
            one_line(answer.json()["detail"])
        assert wait_for(api, "demo", "waiting")
        approved = api.post(
            "/api/runs/demo/decision", json={"decision": "approve", "approver": "lee"}
        )
        assert approved.status_code == 202, approved.text
        wait_for(api, "demo", "success")
    assert len(demo_outbox(project.root / "plangate-outbox.db")) == 1


def test_the_inbox_refuses_a_body_over_the_projects_limit_before_reading_it(
    tmp_path: Path,
) -> None:
    """A 200 MB body took the server to 673 MB before a 422. A body over the project's
    `inbox.max_body_bytes` is refused with 413, whether its length is declared or it comes in
    chunks; a paused run is untouched and a decision within the limit goes through."""
    project = demo_project(tmp_path / "project", "inbox: {max_body_bytes: 4096}\n")
    with served(project, tmp_path / "runs.db") as api:
        started = api.post("/api/runs", json={"plan": SALES.read_text(), "thread": "demo"})
        assert started.status_code == 201, started.text
        wait_for(api, "demo", "waiting")

        big = {"decision": "reject", "approver": "lee", "reason": "x" * 5000}
        declared = api.post("/api/runs/demo/decision", json=big)

        def chunks() -> Iterator[bytes]:
            yield b'{"decision": "reject", "approver": "lee", "reason": "'
            for _ in range(100):  # 100 KB, far over the limit; the server stops reading early
                yield b"x" * 1024
            yield b'"}'

        chunked = api.post("/api/runs/demo/decision", content=chunks(), headers=AS_JSON)
        plan = api.post("/api/runs", json={"plan": SALES.read_text() + "#" * 5000})

        for refused in (declared, chunked, plan):
            assert refused.status_code == 413, refused.text
            assert refused.json() == {
                "detail": "the request body is over the limit of 4,096 bytes",
                "hint": "set inbox.max_body_bytes in the project file to take larger ones",
                "error": "RequestTooLarge",
            }
        assert "chunked" not in declared.request.headers.get("transfer-encoding", "")
        assert chunked.request.headers["transfer-encoding"] == "chunked"
        assert wait_for(api, "demo", "waiting")["steps"]
        approved = api.post(
            "/api/runs/demo/decision", json={"decision": "approve", "approver": "lee"}
        )
        assert approved.status_code == 202, approved.text
        wait_for(api, "demo", "success")


def test_a_project_sets_the_inbox_limit_and_a_bad_one_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "plangate.yaml").write_text("inbox: {max_body_bytes: 10}\n")
    with pytest.raises(ProjectError) as caught:
        Project.load(tmp_path)
    assert caught.value.key == "inbox.max_body_bytes"
    (tmp_path / "plangate.yaml").write_text("inbox: {max_body_bytes: 1048576}\n")
    assert Project.load(tmp_path).spec.inbox.max_body_bytes == 1_048_576
    assert Project.demo(tmp_path / "demo").spec.inbox.max_body_bytes == 16 * 1024 * 1024


# --- edits ---------------------------------------------------------------------------------------


class LooseArgs(BaseModel):
    """A schema that takes extra keys, as many generated ones do."""

    model_config = ConfigDict(extra="allow")

    to: str
    subject: str


LOOSE_JSON_SCHEMA = {
    "type": "object",
    "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
    "required": ["to", "subject"],
}


@pytest.mark.parametrize(
    ("args_schema", "others"),
    [
        pytest.param(LooseArgs, "; args.subject: Field required", id="pydantic-extra-allow"),
        # LangChain stands in for a JSON Schema with a model that checks nothing: only the
        # unknown key is found, from the schema's properties.
        pytest.param(LOOSE_JSON_SCHEMA, "", id="json-schema"),
    ],
)
def test_an_edit_with_a_key_the_tool_does_not_name_is_refused_though_its_schema_allows_extras(
    runner: Runner, log: CallLog, args_schema: Any, others: str
) -> None:
    """The schema would take `bcc` and the tool would never see it: what the person approved
    is not what runs. Refused, in plangate's form and in LangChain's HITL form, naming every
    bad field; the run stays paused and then approves."""

    def send(to: str, subject: str, **extra: Any) -> str:
        log.calls.append(("mail.send", {"to": to, "subject": subject, **extra}))
        return "sent"

    tool = StructuredTool.from_function(
        send, name="mail.send", description="Send mail.", args_schema=args_schema
    )
    graph = runner.graph([declare_action(tool, action="execute")], profile="smb")
    step = {"id": "send", "tool": "mail.send", "args": {"to": "ana@example.com", "subject": "x"}}
    assert "__interrupt__" in runner.invoke(graph, {"plan": plan_of(step)}, thread())
    edited = {"to": "ana@example.com", "bcc": "eve@example.com"}
    says = (
        "invalid edit for tool 'mail.send': args.bcc: mail.send takes no argument 'bcc' (to, "
        f"subject){others} ("
    )
    hitl = {"decisions": [{"type": "edit", "edited_action": {"name": "mail.send", "args": edited}}]}
    for decision in ({"decision": "edit", "args": edited}, hitl):
        with pytest.raises(InvalidDecision) as caught:
            runner.invoke(graph, Command(resume=decision), thread())
        assert str(caught.value).startswith(says), str(caught.value)
        assert caught.value.field == "args.bcc"
    assert log.calls == []
    out = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())
    assert out["result"]["status"] == "success"
    assert log.calls == [("mail.send", {"to": "ana@example.com", "subject": "x"})]


def test_the_inbox_refuses_an_edit_naming_every_bad_field(tmp_path: Path) -> None:
    project = demo_project(tmp_path / "project")
    with served(project, tmp_path / "runs.db") as api:
        started = api.post("/api/runs", json={"plan": SALES.read_text(), "thread": "demo"})
        assert started.status_code == 201, started.text
        wait_for(api, "demo", "waiting")
        edit = {"decision": "edit", "approver": "lee", "args": {"to": "kim@example.com", "cc": 1}}
        refused = api.post("/api/runs/demo/decision", json=edit)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "args.cc"
        assert refused.json()["detail"] == (
            "invalid edit for tool 'email.send': args.cc: email.send takes no argument 'cc' "
            "(to, subject, body); args.subject: Field required; args.body: Field required"
        )
        wait_for(api, "demo", "waiting")


# --- deciding when a source the run needs is down ------------------------------------------------

OPS_TOOLS = '''
from pathlib import Path

from plangate import declare_action

DELETED = Path(__file__).parent / "deleted.txt"


@declare_action(action="execute", irreversible=True)
def delete(invoice_id: str) -> dict:
    """Delete an invoice: it cannot be undone (here, it appends to deleted.txt)."""
    with DELETED.open("a") as log:
        log.write(invoice_id + "\\n")
    return {"deleted": invoice_id}


toolkit = {"inv.delete": delete}
'''

DELETE_THEN_READ = {
    "goal": "delete an invoice, then read another",
    "steps": [
        {"id": "delete", "tool": "inv.delete", "args": {"invoice_id": "inv-1"}},
        {
            "id": "invoice",
            "tool": "billing.get_invoice",
            "args": {"invoice_id": "inv-2"},
            "depends_on": ["delete"],
        },
    ],
}


def paused_before_a_delete(tmp_path: Path) -> tuple[Path, int]:
    """A project whose run `t1` waits for approval of `inv.delete`, with the billing service
    its next step reads from down again; the project's folder and the service's port."""
    project = tmp_path / "team"
    port = free_port()
    with billing_service(port) as service:
        write_team_project(project, service.url, tmp_path / "mcp.jsonl", toolkit="opstools:toolkit")
        (project / "opstools.py").write_text(OPS_TOOLS)
        (project / "plan.json").write_text(json.dumps(DELETE_THEN_READ))
        env = {"BILLING_TOKEN": BILLING_TOKEN}
        ran = plangate(project, "run", "plan.json", "--thread", "t1", env=env)
        assert ran.returncode == ExitCode.PAUSED, ran.stdout + ran.stderr
        assert "Paused: step 'delete' (inv.delete) needs approval." in ran.stdout
    return project, port


def test_approve_refuses_while_a_source_of_a_step_left_is_down_and_does_nothing(
    tmp_path: Path,
) -> None:
    """`approve` ran the irreversible delete, then failed on the next step's OpenAPI document
    and exited 1, which means "nothing was done". It reaches every source the steps left need
    first: while one is down, one line, exit 1, nothing run, the run still paused; `reject`
    alike. With the service back, the same approval runs both steps."""
    project, port = paused_before_a_delete(tmp_path)
    env = {"BILLING_TOKEN": BILLING_TOKEN}
    deleted = project / "deleted.txt"
    for command in (["approve", "t1", "--approver", "lee"], ["reject", "t1", "--reason", "no"]):
        refused = plangate(project, *command, env=env)
        assert refused.returncode == ExitCode.USER_ERROR, refused.stdout + refused.stderr
        line = one_line(refused.stderr.strip())
        assert line.startswith("plangate: error: "), line
        assert "cannot fetch the OpenAPI document" in line
        assert "ing step 'delete'" not in refused.stdout  # no "Approving ..." of what is not done
        assert not deleted.exists()
    shown = plangate(project, "show", "t1", env=env)
    assert shown.stdout.startswith("No step done yet (of 2 steps)."), shown.stdout
    assert "Paused: step 'delete' (inv.delete) needs approval." in shown.stdout

    with billing_service(port):
        approved = plangate(project, "approve", "t1", "--approver", "lee", env=env)
    assert approved.returncode == ExitCode.SUCCESS, approved.stdout + approved.stderr
    assert deleted.read_text() == "inv-1\n"


def test_the_inbox_refuses_a_decision_while_a_source_of_a_step_left_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox answered 202 and ran the delete, and the run then stopped at the next step.
    Now: 422 with the one line, nothing run, the run still waiting; with the service back,
    the same decision goes through."""
    project, port = paused_before_a_delete(tmp_path)
    monkeypatch.setenv("BILLING_TOKEN", BILLING_TOKEN)
    loaded = Project.load(project)
    approve = {"decision": "approve", "approver": "lee"}
    with served(loaded, project / "runs" / "plangate.db") as api:
        refused = api.post("/api/runs/t1/decision", json=approve)
        assert refused.status_code == 422, refused.text
        assert "cannot fetch the OpenAPI document" in one_line(refused.json()["detail"])
        assert not (project / "deleted.txt").exists()
        assert wait_for(api, "t1", "waiting")
        with billing_service(port):
            approved = api.post("/api/runs/t1/decision", json=approve)
            assert approved.status_code == 202, approved.text
            wait_for(api, "t1", "success")
    assert (project / "deleted.txt").read_text() == "inv-1\n"


def test_a_decision_in_python_reaches_the_sources_of_the_steps_left_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph itself refuses a decision while a source the steps left need is down (a
    `ProjectError` naming the source, one line), before the decision is stored: nothing runs,
    and the same decision goes through once the source is back."""
    project, port = paused_before_a_delete(tmp_path)
    monkeypatch.setenv("BILLING_TOKEN", BILLING_TOKEN)
    db = project / "runs" / "plangate.db"
    graph = Project.load(project).graph(checkpointer=open_checkpointer(f"sqlite:///{db}"))
    approve = Command(resume={"decision": "approve", "approver": "lee"})

    with pytest.raises(ProjectError, match=r"tools\.2: cannot fetch the OpenAPI") as caught:
        graph.invoke(approve, thread("t1"))

    one_line(str(caught.value))
    assert not (project / "deleted.txt").exists()
    assert [i.value["step_id"] for i in graph.get_state(thread("t1")).interrupts] == ["delete"]
    with billing_service(port):
        assert graph.invoke(approve, thread("t1"))["result"]["status"] == "success"
    assert (project / "deleted.txt").read_text() == "inv-1\n"
