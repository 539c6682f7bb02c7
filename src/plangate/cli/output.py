"""What the `plangate` command prints and exits with. Everything printed goes through `say`,
which writes the control, bidi and other invisible characters of plan- or tool-supplied text as
visible escapes: a plan must not be able to hide or rewrite what the person approving it reads.
"""

from __future__ import annotations

import contextlib
import json
import unicodedata
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any

import typer


class ExitCode(IntEnum):
    """What `plangate` exits with. `run`, `approve`, `reject` and `resume` say how the run
    stands when they return; the other commands exit 0 when they did their job."""

    SUCCESS = 0
    USER_ERROR = 1
    COMMAND_LINE = 2
    PAUSED = 3
    PARTIAL = 4
    FAILED = 5
    EXPIRED = 6
    CHAIN_BROKEN = 7
    INTERRUPTED = 130
    OUTPUT_CLOSED = 141


EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.SUCCESS: "the run finished, every step ok (other commands: done)",
    ExitCode.USER_ERROR: "user error, one line on stderr: nothing was done",
    ExitCode.COMMAND_LINE: "the command line is not understood",
    ExitCode.PAUSED: "the run paused: a step waits for approval",
    ExitCode.PARTIAL: "the run finished partial: some steps ok, not all",
    ExitCode.FAILED: "the run finished failed: no step ok",
    ExitCode.EXPIRED: "approve, reject: too late, the request had expired",
    ExitCode.CHAIN_BROKEN: "verify: the trace's hash chain breaks: it was changed",
    ExitCode.INTERRUPTED: "Ctrl-C: the run stopped; plangate resume THREAD goes on",
    ExitCode.OUTPUT_CLOSED: "stdout closed (a pipe): the run stopped, as for Ctrl-C",
}

# `\b` keeps click from rewrapping the table.
EXIT_HELP = (
    "Exit status of run, approve, reject and resume (`plangate expire` exits 0 whatever the "
    "runs it closed did next; every command exits 1 on a user error):\n\n\b\n"
    + "\n".join(f"{code.value:>5}  {text}" for code, text in EXIT_MEANINGS.items())
)
RUN_EXITS = (
    "Exit status: 0 success, 3 paused for approval, 4 partial, 5 failed, 1 user error, "
    "130 Ctrl-C (see plangate --help)."
)


# --- output -----------------------------------------------------------------------------------

# Control characters (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width
# characters), lone surrogates and line/paragraph separators: a terminal acts on them or hides
# them, so text from a plan or a tool that holds one could hide or fake part of a line.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _python_escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells a character beyond the BMP as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _escaped(text: str, escape: Callable[[str], str]) -> str:
    if text.isprintable():  # the usual case, checked at C speed
        return text
    return "".join(
        escape(char) if unicodedata.category(char) in _UNSAFE_CATEGORIES else char for char in text
    )


def visible(text: str) -> str:
    """`text` with every character a terminal would act on or not show written as its Python
    escape (`\\x1b`, `\\u202e`), so the reader sees that something is there."""
    return _escaped(text, _python_escape)


def json_line(value: Any) -> str:
    """`value` as one line of JSON that a terminal shows as it is: `json.dumps` escapes C0
    controls but leaves DEL, C1 controls and bidi overrides raw; these become `\\uXXXX`
    escapes too, so the line still parses to the same value. Other text stays readable."""
    return _escaped(json.dumps(value, ensure_ascii=False, default=str), _json_escape)


class OutputClosed(Exception):
    """stdout was closed under the command (`plangate trace THREAD | head`)."""


class Stopped(Exception):
    """A run stopped before it ended: Ctrl-C, or its output closed. `line` says how to go on."""

    def __init__(self, line: str, code: ExitCode) -> None:
        super().__init__(line)
        self.line = line
        self.code = code


def say(*lines: str) -> None:
    """Print each line on stdout, made visible: the one way the CLI writes to its reader."""
    for line in lines:
        try:
            typer.echo(visible(line))
        except BrokenPipeError:
            raise OutputClosed from None


def warn(line: str) -> None:
    """One line on stderr, made visible; a closed stderr is no reason for a traceback."""
    with contextlib.suppress(OSError):
        typer.echo(visible(line), err=True)


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def human_duration(ms: float) -> str:
    """A wait in the unit a person reads it in: `250 ms`, `2.8 s`, `1.5 min`, `2 h`."""
    seconds = ms / 1000
    if ms < 999.95:
        value, unit = ms, "ms"
    elif seconds < 59.95:
        value, unit = seconds, "s"
    elif seconds < 3597:
        value, unit = seconds / 60, "min"
    else:
        value, unit = seconds / 3600, "h"
    return f"{value:,.1f}".removesuffix(".0") + f" {unit}"


def human_size(size: int) -> str:
    """A size on disk in the unit a person reads it in: `512 B`, `48.3 kB`, `2.1 MB`."""
    value, unit = float(size), "B"
    for larger in ("kB", "MB", "GB"):
        if abs(value) < 999.95:
            break
        value, unit = value / 1000, larger
    return f"{value:,.1f}".removesuffix(".0") + f" {unit}"


def print_rows(rows: Sequence[Sequence[str]]) -> None:
    """A table: its first row the header, each cell made visible before it is measured."""
    shown = [[visible(str(cell)) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(len(shown[0]))]
    for row in shown:
        say("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
