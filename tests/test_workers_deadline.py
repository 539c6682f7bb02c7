"""A request closes at its own deadline under workers, once, whichever worker is free: the job
that leaves a run waiting schedules its expiry (`plangate.expire_at`, no lock), and that job
queues the closing under the thread's lock when it is due. The workers here sweep once an hour,
so only the scheduled job can close a request in time. Fired again, beside the sweep, or after
the request was decided, it changes nothing. A request decided in time leaves no expiry to do:
the job that applies the decision cancels it (and schedules the next request's)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from test_workers_queue import (
    LEDGER_TOOLS,
    Cluster,
    make_ledger,
    plan,
    with_ledger_tools,
    with_quick_smb,
    working,
)

from plangate import get_trace
from plangate._time import parse_iso
from plangate.project import Project
from plangate.runs.queue import job_kind
from plangate.runs.service import RunService
from plangate.workers import EXPIRE_AT, worker_app

TIMEOUT = 6
"""Seconds a request of the `brief` profile waits for a decision."""
CLOSE_WITHIN = 2.5
"""How soon after its deadline a request is closed: the workers look for due jobs every
half second (their heartbeat); the rest is the closing's own job."""


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("deadline")
    with_ledger_tools(folder)
    with_quick_smb(folder, "brief", TIMEOUT)
    (folder / "plangate.yaml").write_text(
        f"db: {postgres_url}\nprofile: brief\nprofiles: profiles\n"
        f"tools: [{LEDGER_TOOLS}]\n"
        "workers: {heartbeat_seconds: 0.5, stall_seconds: 3, retries: 3, "
        "retry_backoff_seconds: 1, sweep_every_seconds: 3600}\n"
    )
    make_ledger(postgres_url)
    with working(Cluster(folder, postgres_url), workers=2) as found:
        yield found


def jobs(cluster: Cluster, thread: str) -> list[tuple[str, str, Any]]:
    """(task, status, args) of `thread`'s jobs: its `go_on` jobs (by lock) and its scheduled
    expiries (by argument), oldest first."""
    rows = cluster.query(
        "SELECT task_name, status::text, args FROM procrastinate_jobs "
        "WHERE lock = %s OR (task_name = %s AND args->>'thread' = %s) ORDER BY id",
        f"plangate:{thread}",
        EXPIRE_AT,
        thread,
    )
    return [(task, status, args) for task, status, args in rows]


def closings(cluster: Cluster, thread: str) -> list[str]:
    """The statuses of `thread`'s `go_on` jobs that close expired requests."""
    return [
        status
        for task, status, args in jobs(cluster, thread)
        if task == "plangate.go_on" and job_kind(task, args) == "expiry"
    ]


def sweeps_started(cluster: Cluster, after: datetime, until: datetime) -> int:
    """How many expiry sweeps started between `after` and `until`: a worker starting defers
    the tick of the last ten minutes (procrastinate's periodic catch-up), which a request
    not yet expired does not concern."""
    return int(
        cluster.query(
            "SELECT count(*) FROM procrastinate_jobs j JOIN procrastinate_events e "
            "ON e.job_id = j.id WHERE j.task_name = 'plangate.sweep_expired' "
            "AND e.type = 'started' AND e.at BETWEEN %s AND %s",
            after,
            until,
        )[0][0]
    )


def clear_of_the_hourly_sweep() -> None:
    """Wait, if need be, until the hour's sweep (at minute 0) is a minute behind: the test
    then knows that no sweep closed its requests."""
    now = datetime.now(timezone.utc)
    if now.minute == 59 and now.second > 30:
        time.sleep(95 - now.second)


