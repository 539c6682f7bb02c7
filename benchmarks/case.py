"""One measurement in a process of its own, so that its peak RSS is its own.

    python -m benchmarks.case SYSTEM STEPS REPETITIONS
    python -m benchmarks.case resume DONE_STEPS SAMPLES

Prints one JSON object: per-repetition wall seconds and database bytes, and the peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

from benchmarks.systems import RUNNERS, resume_latencies


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> None:
    system, size, count = argv[0], int(argv[1]), int(argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        if system == "resume":
            seconds = resume_latencies(size, Path(tmp) / "resume.db", samples=count)
            print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))
            return
        seconds, sizes = [], []
        for rep in range(count):
            db = Path(tmp) / f"rep{rep}.db"
            seconds.append(RUNNERS[system](size, db))
            sizes.append(db.stat().st_size)
            db.unlink()  # the peer's databases reach gigabytes at N=2000
    print(json.dumps({"seconds": seconds, "bytes": sizes, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main(sys.argv[1:])
