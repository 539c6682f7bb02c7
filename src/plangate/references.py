"""References from a step's args to an earlier step's output: data flow within a plan.

A string in a step's args that is exactly `"${steps.<id>.output}"` or
`"${steps.<id>.output.<path>}"` is replaced, when the step is about to run, by that value, whatever
its JSON type; a reference inside a longer string is replaced by its text (a string as it is,
anything else as JSON). A path is dotted keys and `[n]` list indices: `${steps.lookup.output.
contacts[0].email}`. `$${` writes a literal `${`.

What a path reads is the step's recorded output made addressable: a string that parses as JSON
is that JSON; LangChain content blocks that are all text (`[{"type": "text", "text": ...}]`, what
MCP tools return) are their texts joined by newlines, parsed as JSON where they parse; anything
else is the output as recorded.

A reference makes the step depend on the step it names (`depends_on` gets it at validation), so
it runs after that step and is `skipped` unless that step ended `ok`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ("Resolved", "UnresolvedReference", "addressable", "references_in", "resolve")

_REFERENCE = re.compile(r"\$\{steps\.([^.\[\]{}]+)\.output((?:\.[^.\[\]{}]+|\[\d+\])*)\}")
# An escape or a reference, whichever starts first: `$${steps.a.output}` is an escape.
_TOKEN = re.compile(r"\$\$\{|" + _REFERENCE.pattern)
_SEGMENT = re.compile(r"\.([^.\[\]{}]+)|\[(\d+)\]")
_MARK = "${"  # every reference and every escape holds it: strings without it are left alone


class UnresolvedReference(Exception):
    """A reference whose path the referenced step's output does not have."""


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(arg path, string) for every string in `value` that may hold a reference."""
    if isinstance(value, str):
        if _MARK in value:
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _walk(item, f"{path}[{n}]")


def references_in(args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(arg path, referenced step id) for every reference in `args`, in order."""
    return [
        (path, match[1])
        for path, text in _walk(dict(args), "")
        for match in _TOKEN.finditer(text)
        if match[1] is not None
    ]


def addressable(output: Any) -> Any:
    """A step's recorded output as paths read it (see the module's doc)."""
    if isinstance(output, list) and output and all(_is_text_block(item) for item in output):
        output = "\n".join(item["text"] for item in output)
    if isinstance(output, str):
        try:
            return json.loads(output)
        except ValueError:
            return output
    return output


def _is_text_block(item: Any) -> bool:
    return (
        isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str)
    )


def _read(outputs: Mapping[str, Any], step: str, path: str) -> Any:
    value = addressable(outputs[step])
    walked = f"steps.{step}.output"
    for key, index in _SEGMENT.findall(path):
        if index:
            if not isinstance(value, list) or int(index) >= len(value):
                raise UnresolvedReference(f"{walked} has no item [{index}]")
            value = value[int(index)]
            walked += f"[{index}]"
        else:
            if not isinstance(value, dict) or key not in value:
                raise UnresolvedReference(f"{walked} has no key {key!r}")
            value = value[key]
            walked += f".{key}"
    return value


@dataclass
class Resolved:
    """A step's args with every reference replaced and every `$${` unescaped.

    Attributes:
        args: The args the step runs with.
        sources: Arg path -> the reference its value came from (`steps.lookup.output.email`).
    """

    args: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)


def resolve(args: dict[str, Any], outputs: Mapping[str, Any]) -> Resolved:
    """Replace the references in `args` with the outputs they name.

    Args:
        args: A step's args, as the plan gives them.
        outputs: Step id -> recorded output, for every step the references name.

    Raises:
        UnresolvedReference: A path the output does not have; the message names the arg and the
            path.
    """
    found = dict(_walk(args, ""))
    if not found:
        return Resolved(args)
    resolved = Resolved({})
    resolved.args = _replace(args, "", found, outputs, resolved.sources)
    return resolved


def _replace(
    value: Any,
    path: str,
    found: dict[str, str],
    outputs: Mapping[str, Any],
    sources: dict[str, str],
) -> Any:
    if isinstance(value, str):
        return _substitute(value, path, outputs, sources) if path in found else value
    if isinstance(value, dict):
        return {
            key: _replace(item, f"{path}.{key}" if path else str(key), found, outputs, sources)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _replace(item, f"{path}[{n}]", found, outputs, sources) for n, item in enumerate(value)
        ]
    return value


def _substitute(text: str, path: str, outputs: Mapping[str, Any], sources: dict[str, str]) -> Any:
    def value_of(match: re.Match[str]) -> Any:
        step, steps_path = match[1], match[2]
        try:
            value = _read(outputs, step, steps_path)
        except UnresolvedReference as exc:
            raise UnresolvedReference(f"args.{path}: {exc}") from None
        sources[path] = match[0][2:-1]
        return value

    whole = _REFERENCE.fullmatch(text)
    if whole is not None:
        return value_of(whole)
    return _TOKEN.sub(lambda m: "${" if m[1] is None else _as_text(value_of(m)), text)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
