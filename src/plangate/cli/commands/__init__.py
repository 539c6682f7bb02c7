"""The `plangate` commands, by family: `running`, `deciding`, `reading`, `maintenance`,
`project` and `agents`. `plangate.cli.app` puts them on the command line."""

from __future__ import annotations

from plangate.errors import PlangateUsageError


def needs_extra(command: str, exc: ImportError, *, extra: str, missing: str) -> PlangateUsageError:
    """The one line a command says when an optional dependency of it is not installed: what is
    missing (`missing`, when the import does not name it) and which extra brings it."""
    return PlangateUsageError(
        f"`plangate {command}` needs {exc.name or missing}",
        hint=f"install plangate's `{extra}` extra (from a checkout: pip install '.[{extra}]')",
    )
