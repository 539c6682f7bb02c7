"""plangate served by LangGraph's own server (`langgraph dev` reading `langgraph.json`), driven
through the official `langgraph_sdk` client: approvals are LangGraph interrupts resumed with a
`Command`, trace events stream on `custom`, and plangate's usage errors reach the client by name.

One server per module. It runs in a temporary folder, with `--config` naming the project's
`langgraph.json`: the in-memory runtime writes its `.langgraph_api/` files, and this test its log,
into the working directory, and neither belongs in the project.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import free_port
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from plangate import demo_outbox

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = Path(sys.executable).with_name("langgraph")
GRAPH_ID = "plangate"
STARTUP_SECONDS = 90

# `langgraph-cli[inmem]` installs on 3.10 without langgraph-api, which needs 3.11.
pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="langgraph dev (langgraph-api) needs Python 3.11+"
)


@dataclass(frozen=True)
class Server:
    url: str
    outbox: Path
    log: Path


def _server_env(outbox: Path, profile: str) -> dict[str, str]:
    """The caller's environment, offline: no LangSmith tracing, no CLI analytics, no check for
    a newer langgraph-api, no license or control-plane key (whose metadata loop calls home)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "LANGSMITH_API_KEY",
            "LANGCHAIN_API_KEY",
            "LANGGRAPH_CLOUD_LICENSE_KEY",
            "LANGSMITH_CONTROL_PLANE_API_KEY",
        }
    }
    return {
        **env,
        "PLANGATE_PROFILE": profile,
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "PYTHONUNBUFFERED": "1",
    }


