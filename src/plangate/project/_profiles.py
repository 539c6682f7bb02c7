"""The project file (`plangate.project`): the profiles a project adds to the built-in ones (a
folder of files, named by file name), and which one a run starts under."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from plangate.errors import ProfileError
from plangate.profiles import BUILTIN_PROFILES, Profile, load_profile
from plangate.project._errors import ProjectError


def profiles_in(file: Path, folder: Path) -> dict[str, Path]:
    """The profiles of `folder` (the file's `profiles`), by name (a file's name without its
    suffix); a name may not be a built-in profile's."""
    if not folder.is_dir():
        raise ProjectError(file, f"{folder} is not a folder", key="profiles")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        if path.stem in BUILTIN_PROFILES:
            raise ProjectError(
                file,
                f"{path.name}: {path.stem!r} is a built-in profile's name",
                key="profiles",
                hint="give the file another name",
            )
        found[path.stem] = path
    return found


def project_profile(
    file: Path, files: Mapping[str, Path], name: str | None, *, default: str
) -> Profile:
    """Profile `name` (`None`: `default`, the file's `profile`): one of `files`, a built-in, or
    a file; an error in the default blames the project file's `profile` key."""
    wanted = name or default
    if wanted in files:
        return load_profile(files[wanted])
    try:
        return load_profile(wanted)
    except ProfileError as exc:
        if name is None:  # the project's default: say where it comes from
            raise ProjectError(file, exc.message, key="profile") from None
        if exc.message.startswith("unknown profile"):
            raise ProfileError(
                exc.message,
                hint=f"use one of {', '.join([*BUILTIN_PROFILES, *files])} "
                "or the path of a YAML/JSON file",
            ) from None
        raise
