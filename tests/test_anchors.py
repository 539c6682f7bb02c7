"""Anchors: each run's trace head kept outside the database it audits. Deleting a thread's
last checkpoints whole (for every depth on a SQLite file, and on PostgreSQL) takes its events
and its recorded head back together, which the hash chain alone cannot see: with anchors
`plangate verify` fails and names the first missing event, without them it says that such a
rollback cannot be detected. Anchors are signed under PLANGATE_AUDIT_KEY, go to OpenTelemetry
log records too, and still verify after `prune`. An approver rewritten in the stored result
(what `show` prints) fails `verify`, and so does a four-eyes approval no chained event records."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _support import CallLog, counting_tools, plangate, thread
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command

from plangate import (
    build_graph,
    declare_action,
    load_profile,
    open_checkpointer,
    prune_runs,
    verify_trace,
)
from plangate.audit import verify_decisions
from plangate.project import Project, ProjectError, reader, template
from plangate.runs.anchors import FileAnchors, OtelAnchors, read_anchor_file
from plangate.runs.history import get_trace

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo"
PLAN = str(EXAMPLES / "sales_followup.yaml")
KEY = {"PLANGATE_AUDIT_KEY": "a key compliance keeps"}
SERDE = JsonPlusSerializer()


def anchored_project(folder: Path) -> Path:
    """The demo project, with its runs anchored to `anchors.jsonl` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plangate.yaml").write_text(
        template("demo") + "anchors: {file: anchors.jsonl}\n", encoding="utf-8"
    )
    return folder


def sent_and_approved(cwd: Path, *db: str, env: dict[str, str] | None = None) -> str:
    """The demo's email, paused for approval by one `plangate` process and sent by another
    once `lee` approved it: its thread id."""
    started = plangate(cwd, "run", PLAN, *db, "--profile", "smb", env=env)
    assert started.returncode == 3, started.stdout + started.stderr
    thread_id = started.stdout.split("Thread ", 1)[1].split()[0]
    approved = plangate(cwd, "approve", thread_id, *db, "--approver", "lee", env=env)
    assert approved.returncode == 0, approved.stdout + approved.stderr
    return thread_id


