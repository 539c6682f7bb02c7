"""The MCP face (`plangate mcp`), driven by clients nobody here wrote: the `mcp` Python SDK's
client over stdio and streamable HTTP, and the MCP Inspector's command line. A plan submitted
through it waits for a person like any other run; the person approves with the real CLI; no
MCP tool decides, and nothing a plan says lowers the governance of a call."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest
import yaml
from _support import plangate
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from plangate.cli.output import ExitCode

SRC = str(Path(__file__).resolve().parents[1] / "src")
# The subprocesses import this tree's plangate, whatever the environment had on its path.
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
TOOLS = {"list_tools", "check_plan", "submit_plan", "run_status", "run_trace"}
TOKEN = "mcp-test-token-4f1c"
# The last Inspector release that runs on Node 20 (later ones ask for Node 22).
INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo project (`plangate init --demo`); each test runs its own threads in it."""
    folder = tmp_path_factory.mktemp("demo")
    made = plangate(folder, "init", "--demo", ".", env=ENV)
    assert made.returncode == 0, made.stderr
    return folder


def demo_plan(folder: Path) -> dict[str, Any]:
    plan: dict[str, Any] = yaml.safe_load((folder / "sales_followup.yaml").read_text())
    return plan


@asynccontextmanager
async def stdio_session(
    folder: Path, *options: str, errlog: TextIO = sys.stderr
) -> AsyncIterator[ClientSession]:
    """A client session with `python -m plangate mcp OPTIONS`, started by the SDK over stdio;
    the server's stderr goes to `errlog`."""
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "plangate", "mcp", *options],
        cwd=folder,
        env={**os.environ, **ENV},
    )
    async with (
        stdio_client(server, errlog=errlog) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured answer; fails the test on a tool error."""
    result = await session.call_tool(tool, arguments)
    assert not result.isError, result.content
    assert result.structuredContent is not None
    return result.structuredContent


async def refusal(session: ClientSession, tool: str, **arguments: Any) -> str:
    """The one line a tool error says."""
    result = await session.call_tool(tool, arguments)
    assert result.isError, result.structuredContent
    (content,) = result.content
    assert isinstance(content, types.TextContent)
    assert "\n" not in content.text, content.text
    return content.text


def approve_all(folder: Path, thread: str) -> None:
    """A person approves, with the real CLI, whatever the run waits for, until it waits no
    more (under `enterprise` the demo asks for a plan review first)."""
    for _ in range(4):
        shown = plangate(folder, "show", thread, env=ENV)
        if "Paused:" not in shown.stdout:
            return
        approved = plangate(folder, "approve", thread, "--approver", "lee", "--all", env=ENV)
        paused_again = approved.returncode == ExitCode.PAUSED
        assert approved.returncode == ExitCode.SUCCESS or paused_again, approved.stderr
    pytest.fail(f"run {thread} still waits after four approvals")


async def submit_approve_finish(session: ClientSession, folder: Path, thread: str) -> None:
    """The whole round: submit the demo plan, see it wait, approve in the CLI, see it finish."""
    submitted = await call(session, "submit_plan", plan=demo_plan(folder), thread=thread)
    assert submitted["thread"] == thread
    assert submitted["status"] in ("running", "waiting")
    waiting = await call(session, "run_status", thread=thread, wait_seconds=60)
    assert waiting["status"] == "waiting", waiting
    assert waiting["waiting"]
    assert all("args" not in request for request in waiting["waiting"])  # for the approver
    assert f"plangate approve {thread}" in waiting["next"]
    approve_all(folder, thread)
    finished = await call(session, "run_status", thread=thread, wait_seconds=60)
    assert finished["status"] == "success", finished
    assert [step["status"] for step in finished["steps"]] == ["ok", "ok", "ok"]
    trace = await call(session, "run_trace", thread=thread)
    assert trace["events"][-1]["type"] == "plan_completed"
    later = await call(session, "run_trace", thread=thread, after=trace["events"][-2]["seq"])
    assert later["events"] == trace["events"][-1:]


async def test_the_sdk_client_over_stdio_lists_checks_submits_and_follows_a_run(
    demo: Path,
) -> None:
    async with stdio_session(demo, "--profile", "smb") as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        listed = await call(session, "list_tools")
        assert listed["profile"] == "smb"
        rows = {row["tool"]: row for row in listed["tools"]}
        assert rows["email.send"]["asks"]
        assert rows["email.send"]["action"] == "execute"
        assert set(rows["email.send"]["args"]) == {"to", "subject", "body"}
        assert not rows["crm.lookup_account"]["asks"]

        mistyped = {"steps": [{"id": "s", "tool": "email.sned", "args": {"to": "a@b.example"}}]}
        report = await call(session, "check_plan", plan=mistyped)
        assert not report["ok"]
        (problem,) = report["problems"]
        assert problem["kind"] == "unknown_tool"
        assert problem["step_id"] == "s"
        assert "email.sned" in problem["message"]
        assert "email.send" in problem["message"]
        assert (await call(session, "check_plan", plan=demo_plan(demo)))["ok"]

        await submit_approve_finish(session, demo, "mcp-stdio")


async def test_run_status_waits_with_progress_notifications(demo: Path) -> None:
    """A client that gives `wait_seconds` and a progress token hears how far the run got."""
    heard: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        heard.append((done, total, message))

    async with stdio_session(demo, "--profile", "smb") as session:
        await call(session, "submit_plan", plan=demo_plan(demo), thread="mcp-progress")
        waiting = await call(session, "run_status", thread="mcp-progress", wait_seconds=60)
        assert waiting["status"] == "waiting"
        # Waiting on the same decision, it waits out the time, telling where the run is.
        result = await session.call_tool(
            "run_status",
            {"thread": "mcp-progress", "wait_seconds": 1.5},
            progress_callback=progress,
        )
        assert result.structuredContent
        assert result.structuredContent["status"] == "waiting"
        assert heard
        assert heard[-1] == (2, 3, "waiting: 2 of 3 steps ended")


@pytest.fixture(scope="module")
def http_server(demo: Path) -> Iterator[str]:
    """`plangate mcp --transport http` on a port the system picks; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "plangate", "mcp", "--transport", "http", "--port", "0"],
        cwd=demo,
        env={**os.environ, **ENV, "PLANGATE_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("plangate MCP server on http://127.0.0.1:"), first
        yield first.split()[4]
    finally:
        process.terminate()
        process.wait(15)


@asynccontextmanager
async def http_session(url: str, token: str = TOKEN) -> AsyncIterator[ClientSession]:
    client = httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30, read=120)
    )
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_the_sdk_client_over_streamable_http_follows_a_run_under_enterprise(
    demo: Path, http_server: str
) -> None:
    """Under the demo's own profile, enterprise, the run waits for a plan review first."""
    async with http_session(http_server) as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        await submit_approve_finish(session, demo, "mcp-http")


