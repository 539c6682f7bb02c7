"""The MCP adapter against a real FastMCP server (`peers/mcp_server.py`) on stdio and on a
loopback port: plans call its tools under a prefix, each call's idempotency key reaches the
server, and every way a call can fail becomes a step outcome, never a crashed run. The server's
tool annotations decide what a call is (a plan cannot lower it), and the tools' own input
schemas check an approver's edits. Calls share one session per server, which outlives a dead
server and ends when closed, and a call given up on is cancelled on the server."""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _support import Runner, free_port, plan_of, run_in, thread
from langchain_mcp_adapters.sessions import Connection
from langgraph.types import Command
from pydantic import ValidationError

from plangate import (
    InvalidDecision,
    PlangateUsageError,
    Profile,
    RetryPolicy,
    build_graph,
    open_checkpointer,
)
from plangate.actions import ToolDeclaration, tool_declaration
from plangate.adapters.mcp import MCPConnectionError, MCPSessions, amcp_tools, mcp_tools
from plangate.errors import AdapterError
from plangate.nodes.tool_exec import is_transient

PEER = Path(__file__).parent / "peers" / "mcp_server.py"
# No approvals; the peer's `refund`, flagged destructive, exempt from the person every
# irreversible call waits for: for tests of how calls are made, not of who is asked.
TECHNICAL = Profile(name="mcp-test", redact=False, irreversible_exempt=["billing.refund"])
# `refund`'s inputSchema as FastMCP derives it from the function's signature.
REFUND_SCHEMA = {
    "type": "object",
    "title": "refundArguments",
    "properties": {
        "invoice_id": {"title": "Invoice Id", "type": "string"},
        "amount": {"title": "Amount", "type": "number"},
    },
    "required": ["invoice_id", "amount"],
}


@dataclass
class Peer:
    """A running MCP server: how to connect to it, and the file it records its calls in."""

    transport: str
    connection: Connection
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def calls(self) -> list[dict[str, Any]]:
        """What the server received: tool, args, `meta_key` (`_meta`), `header_key` (HTTP)."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def slow_events(self, within: float = 15) -> list[str]:
        """What became of the `slow` calls: `start`, then `finish` or `cancelled`, waiting
        `within` seconds for the server to log how the call ended."""
        deadline = time.monotonic() + within
        while True:
            events = [call["event"] for call in self.calls() if call["tool"] == "slow"]
            if {"finish", "cancelled"} & set(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.05)


@pytest.fixture(autouse=True)
def closed_sessions() -> Iterator[None]:
    """Each test's servers' sessions end with the test (stdio servers' processes exit)."""
    yield
    MCPSessions.shared().close()


def stdio_peer(log: Path) -> Peer:
    """A server started by each call, through the stdio connection itself."""
    connection: Connection = {
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(PEER), "stdio", str(log)],
    }
    return Peer("stdio", connection, log)


def start_http_peer(port: int, log: Path) -> Peer:
    """A server on loopback port `port`, once it accepts connections."""
    process = subprocess.Popen([sys.executable, str(PEER), "http", str(port), str(log)])
    peer = Peer(
        "http",
        {"transport": "streamable_http", "url": f"http://127.0.0.1:{port}/mcp"},
        log,
        process,
    )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "the MCP peer exited while starting"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return peer
        except OSError:
            assert time.monotonic() < deadline, "the MCP peer did not start listening"
            time.sleep(0.05)


@pytest.fixture
def http_peer(tmp_path: Path) -> Iterator[Peer]:
    """A server on a free loopback port, up until the test ends (or kills it)."""
    peer = start_http_peer(free_port(), tmp_path / "http-calls.jsonl")
    yield peer
    MCPSessions.shared().close()  # while the server can still hear that the session ends
    peer.stop()


@pytest.fixture(params=["stdio", "http"])
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Peer:
    """The same test over both transports."""
    if request.param == "stdio":
        return stdio_peer(tmp_path / "stdio-calls.jsonl")
    http: Peer = request.getfixturevalue("http_peer")
    return http


def step_keys(runner: Runner, graph: Any) -> dict[str, str]:
    """Step id -> the idempotency key its (last) call was made with, from the trace."""
    return {
        event["step_id"]: event["data"]["idempotency_key"]
        for event in runner.trace(graph, thread())
        if event["type"] == "tool_call_start"
    }


