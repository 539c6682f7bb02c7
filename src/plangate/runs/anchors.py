"""Runs: anchors, each thread's latest trace hash kept outside the database it audits.

The hash chain (`plangate.audit`) finds an event edited or removed in the database, but not
the last checkpoints of a thread deleted whole: the run's own latest hash goes with them, and
what is left is a shorter chain that holds. An anchor is that latest hash written somewhere
else, append-only: `{thread_id, run_id, trace_id, seq, hash, ts}`, signed with
`PLANGATE_AUDIT_KEY` (an HMAC-SHA-256, `signed: true`) when it is set. A node writes one each
time it hands new trace events to the checkpointer, so one line per superstep that added
events, whatever the plan's length. `verify_trace` then checks that every anchored event is
still in the chain, with the anchored hash.

Sinks: `FileAnchors` (one JSON line per anchor, opened for append, flushed and fsynced) and
`OtelAnchors` (OpenTelemetry log records, `plangate[otel]`), named in the project file
(`anchors: {file: PATH}` or `anchors: {otel: true}`) or given to `build_graph(anchors=...)`.

An anchor is written as the node returns its events, a moment before the checkpointer stores
them: a process killed in between leaves an anchor the database never got, and `verify` says
those events are missing, which they are.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from plangate.errors import PlangateUsageError
from plangate.tracing import Anchor

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider

__all__ = ("AnchorSink", "FileAnchors", "OtelAnchors", "anchors_of", "read_anchor_file")

SCOPE = "plangate.anchors"


@runtime_checkable
class AnchorSink(Protocol):
    """Where anchors go: append-only, outside the checkpoint database."""

    def append(self, anchor: Anchor) -> None:
        """Keep `anchor` for good; raise if it cannot be kept (the run then stops)."""
        ...

    def read(self, thread_id: str) -> list[Anchor]:
        """Every anchor of `thread_id`, in the order written.

        Raises:
            PlangateUsageError: This sink cannot be read back here.
        """
        ...


class FileAnchors:
    """Anchors as JSON lines in a file opened for append: each line is written with one
    `write` (so lines of several processes do not mix), then flushed to disk (`fsync`).

    Examples:
        >>> import tempfile, pathlib
        >>> from plangate.tracing import make_anchor
        >>> sink = FileAnchors(pathlib.Path(tempfile.mkdtemp()) / "anchors.jsonl")
        >>> sink.append(make_anchor(thread_id="t", run_id="r", trace_id="x", seq=3,
        ...                         hash="ab", ts="", key=None))
        >>> [a["seq"] for a in sink.read("t")]
        [3]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileAnchors({str(self.path)!r})"

    def append(self, anchor: Anchor) -> None:
        line = (json.dumps(anchor, sort_keys=True, ensure_ascii=False) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, thread_id: str) -> list[Anchor]:
        if not self.path.exists():
            return []
        return [a for a in read_anchor_file(self.path) if a["thread_id"] == thread_id]


def read_anchor_file(path: str | Path) -> list[Anchor]:
    """Every anchor in a file of JSON lines (what `FileAnchors` writes, or the bodies of the
    log records `OtelAnchors` sent, one a line). A last line with no newline is an append cut
    short by a crash, and is left out.

    Raises:
        PlangateUsageError: The file cannot be read, or a line is not an anchor.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlangateUsageError(f"cannot read anchors from {path}: {exc}") from None
    lines = text.split("\n")
    return [
        _anchor(path, number, line)
        for number, line in enumerate(lines[:-1], start=1)
        if line.strip()
    ]


_FIELDS = {"thread_id": str, "run_id": str, "trace_id": str, "seq": int, "hash": str, "ts": str}


def _anchor(path: str | Path, number: int, line: str) -> Anchor:
    try:
        found = json.loads(line)
    except ValueError:
        found = None
    if not isinstance(found, dict) or any(
        not isinstance(found.get(name), kind) for name, kind in _FIELDS.items()
    ):
        raise PlangateUsageError(
            f"{path}, line {number}: not an anchor",
            hint="an anchor is a JSON object with thread_id, run_id, trace_id, seq, hash and ts",
        )
    return found  # type: ignore[return-value]


class OtelAnchors:
    """Anchors as OpenTelemetry log records (scope `plangate.anchors`): the body is the
    anchor's JSON, the attributes its fields. They go wherever the logger provider exports
    them; `verify` reads them back from an export (`--anchors FILE`, one body a line).

    Args:
        logger_provider: Where the records go (default: the global one).
    """

    def __init__(self, logger_provider: LoggerProvider | None = None) -> None:
        try:
            from opentelemetry._logs import get_logger_provider
        except ImportError:
            raise PlangateUsageError(
                "anchors as log records need OpenTelemetry (opentelemetry-api and -sdk)",
                hint="install plangate's `otel` extra (from a checkout: pip install '.[otel]')",
            ) from None
        provider = logger_provider or get_logger_provider()
        self._logger = provider.get_logger(SCOPE)

    def append(self, anchor: Anchor) -> None:
        attributes: dict[str, Any] = {f"plangate.anchor.{k}": v for k, v in anchor.items()}
        self._logger.emit(
            body=json.dumps(anchor, sort_keys=True, ensure_ascii=False),
            attributes=attributes,
            event_name="plangate.anchor",
        )

    def read(self, thread_id: str) -> list[Anchor]:
        raise PlangateUsageError(
            "this project's anchors went to OpenTelemetry log records, which plangate cannot "
            "read back",
            hint="export the records' bodies (one a line) and pass the file with --anchors FILE",
        )


def anchors_of(sink: AnchorSink | Sequence[Anchor], thread_id: str) -> list[Anchor]:
    """The anchors of `thread_id`, from a sink or a list read elsewhere."""
    if isinstance(sink, AnchorSink):
        return sink.read(thread_id)
    return [a for a in sink if a["thread_id"] == thread_id]
