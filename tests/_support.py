"""Test doubles and drivers shared by the tests: a settable clock, tools that count their
calls, and a `Runner` that drives a graph synchronously or asynchronously on a real SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import StateSnapshot

from plangate import (
    PlangateGraph,
    TraceEvent,
    aget_trace,
    aopen_checkpointer,
    build_graph,
    declare_action,
    get_trace,
    load_profile,
    open_checkpointer,
)
from plangate.plan import Action

# `enterprise` asking about each step on its own, with no review of the whole plan first: for
# tests of how single steps are gated.
ENTERPRISE_BY_STEP = load_profile("enterprise").model_copy(update={"plan_review": None})

# `technical` with the demo's and the tests' `email.send` exempt from the person every
# irreversible call waits for: for tests of what runs unattended, not of who is asked.
UNATTENDED = load_profile("technical").model_copy(update={"irreversible_exempt": ["email.send"]})


def unattended_profile(folder: Path) -> str:
    """`UNATTENDED` as a profile file in `folder`, for `--profile`; returns its path."""
    path = folder / "unattended.yaml"
    path.write_text(yaml.safe_dump(UNATTENDED.model_dump(mode="json")))
    return str(path)


# Second approvals that a person reads as `lee` again: after `lee`, none may complete four eyes,
# on any path. Case, a trailing space, a tab at the end or inside, a zero-width joiner, a Cyrillic
# e (U+0435), fullwidth letters, and a blank name (anonymous).
SAME_AS_LEE = ("Lee", "lee ", "lee\t", "le\te", "l\u200dee", "l\u0435e", "\uff4c\uff45\uff45", " ")
# Names that are no name: a decision carrying one is anonymous.
BLANK_NAMES = (" ", "  ", "\t", "\u200d")


@dataclass
class Clock:
    """A clock that only moves when a test moves it; pass it as `build_graph(clock=...)`."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class CallLog:
    """Records every call of the tools made by `counting_tools`, as (tool name, args)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def count(self, tool: str) -> int:
        return sum(1 for name, _ in self.calls if name == tool)


def counting_tools(
    log: CallLog, *names: str, failing: tuple[str, ...] = (), action: Action | None = "read"
) -> list[BaseTool]:
    """Tools named `names` taking one `text: str` argument; each call is logged, then tools in
    `failing` raise a `ToolException` and the others echo their input. They declare themselves
    `action` (by default `read`, so that a plan's `action`, which can only raise it, decides how
    each step is gated); `None` leaves them undeclared."""

    def make(name: str) -> BaseTool:
        def call(text: str = "") -> dict[str, Any]:
            log.calls.append((name, {"text": text}))
            if name in failing:
                raise ToolException(f"{name} is down")
            return {"tool": name, "echo": text}

        tool = StructuredTool.from_function(call, name=name, description=f"Test tool {name}.")
        return tool if action is None else declare_action(tool, action=action)

    return [make(name) for name in names]


@dataclass
class Runner:
    """Drives a graph the way a caller would: `mode` is `sync` or `async`."""

    mode: str
    db_path: Path
    _loop: asyncio.AbstractEventLoop | None = None
    _savers: list[BaseCheckpointSaver[Any]] = field(default_factory=list)

    def saver(self) -> BaseCheckpointSaver[Any]:
        """A fresh saver over the same SQLite file (sync or async, by mode)."""
        if self.mode == "sync":
            saver: BaseCheckpointSaver[Any] = open_checkpointer(f"sqlite:///{self.db_path}")
        else:
            saver = self.loop.run_until_complete(aopen_checkpointer(f"sqlite:///{self.db_path}"))
        self._savers.append(saver)
        return saver

    def graph(self, tools: Any, **kwargs: Any) -> PlangateGraph:
        """A graph on a fresh saver over the same SQLite file."""
        return build_graph(tools, checkpointer=self.saver(), **kwargs)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def invoke(self, graph: PlangateGraph, value: Any, config: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "sync":
            return graph.invoke(value, config)  # type: ignore[no-any-return]
        return self.loop.run_until_complete(graph.ainvoke(value, config))  # type: ignore[no-any-return]

    def stream(
        self, graph: PlangateGraph, value: Any, config: dict[str, Any], **kwargs: Any
    ) -> list[Any]:
        if self.mode == "sync":
            return list(graph.stream(value, config, **kwargs))

        async def collect() -> list[Any]:
            return [chunk async for chunk in graph.astream(value, config, **kwargs)]

        return self.loop.run_until_complete(collect())

    def state(self, graph: PlangateGraph, config: dict[str, Any]) -> StateSnapshot:
        if self.mode == "sync":
            return graph.get_state(config)  # type: ignore[arg-type]
        return self.loop.run_until_complete(graph.aget_state(config))  # type: ignore[arg-type]

    def trace(self, graph: PlangateGraph, config: dict[str, Any]) -> list[TraceEvent]:
        if self.mode == "sync":
            return get_trace(graph, config)  # type: ignore[arg-type]
        return self.loop.run_until_complete(aget_trace(graph, config))  # type: ignore[arg-type]

    def close(self) -> None:
        for saver in self._savers:
            conn = getattr(saver, "conn", None)
            if conn is None:
                continue
            if self.mode == "sync":
                conn.close()
            else:
                self.loop.run_until_complete(conn.close())
        if self._loop is not None:
            self._loop.close()


def thread(name: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def plan_of(*steps: dict[str, Any], goal: str = "test", order: str | None = None) -> dict[str, Any]:
    """A plan of `steps`; `order="dependencies"` lets its effects run together (tests of what
    happens when several steps wait or run at once)."""
    plan: dict[str, Any] = {"goal": goal, "steps": list(steps)}
    if order is not None:
        plan["order"] = order
    return plan


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` (an ASGI app: the inbox) served by uvicorn in a thread of this process, on a
    loopback port bound before the server starts (`listen`), so that nothing else can take it
    meanwhile; yields its base URL, and stops it after."""
    import threading

    import uvicorn

    from plangate.server import listen

    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the inbox did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, for a peer a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The only token the billing peer's `customers` operations accept; tests read it from
