"""plangate served by LangGraph's own server (`langgraph dev` reading `langgraph.json`), driven
through the official `langgraph_sdk` client: approvals are LangGraph interrupts resumed with a
`Command`, trace events stream on `custom`, and plangate's usage errors reach the client by name.

The built-in demo's server runs in a temporary folder, with `--config` naming the repository's
`langgraph.json`: the in-memory runtime writes its `.langgraph_api/` files, and this test its log,
into the working directory, and neither belongs in the repository.

A second server serves a team's project as a user gets it: `plangate init` writes the folder and
its `langgraph.json`, the team's `plangate.yaml` names a Python toolkit, a stdio MCP server
(`peers/mcp_server.py`) and an OpenAPI service (`peers/http_service.py`), and `langgraph dev`
runs in that folder with the template's `langgraph.json` as written, finding the project file
there by itself. The OpenAPI service is started only once the server answers, so the server
is seen to start without reaching it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _support import (
    BILLING_TOKEN,
    Service,
    billing_service,
    free_port,
    npm_package,
    plangate,
    write_team_project,
)
from langchain.agents.middleware.human_in_the_loop import HITLRequest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.schema import Command
from pydantic import TypeAdapter

from plangate import demo_outbox, open_checkpointer
from plangate.project import Project
from plangate.runs.locks import run_locks

HITL_REQUEST = TypeAdapter(HITLRequest)

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


def _server_env(profile: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment, offline: no LangSmith tracing, no CLI analytics, no check for
    a newer langgraph-api, no license or control-plane key (whose metadata loop calls home).
    `PLANGATE_PROFILE` is `profile` (unset for `None`), and `PLANGATE_PROJECT` is never
    inherited: the server finds its project as the test says, whatever the caller's shell has."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "LANGSMITH_API_KEY",
            "LANGCHAIN_API_KEY",
            "LANGGRAPH_CLOUD_LICENSE_KEY",
            "LANGSMITH_CONTROL_PLANE_API_KEY",
            "PLANGATE_PROJECT",
            "PLANGATE_PROFILE",
        }
    }
    return {
        **env,
        **({"PLANGATE_PROFILE": profile} if profile is not None else {}),
        **(extra or {}),
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "PYTHONUNBUFFERED": "1",
    }


def _langgraph_dev(port: int, config: Path = ROOT / "langgraph.json") -> list[str]:
    return [
        str(LANGGRAPH),
        "dev",
        "--config",
        str(config),
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
            env=_server_env("smb"),
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
    """The demo: look Acme up, draft an email, send it (the send waits, under smb)."""
    loaded: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples" / "demo" / "sales_followup.yaml").read_text(encoding="utf-8")
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


def test_langchain_hitl_decisions_from_the_python_sdk_refuse_another_tool_then_approve(
    server: Server, client: SyncLangGraphClient, plan: dict[str, Any]
) -> None:
    """The waiting request is a LangChain HITL request; a HITL edit that names another tool
    fails its run in one line and the request still waits; a HITL approve with the approver in
    the run's config sends once and records who."""
    emails_before = len(_emails(server))
    thread_id = _thread(client)
    client.runs.wait(thread_id, GRAPH_ID, input={"plan": plan})
    (pending,) = _pending(client, thread_id)
    HITL_REQUEST.validate_python(pending["value"])
    assert pending["value"]["action_requests"][0]["name"] == "email.send"

    swap = {"name": "email.draft", "args": pending["value"]["args"]}
    failed = client.runs.wait(
        thread_id,
        GRAPH_ID,
        command={"resume": {"decisions": [{"type": "edit", "edited_action": swap}]}},
        raise_error=False,
    )
    assert failed["__error__"]["error"] == "InvalidDecision"
    assert "an edit cannot call 'email.draft' instead" in failed["__error__"]["message"]
    assert [i["id"] for i in _pending(client, thread_id)] == [pending["id"]]

    client.runs.wait(
        thread_id,
        GRAPH_ID,
        command={"resume": {"decisions": [{"type": "approve"}]}},
        config={"configurable": {"approver": "lee"}},
    )

    result = client.threads.get_state(thread_id)["values"]["result"]
    assert result["status"] == "success"
    assert [(a["decision"], a["approver"]) for a in result["approvals"]] == [("approve", "lee")]
    assert len(_emails(server)) == emails_before + 1


JS_SDK, JS_SDK_VERSION = "@langchain/langgraph-sdk", "2.0.0"

