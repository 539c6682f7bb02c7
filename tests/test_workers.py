"""Many workers on one database: a run started by one worker is resumed by another, and two
resumes of the same paused run at the same moment execute its step once; the loser gets
`ResumeConflict` and changes nothing. On PostgreSQL (a real server) and on SQLite (processes of
one machine)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from _support import plangate
from langgraph.types import Command

from plangate import (
    NoPendingApproval,
    PlangateGraph,
    ResumeConflict,
    build_graph,
    open_checkpointer,
    pending_approvals,
)
from plangate.project import RunSetup

PEERS = Path(__file__).resolve().parent / "peers"
sys.path.insert(0, str(PEERS))
from worker import effect_tools  # noqa: E402 -- the worker's own tools, to read its runs back

ROOT = PEERS.parents[1]
APPROVE = {"decision": "approve", "approver": "lee"}


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: a SQLite file, or a PostgreSQL database of this module's."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def fresh_thread(request: pytest.FixtureRequest) -> str:
    # PostgreSQL databases are shared by the module's tests: a thread id of each test's own.
    return f"{request.node.name}"


class BlockingSend:
    """`email.send` that, once called, waits until the test lets it finish."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, to: str, subject: str, body: str) -> dict[str, str]:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(30), "the test never released the send"
        return {"to": to, "status": "sent"}


def paused_graph(database: str, send: BlockingSend, thread: str) -> PlangateGraph:
    graph = build_graph(
        {"email.send": send.__call__}, profile="smb", checkpointer=open_checkpointer(database)
    )
    plan = {
        "goal": "send",
        "steps": [
            {
                "id": "send",
                "tool": "email.send",
                "action": "execute",
                "args": {"to": "a@b.example", "subject": "hi", "body": "hello"},
            }
        ],
    }
    # The config `plangate run` would use, so that the CLI can find the run too.
    paused = graph.invoke({"plan": plan}, RunSetup(profile="smb").config(thread))
    assert paused["__interrupt__"]
    return graph


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def test_a_second_resume_while_the_first_runs_is_refused(database: str, fresh_thread: str) -> None:
    """Two graphs on two connections (as two workers would have) resume the same run: the first
    runs the step; the second, arriving while the step runs, gets `ResumeConflict`; once the
    first has finished, another resume finds nothing to resume. The step ran once."""
    send = BlockingSend()
    first = paused_graph(database, send, fresh_thread)
    second = build_graph(
        {"email.send": send.__call__}, profile="smb", checkpointer=open_checkpointer(database)
    )
    outcome: dict[str, Any] = {}
    winner = threading.Thread(
        target=lambda: outcome.update(first.invoke(Command(resume=APPROVE), config(fresh_thread)))
    )
    winner.start()
    assert send.entered.wait(30)
    with pytest.raises(ResumeConflict) as conflict:
        second.invoke(Command(resume=APPROVE), config(fresh_thread))
    assert str(conflict.value).startswith(f"run {fresh_thread!r} is already being run or resumed")
    send.release.set()
    winner.join(30)
    assert outcome["result"]["steps"][0]["status"] == "ok"
    with pytest.raises(NoPendingApproval):
        second.invoke(Command(resume=APPROVE), config(fresh_thread))
    assert send.calls == 1


def test_the_cli_of_another_process_is_refused_in_one_line(
    database: str, fresh_thread: str, tmp_path: Path
) -> None:
    """While this process runs the approved step, `plangate approve` in another process fails
    with one line and exit 1; the run then finishes here, once."""
    send = BlockingSend()
    graph = paused_graph(database, send, fresh_thread)
    winner = threading.Thread(
        target=graph.invoke, args=(Command(resume=APPROVE), config(fresh_thread))
    )
    winner.start()
    assert send.entered.wait(30)
    cli = plangate(tmp_path, "approve", fresh_thread, "--db", database)
    send.release.set()
    winner.join(30)
    assert cli.returncode == 1
    assert cli.stderr.strip().splitlines() == [
        f"plangate: error: run {fresh_thread!r} is already being run or resumed elsewhere "
        "(wait for it to finish; `plangate show THREAD` tells how it ended)"
    ]
    assert send.calls == 1
    final = graph.get_state(config(fresh_thread)).values["result"]
    assert final["steps"][0]["approval"]["approver"] == "lee"


def worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(PEERS / "worker.py"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def report(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


RUNS = 50


def test_many_workers_resume_fifty_runs_and_no_step_is_lost_or_run_twice(
    database: str, tmp_path: Path
) -> None:
    """One worker starts 50 runs, each paused for approval; three others resume all of them at
    once, in random orders, with random decisions. Every run is decided by exactly one worker,
    every approved step ran exactly once and every rejected one never, and nothing is left
    waiting."""
    effects = str(tmp_path / "effects.db")
    report(worker("start", database, effects, "many", str(RUNS)))
    resumers = [
        worker("resume", database, effects, "many", str(RUNS), f"w{i}", str(i)) for i in range(3)
    ]
    reports = {f"w{i}": report(process) for i, process in enumerate(resumers)}

    decided: dict[str, tuple[str, str]] = {}
    for name, done in reports.items():
        for thread, decision in done["decided"].items():
            assert thread not in decided, f"{thread} was decided twice"
            decided[thread] = (name, decision)
        assert done["conflicts"] + done["done_elsewhere"] + len(done["decided"]) == RUNS
    assert sorted(decided) == sorted(f"many-{i}" for i in range(RUNS))

    with closing(sqlite3.connect(effects)) as conn:
        ran = Counter(conn.execute("SELECT step, item FROM effects").fetchall())
    approved = {thread for thread, (_, decision) in decided.items() if decision == "approve"}
    assert ran == Counter([("prepare", t) for t in decided] + [("commit", t) for t in approved])

    graph = build_graph(
        effect_tools(effects),
        profile="smb",
        checkpointer=open_checkpointer(database),
    )
    assert [thread for thread, _ in pending_approvals(graph) if thread.startswith("many-")] == []
    for thread, (name, decision) in decided.items():
        result = graph.get_state(config(thread)).values["result"]
        commit = result["steps"][1]
        assert commit["status"] == ("ok" if decision == "approve" else "rejected")
        assert commit["approval"]["approver"] == name
