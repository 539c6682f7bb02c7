"""Seeing the queue (`workers:`), on the real PostgreSQL with real `plangate worker` processes:
`plangate jobs` lists the jobs a worker ran, with their kind and never a decision's arguments;
a failed job shows its error in one line and `--retry` puts it back; `plangate runs` shows a
queued start before any worker takes it and `running on HOST:PID` while a worker has it;
`plangate prune` removes the finished jobs older than its cutoff and never a job to do, but for
the scheduled expiries of deadlines no run waits on any more."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _support import plangate, run_in
from test_stored import HEAVY
from test_workers_queue import Cluster

from plangate._time import iso, parse_iso, utc_now
from plangate.project import Project
from plangate.workers import EXPIRE_AT, RunStart, apply_schema, queue_go_on, worker_app

# `work.nap` sleeps as long as its plan says (a run a worker holds a while); `work.send` waits
# for a person under `smb`.
TOOLS = """
import time
from langchain_core.tools import StructuredTool
from plangate import declare_action


def nap(seconds: float) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}


def send(text: str) -> dict:
    return {"sent": text}


toolkit = [
    declare_action(
        StructuredTool.from_function(nap, name="work.nap", description="nap"), action="read"
    ),
    StructuredTool.from_function(send, name="work.send", description="send"),
]
"""
SECRET = "EDITED-BY-LEE-7f3a"


def nap_plan(seconds: float) -> dict[str, Any]:
    return {
        "goal": "nap",
        "steps": [{"id": "nap", "tool": "work.nap", "args": {"seconds": seconds}}],
    }


def send_plan() -> dict[str, Any]:
    return {
        "goal": "send",
        "steps": [{"id": "send", "tool": "work.send", "action": "execute", "args": {"text": "hi"}}],
    }


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("jobs")
    (folder / "jobs_tools.py").write_text(TOOLS)
    (folder / "plangate.yaml").write_text(
        f"db: {postgres_url}\nprofile: smb\ntools: [{{python: jobs_tools:toolkit}}]\n"
        "workers: {heartbeat_seconds: 0.5, stall_seconds: 3, retries: 1, "
        "retry_backoff_seconds: 1, sweep_every_seconds: 5}\n"
    )
    (folder / "send.json").write_text(json.dumps(send_plan()))
    (folder / "nap.json").write_text(json.dumps(nap_plan(6)))
    (folder / "quick.json").write_text(json.dumps(nap_plan(0)))
    found = Cluster(folder, postgres_url)
    try:
        yield found
    finally:
        found.kill_workers()


@contextmanager
def worker(cluster: Cluster) -> Iterator[subprocess.Popen[str]]:
    """One `plangate worker` for the block; stopped (SIGTERM, then SIGKILL) after it."""
    process = cluster.start_worker()
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def job_rows(cluster: Cluster, thread: str) -> list[tuple[int, str]]:
    """(id, status) of `thread`'s `go_on` jobs, oldest first."""
    return [
        (row[0], row[1])
        for row in cluster.query(
            "SELECT id, status::text FROM procrastinate_jobs WHERE lock = %s ORDER BY id",
            f"plangate:{thread}",
        )
    ]


