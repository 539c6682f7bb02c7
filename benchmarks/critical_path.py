"""Plans of waiting calls against their critical path, with the `technical` profile as shipped.

    python -m benchmarks.critical_path [--scale 1.0] [--reps 3] [--out benchmarks/results]

The plans (latencies times `--scale`; `sync` mode, tools run in threads):

- `10 wide x 2 deep`, 200 ms a call;
- `16 wide x 2 deep`, 200 ms a call;
- `1 s beside 5 x 100 ms`: one slow call beside a chain of five quick ones;
- `2 s beside 10 x 200 ms`: the same, longer.

A wave of plangate is a LangGraph superstep, which ends with its slowest call; a read takes the
chain of reads that goes on from it along in its task, so a quick chain beside a slow call does
not wait for it at each link: the heterogeneous plans show what is left against the critical
path. The layered plans are also run by the peer (`create_agent` asking for a layer's calls in
one turn, as `benchmarks.io_bound` does). Targets, at the shipped defaults: at most 1.25x the
critical path on the heterogeneous plans, at most 1.1x the peer on the layered ones. Writes
`critical_path.json` and `.md` to `--out`; the table says which targets are met, and the gap.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from benchmarks._results import write_results
from benchmarks.io_bound import _timed, layered_plan, run_peer
from benchmarks.io_bound import lookup_tool as layered_tool
from plangate import build_graph, declare_action, load_profile

TARGET_VS_CRITICAL_PATH = 1.25
TARGET_VS_PEER = 1.1


def wait_tool() -> BaseTool:
    """`io.wait`: a read that waits the seconds it is given, as a network call would."""

    def wait(seconds: float) -> float:
        """Wait `seconds` (as a network call would)."""
        time.sleep(seconds)
        return seconds

    return declare_action(StructuredTool.from_function(wait, name="io.wait"), action="read")


def beside_plan(slow: float, chain: int, quick: float) -> dict[str, Any]:
    """One `slow` call, and beside it a chain of `chain` calls of `quick` seconds, each
    depending on the one before."""
    steps: list[dict[str, Any]] = [{"id": "slow", "tool": "io.wait", "args": {"seconds": slow}}]
    steps += [
        {
            "id": f"c{i}",
            "tool": "io.wait",
            "args": {"seconds": quick},
            "depends_on": [f"c{i - 1}"] if i else [],
        }
        for i in range(chain)
    ]
    return {"goal": "a slow call beside a chain", "steps": steps}


def run_plan(tools: list[BaseTool], plan: dict[str, Any], db: Path) -> float:
    """Seconds plangate takes on `plan` under `technical` as shipped."""
    profile = load_profile("technical")
    elapsed, out = _timed(
        lambda saver: build_graph(tools, profile=profile, checkpointer=saver),
        {"plan": plan},
        "sync",
        db,
    )
    assert out["result"]["status"] == "success", out["result"]["status"]
    return elapsed


def measure(scale: float, reps: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for width in (10, 16):
            latency = 0.2 * scale
            times = [
                run_plan(
                    [layered_tool(latency)], layered_plan(width, 2), Path(tmp) / f"l{width}-{r}.db"
                )
                for r in range(reps)
            ]
            peer = [
                run_peer(width, 2, latency, "sync", Path(tmp) / f"p{width}-{r}.db")
                for r in range(reps)
            ]
            rows.append(
                {
                    "plan": f"{width} wide x 2 deep, {latency * 1000:g} ms a call",
                    "plangate_s": statistics.median(times),
                    "critical_path_s": 2 * latency,
                    "peer_s": statistics.median(peer),
                }
            )
        for slow_s, chain, quick_s in ((1.0, 5, 0.1), (2.0, 10, 0.2)):
            slow, quick = slow_s * scale, quick_s * scale
            plan = beside_plan(slow, chain, quick)
            times = [
                run_plan([wait_tool()], plan, Path(tmp) / f"b{chain}-{r}.db") for r in range(reps)
            ]
            rows.append(
                {
                    "plan": f"{slow:g} s beside {chain} x {quick * 1000:g} ms",
                    "plangate_s": statistics.median(times),
                    "critical_path_s": max(slow, chain * quick),
                    "peer_s": None,
                }
            )
    for row in rows:
        row["plangate_vs_critical_path"] = row["plangate_s"] / row["critical_path_s"]
        row["plangate_vs_peer"] = row["plangate_s"] / row["peer_s"] if row["peer_s"] else None
        row["target"], row["met"] = (
            (f"<= {TARGET_VS_PEER}x the peer", row["plangate_vs_peer"] <= TARGET_VS_PEER)
            if row["peer_s"]
            else (
                f"<= {TARGET_VS_CRITICAL_PATH}x the critical path",
                row["plangate_vs_critical_path"] <= TARGET_VS_CRITICAL_PATH,
            )
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"`technical` as shipped (`max_concurrency` {load_profile('technical').max_concurrency})"
        "; wall seconds, median of the runs.",
        "",
        "| plan | plangate s | critical path s | plangate / critical path | plangate / peer | "
        "target | met |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        versus_peer = f"{row['plangate_vs_peer']:.2f}" if row["plangate_vs_peer"] else "-"
        lines.append(
            f"| {row['plan']} | {row['plangate_s']:.2f} | {row['critical_path_s']:.2f} | "
            f"{row['plangate_vs_critical_path']:.2f} | {versus_peer} | {row['target']} | "
            f"{'yes' if row['met'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.critical_path")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every latency")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    rows = measure(args.scale, args.reps)
    write_results(args.out, "critical_path", {"scale": args.scale, "rows": rows}, table(rows))


if __name__ == "__main__":
    main()
