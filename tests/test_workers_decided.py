"""What the doors show while a worker is yet to act, with workers on (real `plangate worker`,
`plangate serve` and `plangate mcp` processes on the real PostgreSQL): a start queued is
`queued` to MCP's `run_status` (which waits through it) and to the inbox's run view and page
(which follows it once a worker starts it); a decision queued is shown decided (`plangate
pending` and `show`, without the commands that would decide it again, the inbox, `run_status`),
and a second decision on the same request is refused in one line until a worker has applied
the first, also when both are sent at the same moment; a decision whose job failed leaves its
request decidable again, listed with the reason. Workers here run only while a test wants one."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _support import plangate
from playwright.sync_api import Browser, Page, expect
from test_inbox import ServeProcess, start_serve
from test_jobs import worker
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

TOKEN = "decided-token"


def project_file(url: str) -> str:
    """A project with the ledger's tools and workers, on the database at `url`."""
    return (
        f"db: {url}\nprofile: smb\ntools: [{LEDGER_TOOLS}]\n"
        "workers: {heartbeat_seconds: 0.5, stall_seconds: 3, retries: 2, "
        "retry_backoff_seconds: 1, sweep_every_seconds: 1}\n"
    )


@dataclass
class Doors:
    """The project's cluster (no worker until a test starts one) and its inbox, served."""

    cluster: Cluster
    served: ServeProcess

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.request(method, self.served.url + path, headers=headers, timeout=30, **kwargs)

    def listed(self, thread: str) -> dict[str, Any]:
        (found,) = [
            a for a in self.api("GET", "/api/pending").json()["approvals"] if a["thread"] == thread
        ]
        return dict(found)

    def jobs(self, thread: str) -> list[tuple[int, str]]:
        return [
            (row[0], row[1])
            for row in self.cluster.query(
                "SELECT id, status::text FROM procrastinate_jobs WHERE lock = %s ORDER BY id",
                f"plangate:{thread}",
            )
        ]

    def cli(self, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """`plangate ARGS` in `folder`, with the ledger the tools write to."""
        return plangate(folder, *args, env={"PLANGATE_TEST_LEDGER": self.cluster.url})

    def waiting_run(self, thread: str, folder: Path | None = None) -> None:
        """Start `thread`'s run (in `folder`'s project, default the cluster's) with a worker,
        until it waits for its approval; then no worker is left running."""
        folder = folder or self.cluster.folder
        (folder / f"{thread}.json").write_text(json.dumps(plan(thread)))
        started = self.cli(folder, "run", f"{thread}.json", "--thread", thread)
        assert started.returncode == 0, started.stderr
        with worker(self.cluster):
            self.cluster.wait_for(f"{thread} to wait", lambda: self.cluster.state(thread)[1] == 1)


@pytest.fixture(scope="module")
def doors(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    folder = tmp_path_factory.mktemp("decided")
    with_ledger_tools(folder)
    (folder / "plangate.yaml").write_text(project_file(postgres_url))
    make_ledger(postgres_url)
    with working(Cluster(folder, postgres_url), workers=0) as cluster:
        served = start_serve(folder, token=TOKEN)
        try:
            yield Doors(cluster, served)
        finally:
            served.stop()


async def test_run_status_says_queued_until_a_worker_starts_the_run(doors: Doors) -> None:
    """No worker: `submit_plan` answers queued; `run_status` says `queued` with the start's job
    (not an unknown thread); with `wait_seconds` it waits through `queued` and answers once a
    worker, started meanwhile, has brought the run to its approval."""
    cluster = doors.cluster
    thread = "mq-0"
    async with stdio_session(cluster.folder, "--profile", "smb") as session:
        submitted = await call(session, "submit_plan", plan=plan(thread), thread=thread)
        assert submitted["status"] == "queued", submitted
        status = await call(session, "run_status", thread=thread)
        assert (status["status"], status["job"], status["steps"]) == (
            "queued",
            submitted["job"],
            [],
        )
        assert status["goal"] == f"commit {thread}"
        assert f"job {submitted['job']}: a plangate worker starts it" in status["next"]
        queued_at = time.monotonic()
        with ExitStack() as stack:

            async def later_a_worker() -> None:
                await anyio.sleep(2)
                stack.enter_context(worker(cluster))

            async with anyio.create_task_group() as group:
                group.start_soon(later_a_worker)
                moved = await call(session, "run_status", thread=thread, wait_seconds=60)
    assert time.monotonic() - queued_at >= 2  # it waited through `queued`
    assert moved["status"] == "waiting", moved
    assert [w["step_id"] for w in moved["waiting"]] == ["commit"]
    assert moved["waiting"][0]["queued"] is None


@contextmanager
def watched_page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own, closed after; fails if a script on it raised."""
    context = browser.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
    finally:
        context.close()
    assert errors == [], errors


def test_a_start_read_while_a_worker_makes_it_goes_queued_running_waiting(doors: Doors) -> None:
    """The run service's status read again and again while a worker takes a start and makes
    the run's first checkpoints (which hold its input before its plan): `queued`, then
    `running`, then `waiting`, and never an error or an unknown thread."""
    cluster = doors.cluster
    service = RunService(cluster.url, project=Project.load(cluster.folder))
    try:
        with worker(cluster):
            for n in range(3):
                thread = f"rq-{n}"
                assert service.start(plan=plan(thread), thread=thread).get("status") == "queued"
                seen: list[str] = []
                deadline = time.monotonic() + 30
                while seen[-1:] != ["waiting"]:
                    assert time.monotonic() < deadline, seen
                    status = service.status(thread)["status"]
                    if seen[-1:] != [status]:
                        seen.append(status)
                    time.sleep(0.005)
                assert seen in (["queued", "running", "waiting"], ["queued", "waiting"]), seen
    finally:
        service.close()


async def test_a_queued_decision_is_shown_decided_and_a_second_one_is_refused(
    doors: Doors,
) -> None:
    """No worker: lee's approval is queued. `pending` says `decision queued` with who and
    which job (and `--mine` leaves it out); the inbox lists it with `queued` (its run page
    too) and MCP's `run_status` says so. A second approval (the CLI, the inbox) is refused in
    one line and queues nothing. A worker then applies lee's, once."""
    cluster = doors.cluster
    thread = "dq-0"
    await anyio.to_thread.run_sync(doors.waiting_run, thread)
    approved = doors.cli(cluster.folder, "approve", thread, "--approver", "lee")
    assert approved.returncode == 0, approved.stderr
    ((_, _), (job, status)) = doors.jobs(thread)
    assert status == "todo"
    assert f"(job {job})" in approved.stdout

    pending = doors.cli(cluster.folder, "pending").stdout.splitlines()
    (line,) = [line for line in pending if line.startswith(f"{thread}  ")]
    assert line.endswith(f"decision queued: approve by lee, job {job}, a worker applies it")
    assert thread not in doors.cli(cluster.folder, "pending", "--mine").stdout
    shown = doors.cli(cluster.folder, "show", thread).stdout.splitlines()
    assert f"Decided (approve by lee, job {job}): queued, a worker applies it." in shown
    # Nothing to decide: no command that would be refused.
    assert "Resume with one of:" not in shown
    assert not [line for line in shown if "plangate approve" in line or "plangate reject" in line]
    assert shown[-1] == (
        "No decision to take now: a worker applies the queued one, then the run goes on."
    )
    said = {"job": job, "decision": "approve", "approver": "lee"}
    listed = doors.listed(thread)
    assert listed["queued"] == said
    assert doors.api("GET", f"/api/runs/{thread}").json()["waiting"][0]["queued"] == said
    async with stdio_session(cluster.folder, "--profile", "smb") as session:
        status = await call(session, "run_status", thread=thread)
    assert status["status"] == "waiting"
    assert status["waiting"][0]["queued"] == said

    again = doors.cli(cluster.folder, "approve", thread, "--approver", "ana")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"plangate: error: run {thread!r}: this request is decided already (approve by lee), "
        f"queued as job {job}: a worker applies it first (`plangate pending` shows it; if the "
        "run asks again, decide then)"
    ]
    assert "Approving" not in again.stdout
    through_inbox = doors.api(
        "POST",
        f"/api/runs/{thread}/decision",
        json={
            "decision": "reject",
            "reason": "no",
            "approver": "ana",
            "interrupt_id": listed["interrupt_id"],
        },
    )
    assert through_inbox.status_code == 409, through_inbox.text
    assert through_inbox.json()["error"] == "DecisionQueued"
    assert [j for j, _ in doors.jobs(thread)][-1] == job  # nothing more was queued

    with worker(cluster):
        cluster.wait_for(f"{thread} to finish", lambda: "result" in cluster.state(thread)[0], 30)
    result = cluster.state(thread)[0]["result"]
    assert (result["status"], result["approvals"][0]["approver"]) == ("success", "lee")
    assert [s for _, s in doors.jobs(thread)] == ["succeeded", "succeeded"]
    assert thread not in doors.cli(cluster.folder, "pending").stdout


def test_show_names_only_the_requests_still_to_decide(doors: Doors) -> None:
    """A run waiting on two requests at once (`order: dependencies`), no worker: lee's
    approval of one is queued. `show` says so under that step, and its decide commands name
    the other step only, with no `--all` (it would decide the queued one again)."""
    cluster = doors.cluster
    thread = "dq-two"
    commit = plan(thread)["steps"][1]
    steps = [{**commit, "depends_on": []}, {**commit, "id": "recommit", "depends_on": []}]
    body = {"goal": f"commit {thread} twice", "order": "dependencies", "steps": steps}
    (cluster.folder / f"{thread}.json").write_text(json.dumps(body))
    started = doors.cli(cluster.folder, "run", f"{thread}.json", "--thread", thread)
    assert started.returncode == 0, started.stderr
    with worker(cluster):
        cluster.wait_for(f"{thread} to wait", lambda: cluster.state(thread)[1] == 2)
    before = doors.cli(cluster.folder, "show", thread).stdout
    assert f"plangate approve {thread} --step STEP_ID --approver NAME" in before
    assert f"plangate approve {thread} --all --approver NAME" in before

    approved = doors.cli(cluster.folder, "approve", thread, "--step", "commit", "--approver", "lee")
    assert approved.returncode == 0, approved.stderr
    job = doors.jobs(thread)[-1][0]
    shown = doors.cli(cluster.folder, "show", thread).stdout
    lines = shown.splitlines()
    at = lines.index("Step 'commit':")
    assert f"Decided (approve by lee, job {job}): queued, a worker applies it." in lines[at:]
    hints = lines[lines.index("Still to decide: 'recommit'.") :]
    assert hints == [
        "Still to decide: 'recommit'.",
        "Resume with one of:",
        f"  plangate approve {thread} --step recommit --approver NAME",
        f"  plangate approve {thread} --step recommit --approver NAME --args '{{...}}'"
        "   (edit: the args replace all of them)",
        f"  plangate reject {thread} --step recommit --reason TEXT",
    ]
    assert "--step commit" not in shown
    assert "--all" not in shown


def test_the_run_view_of_a_queued_start_says_queued_until_a_worker_starts_it(
    doors: Doors, browser: Browser
) -> None:
    """No worker: a start through the inbox answers 202 `queued`. Its run view answers
    `queued` (not 404) with the start's job, no worker yet, and what happens next; a thread
    with nothing queued is still 404. The run page (its link followed before the inbox has
    loaded) shows it queued, then, once a worker has started it, the run itself, waiting for
    its approval, without a reload."""
    cluster = doors.cluster
    thread = "sq-ui"
    started = doors.api("POST", "/api/runs", json={"plan": plan(thread), "thread": thread})
    assert started.status_code == 202, started.text
    job = started.json()["job"]
    view = doors.api("GET", f"/api/runs/{thread}")
    assert view.status_code == 200, view.text
    shown = view.json()
    assert (shown["status"], shown["job"], shown["worker"]) == ("queued", job, None)
    assert (shown["goal"], shown["profile"], shown["steps"], shown["waiting"]) == (
        f"commit {thread}",
        "smb",
        [],
        [],
    )
    assert shown["next"] == (
        f"job {job} waits for a plangate worker to start the run; its steps show once one has"
    )
    assert shown["queued_at"] is not None
    nothing = doors.api("GET", "/api/runs/sq-nothing")
    assert nothing.status_code == 404, nothing.text
    assert nothing.json()["error"] == "UnknownThread"

    with watched_page(browser) as page:
        # The run's link followed at once, the inbox still loading: its reads coming back
        # late leave the run page alone.
        page.goto(f"{doors.served.url}/?token={TOKEN}")
        page.goto(f"{doors.served.url}/#/runs/{thread}")
        expect(page.locator("#run-status")).to_have_text("queued")
        expect(page.locator("#queued")).to_contain_text(
            f"Job {job} waits for a plangate worker to start it."
        )
        expect(page.locator("#steps")).to_have_count(0)
        with worker(cluster):
            expect(page.locator("#run-status")).to_have_text("waiting", timeout=30_000)
        expect(page.locator("#queued")).to_have_count(0)
        expect(page.locator("#steps tbody tr")).to_have_count(3)
        banner = page.locator(".waiting-banner")
        expect(banner.get_by_role("button", name="Review & decide")).to_have_count(1)


def test_the_inbox_page_shows_a_queued_decision_without_decide_buttons(
    doors: Doors, browser: Browser
) -> None:
    """No worker: lee's approval is queued. The inbox's card says it is decided and queued,
    with who and which job, and offers no decision; so does the run page's banner."""
    cluster = doors.cluster
    thread = "dq-ui"
    doors.waiting_run(thread)
    approved = doors.cli(cluster.folder, "approve", thread, "--approver", "lee")
    assert approved.returncode == 0, approved.stderr
    job = doors.jobs(thread)[-1][0]
    said = f"Decided (approve by lee, job {job}): queued, a worker applies it."
    with watched_page(browser) as page:
        page.goto(f"{doors.served.url}/?token={TOKEN}")
        card = page.locator(f'.card[data-thread="{thread}"]')
        expect(card.locator(".queued-line")).to_have_text(said)
        expect(card.get_by_role("button", name="Review & decide")).to_have_count(0)
        page.goto(f"{doors.served.url}/#/runs/{thread}")
        banner = page.locator(".waiting-banner")
        expect(banner.locator(".queued-line")).to_have_text(said)
        expect(banner.get_by_role("button", name="Review & decide")).to_have_count(0)


def test_a_decision_whose_job_failed_leaves_its_request_decidable(
    doors: Doors, tmp_path: Path
) -> None:
    """A run of a second project on the same database; lee's decision is queued, then its
    project file goes away and the worker's job fails (a refusal: no retry). The request is
    listed again, not queued, with the failure (`pending`, the inbox), and lee's second
    decision, once the file is back, is queued and applied."""
    cluster = doors.cluster
    other = tmp_path / "other"
    other.mkdir()
    with_ledger_tools(other)
    (other / "plangate.yaml").write_text(project_file(cluster.url))
    thread = "df-0"
    doors.waiting_run(thread, other)
    first = doors.cli(other, "approve", thread, "--approver", "lee")
    assert first.returncode == 0, first.stderr
    job = doors.jobs(thread)[-1][0]
    (other / "plangate.yaml").rename(other / "away.yaml")
    try:
        with worker(cluster):
            cluster.wait_for(
                "the decision to fail", lambda: doors.jobs(thread)[-1] == (job, "failed")
            )
    finally:
        (other / "away.yaml").rename(other / "plangate.yaml")

    pending = doors.cli(cluster.folder, "pending").stdout.splitlines()
    at = next(i for i, line in enumerate(pending) if line.startswith(f"{thread}  "))
    assert "expires " in pending[at]
    failed = pending[at + 2]
    assert failed.startswith(f"    the last decision failed (approve by lee, job {job}): ")
    assert "ProjectError" in failed
    assert failed.endswith("; decide again")
    shown = doors.cli(cluster.folder, "show", thread).stdout
    assert f"The last decision (approve by lee, job {job}) failed: ProjectError: " in shown
    listed = doors.listed(thread)
    assert "queued" not in listed
    assert listed["last_failed"]["job"] == job
    assert listed["last_failed"]["error"].startswith("ProjectError: ")

    second = doors.cli(other, "approve", thread, "--approver", "lee")
    assert second.returncode == 0, second.stderr
    with worker(cluster):
        cluster.wait_for(f"{thread} to finish", lambda: "result" in cluster.state(thread)[0], 30)
    assert cluster.state(thread)[0]["result"]["status"] == "success"
    assert [s for _, s in doors.jobs(thread)] == ["succeeded", "failed", "succeeded"]
    shutil.rmtree(other)


def test_two_decisions_sent_together_queue_one(doors: Doors) -> None:
    """Two people approve the same request at the same moment, no worker running: one
    decision is queued, the other is refused as its twin; the run has one decision job."""
    thread = "dq-2"
    doors.waiting_run(thread)
    folder = doors.cluster.folder
    with ThreadPool(2) as pool:
        done = pool.map(
            lambda who: doors.cli(folder, "approve", thread, "--approver", who), ["lee", "ana"]
        )
    assert sorted(d.returncode for d in done) == [0, 1], [d.stderr for d in done]
    (refused,) = [d for d in done if d.returncode == 1]
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "this request is decided already" in refused.stderr
    assert [s for _, s in doors.jobs(thread)] == ["succeeded", "todo"]
