"""Pruning finished runs (`prune_runs`, `plangate prune`): a pruned run reads back exactly as
before (state, `show`, `trace`), on a real SQLite file and on PostgreSQL; paused and unfinished
runs are untouched; a dry run removes nothing; the cutoff spares recent runs; a new plan on a
pruned thread continues its trace."""

from __future__ import annotations

import asyncio
import doctest
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _support import CallLog, counting_tools, plan_of, plangate, thread
from langgraph.types import Command

from plangate import (
    PlangateGraph,
    PlangateUsageError,
    aopen_checkpointer,
    build_graph,
    get_trace,
    open_checkpointer,
    prune_runs,
    verify_trace,
)
from plangate._time import utc_now
from plangate.runs import prune as prune_module
from plangate.runs.history import aget_trace

ALL = timedelta(0)
GATED = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "hi"}}


def twenty_steps(prefix: str = "s") -> dict[str, Any]:
    """Twenty reads, then a step that waits for an approval (under `smb`)."""
    reads = [
        {"id": f"{prefix}{i}", "tool": "crm.lookup", "args": {"text": str(i)}} for i in range(20)
    ]
    return plan_of(*reads, {**GATED, "id": f"{prefix}-send"})


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    postgres: str = request.getfixturevalue("postgres_url")
    return postgres


@pytest.fixture
def graph(url: str, log: CallLog) -> Iterator[PlangateGraph]:
    saver = open_checkpointer(url)
    yield build_graph(
        counting_tools(log, "crm.lookup", "email.send"), profile="smb", checkpointer=saver
    )
    saver.conn.close()  # type: ignore[attr-defined]


