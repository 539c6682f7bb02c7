"""The audit trail: every trace event is chained to the one before it, across a pause, a
resume in another process and the runs of one thread; `plangate verify` finds an event edited,
removed or cut off in the database (SQLite and PostgreSQL), under a key when one is set; and
`plangate audit` exports decisions and events that can be checked again from the file alone."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest
from _support import plangate, unattended_profile
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from plangate.audit import verify_events
from plangate.tracing import chain_hash

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo"
SERDE = JsonPlusSerializer()
KEY = {"PLANGATE_AUDIT_KEY": "a key compliance keeps"}


class Database(Protocol):
    """Where a test edits the stored trace, as someone with access to the database could."""

    flag: str

    def rows(self) -> list[tuple[Any, str, bytes]]: ...
    def write(self, row: Any, kind: str, value: bytes) -> None: ...
    def delete(self, row: Any) -> None: ...


class SqliteFile:
    def __init__(self, path: Path) -> None:
        self.flag = str(path)
        self._path = path

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        with sqlite3.connect(self._path) as conn:
            yield conn
        conn.close()

    def rows(self) -> list[tuple[Any, str, bytes]]:
        with self._conn() as conn:
            return conn.execute(
                "SELECT rowid, type, value FROM writes WHERE channel = 'events'"
            ).fetchall()

    def write(self, row: Any, kind: str, value: bytes) -> None:
        with self._conn() as conn:
            conn.execute(
                "UPDATE writes SET type = ?, value = ? WHERE rowid = ?", (kind, value, row)
            )

    def delete(self, row: Any) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM writes WHERE rowid = ?", (row,))


class PostgresDatabase:
    _KEY = "thread_id, checkpoint_ns, checkpoint_id, task_id, idx"

    def __init__(self, url: str) -> None:
        self.flag = url
        self._url = url

    def rows(self) -> list[tuple[Any, str, bytes]]:
        import psycopg

        with psycopg.connect(self._url) as conn:
            found = conn.execute(
                f"SELECT {self._KEY}, type, blob FROM checkpoint_writes WHERE channel = 'events'"
            ).fetchall()
        return [(tuple(r[:5]), r[5], bytes(r[6])) for r in found]

    def write(self, row: Any, kind: str, value: bytes) -> None:
        import psycopg

        with psycopg.connect(self._url) as conn:
            conn.execute(
                f"UPDATE checkpoint_writes SET type = %s, blob = %s WHERE ({self._KEY}) = "
                "(%s, %s, %s, %s, %s)",
                (kind, value, *row),
            )

    def delete(self, row: Any) -> None:
        import psycopg

        with psycopg.connect(self._url) as conn:
            conn.execute(
                f"DELETE FROM checkpoint_writes WHERE ({self._KEY}) = (%s, %s, %s, %s, %s)", row
            )


def stored(db: Database) -> dict[int, dict[str, Any]]:
    """Every stored trace event, by `seq`."""
    return {e["seq"]: e for _, kind, value in db.rows() for e in SERDE.loads_typed((kind, value))}


def store(db: Database, events: dict[int, dict[str, Any]]) -> None:
    """Write `events` over the stored ones of the same `seq`; a stored event missing from
    `events` is deleted (and a batch left empty with it)."""
    for row, kind, value in db.rows():
        batch = [events[e["seq"]] for e in SERDE.loads_typed((kind, value)) if e["seq"] in events]
        if batch:
            db.write(row, *SERDE.dumps_typed(batch))
        else:
            db.delete(row)


def paused_then_approved(cwd: Path, db: str, env: dict[str, str] | None = None) -> str:
    """A demo run paused for approval by one `plangate` process and approved by another: its
    thread id."""
    plan = str(EXAMPLES / "sales_followup.yaml")
    started = plangate(cwd, "run", plan, "--db", db, "--profile", "smb", env=env)
    assert started.returncode == 3, started.stdout + started.stderr
    thread_id = started.stdout.split("Thread ", 1)[1].split()[0]
    approved = plangate(cwd, "approve", thread_id, "--db", db, "--approver", "lee", env=env)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    return thread_id


def verify(cwd: Path, db: Database, thread_id: str, env: dict[str, str] | None = None):
    return plangate(cwd, "verify", thread_id, "--db", db.flag, env=env)


def received(events: dict[int, dict[str, Any]]) -> int:
    return next(seq for seq, e in events.items() if e["type"] == "approval_received")


def test_a_run_paused_and_approved_in_another_process_verifies(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "runs.db")
    thread_id = paused_then_approved(tmp_path, db.flag)

    verified = verify(tmp_path, db, thread_id)

    assert verified.returncode == 0, verified.stderr
    events = stored(db)
    assert f"the hash chain of its {len(events)} events holds" in verified.stdout
    previous = ""
    for seq in sorted(events):  # each event chains to the one before, across both processes
        assert events[seq]["hash"] == chain_hash(previous, events[seq])
        previous = events[seq]["hash"]


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return SqliteFile(tmp_path / "runs.db")
    url: str = request.getfixturevalue("postgres_url")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # a clean database per test
        conn.execute("DROP TABLE IF EXISTS checkpoint_writes")
    return PostgresDatabase(url)


def test_an_approver_rewritten_in_the_database_breaks_the_chain_at_that_event(
    tmp_path: Path, database: Database
) -> None:
    thread_id = paused_then_approved(tmp_path, database.flag)
    events = stored(database)
    seq = received(events)
    events[seq]["data"]["approver"] = "mallory"

    store(database, events)

    trace = plangate(tmp_path, "trace", thread_id, "--db", database.flag).stdout
    assert '"approver": "mallory"' in trace  # the edit took
    verified = verify(tmp_path, database, thread_id)
    assert verified.returncode == 7, verified.stdout + verified.stderr
    assert f"breaks at event seq {seq}: its hash does not match" in verified.stdout
    assert f"{seq} events before it match" in verified.stdout
    assert verified.stderr == ""


def test_an_edit_whose_own_hash_is_computed_again_breaks_at_the_next_event(
    tmp_path: Path,
) -> None:
    db = SqliteFile(tmp_path / "runs.db")
    thread_id = paused_then_approved(tmp_path, db.flag)
    events = stored(db)
    seq = received(events)
    events[seq]["data"]["approver"] = "mallory"
    events[seq]["hash"] = chain_hash(events[seq - 1]["hash"], events[seq])

    store(db, events)

    verified = verify(tmp_path, db, thread_id)
    assert verified.returncode == 7
    assert f"breaks at event seq {seq + 1}: its hash does not match" in verified.stdout


def test_a_removed_event_is_found(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "runs.db")
    thread_id = paused_then_approved(tmp_path, db.flag)
    events = stored(db)
    seq = received(events)

    store(db, {k: e for k, e in events.items() if k != seq})

    verified = verify(tmp_path, db, thread_id)
    assert verified.returncode == 7
    assert f"event seq {seq + 1}: follows seq {seq - 1}" in verified.stdout


def test_events_cut_off_the_end_are_found(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "runs.db")
    thread_id = paused_then_approved(tmp_path, db.flag)
    events = stored(db)

    store(db, {k: e for k, e in events.items() if k != max(events)})

    verified = verify(tmp_path, db, thread_id)
    assert verified.returncode == 7
    assert "the run's latest hash is not that of its last event" in verified.stdout


def test_under_a_key_a_chain_rewritten_without_it_does_not_verify(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "runs.db")
    thread_id = paused_then_approved(tmp_path, db.flag, env=KEY)
    assert verify(tmp_path, db, thread_id, env=KEY).returncode == 0
    unkeyed = verify(tmp_path, db, thread_id)
    assert unkeyed.returncode == 7
    assert "event seq 0:" in unkeyed.stdout
    assert "PLANGATE_AUDIT_KEY" in unkeyed.stdout

    # Someone without the key edits an approver and computes the rest of the chain again.
    events = stored(db)
    seq = received(events)
    events[seq]["data"]["approver"] = "mallory"
    for later in range(seq, max(events) + 1):
        events[later]["hash"] = chain_hash(events[later - 1]["hash"], events[later])
    store(db, events)

    keyed = verify(tmp_path, db, thread_id, env=KEY)
    assert keyed.returncode == 7
    assert f"breaks at event seq {seq}:" in keyed.stdout


def test_the_chain_goes_on_across_the_runs_of_one_thread(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "runs.db")
    plan = str(EXAMPLES / "sales_followup.yaml")
    profile = unattended_profile(tmp_path)
    first = plangate(tmp_path, "run", plan, "--db", db.flag, "--profile", profile)
    thread_id = first.stdout.split("Thread ", 1)[1].split()[0]
    again = plangate(
        tmp_path, "run", plan, "--db", db.flag, "--profile", profile, "--thread", thread_id
    )
    assert again.returncode == 0, again.stdout + again.stderr

    events = stored(db)
    starts = [seq for seq, e in events.items() if e["type"] == "plan_created"]
    assert len(starts) == 2
    second = starts[1]
    assert events[second]["hash"] == chain_hash(events[second - 1]["hash"], events[second])
    assert verify(tmp_path, db, thread_id).returncode == 0


def test_the_audit_export_holds_the_decision_and_an_intact_chain(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "runs.db")
    thread_id = paused_then_approved(tmp_path, db.flag)

    out = plangate(tmp_path, "audit", thread_id, "--db", db.flag, "-o", "audit.jsonl")

    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    header, *rest = records
    assert header["record"] == "header"
    assert header["verified"] is True
    assert header["chain"] == "sha256"
    decisions = [r for r in rest if r["record"] == "decision"]
    assert [(d["step_id"], d["decision"], d["approver"]) for d in decisions] == [
        ("send", "approve", "lee")
    ]
    assert decisions[0]["shown"]["digest"]
    events = [r["event"] for r in rest if r["record"] == "event"]
    assert len(events) == header["events"]
    assert verify_events(events, recorded=header["head"]).ok  # checked from the file alone
    # The demo's email address is redacted in the export, as in the trace.
    assert "@" not in (tmp_path / "audit.jsonl").read_text()


def test_verify_of_an_unknown_thread_is_one_line(tmp_path: Path) -> None:
    plan = str(EXAMPLES / "sales_followup.yaml")
    profile = unattended_profile(tmp_path)
    assert plangate(tmp_path, "run", plan, "--db", "runs.db", "--profile", profile).returncode == 0

    out = plangate(tmp_path, "verify", "nope", "--db", "runs.db")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1
    assert "nope" in out.stderr
