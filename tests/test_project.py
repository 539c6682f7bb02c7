"""A project of a team's own (`plangate.yaml`): a Python toolkit, a real stdio MCP server
(`peers/mcp_server.py`) and a real OpenAPI service on loopback (`peers/http_service.py`), used by
every CLI command as a user would type them, from the project's folder and from anywhere else
with `--project`. Remote sources are reached only when a run needs their tools; what `${VAR}`
gives never reaches the database; a bad project file is one line naming the file and the key."""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _support import (
    BILLING_TOKEN,
    TEAM_TOOLS,
    Service,
    billing_service,
    free_port,
    plangate,
    run_in,
    write_team_project,
)

from plangate import Project, ProjectError
from plangate.cli import ExitCode

ROOT = Path(__file__).resolve().parents[1]


PLAN = {
    "goal": "Refund invoice inv-1",
    "steps": [
        {"id": "note", "tool": "team.note", "args": {"text": "starting"}},
        {"id": "look", "tool": "ledger.lookup", "args": {"invoice_id": "inv-1"}},
        {"id": "invoice", "tool": "billing.get_invoice", "args": {"invoice_id": "inv-1"}},
        {
            "id": "refund",
            "tool": "billing.create_refund",
            "depends_on": ["invoice"],
            "args": {"invoice_id": "inv-1", "amount": 20.0, "reason": "duplicate"},
        },
    ],
}


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with billing_service() as running:
        yield running


def write_project(folder: Path, service_url: str, *, mcp_log: Path) -> Path:
    """The team project (`write_team_project`) and its plan, `plan.yaml`."""
    write_team_project(folder, service_url, mcp_log)
    (folder / "plan.yaml").write_text(yaml.safe_dump(PLAN, sort_keys=False))
    return folder


