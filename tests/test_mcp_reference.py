"""The MCP adapter against a server written by others: the reference filesystem server
(`@modelcontextprotocol/server-filesystem` from npm, pinned), over stdio, and the reference
memory server beside it. Their own tool annotations are what make a read run at once and a write
wait for a person under `smb`, and a destructive tool wait under every profile, `technical`
included; the plans say nothing about actions."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _support import Runner, plan_of, plangate, thread
from langchain_mcp_adapters.sessions import Connection, create_session
from langgraph.types import Command

from plangate.actions import ToolDeclaration, tool_declaration
from plangate.adapters.mcp import MCPSessions, mcp_tools
from plangate.cli import ExitCode
from plangate.errors import InvalidDecision

PACKAGE = "@modelcontextprotocol/server-filesystem"
MEMORY_PACKAGE = "@modelcontextprotocol/server-memory"
VERSION = "2026.8.31"


def _installed(
    request: pytest.FixtureRequest, factory: pytest.TempPathFactory, package: str
) -> Path:
    """The entry point of reference server `package`, installed from npm once per session (and
    kept in pytest's cache between sessions). Never a skip: without node and npm, or if the
    install fails, the tests fail saying why."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(f"node and npm are needed to run {package}; install Node.js 20 or later")
    cache = getattr(request.config, "cache", None)
    folder_name = f"npm-{package.rsplit('/', 1)[-1]}-{VERSION}"
    folder = cache.mkdir(folder_name) if cache is not None else factory.mktemp(folder_name)
    installed = folder / "node_modules" / package
    entry = installed / "dist" / "index.js"
    if not (entry.is_file() and _version(installed) == VERSION):
        command = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund"]
        done = subprocess.run(
            [*command, f"{package}@{VERSION}"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not entry.is_file():
            pytest.fail(
                f"cannot install {package}@{VERSION} with npm (exit {done.returncode}):\n"
                f"{done.stderr[-2000:]}"
            )
    return entry


@pytest.fixture(scope="session")
def filesystem_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _installed(request, tmp_path_factory, PACKAGE)


@pytest.fixture(scope="session")
def memory_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _installed(request, tmp_path_factory, MEMORY_PACKAGE)


def _version(installed: Path) -> str | None:
    try:
        return str(json.loads((installed / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(autouse=True)
def closed_sessions() -> Iterator[None]:
    """Each test's server process ends with the test, not with the test session."""
    yield
    MCPSessions.shared().close()


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    """The one folder the server may touch."""
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


def connection_to(server: Path, allowed: Path) -> Connection:
    return {"transport": "stdio", "command": "node", "args": [str(server), str(allowed)]}


def test_the_reference_server_marks_writes_destructive_and_reads_read_only(
    filesystem_server: Path, allowed: Path
) -> None:
    """`tools/list` as the server sends it: `write_file` destructive, `read_text_file` and
    `read_file` read-only; loaded through plangate, those annotations are the tools' trusted
    actions."""
    connection = connection_to(filesystem_server, allowed)

    async def listed() -> dict[str, Any]:
        async with create_session(connection) as session:
            await session.initialize()
            return {tool.name: tool.annotations for tool in (await session.list_tools()).tools}

    annotations = asyncio.run(listed())
    write = annotations["write_file"]
    assert write is not None
    assert (write.readOnlyHint, write.destructiveHint) == (False, True)
    for name in ("read_text_file", "read_file"):
        read = annotations[name]
        assert read is not None
        assert read.readOnlyHint is True, name

    tools = {tool.name: tool for tool in mcp_tools(connection, prefix="files")}
    assert tool_declaration(tools["files.write_file"]) == ToolDeclaration(
        action="execute", irreversible=True, source="mcp"
    )
    for name in ("files.read_text_file", "files.read_file"):
        assert tool_declaration(tools[name]) == ToolDeclaration(
            action="read", irreversible=False, source="mcp"
        )


def test_under_smb_a_read_runs_and_a_write_waits_until_approved(
    runner: Runner, filesystem_server: Path, allowed: Path
) -> None:
    """A plan with no `action`: reading a file runs without asking; writing one pauses as an
    irreversible `execute` said by the server, the file does not exist until the approval,
    and then holds the content."""
    (allowed / "note.txt").write_text("renew the Acme contract\n")
    target = allowed / "reply.txt"
    tools = mcp_tools(connection_to(filesystem_server, allowed), prefix="files")
    graph = runner.graph(tools, profile="smb")
    plan = plan_of(
        {"id": "read", "tool": "files.read_text_file", "args": {"path": str(allowed / "note.txt")}},
        {
            "id": "write",
            "tool": "files.write_file",
            "args": {"path": str(target), "content": "Renewal sent.\n"},
            "depends_on": ["read"],
        },
    )
    paused = runner.invoke(graph, {"plan": plan}, thread())
    request = paused["__interrupt__"][0].value
    assert request["step_id"] == "write"
    assert (request["action"], request["action_source"]) == ("execute", "mcp")
    assert (request["irreversible"], request["risk"]) == (True, "high")
    schema = request["response_schema"]["properties"]["args"]["anyOf"][0]
    assert set(schema["required"]) == {"path", "content"}
    assert not target.exists()

    result = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())["result"]
    assert result["status"] == "success"
    read, write = result["steps"]
    assert (read["status"], write["status"]) == ("ok", "ok")
    assert read.get("approval") is None
    assert read["output"] == {"content": "renew the Acme contract\n"}
    assert write["approval"]["decision"] == "approve"
    assert target.read_text() == "Renewal sent.\n"


def test_a_project_with_the_server_pauses_on_a_write_and_is_approved_from_elsewhere(
    filesystem_server: Path, tmp_path: Path
) -> None:
    """The reference server named inline in a project file (its `./data` is the project's:
    a stdio server starts in the project's folder). `plangate run` pauses on `fs.write_file`;
    `plangate approve --project` from another folder rebuilds the server's tools and writes."""
    project = tmp_path / "team"
    (project / "data").mkdir(parents=True)
    server = {"command": shutil.which("node"), "args": [str(filesystem_server), "./data"]}
    (project / "plangate.yaml").write_text(
        yaml.safe_dump({"profile": "smb", "tools": [{"mcp": {"fs": server}}]})
    )
    note = {"path": str(project / "data" / "note.txt"), "content": "approved"}
    plan = {"goal": "write a note", "steps": [{"id": "w", "tool": "fs.write_file", "args": note}]}
    (project / "plan.yaml").write_text(yaml.safe_dump(plan))

    run = plangate(project, "run", "plan.yaml", "--thread", "fs-1")
    assert run.returncode == ExitCode.PAUSED, run.stdout + run.stderr
    assert "Paused: step 'w' (fs.write_file) needs approval." in run.stdout
    assert "(from the tool's MCP annotations)" in run.stdout
    assert not (project / "data" / "note.txt").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    approved = plangate(elsewhere, "approve", "fs-1", "--project", str(project), "--approver", "x")
    assert approved.returncode == ExitCode.SUCCESS, approved.stdout + approved.stderr
    assert (project / "data" / "note.txt").read_text() == "approved"


def test_under_technical_the_destructive_tools_of_the_reference_servers_still_ask(
    runner: Runner, filesystem_server: Path, memory_server: Path, allowed: Path, tmp_path: Path
) -> None:
    """No auto-send: `technical` asks for no approvals, yet `write_file`, `move_file` and
    `delete_entities`, which their servers flag destructive, each wait for a person, in the
    plan's order, and nothing they would change has changed until each is approved."""
    (allowed / "draft.txt").write_text("draft\n")
    memory: Connection = {
        "transport": "stdio",
        "command": "node",
        "args": [str(memory_server)],
        "env": {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")},
    }
    tools = [
        *mcp_tools(connection_to(filesystem_server, allowed), prefix="files"),
        *mcp_tools(memory, prefix="memory"),
    ]
    graph = runner.graph(tools, profile="technical")
    entity = {"name": "acme", "entityType": "customer", "observations": ["renewal due"]}
    plan = plan_of(
        {"id": "remember", "tool": "memory.create_entities", "args": {"entities": [entity]}},
        {
            "id": "write",
            "tool": "files.write_file",
            "args": {"path": str(allowed / "reply.txt"), "content": "Renewal sent.\n"},
        },
        {
            "id": "move",
            "tool": "files.move_file",
            "args": {"source": str(allowed / "draft.txt"), "destination": str(allowed / "old.txt")},
        },
        {"id": "forget", "tool": "memory.delete_entities", "args": {"entityNames": ["acme"]}},
    )
    out = runner.invoke(graph, {"plan": plan}, thread())
    asked = []
    while "__interrupt__" in out:
        request = out["__interrupt__"][0].value
        asked.append((request["step_id"], request["irreversible"], request["risk"]))
        if request["step_id"] == "write":
            assert not (allowed / "reply.txt").exists()
        if request["step_id"] == "move":
            assert (allowed / "reply.txt").exists()
            assert (allowed / "draft.txt").exists()
        out = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())
    assert asked == [("write", True, "high"), ("move", True, "high"), ("forget", True, "high")]
    result = out["result"]
    assert result["status"] == "success", result
    assert (allowed / "old.txt").read_text() == "draft\n"
    assert not (allowed / "draft.txt").exists()


def test_an_edit_with_an_argument_write_file_does_not_take_is_refused_naming_every_field(
    runner: Runner, filesystem_server: Path, allowed: Path
) -> None:
    """The server's schema for `write_file` says nothing of extra properties, so an edit
    adding `mode: "0777"` was taken, and the server dropped the key: the approver approved a
    call that did not happen as shown. The edit is refused naming `mode`, and every other bad
    field with it; the run stays paused, and an edit within the schema then writes."""
    target = allowed / "reply.txt"
    tools = mcp_tools(connection_to(filesystem_server, allowed), prefix="files")
    graph = runner.graph(tools, profile="smb")
    step = {
        "id": "write",
        "tool": "files.write_file",
        "args": {"path": str(target), "content": "a"},
    }
    runner.invoke(graph, {"plan": plan_of(step)}, thread())

    for args, says in [
        (
            {"path": str(target), "content": "b", "mode": "0777"},
            "invalid edit for tool 'files.write_file': args.mode: files.write_file takes no "
            "argument 'mode' (path, content)",
        ),
        (
            {"path": 7, "mode": "0777"},
            "invalid edit for tool 'files.write_file': args.mode: files.write_file takes no "
            "argument 'mode' (path, content); args.path: 7 is not of type 'string'; "
            "args.content: Field required",
        ),
    ]:
        with pytest.raises(InvalidDecision) as caught:
            runner.invoke(graph, Command(resume={"decision": "edit", "args": args}), thread())
        assert str(caught.value).startswith(says), str(caught.value)
        assert caught.value.field == "args.mode"
        assert "\n" not in str(caught.value)
    assert not target.exists()

    edit = {"decision": "edit", "args": {"path": str(target), "content": "edited"}}
    result = runner.invoke(graph, Command(resume=edit), thread())["result"]
    assert result["status"] == "success"
    assert target.read_text() == "edited"