# Drives the server with LangGraph's JS SDK: start a run of the plan, read the waiting
# interrupt, resume it in LangChain's HITL form with the approver in the run's metadata, and
# print what came back.
JS_CLIENT = """
const { Client } = require("@langchain/langgraph-sdk");
const [url, graph, plan] = process.argv.slice(2);
(async () => {
  const client = new Client({ apiUrl: url });
  const thread = await client.threads.create();
  await client.runs.wait(thread.thread_id, graph, { input: { plan: JSON.parse(plan) } });
  const waiting = Object.values((await client.threads.get(thread.thread_id)).interrupts).flat();
  const request = waiting[0].value;
  await client.runs.wait(thread.thread_id, graph, {
    command: { resume: { decisions: [{ type: "reject", message: "not from JS" }] } },
    metadata: { approver: "js-user" },
  });
  const state = await client.threads.getState(thread.thread_id);
  console.log(JSON.stringify({ request, result: state.values.result }));
})().catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.fixture(scope="session")
def js_sdk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with LangGraph's JS SDK installed from npm, once per session."""
    return npm_package(request, tmp_path_factory, JS_SDK, JS_SDK_VERSION)


def test_the_js_sdk_reads_a_hitl_request_and_rejects_in_hitl_form(
    server: Server, js_sdk: Path, plan: dict[str, Any]
) -> None:
    emails_before = len(_emails(server))
    script = js_sdk / "hitl_client.js"
    script.write_text(JS_CLIENT)

    done = subprocess.run(
        ["node", str(script), server.url, GRAPH_ID, json.dumps(plan)],
        cwd=js_sdk, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    HITL_REQUEST.validate_python(seen["request"])
    assert seen["request"]["review_configs"][0]["action_name"] == "email.send"
    result = seen["result"]
    assert [s["status"] for s in result["steps"]] == ["ok", "ok", "rejected"]
    approval = result["approvals"][0]
    assert (approval["decision"], approval["reason"], approval["approver"]) == (
        "reject",
        "not from JS",
        "js-user",
    )
    assert len(_emails(server)) == emails_before


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
        env=_server_env("bogus"),
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


# --- a project of a team's own, from `plangate init` ---------------------------------------

# The team's plangate.yaml: the toolkit `plangate init` wrote (tools.py), the MCP servers of
# .mcp.json and the billing service's OpenAPI document. No `profile` override reaches the
# server, so new runs use this file's `smb`, under which the refund (a POST) waits.
PROJECT_PLAN = {
    "goal": "Refund the duplicate charge on inv-1",
    "steps": [
        {"id": "order", "tool": "orders.lookup", "args": {"order_id": "o-1"}},
        {"id": "ledger", "tool": "ledger.lookup", "args": {"invoice_id": "inv-1"}},
        {"id": "customer", "tool": "billing.get_customer", "args": {"customer_id": "acme"}},
        {"id": "invoice", "tool": "billing.get_invoice", "args": {"invoice_id": "inv-1"}},
        {
            "id": "refund",
            "tool": "billing.create_refund",
            "depends_on": ["invoice", "ledger"],
            "args": {"invoice_id": "inv-1", "amount": 20.0, "reason": "duplicate"},
        },
    ],
}


@dataclass(frozen=True)
class ProjectServer:
    url: str
    folder: Path
    log: Path
    mcp_log: Path
    billing_url: str
    billing_port: int
    billing_listening_at_startup: bool


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def project_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectServer]:
    """`langgraph dev` in a folder `plangate init` made, its `langgraph.json` as the template
    wrote it, with no PLANGATE_PROJECT or PLANGATE_PROFILE; the billing service is not up."""
    base = tmp_path_factory.mktemp("team")
    folder, log, mcp_log = base / "team", base / "server.log", base / "mcp.jsonl"
    made = plangate(base, "init", str(folder))
    assert made.returncode == 0, made.stdout + made.stderr
    config = json.loads((folder / "langgraph.json").read_text())
    assert config["graphs"][GRAPH_ID]["path"] == "plangate.integrations.langgraph_server:graph"
    billing_port = free_port()  # the service is started on it later, by `billing`
    billing_url = f"http://127.0.0.1:{billing_port}"
    write_team_project(folder, billing_url, mcp_log, toolkit="tools:toolkit")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _langgraph_dev(port, folder / "langgraph.json"),
            cwd=folder,
            env=_server_env(None, {"BILLING_TOKEN": BILLING_TOKEN}),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ok(url, proc, log)
        yield ProjectServer(
            url=url,
            folder=folder,
            log=log,
            mcp_log=mcp_log,
            billing_url=billing_url,
            billing_port=billing_port,
            billing_listening_at_startup=_listening(billing_port),
        )
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def billing(project_server: ProjectServer) -> Iterator[Service]:
    """The billing service, on the port the project names, started after the server answers."""
    with billing_service(project_server.billing_port) as service:
        yield service


