"""Where a benchmark leaves what it measured: `NAME.json` (the numbers) and `NAME.md` (the table
the Performance page includes), in the folder `--out` names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(out: Path, name: str, result: dict[str, Any], table: str) -> None:
    """Write `result` as `out/NAME.json` and `table` as `out/NAME.md`, then print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{name}.md").write_text(table)
    print(table)
