"""Runs go on by themselves, on any worker: with `workers:` in the project file, the doors
(`plangate run`, `approve`) check, queue and say `queued`; `plangate worker` processes (real
ones, on the real PostgreSQL) go on with the runs under each thread's lock. A worker killed with
SIGKILL mid-call has its job taken by another within the stall limit; the step runs again with
the same idempotency key and its effect is recorded once. An expiry closes a request once
(`test_workers_deadline` times it). A bad decision is refused at once and queues nothing; a
SQLite project runs no worker."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _support import plangate

from plangate import PlangateGraph, get_trace
from plangate.errors import (
    AdapterError,
    InvalidDecision,
    NoPendingApproval,
    ResumeConflict,
    StaleDecision,
)
from plangate.project import Project, ProjectError, reader
from plangate.workers import is_refusal

ROOT = Path(__file__).resolve().parents[1]
THREADS = [f"q-{i}" for i in range(6)]

# Each call appends a row to `calls` as it starts and stamps it as it ends (the database's clock,
# shared by every process); its effect goes to `effects` once per idempotency key, as plangate's
# contract asks of a tool: a step run again after a crash, with the same key, acts once.
LEDGER_TOOLS = (
    "{python: ledger_tools:toolkit, args: {seconds: 0.3, steps: [{name: stage, action: read}, "
    "{name: commit}, {name: finish, action: read}]}}"
)
"""The project's `tools:` entry: `work.stage`, `work.commit` (undeclared: the plan's `execute`
asks under `smb`) and `work.finish`, each 0.3 s (`peers/ledger_tools.py`)."""


def with_ledger_tools(folder: Path) -> None:
    """Put the ledger's toolkit (`peers/ledger_tools.py`) beside a project file in `folder`."""
    shutil.copy(ROOT / "tests" / "peers" / "ledger_tools.py", folder)


def with_quick_smb(folder: Path, name: str, seconds: float) -> None:
    """A profile `name` in `folder/profiles`: `smb` with approvals expiring after `seconds`."""
    (folder / "profiles").mkdir(exist_ok=True)
    smb = (ROOT / "src" / "plangate" / "profiles" / "smb.yaml").read_text()
    quick = smb.replace("name: smb", f"name: {name}").replace(
        "approval_timeout_seconds: 86400", f"approval_timeout_seconds: {seconds:g}"
    )
    (folder / "profiles" / f"{name}.yaml").write_text(quick)


def plan(item: str) -> dict[str, Any]:
    """Three steps; `commit` (execute) waits for a person under `smb`."""
    return {
        "goal": f"commit {item}",
        "steps": [
            {"id": "stage", "tool": "work.stage", "args": {"item": item}},
            {
                "id": "commit",
                "tool": "work.commit",
                "action": "execute",
                "args": {"item": item},
                "depends_on": ["stage"],
            },
            {
                "id": "finish",
                "tool": "work.finish",
                "args": {"item": item},
                "depends_on": ["commit"],
            },
        ],
    }