@pytest.fixture
def project_client(project_server: ProjectServer) -> SyncLangGraphClient:
    return get_sync_client(url=project_server.url, api_key=None)


def _mcp_calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_project_from_init_runs_python_mcp_and_openapi_tools_and_waits_for_the_refund(
    project_server: ProjectServer, billing: Service, project_client: SyncLangGraphClient
) -> None:
    """The server found the folder's plangate.yaml (no PLANGATE_PROJECT) and started with the
    OpenAPI service down; the first run reaches it, pauses on the refund under the project's
    `smb` with the real arguments, and the approval through the SDK makes exactly one refund."""
    assert not project_server.billing_listening_at_startup
    httpx.post(f"{billing.url}/_reset").raise_for_status()
    assert billing.requests() == []
    mcp_before = len(_mcp_calls(project_server.mcp_log))
    thread_id = _thread(project_client)

    project_client.runs.wait(thread_id, GRAPH_ID, input={"plan": PROJECT_PLAN})

    assert project_client.threads.get(thread_id)["status"] == "interrupted"
    (pending,) = _pending(project_client, thread_id)
    request = pending["value"]
    assert request["type"] == "approval_request"
    assert (request["tool"], request["step_id"]) == ("billing.create_refund", "refund")
    assert request["args"] == {"invoice_id": "inv-1", "amount": 20.0, "reason": "duplicate"}
    assert (request["action"], request["action_source"]) == ("execute", "openapi")
    # The project's own default profile applies: no PLANGATE_PROFILE reached the server.
    assert (request["profile"], request["risk"]) == ("smb", "high")
    assert "billing.create_refund" in request["consequence"]
    # The reads ran before the pause, each through its own source; nothing was refunded.
    assert [(c["tool"], c["args"]) for c in _mcp_calls(project_server.mcp_log)[mcp_before:]] == [
        ("lookup", {"invoice_id": "inv-1"})
    ]
    assert [(r["method"], r["path"]) for r in billing.requests()] == [
        ("GET", "/customers/acme"),
        ("GET", "/invoices/inv-1"),
    ]
    # The customer read carried the token the server's environment gave ${BILLING_TOKEN}.
    assert billing.requests()[0]["headers"]["authorization"] == f"Bearer {BILLING_TOKEN}"
    assert billing.refunds() == []

    project_client.runs.wait(
        thread_id,
        GRAPH_ID,
        command=Command(resume={"decision": "approve", "approver": "sdk"}),
    )

    result = project_client.threads.get_state(thread_id)["values"]["result"]
    assert result["status"] == "success"
    assert [(s["step_id"], s["status"]) for s in result["steps"]] == [
        ("order", "ok"),
        ("ledger", "ok"),
        ("customer", "ok"),
        ("invoice", "ok"),
        ("refund", "ok"),
    ]
    assert [(a["decision"], a["approver"]) for a in result["approvals"]] == [("approve", "sdk")]
    assert project_client.threads.get(thread_id)["status"] == "idle"
    (refund,) = billing.refunds()
    assert (refund["invoice_id"], refund["amount"], refund["reason"]) == (
        "inv-1",
        20.0,
        "duplicate",
    )
    assert [r["method"] for r in billing.requests()].count("POST") == 1
    assert len(_mcp_calls(project_server.mcp_log)) == mcp_before + 1  # the resume re-ran no read


def test_a_plan_naming_a_tool_the_project_lacks_blocks_that_step_by_name(
    project_server: ProjectServer, billing: Service, project_client: SyncLangGraphClient
) -> None:
    """An unknown tool is no validation error: its step ends `blocked` with a message naming
    it, under an unknown prefix and under the OpenAPI source's own, and nothing is called."""
    httpx.post(f"{billing.url}/_reset").raise_for_status()
    mcp_before = len(_mcp_calls(project_server.mcp_log))
    thread_id = _thread(project_client)
    plan = {
        "goal": "call tools that are not there",
        "steps": [
            {"id": "ghost", "tool": "ghost.frobnicate", "args": {}},
            {
                "id": "wipe",
                "tool": "billing.delete_everything",
                "depends_on": [],
                "args": {"confirm": True},
            },
            {"id": "order", "tool": "orders.lookup", "depends_on": [], "args": {"order_id": "o"}},
        ],
    }

    out = project_client.runs.wait(thread_id, GRAPH_ID, input={"plan": plan})

    result = out["result"]
    steps = {s["step_id"]: s for s in result["steps"]}
    assert (steps["ghost"]["status"], steps["wipe"]["status"], steps["order"]["status"]) == (
        "blocked",
        "blocked",
        "ok",
    )
    assert "no tool named 'ghost.frobnicate' is registered" in steps["ghost"]["error"]
    assert "no tool named 'billing.delete_everything' is registered" in steps["wipe"]["error"]
    assert result["failure_context"]["error_type"] == "tool_not_registered"
    assert result["status"] == "partial"
    assert billing.requests() == []
    assert billing.refunds() == []
    assert len(_mcp_calls(project_server.mcp_log)) == mcp_before


