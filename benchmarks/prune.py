"""How much does pruning finished runs give back, and does reading a pruned run cost more?

    python -m benchmarks.prune [--runs 1000] [--steps 20] [--reads 50] [--out benchmarks/results]

Fills a fresh SQLite file with `--runs` finished runs of `--steps` steps each (the `technical`
profile, a trivial tool), prunes every one (`prune_runs`), and reports the file's size before
and after, the time pruning took, and the median time to read one run back (`get_state`, what
`plangate show` reads, and `get_trace`, what `plangate trace` prints) before and after, over
`--reads` runs. Prints and writes `prune.json` and `prune.md`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks._results import write_results
from plangate import build_graph, get_trace, open_checkpointer, prune_runs


def _plan(steps: int) -> dict[str, Any]:
    return {
        "goal": "benchmark",
        "steps": [{"id": f"s{i}", "tool": "echo", "args": {"text": str(i)}} for i in range(steps)],
    }


def _median_ms(read: Callable[[dict[str, Any]], Any], configs: list[dict[str, Any]]) -> float:
    seconds = []
    for config in configs:
        started = time.perf_counter()
        read(config)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


def measure(runs: int, steps: int, reads: int, folder: Path) -> dict[str, Any]:
    saver = open_checkpointer(f"sqlite:///{folder / 'runs.db'}")
    graph = build_graph({"echo": lambda text="": text}, profile="technical", checkpointer=saver)
    configs = [{"configurable": {"thread_id": f"run-{i}"}} for i in range(runs)]
    for config in configs:
        graph.invoke({"plan": _plan(steps)}, config)
    # The write-ahead log into the file: "before" is then what the runs take, not the log's size.
    saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    sample = configs[:: max(1, runs // reads)][:reads]
    show_before = _median_ms(graph.get_state, sample)
    trace_before = _median_ms(lambda config: get_trace(graph, config), sample)
    started = time.perf_counter()
    report = prune_runs(graph, finished_before=timedelta(0))
    prune_seconds = time.perf_counter() - started
    return {
        "runs": runs,
        "steps": steps,
        "checkpoints_removed": report.checkpoints_removed,
        "bytes_before": report.bytes_before,
        "bytes_after": report.bytes_after,
        "prune_seconds": prune_seconds,
        "show_ms": {"before": show_before, "after": _median_ms(graph.get_state, sample)},
        "trace_ms": {
            "before": trace_before,
            "after": _median_ms(lambda config: get_trace(graph, config), sample),
        },
    }


def table(result: dict[str, Any]) -> str:
    mb_before, mb_after = result["bytes_before"] / 1e6, result["bytes_after"] / 1e6
    show, trace = result["show_ms"], result["trace_ms"]
    return "\n".join(
        [
            f"{result['runs']:,} finished runs of {result['steps']} steps (technical profile, "
            "a trivial tool), all pruned:",
            "",
            "| | before | after |",
            "|---|---:|---:|",
            f"| database size (MB) | {mb_before:.1f} | {mb_after:.1f} |",
            f"| read one run's state (`show`), median ms | {show['before']:.2f} "
            f"| {show['after']:.2f} |",
            f"| read one run's trace (`trace`), median ms | {trace['before']:.2f} "
            f"| {trace['after']:.2f} |",
            "",
            f"{result['checkpoints_removed']:,} checkpoints removed in "
            f"{result['prune_seconds']:.1f} s (VACUUM included); the file is "
            f"{mb_before / mb_after:.1f}x smaller.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prune")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        result = measure(args.runs, args.steps, args.reads, Path(folder))
    write_results(args.out, "prune", result, table(result))


if __name__ == "__main__":
    main()
