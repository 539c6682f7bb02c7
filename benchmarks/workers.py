"""What the workers cost and give: runs going on in `plangate worker` processes on PostgreSQL.

    python -m benchmarks.workers [--workers 1 2 3] [--runs 20] [--db URL] [--out DIR]

For each count of `--workers` (processes of concurrency 2, heartbeat 0.5 s, stall limit 3 s,
sweeps every second), on a database of its own created on `--db`'s server (default:
`PLANGATE_TEST_POSTGRES_URL`, else the one `.ci/postgres` starts): `--runs` runs of a 3-step
plan (read, an execute that waits for one approval, read; each tool takes 200 ms and writes
its start to a ledger) are started and approved through the run service, which queues them.
Prints, in one table:

- decision to step start: from the moment the queue call of an approval returns to the
  ledger's start of the approved step, p50 and p95;
- runs per minute: from the first start to the last run's end (each run waits for its
  approval, given as soon as it is asked);
- recovery after kill -9: one more run's approved step is mid-call when its worker is
  killed with SIGKILL; the time until the step starts again (same idempotency key) on another
  worker. With one worker, a new one is started at the kill. Bounded below by the stall limit.

With `--out`, the table also goes to `workers.md` there. `python -m benchmarks` runs it when
that server answers (`reachable`), and says in one line that it skipped it otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "postgresql://plangate:plangate@127.0.0.1:5432/plangate"
SERVER = os.environ.get("PLANGATE_TEST_POSTGRES_URL", DEFAULT_DB)
"""The server each count of workers gets a database of its own on (`--db`'s default)."""
TOOLS = """
import os, time
import psycopg
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool
from plangate import declare_action
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY

URL = os.environ["PLANGATE_BENCH_LEDGER"]


def _tool(step, action):
    def call(item: str, config: RunnableConfig) -> dict:
        key = config["metadata"][IDEMPOTENCY_KEY]
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO calls (thread, step, key, pid, started) "
                "VALUES (%s, %s, %s, %s, clock_timestamp())",
                (item, step, key, os.getpid()),
            )
            time.sleep(0.2)
            conn.execute(
                "UPDATE calls SET ended = clock_timestamp() WHERE key = %s AND ended IS NULL "
                "AND pid = %s",
                (key, os.getpid()),
            )
        return {"step": step}

    tool = StructuredTool.from_function(call, name=f"work.{step}", description=step)
    return declare_action(tool, action=action)


toolkit = [_tool("stage", "read"), _tool("ship", "execute"), _tool("finish", "read")]
"""


def plan(item: str) -> dict[str, Any]:
    steps = ["stage", "ship", "finish"]
    return {
        "goal": f"ship {item}",
        "steps": [
            {"id": s, "tool": f"work.{s}", "args": {"item": item}, "depends_on": steps[:n][-1:]}
            for n, s in enumerate(steps)
        ],
    }


class Bench:
    """A project folder on a database of its own, its workers, and its run service."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder
        self.env = {
            **os.environ,
            "PLANGATE_BENCH_LEDGER": url,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p
            ),
        }
        self.workers: list[subprocess.Popen[bytes]] = []
        self._reader: Any = None

    def waiting(self, thread: str) -> list[Any]:
        """The requests `thread` waits on."""
        if self._reader is None:
            from plangate.project import reader

            self._reader = reader(self.url)
        return list(self._reader.get_state({"configurable": {"thread_id": thread}}).interrupts)

    def start_worker(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "plangate", "worker", "--concurrency", "2"],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.workers.append(process)
        return process

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.kill()
            process.wait(10)


@contextmanager
def bench(server: str, workers: int) -> Iterator[Bench]:
    """A fresh database on `server` with the ledger, a project on it, `workers` workers."""
    name = f"plangate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = server.rsplit("/", 1)[0] + f"/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bench_workers_tools.py").write_text(TOOLS)
        (folder / "plangate.yaml").write_text(
            f"db: {url}\nprofile: smb\ntools: [{{python: bench_workers_tools:toolkit}}]\n"
            "workers: {heartbeat_seconds: 0.5, stall_seconds: 3, retries: 3, "
            "retry_backoff_seconds: 1, sweep_every_seconds: 1}\n"
        )
        found = Bench(url, folder)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE calls (thread text, step text, key text, pid int, "
                "started timestamptz, ended timestamptz)"
            )
        try:
            for _ in range(workers):
                found.start_worker()
            yield found
        finally:
            found.stop()
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def measure(bench_: Bench, runs: int, timeout: float = 300) -> dict[str, float]:
    """Start `runs` runs, approve each as soon as it asks, then kill a worker mid-call."""
    from plangate.project import Project
    from plangate.runs.service import RunService

    os.environ["PLANGATE_BENCH_LEDGER"] = bench_.url
    sys.path.insert(0, str(bench_.folder))
    service = RunService(bench_.url, project=Project.load(bench_.folder))
    try:
        threads = [f"w-{n}" for n in range(runs)]
        began = time.time()
        for thread in threads:
            service.start(plan=plan(thread), thread=thread)
        decided = approve_as_asked(bench_, service, threads, timeout)
        ended = wait_for_ends(bench_, threads, timeout)
        starts = dict(bench_.query("SELECT thread, started FROM calls WHERE step = 'ship'"))
        latencies = [starts[t].timestamp() - at for t, at in decided.items()]
        recovery = recover(bench_, service, timeout)
    finally:
        service.close()
        sys.path.remove(str(bench_.folder))
    return {
        "p50": statistics.median(latencies) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
        "per_minute": runs / (ended - began) * 60,
        "recovery": recovery,
    }


def approve_as_asked(
    bench_: Bench, service: Any, threads: list[str], timeout: float
) -> dict[str, float]:
    """Approve each run once it waits; when each approval's queue call returned."""
    decided: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(decided) < len(threads):
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs never asked: {set(threads) - set(decided)}")
        for thread in threads:
            if thread in decided:
                continue
            waiting = bench_.waiting(thread)
            if waiting:
                body = {"decision": "approve", "approver": "lee", "interrupt_id": waiting[0].id}
                service.decide(thread, body)
                decided[thread] = time.time()
        time.sleep(0.02)
    return decided


def wait_for_ends(bench_: Bench, threads: list[str], timeout: float) -> float:
    """When the last of `threads` ended its last step (the ledger's clock, as epoch seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = bench_.query(
            "SELECT count(*), max(ended) FROM calls WHERE step = 'finish' AND ended IS NOT NULL"
        )
        count, last = rows[0]
        if count >= len(threads):
            return float(last.timestamp())
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} of {len(threads)} runs ended")
        time.sleep(0.05)


def recover(bench_: Bench, service: Any, timeout: float) -> float:
    """Seconds from a SIGKILL of the worker mid-call to the step's start on another worker."""
    thread = "w-kill"
    service.start(plan=plan(thread), thread=thread)
    approve_as_asked(bench_, service, [thread], timeout)
    deadline = time.monotonic() + timeout
    mid_call = "SELECT pid, key FROM calls WHERE thread = %s AND step = 'ship' AND ended IS NULL"
    while not (rows := bench_.query(mid_call, thread)):
        if time.monotonic() > deadline:
            raise TimeoutError("the approved step never started")
        time.sleep(0.005)
    pid, key = rows[0]
    (victim,) = [w for w in bench_.workers if w.pid == pid]
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()
    victim.wait(10)
    if all(w.poll() is not None for w in bench_.workers):
        bench_.start_worker()
    again = "SELECT started FROM calls WHERE key = %s AND pid <> %s"
    while not (started := bench_.query(again, key, pid)):
        if time.monotonic() > deadline:
            raise TimeoutError("the killed step never started again")
        time.sleep(0.02)
    return float(started[0][0].timestamp() - killed_at)


def reachable(url: str) -> bool:
    """Whether a PostgreSQL server answers at `url` (within 3 s)."""
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--db", default=SERVER, metavar="URL")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR")
    options = parser.parse_args(argv)
    table = [
        "| workers | decision to step start, p50 | p95 | runs per minute "
        "| recovery after kill -9 |",
        "|---:|---:|---:|---:|---:|",
    ]
    print(*table, sep="\n")
    for count in options.workers:
        with bench(options.db, count) as found:
            row = measure(found, options.runs)
        table.append(
            f"| {count} | {row['p50']:,.0f} ms | {row['p95']:,.0f} ms "
            f"| {row['per_minute']:,.0f} | {row['recovery']:.1f} s |"
        )
        print(table[-1], flush=True)
    if options.out is not None:
        options.out.mkdir(parents=True, exist_ok=True)
        (options.out / "workers.md").write_text("\n".join(table) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
