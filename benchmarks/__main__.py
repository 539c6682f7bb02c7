"""Benchmark plangate against the floor and the peer, at several plan lengths, in one run.

    python -m benchmarks [--sizes 10 100 1000 2000] [--reps 3] [--out benchmarks/results]
                         [--io-widths 1 10 50] [--io-depths 1 2 3] [--io-latency 0.05]
                         [--resume-done 100 2000] [--resume-samples 50]
                         [--critical-path-scale 1.0]

Every (system, N) runs in a process of its own (for its peak RSS), `--reps` times, each on a
fresh SQLite file in a temporary folder. Writes `results.json`, `results.md` and `results.png`
to `--out`; ratios are taken within the run, since absolute times vary between machines.
Then runs `benchmarks.io_bound` (layered plans of waiting calls: `io_bound.json`, `.md`, `.png`),
`benchmarks.resume_growth` (`resume_growth.json`, `.md`), `benchmarks.startup` (how long a
command takes to start, and which imports that time goes to: `startup.json`, `.md`) and
`benchmarks.critical_path` (plans of waiting calls against their critical path, at the shipped
defaults: `critical_path.json`, `.md`) into the same folder. Last, `benchmarks.workers` (runs in
`plangate worker` processes: `workers.md`) when its PostgreSQL server answers; else one line
says it was skipped and how to run it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import critical_path, io_bound, resume_growth, startup, workers
from benchmarks.systems import GATE_EVERY, SYSTEMS
from plangate.runs.checkpoint import shown_url

LABELS = {
    "plangate": "plangate (technical, one step at a time)",
    "plangate_width10": "plangate (technical, 10 steps at a time)",
    "plangate_approvals": f"plangate (approval every {GATE_EVERY}th step)",
    "floor": "floor (one-node LangGraph loop)",
    "peer": f"peer (create_agent + limit + HITL every {GATE_EVERY}th)",
}
RESUME_AFTER = 1000
# One resume per step from there on: a whole snapshot interval, so every distance from the last
# snapshot (which decides how far a resume replays) is sampled.
RESUME_SAMPLES = 100
TARGETS = {
    "plangate_vs_peer": 0.5,
    "plangate_vs_floor": 3.0,
    "growth_2000_vs_100": 1.25,
    "resume_ms": 50.0,
    "peak_rss_mb": 200.0,
}


def measure(system: str, size: int, reps: int) -> dict[str, Any]:
    # The peer writes gigabytes; flush them first, so that their write-back does not slow the
    # fsyncs of the next measurement.
    os.sync()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.case", system, str(size), str(reps)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{system} at N={size} failed:\n{done.stderr}")
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    if system == "resume":
        return {
            "resume_ms_median": statistics.median(raw["seconds"]) * 1000,
            "resume_ms_p95": sorted(raw["seconds"])[int(0.95 * len(raw["seconds"])) - 1] * 1000,
            "resume_ms_max": max(raw["seconds"]) * 1000,
            "samples": len(raw["seconds"]),
            "peak_rss_mb": raw["peak_rss_mb"],
        }
    return {
        "ms_per_step": statistics.median(raw["seconds"]) * 1000 / size,
        "bytes_per_step": statistics.median(raw["bytes"]) / size,
        "peak_rss_mb": raw["peak_rss_mb"],
        "reps": len(raw["seconds"]),
    }


def repetitions(size: int, reps: int) -> int:
    # Short runs are noisy: repeat them more, for the same total work.
    return max(reps, min(10, 1000 // size))


def evaluate(rows: dict[str, dict[int, dict[str, Any]]], resume: dict[str, Any]) -> dict[str, Any]:
    sizes = sorted(rows["plangate"])
    ratios: dict[str, dict[int, float]] = {
        "plangate_vs_floor": {},
        "plangate_width10_vs_floor": {},
        "plangate_approvals_vs_floor": {},
        "plangate_approvals_vs_peer": {},
    }
    for n in sizes:
        ms = {system: rows[system][n]["ms_per_step"] for system in SYSTEMS}
        ratios["plangate_vs_floor"][n] = ms["plangate"] / ms["floor"]
        ratios["plangate_width10_vs_floor"][n] = ms["plangate_width10"] / ms["floor"]
        ratios["plangate_approvals_vs_floor"][n] = ms["plangate_approvals"] / ms["floor"]
        ratios["plangate_approvals_vs_peer"][n] = ms["plangate_approvals"] / ms["peer"]
    checks: dict[str, Any] = {
        "plangate_at_most_half_the_peer": all(
            r <= TARGETS["plangate_vs_peer"] for r in ratios["plangate_approvals_vs_peer"].values()
        ),
        "plangate_at_most_3x_the_floor": all(
            r <= TARGETS["plangate_vs_floor"] for r in ratios["plangate_vs_floor"].values()
        ),
    }
    if 100 in sizes and 2000 in sizes:
        growth = {
            f"{system}_{metric}": rows[system][2000][metric] / rows[system][100][metric]
            for system in ("plangate", "plangate_approvals")
            for metric in ("ms_per_step", "bytes_per_step")
        }
        ratios["growth_2000_vs_100"] = growth  # type: ignore[assignment]
        checks["flat_growth"] = all(g <= TARGETS["growth_2000_vs_100"] for g in growth.values())
        checks["peak_rss_2000_under_200mb"] = all(
            rows[system][2000]["peak_rss_mb"] < TARGETS["peak_rss_mb"]
            for system in ("plangate", "plangate_approvals")
        )
    if resume:
        checks["resume_under_50ms"] = resume["resume_ms_median"] < TARGETS["resume_ms"]
    return {"ratios": ratios, "checks": checks}


def markdown(report: dict[str, Any]) -> str:
    rows, sizes = report["results"], report["sizes"]
    lines = [
        "| system | "
        + " | ".join(f"N={n}: ms/step" for n in sizes)
        + " | "
        + " | ".join(f"N={n}: bytes/step" for n in sizes)
        + " | peak RSS MB (largest N) |",
        "|---|" + "---:|" * (2 * len(sizes) + 1),
    ]
    for system in SYSTEMS:
        by_n = rows[system]
        ms = " | ".join(f"{by_n[str(n)]['ms_per_step']:.2f}" for n in sizes)
        size = " | ".join(f"{by_n[str(n)]['bytes_per_step']:,.0f}" for n in sizes)
        rss = by_n[str(sizes[-1])]["peak_rss_mb"]
        lines.append(f"| {LABELS[system]} | {ms} | {size} | {rss:.0f} |")
    lines.append("")
    ratios = report["evaluation"]["ratios"]
    lines.append("| ratio (per-step time) | " + " | ".join(f"N={n}" for n in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    for name in (
        "plangate_vs_floor",
        "plangate_width10_vs_floor",
        "plangate_approvals_vs_floor",
        "plangate_approvals_vs_peer",
    ):
        values = " | ".join(f"{ratios[name][str(n)]:.2f}" for n in sizes)
        lines.append(f"| {name.replace('_', ' ')} | {values} |")
    if "growth_2000_vs_100" in ratios:
        lines.append("")
        lines.append("| growth, N=2000 / N=100 | ratio |")
        lines.append("|---|---:|")
        for name, value in ratios["growth_2000_vs_100"].items():
            lines.append(f"| {name.replace('_', ' ')} | {value:.2f} |")
    if report["resume"]:
        resume = report["resume"]
        lines.append("")
        lines.append(
            f"Resume latency with {RESUME_AFTER} to {RESUME_AFTER + resume['samples']} completed "
            "steps (`invoke(Command(resume=...))` to the next pause, one step later): "
            f"median {resume['resume_ms_median']:.1f} ms, p95 {resume['resume_ms_p95']:.1f} ms, "
            f"max {resume['resume_ms_max']:.1f} ms over {resume['samples']} resumes."
        )
    lines.append("")
    lines.append(
        "Targets: "
        + ", ".join(
            f"{name.replace('_', ' ')}: {'met' if ok else 'MISSED'}"
            for name, ok in report["evaluation"]["checks"].items()
        )
        + "."
    )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = report["sizes"]
    fig, (time_ax, bytes_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for system in SYSTEMS:
        by_n = report["results"][system]
        time_ax.plot(
            sizes, [by_n[str(n)]["ms_per_step"] for n in sizes], "o-", label=LABELS[system]
        )
        bytes_ax.plot(sizes, [by_n[str(n)]["bytes_per_step"] for n in sizes], "o-")
    for ax, title in (
        (time_ax, "wall ms per step"),
        (bytes_ax, "checkpoint database bytes per step"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("steps in the plan (N)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 2000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--io-widths", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--io-depths", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--io-latency", type=float, default=0.05)
    parser.add_argument("--resume-done", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--resume-samples", type=int, default=50)
    parser.add_argument("--critical-path-scale", type=float, default=1.0)
    args = parser.parse_args(argv)

    results: dict[str, dict[int, dict[str, Any]]] = {system: {} for system in SYSTEMS}
    for n in args.sizes:
        for system in SYSTEMS:
            results[system][n] = measure(system, n, repetitions(n, args.reps))
            row = results[system][n]
            print(
                f"{system:>20} N={n:<5} {row['ms_per_step']:8.2f} ms/step "
                f"{row['bytes_per_step']:10,.0f} B/step {row['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    resume = (
        measure("resume", RESUME_AFTER, RESUME_SAMPLES) if max(args.sizes) >= RESUME_AFTER else {}
    )
    evaluation = evaluate(results, resume)
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}",
        "sizes": args.sizes,
        "results": {s: {str(n): row for n, row in by_n.items()} for s, by_n in results.items()},
        "resume": resume,
        "targets": TARGETS,
        "evaluation": evaluation,
    }
    # JSON keys are strings; keep the report one shape whether read back or built here.
    report = json.loads(json.dumps(report))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    (args.out / "results.md").write_text(table, encoding="utf-8")
    plot(report, args.out / "results.png")
    print()
    print(table)

    out = ["--out", str(args.out)]
    io_args = ["--widths", *map(str, args.io_widths), "--depths", *map(str, args.io_depths)]
    io_bound.main([*io_args, "--latency", str(args.io_latency), "--reps", str(args.reps), *out])
    resume_growth.main(
        ["--done", *map(str, args.resume_done), "--samples", str(args.resume_samples), *out]
    )
    startup.main(["--reps", str(args.reps), *out])
    critical_path.main(["--scale", str(args.critical_path_scale), "--reps", str(args.reps), *out])
    workers_if_reachable(out)


def workers_if_reachable(out: list[str]) -> None:
    """`benchmarks.workers` on its PostgreSQL server, or one line saying why not and how."""
    if workers.reachable(workers.SERVER):
        workers.main(["--db", workers.SERVER, *out])
    else:
        print(
            f"benchmarks.workers skipped: no PostgreSQL answers at {shown_url(workers.SERVER)}; "
            "start one (.ci/postgres) or set PLANGATE_TEST_POSTGRES_URL, then run "
            "python -m benchmarks.workers"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
