"""Side effects happen once: every tool call carries an idempotency key, stable for its step
across restarts, and the demo's effects honour it, so a process killed mid-call and resumed by
another process sends one email, not two."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from _support import CallLog, Runner, plan_of, thread
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool

from plangate import demo_outbox, demo_toolkit
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY, idempotency_key


def test_keys_are_stable_per_step_and_distinct_across_steps_and_runs() -> None:
    """The same (run, step) always gives the same key; another step or run, another key."""
    assert idempotency_key("run-a", "send") == idempotency_key("run-a", "send")
    assert idempotency_key("run-a", "send") != idempotency_key("run-a", "draft")
    assert idempotency_key("run-a", "send") != idempotency_key("run-b", "send")


def test_a_tool_reads_its_key_from_the_run_config_and_the_trace_records_it(
    runner: Runner, log: CallLog
) -> None:
    """A tool taking `config: RunnableConfig` finds the key under `plangate_idempotency_key`;
    `tool_call_start` carries the same key; two plans on one thread get different keys."""

    def charge(amount: int, config: RunnableConfig) -> str:
        key = config["metadata"][IDEMPOTENCY_KEY]
        log.calls.append(("pay.charge", {"key": key}))
        return key

    tool = StructuredTool.from_function(charge, name="pay.charge", description="Charge.")
    assert "config" not in tool.args  # injected by LangChain, not an argument the plan fills
    graph = runner.graph([tool], profile="technical")
    plan = plan_of({"id": "pay", "tool": "pay.charge", "args": {"amount": 5}})
    first = runner.invoke(graph, {"plan": plan}, thread())["result"]
    second = runner.invoke(graph, {"plan": plan}, thread())["result"]
    keys = [call[1]["key"] for call in log.calls]
    assert keys == [first["steps"][0]["output"], second["steps"][0]["output"]]
    assert keys[0] != keys[1]
    starts = [e for e in runner.trace(graph, thread()) if e["type"] == "tool_call_start"]
    assert [e["data"]["idempotency_key"] for e in starts] == keys


CRASHING_RUN = """
import json, os, signal, sys
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from plangate import build_graph, declare_action, demo_toolkit, load_profile, open_checkpointer

mode, folder, kill_at = sys.argv[1], sys.argv[2], sys.argv[3]
demo = {tool.name: tool for tool in demo_toolkit(folder + "/outbox.db")}


def kill_once(where: str) -> None:
    marker = folder + "/killed"
    if kill_at == where and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


@declare_action(action="read")
def lookup(account: str, config: RunnableConfig) -> dict:
    with open(folder + "/lookups", "a") as calls:
        calls.write("called\\n")
    return demo["crm.lookup_account"].invoke({"account": account}, config=config)


def send(to: str, subject: str, body: str, config: RunnableConfig) -> dict:
    kill_once("before-send")  # the lookup is recorded; nothing is sent yet
    sent = demo["email.send"].invoke({"to": to, "subject": subject, "body": body}, config=config)
    kill_once("in-send")  # the email is out; the step never got recorded
    return sent


graph = build_graph(
    {"crm.lookup_account": lookup, "email.send": send},
    # Unattended: `technical` with the send exempt from the person it would wait for.
    profile="smb" if kill_at == "paused" else load_profile("technical").model_copy(
        update={"irreversible_exempt": ["email.send"]}
    ),
    checkpointer=open_checkpointer(folder + "/runs.db"),
)
config = {"configurable": {"thread_id": "crash"}}
plan = {"goal": "follow up", "steps": [
    {"id": "lookup", "tool": "crm.lookup_account", "args": {"account": "acme"}},
    {"id": "send", "tool": "email.send", "action": "execute", "depends_on": ["lookup"],
     "args": {"to": "ana.lopez@acme.example", "subject": "Renewal", "body": "Hi Ana"}},
]}
if mode == "start":
    graph.invoke({"plan": plan}, config)
    kill_once("paused")  # the run waits for an approval when its process dies
else:  # a new process picks the thread up from its last checkpoint
    resume = Command(resume={"decision": "approve", "approver": "lee"})
    out = graph.invoke(resume if mode == "approve" else None, config)
    print(json.dumps(out["result"]))
"""


def script_runner(
    source: str, folder: Path, setting: str
) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """`run(mode)`: `source`, saved in `folder`, run as a process of its own with the arguments
    `mode folder setting`."""
    script = folder / "script.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), mode, str(folder), setting],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


@pytest.mark.parametrize(
    ("kill_at", "then", "sent_before"),
    [
        pytest.param("in-send", "resume", 1, id="killed-mid-send"),
        pytest.param("before-send", "resume", 0, id="killed-between-steps"),
        pytest.param("paused", "approve", 0, id="killed-while-paused"),
    ],
)
def test_a_killed_run_resumed_by_another_process_acts_once(
    tmp_path: Path, kill_at: str, then: str, sent_before: int
) -> None:
    """A process SIGKILLed mid-send (after the email went out), between steps, or while paused
    for approval is finished by a new process: the outbox holds one email, the lookup ran once,
    and the result lists each step once, ok."""
    run = script_runner(CRASHING_RUN, tmp_path, kill_at)

    killed = run("start")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(demo_outbox(tmp_path / "outbox.db")) == sent_before

    resumed = run(then)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["status"] == "success"
    assert [(s["step_id"], s["status"]) for s in result["steps"]] == [
        ("lookup", "ok"),
        ("send", "ok"),
    ]
    outbox = demo_outbox(tmp_path / "outbox.db")
    assert [mail["to"] for mail in outbox] == ["ana.lopez@acme.example"]
    assert (tmp_path / "lookups").read_text().splitlines() == ["called"]
    with sqlite3.connect(tmp_path / "outbox.db") as conn:
        (key,) = conn.execute("SELECT idempotency_key FROM outbox").fetchone()
    assert key, "the send recorded its idempotency key"


def test_an_outbox_from_before_keys_is_upgraded_and_then_deduplicates(tmp_path: Path) -> None:
    """An outbox file written by a version without idempotency keys gains the column, keeps its
    rows, and a repeated key adds nothing."""
    path = tmp_path / "outbox.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE outbox (message_id TEXT, recipient TEXT, subject TEXT, body TEXT,"
            " sent_at TEXT);"
            "CREATE TABLE crm_updates (opportunity_id TEXT, stage TEXT, note TEXT,"
            " updated_at TEXT);"
            "INSERT INTO outbox VALUES ('msg-old', 'old@example.com', 's', 'b', '2026-01-01');"
        )
    send = {tool.name: tool for tool in demo_toolkit(path)}["email.send"]
    config: RunnableConfig = {"metadata": {IDEMPOTENCY_KEY: "key-1"}}
    for _ in range(2):
        send.invoke({"to": "new@example.com", "subject": "s", "body": "b"}, config=config)
    assert [mail["to"] for mail in demo_outbox(path)] == ["old@example.com", "new@example.com"]


WAVE_RUN = """
import json, os, signal, sqlite3, sys, time
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from plangate import build_graph, declare_action, demo_toolkit, load_profile, open_checkpointer

