"""Where a `plangate` command's start-up time goes, and how long the commands that read runs take.

    python -m benchmarks.startup [--reps 5] [--out benchmarks/results]

Starts the demo project in a temporary folder, runs its plan to its first approval (thread
`t1`), runs each command once to compile and cache its modules' bytecode (as an installed
package has it), then times, each `--reps` times in a fresh process, `import plangate`, `plangate
--version` and the commands that only read runs: `pending`, `runs`, `show t1`, `trace t1`. It
then runs `plangate pending` under `python -X importtime` and adds up the import time by
top-level package, which says what a command pays for before it does anything. Prints and
writes `startup.json` and `startup.md`, with wall and CPU (user + system) seconds: on a machine
other work shares, wall times vary from run to run and CPU times much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._results import write_results

COMMANDS: dict[str, list[str]] = {
    "import plangate": ["-c", "import plangate"],
    "plangate --version": ["-m", "plangate", "--version"],
    "plangate pending": ["-m", "plangate", "pending"],
    "plangate runs": ["-m", "plangate", "runs"],
    "plangate show t1": ["-m", "plangate", "show", "t1"],
    "plangate trace t1": ["-m", "plangate", "trace", "t1"],
}


def _bytecode_env(cache: Path) -> dict[str, str]:
    """The environment of the timed processes: Python's compiled bytecode kept (in `cache`), as
    in an installed package (pip compiles it on install), even where the environment turns the
    cache off (`PYTHONDONTWRITEBYTECODE`): else every start would also compile every module."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache)}


_ENV: dict[str, str] = {}


def _python(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env=_ENV or None,
    )
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def paused_demo(folder: Path) -> None:
    """The demo project in `folder`, its plan paused at its first approval on thread `t1`."""
    _python(folder, "-m", "plangate", "init", "--demo", ".")
    ran = _python(
        folder, "-m", "plangate", "run", "sales_followup.yaml", "--thread", "t1", check=False
    )
    if ran.returncode != 3:  # ExitCode.PAUSED
        raise SystemExit(f"the demo run did not pause ({ran.returncode}):\n{ran.stderr}")


def timed(folder: Path, args: list[str], reps: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system, of the child process) of each run of
    `python args`; CPU time varies less than wall time on a machine other work shares."""
    wall, cpu = [], []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        _python(folder, *args)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def import_breakdown(folder: Path, args: list[str]) -> dict[str, float]:
    """Seconds of import time by top-level package (each module's own time, summed), most
    first, for one run of `python args`."""
    done = _python(folder, "-X", "importtime", *args)
    by_package: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        by_package[name.split(".", 1)[0]] += int(own) / 1e6
    return dict(by_package.most_common())


def measure(reps: int, folder: Path) -> dict[str, Any]:
    _ENV.update(_bytecode_env(folder / "bytecode"))
    paused_demo(folder)
    for args in COMMANDS.values():  # compiles and caches every module a command imports
        _python(folder, *args)
    times = {name: timed(folder, args, reps) for name, args in COMMANDS.items()}
    breakdown = import_breakdown(folder, COMMANDS["plangate pending"])
    return {
        "reps": reps,
        "median_s": {name: statistics.median(wall) for name, (wall, _) in times.items()},
        "cpu_median_s": {name: statistics.median(cpu) for name, (_, cpu) in times.items()},
        "pending_imports_s": breakdown,
    }


def table(result: dict[str, Any], *, top: int = 8) -> str:
    lines = [
        f"Start-up, medians over {result['reps']} fresh processes each:",
        "",
        "| command | wall s | CPU s |",
        "|---|---:|---:|",
    ]
    for name, median in result["median_s"].items():
        lines.append(f"| `{name}` | {median:.2f} | {result['cpu_median_s'][name]:.2f} |")
    imports = result["pending_imports_s"]
    lines += [
        "",
        f"`plangate pending` imports {sum(imports.values()):.2f} s of modules; by package:",
        "",
        "| package | import s |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {seconds:.3f} |" for name, seconds in list(imports.items())[:top]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        result = measure(args.reps, Path(folder))
    write_results(args.out, "startup", result, table(result))


if __name__ == "__main__":
    main()
