"""Many runs on several workers, with kills: real `plangate worker` processes (a short stall
limit) on the real PostgreSQL, the CLI and a `plangate serve` inbox queueing into them.

60 runs of a 4-step plan whose irreversible step needs two approvals (`approvals_required:
{high: 2}`), each run decided twice, once through `plangate approve` and once through the
inbox's `POST /api/runs/{thread}/decision` (with the interrupt id and digest of `GET
/api/runs/{thread}`); 10 of them under a profile whose requests last a few seconds, left to
expire; one started by a terminal `plangate run` (its `--db` spelled differently from the
project's, so it runs in the terminal), killed with SIGKILL mid-step and picked up by the
workers' sweep of stopped runs. Two workers are killed with SIGKILL on the way (the first while
a tool is mid-call) and a new one starts. Each tool call writes (thread, step, idempotency key,
pid, start, end) to a ledger and takes 200 ms.

Within the deadline: every run has a final result; the 10 late ones expired once; one effect
per idempotency key; no two calls of one thread overlap; no job is left to do, doing or failed.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_inbox import ServeProcess, start_serve
from test_workers_queue import Cluster, make_ledger, with_ledger_tools, working

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "many-workers-token"
RUNS = 60
LATE = 10  # the first LATE runs expire
THREADS = [f"m-{i:02d}" for i in range(RUNS)]
TERMINAL = THREADS[-1]  # started by a terminal `plangate run`, killed mid-step
BY_CLI = THREADS[LATE : LATE + 4]  # started by `plangate run` (queued); the rest by the inbox
DEADLINE = 150.0  # seconds, from the first start to the last job done
REQUEST_SECONDS = 6  # how long a late run's request lasts

# Each call appends a row to `calls` as it starts and stamps it as it ends (the database's
# clock, shared by every process); its effect goes to `effects` once per idempotency key.
TOOLS = (
    "{python: ledger_tools:toolkit, args: {seconds: 0.2, steps: [{name: stage, action: read}, "
    "{name: check, action: read}, {name: ship, action: execute, irreversible: true}, "
    "{name: finish, action: read}]}}"
)
STEPS = ["stage", "check", "ship", "finish"]


def plan(item: str) -> dict[str, Any]:
    """Four steps in a line; `ship` (execute, irreversible: high risk) needs two approvers."""
    steps: list[dict[str, Any]] = []
    for n, step in enumerate(STEPS):
        steps.append(
            {
                "id": step,
                "tool": f"work.{step}",
                "args": {"item": item},
                "depends_on": [STEPS[n - 1]] if n else [],
            }
        )
    return {"goal": f"ship {item}", "steps": steps}


def profile(name: str, timeout: float) -> str:
    return (
        f"name: {name}\nrequire_approval: [execute]\napprovals_required: {{high: 2}}\n"
        f"approval_timeout_seconds: {timeout}\non_expiry: halt\nredact: false\n"
    )


@dataclass
class Many:
    """The project's cluster (database, workers) and its inbox."""

    cluster: Cluster
    served: ServeProcess

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.request(method, self.served.url + path, headers=headers, timeout=60, **kwargs)

    def waiting(self, thread: str, approved: int) -> dict[str, Any]:
        """The request `thread` waits on once `approved` people approved it, from the inbox."""
        found: list[dict[str, Any]] = []

        def asked() -> bool:
            view = self.api("GET", f"/api/runs/{thread}")
            if view.status_code != 200:
                return False
            found[:] = [
                w
                for w in view.json()["waiting"]
                if len(w.get("approvals_so_far") or []) == approved
            ]
            return bool(found)

        self.cluster.wait_for(f"{thread} to wait ({approved} approved)", asked, DEADLINE)
        return found[0]


@pytest.fixture(scope="module")
def many(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Many]:
    folder = tmp_path_factory.mktemp("many")
    with_ledger_tools(folder)
    (folder / "profiles").mkdir()
    (folder / "profiles" / "pair.yaml").write_text(profile("pair", 86400))
    (folder / "profiles" / "late.yaml").write_text(profile("late", REQUEST_SECONDS))
    (folder / "plangate.yaml").write_text(
        f"db: {postgres_url}\nprofile: pair\nprofiles: profiles\n"
        f"tools: [{TOOLS}]\n"
        "workers: {heartbeat_seconds: 0.5, stall_seconds: 3, retries: 5, "
        "retry_backoff_seconds: 1, sweep_every_seconds: 1}\n"
    )
    for item in THREADS:
        (folder / f"{item}.json").write_text(json.dumps(plan(item)))
    make_ledger(postgres_url)
    with working(Cluster(folder, postgres_url), workers=3) as cluster:
        served = start_serve(folder, token=TOKEN)
        try:
            yield Many(cluster, served)
        finally:
            served.stop()