async def test_tools_are_registered_under_the_prefix_from_sync_and_async_code(
    tmp_path: Path,
) -> None:
    """`refund` loaded with prefix `billing` is `billing.refund`; the sync loader works in a
    thread whose event loop is running (this test's) and gives what the async one gives."""
    peer = stdio_peer(tmp_path / "calls.jsonl")
    loaded = await amcp_tools(peer.connection, prefix="billing")
    assert [tool.name for tool in loaded] == [
        "billing.refund",
        "billing.lookup",
        "billing.void",
        "billing.counter",
        "billing.slow",
    ]
    assert "Refund" in loaded[0].description
    assert set(loaded[0].args) == {"invoice_id", "amount"}
    from_sync = mcp_tools(peer.connection, prefix="billing")
    assert [tool.name for tool in from_sync] == [tool.name for tool in loaded]
    assert peer.calls() == []  # listing calls nothing


def test_a_plan_calls_mcp_tools_and_each_call_carries_its_key(runner: Runner, peer: Peer) -> None:
    """Over stdio and HTTP, sync and async: the steps' outputs are plain JSON (JSON text
    parsed, structured content as sent); the server received each step's key in `_meta`, and
    over HTTP in the `Idempotency-Key` header too, each call its own although both went through
    the one session the tools were loaded with (one process, one MCP session id)."""
    graph = runner.graph(mcp_tools(peer.connection, prefix="billing"), profile=TECHNICAL)
    plan = plan_of(
        {"id": "look", "tool": "billing.lookup", "args": {"invoice_id": "inv-1"}},
        {
            "id": "pay",
            "tool": "billing.refund",
            "args": {"invoice_id": "inv-1", "amount": 12.5},
            "depends_on": ["look"],
        },
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert result["status"] == "success"
    assert [step["output"] for step in result["steps"]] == [
        {"invoice_id": "inv-1", "status": "paid"},
        {"invoice_id": "inv-1", "refunded": 12.5},
    ]
    keys = step_keys(runner, graph)
    calls = peer.calls()
    assert [(call["tool"], call["args"]) for call in calls] == [
        ("lookup", {"invoice_id": "inv-1"}),
        ("refund", {"invoice_id": "inv-1", "amount": 12.5}),
    ]
    assert [call["meta_key"] for call in calls] == [keys["look"], keys["pay"]]
    headers = [keys["look"], keys["pay"]] if peer.transport == "http" else [None, None]
    assert [call["header_key"] for call in calls] == headers
    sessions = {(call["pid"], call["http_session"]) for call in calls}
    assert len(sessions) == 1
    assert (next(iter(sessions))[1] is not None) == (peer.transport == "http")


def test_an_approved_step_calls_the_server_once_with_its_key(
    runner: Runner, http_peer: Peer
) -> None:
    """Under `smb` an `execute` step pauses before the server sees anything; approved, the run
    resumes and calls it exactly once, with the step's key."""
    graph = runner.graph(mcp_tools(http_peer.connection, prefix="billing"), profile="smb")
    plan = plan_of(
        {
            "id": "pay",
            "tool": "billing.refund",
            "action": "execute",
            "args": {"invoice_id": "inv-2", "amount": 3},
        }
    )
    paused = runner.invoke(graph, {"plan": plan}, thread())
    assert paused["__interrupt__"][0].value["tool"] == "billing.refund"
    assert http_peer.calls() == []
    approve = Command(resume={"decision": "approve", "approver": "x"})
    result = runner.invoke(graph, approve, thread())["result"]
    assert result["steps"][0]["status"] == "ok"
    key = step_keys(runner, graph)["pay"]
    calls = [(call["tool"], call["meta_key"], call["header_key"]) for call in http_peer.calls()]
    assert calls == [("refund", key, key)]


def test_annotations_become_each_tools_trusted_action_and_its_schema_is_the_servers(
    tmp_path: Path,
) -> None:
    """The annotations sit in `metadata` as langchain-mcp-adapters puts them: `lookup` is a
    read, `refund` an irreversible execute, the unannotated `void` has no declaration. Each
    tool's input model publishes the server's inputSchema and checks arguments with it."""
    peer = stdio_peer(tmp_path / "calls.jsonl")
    tools = {tool.name: tool for tool in mcp_tools(peer.connection, prefix="billing")}
    refund, lookup, void = tools["billing.refund"], tools["billing.lookup"], tools["billing.void"]
    assert refund.metadata == {
        "title": None,
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": None,
        "openWorldHint": None,
    }
    assert tool_declaration(refund) == ToolDeclaration(
        action="execute", irreversible=True, source="mcp"
    )
    assert tool_declaration(lookup) == ToolDeclaration(
        action="read", irreversible=False, source="mcp"
    )
    assert (void.metadata, tool_declaration(void)) == (None, None)

    model = refund.get_input_schema()
    assert model.model_json_schema() == REFUND_SCHEMA == refund.args_schema
    assert model.model_config.get("extra") == "allow"
    model.model_validate({"invoice_id": "inv-1", "amount": 2})
    with pytest.raises(ValidationError, match="'lots' is not of type 'number'") as refused:
        model.model_validate({"invoice_id": "inv-1", "amount": "lots"})
    assert [error["loc"] for error in refused.value.errors()] == [("amount",)]


def test_under_smb_a_destructive_tool_waits_and_a_read_only_one_does_not(
    runner: Runner, peer: Peer
) -> None:
    """With no `action` in the plan, `lookup` (read-only) runs at once and `refund`
    (destructive) waits: the request says what the annotations made it, carries the tool's
    input schema for edits, and the server sees the refund once, only after the approval."""
    tools = mcp_tools(peer.connection, prefix="billing")
    graph = runner.graph(tools, profile="smb")
    plan = plan_of(
        {"id": "look", "tool": "billing.lookup", "args": {"invoice_id": "inv-7"}},
        {"id": "pay", "tool": "billing.refund", "args": {"invoice_id": "inv-7", "amount": 4}},
    )
    paused = runner.invoke(graph, {"plan": plan}, thread())
    request = paused["__interrupt__"][0].value
    assert request["step_id"] == "pay"
    assert (request["action"], request["action_source"]) == ("execute", "mcp")
    assert (request["irreversible"], request["risk"]) == (True, "high")
    assert request["args"] == {"invoice_id": "inv-7", "amount": 4}
    args_schema = request["response_schema"]["properties"]["args"]["anyOf"][0]
    listed = next(tool.args_schema for tool in tools if tool.name == "billing.refund")
    assert args_schema == {k: v for k, v in listed.items() if k != "title"}  # type: ignore[union-attr]
    assert sorted(args_schema["properties"]) == ["amount", "invoice_id"]
    assert [call["tool"] for call in peer.calls()] == ["lookup"]

    approve = Command(resume={"decision": "approve", "approver": "x"})
    result = runner.invoke(graph, approve, thread())["result"]
    assert [step["status"] for step in result["steps"]] == ["ok", "ok"]
    assert [(call["tool"], call["args"]) for call in peer.calls()] == [
        ("lookup", {"invoice_id": "inv-7"}),
        ("refund", {"invoice_id": "inv-7", "amount": 4}),
    ]


def test_an_unannotated_tool_waits_as_an_execute_by_default(
    runner: Runner, http_peer: Peer
) -> None:
    """`void` declares nothing, so under `smb` it is an `execute` said by nobody (`default`)
    and waits; its risk counts the sensitive `billing` domain but no irreversibility."""
    graph = runner.graph(mcp_tools(http_peer.connection, prefix="billing"), profile="smb")
    plan = plan_of({"id": "void", "tool": "billing.void", "args": {"invoice_id": "inv-8"}})
    request = runner.invoke(graph, {"plan": plan}, thread())["__interrupt__"][0].value
    assert (request["action"], request["action_source"]) == ("execute", "default")
    assert (request["irreversible"], request["risk"]) == (False, "high")
    assert http_peer.calls() == []


def test_a_bad_edit_is_refused_naming_the_field_and_the_run_can_still_be_approved(
    runner: Runner, peer: Peer
) -> None:
    """An edit the tool's inputSchema refuses (`amount: "lots"`) raises `InvalidDecision`
    naming `args.amount`; the run stays paused on the same request, nothing reaches the
    server, and approving then makes the original call once."""
    graph = runner.graph(mcp_tools(peer.connection, prefix="billing"), profile="smb")
    plan = plan_of(
        {"id": "pay", "tool": "billing.refund", "args": {"invoice_id": "inv-9", "amount": 6}}
    )
    request = runner.invoke(graph, {"plan": plan}, thread())["__interrupt__"][0].value

    bad = {"decision": "edit", "args": {"invoice_id": "inv-9", "amount": "lots"}}
    with pytest.raises(InvalidDecision, match=r"args\.amount: 'lots' is not of type") as caught:
        runner.invoke(graph, Command(resume=bad), thread())
    assert caught.value.field == "args.amount"
    missing = {"decision": "edit", "args": {"invoice_id": "inv-9"}}
    with pytest.raises(InvalidDecision, match=r"args\.amount: Field required") as caught:
        runner.invoke(graph, Command(resume=missing), thread())
    assert caught.value.field == "args.amount"  # a missing property is named at its own path
    assert peer.calls() == []

    snapshot = (
        graph.get_state(thread())
        if runner.mode == "sync"
        else runner.loop.run_until_complete(graph.aget_state(thread()))
    )
    assert [i.value["request_id"] for i in snapshot.interrupts] == [request["request_id"]]
    result = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())["result"]
    assert result["steps"][0]["status"] == "ok"
    assert [(call["tool"], call["args"]) for call in peer.calls()] == [
        ("refund", {"invoice_id": "inv-9", "amount": 6})
    ]