class Cluster:
    """The project's folder, its database, and the `plangate worker` processes started on it."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url
        self.workers: list[subprocess.Popen[str]] = []
        self._reader: PlangateGraph | None = None
        self.env = {**os.environ, "PLANGATE_TEST_LEDGER": url, "PYTHONPATH": _pythonpath()}

    def start_worker(self) -> subprocess.Popen[str]:
        log = open(self.folder / f"worker-{len(self.workers)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "plangate", "worker", "--concurrency", "2"],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.workers.append(process)
        return process

    def kill_workers(self) -> None:
        """Kill every worker still running, and wait for each."""
        for process in self.workers:
            if process.poll() is None:
                process.kill()
            process.wait(10)

    def kill_mid_call(self, thread: str) -> int:
        """Start `thread`'s run in a Python process of its own, outside the queue
        (`OUTSIDE_THE_QUEUE`, the plan in `<thread>.json`), and SIGKILL it mid-call; its pid."""
        (self.folder / f"{thread}.json").write_text(json.dumps(plan(thread)))
        process = subprocess.Popen(
            [sys.executable, "-c", OUTSIDE_THE_QUEUE, f"{thread}.json", thread],
            cwd=self.folder,
            env=self.env,
        )
        try:
            mid_call = "SELECT 1 FROM calls WHERE thread = %s AND ended IS NULL AND pid = %s"
            self.wait_for("its first call", lambda: self.query(mid_call, thread, process.pid))
        finally:
            process.kill()
            process.wait(10)
        return process.pid

    def plangate(self, *args: str) -> subprocess.CompletedProcess[str]:
        return plangate(self.folder, *args, env={"PLANGATE_TEST_LEDGER": self.url})

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    @property
    def reader(self) -> PlangateGraph:
        if self._reader is None:
            self._reader = reader(self.url)
        return self._reader

    def trace(self, thread: str) -> list[str]:
        return [e["type"] for e in get_trace(self.reader, {"configurable": {"thread_id": thread}})]

    def state(self, thread: str) -> tuple[dict[str, Any], int]:
        """A run's values and how many requests it waits on."""
        snapshot = self.reader.get_state({"configurable": {"thread_id": thread}})
        return dict(snapshot.values), len(snapshot.interrupts)

    def wait_for(self, what: str, check: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                logs = "".join(p.read_text()[-1500:] for p in self.folder.glob("worker-*.log"))
                pytest.fail(f"timed out waiting for {what}; worker logs:\n{logs}")
            time.sleep(0.1)

    def go_on_jobs(self, thread: str | None = None) -> list[tuple[str, str]]:
        """(lock, status) of every `go_on` job (of `thread`'s lock, if given)."""
        rows = self.query(
            "SELECT lock, status::text FROM procrastinate_jobs WHERE task_name = 'plangate.go_on'"
        )
        return [r for r in rows if thread is None or r[0] == f"plangate:{thread}"]


def make_ledger(url: str) -> None:
    """The ledger's tables (`peers/ledger_tools.py`), in the database at `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE calls (id serial PRIMARY KEY, thread text, step text, key text, "
            "pid int, started timestamptz, ended timestamptz)"
        )
        conn.execute("CREATE TABLE effects (key text PRIMARY KEY, thread text, step text)")


@contextmanager
def working(cluster: Cluster, *, workers: int) -> Iterator[Cluster]:
    """`cluster` with `workers` worker processes, and the ledger's URL and this checkout's
    source in this process's environment (for the processes it starts beside them, as
    `plangate serve`); afterwards every worker is killed and the environment is as it was."""
    saved = {key: os.environ.get(key) for key in ("PLANGATE_TEST_LEDGER", "PYTHONPATH")}
    os.environ.update(PLANGATE_TEST_LEDGER=cluster.url, PYTHONPATH=_pythonpath())
    try:
        for _ in range(workers):
            cluster.start_worker()
        yield cluster
    finally:
        cluster.kill_workers()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _pythonpath() -> str:
    """This checkout's source first, so that the processes run the code under test."""
    return os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("queued")
    with_ledger_tools(folder)
    with_quick_smb(folder, "short", 2)
    (folder / "plangate.yaml").write_text(
        f"db: {postgres_url}\nprofile: smb\nprofiles: profiles\n"
        f"tools: [{LEDGER_TOOLS}]\n"
        "workers: {heartbeat_seconds: 0.5, stall_seconds: 3, retries: 3, "
        "retry_backoff_seconds: 1, sweep_every_seconds: 1}\n"
    )
    for item in [*THREADS, "bad-0", "late-0"]:
        (folder / f"{item}.json").write_text(json.dumps(plan(item)))
    make_ledger(postgres_url)
    with working(Cluster(folder, postgres_url), workers=2) as found:
        yield found