@pytest.fixture
def project(tmp_path: Path, service: Service, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BILLING_TOKEN", BILLING_TOKEN)
    httpx.post(f"{service.url}/_reset").raise_for_status()  # nothing seen, no refunds
    return write_project(tmp_path / "team", service.url, mcp_log=tmp_path / "mcp.jsonl")


def mcp_calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def one_line_error(result: Any) -> str:
    """The single stderr line of a refused command (no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


def test_a_run_pauses_in_the_project_and_is_approved_from_another_folder(
    project: Path, service: Service, tmp_path: Path
) -> None:
    run = plangate(project, "run", "plan.yaml", "--thread", "t1")
    assert run.returncode == ExitCode.PAUSED, run.stderr
    assert f"project {project / 'plangate.yaml'}" in run.stdout
    assert "Paused: step 'refund' (billing.create_refund) needs approval." in run.stdout
    assert (project / "runs" / "plangate.db").is_file()
    # Python, MCP and HTTP tools all ran before the pause.
    assert [call["tool"] for call in mcp_calls(tmp_path / "mcp.jsonl")] == ["lookup"]
    assert service.refunds() == []

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = plangate(elsewhere, "pending", "--project", str(project))
    assert listed.returncode == 0, listed.stderr
    assert "t1  step refund (billing.create_refund)" in listed.stdout

    approved = plangate(elsewhere, "approve", "t1", "--project", str(project), "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stderr
    assert "Run success" in approved.stdout
    (refund,) = service.refunds()
    assert refund["invoice_id"] == "inv-1"
    assert refund["amount"] == 20.0

    shown = plangate(elsewhere, "show", "t1", "--project", str(project))
    assert shown.returncode == 0, shown.stderr
    # Each step's action and where it came from, as its outcome recorded it.
    assert "read (mcp)" in shown.stdout
    assert "read (openapi)" in shown.stdout
    assert "execute (openapi)" in shown.stdout
    assert "read (tool)" in shown.stdout


def test_the_environment_variable_names_the_project_too(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert plangate(project, "run", "plan.yaml", "--thread", "t2").returncode == ExitCode.PAUSED
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("PLANGATE_PROJECT", str(project / "plangate.yaml"))
    rejected = plangate(elsewhere, "reject", "t2", "--reason", "not today")
    assert rejected.returncode == ExitCode.PARTIAL, rejected.stderr


def test_a_run_goes_on_in_the_project_it_started_in_without_being_told(
    project: Path, tmp_path: Path
) -> None:
    """Without --project, `approve` finds the run's own project file from any folder: the run
    recorded its path (and the database is named with --db)."""
    assert plangate(project, "run", "plan.yaml", "--thread", "t3").returncode == ExitCode.PAUSED
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = str(project / "runs" / "plangate.db")
    approved = plangate(elsewhere, "approve", "t3", "--db", db, "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stderr


def test_reading_runs_reaches_no_server_and_approve_only_what_is_left(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pending`, `show`, `trace` and `runs` work with every remote source down; `approve`
    reaches only the sources the remaining steps use."""
    plan = {
        "goal": "note, then refund over MCP",
        "steps": [
            {"id": "refund", "tool": "ledger.refund", "args": {"invoice_id": "i", "amount": 1}},
            {"id": "note", "tool": "team.note", "args": {"text": "done"}, "depends_on": []},
        ],
    }
    (project / "plan.yaml").write_text(yaml.safe_dump(plan))
    assert plangate(project, "run", "plan.yaml", "--thread", "t4").returncode == ExitCode.PAUSED

    # Every remote source broken: the OpenAPI service's URL has nothing listening, and the MCP
    # server's command does not exist. The variable the OpenAPI entry needs is unset too.
    broken = yaml.safe_load((project / "plangate.yaml").read_text())
    broken["tools"][2]["openapi"] = f"http://127.0.0.1:{free_port()}/openapi.json"
    (project / "plangate.yaml").write_text(yaml.safe_dump(broken))
    monkeypatch.delenv("BILLING_TOKEN")
    for command in (["pending"], ["show", "t4"], ["trace", "t4"], ["runs"]):
        result = plangate(project, *command)
        assert result.returncode == 0, (command, result.stderr)
    assert "t4  step refund (ledger.refund)" in plangate(project, "pending").stdout

    # The waiting step uses the MCP server, which still works: approving it reaches only it.
    approved = plangate(project, "approve", "t4", "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stderr
    assert [c["tool"] for c in mcp_calls(tmp_path / "mcp.jsonl")] == ["refund"]


def test_a_project_without_the_waiting_steps_tool_is_refused_before_anything_is_stored(
    project: Path, tmp_path: Path
) -> None:
    assert plangate(project, "run", "plan.yaml", "--thread", "t5").returncode == ExitCode.PAUSED
    other = tmp_path / "other"
    other.mkdir()
    (other / "plangate.yaml").write_text(
        "db: sqlite:///../team/runs/plangate.db\ntools:\n  - python: teamtools:toolkit\n"
    )
    (other / "teamtools.py").write_text(TEAM_TOOLS)
    refused = plangate(other, "approve", "t5", "--project", str(other), "--approver", "lee")
    assert refused.returncode == ExitCode.USER_ERROR
    line = one_line_error(refused)
    assert "'billing.create_refund'" in line
    assert "does not have" in line
    assert f"Note: run t5 started in project {project / 'plangate.yaml'}; it goes on in" in (
        refused.stdout
    )
    # Still waiting, and its own project approves it.
    assert "t5  step refund" in plangate(project, "pending").stdout
    approved = plangate(project, "approve", "t5", "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stderr


def paused_then_moved(project: Path, tmp_path: Path, thread: str) -> Path:
    """Run the project's plan.yaml in `thread` until it pauses, then move the project's folder;
    returns where it went."""
    assert plangate(project, "run", "plan.yaml", "--thread", thread).returncode == ExitCode.PAUSED
    moved = tmp_path / "moved"
    project.rename(moved)
    return moved


def test_a_moved_project_file_is_named_and_project_names_the_new_one(
    project: Path, tmp_path: Path
) -> None:
    moved = paused_then_moved(project, tmp_path, "t6")
    db = str(moved / "runs" / "plangate.db")
    refused = plangate(tmp_path, "approve", "t6", "--db", db, "--approver", "lee")
    assert refused.returncode == ExitCode.USER_ERROR
    line = one_line_error(refused)
    assert str(project / "plangate.yaml") in line
    assert "--project" in line
    approved = plangate(tmp_path, "approve", "t6", "--project", str(moved), "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stderr


@pytest.mark.parametrize("given_as", ["auth", "headers"])
def test_secrets_from_the_environment_never_reach_the_database(
    project: Path, service: Service, given_as: str
) -> None:
    """The token `${BILLING_TOKEN}` gives (through `auth` or a header) is sent to the service
    and stored nowhere: not in the checkpoints (the run records the project's path and
    fingerprint), not in the trace, even where the service's error quotes it back."""
    if given_as == "headers":
        spec = yaml.safe_load((project / "plangate.yaml").read_text())
        del spec["tools"][2]["auth"]
        spec["tools"][2]["headers"] = {"Authorization": "Bearer ${BILLING_TOKEN}"}
        (project / "plangate.yaml").write_text(yaml.safe_dump(spec))
    plan = {
        "goal": "read customers",
        "steps": [
            {"id": "c", "tool": "billing.get_customer", "args": {"customer_id": "acme"}},
            # The service's 404 quotes the request's token (a careless service).
            {"id": "x", "tool": "billing.get_customer", "args": {"customer_id": "nobody"}},
        ],
    }
    (project / "plan.yaml").write_text(yaml.safe_dump(plan))
    run = plangate(project, "run", "plan.yaml", "--thread", "t7")
    assert run.returncode == ExitCode.PARTIAL, run.stdout + run.stderr
    # The service did get it, twice.
    sent = [
        str(r["headers"].get("authorization"))
        for r in service.requests()
        if r["path"].startswith("/customers")
    ]
    assert sent == [f"Bearer {BILLING_TOKEN}"] * 2
    raw = (project / "runs" / "plangate.db").read_bytes()
    assert BILLING_TOKEN.encode() not in raw
    with sqlite3.connect(project / "runs" / "plangate.db") as conn:
        metadata = [row[0] for row in conn.execute("SELECT metadata FROM checkpoints")]
    stored = json.loads(json.loads(metadata[-1])["plangate_cli"])
    assert stored["project"] == str(project / "plangate.yaml")
    assert stored["project_fingerprint"] == Project.load(project).fingerprint
    trace = plangate(project, "trace", "t7").stdout
    assert "no customer nobody for ***" in trace
    assert BILLING_TOKEN not in trace + run.stdout


def test_tools_lists_every_tool_with_its_source_action_risk_and_gate(project: Path) -> None:
    listed = plangate(project, "tools", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["tool"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert set(rows) >= {
        "team.note",
        "ledger.lookup",
        "ledger.refund",
        "ledger.void",
        "billing.get_invoice",
        "billing.create_refund",
        "billing.get_customer",
    }
    assert "billing.list_invoices" not in rows  # left out by `include`
    assert rows["team.note"] == {
        "tool": "team.note",
        "source": "python",
        "domain": "team",
        "action": "read",
        "action_source": "tool",
        "irreversible": False,
        "exempt": False,
        "risk": "low",
        "allowed": True,
        "asks": False,
    }
    assert (rows["ledger.refund"]["source"], rows["ledger.refund"]["action_source"]) == (
        "mcp ledger",
        "mcp",
    )
    assert rows["ledger.refund"]["irreversible"] is True
    assert rows["ledger.refund"]["asks"] is True
    assert rows["ledger.void"]["action_source"] == "default"  # says nothing: fail closed
    assert rows["billing.create_refund"]["source"] == "openapi billing"
    assert rows["billing.create_refund"]["action"] == "execute"
    assert rows["billing.get_invoice"]["asks"] is False

    text = plangate(project, "tools", "--profile", "technical")
    assert text.returncode == 0, text.stderr
    assert "profile technical" in text.stdout.splitlines()[0]
    (line,) = [row for row in text.stdout.splitlines() if "billing.create_refund" in row]
    assert line.split()[-1] == "yes"  # technical asks for nothing


def test_a_project_profile_blocks_tools_by_name(project: Path) -> None:
    (project / "profiles").mkdir()
    (project / "profiles" / "locked.yaml").write_text(
        "name: locked\nallowed_tools: ['team.*', 'billing.get_*']\n"
    )
    spec = yaml.safe_load((project / "plangate.yaml").read_text())
    (project / "plangate.yaml").write_text(yaml.safe_dump({**spec, "profiles": "profiles/"}))
    text = plangate(project, "tools", "--profile", "locked")
    assert text.returncode == 0, text.stderr
    (line,) = [row for row in text.stdout.splitlines() if "ledger.refund" in row]
    assert line.split()[-1] == "blocked"
    checked = plangate(project, "check", "plan.yaml", "--profile", "locked")
    assert checked.returncode == ExitCode.USER_ERROR
    assert "tool_not_allowed: step 'refund'" in checked.stdout


def test_check_passes_a_good_plan_and_names_every_problem_of_a_bad_one(project: Path) -> None:
    good = plangate(project, "check", "plan.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "No problem found under profile smb." in good.stdout
    bad = {
        "goal": "bad",
        "steps": [
            {"id": "a", "tool": "ledger.nothing", "args": {}},
            {"id": "b", "tool": "billing.get_invoice", "args": {"invoice": "inv-1"}},
        ],
    }
    (project / "bad.yaml").write_text(yaml.safe_dump(bad))
    checked = plangate(project, "check", "bad.yaml", "--json")
    assert checked.returncode == ExitCode.USER_ERROR
    report = json.loads(checked.stdout)
    problems = {(p["step_id"], p["kind"]) for p in report["problems"]}
    assert ("a", "unknown_tool") in problems
    assert ("b", "invalid_arguments") in problems


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("tools:\n  - pyhton: x:y\n", "tools.0: each entry needs one of python, mcp or openapi"),
        ("dbs: x\n", "dbs: Extra inputs are not permitted"),
        ("tools: [{python: nowhere_at_all:toolkit}]\n", "tools.0: cannot import 'nowhere_at_all'"),
        ("db: postgresql://u:${NO_SUCH_SECRET}@h/db\n", "db: environment variable NO_SUCH_SECRET"),
        ("profile: nope\n", "profile: unknown profile 'nope'"),
        ("tools: [{mcp: {'a.b': {command: x}}}]\n", "prefix 'a.b' must be one name"),
        ("tools: [{mcp: missing.json}]\n", "tools.0.mcp: mcpServers file"),
        ("- a\n- b\n", "expected a mapping"),
        ("db: [\n", "is not valid YAML/JSON"),
    ],
)
def test_a_bad_project_file_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, content: str, expected: str
) -> None:
    (tmp_path / "plangate.yaml").write_text(content)
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(PLAN))
    for command in (["check", "plan.yaml"], ["tools"]):
        result = plangate(tmp_path, *command)
        assert result.returncode == ExitCode.USER_ERROR, command
        line = one_line_error(result)
        assert line.startswith(f"plangate: error: {tmp_path / 'plangate.yaml'}: "), line
        assert expected in line


def test_a_missing_variable_of_a_source_is_named_when_the_source_is_needed(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BILLING_TOKEN")
    # `pending` needs no source: fine.
    assert plangate(project, "pending").returncode == 0
    run = plangate(project, "run", "plan.yaml")
    assert run.returncode == ExitCode.USER_ERROR
    line = one_line_error(run)
    assert "tools.2" in line
    assert "BILLING_TOKEN" in line


def test_an_unreachable_server_stops_a_new_run_before_anything_is_stored(
    project: Path,
) -> None:
    spec = yaml.safe_load((project / "plangate.yaml").read_text())
    spec["tools"][2]["openapi"] = f"http://127.0.0.1:{free_port()}/openapi.json"
    (project / "plangate.yaml").write_text(yaml.safe_dump(spec))
    run = plangate(project, "run", "plan.yaml", "--thread", "down")
    assert run.returncode == ExitCode.USER_ERROR
    assert "cannot fetch the OpenAPI document" in one_line_error(run)
    assert "No run" in plangate(project, "runs", "--all").stdout
    listed = plangate(project, "tools")
    assert listed.returncode == ExitCode.USER_ERROR
    assert "tools.2: cannot fetch the OpenAPI document" in one_line_error(listed)


def test_init_writes_a_starter_that_checks_runs_and_is_approved(tmp_path: Path) -> None:
    made = plangate(tmp_path, "init", "starter")
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "starter"
    assert sorted(p.name for p in folder.iterdir()) == [
        "langgraph.json",
        "plan.yaml",
        "plangate.yaml",
        "tools.py",
    ]
    assert plangate(folder, "check", "plan.yaml").returncode == 0
    run = plangate(folder, "run", "plan.yaml", "--thread", "s1")
    assert run.returncode == ExitCode.PAUSED, run.stdout + run.stderr
    assert "orders.refund" in run.stdout
    approved = plangate(folder, "approve", "s1", "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stderr

    again = plangate(tmp_path, "init", "starter")
    assert again.returncode == ExitCode.USER_ERROR
    assert "exists already" in one_line_error(again)


def test_the_demo_project_in_examples_is_what_init_demo_writes(tmp_path: Path) -> None:
    assert plangate(tmp_path, "init", "--demo").returncode == 0
    for name in ("plangate.yaml", "langgraph.json", "sales_followup.yaml"):
        assert (tmp_path / name).read_text() == (ROOT / "examples" / "demo" / name).read_text()
    run = plangate(tmp_path, "run", "sales_followup.yaml", "--profile", "smb", "--thread", "d")
    assert run.returncode == ExitCode.PAUSED, run.stderr
    assert plangate(tmp_path, "approve", "d", "--approver", "you").returncode == 0
    # The demo's outbox is beside its project file, as the file says.
    assert (tmp_path / "plangate-outbox.db").is_file()


def test_project_loading_from_python_is_lazy(project: Path, tmp_path: Path) -> None:
    """`Project.load` reaches nothing; a graph's MCP and OpenAPI tools load on first lookup."""
    spec = yaml.safe_load((project / "plangate.yaml").read_text())
    spec["tools"][2]["openapi"] = f"http://127.0.0.1:{free_port()}/openapi.json"
    (project / "plangate.yaml").write_text(yaml.safe_dump(spec))
    loaded = Project.load(project)
    graph = loaded.graph(profile="technical")
    assert set(graph.tools.loaded) == {"team.note"}
    assert graph.tools.get("ledger.lookup") is not None
    assert {"ledger.lookup", "ledger.refund"} <= set(graph.tools.loaded)
    with pytest.raises(ProjectError, match=r"tools\.2: cannot fetch the OpenAPI document"):
        graph.tools.get("billing.get_invoice")
    assert mcp_calls(tmp_path / "mcp.jsonl") == []  # listing tools calls none


# What builds graphs and tools; the project's checkpointer (`langgraph.checkpoint`) may load.
GRAPH_MACHINERY = (
    "langgraph.types",
    "langgraph.graph",
    "langchain_core.tools",
    "langsmith.run_trees",
)


def test_importing_the_project_loads_no_graph_machinery_or_tools(tmp_path: Path) -> None:
    """The commands that only read runs (`pending`, `runs`, `show`, `trace`) find their project
    and database through `plangate.project`: importing it, in a fresh process (these tests have
    imported everything), leaves LangGraph's graphs and LangChain's tools for a graph to load."""
    code = (
        "import json, sys, plangate.project; "
        f"print(json.dumps([m for m in {GRAPH_MACHINERY!r} if m in sys.modules]))"
    )
    done = run_in(tmp_path, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_find_looks_in_parents_and_the_variable_wins(tmp_path: Path) -> None:
    (tmp_path / "plangate.yaml").write_text("profile: technical\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    found = Project.find(start=nested, environ={})
    assert found is not None
    assert found.file == tmp_path / "plangate.yaml"
    assert found.db == f"sqlite:///{tmp_path / 'plangate.db'}"
    other = tmp_path / "other"
    other.mkdir()
    (other / "plangate.yaml").write_text("profile: smb\n")
    named = Project.find(start=nested, environ={"PLANGATE_PROJECT": str(other)})
    assert named is not None
    assert named.spec.profile == "smb"
    assert Project.find(start=Path("/"), environ={}) is None


def test_variables_expand_with_a_literal_escape_and_the_project_dir(tmp_path: Path) -> None:
    (tmp_path / "plangate.yaml").write_text(
        textwrap.dedent(
            """
            db: sqlite:///${PROJECT_DIR}/${DB_NAME}.db
            tools:
              - python: plangate.adapters.demo:demo_toolkit
                args: {outbox: "${PROJECT_DIR}/$${literal}.db"}
            """
        )
    )
    project = Project.load(tmp_path, environ={"DB_NAME": "runs"})
    assert project.db == f"sqlite:///{tmp_path / 'runs.db'}"
    assert set(project.tools.loaded) >= {"email.send"}


def test_the_langgraph_server_module_serves_its_folders_project_and_warns_without_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from plangate.integrations.langgraph_server import graph_from_env

    team = tmp_path / "team"
    team.mkdir()
    (team / "plangate.yaml").write_text(
        "profile: technical\ntools: [{python: teamtools:toolkit}]\n"
    )
    (team / "teamtools.py").write_text(TEAM_TOOLS.replace("team.note", "served.note"))
    served = graph_from_env({}, folder=team)
    assert served.governance.profile.name == "technical"
    assert set(served.tools) == {"served.note"}
    assert graph_from_env({"PLANGATE_PROFILE": "smb"}, folder=team).governance.profile.name == "smb"

    alone = tmp_path / "alone"
    alone.mkdir()
    with caplog.at_level("WARNING", logger="plangate.langgraph_server"):
        demo = graph_from_env({}, folder=alone)
    assert f"no plangate.yaml in {alone} or its parents: serving the built-in demo" in caplog.text
    assert "email.send" in demo.tools


def test_two_projects_with_a_module_of_the_same_name_each_get_their_own(tmp_path: Path) -> None:
    """A server going on with runs of two projects whose toolkits are both `tools.py`: each
    project gets its own tools, and the first project's tools keep working."""
    loaded = []
    for team in ("north", "south"):
        folder = tmp_path / team
        folder.mkdir()
        (folder / "plangate.yaml").write_text("tools: [{python: tools:toolkit}]\n")
        (folder / "tools.py").write_text(
            f"def hello() -> str:\n    return {team!r}\n\ntoolkit = {{'{team}.hello': hello}}\n"
        )
        loaded.append(Project.load(folder).tools)
    north, south = loaded
    assert set(north) == {"north.hello"}
    assert set(south) == {"south.hello"}
    assert north["north.hello"].invoke({}) == "north"
    assert south["south.hello"].invoke({}) == "south"


def test_the_inbox_shows_a_run_whose_project_moved_and_refuses_deciding_it_in_one_line(
    project: Path, tmp_path: Path
) -> None:
    from plangate.runs.service import RunService

    moved = paused_then_moved(project, tmp_path, "t9")
    service = RunService(f"sqlite:///{moved / 'runs' / 'plangate.db'}")
    try:
        view = service.run("t9")
        assert view["status"] == "waiting"
        (waiting,) = service.pending()
        with pytest.raises(ProjectError, match="this run's project file is not here"):
            service.decide(
                "t9",
                {
                    "interrupt_id": waiting["interrupt_id"],
                    "decision": "approve",
                    "approver": "lee",
                },
            )
        assert [a["thread"] for a in service.pending()] == ["t9"]  # still waiting
    finally:
        service.close()


def test_a_run_goes_on_recording_the_project_it_moved_to_and_says_when_the_file_changed(
    project: Path, tmp_path: Path
) -> None:
    two_refunds = {
        "goal": "two refunds",
        "steps": [
            {
                "id": f"r{n}",
                "tool": "billing.create_refund",
                "args": {"invoice_id": "inv-1", "amount": n, "reason": "duplicate"},
                # One after the other: each approval is a step of the run of its own.
                "depends_on": [f"r{n - 1}"] if n > 1 else [],
            }
            for n in (1, 2)
        ],
    }
    (project / "plan.yaml").write_text(yaml.safe_dump(two_refunds))
    moved = paused_then_moved(project, tmp_path, "mv")
    db = str(moved / "runs" / "plangate.db")
    first = plangate(tmp_path, "approve", "mv", "--db", db, "--project", str(moved))
    assert first.returncode == ExitCode.PAUSED, first.stdout + first.stderr
    assert first.stderr == ""  # the same file, moved: nothing changed
    # The run now records where its project is: no --project needed any more.
    with (moved / "plangate.yaml").open("a") as file:
        file.write("# reviewed\n")
    second = plangate(tmp_path, "approve", "mv", "--db", db, "--approver", "lee")
    assert second.returncode == ExitCode.SUCCESS, second.stdout + second.stderr
    assert f"Note: {moved / 'plangate.yaml'} has changed since run mv started." in second.stdout