def test_a_run_the_sdk_starts_is_listed_and_approved_by_the_cli_and_the_sdk_sees_it_finish(
    project_server: ProjectServer, billing: Service, project_client: SyncLangGraphClient
) -> None:
    """The template's `langgraph.json` makes the project's database the server's checkpointer:
    a run started through the SDK waits in `plangate pending`, `plangate show` names its
    request, `plangate approve` (another process, the project's own tools) makes the refund,
    and the SDK then reads the finished run from the same database."""
    httpx.post(f"{billing.url}/_reset").raise_for_status()
    thread_id = _thread(project_client)
    project_client.runs.wait(thread_id, GRAPH_ID, input={"plan": PROJECT_PLAN})
    assert project_client.threads.get_state(thread_id)["next"] == ["approval_interrupt"]
    env = {**os.environ, "BILLING_TOKEN": BILLING_TOKEN}

    pending = plangate(project_server.folder, "pending", env=env)
    assert pending.returncode == 0, pending.stdout + pending.stderr
    assert thread_id in pending.stdout
    assert "billing.create_refund" in pending.stdout
    waiting = plangate(project_server.folder, "runs", env=env)
    assert f"{thread_id}  waiting" in waiting.stdout
    shown = plangate(project_server.folder, "show", thread_id, env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "billing.create_refund" in shown.stdout
    assert billing.refunds() == []

    approved = plangate(project_server.folder, "approve", thread_id, "--approver", "lee", env=env)

    assert approved.returncode == 0, approved.stdout + approved.stderr
    (refund,) = billing.refunds()
    assert (refund["invoice_id"], refund["amount"]) == ("inv-1", 20.0)
    state = project_client.threads.get_state(thread_id)
    assert state["next"] == []
    result = state["values"]["result"]
    assert result["status"] == "success"
    assert [(a["decision"], a["approver"]) for a in result["approvals"]] == [("approve", "lee")]
    # The server's own thread record is its runtime's, which a decision taken elsewhere does
    # not reach: it still says what the server's last run left (the docs say so).
    assert project_client.threads.get(thread_id)["status"] == "interrupted"
    still = plangate(project_server.folder, "pending", env=env)
    assert thread_id not in still.stdout
    listed = plangate(project_server.folder, "runs", "--all", env=env)
    assert f"{thread_id}  finished success" in listed.stdout
    traced = plangate(project_server.folder, "trace", thread_id, env=env)
    assert traced.returncode == 0, traced.stdout + traced.stderr
    assert "approval_received" in traced.stdout


def test_a_resume_through_the_server_waits_out_a_run_of_the_same_thread_elsewhere(
    project_server: ProjectServer, billing: Service, project_client: SyncLangGraphClient
) -> None:
    """The server's runs take the same per-thread lock as plangate's own processes: while
    another process holds the paused run (as `plangate approve` does while it runs the step),
    the SDK's resume fails with `ResumeConflict` and refunds nothing; once it is free the same
    resume goes through, once."""
    httpx.post(f"{billing.url}/_reset").raise_for_status()
    thread_id = _thread(project_client)
    project_client.runs.wait(thread_id, GRAPH_ID, input={"plan": PROJECT_PLAN})
    resume = Command(resume={"decision": "approve", "approver": "sdk"})
    saver = open_checkpointer(Project.load(project_server.folder / "plangate.yaml").db)
    try:
        with run_locks(saver).hold(thread_id):
            refused = project_client.runs.wait(
                thread_id, GRAPH_ID, command=resume, raise_error=False
            )
    finally:
        saver.conn.close()

    assert refused["__error__"]["error"] == "ResumeConflict"
    assert "already being run or resumed elsewhere" in refused["__error__"]["message"]
    assert billing.refunds() == []
    assert project_client.threads.get_state(thread_id)["next"] == ["approval_interrupt"]

    project_client.runs.wait(thread_id, GRAPH_ID, command=resume)

    assert project_client.threads.get_state(thread_id)["values"]["result"]["status"] == "success"
    assert len(billing.refunds()) == 1


def _chat_message(text: str) -> dict[str, Any]:
    """A message as Agent Chat UI sends it: a human message whose content is text blocks."""
    return {"id": "m-1", "type": "human", "content": [{"type": "text", "text": text}]}


@pytest.mark.parametrize(
    "case",
    [
        ({"type": "approve"}, "success", ("approve", None, None)),
        (
            {
                "type": "edit",
                "edited_action": {
                    "name": "email.send",
                    "args": {"to": "bo@acme.example", "subject": "Hi", "body": "Renewal"},
                },
            },
            "success",
            ("edit", None, None),
        ),
        (
            {"type": "reject", "message": "not this week"},
            "partial",
            ("reject", None, "not this week"),
        ),
    ],
    ids=["approve", "edit", "reject"],
)
def test_a_chat_client_starts_a_run_with_the_plan_as_its_message_and_answers_in_hitl_form(
    server: Server,
    client: SyncLangGraphClient,
    plan: dict[str, Any],
    case: tuple[dict[str, Any], str, tuple[str, str | None, str | None]],
) -> None:
    """What Agent Chat UI sends, and only that: `{"messages": [...]}` whose last human message's
    text is the plan (JSON here), then a resume `{"decisions": [...]}` with no config or metadata.
    The thread keeps the message and, when the run ends, one AI message with the outcome (Chat
    UI renders a request only under a message); the approver is recorded as none."""
    decision, status, recorded = case
    thread_id = _thread(client)

    client.runs.wait(thread_id, GRAPH_ID, input={"messages": [_chat_message(json.dumps(plan))]})

    (pending,) = _pending(client, thread_id)
    HITL_REQUEST.validate_python(pending["value"])
    assert pending["value"]["action_requests"][0]["name"] == "email.send"
    values = client.threads.get_state(thread_id)["values"]
    assert [m["type"] for m in values["messages"]] == ["human"]

    client.runs.wait(thread_id, GRAPH_ID, command={"resume": {"decisions": [decision]}})

    values = client.threads.get_state(thread_id)["values"]
    result = values["result"]
    assert result["status"] == status
    (approval,) = result["approvals"]
    assert (approval["decision"], approval["approver"], approval["reason"]) == recorded
    if decision["type"] == "edit":
        assert approval["args"]["to"] == "bo@acme.example"
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]
    assert values["messages"][-1]["content"].startswith(f"{status}: {plan['goal']}")
    assert f"send: {recorded[0]} by no one named" in values["messages"][-1]["content"]


