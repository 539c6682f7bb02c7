"""What a plan step calling an MCP tool costs, against the same step calling an in-process tool
and a raw `mcp` client call on a session kept open.

    python -m benchmarks.mcp [--steps 20] [--reps 5] [--server peer|filesystem] [--entry PATH]

The server is a FastMCP server on stdio (`tests/peers/mcp_server.py`, its read-only `lookup`)
or, with `--server filesystem`, the npm reference filesystem server (`read_text_file` on a small
file), found where `tests/test_mcp_reference.py` installs it, in pytest's cache, or at `--entry`.

Runs a plan of `--steps` read steps under `technical` on a fresh SQLite file, through `invoke`
and through `ainvoke`, `--reps` times each, with the MCP tool and then with an in-process tool
returning the same output; and times `--steps` raw `call_tool`s on one kept session. Prints the
median milliseconds per step (loading the tools is not counted) and exits 1 when an MCP step
costs more than the target: the in-process step plus twice the raw call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from langchain_mcp_adapters.sessions import Connection, create_session

from plangate import aopen_checkpointer, build_graph, open_checkpointer
from plangate.adapters.mcp import mcp_tools

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "tests" / "peers" / "mcp_server.py"
FILESYSTEM_ENTRY = "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"


class Server:
    """How to start the server, which read tool to call and with what, and its output."""

    def __init__(self, kind: str, folder: Path, entry: Path | None) -> None:
        if kind == "peer":
            self.connection: Connection = {
                "transport": "stdio",
                "command": sys.executable,
                "args": [str(PEER), "stdio", str(folder / "calls.jsonl")],
            }
            self.remote, self.output = "lookup", {"status": "paid"}
            self.args: Callable[[int], dict[str, Any]] = lambda i: {"invoice_id": f"inv-{i}"}
        else:
            self._filesystem(folder, entry)
        self.tool = f"bench.{self.remote}"

    def _filesystem(self, folder: Path, entry: Path | None) -> None:
        entry = entry or _installed_filesystem_server()
        allowed = folder / "files"
        allowed.mkdir()
        (allowed / "note.txt").write_text("renew the Acme contract\n")
        self.connection = {
            "transport": "stdio",
            "command": "node",
            "args": [str(entry), str(allowed)],
        }
        self.remote, self.output = "read_text_file", {"content": "renew the Acme contract\n"}
        self.args = lambda _: {"path": str(allowed / "note.txt")}

    def in_process(self) -> BaseTool:
        output = self.output

        def read(**_: Any) -> dict[str, Any]:
            return dict(output)

        return StructuredTool.from_function(
            read, name=self.tool, description="The MCP tool's stand-in.", infer_schema=False
        )

    def plan(self, steps: int) -> dict[str, Any]:
        return {
            "goal": "read",
            "steps": [
                {"id": f"s{i}", "tool": self.tool, "args": self.args(i), "action": "read"}
                for i in range(steps)
            ],
        }


def _installed_filesystem_server() -> Path:
    found = sorted(
        (ROOT / ".pytest_cache" / "d").glob(f"npm-server-filesystem-*/{FILESYSTEM_ENTRY}")
    )
    if not found:
        raise SystemExit(
            "the reference filesystem server is not installed: run "
            "`pytest tests/test_mcp_reference.py` once, or pass --entry PATH/dist/index.js"
        )
    return found[-1]


def run_ms(tool: BaseTool, server: Server, *, steps: int, reps: int, mode: str, db: Path) -> float:
    """Median milliseconds per step of a plan of `steps` calls of `tool`, run `reps` times."""
    plan = server.plan(steps)
    seconds = []
    if mode == "sync":
        saver = open_checkpointer(str(db))
        graph = build_graph({server.tool: tool}, profile="technical", checkpointer=saver)
        for rep in range(reps):
            started = time.perf_counter()
            out = graph.invoke({"plan": plan}, {"configurable": {"thread_id": f"sync-{rep}"}})
            seconds.append(time.perf_counter() - started)
            _check(out, steps)
        saver.conn.close()  # type: ignore[attr-defined]
        return statistics.median(seconds) * 1000 / steps

    async def runs() -> None:
        saver = await aopen_checkpointer(str(db))
        graph = build_graph({server.tool: tool}, profile="technical", checkpointer=saver)
        for rep in range(reps):
            started = time.perf_counter()
            config = {"configurable": {"thread_id": f"async-{rep}"}}
            out = await graph.ainvoke({"plan": plan}, config)
            seconds.append(time.perf_counter() - started)
            _check(out, steps)
        await saver.conn.close()  # type: ignore[attr-defined]

    asyncio.run(runs())
    return statistics.median(seconds) * 1000 / steps


def _check(out: dict[str, Any], steps: int) -> None:
    # A failed step is fast and would flatter the numbers: every step must have read something.
    statuses = [step["status"] for step in out["result"]["steps"]]
    if statuses != ["ok"] * steps:
        failed = next(step for step in out["result"]["steps"] if step["status"] != "ok")
        raise SystemExit(f"a step did not succeed: {failed.get('error')}")


def raw_ms(server: Server, calls: int, reps: int) -> float:
    """Median milliseconds of a `call_tool` on one session, kept open across the calls."""

    async def timed() -> list[float]:
        seconds = []
        async with create_session(server.connection) as session:
            await session.initialize()
            await session.call_tool(server.remote, server.args(0))  # warm the server up
            for rep in range(reps):
                for i in range(calls):
                    started = time.perf_counter()
                    result = await session.call_tool(server.remote, server.args(rep * calls + i))
                    seconds.append(time.perf_counter() - started)
                    if result.isError:
                        raise SystemExit(f"{server.remote} failed: {result.content}")
        return seconds

    return statistics.median(asyncio.run(timed())) * 1000


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mcp", description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--server", choices=("peer", "filesystem"), default="peer")
    parser.add_argument("--entry", type=Path, help="the filesystem server's dist/index.js")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = Server(args.server, folder, args.entry)
        tools = {tool.name: tool for tool in mcp_tools(server.connection, prefix="bench")}
        remote = tools[server.tool]
        raw = raw_ms(server, args.steps, args.reps)
        print(f"MCP server: {args.server} on stdio; {args.steps} read steps, median of {args.reps}")
        print(f"raw `call_tool` on a kept session: {raw:.2f} ms per call\n")
        print("| run | in-process ms/step | MCP ms/step | target ms/step | within |")
        print("|---|---:|---:|---:|---|")
        missed = []
        for mode in ("sync", "async"):
            local, mcp = (
                run_ms(tool, server, steps=args.steps, reps=args.reps, mode=mode, db=db)
                for tool, db in (
                    (server.in_process(), folder / f"{mode}-local.db"),
                    (remote, folder / f"{mode}-mcp.db"),
                )
            )
            target = local + 2 * raw
            within = mcp <= target
            if not within:
                missed.append(mode)
            verdict = "yes" if within else "no"
            print(f"| {mode} | {local:.2f} | {mcp:.2f} | {target:.2f} | {verdict} |", flush=True)
    if missed:
        print(f"\nOver the target: {', '.join(missed)}.")
        raise SystemExit(1)
    print("\nEvery run within the target.")


if __name__ == "__main__":
    main(sys.argv[1:])