# BILLING_TOKEN.
BILLING_TOKEN = "tok-7f3a9c1e55d04b2a"
BILLING_PEER = Path(__file__).parent / "peers" / "http_service.py"
MCP_PEER = Path(__file__).parent / "peers" / "mcp_server.py"


@dataclass
class Service:
    """The running billing service (`peers/http_service.py`), and what it has seen."""

    url: str

    def requests(self) -> list[dict[str, Any]]:
        """Every request to its API: method, path, query, body, idempotency_key, headers."""
        seen: list[dict[str, Any]] = httpx.get(f"{self.url}/_requests").json()
        return seen

    def refunds(self) -> list[dict[str, Any]]:
        made: list[dict[str, Any]] = httpx.get(f"{self.url}/_refunds").json()
        return made


@contextlib.contextmanager
def billing_service(port: int | None = None) -> Iterator[Service]:
    """The billing service in a process of its own on loopback, on `port` (default: a free
    one)."""
    port = port or free_port()
    environment = {**os.environ, "BILLING_SERVICE_TOKEN": BILLING_TOKEN}
    process = subprocess.Popen([sys.executable, str(BILLING_PEER), str(port)], env=environment)
    service = Service(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    try:
        while True:  # wait until it answers
            assert process.poll() is None, "the HTTP peer exited while starting"
            try:
                httpx.get(f"{service.url}/openapi.json").raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the HTTP peer did not start answering"
                time.sleep(0.05)
        yield service
    finally:
        process.kill()
        process.wait()


TEAM_TOOLS = '''
from plangate import declare_action


@declare_action(action="read")
def note(text: str) -> dict:
    """Write nothing; echo a note."""
    return {"note": text}


toolkit = {"team.note": note}
'''
"""A project's own Python toolkit (`teamtools.py`): one read tool, `team.note`."""


def write_team_project(
    folder: Path,
    billing_url: str,
    mcp_log: Path,
    *,
    toolkit: str = "teamtools:toolkit",
    **changes: Any,
) -> dict[str, Any]:
    """A project with a Python toolkit (`teamtools.py`, unless `toolkit` names another), the MCP
    peer on stdio as `ledger` (its calls logged to `mcp_log`) and the billing service's
    invoices, refunds and customers as `billing`, under `smb`; `changes` replace keys of the
    file. Returns what plangate.yaml holds."""
    folder.mkdir(parents=True, exist_ok=True)
    if toolkit == "teamtools:toolkit":
        (folder / "teamtools.py").write_text(TEAM_TOOLS)
    servers = {
        "ledger": {"command": sys.executable, "args": [str(MCP_PEER), "stdio", str(mcp_log)]}
    }
    (folder / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
    spec: dict[str, Any] = {
        "db": "sqlite:///runs/plangate.db",
        "profile": "smb",
        "tools": [
            {"python": toolkit},
            {"mcp": ".mcp.json"},
            {
                "openapi": f"{billing_url}/openapi.json",
                "prefix": "billing",
                "include": ["get_invoice", "create_refund", "get_customer"],
                "auth": {"HTTPBearer": "${BILLING_TOKEN}"},
            },
        ],
        **changes,
    }
    (folder / "plangate.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec


DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo"


def copy_demo(folder: Path) -> Path:
    """A copy of `examples/demo` in `folder` as the repository holds it: its project file,
    plans and `langgraph.json` (its YAML and JSON files), without what running the demo there
    left beside them (the README's first command writes `plangate.db`, the outbox and a lock),
    so that a test sees only its own runs."""
    shutil.copytree(
        DEMO,
        folder,
        ignore=lambda _, names: [n for n in names if Path(n).suffix not in (".yaml", ".json")],
    )
    return folder


def run_in(
    cwd: Path, *command: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `command` in a process of its own in `cwd`, capturing its output as text; `env` adds
    to the environment."""
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def plangate(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `plangate` command in a process of its own, as a user would, in `cwd`."""
    return run_in(cwd, sys.executable, "-m", "plangate", *args, env=env)


# `plangate ARGS`, killed by SIGKILL as it stores its `KILL_AT`th checkpoint (run it with
# `python -c KILLED_AT_CHECKPOINT ARGS`): what a crash leaves, a run between two steps that no
# process runs any more; the step before the kill has saved its writes, and the checkpoint that
# would follow them is never written.
KILLED_AT_CHECKPOINT = """
import os, runpy, signal, sys
from langgraph.checkpoint.sqlite import SqliteSaver

put, stored = SqliteSaver.put, []


def put_then_die(self, *args, **kwargs):
    stored.append(1)
    if len(stored) == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return put(self, *args, **kwargs)


SqliteSaver.put = put_then_die
sys.argv = ["plangate", *sys.argv[1:]]
runpy.run_module("plangate", run_name="__main__")
"""


def npm_package(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    package: str,
    version: str,
    *,
    node: str = "Node.js 20 or later",
) -> Path:
    """A folder with npm's `package` at `version` installed, once per session (kept in pytest's
    cache between sessions). Never a skip: without node and npm, or if the install fails, the
    test fails saying why."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail(f"node and npm are needed to run {package}; install {node}")
    cache = getattr(request.config, "cache", None)
    name = f"npm-{package.strip('@').replace('/', '-')}-{version}"
    folder = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    installed = folder / "node_modules" / package / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != version:
        done = subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
             f"{package}@{version}"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not installed.is_file():
            pytest.fail(f"cannot install {package}@{version}: {done.stderr[-2000:]}")
    return Path(folder)


# Debian's chromium as the browser tests run it (Playwright drives it; no browser download).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
