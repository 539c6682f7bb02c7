"""What the commands take: the options they share, and durations as the command line writes
them (`30s`, `5m`, `12h`, `30d`, `2w`)."""

from __future__ import annotations

import getpass
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Checkpoint database: a path, sqlite:///path.db or postgresql://... "
        "(default: the project's, else plangate.db).",
    ),
]

ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        envvar="PLANGATE_PROJECT",
        metavar="PATH",
        help="The project file (plangate.yaml) or its folder (default: the one in this folder "
        "or its nearest parent; else the built-in demo).",
    ),
]

ThreadArg = Annotated[str, typer.Argument(metavar="THREAD", help="The run's thread id.")]

ApproverOption = Annotated[
    str | None,
    typer.Option(
        help="Who decides (recorded as given; default: your user name; a blank one is refused)."
    ),
]

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="Through the inbox at URL (plangate serve), as the person whose token "
        "PLANGATE_TOKEN holds: the server knows who you are. Without it, the command works on "
        "the database and records your user name, unverified.",
    ),
]

StepOption = Annotated[
    str | None,
    typer.Option(
        metavar="STEP_ID",
        help="The step decided; refused if the run waits on another (default: the one waiting; "
        "when several wait, name one or give --all).",
    ),
]

AllOption = Annotated[
    bool,
    typer.Option(
        "--all",
        help="Decide every step the run waits on, each as printed here (not with --step).",
    ),
]

ProfileOption = Annotated[
    str | None,
    typer.Option(
        help="A profile of the project's, enterprise, smb, technical, or a profile file "
        "(default: the project's)."
    ),
]

OfflineOption = Annotated[
    bool, typer.Option("--offline", help="Call every tool's mock; nothing is sent.")
]

FixturesOption = Annotated[
    list[Path] | None,
    typer.Option(
        metavar="FILE",
        help="Fixture file of mocks (repeatable); replaces the project's mock of a tool.",
    ),
]

AnchorsOption = Annotated[
    Path | None,
    typer.Option(
        "--anchors",
        metavar="FILE",
        help="Check against the anchors in FILE (JSON lines: an anchor file, or the bodies of "
        "the anchor log records) instead of the project's.",
    ),
]


def user() -> str | None:
    """Who runs the command, for the approval record when no --approver is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return None


_DURATION = re.compile(r"(\d+(?:\.\d*)?)([smhdw])?")

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_LONGEST_WAIT = 24 * 3600.0  # a longer wait is a mistake (and `inf` overflows the sleep)


def duration(text: str) -> timedelta:
    """A duration as the command line takes it: `30s`, `5m`, `12h`, `30d`, `2w` (a bare
    number is seconds)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration: a number and s, m, h, d or w, as in 30s or 30d"
        )
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2] or "s"])


def wait(text: str) -> float:
    """Seconds between two sweeps: more than none, at most a day."""
    seconds = duration(text).total_seconds()
    if not 0 < seconds <= _LONGEST_WAIT:
        raise typer.BadParameter(
            f"{text!r} is not a duration of at most 24h: write it as 30s, 5m or 1h"
        )
    return seconds


def shown_duration(seconds: float) -> str:
    for unit in ("h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds / _UNIT_SECONDS[unit]:g}{unit}"
    return f"{seconds:g}s"


DEFAULT_SWEEP_EVERY = 30.0


def duration_option(*flags: str, help: str) -> Any:
    """An option taking a duration (`30s`, `5m`, `1h`) as seconds."""
    return typer.Option(*flags, parser=wait, metavar="DURATION", help=help)