def finish(graph: PlangateGraph, name: str, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run `plan` on thread `name` to its end, approving the step that waits."""
    paused = graph.invoke({"plan": plan or twenty_steps()}, thread(name))
    assert paused["__interrupt__"]
    done = graph.invoke(Command(resume={"decision": "approve", "approver": "ops"}), thread(name))
    result: dict[str, Any] = done["result"]
    return result


def stored(graph: PlangateGraph, name: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each checkpoint of a thread (id) with its writes (task, channel): to see it untouched."""
    saver = graph.checkpointer
    assert saver is not None
    assert not isinstance(saver, bool)
    return [
        (c.config["configurable"]["checkpoint_id"], [(w[0], w[1]) for w in c.pending_writes or []])
        for c in saver.list(thread(name))
    ]


def ours(report: Any, *names: str) -> dict[str, int]:
    """Thread -> checkpoints removed, of the named threads only (PostgreSQL holds others)."""
    return {r.thread_id: r.checkpoints_removed for r in report.runs if r.thread_id in names}


def cli(url: str, tmp_path: Path, *args: str) -> str:
    done = plangate(tmp_path, *args, "--db", url)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_pruned_run_reads_back_exactly_as_before(
    graph: PlangateGraph, url: str, tmp_path: Path
) -> None:
    finish(graph, "done")
    before = graph.get_state(thread("done"))
    trace = get_trace(graph, thread("done"))
    shown, traced = cli(url, tmp_path, "show", "done"), cli(url, tmp_path, "trace", "done")
    listed = cli(url, tmp_path, "runs", "--all")
    checkpoints = len(stored(graph, "done"))

    report = prune_runs(graph, finished_before=ALL)

    assert ours(report, "done") == {"done": checkpoints - 2}
    assert len(stored(graph, "done")) == 2
    after = graph.get_state(thread("done"))
    assert after.values == before.values
    assert get_trace(graph, thread("done")) == trace
    assert cli(url, tmp_path, "show", "done") == shown
    assert cli(url, tmp_path, "trace", "done") == traced
    assert cli(url, tmp_path, "runs", "--all") == listed
    assert cli(url, tmp_path, "verify", "done").startswith(
        f"Run done: the hash chain of its {len(trace)} events holds.\nNo anchors: "
    )
    # Pruning again finds nothing more to remove.
    assert ours(prune_runs(graph, finished_before=ALL), "done") == {}


def test_an_async_reader_reads_the_same_trace(tmp_path: Path, log: CallLog) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    graph = build_graph(
        counting_tools(log, "crm.lookup", "email.send"),
        profile="smb",
        checkpointer=open_checkpointer(db),
    )
    finish(graph, "done")
    trace = get_trace(graph, thread("done"))
    prune_runs(graph, finished_before=ALL)

    async def read() -> list[Any]:
        saver = await aopen_checkpointer(db)
        try:
            return await aget_trace(build_graph({}, checkpointer=saver), thread("done"))
        finally:
            await saver.conn.close()  # type: ignore[attr-defined]

    assert asyncio.run(read()) == trace


def test_pruning_shrinks_the_sqlite_file(tmp_path: Path, log: CallLog) -> None:
    db = tmp_path / "runs.db"
    graph = build_graph(
        counting_tools(log, "crm.lookup", "email.send"),
        profile="smb",
        checkpointer=open_checkpointer(f"sqlite:///{db}"),
    )
    for i in range(3):
        finish(graph, f"run-{i}")
    size = db.stat().st_size + Path(f"{db}-wal").stat().st_size

    report = prune_runs(graph, finished_before=ALL)

    assert report.bytes_before == size
    assert report.bytes_reclaimed is not None
    assert report.bytes_reclaimed > size // 2
    assert db.stat().st_size == report.bytes_after < size


def test_paused_and_unfinished_runs_are_untouched(graph: PlangateGraph) -> None:
    graph.invoke({"plan": twenty_steps()}, thread("paused"))
    graph.invoke({"plan": twenty_steps()}, thread("stopped"), interrupt_before=["tool_exec"])
    finish(graph, "done")
    paused, stopped = stored(graph, "paused"), stored(graph, "stopped")

    report = prune_runs(graph, finished_before=ALL)

    assert ours(report, "paused", "stopped", "done").keys() == {"done"}
    assert stored(graph, "paused") == paused
    assert stored(graph, "stopped") == stopped
    # The paused run goes on as if nothing happened.
    done = graph.invoke(Command(resume={"decision": "approve"}), thread("paused"))
    assert done["result"]["status"] == graph.get_state(thread("done")).values["result"]["status"]


def test_a_dry_run_removes_nothing(graph: PlangateGraph) -> None:
    finish(graph, "done")
    kept = stored(graph, "done")

    dry = prune_runs(graph, finished_before=ALL, dry_run=True)

    assert dry.dry_run
    assert stored(graph, "done") == kept
    assert ours(dry, "done") == {"done": len(kept) - 2}
    assert ours(prune_runs(graph, finished_before=ALL), "done") == ours(dry, "done")


def test_the_cutoff_spares_the_runs_finished_since(graph: PlangateGraph) -> None:
    finish(graph, "older")
    between = utc_now()
    finish(graph, "newer")
    newer = stored(graph, "newer")

    report = prune_runs(graph, finished_before=timedelta(hours=1), now=between + timedelta(hours=1))

    assert ours(report, "older", "newer").keys() == {"older"}
    assert stored(graph, "newer") == newer
    assert len(stored(graph, "older")) == 2


def test_a_new_plan_on_a_pruned_thread_continues_its_trace(graph: PlangateGraph) -> None:
    finish(graph, "pruned")
    between = utc_now()
    finish(graph, "kept")
    old = get_trace(graph, thread("pruned"))
    assert ours(prune_runs(graph, finished_before=ALL, now=between), "pruned", "kept").keys() == {
        "pruned"
    }

    for name in ("pruned", "kept"):
        finish(graph, name, twenty_steps("again-"))

    trace, unpruned = get_trace(graph, thread("pruned")), get_trace(graph, thread("kept"))
    assert trace[: len(old)] == old
    assert [e["seq"] for e in trace] == list(range(len(trace)))
    assert {e["trace_id"] for e in trace} == {old[0]["trace_id"]}
    assert [(e["type"], e["step_id"]) for e in trace] == [
        (e["type"], e["step_id"]) for e in unpruned
    ]
    state, twin = (graph.get_state(thread(name)).values for name in ("pruned", "kept"))
    assert state["result"]["status"] == twin["result"]["status"]
    assert state["outcomes"].keys() == twin["outcomes"].keys()
    # The audit trail holds across the prune and the new run's events, chained to the old.
    assert verify_trace(graph, thread("pruned")).ok
    # Pruned again, the thread keeps both runs' trace.
    prune_runs(graph, finished_before=ALL)
    assert get_trace(graph, thread("pruned")) == trace
    assert len(stored(graph, "pruned")) == 2
    check = verify_trace(graph, thread("pruned"))
    assert (check.ok, check.events) == (True, len(trace))


def test_the_cli_prunes_says_what_and_refuses_a_bad_duration(tmp_path: Path, log: CallLog) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    saver = open_checkpointer(db)
    graph = build_graph(
        counting_tools(log, "crm.lookup", "email.send"), profile="smb", checkpointer=saver
    )
    finish(graph, "done")
    graph.invoke({"plan": twenty_steps()}, thread("paused"))
    count = len(stored(graph, "done")) - 2
    saver.conn.close()  # type: ignore[attr-defined]

    dry = cli(db, tmp_path, "prune", "--finished-before", "0s", "--dry-run").splitlines()
    assert dry[0].startswith("done  finished ")
    assert dry[0].endswith(f"would remove {count} checkpoints")
    assert dry[1:] == [f"Would prune 1 run: {count} checkpoints (dry run: nothing was removed)."]
    assert cli(db, tmp_path, "prune", "--finished-before", "30d") == "No finished run to prune.\n"
    done = cli(db, tmp_path, "prune", "--finished-before", "0s").splitlines()
    assert done[0].endswith(f"removed {count} checkpoints")
    assert done[1].startswith(f"Pruned 1 run: {count} checkpoints removed; ")
    assert " reclaimed (" in done[1]

    for bad in ("3x", "-1d", "h", "1..5h"):
        refused = plangate(tmp_path, "prune", "--finished-before", bad, "--db", db)
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1
        assert "Traceback" not in refused.stderr
        assert "is not a duration" in refused.stderr


def test_an_async_saver_is_refused_with_what_to_do(tmp_path: Path) -> None:
    async def prune_async() -> None:
        saver = await aopen_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}")
        try:
            prune_runs(saver, finished_before=ALL)
        finally:
            await saver.conn.close()  # type: ignore[attr-defined]

    with pytest.raises(PlangateUsageError, match=r"open_checkpointer\(url\)"):
        asyncio.run(prune_async())


def test_the_docstring_example_holds() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(prune_runs, "prune_runs", globs=vars(prune_module)):
        runner.run(test, out=sys.stdout.write)
    assert runner.summarize(verbose=False).failed == 0
