"""The clock and the times plangate writes (part of the model's plumbing).

Every time in a trace, an approval request or a run record is UTC in ISO 8601 with a `Z`. These
helpers import nothing of plangate's, so that both the governance of a run and its telemetry,
which the run's state holds, can read a time without importing each other.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ("iso", "parse_iso", "utc_now")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
