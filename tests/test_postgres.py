"""Runs kept in a real PostgreSQL server: sync and async savers, a run paused in one process and
resumed in another, the CLI with `--db postgresql://...`, `plangate expire`, and a server that
cannot be reached."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import CallLog, counting_tools, plan_of, plangate, thread
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.types import Command

from plangate import (
    PlangateUsageError,
    RunNotFinished,
    aget_trace,
    aopen_checkpointer,
    build_graph,
    demo_outbox,
    expire_approvals,
    get_trace,
    list_threads,
    open_checkpointer,
    pending_approvals,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo"
GATED = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "hi"}}


def test_a_run_paused_in_one_process_is_resumed_in_another(
    postgres_url: str, log: CallLog, tmp_path: Path
) -> None:
    saver = open_checkpointer(postgres_url)
    assert isinstance(saver, PostgresSaver)
    graph = build_graph(
        counting_tools(log, "crm.lookup", "email.send"), profile="smb", checkpointer=saver
    )
    plan = plan_of({"id": "look", "tool": "crm.lookup", "args": {"text": "a"}}, GATED)
    paused = graph.invoke({"plan": plan}, thread("pg-cross"))
    assert paused["__interrupt__"][0].value["tool"] == "email.send"
    assert "pg-cross" in list_threads(saver)
    assert ("pg-cross", paused["__interrupt__"][0].value) in list(pending_approvals(graph))

    # The other process builds the same tools: an approval is bound to what its tool declares.
    script = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from _support import CallLog, counting_tools
from langgraph.types import Command
from plangate import build_graph, open_checkpointer
graph = build_graph(counting_tools(CallLog(), "crm.lookup", "email.send"),
                    profile="smb", checkpointer=open_checkpointer({postgres_url!r}))
out = graph.invoke(Command(resume={{"decision": "approve", "approver": "ops"}}),
                   {{"configurable": {{"thread_id": "pg-cross"}}}})
print(json.dumps(out["result"]["status"]))
"""
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == "success"
    assert log.count("email.send") == 0  # it ran in the other process
    trace = get_trace(graph, thread("pg-cross"))
    assert [e["seq"] for e in trace] == list(range(len(trace)))
    assert trace[-1]["type"] == "plan_completed"
    saver.conn.close()


async def test_the_async_saver_pauses_and_resumes(postgres_url: str, log: CallLog) -> None:
    saver = await aopen_checkpointer(postgres_url)
    assert isinstance(saver, AsyncPostgresSaver)
    graph = build_graph(counting_tools(log, "email.send"), profile="smb", checkpointer=saver)
    paused = await graph.ainvoke({"plan": plan_of(GATED)}, thread("pg-async"))
    assert paused["__interrupt__"]
    done = await graph.ainvoke(Command(resume={"decision": "approve"}), thread("pg-async"))
    assert done["result"]["status"] == "success"
    assert log.count("email.send") == 1
    events = await aget_trace(graph, thread("pg-async"))
    assert [e["type"] for e in events][-1] == "plan_completed"
    await saver.conn.close()


def test_expired_approvals_are_closed_as_expired(
    postgres_url: str, log: CallLog, clock: Any
) -> None:
    """`expire_approvals` resumes only the runs whose request expired, as `expired`; the tool is
    never called and the run goes on as `on_reject` says."""
    saver = open_checkpointer(postgres_url)
    graph = build_graph(
        counting_tools(log, "email.send"), profile="smb", checkpointer=saver, clock=clock
    )
    graph.invoke({"plan": plan_of(GATED)}, thread("pg-old"))
    clock.advance(hours=23)
    graph.invoke({"plan": plan_of(GATED)}, thread("pg-new"))
    clock.advance(hours=2)  # pg-old is 25 h old (past 24 h), pg-new 2 h
    closed = dict(expire_approvals(graph, now=clock()))
    assert list(closed) == ["pg-old"]
    step = closed["pg-old"]["steps"][0]
    assert (step["status"], step["approval"]["decision"]) == ("expired", "expired")
    assert log.count("email.send") == 0
    assert [t for t, _ in pending_approvals(graph) if t.startswith("pg-")] == ["pg-new"]
    saver.conn.close()