def test_a_plan_saying_read_cannot_lower_a_destructive_tool(
    runner: Runner, http_peer: Peer
) -> None:
    """`action: read` on `refund` is overruled by its annotations: the step still waits as an
    irreversible `execute`, the server sees nothing, and the trace records the override."""
    graph = runner.graph(mcp_tools(http_peer.connection, prefix="billing"), profile="smb")
    plan = plan_of(
        {
            "id": "pay",
            "tool": "billing.refund",
            "action": "read",
            "args": {"invoice_id": "inv-10", "amount": 1},
        }
    )
    request = runner.invoke(graph, {"plan": plan}, thread())["__interrupt__"][0].value
    assert (request["action"], request["action_source"], request["irreversible"]) == (
        "execute",
        "mcp",
        True,
    )
    overrides = [e for e in runner.trace(graph, thread()) if e["type"] == "policy_override"]
    assert [(e["step_id"], e["data"]) for e in overrides] == [
        ("pay", {"plan_action": "read", "action": "execute", "action_source": "mcp"})
    ]
    assert http_peer.calls() == []


CRASHING_RUN = """
import json, os, signal, sys
from langchain_core.runnables import RunnableConfig
from plangate import build_graph, open_checkpointer
from plangate.adapters.mcp import mcp_tools

url, folder = sys.argv[1], sys.argv[2]
refund = {t.name: t for t in mcp_tools({"transport": "streamable_http", "url": url},
                                       prefix="billing")}["billing.refund"]


async def refund_then_die(invoice_id: str, amount: float, config: RunnableConfig) -> dict:
    out = await refund.ainvoke({"invoice_id": invoice_id, "amount": amount}, config=config)
    marker = folder + "/killed"
    if not os.path.exists(marker):  # the server did the refund; the step never got recorded
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return out


graph = build_graph({"billing.refund": refund_then_die}, profile="technical",
                    checkpointer=open_checkpointer(folder + "/runs.db"))
config = {"configurable": {"thread_id": "crash"}}
plan = {"goal": "refund", "steps": [
    {"id": "pay", "tool": "billing.refund", "args": {"invoice_id": "inv-3", "amount": 7}}]}
out = graph.invoke({"plan": plan} if not os.path.exists(folder + "/killed") else None, config)
print(json.dumps(out["result"]))
"""


