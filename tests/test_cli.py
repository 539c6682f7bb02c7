"""The `plangate` command, run as a user runs it: a real process on a real SQLite file."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _support import KILLED_AT_CHECKPOINT, plangate, run_in, unattended_profile

from plangate import Plan, build_graph, demo_outbox, demo_toolkit, open_checkpointer
from plangate.cli import ExitCode
from plangate.project import RunSetup

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo"


def test_demo_pauses_then_approve_finishes_with_trace_and_signals(tmp_path: Path) -> None:
    """`run` pauses at the send, `approve` in a new process finishes it, one email goes out."""
    run = plangate(
        tmp_path,
        "run",
        str(EXAMPLES / "sales_followup.yaml"),
        "--profile",
        "smb",
        "--thread",
        "demo",
    )
    assert run.returncode == ExitCode.PAUSED, run.stderr
    assert "approval_requested" in run.stdout
    assert "Paused: step 'send' (email.send) needs approval." in run.stdout
    assert "risk:        high" in run.stdout
    assert "plangate approve demo --step send --approver NAME" in run.stdout
    assert "action:      execute, irreversible (from the tool's declaration)" in run.stdout
    assert demo_outbox(tmp_path / "plangate-outbox.db") == []

    pending = plangate(tmp_path, "pending")
    assert pending.returncode == 0
    assert pending.stdout.startswith("demo  step send (email.send)  high risk")

    approve = plangate(tmp_path, "approve", "demo", "--approver", "lee")
    assert approve.returncode == 0, approve.stderr
    assert "approval_received   send (email.send): approve by lee" in approve.stdout
    assert "Run success" in approve.stdout
    assert "Signals: success rate 100%" in approve.stdout
    sent = demo_outbox(tmp_path / "plangate-outbox.db")
    assert [mail["to"] for mail in sent] == ["ana.lopez@acme.example"]

    trace = plangate(tmp_path, "trace", "demo")
    events = [json.loads(line) for line in trace.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "plan_created"
    assert events[-1]["type"] == "plan_completed"
    assert events[-1]["data"]["status"] == "success"

    show = plangate(tmp_path, "show", "demo")
    assert "send    email.send          execute (tool)  ok" in show.stdout
    assert "approve by lee" in show.stdout
    assert plangate(tmp_path, "pending").stdout.strip() == "No run is waiting for approval."


def test_reject_with_reason_and_edit_with_args(tmp_path: Path) -> None:
    """`reject --reason` records the reason; `approve --args` runs the tool with the edit."""
    plan = str(EXAMPLES / "sales_followup.yaml")
    db = str(tmp_path / "runs" / "cli.db")
    assert (
        plangate(tmp_path, "run", plan, "--profile", "smb", "--thread", "a", "--db", db).returncode
        == ExitCode.PAUSED
    )
    rejected = plangate(
        tmp_path, "reject", "a", "--reason", "wrong tone", "--approver", "kim", "--db", db
    )
    assert rejected.returncode == ExitCode.PARTIAL, rejected.stderr
    assert "Run partial" in rejected.stdout
    assert "reject by kim; wrong tone" in rejected.stdout

    assert (
        plangate(tmp_path, "run", plan, "--profile", "smb", "--thread", "b", "--db", db).returncode
        == ExitCode.PAUSED
    )
    edit = {"to": "ana.lopez@acme.example", "subject": "Edited", "body": "Shorter."}
    edited = plangate(tmp_path, "approve", "b", "--args", json.dumps(edit), "--db", db)
    assert edited.returncode == 0, edited.stderr
    assert f"edit by {getpass.getuser()}" in edited.stdout  # no --approver: who ran it
    sent = demo_outbox(tmp_path / "runs" / "plangate-outbox.db")
    assert [mail["subject"] for mail in sent] == ["Edited"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a finished run `done` and a run `paused` at an approval."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "bad.yaml").write_text("steps: [{tool: 1}]\n")
    (folder / "empty.yaml").write_text("\n")
    (folder / "ok.yaml").write_text("steps: [{tool: crm.lookup_account, args: {account: acme}}]\n")
    assert plangate(folder, "run", "ok.yaml", "--thread", "done").returncode == 0
    plan = str(EXAMPLES / "sales_followup.yaml")
    paused = plangate(folder, "run", plan, "--profile", "smb", "--thread", "paused")
    assert paused.returncode == ExitCode.PAUSED
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.yaml"], "plangate: error: plan file 'missing.yaml' does not exist"),
        (["run", "."], "plan file '.' is a folder: name a YAML or JSON file in it"),
        (["run", "empty.yaml"], "expected a mapping with 'goal' and 'steps', got nothing"),
        (["reject", "paused", "--reason", " "], "--reason is empty (say why the step is"),
        (["run", "ok.yaml", "--db", "."], "database '.' is a folder"),
        (["run", "ok.yaml", "--db", "bad.yaml"], "database 'bad.yaml': file is not a database"),
        (["serve", "--db", "bad.yaml"], "database 'bad.yaml': file is not a database"),
        (["run", "ok.yaml", "--db", "mysql://h/d"], "unsupported checkpointer URL scheme 'mysql'"),
        (["run", "ok.yaml", "--thread", "paused"], "run 'paused' is waiting for an approval"),
        (["run", "bad.yaml"], "step 'step-1', field 'tool'"),
        (["run", "ok.yaml", "--profile", "nope"], "unknown profile 'nope'"),
        (["approve", "ghost"], "no run with thread id 'ghost'"),
        (["show", "ghost", "--db", "other.db"], "no database at other.db; pass --db PATH or"),
        (["approve", "done"], "run 'done' is not waiting for an approval"),
        (["approve", "paused", "--args", "{oops"], "--args is not valid JSON"),
        (["approve", "paused", "--args", '{"to": 5}'], "invalid edit for tool 'email.send': args"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    workspace: Path, args: list[str], message: str
) -> None:
    """Each user error prints one `plangate: error:` line on stderr and exits 1."""
    failed = plangate(workspace, *args)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert message in failed.stderr


def test_paused_run_survives_bad_requests(tmp_path: Path) -> None:
    """After a bad edit and bad JSON, the same paused run still approves and finishes."""
    plan = str(EXAMPLES / "sales_followup.yaml")
    run = plangate(tmp_path, "run", plan, "--profile", "smb", "--thread", "p")
    assert run.returncode == ExitCode.PAUSED
    assert plangate(tmp_path, "approve", "p", "--args", '{"to": 5}').returncode == 1
    assert plangate(tmp_path, "approve", "p", "--args", "[").returncode == 1
    done = plangate(tmp_path, "approve", "p", "--approver", "lee")
    assert done.returncode == 0, done.stderr
    assert "Run success" in done.stdout
    assert len(demo_outbox(tmp_path / "plangate-outbox.db")) == 1


def test_a_run_with_no_tool_calls_and_no_budget_limit_prints_plain_signals(
    tmp_path: Path,
) -> None:
    """No `None` in the summary: a run whose only step was blocked made no tool calls, and a
    profile without limits shows the calls made alone, with no share of a limit it lacks."""
    (tmp_path / "open.yaml").write_text("name: open\n")
    (tmp_path / "plan.yaml").write_text("steps: [{tool: nobody.has_this}]\n")
    run = plangate(tmp_path, "run", "plan.yaml", "--profile", "open.yaml")
    assert run.returncode == ExitCode.FAILED, run.stderr
    (signals,) = [line for line in run.stdout.splitlines() if line.startswith("Signals:")]
    assert "None" not in signals
    assert signals.endswith("no tool calls, approvals 0, budget 0 calls")


def test_resume_continues_a_run_that_stopped_mid_way(tmp_path: Path) -> None:
    """A run whose process stopped before a step (left with work to do and nothing to approve)
    is finished by `plangate resume`; resuming a finished or a paused run is a one-line error."""
    outbox = tmp_path / "plangate-outbox.db"
    profile = unattended_profile(tmp_path)
    graph = build_graph(
        demo_toolkit(outbox),
        profile=profile,
        checkpointer=open_checkpointer(str(tmp_path / "plangate.db")),
    )
    # What `plangate run` would have stored with the thread.
    config = RunSetup(profile=profile).config("cut")
    plan = Plan.from_file(EXAMPLES / "sales_followup.yaml")
    # Stopping before the first tool call leaves the thread as a killed process would.
    graph.invoke({"plan": plan}, config, interrupt_before=["tool_exec"])
    assert graph.get_state(config).next == ("tool_exec",)
    assert demo_outbox(outbox) == []

    resumed = plangate(tmp_path, "resume", "cut")
    assert resumed.returncode == 0, resumed.stderr
    assert "Run success" in resumed.stdout
    assert len(demo_outbox(outbox)) == 1

    finished = plangate(tmp_path, "resume", "cut")
    assert finished.returncode == 1
    assert "run 'cut' has finished" in finished.stderr
    paused_plan = str(EXAMPLES / "sales_followup.yaml")
    assert (
        plangate(tmp_path, "run", paused_plan, "--profile", "smb", "--thread", "p").returncode
        == ExitCode.PAUSED
    )
    paused = plangate(tmp_path, "resume", "p")
    assert paused.returncode == 1
    assert "run 'p' is waiting for an approval" in paused.stderr


@pytest.mark.parametrize("kill_at", [3, 4, 5, 6, 7, 8])
def test_resume_finishes_a_run_killed_between_a_steps_writes_and_its_checkpoint(
    tmp_path: Path, kill_at: int
) -> None:
    """However far a killed run got, `show` says it has not finished and `resume` finishes it:
    every step once, one email."""
    plan = str(EXAMPLES / "sales_followup.yaml")
    run = ("run", plan, "--profile", unattended_profile(tmp_path), "--thread", "cut")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_CHECKPOINT, *run],
        cwd=tmp_path,
        env={**os.environ, "KILL_AT": str(kill_at)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    show = plangate(tmp_path, "show", "cut")
    assert show.returncode == 0, show.stderr
    assert "Run cut has not finished" in show.stdout
    resumed = plangate(tmp_path, "resume", "cut")
    assert resumed.returncode == 0, resumed.stderr
    assert "Run success" in resumed.stdout
    rows = [line.split() for line in resumed.stdout.splitlines()]
    assert [row[:5] for row in rows if row[:1] in (["lookup"], ["draft"], ["send"])] == [
        ["lookup", "crm.lookup_account", "read", "(tool)", "ok"],
        ["draft", "email.draft", "propose", "(tool)", "ok"],
        ["send", "email.send", "execute", "(tool)", "ok"],
    ]
    assert len(demo_outbox(tmp_path / "plangate-outbox.db")) == 1


def test_offline_demo_answers_from_mocks_and_sends_nothing(tmp_path: Path) -> None:
    """`run --offline` calls the packaged demo fixtures; `approve` in a new process stays
    offline; the outbox stays empty and every step says it was a mock."""
    run = plangate(
        tmp_path,
        "run",
        str(EXAMPLES / "sales_followup.yaml"),
        "--profile",
        "smb",
        "--offline",
        "--thread",
        "off",
    )
    assert run.returncode == ExitCode.PAUSED, run.stderr
    assert "profile smb, offline" in run.stdout
    assert (
        "adapter_fallback    lookup (crm.lookup_account): offline: its mock answers" in run.stdout
    )
    # In a network namespace of its own, with no interface up: nothing could reach out.
    offline = ("approve", "off", "--approver", "x")
    approve = run_in(tmp_path, "unshare", "--net", sys.executable, "-m", "plangate", *offline)
    assert approve.returncode == 0, approve.stderr
    assert "Run success" in approve.stdout
    assert approve.stdout.count("ok (mock)") == 3
    assert demo_outbox(tmp_path / "plangate-outbox.db") == []
    events = [json.loads(line) for line in plangate(tmp_path, "trace", "off").stdout.splitlines()]
    send = next(e for e in events if e["type"] == "tool_call_complete" and e["step_id"] == "send")
    assert send["data"]["output"] == {"message_id": "msg-offline", "status": "sent"}


def test_fixture_files_replace_the_demo_mocks_per_tool(tmp_path: Path) -> None:
    fixtures = tmp_path / "down.yaml"
    fixtures.write_text(
        "tools:\n  email.send:\n    - raise: {error: connection, message: smtp is down}\n"
    )
    run = plangate(
        tmp_path,
        "run",
        str(EXAMPLES / "sales_followup.yaml"),
        "--profile",
        unattended_profile(tmp_path),
        "--offline",
        "--fixtures",
        str(fixtures),
    )
    assert run.returncode == ExitCode.PARTIAL, run.stderr
    assert "draft   email.draft         propose (tool)  ok (mock)" in run.stdout
    assert "send    email.send          execute (tool)  error (mock)" in run.stdout
    assert "smtp is down" in run.stdout


def test_a_bad_fixture_file_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    fixtures = tmp_path / "bad.yaml"
    fixtures.write_text("tools:\n  email.send:\n    - match: {}\n")
    run = plangate(
        tmp_path, "run", str(EXAMPLES / "sales_followup.yaml"), "--fixtures", str(fixtures)
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"plangate: error: fixture file '{fixtures}': tools.email.send.0: give either output "
        "or raise (each case is {match: {...}, output: ...} or {match: {...}, raise: {...}})"
    ]
    assert "Thread" not in run.stdout


def test_steps_waiting_together_are_listed_and_decided_one_by_one_or_all_at_once(
    tmp_path: Path,
) -> None:
    """Ready sends of a plan in data-flow order pause together: `run`, `pending` and `show` list
    them, and the pause message offers `--all`. `approve --step` decides one (the run waits on
    the other), `--all` with `--step` is one line, and `approve --all` decides the rest: one
    email each."""
    plan = tmp_path / "two_sends.yaml"
    sends = [
        {
            "id": f"send-{who}",
            "tool": "email.send",
            "args": {"to": f"{who}@acme.example", "subject": "Renewal", "body": "Hi"},
        }
        for who in ("ana", "ben", "cy")
    ]
    flow = {"goal": "tell everyone", "steps": sends, "order": "dependencies"}
    plan.write_text(json.dumps(flow), encoding="utf-8")
    run = plangate(tmp_path, "run", str(plan), "--profile", "smb", "--thread", "two")
    assert run.returncode == ExitCode.PAUSED, run.stderr
    assert (
        "Paused: 3 steps need approval: 'send-ana' (email.send), 'send-ben' (email.send), "
        "'send-cy' (email.send)." in run.stdout
    )
    assert "plangate approve two --all --approver NAME" in run.stdout
    pending = plangate(tmp_path, "pending").stdout.splitlines()
    waiting = [line.split()[2] for line in pending if line.startswith("two ")]
    assert waiting == ["send-ana", "send-ben", "send-cy"]
    assert "waiting: 3 steps (send-ana, send-ben, send-cy) need approval" in (
        plangate(tmp_path, "runs").stdout
    )

    both = plangate(tmp_path, "approve", "two", "--all", "--step", "send-ana")
    assert both.returncode == ExitCode.USER_ERROR
    assert (
        both.stderr.strip()
        == "plangate: error: --all and --step exclude each other (give one of them)"
    )
    assert "Traceback" not in both.stderr

    one = plangate(tmp_path, "approve", "two", "--step", "send-ben", "--approver", "lee")
    assert one.returncode == ExitCode.PAUSED, one.stderr
    assert "Approving step 'send-ben'" in one.stdout
    assert "Paused: 2 steps need approval: 'send-ana' (email.send), 'send-cy'" in one.stdout

    rest = plangate(tmp_path, "approve", "two", "--all", "--approver", "kim")
    assert rest.returncode == ExitCode.SUCCESS, rest.stderr
    assert "Approving step 'send-ana'" in rest.stdout
    assert "Approving step 'send-cy'" in rest.stdout
    assert "Run success" in rest.stdout
    outbox = sorted(mail["to"] for mail in demo_outbox(tmp_path / "plangate-outbox.db"))
    assert outbox == ["ana@acme.example", "ben@acme.example", "cy@acme.example"]
    show = plangate(tmp_path, "show", "two").stdout
    assert "approve by lee" in show
    assert show.count("approve by kim") == 2


def test_error_rate_is_failed_calls_over_calls_and_steps_that_never_called_count_apart(
    tmp_path: Path,
) -> None:
    """One call that succeeded and three steps whose references named a key the output lacks
    printed "error rate 300%": those steps made no call. The rate is over calls now (0% here),
    and the steps that failed before calling are counted on their own."""
    lookup = {"id": "a", "tool": "crm.lookup_account", "args": {"account": "acme"}}
    broken = [
        {"id": key, "tool": "crm.lookup_account", "args": {"account": f"${{steps.a.output.{key}}}"}}
        for key in ("nope", "none", "missing")
    ]
    (tmp_path / "plan.json").write_text(json.dumps({"steps": [lookup, *broken]}))

    run = plangate(tmp_path, "run", "plan.json", "--profile", "technical")

    assert run.returncode == ExitCode.PARTIAL, run.stderr
    (signals,) = [line for line in run.stdout.splitlines() if line.startswith("Signals:")]
    assert signals.startswith(
        "Signals: success rate 25%, error rate 0% (3 failed before calling), tool latency p50 "
    ), signals


def test_an_edit_prints_the_new_args_and_a_refused_one_says_what_to_fix_in_cli_words(
    tmp_path: Path,
) -> None:
    """`approve --args` printed "Approving, edited," above the old args, and a refused edit
    ended "...in response_schema", a name a person at a terminal never sees. The new args are
    shown, the old ones as `was:`; a refusal names the fields and says to give --args again,
    and the run still waits for that."""
    plan = str(EXAMPLES / "sales_followup.yaml")
    assert plangate(tmp_path, "run", plan, "--profile", "smb", "--thread", "e").returncode == 3

    refused = plangate(tmp_path, "approve", "e", "--args", '{"to": 5, "cc": "x"}')

    assert refused.returncode == 1
    (error,) = refused.stderr.splitlines()
    assert error.startswith(
        "plangate: error: invalid edit for tool 'email.send': args.cc: email.send takes no "
        "argument 'cc' (to, subject, body); args.to: Input should be a valid string"
    ), error
    assert error.endswith(
        "(fix those args and give --args again: the run still waits; `plangate show THREAD` "
        "prints the args it was asked with)"
    ), error
    assert "response_schema" not in error
    new = {"to": "lee@acme.example", "subject": "Renewal", "body": "Hello"}
    edited = plangate(tmp_path, "approve", "e", "--args", json.dumps(new), "--approver", "lee")
    assert edited.returncode == 0, edited.stderr
    assert f"  args:        {json.dumps(new)}\n" in edited.stdout
    assert '  was:         {"to": "ana.lopez@acme.example", "subject": "Your renewal"' in (
        edited.stdout
    )
    assert [mail["to"] for mail in demo_outbox(tmp_path / "plangate-outbox.db")] == [new["to"]]
