"""The benchmarks still run end to end (at small sizes: smoke tests, never timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _support import run_in

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m module args...` from the project root; fails the test unless it exits 0."""
    done = run_in(ROOT, sys.executable, "-m", module, *args, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def test_benchmark_smoke_run_writes_json_table_and_plot(tmp_path: Path) -> None:
    """`python -m benchmarks --sizes 10` measures all five systems and writes its three files,
    with ratios computed within the run."""
    run_module(
        "benchmarks", "--sizes", "10", "--reps", "1", "--out", str(tmp_path),
        "--io-widths", "2", "--io-depths", "1", "--io-latency", "0.01",
        "--resume-done", "3", "6", "--resume-samples", "2", "--critical-path-scale", "0.02",
    )  # fmt: skip
    critical = json.loads((tmp_path / "critical_path.json").read_text())
    assert [row["plan"].split(",")[0] for row in critical["rows"][:2]] == [
        "10 wide x 2 deep",
        "16 wide x 2 deep",
    ]
    for row in critical["rows"]:  # each against its critical path, which it cannot beat
        assert row["plangate_vs_critical_path"] >= 1
    for written in ("io_bound.json", "io_bound.md", "io_bound.png", "resume_growth.json"):
        assert (tmp_path / written).stat().st_size > 0, written
    startup = json.loads((tmp_path / "startup.json").read_text())
    assert set(startup["median_s"]) == {
        "import plangate",
        "plangate --version",
        "plangate pending",
        "plangate runs",
        "plangate show t1",
        "plangate trace t1",
    }
    assert startup["pending_imports_s"]["plangate"] > 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert set(report["results"]) == {
        "plangate",
        "plangate_width10",
        "plangate_approvals",
        "floor",
        "peer",
    }
    for system, by_n in report["results"].items():
        row = by_n["10"]
        assert row["ms_per_step"] > 0, system
        assert row["bytes_per_step"] > 0, system
        assert row["peak_rss_mb"] > 0, system
    ratios = report["evaluation"]["ratios"]
    expected = (
        report["results"]["plangate"]["10"]["ms_per_step"]
        / (report["results"]["floor"]["10"]["ms_per_step"])
    )
    assert abs(ratios["plangate_vs_floor"]["10"] - expected) < 1e-9
    table = (tmp_path / "results.md").read_text()
    assert "| plangate (technical, one step at a time) |" in table
    assert "plangate approvals vs peer" in table
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inbox_benchmark_smoke_run_finds_the_waiting_runs_and_follows_a_run() -> None:
    """`python -m benchmarks.inbox` fills a database and lists it both ways, checking at every
    listing that exactly the waiting runs are found, then follows a run's trace live."""
    done = run_module(
        "benchmarks.inbox",
        *("--runs", "6", "--waiting", "2", "--steps", "2", "--samples", "1", "--follow", "30"),
    )
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 6 |")]
    assert all(float(cell) > 0 for cell in row.strip("| ").split(" | ")[1:])
    assert "Following a run of 30 steps, one poll per step:" in done.stdout


def test_validation_benchmark_smoke_run_times_both_orders() -> None:
    """`python -m benchmarks.validation` validates plans in list order and in reverse
    dependency order and prints one row per size."""
    done = run_module("benchmarks.validation", "--sizes", "50", "--reps", "1")
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| 50 |")]
    assert row.count(" ms") == 2


def test_identity_benchmark_smoke_run_times_proofs_tokens_and_decisions() -> None:
    """`python -m benchmarks.identity` prints a row for each cost it measures."""
    done = run_module("benchmarks.identity", "--decisions", "3", "--checks", "50")
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "|---" not in line
    ]
    assert len(rows) == 7  # the header and six measurements
    assert "| a signed decision, identity_required: low |" in done.stdout


def test_mcp_benchmark_smoke_run_measures_both_runs_against_the_target() -> None:
    """`python -m benchmarks.mcp` on the FastMCP peer prints a row per run with its target.
    Whether a busy machine meets the target is the benchmark's verdict, not this test's."""
    done = run_in(
        ROOT,
        *(sys.executable, "-m", "benchmarks.mcp", "--steps", "5", "--reps", "1"),
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| sync", "| async"))]
    assert [row.split("|")[1].strip() for row in rows] == ["sync", "async"]
    assert all(float(row.split("|")[3]) > 0 for row in rows)


def test_io_bound_benchmark_smoke_run_times_plangate_the_peer_and_the_critical_path(
    tmp_path: Path,
) -> None:
    """`python -m benchmarks.io_bound` runs layered plans of waiting calls through plangate and
    through the LangChain agent, sync and async, and writes one row per case."""
    run_module(
        "benchmarks.io_bound",
        *("--latency", "0.01", "--widths", "1", "3", "--depths", "2", "--reps", "1"),
        *("--out", str(tmp_path)),
    )
    rows = json.loads((tmp_path / "io_bound.json").read_text())["rows"]
    assert [(r["width"], r["mode"]) for r in rows] == [
        (1, "sync"),
        (1, "async"),
        (3, "sync"),
        (3, "async"),
    ]
    for row in rows:
        # Every call waits: no system can beat the critical path of 2 x 10 ms.
        assert row["plangate_s"] >= row["critical_path_s"] == 0.02
        assert row["peer_s"] >= 0.02
    assert "| plangate / critical path |" in (tmp_path / "io_bound.md").read_text()


def test_resume_growth_benchmark_smoke_run_reports_the_ratio(tmp_path: Path) -> None:
    done = run_module(
        "benchmarks.resume_growth", "--done", "3", "12", "--samples", "2", "--out", str(tmp_path)
    )
    report = json.loads((tmp_path / "resume_growth.json").read_text())
    assert [row["done"] for row in report["rows"]] == [3, 12]
    medians = [row["median_ms"] for row in report["rows"]]
    assert all(m > 0 for m in medians)
    assert abs(report["growth"] - medians[1] / medians[0]) < 1e-9
    assert "Growth, median at 12 / at 3:" in done.stdout


def test_prune_benchmark_smoke_run_prunes_every_run_and_shrinks_the_file(tmp_path: Path) -> None:
    done = run_module(
        "benchmarks.prune", "--runs", "3", "--steps", "4", "--reads", "2", "--out", str(tmp_path)
    )
    report = json.loads((tmp_path / "prune.json").read_text())
    assert report["runs"] == 3
    assert report["checkpoints_removed"] > 0
    assert report["bytes_after"] < report["bytes_before"]
    assert "| database size (MB) |" in done.stdout


def test_workers_benchmark_smoke_run_prints_a_row_per_worker_count(postgres_server: str) -> None:
    """Two runs on one worker, then two: a row each, with a recovery after the kill; its
    databases are dropped afterwards."""
    import psycopg

    listed = "SELECT datname FROM pg_database WHERE datname LIKE 'plangate_bench_%'"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        before = conn.execute(listed).fetchall()
    done = run_module(
        "benchmarks.workers", "--workers", "1", "2", "--runs", "2", "--db", postgres_server
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| workers | decision to step start, p50 |")
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| 1", "| 2"]
    assert all(row.endswith(" s |") for row in rows[1:])
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        assert conn.execute(listed).fetchall() == before
