"""Time as runs record it: UTC, written as ISO 8601 with a `Z`."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ("iso", "parse_iso", "utc_now")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