def test_a_chat_message_that_is_no_plan_fails_its_run_with_the_reason(
    server: Server, client: SyncLangGraphClient
) -> None:
    """A message whose text is not a plan fails that run with plangate's error, naming the
    plan's problem, and the thread stores nothing."""
    thread_id = _thread(client)

    failed = client.runs.wait(
        thread_id,
        GRAPH_ID,
        input={"messages": [_chat_message("please follow up with Acme")]},
        raise_error=False,
    )

    assert failed["__error__"]["error"] == "PlanValidationError"
    assert "expected a mapping with 'goal' and 'steps', got str" in failed["__error__"]["message"]
    assert client.threads.get_state(thread_id)["values"] in ({}, None, [])


def test_an_assistant_configured_with_an_approver_names_the_chat_clients_decisions(
    server: Server, client: SyncLangGraphClient, plan: dict[str, Any]
) -> None:
    """A chat client that sends no config or metadata (Agent Chat UI) still has its decisions
    recorded under a name when it talks to an assistant whose config names the approver: the
    server merges the assistant's `configurable` into each run's config."""
    assistant = client.assistants.create(
        graph_id=GRAPH_ID, config={"configurable": {"approver": "lee"}}
    )
    thread_id = _thread(client)

    client.runs.wait(
        thread_id,
        assistant["assistant_id"],
        input={"messages": [_chat_message(json.dumps(plan))]},
    )
    client.runs.wait(
        thread_id,
        assistant["assistant_id"],
        command={"resume": {"decisions": [{"type": "approve"}]}},
    )

    result = client.threads.get_state(thread_id)["values"]["result"]
    assert [(a["decision"], a["approver"]) for a in result["approvals"]] == [("approve", "lee")]