def _langgraph_dev(port: int) -> list[str]:
    return [
        str(LANGGRAPH),
        "dev",
        "--config",
        str(ROOT / "langgraph.json"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-browser",
        "--no-reload",
    ]


def _wait_until_ok(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(
        f"langgraph dev did not answer /ok in {STARTUP_SECONDS}s:\n{log.read_text()[-4000:]}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("langgraph-dev")
    # The built-in demo (no plangate.yaml here) keeps its outbox in the server's folder.
    outbox, log = workdir / "plangate-outbox.db", workdir / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _langgraph_dev(port),
            cwd=workdir,
            env=_server_env(outbox, "smb"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped whole in teardown
        )
    try:
        _wait_until_ok(url, proc, log)
        yield Server(url=url, outbox=outbox, log=log)
    finally:
        _stop(proc)


@pytest.fixture
def client(server: Server) -> SyncLangGraphClient:
    return get_sync_client(url=server.url, api_key=None)


@pytest.fixture
def plan() -> dict[str, Any]:
    """The README's demo: look Acme up, draft an email, send it (the send waits, under smb)."""
    loaded: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples" / "sales_followup.yaml").read_text(encoding="utf-8")
    )
    return loaded


def _thread(client: SyncLangGraphClient) -> str:
    return str(client.threads.create()["thread_id"])


def _pending(client: SyncLangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    """The interrupts a thread waits on, as `threads.get` reports them (by task id)."""
    interrupts = client.threads.get(thread_id)["interrupts"] or {}
    return [item for items in interrupts.values() for item in items]


def _emails(server: Server) -> list[dict[str, Any]]:
    return demo_outbox(server.outbox) if server.outbox.exists() else []


def test_a_run_pauses_at_the_send_and_finishes_when_approved(
    server: Server, client: SyncLangGraphClient, plan: dict[str, Any]
) -> None:
    """The approval is a LangGraph interrupt seen in the thread and its state; resuming with
    `Command(resume=decision)` runs the send once and writes `result`."""
    emails_before = len(_emails(server))
    thread_id = _thread(client)

    client.runs.wait(thread_id, GRAPH_ID, input={"plan": plan})

    assert client.threads.get(thread_id)["status"] == "interrupted"
    (pending,) = _pending(client, thread_id)
    request = pending["value"]
    assert request["type"] == "approval_request"
    assert (request["tool"], request["step_id"], request["risk"]) == ("email.send", "send", "high")
    assert "cannot be undone" in request["consequence"]
    assert request["args"]["to"] == "ana.lopez@acme.example"  # the approver sees the real one
    assert (request["action"], request["action_source"]) == ("execute", "tool")
    state = client.threads.get_state(thread_id)
    assert state["next"] == ["approval_interrupt"]
    (task,) = state["tasks"]
    assert [i["id"] for i in task["interrupts"]] == [pending["id"]]
    assert len(_emails(server)) == emails_before

    client.runs.wait(
        thread_id, GRAPH_ID, command={"resume": {"decision": "approve", "approver": "lee"}}
    )

    result = client.threads.get_state(thread_id)["values"]["result"]
    assert result["status"] == "success"
    assert [s["status"] for s in result["steps"]] == ["ok", "ok", "ok"]
    assert [(a["decision"], a["approver"]) for a in result["approvals"]] == [("approve", "lee")]
    assert client.threads.get(thread_id)["status"] == "idle"
    emails = _emails(server)
    assert len(emails) == emails_before + 1
    assert emails[-1]["to"] == "ana.lopez@acme.example"


def test_a_bad_decision_fails_its_run_and_leaves_the_approval_pending(
    server: Server, client: SyncLangGraphClient, plan: dict[str, Any]
) -> None:
    """The graph validates a resume before LangGraph stores it, under the server too: the bad
    decision's run errors with a message naming the field, the same interrupt still waits, and
    a reject then ends the run without sending."""
    emails_before = len(_emails(server))
    thread_id = _thread(client)
    client.runs.wait(thread_id, GRAPH_ID, input={"plan": plan})
    (pending,) = _pending(client, thread_id)

    failed = client.runs.wait(
        thread_id, GRAPH_ID, command={"resume": {"decision": "maybe"}}, raise_error=False
    )

    assert failed["__error__"]["error"] == "InvalidDecision"
    assert "decision: Input should be 'approve'" in failed["__error__"]["message"]
    assert [i["id"] for i in _pending(client, thread_id)] == [pending["id"]]

    client.runs.wait(
        thread_id,
        GRAPH_ID,
        command={"resume": {"decision": "reject", "reason": "not this week", "approver": "lee"}},
    )

    result = client.threads.get_state(thread_id)["values"]["result"]
    assert result["status"] == "partial"
    assert [s["status"] for s in result["steps"]] == ["ok", "ok", "rejected"]
    assert result["approvals"][0]["reason"] == "not this week"
    assert _pending(client, thread_id) == []
    assert len(_emails(server)) == emails_before


def test_an_edit_of_a_redacted_copy_or_a_stale_digest_is_refused_and_the_run_still_finishes(
    server: Server, client: SyncLangGraphClient, plan: dict[str, Any]
) -> None:
    """A client that pre-fills its edit form from the redacted trace cannot send the marker to
    the tool, and a decision bound to another request's digest is refused: each bad resume
    fails its own run, the approval stays pending, and a good edit then sends the real mail."""
    emails_before = len(_emails(server))
    thread_id = _thread(client)
    client.runs.wait(thread_id, GRAPH_ID, input={"plan": plan})
    (pending,) = _pending(client, thread_id)
    request = pending["value"]
    edited = {**request["args"], "subject": "Renewal, this week?"}

    marker = client.runs.wait(
        thread_id,
        GRAPH_ID,
        command={"resume": {"decision": "edit", "args": {**edited, "to": "[REDACTED_EMAIL]"}}},
        raise_error=False,
    )
    assert marker["__error__"]["error"] == "InvalidDecision"
    assert "args.to: holds a redaction marker" in marker["__error__"]["message"]
    stale = client.runs.wait(
        thread_id,
        GRAPH_ID,
        command={"resume": {"decision": "approve", "digest": "0" * 64}},
        raise_error=False,
    )
    assert stale["__error__"]["error"] == "InvalidDecision"
    assert "digest" in stale["__error__"]["message"]
    assert [i["id"] for i in _pending(client, thread_id)] == [pending["id"]]
    assert len(_emails(server)) == emails_before

    client.runs.wait(
        thread_id,
        GRAPH_ID,
        command={
            "resume": {
                "decision": "edit",
                "args": edited,
                "approver": "lee",
                "digest": request["digest"],
            }
        },
    )
    result = client.threads.get_state(thread_id)["values"]["result"]
    assert result["status"] == "success"
    sent = _emails(server)[-1]
    assert (sent["to"], sent["subject"]) == ("ana.lopez@acme.example", "Renewal, this week?")
    assert "[REDACTED" not in sent["body"]


def test_trace_events_stream_on_custom_and_node_updates_on_updates(
    client: SyncLangGraphClient, plan: dict[str, Any]
) -> None:
    """`stream_mode=["updates", "custom"]` carries plangate's trace events and the node
    names of its contract, up to the approval interrupt."""
    thread_id = _thread(client)
    custom: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for part in client.runs.stream(
        thread_id, GRAPH_ID, input={"plan": plan}, stream_mode=["updates", "custom"]
    ):
        if part.event == "custom":
            custom.append(part.data)
        elif part.event == "updates":
            updates.append(part.data)
        assert part.event != "error", part.data

    types = [event["type"] for event in custom]
    assert types[0] == "plan_created"
    assert {"tool_call_start", "tool_call_complete", "approval_requested"} <= set(types)
    assert [event["seq"] for event in custom] == list(range(len(custom)))
    assert {event["trace_id"] for event in custom} == {custom[0]["trace_id"]}
    # The stream leaves the decision path: its copy of the request is redacted.
    (requested,) = (event for event in custom if event["type"] == "approval_requested")
    assert requested["data"]["args"]["to"] == "[REDACTED_EMAIL]"
    nodes = [node for update in updates for node in update]
    assert {"plan_start", "budget_check", "tool_exec", "trace_emit"} <= set(nodes)
    assert nodes[-1] == "__interrupt__"
    assert updates[-1]["__interrupt__"][0]["value"]["tool"] == "email.send"


def test_a_bad_plan_fails_its_run_by_name_and_the_thread_stays_usable(
    client: SyncLangGraphClient,
) -> None:
    """A plan is validated before it enters the graph; the client reads which step is wrong."""
    thread_id = _thread(client)
    bad = {"goal": "x", "steps": [{"id": "a", "tool": "crm.lookup_account", "depends_on": ["b"]}]}

    failed = client.runs.wait(thread_id, GRAPH_ID, input={"plan": bad}, raise_error=False)

    assert failed["__error__"]["error"] == "PlanValidationError"
    assert "step 'a'" in failed["__error__"]["message"]
    assert "unknown step 'b'" in failed["__error__"]["message"]

    out = client.runs.wait(
        thread_id,
        GRAPH_ID,
        input={"plan": [{"tool": "crm.lookup_account", "args": {"account": "acme"}}]},
    )
    assert out["result"]["status"] == "success"


def test_a_long_plan_is_not_cut_by_the_default_recursion_limit(
    client: SyncLangGraphClient,
) -> None:
    """Twelve steps take about fifty supersteps, past LangGraph's default limit of 25: the
    graph's own limit holds under the server. Resuming the finished run is refused by name."""
    thread_id = _thread(client)
    plan = [{"tool": "crm.lookup_account", "args": {"account": "acme"}}] * 12

    out = client.runs.wait(thread_id, GRAPH_ID, input={"plan": plan})

    assert out["result"]["status"] == "success"
    assert len(out["result"]["steps"]) == 12
    failed = client.runs.wait(
        thread_id, GRAPH_ID, command={"resume": {"decision": "approve"}}, raise_error=False
    )
    assert failed["__error__"]["error"] == "NoPendingApproval"


def test_an_unknown_profile_stops_the_server_at_startup(tmp_path: Path) -> None:
    """`PLANGATE_PROFILE` is read when the server imports the graph: a bad value stops it
    before it serves anything, with one line naming the variable, its value and the choices."""
    proc = subprocess.run(
        _langgraph_dev(free_port()),
        cwd=tmp_path,
        env=_server_env(tmp_path / "outbox.db", "bogus"),
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
        check=False,
    )

    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert (
        "ProfileError: PLANGATE_PROFILE='bogus': unknown profile 'bogus' "
        "(use one of enterprise, smb, technical or the path of a YAML/JSON file)"
    ) in output
