"""The inbox with workers on: `plangate serve` (a real process) over a PostgreSQL project with
`workers:` checks each start, decision and Resume at once, then queues one `go_on` job and
answers 202 `queued`; `plangate worker` processes go on with the runs. Every tool call runs in a
worker's process, never in the server's; a bad decision is refused at once and queues nothing;
the inbox watches no expiry (the workers' sweep does)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_identity import ANA, BEN
from test_inbox import ServeProcess, start_serve
from test_mcp_face import call, stdio_session
from test_workers_queue import (
    LEDGER_TOOLS,
    Cluster,
    make_ledger,
    plan,
    with_ledger_tools,
    working,
)

from plangate.project import Project
from plangate.runs.service import RunService

TOKEN = "inbox-workers-token"


@dataclass
class QueuedInbox:
    """The project's cluster (its database, its workers) and its inbox, served."""

    cluster: Cluster
    served: ServeProcess

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.request(method, self.served.url + path, headers=headers, timeout=30, **kwargs)

    def waiting(self, thread: str) -> dict[str, Any]:
        """The approval request `thread` waits on, as the inbox lists it, once it waits."""
        found: list[dict[str, Any]] = []

        def listed() -> bool:
            approvals = self.api("GET", "/api/pending").json()["approvals"]
            found[:] = [a for a in approvals if a["thread"] == thread]
            return bool(found)

        self.cluster.wait_for(f"{thread} to wait", listed)
        return found[0]

    def pids(self, thread: str) -> set[int]:
        return {
            row[0] for row in self.cluster.query("SELECT pid FROM calls WHERE thread = %s", thread)
        }

    @property
    def worker_pids(self) -> set[int]:
        return {w.pid for w in self.cluster.workers}


@pytest.fixture(scope="module")
def queued(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueuedInbox]:
    folder = tmp_path_factory.mktemp("inbox-workers")
    with_ledger_tools(folder)
    # No sweep of stopped runs: a run stopped mid-way stays stopped until the inbox's Resume.
    (folder / "plangate.yaml").write_text(
        f"db: {postgres_url}\nprofile: smb\ntools: [{LEDGER_TOOLS}]\n"
        "workers: {heartbeat_seconds: 0.5, stall_seconds: 3, retries: 2, "
        "retry_backoff_seconds: 1, sweep_every_seconds: 1, sweep_stopped: false}\n"
    )
    make_ledger(postgres_url)
    with working(Cluster(folder, postgres_url), workers=2) as cluster:
        served = start_serve(folder, token=TOKEN)
        try:
            yield QueuedInbox(cluster, served)
        finally:
            served.stop()


def test_serve_says_workers_do_the_expiry_in_one_line(queued: QueuedInbox) -> None:
    """With workers on, `serve` says at startup that it queues and that the workers' sweep
    closes expired approvals, and does not claim to close them itself."""
    lines = queued.served.lines()
    said = [line for line in lines if line.startswith("Workers on:")]
    assert len(said) == 1, lines
    assert "closes expired approvals at their deadline" in said[0]
    assert not any(line.startswith("Approvals that expire") for line in lines), lines


def test_a_start_and_a_decision_are_queued_and_go_on_on_workers(queued: QueuedInbox) -> None:
    """POST /api/runs answers 202 queued with a job id; the run pauses on a worker; the decision
    answers 202 queued; the run finishes on a worker. Every call ran in a worker's process, none
    in the server's."""
    thread = "in-0"
    started = queued.api("POST", "/api/runs", json={"plan": plan(thread), "thread": thread})
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "queued", body
    assert isinstance(body["job"], int), body
    assert body["thread"] == thread
    request = queued.waiting(thread)
    decided = queued.api(
        "POST",
        f"/api/runs/{thread}/decision",
        json={
            "decision": "approve",
            "approver": "lee",
            "interrupt_id": request["interrupt_id"],
            "digest": request["digest"],
        },
    )
    assert decided.status_code == 202, decided.text
    assert decided.json()["status"] == "queued"
    assert decided.json()["job"] != body["job"]
    queued.cluster.wait_for(
        f"{thread} to finish", lambda: queued.cluster.state(thread)[0].get("result") is not None
    )
    assert queued.cluster.state(thread)[0]["result"]["status"] == "success"
    steps = queued.cluster.query("SELECT step FROM calls WHERE thread = %s ORDER BY id", thread)
    assert [s[0] for s in steps] == ["stage", "commit", "finish"]
    pids = queued.pids(thread)
    assert queued.served.process.pid not in pids
    assert pids <= queued.worker_pids, (pids, queued.worker_pids)
    jobs = queued.cluster.go_on_jobs(thread)
    assert sorted(s for _, s in jobs) == ["succeeded", "succeeded"], jobs


def test_a_bad_decision_is_refused_at_once_and_queues_nothing(queued: QueuedInbox) -> None:
    """A decision on another digest (422) or on a request already decided (409) is refused by
    the inbox itself: no job is queued for the run, and it still waits for the same request."""
    thread = "in-bad"
    started = queued.api("POST", "/api/runs", json={"plan": plan(thread), "thread": thread})
    assert started.status_code == 202, started.text
    request = queued.waiting(thread)
    queued.cluster.wait_for(
        "the start job to end",
        lambda: [s for _, s in queued.cluster.go_on_jobs(thread)] == ["succeeded"],
    )
    jobs = queued.cluster.go_on_jobs(thread)
    decision = {"decision": "approve", "approver": "lee", "interrupt_id": request["interrupt_id"]}
    wrong_digest = queued.api(
        "POST", f"/api/runs/{thread}/decision", json={**decision, "digest": "0" * 64}
    )
    assert wrong_digest.status_code in (409, 422), wrong_digest.text
    stale = queued.api(
        "POST", f"/api/runs/{thread}/decision", json={**decision, "interrupt_id": "0" * 32}
    )
    assert stale.status_code in (409, 422), stale.text
    waiting_resumed = queued.api("POST", f"/api/runs/{thread}/resume")
    assert waiting_resumed.status_code == 409, waiting_resumed.text
    assert sorted(queued.cluster.go_on_jobs(thread)) == sorted(jobs)
    assert queued.cluster.state(thread)[1] == 1
    assert queued.waiting(thread)["interrupt_id"] == request["interrupt_id"]


