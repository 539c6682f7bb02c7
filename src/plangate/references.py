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


@dataclass
class Resolved:
    """A step's args with every reference replaced and every `$${` unescaped.

    Attributes:
        args: The args the step runs with.
        sources: Arg path -> every reference its value was made from, in the order they
            appear, each once: `["steps.lookup.output.email"]` for a whole reference,
            `["steps.item.output.name", "steps.item.output.qty"]` for
            `"Restock ${steps.item.output.name} (qty ${steps.item.output.qty})"`.
    """

    args: dict[str, Any]
    sources: dict[str, list[str]] = field(default_factory=dict)


def resolve(args: dict[str, Any], outputs: Mapping[str, Any], *, limit: int) -> Resolved:
    """Replace the references in `args` with the outputs they name.

    Args:
        args: A step's args, as the plan gives them.
        outputs: Step id -> recorded output, for every step the references name.
        limit: The most the resolved args may hold, counted as the length of each referenced
            value's JSON: a plan naming one large output many times must not make work that
            grows with the product of the two.

    Raises:
        UnresolvedReference: A path the output does not have, or resolved args over `limit`;
            the message names the arg.
    """
    found = dict(_walk(args, ""))
    if not found:
        return Resolved(args)
    return _Resolver(outputs, found, limit).run(args)


class _Resolver:
    """One step's resolution: each output is made addressable once, each distinct reference
    read and measured once, however often the args name it."""

    def __init__(self, outputs: Mapping[str, Any], found: dict[str, str], limit: int) -> None:
        self.outputs = outputs
        self.found = found
        self.limit = limit
        self.used = 0
        self.addressable: dict[str, Any] = {}
        self.read: dict[str, tuple[Any, str]] = {}  # reference -> (value, its JSON text)
        self.resolved = Resolved({})

    def run(self, args: dict[str, Any]) -> Resolved:
        self.resolved.args = self._replace(args, "")
        return self.resolved

    def _replace(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self._substitute(value, path) if path in self.found else value
        if isinstance(value, dict):
            return {
                key: self._replace(item, f"{path}.{key}" if path else str(key))
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._replace(item, f"{path}[{n}]") for n, item in enumerate(value)]
        return value

    def _substitute(self, text: str, path: str) -> Any:
        whole = _REFERENCE.fullmatch(text)
        if whole is not None:
            return self._value(whole, path)[0]
        return _TOKEN.sub(lambda m: "${" if m[1] is None else self._value(m, path)[1], text)

    def _value(self, match: re.Match[str], path: str) -> tuple[Any, str]:
        """The value a reference names and its text (a string as it is, else its JSON),
        counted against the limit at every use."""
        reference = match[0][2:-1]
        if reference not in self.read:
            step = match[1]
            if step not in self.addressable:
                self.addressable[step] = addressable(self.outputs[step])
            try:
                value = _read(self.addressable[step], step, match[2])
            except UnresolvedReference as exc:
                raise UnresolvedReference(f"args.{path}: {exc}") from None
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            self.read[reference] = (value, text)
        value, text = self.read[reference]
        self.used += len(text)
        if self.used > self.limit:
            raise UnresolvedReference(
                f"args.{path}: the referenced values come to over {self.limit:,} characters: "
                "pass large content by reference (a path or URL the tool reads)"
            )
        used = self.resolved.sources.setdefault(path, [])
        if reference not in used:
            used.append(reference)
        return value, text


def _read(value: Any, step: str, path: str) -> Any:
    """The value at `path` of step `step`'s addressable output `value`."""
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
