"""Does resuming a run cost more the more it has done?

    python -m benchmarks.resume_growth [--done 100 2000] [--samples 50] [--out benchmarks/results]

For each number of steps done, a run in a process of its own completes that many steps, then
pauses at a gated step `--samples` times; each `invoke(Command(resume=...))` to the next pause
is timed (see `benchmarks.systems.resume_latencies`). Prints and writes `resume_growth.json` and
`resume_growth.md`: the median and p95 per size, and the ratio of the largest size's median to
the smallest's (the target: at most 1.25).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

TARGET = 1.25


def latencies(done: int, samples: int) -> list[float]:
    ran = subprocess.run(
        [sys.executable, "-m", "benchmarks.case", "resume", str(done), str(samples)],
        capture_output=True,
        text=True,
        check=False,
    )
    if ran.returncode != 0:
        raise SystemExit(f"resume after {done} steps failed:\n{ran.stderr}")
    seconds: list[float] = json.loads(ran.stdout.strip().splitlines()[-1])["seconds"]
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resume_growth")
    parser.add_argument("--done", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for done in args.done:
        seconds = sorted(latencies(done, args.samples))
        rows.append(
            {
                "done": done,
                "median_ms": statistics.median(seconds) * 1000,
                "p95_ms": seconds[max(0, int(0.95 * len(seconds)) - 1)] * 1000,
            }
        )
    growth = rows[-1]["median_ms"] / rows[0]["median_ms"]
    report = {"samples": args.samples, "rows": rows, "growth": growth, "target": TARGET}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "resume_growth.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "| steps done | median ms | p95 ms |",
        "|---:|---:|---:|",
        *(f"| {r['done']:,} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} |" for r in rows),
        "",
        f"Growth, median at {rows[-1]['done']:,} / at {rows[0]['done']:,}: {growth:.2f} "
        f"(target at most {TARGET}: {'met' if growth <= TARGET else 'MISSED'}).",
    ]
    table = "\n".join(lines) + "\n"
    (args.out / "resume_growth.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
