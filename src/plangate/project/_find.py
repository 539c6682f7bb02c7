"""The project file (`plangate.project`): where a command finds it (the path it is given, the one
`PLANGATE_PROJECT` names, the nearest `plangate.yaml`), and the templates `plangate init` writes,
the demo among them: commands use the demo where they find no project."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from plangate.errors import PlangateUsageError
from plangate.project._spec import PROJECT_FILE
from plangate.runs.checkpoint import is_postgres_url, sqlite_path

PROJECT_ENV = "PLANGATE_PROJECT"

_TEMPLATES = "plangate.templates"


def locate(
    explicit: str | Path | None, *, start: Path | None, environ: Mapping[str, str]
) -> str | Path | None:
    """Where the project is: `explicit`, else what `PLANGATE_PROJECT` names, else the
    `plangate.yaml` of `start` (the current folder) or its nearest parent; `None` if none."""
    named = explicit or environ.get(PROJECT_ENV)
    if named:
        return named
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate / PROJECT_FILE
    return None


def demo_root(db: str) -> Path:
    """The built-in demo's folder: the database's (the current folder for other databases)."""
    path = ":memory:" if is_postgres_url(db) else sqlite_path(db)
    return Path(".").resolve() if path == ":memory:" else Path(path).resolve().parent


def template(name: str) -> str:
    """The text of a packaged project template (`demo`, `starter`)."""
    return (
        resources.files(_TEMPLATES)
        .joinpath(name)
        .joinpath(PROJECT_FILE)
        .read_text(encoding="utf-8")
    )


def write_template(name: str, folder: Path) -> list[Path]:
    """Write the files of project template `name` into `folder`; refuses to overwrite any.

    Raises:
        PlangateUsageError: A file it would write is there already.
    """
    source = resources.files(_TEMPLATES).joinpath(name)
    names = sorted(
        entry.name
        for entry in source.iterdir()
        if entry.is_file() and not entry.name.startswith(("_", "."))
    )
    targets = [folder / entry for entry in names]
    present = [str(path) for path in targets if path.exists()]
    if present:
        raise PlangateUsageError(
            f"{', '.join(present)} exists already",
            hint="run it in an empty folder, or remove the file",
        )
    folder.mkdir(parents=True, exist_ok=True)
    for entry, path in zip(names, targets, strict=True):
        path.write_text(source.joinpath(entry).read_text(encoding="utf-8"), encoding="utf-8")
    return targets