def test_a_step_resumed_after_a_crash_sends_the_server_the_same_key(
    tmp_path: Path, http_peer: Peer
) -> None:
    """A process killed after the server did the refund, but before the step was recorded, is
    resumed by another process: the step is called again with the same key (in `_meta` and
    the header), so a server that remembers keys can tell it is the same refund."""
    script = tmp_path / "crashing_run.py"
    script.write_text(CRASHING_RUN)
    command = [sys.executable, str(script), http_peer.connection["url"], str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, check=False)
    assert first.returncode == -9, first.stderr
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(second.stdout)
    assert [step["status"] for step in result["steps"]] == ["ok"]
    calls = http_peer.calls()
    assert [call["tool"] for call in calls] == ["refund", "refund"]
    assert calls[0]["meta_key"] == calls[1]["meta_key"] == calls[0]["header_key"]
    assert calls[1]["header_key"] == calls[0]["header_key"] is not None


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_an_unreachable_server_at_load_is_a_one_line_adapter_error(transport: str) -> None:
    """No process to start, or nothing listening: `AdapterError` naming the server and the
    problem in one line, with a hint; anyio's exception groups do not leak through."""
    if transport == "stdio":
        connection: Connection = {"transport": "stdio", "command": "/no/such/server", "args": []}
        server, problem = "/no/such/server", "FileNotFoundError"
    else:
        server = f"http://127.0.0.1:{free_port()}/mcp"
        connection = {"transport": "streamable_http", "url": server}
        problem = "ConnectError"
    with pytest.raises(AdapterError) as caught:
        mcp_tools(connection, prefix="billing")
    error = caught.value
    assert error.source == server
    assert f"cannot load tools from MCP server {server}: {problem}" in error.message
    assert "\n" not in str(error)
    assert error.hint


