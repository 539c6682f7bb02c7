"""The project file (`plangate.project`): reading `plangate.yaml`, and what can be checked of it
without reaching anything: its keys, the `mcpServers` files it names, its tool prefixes. Each
problem is one `ProjectError` naming the file and the key."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from plangate._files import dotted, first_error, parse_document, read_document
from plangate.project._errors import ProjectError
from plangate.project._spec import (
    ENTRY_KINDS,
    PROJECT_FILE,
    MCPServer,
    MCPTools,
    OpenAPITools,
    ProjectFile,
    ToolEntry,
)


def read(path: str | Path) -> tuple[Path, str, Any]:
    """The project file at `path` (or the `plangate.yaml` of folder `path`), resolved, with its
    text and what that parses to."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / PROJECT_FILE
    if not file.is_file():
        raise ProjectError(
            file,
            "no project file here",
            hint="`plangate init` writes one; check --project or PLANGATE_PROJECT",
        )
    file = file.resolve()
    try:
        text = file.read_text(encoding="utf-8")
        data = parse_document(text, what="project file")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ProjectError(file, str(exc).removeprefix("project file ")) from None
    return file, text, data


def validate(file: Path, data: Any) -> ProjectFile:
    """What the parsed file `data` says, its first mistake named by its dotted key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProjectError(
            file, "expected a mapping of db, profile, profiles, tools, fixtures, inbox"
        )
    try:
        return ProjectFile.model_validate(data)
    except ValidationError as exc:
        loc, message = first_error(exc)
        if loc[:1] == ("tools",) and len(loc) > 3 and loc[2] in ENTRY_KINDS:
            loc = loc[:2] + loc[3:]  # the tag pydantic names an entry's kind by
        message = message.removeprefix("Value error, ")
        raise ProjectError(file, message, key=dotted(loc) or None) from None


def fingerprint(text: str) -> str:
    """The first 16 hex digits of the SHA-256 of the file as written (`${VAR}` unread)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mcp_servers(file: Path, key: str, entry: MCPTools) -> dict[str, MCPServer]:
    """The servers of one `mcp` entry: inline, or read from the `mcpServers` file it names."""
    if isinstance(entry.mcp, dict):
        return entry.mcp
    path = file.parent / entry.mcp
    try:
        data = read_document(path, what="mcpServers")
    except ValueError as exc:
        raise ProjectError(file, str(exc), key=key) from None
    servers = data.get("mcpServers", data.get("servers")) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ProjectError(file, f"{entry.mcp}: expected a mapping under `mcpServers`", key=key)
    try:
        return {name: MCPServer.model_validate(server) for name, server in servers.items()}
    except ValidationError as exc:
        loc, message = first_error(exc)
        raise ProjectError(file, f"{entry.mcp}: {dotted(loc)}: {message}", key=key) from None


def check_prefixes(
    file: Path, entries: Sequence[ToolEntry], servers: Mapping[int, Mapping[str, MCPServer]]
) -> None:
    """That each tool prefix (an MCP server's name, an OpenAPI entry's `prefix`) is one name
    without dots, used by one source: a tool's name must say which source it is from.

    Args:
        file: The project file, to blame.
        entries: The file's `tools`.
        servers: The MCP servers of each `mcp` entry, by the entry's position.
    """
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries):
        prefixes: list[str] = []
        if isinstance(entry, MCPTools):
            prefixes = list(servers[index])
        elif isinstance(entry, OpenAPITools) and entry.prefix:
            prefixes = [entry.prefix]
        for prefix in prefixes:
            if not prefix or "." in prefix:
                raise ProjectError(
                    file, f"prefix {prefix!r} must be one name without dots", key=f"tools.{index}"
                )
            if prefix in seen:
                raise ProjectError(
                    file, f"prefix {prefix!r} is also used by {seen[prefix]}", key=f"tools.{index}"
                )
            seen[prefix] = f"tools.{index}"