def test_over_http_every_request_needs_the_token_and_a_loopback_host(http_server: str) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "curious", "version": "1"},
        },
    }
    accept = {"accept": "application/json, text/event-stream"}
    for token in (None, "wrong"):
        headers = {**accept, **({"authorization": f"Bearer {token}"} if token else {})}
        refused = httpx.post(http_server, json=initialize, headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["hint"] == (
            "send Authorization: Bearer <the token plangate mcp printed>"
        )
    rebound = httpx.post(
        http_server,
        json=initialize,
        headers={**accept, "authorization": f"Bearer {TOKEN}", "host": "evil.example"},
    )
    assert rebound.status_code == 421, rebound.text
    served = httpx.post(
        http_server, json=initialize, headers={**accept, "authorization": f"Bearer {TOKEN}"}
    )
    assert served.status_code == 200, served.text


# --- what no plan and no client can do --------------------------------------------------------


async def test_a_plan_submitted_through_mcp_cannot_lower_the_governance_of_a_call(
    demo: Path,
) -> None:
    """A step that calls `email.send` as a `read` still waits for a person; the profile is
    the operator's, and an agent's attempt to pick one that asks less is refused."""
    disguised = {
        "goal": "Just looking",
        "steps": [
            {
                "id": "peek",
                "tool": "email.send",
                "action": "read",
                "args": {"to": "ana.lopez@acme.example", "subject": "Hi", "body": "Sent?"},
                "description": "Only read the inbox",
            }
        ],
    }
    async with stdio_session(demo, "--profile", "smb") as session:
        report = await call(session, "check_plan", plan=disguised)
        (step,) = report["steps"]
        assert (step["action"], step["asks"]) == ("execute", True)
        refused = await refusal(
            session, "submit_plan", plan=disguised, thread="mcp-sneak", profile="technical"
        )
        assert refused == "submit_plan: profile: Extra inputs are not permitted"
        await call(session, "submit_plan", plan=disguised, thread="mcp-disguised")
        status = await call(session, "run_status", thread="mcp-disguised", wait_seconds=60)
        assert status["status"] == "waiting"
        (request,) = status["waiting"]
        assert (request["step_id"], request["action"]) == ("peek", "execute")
        assert status["steps"][0]["output"] is None  # nothing was sent


async def test_no_mcp_tool_decides_an_approval(demo: Path) -> None:
    """No tool approves, rejects, edits, resumes or expires; a tool name made up to do so is
    unknown; and a second plan on a waiting run's thread is refused, not taken as its answer."""
    async with stdio_session(demo, "--profile", "smb") as session:
        listed = (await session.list_tools()).tools
        deciding = ("approv", "reject", "decid", "edit", "resum", "expir")
        assert not [tool.name for tool in listed if any(word in tool.name for word in deciding)]
        unknown = await refusal(session, "approve", thread="mcp-twice")
        assert unknown.startswith("no tool named 'approve'")

        await call(session, "submit_plan", plan=demo_plan(demo), thread="mcp-twice")
        again = await refusal(session, "submit_plan", plan=demo_plan(demo), thread="mcp-twice")
        assert again == "thread 'mcp-twice' already holds a run (leave the thread id empty)"
        status = await call(session, "run_status", thread="mcp-twice", wait_seconds=60)
        assert status["status"] == "waiting"


async def test_errors_come_back_as_one_line_tool_errors(demo: Path) -> None:
    async with stdio_session(demo) as session:
        assert await refusal(session, "run_status", thread="nope") == (
            "no run with thread id 'nope' (`plangate pending` lists paused runs)"
        )
        assert "steps" in await refusal(session, "submit_plan", plan={"goal": "nothing"})
        assert "not valid YAML/JSON" in await refusal(session, "submit_plan", plan="steps: [")
        assert await refusal(session, "run_status") == "run_status: thread: Field required"


def test_a_profile_the_project_does_not_have_is_refused_at_start(demo: Path) -> None:
    started = plangate(demo, "mcp", "--profile", "lenient", env=ENV)
    assert started.returncode == 1
    assert started.stdout == ""
    assert started.stderr.startswith("plangate: error: unknown profile 'lenient'")


NOISY_TOOLS = '''
import os

from plangate import declare_action

print("the toolkit loads")  # on stdout, as a careless toolkit would


@declare_action(action="read")
def peek(text: str) -> dict:
    """Echo `text`, printing as it goes."""
    print("peeking at", text)
    os.write(1, b"and straight to file descriptor 1\\n")
    return {"seen": text}


toolkit = {"noisy.peek": peek}
'''


async def test_over_stdio_a_tool_that_prints_cannot_break_the_protocol(tmp_path: Path) -> None:
    """What a project's tool writes to stdout lands on stderr: the client's stream holds the
    protocol alone (the SDK's client would skip a line that is not, so stderr is where to look),
    and the session goes on."""
    (tmp_path / "noisy.py").write_text(NOISY_TOOLS)
    (tmp_path / "plangate.yaml").write_text(
        yaml.safe_dump({"profile": "smb", "tools": [{"python": "noisy:toolkit"}]})
    )
    plan = {"steps": [{"id": "p", "tool": "noisy.peek", "args": {"text": "hi"}}]}
    with (tmp_path / "stderr.log").open("w+") as errlog:
        async with stdio_session(tmp_path, errlog=errlog) as session:
            await call(session, "submit_plan", plan=plan, thread="noisy")
            finished = await call(session, "run_status", thread="noisy", wait_seconds=60)
            assert finished["status"] == "success"
            assert finished["steps"][0]["output"] == {"seen": "hi"}
            assert (await call(session, "list_tools"))["tools"][0]["tool"] == "noisy.peek"
        errlog.seek(0)
        written = errlog.read()
    assert "the toolkit loads" in written
    assert "peeking at hi" in written
    assert "and straight to file descriptor 1" in written


# --- the MCP Inspector's command line ---------------------------------------------------------


def inspector(folder: Path, *arguments: str) -> dict[str, Any]:
    """What `npx @modelcontextprotocol/inspector --cli python -m plangate mcp ...` prints."""
    done = subprocess.run(
        ["npx", "-y", INSPECTOR, "--cli", sys.executable, "-m", "plangate", "mcp", *arguments],
        cwd=folder,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.mark.skipif(shutil.which("npx") is None, reason="the Inspector runs on Node.js (npx)")
def test_the_mcp_inspector_cli_lists_submits_and_sees_the_run_wait_then_finish(
    demo: Path,
) -> None:
    smb = ("--profile", "smb")
    listed = inspector(demo, *smb, "--method", "tools/list")
    assert {tool["name"] for tool in listed["tools"]} == TOOLS

    # The Inspector passes each argument as a string: the plan goes as its JSON text.
    plan = json.dumps(demo_plan(demo))
    call_tool = ("--method", "tools/call", "--tool-name")
    submitted = inspector(
        demo, *smb, *call_tool, "submit_plan", "--tool-arg", f"plan={plan}", "thread=mcp-insp"
    )
    assert not submitted.get("isError"), submitted
    assert submitted["structuredContent"]["thread"] == "mcp-insp"

    # Below the Inspector's own request timeout (10 s): waiting on the same decision, the
    # call waits all of it.
    status = (*call_tool, "run_status", "--tool-arg", "thread=mcp-insp", "wait_seconds=5")
    waiting = inspector(demo, *smb, *status)["structuredContent"]
    assert waiting["status"] == "waiting"
    assert [request["step_id"] for request in waiting["waiting"]] == ["send"]

    approve_all(demo, "mcp-insp")
    finished = inspector(demo, *smb, *status)["structuredContent"]
    assert finished["status"] == "success"
