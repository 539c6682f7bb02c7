"""Reading runs with the saver alone (`plangate.runs.stored`) gives what the graph gives, and the
commands that only read runs start without LangGraph's graph machinery."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _support import CallLog, counting_tools, plan_of, thread
from langgraph.types import Command

from plangate import build_graph, load_profile, open_checkpointer
from plangate.runs.guarded_graph import PlangateGraph
from plangate.runs.history import ended_so_far, get_trace
from plangate.runs.prune import prune_runs
from plangate.runs.stored import (
    StoredInterrupt,
    open_store,
    read_stored_run,
    thread_checkpoints,
    trace_of,
    waiting_approvals,
)
from plangate.state import SNAPSHOT_EVERY

# Never asks, so that long plans run through.
TECHNICAL = load_profile("technical")


def graph_on(db: Path, profile: Any) -> PlangateGraph:
    """A graph over the SQLite file `db` with a read and a send (which asks under every
    profile)."""
    tools = counting_tools(CallLog(), "inv.read")
    tools += counting_tools(CallLog(), "email.send", action="execute")
    return build_graph(tools, profile=profile, checkpointer=open_checkpointer(f"sqlite:///{db}"))


def assert_reads_alike(db: Path, thread_id: str) -> None:
    """The run of `thread_id` read with the saver alone equals the run read by a graph: its
    state's values (but for the channels the tasks of the step in progress wrote, which the
    graph's state shows applied and the stored run keeps as its pending writes), the steps that
    ended, what it waits for, and its trace."""
    url = f"sqlite:///{db}"
    graph = build_graph({}, profile="technical", checkpointer=open_checkpointer(url))
    config = thread(thread_id)
    snapshot = graph.get_state(config)
    store = open_store(url)
    run = read_stored_run(store, thread_id)
    assert run is not None
    in_progress = {channel for _, channel, _ in run.pending_writes}
    assert run.values == {k: v for k, v in snapshot.values.items() if k not in in_progress}
    assert run.ended == ended_so_far(snapshot)
    waiting = run.interrupts if run.interrupts is not None else []
    assert [(i.id, i.value) for i in waiting] == [(i.id, i.value) for i in snapshot.interrupts]
    assert all(isinstance(i, StoredInterrupt) for i in waiting)
    assert trace_of(thread_checkpoints(store, thread_id)) == get_trace(graph, config)


def test_a_long_finished_run_reads_alike_past_the_snapshots_of_its_delta_channels(
    tmp_path: Path,
) -> None:
    """Past `SNAPSHOT_EVERY` steps the outcomes are replayed from a snapshot and the writes
    since; the events' and the wave's snapshots come every 30 writes."""
    db = tmp_path / "runs.db"
    count = SNAPSHOT_EVERY + 37
    graph = graph_on(db, TECHNICAL)
    steps = [{"id": f"s{i}", "tool": "inv.read", "args": {"text": str(i)}} for i in range(count)]
    out = graph.invoke({"plan": plan_of(*steps)}, thread("long"))
    assert out["result"]["status"] == "success"
    assert_reads_alike(db, "long")
    run = read_stored_run(open_store(f"sqlite:///{db}"), "long")
    assert run is not None
    assert len(run.ended) == count


def test_a_run_waiting_beside_steps_that_ended_reads_alike(tmp_path: Path) -> None:
    """Two sends wait while a read of their wave has ended: the read shows as ended, recorded
    only when the wave is over."""
    db = tmp_path / "runs.db"
    graph = graph_on(db, "smb")
    plan = plan_of(
        {"id": "a", "tool": "email.send", "args": {"text": "a"}},
        {"id": "r", "tool": "inv.read", "args": {"text": "r"}},
        {"id": "b", "tool": "email.send", "args": {"text": "b"}},
        order="dependencies",
    )
    out = graph.invoke({"plan": plan}, thread("w"))
    assert len(out["__interrupt__"]) == 2
    assert_reads_alike(db, "w")
    store = open_store(f"sqlite:///{db}")
    run = read_stored_run(store, "w")
    assert run is not None
    assert set(run.ended) == {"r"}
    listed = dict(waiting_approvals(store, reread=lambda _: pytest.fail("not re-asked")))
    assert sorted(i.value["step_id"] for i in listed["w"]) == ["a", "b"]


def test_a_second_plan_on_a_thread_reads_alike_after_its_outcomes_are_overwritten(
    tmp_path: Path,
) -> None:
    """A new plan on a finished thread clears the outcomes with an overwrite, which the replay
    applies as LangGraph does: the first plan's steps are gone."""
    db = tmp_path / "runs.db"
    graph = graph_on(db, TECHNICAL)
    first = [{"id": f"a{i}", "tool": "inv.read", "args": {"text": str(i)}} for i in range(5)]
    graph.invoke({"plan": plan_of(*first)}, thread("again"))
    graph.invoke({"plan": plan_of({"id": "b", "tool": "inv.read"})}, thread("again"))
    assert_reads_alike(db, "again")
    run = read_stored_run(open_store(f"sqlite:///{db}"), "again")
    assert run is not None
    assert set(run.ended) == {"b"}


def test_a_decided_then_pruned_run_reads_alike(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    graph = graph_on(db, "smb")
    plan = plan_of(
        {"id": "r", "tool": "inv.read", "args": {"text": "r"}},
        {"id": "send", "tool": "email.send", "args": {"text": "hi"}},
    )
    out = graph.invoke({"plan": plan}, thread("p"))
    request = out["__interrupt__"][0].value
    assert_reads_alike(db, "p")
    decision = {"decision": "approve", "approver": "lee", **_bound(request)}
    graph.invoke(Command(resume=decision), thread("p"))
    assert_reads_alike(db, "p")
    prune_runs(graph, finished_before=timedelta(0))
    assert_reads_alike(db, "p")


def _bound(request: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": request["request_id"], "digest": request["digest"]}


def test_an_unknown_thread_reads_as_none(tmp_path: Path) -> None:
    open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}")
    assert read_stored_run(open_store(f"sqlite:///{tmp_path / 'runs.db'}"), "nope") is None


READ_COMMANDS = (["pending"], ["runs", "--all"], ["show", "t1"], ["trace", "t1"])
HEAVY = ("langgraph.graph", "langgraph.types", "langchain_core.tools", "langsmith.run_trees")


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_the_commands_that_read_runs_import_no_graph_machinery(
    paused_demo: Path, command: list[str]
) -> None:
    """What keeps them fast to start (`python -m benchmarks.startup` measures it): they read
    runs with the saver alone, and nothing they import loads LangGraph's graph, LangChain's
    tools or tracers."""
    probe = (
        "import sys\n"
        f"sys.argv = ['plangate', *{command!r}]\n"
        "from plangate.cli import main\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=paused_demo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "LOADED []", done.stdout[-2000:]


@pytest.fixture(scope="module")
def paused_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project with its plan paused at its first approval, on thread `t1`."""
    folder = tmp_path_factory.mktemp("demo")
    plangate = [sys.executable, "-m", "plangate"]
    subprocess.run([*plangate, "init", "--demo", "."], cwd=folder, check=True, capture_output=True)
    ran = subprocess.run(
        [*plangate, "run", "sales_followup.yaml", "--thread", "t1"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 3, ran.stderr  # paused
    return folder
