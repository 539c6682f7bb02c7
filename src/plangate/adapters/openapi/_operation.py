"""One operation as a tool knows it: its arguments' check, its action, the request a call
sends and what the answer makes of it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
import jsonschema  # type: ignore[import-untyped]
from langchain_core.runnables import RunnableConfig

from plangate.actions import ACTIONS
from plangate.adapters._json_schema import schema_problems
from plangate.adapters.openapi._arguments import Location, Signature
from plangate.adapters.openapi._document import Reader, one_line
from plangate.adapters.openapi._errors import (
    InvalidToolArguments,
    ToolConnectionError,
    ToolHTTPError,
    ToolHTTPTimeout,
)
from plangate.adapters.openapi._security import Credential, hide
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY
from plangate.plan import Action

# The methods HTTP defines as safe (RFC 9110): they only read. The others change the service.
_READS = ("GET", "HEAD", "OPTIONS", "TRACE")
_ACTION_EXTENSION = "x-plangate-action"


def _text(value: Any) -> str:
    """A parameter value as it goes into a path, header or cookie."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """What a tool knows of its operation: how to check arguments and make them a request."""

    tool: str
    method: str
    path: str
    base_url: str
    description: str
    parameters: Mapping[str, Location]
    """Argument name -> where it goes; the other arguments make up the body."""
    body: Literal["none", "fields", "whole"]
    """No body; the body's properties are arguments; or the body is the argument `body`."""
    schema: dict[str, Any]
    validator: Any
    action: Action
    """`x-plangate-action`, else what the method does: `read` when it is safe, else `execute`."""
    irreversible: bool
    """A `DELETE`: what it removes does not come back."""
    credentials: tuple[Credential, ...]
    """What its `security` asks for, from `auth`; added to every request."""

    @classmethod
    def build(
        cls,
        reader: Reader,
        where: str,
        operation: Mapping[str, Any],
        shared: list[Any],
        *,
        tool: str,
        method: str,
        base_url: str,
        path: str,
        credentials: tuple[Credential, ...],
    ) -> Operation:
        """The operation `where` (`POST /refunds (create_refund)`); `shared` are its path's
        parameters."""
        signature = Signature(reader, where)
        # Path-level parameters apply to each operation, which may override them.
        signature.add_parameters([*shared, *(operation.get("parameters") or [])], credentials)
        signature.add_body(reader.follow(operation.get("requestBody"), where))
        schema = signature.schema()
        summary = str(operation.get("summary") or "").strip()
        details = str(operation.get("description") or "").strip()
        return cls(
            tool=tool,
            method=method,
            path=path,
            base_url=base_url,
            description="\n\n".join(p for p in (summary, details) if p) or where,
            parameters=signature.parameters,
            body=signature.body,
            schema=schema,
            validator=_validator(reader, where, schema),
            action=_action(reader, where, operation, method),
            irreversible=method == "DELETE",
            credentials=credentials,
        )

    def problem(self, arguments: Any) -> tuple[str, str] | None:
        """(dotted field, what is wrong with it) for arguments the schema refuses."""
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(arguments))
        if error is None:
            return None
        return ".".join(str(part) for part in error.absolute_path), one_line(error.message)

    def problems(self, arguments: Any) -> list[tuple[str, str]]:
        return schema_problems(self.validator.iter_errors(arguments))

    def check(self, arguments: Any) -> None:
        problem = self.problem(arguments)
        if problem is not None:
            field, message = problem
            raise InvalidToolArguments(
                f"{self.tool}: {field}: {message}" if field else f"{self.tool}: {message}",
                tool=self.tool,
                field=field,
            )

    def request(
        self, arguments: Mapping[str, Any], config: RunnableConfig, headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """Keyword arguments of `httpx.Client.request` for a call with valid `arguments`."""
        path = self.path
        query: dict[str, Any] = {}
        # Case-insensitive: a credential replaces the caller's `authorization` header.
        sent = httpx.Headers(headers)
        cookies: list[str] = []
        body: dict[str, Any] = {}
        for credential in self.credentials:
            if credential.location == "header":
                sent[credential.field_name] = credential.value
            elif credential.location == "query":
                query[credential.field_name] = credential.value
            else:
                cookies.append(f"{credential.field_name}={credential.value}")
        for name, value in arguments.items():
            location = self.parameters.get(name)
            if location is None:
                body[name] = value
            elif value is None:
                continue  # an optional parameter left out
            elif location == "path":
                path = path.replace(f"{{{name}}}", quote(_text(value), safe=""))
            elif location == "query":
                query[name] = value
            elif location == "header":
                sent[name] = _text(value)
            else:
                cookies.append(f"{name}={_text(value)}")
        if cookies:
            sent["Cookie"] = "; ".join(cookies)
        key = (config.get("metadata") or {}).get(IDEMPOTENCY_KEY)
        if key is not None:
            sent["Idempotency-Key"] = str(key)
        request: dict[str, Any] = {
            "method": self.method,
            "url": self.base_url + path,
            "params": query,
            "headers": sent,
        }
        if self.body == "fields":
            request["json"] = body
        elif self.body == "whole" and "body" in body:
            request["json"] = body["body"]
        return request

    @contextmanager
    def reaching(self, url: str) -> Iterator[None]:
        """httpx's transport failures as the standard exceptions plangate retries."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ToolHTTPTimeout(
                f"{self.tool}: {self.method} {url} timed out ({type(exc).__name__})",
                tool=self.tool,
                url=url,
            ) from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            reason = one_line(hide(str(exc), self.credentials)) or type(exc).__name__
            raise ToolConnectionError(
                f"{self.tool}: cannot reach {url}: {reason}", tool=self.tool, url=url
            ) from exc

    def output(self, response: httpx.Response) -> Any:
        if response.is_error:
            url = str(response.request.url.copy_with(query=None))
            text = hide(response.text, self.credentials)
            excerpt = one_line(text)
            raise ToolHTTPError(
                f"{self.tool}: {self.method} {response.request.url.path} answered "
                f"{response.status_code} {response.reason_phrase}"
                + (f": {excerpt}" if excerpt else ""),
                tool=self.tool,
                status_code=response.status_code,
                method=self.method,
                url=url,
                body=text,
            )
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            try:
                return hide(response.json(), self.credentials)
            except json.JSONDecodeError:
                pass  # mislabelled: its text is still the answer
        return hide(response.text, self.credentials)


def _validator(reader: Reader, where: str, schema: dict[str, Any]) -> Any:
    """The check of arguments against `schema`, once the schema is known to be one."""
    # OpenAPI 3.0 schemas are JSON Schema draft 4 with extras; 3.1 ones are 2020-12.
    openapi = str(reader.spec.get("openapi"))
    checker = (
        jsonschema.Draft4Validator if openapi.startswith("3.0") else jsonschema.Draft202012Validator
    )
    try:
        checker.check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = ".".join(str(part) for part in exc.absolute_path)
        raise reader.fail(
            where,
            f"its schema is invalid at {at or 'the top'}: {one_line(exc.message)}",
            "fix the document's schema",
        ) from None
    return checker(schema)


def _action(reader: Reader, where: str, operation: Mapping[str, Any], method: str) -> Action:
    """`Operation.action` for `operation`, its `x-plangate-action` checked."""
    if _ACTION_EXTENSION not in operation:
        return "read" if method in _READS else "execute"
    declared: Action = operation[_ACTION_EXTENSION]
    if declared not in ACTIONS:
        raise reader.fail(
            where,
            f"{_ACTION_EXTENSION} is {one_line(repr(declared))}, not one of {', '.join(ACTIONS)}",
            f"set {_ACTION_EXTENSION} to one of them, or leave it out to take the action from "
            "the HTTP method",
        )
    return declared
