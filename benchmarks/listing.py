"""How long listing what waits for a decision takes, against how many runs the database holds.

    python -m benchmarks.listing [--runs 100 1000] [--waiting 50] [--steps 10] [--samples 5]

For each total, fills a fresh SQLite file with that many runs of `--steps` steps, `--waiting`
of them paused at their last step and the rest finished, then times `pending_approvals` (what
`plangate pending` and `plangate expire` read) and the inbox's `/api/pending` listing. Prints
the median of `--samples` listings, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.systems import APPROVALS_PROFILE, _close, _config, noop
from plangate import build_graph, open_checkpointer, pending_approvals
from plangate.server._runs import RunService


def fill(db: Path, runs: int, waiting: int, steps: int) -> None:
    saver = open_checkpointer(str(db))
    graph = build_graph({"bench.noop": noop}, profile=APPROVALS_PROFILE, checkpointer=saver)
    for run in range(runs):
        gated = run < waiting
        plan = {
            "goal": f"run {run}",
            "steps": [
                {
                    "tool": "bench.noop",
                    "args": {"n": step},
                    "action": "execute" if gated and step == steps - 1 else "read",
                }
                for step in range(steps)
            ],
        }
        out = graph.invoke({"plan": plan}, _config(f"run-{run}"))
        assert bool(out.get("__interrupt__")) == gated
    _close(saver)


def median_ms(listing: Callable[[], Iterable[Any]], expected: int, samples: int) -> float:
    seconds = []
    for _ in range(samples):
        started = time.perf_counter()
        found = list(listing())
        seconds.append(time.perf_counter() - started)
        assert len(found) == expected, (len(found), expected)
    return statistics.median(seconds) * 1000


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.listing", description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--waiting", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args(argv)

    print("| runs in the database | pending_approvals ms | inbox /api/pending ms |")
    print("|---:|---:|---:|")
    for runs in args.runs:
        waiting = min(args.waiting, runs)
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "listing.db"
            fill(db, runs, waiting, args.steps)
            saver = open_checkpointer(str(db))
            graph = build_graph({"bench.noop": noop}, profile=APPROVALS_PROFILE, checkpointer=saver)
            library = median_ms(partial(pending_approvals, graph), waiting, args.samples)
            _close(saver)
            service = RunService(str(db))
            try:
                inbox = median_ms(service.pending, waiting, args.samples)
            finally:
                service.close()
        print(f"| {runs:,} | {library:.1f} | {inbox:.1f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