def kill_terminal_run(cluster: Cluster) -> tuple[int, Any]:
    """Start TERMINAL's run in a terminal (its --db names the project's database in other
    words, so the door runs it itself, not queued) and kill it with SIGKILL mid-call; its pid
    and when it died."""
    other_spelling = f"{cluster.url}?application_name=terminal"
    command = ["run", f"{TERMINAL}.json", "--thread", TERMINAL, "--db", other_spelling]
    terminal = subprocess.Popen(
        [sys.executable, "-m", "plangate", *command],
        cwd=cluster.folder,
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        mid_call = (  # a call started in the last 100 ms: it has 100 ms or more to go
            "SELECT step FROM calls WHERE thread = %s AND ended IS NULL AND pid = %s "
            "AND started > clock_timestamp() - interval '100 ms'"
        )
        deadline = time.monotonic() + 60
        while not cluster.query(mid_call, TERMINAL, terminal.pid):
            assert terminal.poll() is None, "the terminal run ended before it was caught mid-call"
            assert time.monotonic() < deadline, "the terminal run never called a tool"
            time.sleep(0.01)
    finally:
        terminal.kill()
        terminal.wait(10)
    ((killed_at,),) = cluster.query("SELECT clock_timestamp()")
    return terminal.pid, killed_at


def start(many: Many, item: str) -> None:
    """Start `item`'s run: through `plangate run` (BY_CLI), else the inbox; the late ones under
    the profile whose requests expire soon."""
    if item in BY_CLI:
        done = many.cluster.plangate("run", f"{item}.json", "--thread", item)
        assert done.returncode == 0, done.stderr
        assert "queued" in done.stdout, done.stdout
        return
    body: dict[str, Any] = {"plan": plan(item), "thread": item}
    if THREADS.index(item) < LATE:
        body["profile"] = "late"
    started = many.api("POST", "/api/runs", json=body)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued", started.text


def decide(many: Many, n: int, item: str) -> None:
    """Approve `item`'s request twice, by lee then ana: one through `plangate approve`, the
    other through the inbox (which goes first alternates with `n`)."""
    for approved, approver in enumerate(("lee", "ana")):
        request = many.waiting(item, approved)
        assert request["approvals_required"] == 2, request
        if (n + approved) % 2 == 0:
            done = many.cluster.plangate("approve", item, "--approver", approver)
            assert done.returncode == 0, done.stderr
            assert "queued" in done.stdout, done.stdout
            continue
        answer = many.api(
            "POST",
            f"/api/runs/{item}/decision",
            json={
                "decision": "approve",
                "approver": approver,
                "interrupt_id": request["interrupt_id"],
                "digest": request["digest"],
            },
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "queued", answer.text


def kill_two_workers(cluster: Cluster) -> tuple[dict[int, Any], str]:
    """Kill a worker while a tool is mid-call in it, then another; start a new one. When each
    died, by pid, and the idempotency key of the call cut short."""
    by_pid = {process.pid: process for process in cluster.workers}
    in_flight = (  # a call started in the last 100 ms: it has 100 ms or more to go
        "SELECT pid, key FROM calls WHERE ended IS NULL AND pid = ANY(%s) "
        "AND started > clock_timestamp() - interval '100 ms'"
    )
    rows: list[tuple[Any, ...]] = []

    def mid_call_on_a_worker() -> bool:
        rows[:] = cluster.query(in_flight, list(by_pid))
        return bool(rows)

    cluster.wait_for("a call in flight on a worker", mid_call_on_a_worker, DEADLINE)
    deaths: dict[int, Any] = {}
    for pid in (rows[0][0], next(p for p in by_pid if p != rows[0][0])):
        by_pid[pid].send_signal(signal.SIGKILL)
        by_pid[pid].wait(10)
        ((deaths[pid],),) = cluster.query("SELECT clock_timestamp()")
        time.sleep(2)
    cluster.start_worker()
    return deaths, rows[0][1]


def assert_results(cluster: Cluster) -> None:
    """The decided runs ran all four steps, `ship` approved by lee and ana; the late ones'
    request expired once (one record, one `approval_timeout`), and nothing after it ran."""
    for item in THREADS[LATE:]:
        result = cluster.state(item)[0]["result"]
        assert result["status"] == "success", (item, result)
        assert [s["status"] for s in result["steps"]] == ["ok"] * 4, (item, result)
        (ship,) = [s for s in result["steps"] if s["step_id"] == "ship"]
        assert [a["approver"] for a in ship["approval"]["approvals"]] == ["lee", "ana"], ship
    for item in THREADS[:LATE]:
        result = cluster.state(item)[0]["result"]
        statuses = {s["step_id"]: s["status"] for s in result["steps"]}
        assert statuses["ship"] == "expired", (item, result)
        assert statuses["finish"] != "ok", (item, result)
        assert result["status"] != "success", (item, result)
        assert [a["decision"] for a in result["approvals"]] == ["expired"], (item, result)
        assert cluster.trace(item).count("approval_timeout") == 1, item
        assert cluster.query("SELECT 1 FROM calls WHERE thread = %s AND step = 'ship'", item) == []


def assert_ledger(cluster: Cluster, deaths: dict[int, Any], cut_key: str, terminal: int) -> None:
    """One effect per idempotency key; the calls cut by a kill ran again elsewhere, after it;
    no two calls of one thread at once (a cut call ended when its process died)."""
    calls = cluster.query(
        "SELECT thread, step, key, pid, started, ended FROM calls ORDER BY started"
    )
    effects = cluster.query("SELECT key, thread, step FROM effects")
    assert len(effects) == (RUNS - LATE) * 4 + LATE * 2
    assert len({(t, s) for _, t, s in effects}) == len(effects)
    assert {k for k, _, _ in effects} == {c[2] for c in calls}
    first_victim = next(iter(deaths))  # the worker killed mid-call
    again = [c for c in calls if c[2] == cut_key and c[5] is not None]
    assert len(again) == 1, [c for c in calls if c[2] == cut_key]
    assert again[0][3] != first_victim
    assert again[0][4] > deaths[first_victim]
    terminal_calls = [c for c in calls if c[0] == TERMINAL]
    assert any(c[5] is None and c[3] == terminal for c in terminal_calls), terminal_calls
    assert {c[3] for c in terminal_calls if c[5] is not None} - {terminal}, terminal_calls
    for item in THREADS:
        mine = [c for c in calls if c[0] == item]
        for before, after in itertools.pairwise(mine):
            end = before[5] if before[5] is not None else deaths[before[3]]
            assert end <= after[4], (item, before, after)


def test_sixty_runs_on_three_workers_through_kills_act_once_and_all_end(many: Many) -> None:
    """The module's scenario, end to end, within DEADLINE (about 90 s on a busy 2-core
    machine)."""
    cluster = many.cluster
    began = time.monotonic()
    terminal, terminal_killed_at = kill_terminal_run(cluster)
    with ThreadPool(4) as pool:
        pool.map(lambda item: start(many, item), THREADS[:-1])
        decisions = pool.starmap_async(
            lambda n, item: decide(many, n, item), list(enumerate(THREADS[LATE:]))
        )
        deaths, cut_key = kill_two_workers(cluster)
        decisions.get(DEADLINE)

    def left() -> float:
        return max(5.0, DEADLINE - (time.monotonic() - began))

    cluster.wait_for(
        "every run to end",
        lambda: all("result" in cluster.state(item)[0] for item in THREADS),
        left(),
    )
    cluster.wait_for(
        "no job left to do",
        lambda: not [j for j in cluster.go_on_jobs() if j[1] in ("todo", "doing")],
        left(),
    )
    took = time.monotonic() - began
    assert took < DEADLINE, took
    assert_results(cluster)
    assert_ledger(cluster, {**deaths, terminal: terminal_killed_at}, cut_key, terminal)
    assert [j for j in cluster.go_on_jobs() if j[1] in ("todo", "doing", "failed")] == []
    print(f"{RUNS} runs on workers through two kills in {took:.1f} s")