def test_a_bad_decision_is_refused_at_once_and_queues_nothing(cluster: Cluster) -> None:
    """`approve --step` naming a step that does not wait: one line on stderr, exit 1, and no job
    is queued for the run (the run still waits)."""
    started = cluster.plangate("run", "bad-0.json", "--thread", "bad-0")
    assert started.returncode == 0, started.stderr
    assert "queued" in started.stdout
    cluster.wait_for("bad-0 to wait", lambda: cluster.state("bad-0")[1] == 1)
    jobs = cluster.go_on_jobs("bad-0")
    refused = cluster.plangate("approve", "bad-0", "--step", "finish", "--approver", "lee")
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "not waiting for step 'finish'" in refused.stderr
    assert "queued" not in refused.stdout
    assert cluster.go_on_jobs("bad-0") == jobs
    assert cluster.state("bad-0")[1] == 1


@pytest.mark.parametrize(
    ("workers", "message"),
    [
        ("{stall_seconds: 2, heartbeat_seconds: 2}", "workers: stall_seconds must be longer"),
        ("{retries: -1}", "workers.retries:"),
        ("{sweep_every: 5}", "workers.sweep_every:"),
    ],
)
def test_a_mistaken_workers_section_is_named(tmp_path: Path, workers: str, message: str) -> None:
    (tmp_path / "plangate.yaml").write_text(f"db: postgresql://h/db\nworkers: {workers}\n")
    with pytest.raises(ProjectError, match=message):
        Project.load(tmp_path)


def test_refusals_fail_a_job_and_the_infrastructure_retries_it() -> None:
    """What `is_refusal` says: the run stays as it was for a refusal; a conflict, a tool
    source down or anything else (the database) is tried again."""
    assert is_refusal(StaleDecision("t"))
    assert is_refusal(NoPendingApproval("t"))
    assert is_refusal(InvalidDecision("bad"))
    assert not is_refusal(ResumeConflict("t"))
    assert not is_refusal(AdapterError("down", source="billing"))
    assert not is_refusal(psycopg.OperationalError("gone"))


def test_a_worker_on_a_sqlite_project_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "plangate.yaml").write_text("db: sqlite:///runs.db\nworkers: {}\n")
    refused = plangate(tmp_path, "worker")
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "workers need a PostgreSQL database" in refused.stderr
    assert not (tmp_path / "runs.db").exists()


def test_an_unanswered_request_expires_once(cluster: Cluster) -> None:
    """A run under a profile whose requests last 2 s, left undecided, with the sweep every
    second beside the expiry scheduled at the deadline: it is closed once (one
    `approval_timeout`), `smb` skips the step (its tool never runs), and the run ends."""
    started = cluster.plangate("run", "late-0.json", "--thread", "late-0", "--profile", "short")
    assert started.returncode == 0, started.stderr
    cluster.wait_for("late-0 to finish", lambda: "result" in cluster.state("late-0")[0], 30)
    events = cluster.trace("late-0")
    assert events.count("approval_timeout") == 1, events
    assert cluster.query("SELECT 1 FROM calls WHERE thread = 'late-0' AND step = 'commit'") == []
    # Started once, then closed: by the scheduled expiry's job, and maybe the sweep's too if
    # it came first (the second finds nothing to close, after the run ended); every job done.
    cluster.wait_for(
        "late-0's jobs to end",
        lambda: all(status == "succeeded" for _, status in cluster.go_on_jobs("late-0")),
    )
    assert len(cluster.go_on_jobs("late-0")) >= 2
    assert cluster.trace("late-0").count("approval_timeout") == 1


