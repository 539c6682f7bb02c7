"""What validating a plan costs before anything runs, as plans grow.

    python -m benchmarks.validation [--sizes 1000 10000] [--reps 5]

Times `parse_plan` on plans of `--sizes` steps, each step a small call (a few args, one nested
mapping) depending on its neighbour: in list order (each step depends on the one before it) and in
reverse-dependency order (each step depends on the one after it, so that every step must be
moved). Prints the median of `--reps` runs, in milliseconds; linear validation takes about ten
times as long at 10,000 steps as at 1,000.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Literal

from plangate.plan import parse_plan

Order = Literal["list", "reverse"]
ORDERS: tuple[Order, ...] = ("list", "reverse")


def plan_of(size: int, order: Order) -> dict[str, Any]:
    """A plan of `size` steps, each depending on the previous (`list`) or the next (`reverse`)."""
    steps = []
    for n in range(size):
        dep = n - 1 if order == "list" else n + 1
        steps.append(
            {
                "id": f"s{n}",
                "tool": "crm.lookup",
                "args": {"account": f"acct-{n}", "limit": 10, "filters": {"region": "eu"}},
                "depends_on": [f"s{dep}"] if 0 <= dep < size else [],
                "description": f"Look up account {n}",
            }
        )
    return {"goal": f"{size} steps in {order} order", "steps": steps}


def median_ms(size: int, order: Order, reps: int) -> float:
    data = plan_of(size, order)
    seconds = []
    for _ in range(reps):
        started = time.perf_counter()
        plan = parse_plan(data)
        seconds.append(time.perf_counter() - started)
        assert plan.steps[0].id == ("s0" if order == "list" else f"s{size - 1}")
    return statistics.median(seconds) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--reps", type=int, default=5)
    options = parser.parse_args(argv)
    print("| steps | list order | reverse-dependency order |")
    print("|---:|---:|---:|")
    for size in options.sizes:
        cells = [f"{median_ms(size, order, options.reps):,.1f} ms" for order in ORDERS]
        print(f"| {size:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
