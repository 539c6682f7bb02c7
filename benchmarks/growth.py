"""Per-step cost of a plangate run against plan length: wall time and checkpoint bytes.

    python benchmarks/growth.py [N ...]

Runs a plan of N trivial in-process tool calls under the `technical` profile (no approvals)
with a SQLite checkpointer on a temporary file, and prints milliseconds and checkpoint bytes per
step. Flat columns mean a step costs the same however many came before it.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from plangate import build_graph, open_checkpointer


def noop(n: int) -> int:
    return n


def measure(steps: int, repetitions: int = 3) -> tuple[float, float]:
    plan = {
        "goal": "bench",
        "steps": [{"tool": "bench.noop", "args": {"n": i}} for i in range(steps)],
    }
    times, sizes = [], []
    for rep in range(repetitions):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.db"
            saver = open_checkpointer(f"sqlite:///{db}")
            graph = build_graph({"bench.noop": noop}, profile="technical", checkpointer=saver)
            started = time.perf_counter()
            out = graph.invoke({"plan": plan}, {"configurable": {"thread_id": f"r{rep}"}})
            times.append((time.perf_counter() - started) * 1000 / steps)
            assert out["result"]["status"] == "success"
            saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            saver.conn.close()
            sizes.append(db.stat().st_size / steps)
    return statistics.median(times), statistics.median(sizes)


def main(argv: list[str]) -> None:
    lengths = [int(a) for a in argv] or [10, 100, 1000, 2000]
    print("| steps | ms per step | checkpoint bytes per step |")
    print("|------:|------------:|--------------------------:|")
    for n in lengths:
        ms, size = measure(n)
        print(f"| {n} | {ms:.2f} | {size:,.0f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
