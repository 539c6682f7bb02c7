"""Mock tools from recorded fixtures: for working offline, and as test doubles.

A fixture file (YAML or JSON) lists, per tool name, cases tried in order; the first whose
`match` agrees with the call's arguments answers it, with its `output` or by raising:

```yaml
tools:
  crm.lookup_account:
    - match: {account: acme}          # every key given must equal the argument
      output: {account_id: acc-001, name: Acme Corp}
    - match: {}                       # matches any call
      raise: {message: no such account}
  billing.refund:
    - raise: {error: connection, message: billing is down}
```

`raise.error` is `tool` (a `ToolException`, the default), `connection` (a `ConnectionError`),
`timeout` (a `TimeoutError`) or `http` with a `status_code`: the last three are transient, so a
profile's retry policy applies to them as it does to the real adapter's failures.

Pass the tools of `mock_tools(...)` as `build_graph(..., mocks=...)`; a profile with
`offline: true` (or `plangate run --offline`) calls them in place of the real tools, and one with
`mock_fallback: true` calls them when a real tool fails with a connection error or a timeout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plangate._files import dotted, first_error, read_document
from plangate.errors import AdapterError

__all__ = ("MockCase", "MockError", "MockFixtures", "MockHTTPError", "load_fixtures", "mock_tools")

_ARGS_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": True}


class MockHTTPError(Exception):
    """What a mock raises for `raise: {error: http, status_code: N}`: an error that carries an
    HTTP status the way HTTP clients' errors do, so 429 and 5xx are retried."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class MockError(BaseModel):
    """The error a fixture case raises."""

    model_config = ConfigDict(extra="forbid")

    error: Literal["tool", "connection", "timeout", "http"] = "tool"
    message: str = "mock error"
    status_code: int | None = Field(default=None, ge=400, le=599)

    @model_validator(mode="after")
    def _status_for_http(self) -> MockError:
        if (self.error == "http") != (self.status_code is not None):
            raise ValueError("status_code goes with error: http, and only with it")
        return self

    def exception(self) -> Exception:
        if self.error == "connection":
            return ConnectionError(self.message)
        if self.error == "timeout":
            return TimeoutError(self.message)
        if self.status_code is not None:
            return MockHTTPError(self.status_code, f"HTTP {self.status_code}: {self.message}")
        return ToolException(self.message)


class MockCase(BaseModel):
    """One recorded answer: when the arguments agree with `match`, return `output` or raise."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    match: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    raise_: MockError | None = Field(default=None, alias="raise")

    @model_validator(mode="after")
    def _output_or_raise(self) -> MockCase:
        if ("output" in self.model_fields_set) == (self.raise_ is not None):
            raise ValueError("give either output or raise")
        return self

    def matches(self, args: Mapping[str, Any]) -> bool:
        return all(key in args and args[key] == value for key, value in self.match.items())


class MockFixtures(BaseModel):
    """Every tool's recorded cases, as read from one or more fixture files."""

    model_config = ConfigDict(extra="forbid")

    tools: dict[str, list[MockCase]] = Field(default_factory=dict)


def load_fixtures(*sources: str | Path | Mapping[str, Any]) -> MockFixtures:
    """Read fixture files (or already parsed mappings); a tool in a later source replaces the
    same tool's cases from an earlier one.

    Raises:
        AdapterError: A file is missing, is not YAML/JSON, or does not follow the fixture
            format; the message names the file, the tool and the problem.
    """
    merged: dict[str, list[MockCase]] = {}
    for source in sources:
        merged.update(_read(source).tools)
    return MockFixtures(tools=merged)


def _read(source: str | Path | Mapping[str, Any]) -> MockFixtures:
    where = "fixtures" if isinstance(source, Mapping) else f"fixture file {str(source)!r}"
    if isinstance(source, Mapping):
        data: Any = source
    else:
        try:
            data = read_document(source, what="fixture")
        except ValueError as exc:
            raise AdapterError(str(exc), source=str(source)) from None
    # A file that is not a fixture file at all (a path mistyped, or pointed somewhere it
    # should not be) is named, never quoted: its keys and values may be anything, secrets too.
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("tools", {}), dict)
        or set(data) - {"tools"}
    ):
        raise AdapterError(
            f"{where}: expected a mapping with `tools: {{tool name: [cases]}}` and no other "
            "key: is it a fixture file?",
            source=where,
        )
    try:
        return MockFixtures.model_validate(data)
    except ValidationError as exc:
        loc, msg = first_error(exc)
        tool = str(loc[1]) if len(loc) > 1 and loc[0] == "tools" else None
        # pydantic words a validator's own message as "Value error, ..."
        msg = msg.removeprefix("Value error, ")
        raise AdapterError(
            f"{where}: {dotted(loc)}: {msg}",
            source=where,
            tool=tool,
            hint="each case is {match: {...}, output: ...} or {match: {...}, raise: {...}}",
        ) from None


def mock_tools(*sources: str | Path | Mapping[str, Any] | MockFixtures) -> list[BaseTool]:
    """One tool per tool name in the fixtures, answering from its cases.

    A call that no case matches fails with a `ToolException` naming the tool and the
    arguments, like a real tool refusing a call it does not understand.

    Examples:
        >>> [t.name for t in mock_tools({"tools": {"crm.lookup": [{"output": 1}]}})]
        ['crm.lookup']
    """
    fixtures = [s for s in sources if isinstance(s, MockFixtures)]
    files = [s for s in sources if not isinstance(s, MockFixtures)]
    cases: dict[str, list[MockCase]] = {}
    for each in (*fixtures, load_fixtures(*files)):
        cases.update(each.tools)
    return [_mock(name, tool_cases) for name, tool_cases in cases.items()]


def _mock(name: str, cases: list[MockCase]) -> BaseTool:
    def answer(**args: Any) -> Any:
        for case in cases:
            if case.matches(args):
                if case.raise_ is not None:
                    raise case.raise_.exception()
                return case.output
        raise ToolException(
            f"no fixture of {name} matches the arguments {json.dumps(args, default=str)}"
        )

    return StructuredTool.from_function(
        answer,
        name=name,
        description=f"Mock of {name}, answering from recorded fixtures.",
        args_schema=_ARGS_SCHEMA,
    )
