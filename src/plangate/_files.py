"""Reading YAML/JSON documents for plans and profiles, with errors that name the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from plangate.errors import InvalidDecision


def parse_document(text: str, *, what: str) -> Any:
    """Parse YAML (hence also JSON) text, raising `ValueError` with a one-line reason that
    starts with `what` (`plan`, `profile file 'p.yaml'`)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ValueError(f"{what} is not valid YAML/JSON{where}: {problem}") from exc


def read_document(path: str | Path, *, what: str) -> Any:
    """Parse a YAML (hence also JSON) file, raising `ValueError` with a one-line reason."""
    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{what} file {str(file)!r} is a folder: name a YAML or JSON file in it")
    if not file.is_file():
        raise ValueError(f"{what} file {str(file)!r} does not exist")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} file {str(file)!r} cannot be read: {exc}") from exc
    return parse_document(text, what=f"{what} file {str(file)!r}")


def first_error(
    exc: ValidationError, errors: Sequence[ErrorDetails] | None = None
) -> tuple[tuple[str | int, ...], str]:
    """The location and message of one pydantic error (of `errors`, a selection of the
    exception's, if given): one line for humans.

    An unknown key comes first when there is one: a misspelled key (`tool_name` for `tool`) also
    makes the real field missing, and the key the user actually typed is the useful thing to name.
    """
    errors = errors or exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    return tuple(err["loc"]), err["msg"]


def dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)


def refused_decision(exc: ValidationError, *, default: str, hint: str) -> InvalidDecision:
    """A resume value pydantic refused, as one `InvalidDecision` naming its first bad field
    (`default` when the error has no location)."""
    loc, msg = first_error(exc)
    field = dotted(loc) or default
    return InvalidDecision(f"invalid decision: {field}: {msg}", field=field, hint=hint)