def test_resume_of_a_stopped_run_is_queued(queued: QueuedInbox) -> None:
    """A run whose process was killed mid-call shows `stopped`; the inbox's Resume answers 202
    queued, and a worker goes on with it: the cut step runs again with the same idempotency
    key, in a worker's process, and the run comes to its approval."""
    cluster = queued.cluster
    thread = "in-gone"
    cluster.kill_mid_call(thread)
    cluster.wait_for(
        f"{thread} to show stopped",
        lambda: queued.api("GET", f"/api/runs/{thread}").json()["status"] == "stopped",
    )
    assert cluster.go_on_jobs(thread) == []  # nothing sweeps it (sweep_stopped: false)
    resumed = queued.api("POST", f"/api/runs/{thread}/resume")
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["status"] == "queued"
    assert isinstance(resumed.json()["job"], int)
    queued.waiting(thread)
    calls = cluster.query("SELECT step, key, pid FROM calls WHERE thread = %s ORDER BY id", thread)
    assert [c[0] for c in calls] == ["stage", "stage"]
    assert calls[0][1] == calls[1][1]
    assert calls[1][2] in queued.worker_pids
    assert calls[1][2] != queued.served.process.pid
    assert [s for _, s in cluster.go_on_jobs(thread)] == ["succeeded"]


def test_a_verified_starter_s_signed_word_reaches_the_run_on_a_worker(
    queued: QueuedInbox, tmp_path: Path
) -> None:
    """The run service (the inbox's and the MCP face's way in) starting a run for a verified
    person, with `identity:` and workers on, queues the project's signed word for them; the
    worker's run records them as verified, as a run started in the service's own process
    does (`self_approval` reads it), not as a bare name. A verified person's decision is
    queued signed, and the worker's run records it as theirs."""
    cluster = queued.cluster
    folder = tmp_path / "signed"
    folder.mkdir()
    with_ledger_tools(folder)
    (folder / "plangate.yaml").write_text(
        f"db: {cluster.url}\nprofile: smb\ntools: [{LEDGER_TOOLS}]\n"
        "identity: {signing_key: a-key-only-doors-and-graphs-hold}\n"
        "workers: {heartbeat_seconds: 0.5, stall_seconds: 3, sweep_every_seconds: 1}\n"
    )
    service = RunService(cluster.url, project=Project.load(folder))
    try:
        started = service.start(plan=plan("in-ana"), thread="in-ana", caller=ANA)
        assert started.get("status") == "queued", started
        cluster.wait_for("in-ana to wait", lambda: cluster.state("in-ana")[1] == 1)
        run = cluster.state("in-ana")[0]["run"]
        assert run["started_by"]["verified_by"] == "oidc", run["started_by"]
        assert run["started_by"]["subject"] == "u-ana"
        # Ben's decision, bound and signed by the service, is checked again on the worker.
        snapshot = cluster.reader.get_state({"configurable": {"thread_id": "in-ana"}})
        body = {"decision": "approve", "interrupt_id": snapshot.interrupts[0].id}
        decided = service.decide("in-ana", body, caller=BEN)
    finally:
        service.close()
    assert decided.get("status") == "queued", decided
    cluster.wait_for(
        "in-ana to finish", lambda: cluster.state("in-ana")[0].get("result") is not None, 30
    )
    result = cluster.state("in-ana")[0]["result"]
    assert result["status"] == "success", result
    (commit,) = [step for step in result["steps"] if step["step_id"] == "commit"]
    assert commit["approval"]["identity"] == BEN, commit["approval"]
    assert queued.pids("in-ana") <= queued.worker_pids


def test_expire_watch_leaves_expiry_to_the_workers_in_one_line(queued: QueuedInbox) -> None:
    """`plangate expire --watch` with workers on says, in one line, that the workers' sweep
    closes expired approvals, and exits 0 at once instead of watching (a second sweep would
    only queue the same closings again)."""
    cluster = queued.cluster
    done = subprocess.run(  # a watch that started would never end: the timeout fails it
        [sys.executable, "-m", "plangate", "expire", "--watch", "--every", "1s"],
        cwd=cluster.folder,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith("Workers on:"), lines
    assert "Watching" not in done.stdout


async def test_a_plan_submitted_through_mcp_is_queued_and_starts_on_a_worker(
    queued: QueuedInbox,
) -> None:
    """The MCP face goes through the same run service: `submit_plan` answers `queued` with the
    job's id, a worker starts the run, and its calls run in a worker's process."""
    cluster = queued.cluster
    thread = "in-mcp"
    async with stdio_session(cluster.folder, "--profile", "smb") as session:
        submitted = await call(session, "submit_plan", plan=plan(thread), thread=thread)
    assert submitted["status"] == "queued", submitted
    assert isinstance(submitted["job"], int), submitted
    assert "worker" in submitted["next"]
    cluster.wait_for(f"{thread} to wait", lambda: cluster.state(thread)[1] == 1)
    pids = queued.pids(thread)
    assert pids, "no call was made"
    assert pids <= queued.worker_pids, (pids, queued.worker_pids)