def test_a_thread_takes_a_new_plan_only_once_its_run_has_finished(
    postgres_url: str, log: CallLog
) -> None:
    """The same guard on PostgreSQL: a finished thread takes a new plan, a paused one refuses
    it with `RunNotFinished` and still approves."""
    saver = open_checkpointer(postgres_url)
    tools = counting_tools(log, "crm.lookup", "email.send")
    graph = build_graph(tools, profile="smb", checkpointer=saver)
    look = {"tool": "crm.lookup", "args": {"text": "a"}}
    graph.invoke({"plan": plan_of(look)}, thread("pg-again"))
    graph.invoke({"plan": plan_of(GATED)}, thread("pg-again"))  # finished: a new plan is fine

    with pytest.raises(RunNotFinished) as caught:
        graph.invoke({"plan": plan_of(look)}, thread("pg-again"))
    assert caught.value.waiting is True
    out = graph.invoke(Command(resume={"decision": "approve", "approver": "x"}), thread("pg-again"))
    assert out["result"]["status"] == "success"
    assert (log.count("crm.lookup"), log.count("email.send")) == (1, 1)
    saver.conn.close()


def test_an_unreachable_server_is_one_line() -> None:
    with pytest.raises(PlangateUsageError) as caught:
        open_checkpointer("postgresql://plangate:plangate@127.0.0.1:1/none")
    message = str(caught.value)
    assert message.startswith("cannot connect to PostgreSQL: ")
    assert "\n" not in message


def test_the_cli_runs_lists_approves_and_expires_on_postgres(
    postgres_url: str, tmp_path: Path
) -> None:
    demo = str(EXAMPLES / "sales_followup.yaml")
    db = ["--db", postgres_url]
    run = plangate(tmp_path, "run", demo, "--profile", "smb", "--thread", "cli-a", *db)
    assert run.returncode == 3, run.stderr  # paused for approval
    assert "Paused: step 'send'" in run.stdout
    short = tmp_path / "short.yaml"
    short.write_text(
        yaml.safe_dump(
            {"name": "short", "require_approval": ["execute"], "approval_timeout_seconds": 0.001}
        )
    )
    run = plangate(tmp_path, "run", demo, "--profile", str(short), "--thread", "cli-b", *db)
    assert run.returncode == 3, run.stderr

    pending = plangate(tmp_path, "pending", *db)
    assert pending.returncode == 0, pending.stderr
    listed = [line.split()[0] for line in pending.stdout.splitlines() if line.startswith("cli-")]
    assert sorted(listed) == ["cli-a", "cli-b"]

    expire = plangate(tmp_path, "expire", *db)
    assert expire.returncode == 0, expire.stderr
    assert "cli-b: approval expired" in expire.stdout
    assert "approval_timeout" in expire.stdout
    assert "expired: no decision in time" in expire.stdout
    assert "cli-a" not in expire.stdout

    approve = plangate(tmp_path, "approve", "cli-a", "--approver", "lee", *db)
    assert approve.returncode == 0, approve.stderr
    assert "Run success" in approve.stdout
    assert [mail["to"] for mail in demo_outbox(tmp_path / "plangate-outbox.db")] == [
        "ana.lopez@acme.example"
    ]
    show = plangate(tmp_path, "show", "cli-b", *db)
    assert "expired" in show.stdout
    assert plangate(tmp_path, "pending", *db).stdout.count("cli-") == 0


def test_a_project_on_postgresql_reads_its_password_from_the_environment_and_never_prints_it(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`db: postgresql://user:${VAR}@...` in a project file: every command reaches the server,
    approve from another folder goes on there, and no line printed holds the password."""
    scheme, rest = postgres_url.split("://", 1)
    credentials, where = rest.split("@", 1)
    user, password = credentials.split(":", 1)
    monkeypatch.setenv("PLANGATE_TEST_PG_PASSWORD", password)
    project = tmp_path / "team"
    project.mkdir()
    (project / "plangate.yaml").write_text(
        f"db: {scheme}://{user}:${{PLANGATE_TEST_PG_PASSWORD}}@{where}\nprofile: smb\n"
        "tools:\n  - python: plangate.adapters.demo:demo_toolkit\n"
        "    args: {outbox: '${PROJECT_DIR}/outbox.db'}\n"
    )
    run = plangate(project, "run", str(EXAMPLES / "sales_followup.yaml"), "--thread", "pg-p")
    assert run.returncode == 3, run.stdout + run.stderr
    assert f"database {scheme}://{user}:***@{where})" in run.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    approved = plangate(elsewhere, "approve", "pg-p", "--project", str(project), "--approver", "x")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    for out in (run, approved):
        assert f":{password}@" not in out.stdout + out.stderr