def test_runs_go_on_on_any_worker_and_a_killed_worker_s_step_acts_once(cluster: Cluster) -> None:
    """Six runs queued by `plangate run`, decided by `plangate approve` (queued); a worker is
    killed with SIGKILL mid-call, a new one starts: every run finishes, each idempotency key
    has one effect, no two calls of one thread overlap, and no job is left undone or failed."""
    began = time.monotonic()
    for item in THREADS:
        queued = cluster.plangate("run", f"{item}.json", "--thread", item)
        assert queued.returncode == 0, queued.stderr
        assert "queued" in queued.stdout
    for item in THREADS:
        cluster.wait_for(f"{item} to wait", lambda item=item: cluster.state(item)[1] == 1)
    approvals: list[subprocess.CompletedProcess[str]] = []

    def approve_all() -> None:  # while the test watches for a call in flight
        for item in THREADS:
            approvals.append(cluster.plangate("approve", item, "--approver", "lee"))

    approving = threading.Thread(target=approve_all)
    approving.start()
    by_pid = {process.pid: process for process in cluster.workers}
    mid_call = "SELECT pid FROM calls WHERE ended IS NULL AND step = 'commit' AND pid = ANY(%s)"
    rows: list[tuple[Any, ...]] = []

    def in_flight() -> bool:
        rows[:] = cluster.query(mid_call, list(by_pid))
        return bool(rows)

    cluster.wait_for("a commit in flight on a worker", in_flight)
    victim = by_pid[rows[0][0]]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    ((killed_at,),) = cluster.query("SELECT clock_timestamp()")
    cluster.start_worker()
    approving.join(120)
    for approved in approvals:
        assert approved.returncode == 0, approved.stderr
        assert "queued" in approved.stdout
        assert "Approving" in approved.stdout
    assert len(approvals) == len(THREADS)

    def all_finished() -> bool:
        return all("result" in cluster.state(item)[0] for item in THREADS)

    cluster.wait_for("every run to finish", all_finished, 90)
    for item in THREADS:
        result = cluster.state(item)[0]["result"]
        assert result["status"] == "success", result
        assert [s["status"] for s in result["steps"]] == ["ok", "ok", "ok"], result

    assert_acted_once(cluster, victim.pid, killed_at)
    stuck = [job for job in cluster.go_on_jobs() if job[1] in ("todo", "doing", "failed")]
    assert [j for j in stuck if j[0].startswith("plangate:q-")] == []
    print(f"six runs through a killed worker in {time.monotonic() - began:.1f} s")


def assert_acted_once(cluster: Cluster, victim: int, killed_at: Any) -> None:
    """The ledger after the kill: one effect per idempotency key; the cut call ran again once,
    on another worker, after the kill; no two calls of one thread at once."""
    calls = cluster.query(
        "SELECT thread, step, key, pid, started, ended FROM calls WHERE thread LIKE 'q-%%' "
        "ORDER BY started"
    )
    effects = cluster.query("SELECT key, thread, step FROM effects WHERE thread LIKE 'q-%%'")
    # One effect per idempotency key, and one key per (thread, step): 18 effects in all.
    assert len(effects) == len(THREADS) * 3
    assert len({(t, s) for _, t, s in effects}) == len(THREADS) * 3
    assert {k for k, _, _ in effects} == {c[2] for c in calls}
    # The killed call started and never ended; it ran again, with the same key, elsewhere.
    cut = [c for c in calls if c[5] is None]
    assert cut, "no call was cut short by the kill"
    assert {c[3] for c in cut} == {victim}
    for thread, step, key, *_ in cut:
        again = [c for c in calls if c[2] == key and c[5] is not None]
        assert len(again) == 1, (thread, step, calls)
        assert again[0][3] != victim
        # Nothing of its thread ran beside it: what came after it started after the kill.
        started = next(c[4] for c in calls if c[2] == key and c[5] is None)
        later = [c for c in calls if c[0] == thread and c[4] > started]
        assert later, "the cut call never ran again"
        assert all(c[4] > killed_at for c in later), (killed_at, later)
    # No two calls of one thread at once.
    for item in THREADS:
        ended = [c for c in calls if c[0] == item and c[5] is not None]
        for before, after in itertools.pairwise(ended):
            assert before[5] <= after[4], (item, before, after)