def python(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in(
        cluster.folder, sys.executable, *args, env={"PYTHONPATH": cluster.env["PYTHONPATH"]}
    )


def bad_start(cluster: Cluster, thread: str) -> int:
    """Queue a start whose project file is gone: the worker's `Project.load` refuses it, and a
    refusal fails the job without a retry."""
    start: RunStart = {
        "plan": nap_plan(0),
        "project": str(cluster.folder / "gone" / "plangate.yaml"),
        "profile": None,
        "offline": False,
        "fixtures": [],
        "started_by": None,
        "start_id": uuid.uuid4().hex,
    }
    return queue_go_on(Project.load(cluster.folder), thread, start=start)


def test_runs_shows_a_start_queued_then_running_on_its_worker(cluster: Cluster) -> None:
    """Before any worker: the start has no checkpoint, and `runs` lists it `queued`; while a
    worker naps in its step: `running on HOST:PID` of that worker; then it finishes."""
    queued = cluster.plangate("run", "nap.json", "--thread", "nap-0")
    assert queued.returncode == 0, queued.stderr
    assert "queued" in queued.stdout
    assert cluster.state("nap-0") == ({}, 0)  # no checkpoint yet
    listed = cluster.plangate("runs")
    assert listed.returncode == 0, listed.stderr
    assert "nap-0  queued" in listed.stdout.splitlines()
    with worker(cluster) as process:
        holder = f"nap-0  running on {socket.gethostname()}:{process.pid}"
        cluster.wait_for(
            "runs to show the worker", lambda: holder in cluster.plangate("runs").stdout
        )
        cluster.wait_for("nap-0 to finish", lambda: "result" in cluster.state("nap-0")[0], 30)
    after = cluster.plangate("runs").stdout
    assert "nap-0" not in after  # finished: listed only with --all
    assert "nap-0  finished success" in cluster.plangate("runs", "--all").stdout


def test_runs_with_workers_on_reads_the_queue_without_procrastinate(cluster: Cluster) -> None:
    """`runs` reads the queue's tables with psycopg: it imports neither procrastinate nor
    LangGraph's graph machinery (what keeps it fast to start, as `test_stored` checks without
    workers)."""
    probe = (
        "import sys\n"
        "sys.argv = ['plangate', 'runs', '--all']\n"
        "from plangate.cli import main\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
        f"print('LOADED', [m for m in {(*HEAVY, 'procrastinate')!r} if m in sys.modules])\n"
    )
    done = python(cluster, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert "nap-0  finished success" in done.stdout  # it did read the runs
    assert done.stdout.splitlines()[-1] == "LOADED []", done.stdout[-2000:]


def test_jobs_lists_a_decision_a_worker_ran_without_its_arguments(cluster: Cluster) -> None:
    """A start, then an approval with edited args, both run by a worker: `jobs` lists both as
    succeeded, with their kind and worker, newest first; the edited args appear nowhere."""
    with worker(cluster) as process:
        assert cluster.plangate("run", "send.json", "--thread", "dec-0").returncode == 0
        cluster.wait_for("dec-0 to wait", lambda: cluster.state("dec-0")[1] == 1, 30)
        approved = cluster.plangate(
            "approve", "dec-0", "--approver", "lee", "--args", json.dumps({"text": SECRET})
        )
        assert approved.returncode == 0, approved.stderr
        assert "queued" in approved.stdout
        cluster.wait_for("dec-0 to finish", lambda: "result" in cluster.state("dec-0")[0], 30)
        cluster.wait_for(
            "both jobs to end",
            lambda: [s for _, s in job_rows(cluster, "dec-0")] == ["succeeded", "succeeded"],
        )
    assert cluster.state("dec-0")[0]["result"]["steps"][0]["output"] == {"sent": SECRET}
    (start, _), (decision, _) = job_rows(cluster, "dec-0")
    listed = cluster.plangate("jobs")
    assert listed.returncode == 0, listed.stderr
    assert SECRET not in listed.stdout
    mine = [line for line in listed.stdout.splitlines() if "  dec-0  " in line]
    # The run waited on a request: its expiry was scheduled at the deadline, a day away, and
    # cancelled by the job that applied the decision (no expiry to do lingers for a day).
    (expiry,) = [line.split("  ")[1:4] for line in mine if "  expiry  " in line]
    assert expiry == ["dec-0", "expiry", "cancelled"]
    mine = [line for line in mine if "  expiry  " not in line]
    assert [line.split("  ")[:4] for line in mine] == [
        [str(decision), "dec-0", "decision", "succeeded"],
        [str(start), "dec-0", "start", "succeeded"],
    ]
    assert all(f"{socket.gethostname()}:{process.pid}" in line for line in mine)
    assert all("error" not in line for line in mine)
    as_json = [json.loads(line) for line in cluster.plangate("jobs", "--json").stdout.splitlines()]
    assert SECRET not in json.dumps(as_json)
    ((row,),) = [[j for j in as_json if j["id"] == decision]]
    assert (row["thread"], row["kind"], row["status"], row["attempts"]) == (
        "dec-0",
        "decision",
        "succeeded",
        1,
    )
    assert row["queued_at"] is not None
    newest = cluster.plangate("jobs", "--limit", "1").stdout.splitlines()
    total = len(cluster.plangate("jobs", "--limit", "0").stdout.splitlines())
    assert total >= 2
    assert newest[1:] == [f"The newest 1 of {total}; --limit 0 lists them all."]
    # Only failed ones with --failed: none of dec-0's.
    assert "dec-0" not in cluster.plangate("jobs", "--failed").stdout


def test_a_failed_job_shows_its_error_and_retry_puts_it_back(cluster: Cluster) -> None:
    """A start whose project cannot be loaded fails at once (a refusal: no retry); `jobs
    --failed` shows it with its error in one line; `--retry ID` makes it `todo` again; a job
    not failed, or unknown, is one line on stderr and exit 1."""
    with worker(cluster):
        job = bad_start(cluster, "bad-0")
        cluster.wait_for("the job to fail", lambda: job_rows(cluster, "bad-0") == [(job, "failed")])
    failed = cluster.plangate("jobs", "--failed")
    assert failed.returncode == 0, failed.stderr
    (line,) = [line for line in failed.stdout.splitlines() if line.startswith(f"{job}  ")]
    assert line.split("  ")[1:5] == ["bad-0", "start", "failed", "attempts 1"]
    assert "error: ProjectError: " in line
    assert "gone" in line.split("error: ", 1)[1]
    assert all("failed" in line for line in failed.stdout.splitlines())

    retried = cluster.plangate("jobs", "--retry", str(job))
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip().splitlines() == [f"Job {job} (start of bad-0) is queued again."]
    assert job_rows(cluster, "bad-0") == [(job, "todo")]
    assert f"{job}  bad-0" not in cluster.plangate("jobs", "--failed").stdout
    assert "bad-0  queued" in cluster.plangate("runs").stdout.splitlines()

    again = cluster.plangate("jobs", "--retry", str(job))
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"plangate: error: job {job} is todo, not failed: only a failed job is retried"
    ]
    unknown = cluster.plangate("jobs", "--retry", "987654")
    assert unknown.returncode == 1
    assert len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
    assert "no job 987654 of plangate in the queue" in unknown.stderr


def test_prune_removes_finished_jobs_past_its_cutoff_and_never_one_to_do(cluster: Cluster) -> None:
    """Old and new failed jobs of threads that never started, a finished run's jobs, a job to
    do: `--finished-before 1h` takes the old one alone (a dry run counts it and removes
    nothing); `0s` takes every finished job of finished runs and gone threads; the job to do
    stays."""
    with worker(cluster):
        assert cluster.plangate("run", "quick.json", "--thread", "pr-done").returncode == 0
        old, new = bad_start(cluster, "pr-old"), bad_start(cluster, "pr-new")
        cluster.wait_for("pr-done to finish", lambda: "result" in cluster.state("pr-done")[0], 30)
        cluster.wait_for(
            "the bad starts to fail",
            lambda: (
                job_rows(cluster, "pr-old") + job_rows(cluster, "pr-new")
                == [(old, "failed"), (new, "failed")]
            ),
        )
        cluster.wait_for("pr-done's job", lambda: job_rows(cluster, "pr-done")[0][1] == "succeeded")
    todo = bad_start(cluster, "pr-todo")  # no worker now: it stays to do
    with psycopg.connect(cluster.url, autocommit=True) as conn:  # finished two hours ago
        conn.execute(
            "UPDATE procrastinate_events SET at = at - interval '2 hours' WHERE job_id = %s",
            (old,),
        )
    # The other jobs ended in the last minutes: only pr-old's is older than an hour.
    every = "SELECT id FROM procrastinate_jobs WHERE task_name LIKE 'plangate.%%'"
    before = {row[0] for row in cluster.query(every)}

    dry = cluster.plangate("prune", "--finished-before", "1h", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Would remove 1 finished job of the queue" in dry.stdout
    assert {row[0] for row in cluster.query(every)} == before

    pruned = cluster.plangate("prune", "--finished-before", "1h")
    assert pruned.returncode == 0, pruned.stderr
    assert "Removed 1 finished job of the queue" in pruned.stdout
    assert {row[0] for row in cluster.query(every)} == before - {old}

    everything = cluster.plangate("prune", "--finished-before", "0s")
    assert everything.returncode == 0, everything.stderr
    left = cluster.query(
        "SELECT j.id, j.lock, j.status::text FROM procrastinate_jobs j "
        "WHERE j.task_name LIKE 'plangate.%%' AND NOT EXISTS "
        "(SELECT 1 FROM procrastinate_periodic_defers d WHERE d.job_id = j.id)"
    )
    gone = before - {old} - {row[0] for row in cluster.query(every)}
    assert f"Removed {len(gone):,} finished job" in everything.stdout
    assert {new, *(job for job, _ in job_rows(cluster, "pr-done"))}.isdisjoint(
        row[0] for row in left
    )
    assert new in gone
    assert (todo, "plangate:pr-todo", "todo") in left
    # What stays: the job to do, bad-0's retried one, and the runs' jobs not finished (none).
    assert {status for _, _, status in left} <= {"todo", "doing"}


def test_prune_removes_scheduled_expiries_no_run_waits_on(cluster: Cluster) -> None:
    """A run waits on its request (its expiry scheduled a day away); expiries to do that no
    worker cancelled (a worker stopped before it could, an older plangate): one of a finished
    run, one of a thread that never ran, one of the waiting run at a deadline it does not wait
    on. `prune`, whatever its cutoff, removes those three (a dry run counts them and removes
    nothing) and keeps the waiting request's, which `jobs` still lists to do."""

    def scheduled(status: str) -> dict[int, tuple[str, str]]:
        rows = cluster.query(
            "SELECT id, args->>'thread', args->>'deadline' FROM procrastinate_jobs "
            "WHERE task_name = %s AND status::text = %s",
            EXPIRE_AT,
            status,
        )
        return {job: (thread, deadline) for job, thread, deadline in rows}

    def waiting_expiry() -> list[int]:
        return [job for job, (thread, _) in scheduled("todo").items() if thread == "ex-wait"]

    with worker(cluster):
        assert cluster.plangate("run", "quick.json", "--thread", "ex-done").returncode == 0
        assert cluster.plangate("run", "send.json", "--thread", "ex-wait").returncode == 0
        cluster.wait_for("ex-done to finish", lambda: "result" in cluster.state("ex-done")[0], 30)
        cluster.wait_for("ex-wait to wait", lambda: cluster.state("ex-wait")[1] == 1, 30)
        cluster.wait_for("ex-wait's expiry", lambda: len(waiting_expiry()) == 1)
    (live,) = waiting_expiry()
    request = cluster.reader.get_state({"configurable": {"thread_id": "ex-wait"}}).interrupts[0]
    assert parse_iso(scheduled("todo")[live][1]) == parse_iso(request.value["expires_at"])
    later = utc_now().replace(microsecond=0) + timedelta(days=2)
    app = worker_app(Project.load(cluster.folder))
    with app.open():
        task = app.tasks[EXPIRE_AT].configure(schedule_at=later)
        stale = {
            task.defer(thread=thread, deadline=iso(later))
            for thread in ("ex-done", "ex-never", "ex-wait")
        }
    assert set(scheduled("todo")) == {live, *stale}

    dry = cluster.plangate("prune", "--finished-before", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "and 3 scheduled expiries no run waits on any more." in dry.stdout
    assert set(scheduled("todo")) == {live, *stale}

    pruned = cluster.plangate("prune", "--finished-before", "30d")
    assert pruned.returncode == 0, pruned.stderr
    assert (
        "Removed 0 finished jobs of the queue (finished runs, threads gone, sweeps), "
        "and 3 scheduled expiries no run waits on any more."
    ) in pruned.stdout.splitlines()
    assert set(scheduled("todo")) == {live}
    listed = cluster.plangate("jobs", "--limit", "0").stdout.splitlines()
    assert [line.split("  ")[1:4] for line in listed if line.startswith(f"{live}  ")] == [
        ["ex-wait", "expiry", "todo"]
    ]
    again = cluster.plangate("prune", "--finished-before", "30d")
    assert "of the queue (finished runs, threads gone, sweeps)." in again.stdout


SERVED = """
import json
from plangate.integrations.langgraph_server import graph_from_env
from plangate.project import Project
from plangate.runs.checkpoint import open_checkpointer

served = graph_from_env({})  # the folder's project, as `langgraph dev` serves it
graph = served.copy(update={"checkpointer": open_checkpointer(Project.load(".").db)})
config = {"configurable": {"thread_id": "srv-0"}}
out = graph.invoke({"plan": json.load(open("send.json"))}, config)
print("waits", len(out["__interrupt__"]))
"""


def test_a_run_langgraph_s_server_started_is_decided_through_the_queue(cluster: Cluster) -> None:
    """The graph LangGraph's server serves, on the project's database (its `langgraph.json`
    checkpointer), runs by itself even with `workers:` (the server is its own queue); the run it
    paused is decided by `plangate approve`, which queues the decision, and a worker goes on
    with it under the run's own project and profile: the state is the same checkpoints."""
    apply_schema(cluster.url)  # the queue's tables, as a first worker makes them
    started = python(cluster, "-c", SERVED)
    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["waits", "1"]
    assert job_rows(cluster, "srv-0") == []  # nothing was queued: the server's graph ran it
    with worker(cluster):
        approved = cluster.plangate("approve", "srv-0", "--approver", "lee")
        assert approved.returncode == 0, approved.stderr
        assert "queued" in approved.stdout
        cluster.wait_for("srv-0 to finish", lambda: "result" in cluster.state("srv-0")[0], 30)
    result = cluster.state("srv-0")[0]["result"]
    assert (result["status"], result["approvals"][0]["approver"]) == ("success", "lee")
    assert [s for _, s in job_rows(cluster, "srv-0")] == ["succeeded"]


@pytest.mark.parametrize(
    ("project_file", "says"),
    [
        ("db: sqlite:///runs.db\n", "Workers are off: the project file has no workers: section"),
        ("db: sqlite:///runs.db\nworkers: {}\n", "Workers are off: they need a PostgreSQL"),
    ],
    ids=["no-workers", "sqlite"],
)
def test_jobs_without_workers_says_they_are_off(
    tmp_path: Path, project_file: str, says: str
) -> None:
    (tmp_path / "plangate.yaml").write_text(project_file)
    done = plangate(tmp_path, "jobs", "--failed")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1, done.stdout
    assert done.stdout.startswith(says)
    assert not (tmp_path / "runs.db").exists()
