"""I/O-bound plans: tools that wait on the network (here: sleep), in layers of independent calls.

    python -m benchmarks.io_bound [--latency 0.05] [--widths 1 10 50] [--depths 1 2 3]
                                  [--reps 3] [--out benchmarks/results]

A plan of `depth` layers of `width` calls each; call `i` of a layer depends on call `i` of the
layer before, so the critical path is `depth x latency` whatever the width. Each call sleeps
`latency` seconds: `time.sleep` under `invoke`, `asyncio.sleep` under `ainvoke`. Measured, the
median of `--reps` runs, each on a fresh SQLite file:

- plangate under `technical` (no approvals) with `max_concurrency` set to the width, `invoke`
  (sync tools, run in threads) and `ainvoke` (async tools, awaited together);
- the peer: `langchain.agents.create_agent` driven by a scripted chat model that asks for a
  whole layer's calls in one turn (LangChain runs one turn's calls at once), sync and async;
- the critical path, `depth x latency`.

Writes `io_bound.json`, `io_bound.md` and `io_bound.png` to `--out`; ratios are taken within
the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, StructuredTool

from benchmarks.systems import _close, _config
from plangate import (
    aopen_checkpointer,
    build_graph,
    declare_action,
    load_profile,
    open_checkpointer,
)

MODES = ("sync", "async")


def lookup_tool(latency: float) -> BaseTool:
    """`io.lookup`: a read that waits `latency` seconds, with a sync and an async body."""

    def lookup(n: int) -> int:
        """Look `n` up (waits as a network call would)."""
        time.sleep(latency)
        return n

    async def alookup(n: int) -> int:
        """Look `n` up (waits as a network call would)."""
        await asyncio.sleep(latency)
        return n

    tool = StructuredTool.from_function(lookup, coroutine=alookup, name="io.lookup")
    return declare_action(tool, action="read")


def layered_plan(width: int, depth: int) -> dict[str, Any]:
    steps = [
        {
            "id": f"l{layer}-{i}",
            "tool": "io.lookup",
            "args": {"n": i},
            "depends_on": [f"l{layer - 1}-{i}"] if layer else [],
        }
        for layer in range(depth)
        for i in range(width)
    ]
    return {"goal": "io-bound", "steps": steps}


def _timed(build: Any, value: Any, mode: str, db: Path) -> tuple[float, Any]:
    """Build a graph with `build(saver)` on a fresh checkpointer at `db` (the async one for
    `ainvoke`), run it on `value`, and return the seconds the run took and its output."""
    config = _config("io")
    if mode == "sync":
        saver = open_checkpointer(str(db))
        graph = build(saver)
        started = time.perf_counter()
        out = graph.invoke(value, config)
        elapsed = time.perf_counter() - started
        _close(saver)
        return elapsed, out

    async def run() -> tuple[float, Any]:
        saver = await aopen_checkpointer(str(db))
        graph = build(saver)
        started = time.perf_counter()
        out = await graph.ainvoke(value, config)
        elapsed = time.perf_counter() - started
        await saver.conn.close()  # type: ignore[attr-defined]
        return elapsed, out

    return asyncio.run(run())


def run_plangate(width: int, depth: int, latency: float, mode: str, db: Path) -> float:
    tools = [lookup_tool(latency)]
    # A layer's calls all at once, as the peer makes them: `max_concurrency` is the width.
    profile = load_profile("technical").model_copy(update={"max_concurrency": width})
    elapsed, out = _timed(
        lambda saver: build_graph(tools, profile=profile, checkpointer=saver),
        {"plan": layered_plan(width, depth)},
        mode,
        db,
    )
    assert out["result"]["status"] == "success", out["result"]["status"]
    return elapsed


class LayerCaller(BaseChatModel):
    """A chat model that asks for one layer's `width` calls per turn, `depth` turns, then
    answers: what a model that plans a layer at a time does."""

    width: int
    depth: int

    @property
    def _llm_type(self) -> str:
        return "scripted-layer-caller"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> LayerCaller:  # type: ignore[override]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        layer = sum(1 for m in messages if isinstance(m, AIMessage))
        if layer >= self.depth:
            message = AIMessage(content="done")
        else:
            calls = [
                {"name": "io_lookup", "args": {"n": i}, "id": f"call-{layer}-{i}"}
                for i in range(self.width)
            ]
            message = AIMessage(content="", tool_calls=calls)
        return ChatResult(generations=[ChatGeneration(message=message)])


def run_peer(width: int, depth: int, latency: float, mode: str, db: Path) -> float:
    tool = lookup_tool(latency).model_copy(update={"name": "io_lookup"})
    model = LayerCaller(width=width, depth=depth)
    elapsed, out = _timed(
        lambda saver: create_agent(model, tools=[tool], checkpointer=saver),
        {"messages": [{"role": "user", "content": "go"}]},
        mode,
        db,
    )
    calls = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(calls) == width * depth, len(calls)
    return elapsed


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            for width in args.widths:
                for mode in MODES:
                    row: dict[str, Any] = {"width": width, "depth": depth, "mode": mode}
                    for name, runner in (("plangate", run_plangate), ("peer", run_peer)):
                        times = [
                            runner(
                                width,
                                depth,
                                args.latency,
                                mode,
                                Path(tmp) / f"{name}-{width}x{depth}-{mode}-{rep}.db",
                            )
                            for rep in range(args.reps)
                        ]
                        row[f"{name}_s"] = statistics.median(times)
                    row["critical_path_s"] = depth * args.latency
                    row["plangate_vs_critical_path"] = row["plangate_s"] / row["critical_path_s"]
                    row["plangate_vs_peer"] = row["plangate_s"] / row["peer_s"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], latency: float) -> str:
    lines = [
        f"Each call waits {latency * 1000:g} ms; wall seconds, median of the runs.",
        "",
        "| width | depth | mode | plangate s | peer s | critical path s | plangate / critical "
        "path | plangate / peer |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['width']} | {r['depth']} | {r['mode']} | {r['plangate_s']:.3f} | "
        f"{r['peer_s']:.3f} | {r['critical_path_s']:.3f} | "
        f"{r['plangate_vs_critical_path']:.2f} | {r['plangate_vs_peer']:.2f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.io_bound")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each call waits")
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    rows = measure(args)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"latency_s": args.latency, "reps": args.reps, "rows": rows}
    (args.out / "io_bound.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(rows, args.latency)
    (args.out / "io_bound.md").write_text(table)
    plot(rows, args.out / "io_bound.png")
    print(table)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Wall time against width, one panel per mode: plangate, the peer and the critical path,
    a line per depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODES), figsize=(11, 4.2), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        for depth in sorted({r["depth"] for r in rows}):
            mine = [r for r in rows if r["mode"] == mode and r["depth"] == depth]
            mine.sort(key=lambda r: r["width"])
            widths = [r["width"] for r in mine]
            for key, style, label in (
                ("plangate_s", "o-", "plangate"),
                ("peer_s", "s--", "create_agent peer"),
                ("critical_path_s", ":", "critical path"),
            ):
                ax.plot(widths, [r[key] for r in mine], style, label=f"{label}, depth {depth}")
        ax.set_xscale("log")
        ax.set_xlabel("calls per layer (width)")
        ax.set_title(f"{mode}: wall seconds")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