def sqlite_checkpoints(path: Path, thread_id: str) -> list[str]:
    """The ids of a thread's checkpoints, newest first."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
            "ORDER BY checkpoint_id DESC",
            (thread_id,),
        ).fetchall()
    conn.close()
    return [row[0] for row in rows]


def roll_back_sqlite(path: Path, thread_id: str, depth: int) -> None:
    """Delete the last `depth` checkpoints of a thread with their writes, as someone with access
    to the file could (or a restore of an older copy does)."""
    newest = sqlite_checkpoints(path, thread_id)[:depth]
    with sqlite3.connect(path) as conn:
        for checkpoint_id in newest:
            conn.execute("DELETE FROM checkpoints WHERE checkpoint_id = ?", (checkpoint_id,))
            conn.execute("DELETE FROM writes WHERE checkpoint_id = ?", (checkpoint_id,))
    conn.close()


def roll_back_postgres(url: str, thread_id: str, depth: int) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        newest = [
            row[0]
            for row in conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s "
                "AND checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT %s",
                (thread_id, depth),
            ).fetchall()
        ]
        for table in ("checkpoints", "checkpoint_writes"):
            conn.execute(
                f"DELETE FROM {table} WHERE thread_id = %s AND checkpoint_id = ANY(%s)",
                (thread_id, newest),
            )


def last_seq(events: list[dict[str, Any]]) -> int:
    return max((e["seq"] for e in events), default=-1)


def last_stored(db: str, thread_id: str) -> int:
    """The `seq` of the last event stored for a thread in database `db`."""
    graph = reader(db)
    try:
        return last_seq(get_trace(graph, thread(thread_id)))
    finally:
        graph.checkpointer.conn.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("env", [{}, KEY], ids=["sha256", "hmac"])
def test_a_rollback_of_whole_checkpoints_fails_verify_at_every_depth(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = anchored_project(tmp_path / "project")
    thread_id = sent_and_approved(folder, env=env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    project = Project.load(folder)
    config = thread(thread_id)
    original = folder / "plangate.db"
    full = last_stored(str(original), thread_id)
    depths = range(1, len(sqlite_checkpoints(original, thread_id)))

    unseen_by_the_chain = []
    for depth in depths:
        copy = tmp_path / f"rolled-back-{depth}.db"
        shutil.copy(original, copy)
        roll_back_sqlite(copy, thread_id, depth)
        graph = reader(str(copy))
        left = last_seq(get_trace(graph, config))

        check = verify_trace(graph, config, anchors=project.anchors)

        assert not check.ok, depth
        if verify_trace(graph, config, anchors=[]).ok:  # what the chain alone says
            unseen_by_the_chain.append(depth)
            assert check.found_by == "anchors"
            assert check.seq == left + 1
            assert check.problem.startswith(  # type: ignore[union-attr]
                f"events seq {left + 1}..{full} are missing: the database was rolled back"
            ), check.problem
    # The chain holds after most rollbacks: only the anchors find them.
    assert len(unseen_by_the_chain) > len(depths) / 3

    # `plangate verify` says the same, on one of them, and without anchors says what it cannot see.
    depth = unseen_by_the_chain[0]
    copy = tmp_path / f"rolled-back-{depth}.db"
    left = last_stored(str(copy), thread_id)
    verified = plangate(folder, "verify", thread_id, "--db", str(copy), env=env)
    assert verified.returncode == 7, verified.stdout + verified.stderr
    assert f"events seq {left + 1}..{full} are missing: the database was rolled back" in (
        verified.stdout
    )
    assert verified.stderr == ""
    # A run of a project without anchors: the same rollback, and `verify` says what it cannot see.
    unanchored = tmp_path / "unanchored"
    unanchored.mkdir()
    blind_thread = sent_and_approved(unanchored, env=env)
    roll_back_sqlite(unanchored / "plangate.db", blind_thread, depth)
    blind = plangate(unanchored, "verify", blind_thread, env=env)
    assert blind.returncode == 0, blind.stdout + blind.stderr
    assert "No anchors: a rollback of whole checkpoints" in blind.stdout
    assert "cannot be detected" in blind.stdout


def test_a_rollback_on_postgres_fails_verify(tmp_path: Path, postgres_url: str) -> None:
    folder = anchored_project(tmp_path / "project")
    thread_id = sent_and_approved(folder, "--db", postgres_url)
    assert plangate(folder, "verify", thread_id, "--db", postgres_url).returncode == 0
    full = last_stored(postgres_url, thread_id)

    for _ in range(4):  # one more checkpoint gone each time
        roll_back_postgres(postgres_url, thread_id, 1)
        left = last_stored(postgres_url, thread_id)

        verified = plangate(folder, "verify", thread_id, "--db", postgres_url)

        assert verified.returncode == 7, verified.stdout + verified.stderr
        assert (
            f"events seq {left + 1}..{full} are missing" in verified.stdout
            or f"its last event (seq {left}): events after it are missing" in verified.stdout
        ), verified.stdout


def test_a_run_deleted_whole_is_still_found_by_its_anchors(tmp_path: Path) -> None:
    folder = anchored_project(tmp_path)
    thread_id = sent_and_approved(folder)
    full = last_stored(str(folder / "plangate.db"), thread_id)
    roll_back_sqlite(
        folder / "plangate.db",
        thread_id,
        len(sqlite_checkpoints(folder / "plangate.db", thread_id)),
    )

    verified = plangate(folder, "verify", thread_id)

    assert verified.returncode == 7, verified.stdout + verified.stderr
    assert verified.stdout.startswith(
        f"Run {thread_id}: no event of it is stored, but events seq 0..{full} are missing"
    )
    # A thread nobody ever ran is still unknown, in one line.
    unknown = plangate(folder, "verify", "nope")
    assert unknown.returncode == 1
    assert "nope" in unknown.stderr


def test_anchors_are_signed_under_the_audit_key(tmp_path: Path) -> None:
    folder = anchored_project(tmp_path)
    thread_id = sent_and_approved(folder, env=KEY)
    anchors = read_anchor_file(folder / "anchors.jsonl")
    assert anchors
    assert all(a["signed"] and a["signature"] for a in anchors)
    assert plangate(folder, "verify", thread_id, env=KEY).returncode == 0

    # Someone who can append to the file, but does not hold the key, adds an anchor.
    forged = {**anchors[-1], "seq": anchors[-1]["seq"] + 5, "signature": "0" * 64}
    with (folder / "anchors.jsonl").open("a", encoding="utf-8") as file:
        file.write(json.dumps(forged) + "\n")

    verified = plangate(folder, "verify", thread_id, env=KEY)
    assert verified.returncode == 7
    assert f"the anchor of seq {forged['seq']}" in verified.stdout
    assert "is not signed with this PLANGATE_AUDIT_KEY" in verified.stdout


def test_anchors_as_opentelemetry_log_records(tmp_path: Path) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    db = tmp_path / "runs.db"
    graph = build_graph(
        {"crm.lookup": lambda text: text},
        profile="technical",
        checkpointer=open_checkpointer(f"sqlite:///{db}"),
        anchors=OtelAnchors(provider),
    )
    steps = [{"id": f"s{i}", "tool": "crm.lookup", "args": {"text": str(i)}} for i in range(3)]
    graph.invoke({"plan": {"goal": "look", "steps": steps}}, thread("t"))

    records = exporter.get_finished_logs()
    assert records
    assert {r.instrumentation_scope.name for r in records} == {"plangate.anchors"}
    bodies = [str(r.log_record.body) for r in records]
    assert records[-1].log_record.attributes["plangate.anchor.seq"] == last_seq(  # type: ignore[index]
        get_trace(graph, thread("t"))
    )
    # An export of the records' bodies is what `verify --anchors` reads.
    export = tmp_path / "exported.jsonl"
    export.write_text("".join(body + "\n" for body in bodies), encoding="utf-8")
    given = ("--db", str(db), "--anchors", str(export))
    assert plangate(tmp_path, "verify", "t", *given).returncode == 0
    roll_back_sqlite(db, "t", 2)
    verified = plangate(tmp_path, "verify", "t", *given)
    assert verified.returncode == 7, verified.stdout + verified.stderr

    # A project whose anchors go to log records cannot read them back: it says what to do.
    (tmp_path / "plangate.yaml").write_text("anchors: {otel: true}\n", encoding="utf-8")
    assert isinstance(Project.load(tmp_path).anchors, OtelAnchors)
    started = plangate(tmp_path, "run", PLAN, "--profile", "technical")
    thread_id = started.stdout.split("Thread ", 1)[1].split()[0]
    refused = plangate(tmp_path, "verify", thread_id)
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "--anchors FILE" in refused.stderr


def test_anchors_still_verify_after_prune(tmp_path: Path, log: CallLog) -> None:
    from datetime import timedelta

    anchors = FileAnchors(tmp_path / "anchors.jsonl")
    saver = open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}")
    graph = build_graph(
        counting_tools(log, "crm.lookup", "email.send"),
        profile="smb",
        checkpointer=saver,
        anchors=anchors,
    )
    steps = [{"id": f"s{i}", "tool": "crm.lookup", "args": {"text": str(i)}} for i in range(10)]
    send = {"id": "send", "tool": "email.send", "action": "execute", "args": {"text": "hi"}}
    graph.invoke({"plan": {"goal": "g", "steps": [*steps, send]}}, thread("p"))
    graph.invoke(Command(resume={"decision": "approve", "approver": "ops"}), thread("p"))

    report = prune_runs(graph, finished_before=timedelta(0))

    assert report.runs
    assert report.runs[0].checkpoints_removed > 0
    check = verify_trace(graph, thread("p"))  # the graph's own anchors
    assert check.ok, check.problem
    assert check.anchors == len(anchors.read("p")) > 1


def test_an_approver_rewritten_in_the_stored_result_fails_verify(tmp_path: Path) -> None:
    folder = anchored_project(tmp_path)
    thread_id = sent_and_approved(folder)
    db = folder / "plangate.db"
    latest = sqlite_checkpoints(db, thread_id)[0]
    with sqlite3.connect(db) as conn:
        kind, blob = conn.execute(
            "SELECT type, checkpoint FROM checkpoints WHERE checkpoint_id = ?", (latest,)
        ).fetchone()
        checkpoint = SERDE.loads_typed((kind, blob))
        step = next(s for s in checkpoint["channel_values"]["result"]["steps"] if s["approval"])
        step["approval"]["approver"] = "eve"
        conn.execute(
            "UPDATE checkpoints SET type = ?, checkpoint = ? WHERE checkpoint_id = ?",
            (*SERDE.dumps_typed(checkpoint), latest),
        )
    conn.close()

    shown = plangate(folder, "show", thread_id)
    assert "approve by eve" in shown.stdout  # what a person reads
    verified = plangate(folder, "verify", thread_id)
    assert verified.returncode == 7, verified.stdout + verified.stderr
    assert "the run records approve by eve, the chain (event seq" in verified.stdout
    assert ") approve by lee" in verified.stdout
    assert f"step {step['step_id']}:" in verified.stdout


@pytest.mark.parametrize(
    "anchors", ["{}", "{file: a.jsonl, otel: true}", "{path: a.jsonl}"], ids=str
)
def test_an_anchors_entry_must_name_one_sink(tmp_path: Path, anchors: str) -> None:
    (tmp_path / "plangate.yaml").write_text(f"anchors: {anchors}\n", encoding="utf-8")
    with pytest.raises(ProjectError, match=r"plangate.yaml: anchors"):
        Project.load(tmp_path)


def test_every_four_eyes_approval_recorded_must_be_chained(tmp_path: Path) -> None:
    @declare_action(action="execute", irreversible=True)
    def wire(amount: int) -> str:
        """Wire money."""
        return f"wired {amount}"

    profile = load_profile("smb").model_copy(update={"approvals_required": {"high": 2}})
    graph = build_graph(
        {"bank.wire": wire},
        profile=profile,
        checkpointer=open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}"),
    )
    plan = {"goal": "pay", "steps": [{"tool": "bank.wire", "args": {"amount": 900}}]}
    graph.invoke({"plan": plan}, thread("wire"))
    graph.invoke(
        Command(resume={"decision": "edit", "approver": "lee", "args": {"amount": 5}}),
        thread("wire"),
    )
    done = graph.invoke(Command(resume={"decision": "approve", "approver": "kim"}), thread("wire"))
    assert verify_trace(graph, thread("wire")).ok  # an approval of an edit is recorded as it
    events = get_trace(graph, thread("wire"))
    step = done["result"]["steps"][0]
    assert verify_decisions(events, [step]) is None

    step["approval"]["approvals"][0]["approver"] = "eve"  # a second pair of eyes made up

    assert verify_decisions(events, [step]) == (
        None,
        "step step-1: the run records an approval by eve no event records",
    )
