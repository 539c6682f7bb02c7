"""Naming and choosing operations: each tool's name (`x-plangate-name`, a FastAPI operationId
cut back to its function name, else the operationId), worked out over the whole document, and
the operations `include` and `exclude` keep."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

from plangate.adapters.openapi._document import one_line
from plangate.errors import AdapterError, PlangateUsageError

_NAME_EXTENSION = "x-plangate-name"
_TAG = "tag:"


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """An operation of the document before anything but its name and tags is read of it."""

    path: str
    method: str
    operation: Mapping[str, Any]
    shared: list[Any]
    """Its path's own parameters."""
    operation_id: str | None
    name: str | None
    """Its tool's name without the prefix; `None` when its `x-plangate-name` is no name."""
    tags: tuple[str, ...]


def _fastapi_function(operation_id: str, path: str, method: str) -> str | None:
    """The function name in an operationId FastAPI generated, else `None`.

    FastAPI's `generate_unique_id` writes `<route name><path>_<method>`, each character that
    is no letter, digit or `_` made `_`: `get_thread_threads__thread_id__get` for
    `GET /threads/{thread_id}` from `def get_thread`. Only an id that ends in exactly the
    operation's own path and method is cut, so a hand-written id is left alone.
    """
    suffix = re.sub(r"\W", "_", path) + "_" + method
    if len(operation_id) > len(suffix) and operation_id.endswith(suffix):
        return operation_id[: -len(suffix)]
    return None


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not re.search(r"[.\s]", value)


def named(found: Iterator[tuple[str, str, Mapping[str, Any], list[Any]]]) -> list[Entry]:
    """Every operation with its tool's name: `x-plangate-name`, else the function name of a
    FastAPI operationId, else the operationId; cut-back names that clash with another
    operation's name fall back to their operationIds."""
    entries: list[Entry] = []
    cut: set[int] = set()  # the entries named after the function in a FastAPI operationId
    for path, method, operation, shared in found:
        raw_id = operation.get("operationId")
        operation_id = raw_id if isinstance(raw_id, str) and raw_id else None
        name: str | None = None
        if _NAME_EXTENSION in operation:
            declared = operation[_NAME_EXTENSION]
            name = declared if _is_name(declared) else None
        elif operation_id is not None:
            function = _fastapi_function(operation_id, path, method)
            if function is not None:
                cut.add(len(entries))
            name = function or operation_id
        tags = operation.get("tags")
        entries.append(
            Entry(
                path=path,
                method=method,
                operation=operation,
                shared=shared,
                operation_id=operation_id,
                name=name,
                tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
            )
        )
    # Over the whole document, so that choosing operations never renames one.
    counts = Counter(entry.name for entry in entries)
    return [
        replace(entry, name=entry.operation_id)
        if index in cut and counts[entry.name] > 1
        else entry
        for index, entry in enumerate(entries)
    ]


def pattern_list(option: str, patterns: Sequence[str] | None) -> tuple[str, ...] | None:
    """`include` or `exclude` (named by `option`) as given, once known to be a list of
    patterns: a lone string would otherwise be read as one pattern per character."""
    if patterns is None:
        return None
    if isinstance(patterns, str) or not all(isinstance(p, str) and p for p in patterns):
        raise PlangateUsageError(
            f"{option} must be a list of non-empty patterns, not {one_line(repr(patterns))}",
            hint=f"e.g. {option}=['get_*', 'tag:billing']",
        )
    return tuple(patterns)


def _matches(pattern: str, entry: Entry) -> bool:
    if pattern.startswith(_TAG):
        return any(fnmatchcase(tag, pattern[len(_TAG) :]) for tag in entry.tags)
    return any(fnmatchcase(n, pattern) for n in (entry.operation_id, entry.name) if n)


def choose(
    entries: list[Entry],
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
    source: str,
) -> list[Entry]:
    """The operations `include` keeps and `exclude` does not drop, in the document's order."""
    for option, patterns in (("include", include), ("exclude", exclude)):
        unknown = [p for p in patterns or () if not any(_matches(p, e) for e in entries)]
        if unknown:
            tags = sorted({tag for entry in entries for tag in entry.tags})
            raise AdapterError(
                f"{option} pattern{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))} match{'' if len(unknown) > 1 else 'es'} "
                "no operation",
                source=source,
                hint="patterns are globs of operationIds or tool names (without the prefix), "
                "or 'tag:<tag>'" + (f"; the document's tags are {', '.join(tags)}" if tags else ""),
            )
    return [
        entry
        for entry in entries
        if (include is None or any(_matches(p, entry) for p in include))
        and not any(_matches(p, entry) for p in exclude or ())
    ]


def tool_names(
    chosen: list[Entry], prefix: str | None, source: str
) -> Iterator[tuple[Entry, str, str]]:
    """Each chosen operation with its tool's name (under `prefix`) and where it is, for errors
    (`POST /refunds (create_refund)`), once its operationId and name are known to be its own.
    One at a time, so that the first operation at fault is named, in the document's order."""
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    for entry in chosen:
        where = f"{entry.method.upper()} {entry.path}"
        if entry.operation_id is None:
            raise AdapterError(
                f"{where} has no operationId",
                source=source,
                hint="give every operation a unique operationId: plangate names tools after them",
            )
        if entry.name is None:
            raise AdapterError(
                f"{where} ({entry.operation_id}): {_NAME_EXTENSION} is "
                f"{one_line(repr(entry.operation[_NAME_EXTENSION]))}, not a tool name",
                source=source,
                hint="use a non-empty name without dots or spaces: the prefix is the domain",
            )
        name = f"{prefix}.{entry.name}" if prefix else entry.name
        if entry.operation_id in ids:
            raise AdapterError(
                f"operationId {entry.operation_id!r} is used by both "
                f"{ids[entry.operation_id]} and {where}",
                source=source,
                tool=name,
                hint="operationIds must be unique within a document",
            )
        ids[entry.operation_id] = where
        if entry.name in names:
            raise AdapterError(
                f"tool name {name!r} is given to both {names[entry.name]} and {where}",
                source=source,
                tool=name,
                hint=f"give one of them another {_NAME_EXTENSION}",
            )
        names[entry.name] = where
        yield entry, name, f"{where} ({entry.operation_id})"