mode, folder, profile = sys.argv[1], sys.argv[2], sys.argv[3]
demo = {tool.name: tool for tool in demo_toolkit(folder + "/outbox.db")}
RECIPIENTS = ("ana", "ben", "cy")


def note(kind: str, text: str) -> None:
    with open(folder + "/" + kind, "a") as calls:
        calls.write(text + "\\n")


def reported(db: str) -> int:
    \"\"\"How many tasks of the wave have their writes stored.\"\"\"
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM writes WHERE channel = 'wave'").fetchone()[0]


@declare_action(action="read")
def lookup(account: str, config: RunnableConfig) -> dict:
    note("lookups", account)
    return demo["crm.lookup_account"].invoke({"account": account}, config=config)


def send(to: str, subject: str, body: str, config: RunnableConfig) -> dict:
    note("sends", to)
    sent = demo["email.send"].invoke({"to": to, "subject": subject, "body": body}, config=config)
    if mode == "start" and to.startswith("cy@") and profile == "technical":
        # The email is out; the lookup and the other two sends have reported (their writes
        # are stored), this call has not: the process dies with this step in flight.
        deadline = time.monotonic() + 30
        while reported(folder + "/runs.db") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
    return sent


# Under `technical` unattended: the send exempt from the person it would wait for.
rules = load_profile(profile)
if profile == "technical":
    rules = rules.model_copy(update={"irreversible_exempt": ["email.send"]})
graph = build_graph(
    {"crm.lookup_account": lookup, "email.send": send},
    profile=rules,
    checkpointer=open_checkpointer(folder + "/runs.db"),
)
config = {"configurable": {"thread_id": "wave"}}
steps = [{"id": "lookup", "tool": "crm.lookup_account", "args": {"account": "acme"}}]
steps += [
    {"id": f"send-{who}", "tool": "email.send", "action": "execute",
     "args": {"to": f"{who}@acme.example", "subject": "Renewal", "body": f"Hi {who}"}}
    for who in RECIPIENTS
]
# In data-flow order: the sends and the lookup make one wave.
plan = {"goal": "tell everyone", "steps": steps, "order": "dependencies"}
if mode == "start":
    graph.invoke({"plan": plan}, config)
    os.kill(os.getpid(), signal.SIGKILL)  # paused for approvals when its process dies
else:  # a new process picks the thread up from its last checkpoint
    waiting = graph.get_state(config).interrupts
    decisions = {i.id: {"decision": "approve", "approver": "lee"} for i in waiting}
    out = graph.invoke(Command(resume=decisions) if decisions else None, config)
    print(json.dumps(out["result"]))
"""


@pytest.mark.parametrize(
    ("profile", "sends_before"),
    [
        pytest.param("technical", 3, id="killed-with-a-send-in-flight"),
        pytest.param("smb", 0, id="killed-while-three-sends-wait"),
    ],
)
def test_a_wave_killed_in_flight_is_finished_by_another_process_acting_once(
    tmp_path: Path, profile: str, sends_before: int
) -> None:
    """Three sends and a lookup run as one wave. Killed with one send in flight (its email out,
    its step not recorded; the others recorded), or while all three sends wait for approval,
    the run is finished by a new process: one email per send, the lookup once, each step once
    and ok."""
    run = script_runner(WAVE_RUN, tmp_path, profile)

    killed = run("start")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(demo_outbox(tmp_path / "outbox.db")) == sends_before

    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert [(s["step_id"], s["status"]) for s in result["steps"]] == [
        ("lookup", "ok"),
        ("send-ana", "ok"),
        ("send-ben", "ok"),
        ("send-cy", "ok"),
    ]
    outbox = sorted(mail["to"] for mail in demo_outbox(tmp_path / "outbox.db"))
    assert outbox == ["ana@acme.example", "ben@acme.example", "cy@acme.example"]
    assert (tmp_path / "lookups").read_text().splitlines() == ["acme"]
    sends = sorted((tmp_path / "sends").read_text().splitlines())
    # Only the call in flight was made again, with its step's idempotency key.
    again = ["cy@acme.example"] if profile == "technical" else []
    assert sends == sorted(["ana@acme.example", "ben@acme.example", "cy@acme.example", *again])