def test_a_server_that_never_answers_fails_loading_after_the_timeout() -> None:
    """A stdio process that starts but never speaks MCP: loading gives up after `timeout`
    with a one-line `AdapterError`, instead of waiting for ever."""
    silent = "import time; time.sleep(120)"
    connection: Connection = {
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-c", silent],
    }
    started = time.monotonic()
    with pytest.raises(AdapterError) as caught:
        mcp_tools(connection, prefix="billing", timeout=1)
    assert "no answer within 1 s" in caught.value.message
    assert time.monotonic() - started < 60  # gave up, rather than waiting for the process


def test_a_server_gone_mid_run_fails_the_step_as_transient_and_the_run_finishes(
    runner: Runner, http_peer: Peer
) -> None:
    """The server dies between two steps: the next MCP step is retried (a transient error)
    and then fails with an `MCPConnectionError` naming the tool and the server; the run ends."""
    tools: dict[str, Any] = {
        tool.name: tool for tool in mcp_tools(http_peer.connection, prefix="billing")
    }

    def stop() -> str:
        http_peer.stop()
        return "stopped"

    tools["ops.stop_server"] = stop
    profile = TECHNICAL.model_copy(
        update={"name": "retrying", "retry": RetryPolicy(max_attempts=2)}
    )
    graph = runner.graph(tools, profile=profile, sleep=lambda _: None)
    plan = plan_of(
        {"id": "look", "tool": "billing.lookup", "args": {"invoice_id": "inv-4"}},
        {"id": "stop", "tool": "ops.stop_server", "depends_on": ["look"]},
        {
            "id": "pay",
            "tool": "billing.refund",
            "args": {"invoice_id": "inv-4", "amount": 1},
            "depends_on": ["stop"],
        },
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert [step["status"] for step in result["steps"]] == ["ok", "ok", "error"]
    assert result["status"] == "partial"
    failed = result["steps"][2]
    assert failed["attempts"] == 2
    assert result["failure_context"]["error_type"] == "MCPConnectionError"
    url = http_peer.connection["url"]
    assert failed["error"].startswith(f"billing.refund: MCP server {url} cannot be reached")
    assert is_transient(MCPConnectionError("x", tool="billing.refund", server=url))


def test_an_error_result_and_bad_arguments_fail_their_steps(
    runner: Runner, http_peer: Peer
) -> None:
    """An `isError` result fails its step with the server's message; arguments outside the
    input schema fail theirs naming the tool and the problem, and never reach the server."""
    graph = runner.graph(mcp_tools(http_peer.connection, prefix="billing"), profile=TECHNICAL)
    plan = plan_of(
        {"id": "void", "tool": "billing.void", "args": {"invoice_id": "inv-5"}},
        {"id": "bad", "tool": "billing.refund", "args": {"invoice_id": "inv-5", "amount": "ten"}},
        {"id": "short", "tool": "billing.refund", "args": {"invoice_id": "inv-5"}},
        {"id": "look", "tool": "billing.lookup", "args": {"invoice_id": "inv-5"}},
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert [step["status"] for step in result["steps"]] == ["error", "error", "error", "ok"]
    errors = [step["error"] for step in result["steps"][:3]]
    assert errors == [
        "Error executing tool void: invoice inv-5 is already settled",
        "billing.refund: invalid arguments: amount: 'ten' is not of type 'number'",
        "billing.refund: invalid arguments: 'amount' is a required property",
    ]
    types = [step["failure_context"]["error_type"] for step in result["steps"][:3]]
    assert types == ["ToolException", "invalid_arguments", "invalid_arguments"]
    assert [call["tool"] for call in http_peer.calls()] == ["void", "lookup"]


def test_an_mcp_tool_outside_the_allowlist_is_blocked_and_never_called(
    tmp_path: Path, http_peer: Peer
) -> None:
    """`allowed_tools` applies to MCP tools by their prefixed name."""
    graph = build_graph(
        mcp_tools(http_peer.connection, prefix="billing"),
        profile=Profile(name="read-only", allowed_tools=["billing.lookup"]),
        checkpointer=open_checkpointer(f"sqlite:///{tmp_path / 'runs.db'}"),
    )
    plan = plan_of({"tool": "billing.refund", "args": {"invoice_id": "inv-6", "amount": 1}})
    result = graph.invoke({"plan": plan}, thread())["result"]
    assert result["steps"][0]["status"] == "blocked"
    assert http_peer.calls() == []


def test_a_stateful_server_keeps_its_state_across_the_steps_of_a_run(
    runner: Runner, tmp_path: Path
) -> None:
    """A stdio server's memory lives in its process: two `counter` steps of one run count 1
    and 2 in the process the tools were loaded with, which also served the listing."""
    peer = stdio_peer(tmp_path / "calls.jsonl")
    graph = runner.graph(mcp_tools(peer.connection, prefix="billing"), profile=TECHNICAL)
    plan = plan_of(
        {"id": "one", "tool": "billing.counter"},
        {"id": "two", "tool": "billing.counter", "depends_on": ["one"]},
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    outputs = [step["output"] for step in result["steps"]]
    assert [output["count"] for output in outputs] == [1, 2]
    assert len({output["pid"] for output in outputs}) == 1


def test_a_stdio_server_that_died_is_started_again_by_the_next_call(
    runner: Runner, tmp_path: Path
) -> None:
    """The server's process is killed between two steps: the next call finds its session gone
    before sending anything, starts the server again and succeeds at its first attempt, in a
    new process that counts from 1."""
    peer = stdio_peer(tmp_path / "calls.jsonl")
    tools: dict[str, Any] = {
        tool.name: tool for tool in mcp_tools(peer.connection, prefix="billing")
    }

    def kill_server() -> str:
        pid = peer.calls()[-1]["pid"]
        os.kill(pid, signal.SIGKILL)
        while True:  # until the adapter has reaped it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        # As between the steps of a real run, the adapter has read the closed pipe by the time
        # the next call comes.
        time.sleep(0.2)
        return "killed"

    tools["ops.kill_server"] = kill_server
    graph = runner.graph(tools, profile=TECHNICAL)
    plan = plan_of(
        {"id": "before", "tool": "billing.counter"},
        {"id": "kill", "tool": "ops.kill_server", "depends_on": ["before"]},
        {"id": "after", "tool": "billing.counter", "depends_on": ["kill"]},
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    before, _, after = result["steps"]
    assert [step["status"] for step in result["steps"]] == ["ok", "ok", "ok"]
    assert (before["output"]["count"], after["output"]["count"]) == (1, 1)
    assert before["output"]["pid"] != after["output"]["pid"]
    assert after["attempts"] == 1


def test_a_restarted_http_server_gets_a_new_session_from_the_next_call(
    runner: Runner, http_peer: Peer
) -> None:
    """The server restarts on the same port between two steps and no longer knows the
    session: the next call opens a new one and succeeds at its first attempt, with its key."""
    tools: dict[str, Any] = {
        tool.name: tool for tool in mcp_tools(http_peer.connection, prefix="billing")
    }
    port = int(http_peer.connection["url"].split(":")[-1].split("/")[0])
    restarted: list[Peer] = []

    def restart_server() -> str:
        http_peer.stop()
        restarted.append(start_http_peer(port, http_peer.log))
        return "restarted"

    tools["ops.restart_server"] = restart_server
    graph = runner.graph(tools, profile=TECHNICAL)
    plan = plan_of(
        {"id": "before", "tool": "billing.lookup", "args": {"invoice_id": "inv-11"}},
        {"id": "restart", "tool": "ops.restart_server", "depends_on": ["before"]},
        {
            "id": "after",
            "tool": "billing.lookup",
            "args": {"invoice_id": "inv-11"},
            "depends_on": ["restart"],
        },
    )
    try:
        result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    finally:
        MCPSessions.shared().close()
        for peer in restarted:
            peer.stop()
    assert [step["status"] for step in result["steps"]] == ["ok", "ok", "ok"]
    assert result["steps"][2]["attempts"] == 1
    calls = http_peer.calls()
    assert [call["tool"] for call in calls] == ["lookup", "lookup"]
    assert calls[0]["http_session"] != calls[1]["http_session"]
    assert calls[1]["header_key"] == calls[1]["meta_key"] == step_keys(runner, graph)["after"]


def test_a_timed_out_call_is_cancelled_on_the_server(runner: Runner, peer: Peer) -> None:
    """A call running past the profile's timeout: the step ends `error`/`timeout`, and the
    server is told to cancel it, so it never finishes there (nor could a retry run it twice),
    in sync runs as in async ones."""
    profile = Profile(name="mcp-timeout", redact=False, timeout_seconds=0.5)
    graph = runner.graph(mcp_tools(peer.connection, prefix="billing"), profile=profile)
    plan = plan_of({"id": "wait", "tool": "billing.slow", "args": {"seconds": 3}})
    step = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"][0]
    assert (step["status"], step["failure_context"]["error_type"]) == ("error", "timeout")
    assert peer.slow_events() == ["start", "cancelled"]


async def test_own_sessions_end_when_closed_and_open_again_when_called(tmp_path: Path) -> None:
    """`MCPSessions` of one's own: leaving it (sync or async) ends its session, and the stdio
    server's process with it; a tool called after that opens a new session (a new process,
    counting from 1), which `aclose()` ends in turn. The process's shared sessions are not
    involved."""
    peer = stdio_peer(tmp_path / "calls.jsonl")

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    with MCPSessions() as sessions:
        tools = {t.name: t for t in mcp_tools(peer.connection, prefix="billing", sessions=sessions)}
        first = await tools["billing.counter"].ainvoke({})
        assert first["count"] == 1
        assert not gone(first["pid"])
    assert gone(first["pid"])

    again = await tools["billing.counter"].ainvoke({})
    assert again["count"] == 1
    assert again["pid"] != first["pid"]
    await sessions.aclose()
    assert gone(again["pid"])

    async with MCPSessions() as others:
        loaded = await amcp_tools(peer.connection, prefix="billing", sessions=others)
        third = await next(t for t in loaded if t.name == "billing.counter").ainvoke({})
    assert gone(third["pid"])
    assert MCPSessions.shared()._open == {}


def test_a_prefix_with_a_dot_is_refused_before_connecting() -> None:
    """The prefix is the budget domain, the part of a tool name before the first dot."""
    connection: Connection = {"transport": "stdio", "command": "/no/such/server", "args": []}
    with pytest.raises(PlangateUsageError, match=r"invalid MCP tool prefix 'acme\.billing'"):
        mcp_tools(connection, prefix="acme.billing")


def test_without_the_extra_the_import_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain_mcp_adapters.sessions", None)
    # The package and its modules, imported again as in a process that never had them.
    package = "plangate.adapters.mcp"
    for name in [name for name in sys.modules if name == package or name.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    expected = "install plangate's `mcp` extra (from a checkout: pip install '.[mcp]')"
    with pytest.raises(ImportError, match=re.escape(expected)):
        importlib.import_module("plangate.adapters.mcp")


def test_an_mcp_release_the_adapters_cannot_use_is_named_with_what_to_do(tmp_path: Path) -> None:
    """An MCP server installed into plangate's environment can bring mcp>=2 (mcp-server-time
    does), which langchain-mcp-adapters cannot import: the error says so, not 'install the
    extra', which is installed. A stand-in `mcp` 2.3.0 shadows the real one in a new process."""
    (tmp_path / "mcp").mkdir()
    (tmp_path / "mcp" / "__init__.py").write_text("")
    info = tmp_path / "mcp-2.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mcp\nVersion: 2.3.0\n")
    done = run_in(
        tmp_path,
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import plangate.adapters.mcp",
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "need mcp<2 for langchain-mcp-adapters, but mcp 2.3.0 is installed" in last
    assert "uvx, npx, a separate venv" in last