def test_a_first_sigterm_finishes_the_step_in_flight_and_queues_the_rest(cluster: Cluster) -> None:
    """SIGTERM to the worker whose run is mid-call: the call ends and is kept, the worker exits
    0 without starting the next step, and another worker finishes the run from there."""
    item = "term-0"
    (cluster.folder / f"{item}.json").write_text(json.dumps(plan(item)))
    assert cluster.plangate("run", f"{item}.json", "--thread", item).returncode == 0
    cluster.wait_for(f"{item} to wait", lambda: cluster.state(item)[1] == 1)
    live = {p.pid: p for p in cluster.workers if p.poll() is None}
    assert len(live) >= 2, "the test needs two live workers"
    assert cluster.plangate("approve", item, "--approver", "lee").returncode == 0
    mid_call = "SELECT pid FROM calls WHERE thread = %s AND step = 'commit' AND ended IS NULL"
    rows: list[tuple[Any, ...]] = []

    def in_flight() -> bool:
        rows[:] = cluster.query(mid_call, item)
        return bool(rows)

    cluster.wait_for("the commit in flight", in_flight)
    stopping = live[rows[0][0]]
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(15) == 0
    cluster.wait_for(f"{item} to finish", lambda: "result" in cluster.state(item)[0], 30)
    assert cluster.state(item)[0]["result"]["status"] == "success"
    calls = cluster.query("SELECT step, pid, ended FROM calls WHERE thread = %s", item)
    assert sorted(step for step, _, _ in calls) == ["commit", "finish", "stage"]
    assert all(ended is not None for _, _, ended in calls)  # nothing was cut short
    assert next(pid for step, pid, _ in calls if step == "finish") != stopping.pid
    assert [s for _, s in cluster.go_on_jobs(item)].count("succeeded") == 3  # start, decide, rest


def test_two_starts_in_one_thread_start_one_run(cluster: Cluster) -> None:
    """Two `plangate run --thread dup-0` at once: one run starts; the other start is refused,
    by the door (the thread exists) or by the worker (its job fails), and never runs a step."""
    plans = []
    for name in ("dup-a", "dup-b"):
        (cluster.folder / f"{name}.json").write_text(json.dumps(plan(name)))
        plans.append(f"{name}.json")
    with ThreadPool(2) as pool:
        done = pool.map(lambda p: cluster.plangate("run", p, "--thread", "dup-0"), plans)
    queued = [d for d in done if d.returncode == 0]
    assert queued, [d.stderr for d in done]
    cluster.wait_for("dup-0 to wait", lambda: cluster.state("dup-0")[1] == 1)
    cluster.wait_for(
        "no dup-0 job left",
        lambda: all(s in ("succeeded", "failed") for _, s in cluster.go_on_jobs("dup-0")),
    )
    jobs = [s for _, s in cluster.go_on_jobs("dup-0")]
    assert sorted(jobs) == (["failed", "succeeded"] if len(queued) == 2 else ["succeeded"])
    staged = cluster.query("SELECT thread FROM calls WHERE thread LIKE 'dup-%%'")
    assert len(staged) == 1  # one run's first step, once
    assert cluster.state("dup-0")[0]["plan"]["goal"] == f"commit {staged[0][0]}"


OUTSIDE_THE_QUEUE = """
import json, sys
from plangate.project import Project
from plangate.runs.checkpoint import open_checkpointer

project = Project.load(".")
graph = project.graph(checkpointer=open_checkpointer(project.db))
plan = json.load(open(sys.argv[1]))
graph.invoke({"plan": plan}, {"configurable": {"thread_id": sys.argv[2]}})
"""


def test_a_run_whose_process_died_outside_the_queue_is_picked_up(cluster: Cluster) -> None:
    """A run started in a Python process of its own, killed with SIGKILL mid-call: the sweep of
    stopped runs queues it, a worker goes on with it, the cut step runs again with the same key
    (one effect), and the run comes to its approval."""
    item = "gone-0"
    killed = cluster.kill_mid_call(item)
    cluster.wait_for(f"{item} to wait", lambda: cluster.state(item)[1] == 1, 30)
    calls = cluster.query(
        "SELECT step, key, pid, ended FROM calls WHERE thread = %s ORDER BY id", item
    )
    assert [c[0] for c in calls] == ["stage", "stage"]
    assert calls[0][1] == calls[1][1]  # the same idempotency key
    assert calls[0][3] is None
    assert calls[1][2] != killed
    assert cluster.query("SELECT count(*) FROM effects WHERE thread = %s", item) == [(1,)]
    assert [s for _, s in cluster.go_on_jobs(item)] == ["succeeded"]
