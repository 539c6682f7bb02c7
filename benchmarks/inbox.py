"""What reading runs back costs as the database and the runs grow: listing what waits for a
decision, and following a long run's trace live.

    python -m benchmarks.inbox [--runs 100 1000] [--waiting 50] [--steps 10] [--samples 5]
                               [--follow 1000]

Listing: for each total, fills a fresh SQLite file with that many runs of `--steps` steps,
`--waiting` of them paused at their last step and the rest finished, then times
`pending_approvals` (what `plangate pending` and `plangate expire` read) and the inbox's
`/api/pending`. Prints the median of `--samples` listings, in milliseconds.

Following: runs a plan of `--follow` steps and, after every step, polls as the inbox's live trace
does (the latest checkpoint id, then `trace_since` the one seen last). Prints the mean poll in
the first and the last tenth of the run: flat means a poll does not grow with the run.
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

from benchmarks.systems import APPROVALS_PROFILE, SEQUENTIAL_PROFILE, _close, _config, noop
from plangate import build_graph, open_checkpointer, pending_approvals
from plangate.runs.history import trace_since
from plangate.runs.service import RunService


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


def follow(steps: int) -> tuple[float, float]:
    """Mean milliseconds per poll in the first and the last tenth of a `steps`-step run."""
    with tempfile.TemporaryDirectory() as tmp:
        saver = open_checkpointer(str(Path(tmp) / "follow.db"))
        # One step at a time, so that a poll after each step sees one step's events.
        graph = build_graph({"bench.noop": noop}, profile=SEQUENTIAL_PROFILE, checkpointer=saver)
        config = _config("follow")
        plan = {
            "goal": "follow",
            "steps": [{"tool": "bench.noop", "args": {"n": step}} for step in range(steps)],
        }
        seen: str | None = None
        polls: list[float] = []
        events = 0
        # Three supersteps per step: poll after the last of each.
        for update, _ in enumerate(graph.stream({"plan": plan}, config, stream_mode="updates")):
            if update % 3:
                continue
            started = time.perf_counter()
            saved = saver.get_tuple(config)
            assert saved is not None
            events += len([e for e in trace_since(graph, config, seen) if e["seq"] >= events])
            seen = saved.config["configurable"]["checkpoint_id"]
            polls.append(time.perf_counter() - started)
        _close(saver)
    tenth = max(1, len(polls) // 10)
    assert events > 3 * steps, events  # every step's events were followed
    return sum(polls[:tenth]) / tenth * 1000, sum(polls[-tenth:]) / tenth * 1000


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inbox", description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--waiting", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--follow", type=int, default=1000)
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
    first, last = follow(args.follow)
    print(
        f"\nFollowing a run of {args.follow:,} steps, one poll per step: "
        f"{first:.2f} ms per poll in the first tenth, {last:.2f} ms in the last."
    )


if __name__ == "__main__":
    main(sys.argv[1:])
