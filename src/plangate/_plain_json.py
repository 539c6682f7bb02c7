"""Plain JSON: what a step's args and metadata, and an edit's args, may hold. A plan is untrusted
input kept whole in every checkpoint, so the walk refuses anything no checkpointer, LangGraph's
server or browser holds alike, and anything past the limits, naming the path to it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, time
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

MAX_STRING_CHARS = 1_000_000
"""One string in a step's args or metadata (a key included), or a `respond` decision's message:
room for a long document; anything larger belongs in a file or a URL the tool reads."""

MAX_DEPTH = 64
"""How deeply lists and mappings may nest in args and metadata: JSON from real APIs nests a few
levels; the bound keeps every walk over args (validation, redaction, serialisation) far from
Python's recursion limit."""

_INT64 = (-(2**63), 2**63 - 1)  # what msgpack, SQLite and JSON readers in other languages hold

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""Half of a UTF-16 surrogate pair on its own: JSON can spell it (`"\\udfff"`) and Python keeps
it, but UTF-8 cannot encode it, so no checkpointer, trace or browser could store it. Pydantic
refuses it in a `str` field; args and metadata are walked by `_size`, which refuses it."""


def plain_json_size(value: dict[str, Any], *, at: tuple[str | int, ...] = ()) -> int:
    """Check that `value` (a step's args or metadata, an edit's args) is plain JSON within the
    limits, and return its size as `MAX_PLAN_SIZE` counts it.

    Plain JSON is what every checkpointer, LangGraph's server and a browser hold alike: strings,
    integers within 64 bits, finite floats, booleans, `None`, lists, and mappings with string
    keys, nested at most `MAX_DEPTH` deep, no string over `MAX_STRING_CHARS`.

    Raises:
        pydantic.ValidationError: Located at the first offending value, under `at`; raised from
            a pydantic validator, it names the exact path (`args.meta.when`).
    """
    if not value:
        return 1
    try:
        return _size(value, 0)
    except _NotPlainJson as exc:
        _refuse((*at, *map(_shown, reversed(exc.loc))), exc.problem, exc.value)


class _NotPlainJson(Exception):
    """The first value that is not plain JSON within the limits. Its `loc` is filled in while
    the walk unwinds, innermost key first, so that a walk that finds nothing builds no paths."""

    def __init__(self, problem: str, value: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.value = value
        self.loc: list[Any] = []


def _size(container: dict[Any, Any] | list[Any], depth: int) -> int:
    """The size of a mapping or list (strings count their length, other values one), refusing
    what is not plain JSON. It runs on every value of every step, so the exact built-in types
    are tested inline, commonest first, and everything else goes to `_other_size`."""
    if depth > MAX_DEPTH:
        raise _NotPlainJson(
            f"lists and mappings nest more than {MAX_DEPTH} deep here: flatten them", container
        )
    size = 1
    keyed = isinstance(container, dict)
    items: Iterable[tuple[Any, Any]]
    items = container.items() if isinstance(container, dict) else enumerate(container)
    key: Any = None
    try:
        for key, item in items:
            if keyed:
                if type(key) is not str or len(key) > MAX_STRING_CHARS or not key.isascii():
                    size += _key_size(key)
                else:
                    size += len(key)
            kind = type(item)
            if kind is str:
                # Only a long or non-ASCII string needs `_str_size`'s closer look.
                if len(item) <= MAX_STRING_CHARS and item.isascii():
                    size += len(item)
                else:
                    size += _str_size(item)
            elif kind is int and _INT64[0] <= item <= _INT64[1]:
                size += 1
            elif kind is dict or kind is list:
                size += _size(item, depth + 1)
            elif item is None or kind is bool or (kind is float and math.isfinite(item)):
                size += 1
            else:  # out of range, a subclass of a JSON type, or not JSON at all
                size += _other_size(item, depth + 1)
    except _NotPlainJson as exc:
        exc.loc.append(key)  # where the refused value is, outermost last
        raise
    return size


def _key_size(key: Any) -> int:
    if not isinstance(key, str):
        raise _NotPlainJson(
            f"a mapping key of type {type(key).__name__!r}: keys must be strings", key
        )
    if len(key) > MAX_STRING_CHARS:
        raise _NotPlainJson(
            f"a key of {len(key):,} characters is over the limit of {MAX_STRING_CHARS:,}: "
            "use a short key",
            key,
        )
    _refuse_lone_surrogate(key, "a key")
    return len(key)


def _str_size(text: str) -> int:
    if len(text) > MAX_STRING_CHARS:
        raise _NotPlainJson(
            f"a string of {len(text):,} characters is over the limit of "
            f"{MAX_STRING_CHARS:,}: pass large content by reference (a path or URL)",
            text,
        )
    _refuse_lone_surrogate(text, "a string")
    return len(text)


def _refuse_lone_surrogate(text: str, what: str) -> None:
    found = LONE_SURROGATE.search(text)
    if found is not None:
        raise _NotPlainJson(
            f"{what} holds a lone surrogate (\\u{ord(found.group()):04x}) at character "
            f"{found.start():,}, which UTF-8 cannot encode: send valid Unicode text",
            text,
        )


def _other_size(value: Any, depth: int) -> int:
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise _NotPlainJson(
                "an integer outside the 64-bit range (-2**63 to 2**63-1): send it as a string",
                value,
            )
        return 1
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlainJson(
                f"{value} is not a JSON number: send a finite number or null", value
            )
        return 1
    if isinstance(value, str):  # a subclass, such as a StrEnum member
        return _str_size(value)
    if isinstance(value, (dict, list)):
        return _size(value, depth)
    raise _NotPlainJson(_not_plain(value), value)


def _not_plain(value: Any) -> str:
    if isinstance(value, (tuple, set, frozenset)):
        fix = "send a list"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        fix = "send text (base64 for binary data)"
    elif isinstance(value, (date, time)):
        fix = "send an ISO 8601 string"
    else:
        fix = "send a string, number, true/false, null, list or mapping"
    return f"a value of type {type(value).__name__!r} is not plain JSON: {fix}"


def _shown(part: Any) -> str | int:
    """A key as an error location shows it: short (a key may be megabytes) and on one line."""
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    text = part if isinstance(part, str) else f"<{type(part).__name__}>"
    shown = "".join(c if c.isprintable() else "?" for c in text[:40])
    return shown + "…" if len(text) > 40 else shown


def _refuse(loc: tuple[str | int, ...], problem: str, value: Any) -> NoReturn:
    """Raise a pydantic `ValidationError` at `loc`. Raised inside a validator, pydantic adds the
    validated field's (or model's) own location in front, so the error names the full path."""
    raise ValidationError.from_exception_data(
        "plain JSON",
        [
            InitErrorDetails(
                type=PydanticCustomError("plain_json", "{problem}", {"problem": problem}),
                loc=loc,
                input=value,
            )
        ],
    )