def start(cluster: Cluster, item: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start `item`'s run (`body`, default `plan(item)`); the request it waits on, once it
    does."""
    (cluster.folder / f"{item}.json").write_text(json.dumps(body or plan(item)))
    started = cluster.plangate("run", f"{item}.json", "--thread", item)
    assert started.returncode == 0, started.stderr
    assert "queued" in started.stdout
    cluster.wait_for(f"{item} to wait", lambda: cluster.state(item)[1] == 1)
    return waiting(cluster, item)


def waiting(cluster: Cluster, thread: str) -> dict[str, Any]:
    """The request `thread` waits on, with its interrupt id."""
    snapshot = cluster.reader.get_state({"configurable": {"thread_id": thread}})
    return {"interrupt_id": snapshot.interrupts[0].id, **snapshot.interrupts[0].value}


def expiries(cluster: Cluster, thread: str) -> list[tuple[str, datetime]]:
    """(status, deadline) of `thread`'s scheduled expiries, oldest first."""
    return [
        (status, parse_iso(args["deadline"]))
        for task, status, args in jobs(cluster, thread)
        if task == EXPIRE_AT
    ]


def approve(cluster: Cluster, thread: str, request: dict[str, Any]) -> None:
    """lee approves `request` through the run service, which queues the decision."""
    service = RunService(cluster.url, project=Project.load(cluster.folder))
    try:
        body = {"decision": "approve", "approver": "lee", "interrupt_id": request["interrupt_id"]}
        assert service.decide(thread, body).get("status") == "queued"
    finally:
        service.close()


def timeouts(cluster: Cluster, thread: str) -> list[dict[str, Any]]:
    events = get_trace(cluster.reader, {"configurable": {"thread_id": thread}})
    return [dict(e) for e in events if e["type"] == "approval_timeout"]


def test_a_request_expires_at_its_deadline_once_by_its_scheduled_job(cluster: Cluster) -> None:
    """Nobody decides: the request closes within moments of its deadline (the hourly sweep
    never ran meanwhile), `approval_timeout` once, the execute step never runs, the run ends.
    The same expiry fired again afterwards, and the sweep and the expiry fired together on a
    second run, close nothing more."""
    clear_of_the_hourly_sweep()
    request = start(cluster, "dl-0")
    deadline = parse_iso(request["expires_at"])
    cluster.wait_for("dl-0 to finish", lambda: "result" in cluster.state("dl-0")[0], 30)
    (closed,) = timeouts(cluster, "dl-0")
    late = (parse_iso(closed["ts"]) - deadline).total_seconds()
    assert 0 <= late <= CLOSE_WITHIN, late
    assert sweeps_started(cluster, deadline, parse_iso(closed["ts"])) == 0
    assert cluster.query("SELECT 1 FROM calls WHERE thread = 'dl-0' AND step = 'commit'") == []
    assert closings(cluster, "dl-0") == ["succeeded"]
    expiries = [status for task, status, _ in jobs(cluster, "dl-0") if task == EXPIRE_AT]
    assert expiries == ["succeeded"]

    # Fired again after the run ended: nothing waits, nothing is queued.
    app = worker_app(Project.load(cluster.folder))
    with app.open():
        app.tasks[EXPIRE_AT].defer(thread="dl-0", deadline=request["expires_at"])
    cluster.wait_for(
        "the second expiry to run",
        lambda: [s for t, s, _ in jobs(cluster, "dl-0") if t == EXPIRE_AT][-1] == "succeeded",
    )
    assert closings(cluster, "dl-0") == ["succeeded"]
    assert len(timeouts(cluster, "dl-0")) == 1

    # The sweep and a second expiry due at the same moment as the scheduled one.
    request = start(cluster, "dl-1")
    due = parse_iso(request["expires_at"]) + timedelta(milliseconds=1)
    with app.open():
        app.tasks[EXPIRE_AT].configure(schedule_at=due).defer(
            thread="dl-1", deadline=request["expires_at"]
        )
        app.tasks["plangate.sweep_expired"].configure(schedule_at=due).defer(timestamp=0)
    cluster.wait_for("dl-1 to finish", lambda: "result" in cluster.state("dl-1")[0], 30)

    def ended() -> bool:  # an expiry still to do when the run ended was cancelled by its job
        return all(
            status == "succeeded" or (task == EXPIRE_AT and status == "cancelled")
            for task, status, _ in jobs(cluster, "dl-1")
        )

    cluster.wait_for("every job of dl-1 to end", ended)
    time.sleep(1)  # a closing queued last would be seen by now
    assert len(timeouts(cluster, "dl-1")) == 1
    assert cluster.state("dl-1")[0]["result"]["steps"][1]["status"] == "expired"
    assert ended()


def twice(item: str) -> dict[str, Any]:
    """`plan(item)` with a second `execute` step after `commit`: a second request, asked once
    the first is decided, at a deadline of its own."""
    stage, commit, finish = plan(item)["steps"]
    again = {**commit, "id": "recommit", "depends_on": ["commit"]}
    return {"goal": f"commit {item} twice", "steps": [stage, commit, again, finish]}


def test_a_request_decided_before_its_deadline_leaves_no_expiry_behind(cluster: Cluster) -> None:
    """Two requests, one after the other, each approved at once (the service queues the
    decision): the job that applies the first cancels the expiry scheduled at its deadline and
    schedules the second's; the one that applies the second cancels that one. The run finishes
    approved, and no expiry of it is left to do. One fired after the deadline all the same (a
    cancel that lost to it) queues nothing, and no `approval_timeout` is ever written."""
    thread = "dl-ok"
    first = start(cluster, thread, twice(thread))
    due = parse_iso(first["expires_at"])
    cluster.wait_for("its expiry", lambda: expiries(cluster, thread) == [("todo", due)])
    approve(cluster, thread, first)
    cluster.wait_for(
        "the second request",
        lambda: cluster.state(thread)[1] == 1 and waiting(cluster, thread)["step_id"] == "recommit",
        30,
    )
    second = waiting(cluster, thread)
    then = parse_iso(second["expires_at"])
    assert then > due
    cluster.wait_for(
        "the first expiry cancelled, the second's scheduled",
        lambda: expiries(cluster, thread) == [("cancelled", due), ("todo", then)],
    )
    approve(cluster, thread, second)
    cluster.wait_for(f"{thread} to finish", lambda: "result" in cluster.state(thread)[0], 30)
    cluster.wait_for(
        "its jobs to end",
        lambda: (
            [s for t, s, _ in jobs(cluster, thread) if t == "plangate.go_on"] == ["succeeded"] * 3
        ),
    )
    assert expiries(cluster, thread) == [("cancelled", due), ("cancelled", then)]
    result = cluster.state(thread)[0]["result"]
    assert result["status"] == "success", result
    assert [a["approver"] for a in result["approvals"]] == ["lee", "lee"]

    # A cancel that lost to the expiry: it fires after the deadline and closes nothing.
    app = worker_app(Project.load(cluster.folder))
    with app.open():
        app.tasks[EXPIRE_AT].configure(schedule_at=then + timedelta(milliseconds=200)).defer(
            thread=thread, deadline=second["expires_at"]
        )
    cluster.wait_for(
        "the late expiry to fire",
        lambda: [s for s, _ in expiries(cluster, thread)][-1] == "succeeded",
        TIMEOUT + 15,
    )
    assert datetime.now(timezone.utc) > then
    assert timeouts(cluster, thread) == []
    assert closings(cluster, thread) == []
    assert [task for task, _, _ in jobs(cluster, thread)].count("plangate.go_on") == 3
