"""Tools generated from an OpenAPI 3 document: one per operation, called over HTTP.

Part of plangate's adapters: it turns a service's document into LangChain tools that the graph
calls like any other.

An operation's arguments are its path, query, header and cookie parameters and its JSON request
body: the body's properties sit beside the parameters when the body is an object whose property
names are free, else the whole body is one `body` argument. Arguments are checked against the
document's schemas (with `jsonschema`) before any request is sent. Every tool runs natively in
`invoke` (`httpx.Client`) and `ainvoke` (`httpx.AsyncClient`), and sends the call's plangate
idempotency key as an `Idempotency-Key` header, so that a service honouring it acts once however
often a step is resumed.

Names: a tool is named after its operation, under the `prefix` if one is given
(`billing.get_invoice`). The operation's `x-plangate-name` wins; else an operationId that FastAPI
generated (`<function><path>_<method>`, with every character of the path that is no letter,
digit or `_` made `_`: `get_thread_threads__thread_id__get` for `GET /threads/{thread_id}`) is cut
back to its function name (`get_thread`); else the operationId is the name as it is. Operations
whose cut-back names would clash keep their full operationIds. Names are worked out over the whole
document, so choosing operations does not change them.

Choosing operations: `include` and `exclude` take operationId or tool-name globs (`get_*`) and
tags (`tag:billing`, which may be a glob as well). An operation is kept when it matches an
`include` pattern (or there is no `include`) and no `exclude` pattern; the others are dropped
before their parameters, body or credentials are read, so an operation plangate cannot use can be
left out. A pattern that matches no operation of the document is an `AdapterError`: a typo would
otherwise give no tool, or keep one that was meant to be left out.

Credentials: an operation's `security` (else the document's) names the schemes of
`components.securitySchemes` it needs. `auth` maps a scheme's name to where its credential is
found, an environment variable written `${NAME}` (`auth={"HTTPBearer": "${BILLING_TOKEN}"}`), read
once when the tools are made:

| scheme | `auth` value | sent as |
|--------|--------------|---------|
| `http` `bearer`, `oauth2`, `openIdConnect` | the token | `Authorization: Bearer <token>` |
| `http` `basic` | `${USER}:${PASSWORD}` | `Authorization: Basic <base64>` |
| `apiKey` (`in: header`, `query` or `cookie`) | the key | that header, query or cookie field |

An operation gets the first of its `security` alternatives whose schemes all have a credential
(one without any, `{}`, comes last, so that a credential given is sent). A scheme also counts as
given when `headers`, or the headers, params, cookies or httpx `auth` of a `client` passed, carry
it (plangate then sends nothing for it). An operation kept whose schemes have no credential is an
`AdapterError` when the tools are made, naming the scheme and what to set. A parameter the scheme
fills (an `Authorization` header) is not one of the tool's arguments. Credentials from `auth`
appear in no repr, and wherever an answer quotes one it is replaced by `***`, in errors and
outputs alike, so that traces never hold one (what `headers` or a `client` sends is the
caller's to keep out of answers).

A failing call raises, and plangate records the step as `error`: `InvalidToolArguments` (nothing
was sent), `ToolHTTPError` (a 4xx/5xx answer, with its `status_code`: 429 and 5xx are retried
under a profile's retry policy), `ToolConnectionError` and `ToolHTTPTimeout` (retried as well).

Actions: each tool declares what its operation does from its HTTP method, in
`metadata["plangate"]` (source `openapi`, see `plangate.actions`): `GET`, `HEAD`, `OPTIONS` and
`TRACE` are `read`, `POST`, `PUT` and `PATCH` are `execute`, and `DELETE` is an irreversible
`execute`. An operation's `x-plangate-action: read|propose|execute` extension replaces the
method's action (a `DELETE` stays irreversible). A profile's `tool_actions` still wins over
both, and a plan may raise a step's action but never lower it.

Needs the `http` extra (from a checkout: `pip install '.[http]'`).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import ssl
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urljoin, urlsplit

import yaml
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel

from plangate._files import read_document
from plangate.actions import ACTIONS, METADATA_KEY
from plangate.adapters._json_schema import JSONSchemaArguments as _Arguments
from plangate.adapters._json_schema import schema_problems
from plangate.errors import AdapterError, PlangateError, PlangateUsageError
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY, InvalidArguments, ToolTimeout
from plangate.plan import Action

try:
    import httpx
    import jsonschema  # type: ignore[import-untyped]
    import referencing
    import referencing.exceptions
except ImportError as exc:
    raise ImportError(
        "plangate's OpenAPI adapter needs httpx and jsonschema: install plangate's `http` "
        "extra (from a checkout: pip install '.[http]')"
    ) from exc

__all__ = (
    "InvalidToolArguments",
    "OpenAPIToolError",
    "ToolConnectionError",
    "ToolHTTPError",
    "ToolHTTPTimeout",
    "openapi_tools",
)

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The methods HTTP defines as safe (RFC 9110): they only read. The others change the service.
_READS = ("GET", "HEAD", "OPTIONS", "TRACE")
_ACTION_EXTENSION = "x-plangate-action"
_NAME_EXTENSION = "x-plangate-name"
_TAG = "tag:"
# `${NAME}` in an `auth` value: the environment variable NAME.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HIDDEN = "***"
_EXCERPT = 200
Location = Literal["path", "query", "header", "cookie"]


# --- errors -----------------------------------------------------------------------------------


class OpenAPIToolError(PlangateError):
    """A call of a tool generated from an OpenAPI document failed; its step ends `error`.

    Attributes:
        tool: The tool's name (`billing.create_refund`).
    """

    def __init__(self, message: str, *, tool: str, hint: str | None = None) -> None:
        self.tool = tool
        super().__init__(message, hint=hint)


class InvalidToolArguments(OpenAPIToolError, InvalidArguments):
    """The arguments do not match the operation's schema; no request was sent, and the step
    ends with `error_type: "invalid_arguments"`.

    Attributes:
        field: Dotted path of the offending argument (`amount`, `body.lines.0`), or `""` when
            the arguments as a whole are at fault (one is missing or unknown).
    """

    def __init__(self, message: str, *, tool: str, field: str) -> None:
        self.field = field
        super().__init__(message, tool=tool)


class ToolHTTPError(OpenAPIToolError):
    """The service answered with a 4xx or 5xx status.

    Attributes:
        status_code: The HTTP status; plangate retries 429 and 5xx.
        method: The request's method (`POST`).
        url: The request's URL, without its query string.
        body: The response's text, whole (any credential plangate sent in it hidden as `***`).
    """

    def __init__(
        self, message: str, *, tool: str, status_code: int, method: str, url: str, body: str
    ):
        self.status_code = status_code
        self.method = method
        self.url = url
        self.body = body
        super().__init__(message, tool=tool)


class ToolConnectionError(OpenAPIToolError, ConnectionError):
    """The service could not be reached or dropped the connection; plangate retries it.

    Attributes:
        url: The request's URL, without its query string.
    """

    def __init__(self, message: str, *, tool: str, url: str) -> None:
        self.url = url
        super().__init__(message, tool=tool, hint="is the service up? check base_url")


class ToolHTTPTimeout(OpenAPIToolError, ToolTimeout):
    """The service did not answer in time; the step ends with `error_type: "timeout"` and
    plangate retries it.

    Attributes:
        url: The request's URL, without its query string.
    """

    def __init__(self, message: str, *, tool: str, url: str) -> None:
        self.url = url
        super().__init__(message, tool=tool)


# --- the public entry point -------------------------------------------------------------------


def openapi_tools(
    document: Mapping[str, Any] | str | Path,
    *,
    base_url: str | None = None,
    prefix: str | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    auth: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = 30.0,
    client: httpx.Client | None = None,
    async_client: httpx.AsyncClient | None = None,
) -> list[BaseTool]:
    """One tool per operation of an OpenAPI 3 document, with a name a plan can use.

    A tool's name is the operation's `x-plangate-name`; else, for an operationId FastAPI
    generated (`<function><path>_<method>`: `get_thread_threads__thread_id__get`), the function
    name (`get_thread`); else the operationId. When cut-back names clash (two functions of one
    name on different paths, or a cut-back name that is another operation's name), those
    operations keep their full operationIds. Names are worked out over the whole document:
    `include` and `exclude` do not change them.

    Args:
        document: The document: a dict, a JSON/YAML file, or its http(s) URL (a FastAPI
            service's `/openapi.json`).
        base_url: Where the service is; defaults to the document's first `servers` URL,
            resolved against the document's URL (FastAPI documents have none: the service
            is then where its document is).
        prefix: The domain the tools are registered under: `billing` names them
            `billing.<name>` (plans count budgets by the part before the first dot); without
            one, a tool is named by its name alone.
        include: Make tools only for the operations matching one of these patterns: a glob
            of operationIds and tool names without the prefix (`get_*`, `get_thread`), or
            `tag:<glob>` for an operation's tags (`tag:billing`). Default: every operation.
        exclude: Leave out the operations matching one of these patterns (same forms), even
            when `include` matches them. Left-out operations are not read: one plangate
            cannot use raises nothing.
        auth: Security scheme name (a key of `components.securitySchemes`) -> its credential,
            written as environment variables: `{"HTTPBearer": "${BILLING_TOKEN}"}`, or
            `"${BILLING_USER}:${BILLING_PASSWORD}"` for `http` `basic`. Bearer, basic,
            `oauth2` and `openIdConnect` (sent as a bearer token) and `apiKey` (header,
            query or cookie) schemes are sent by plangate, to each operation whose `security`
            (or the document's) asks for them. Values are read once, here.
        headers: Sent with every request (and when fetching the document). A value may read
            environment variables, `{"Authorization": "Bearer ${BILLING_TOKEN}"}`: what they
            give is hidden as `auth`'s credentials are.
        timeout: Seconds each request may take, for the clients plangate makes.
        client: Used for `invoke` (and to fetch the document) instead of a client per call;
            pass one to reuse connections, or to set proxies, hooks or an httpx `auth` flow
            (which then stands for any scheme `auth` does not name).
        async_client: The same for `ainvoke`.

    Returns:
        The tools, in the document's order. Each takes the operation's arguments and returns
        the response's JSON body (or its text when it is not JSON; `None` when empty). Each
        declares its action in `metadata["plangate"]` (source `openapi`): `read` for `GET`,
        `HEAD`, `OPTIONS` and `TRACE`, `execute` for the other methods, and irreversible for
        `DELETE`; an operation's `x-plangate-action` (`read`, `propose` or `execute`) replaces
        the method's action, and a `DELETE` stays irreversible. A credential from `auth` is
        replaced by `***` wherever an answer (an output or an error) quotes it, and shows in no
        repr.

    Raises:
        PlangateUsageError: `prefix` is empty or has a dot; `include` or `exclude` is a string
            rather than a list of patterns.
        AdapterError: The document cannot be read or is no OpenAPI 3 document; an `include` or
            `exclude` pattern matches no operation; `include`/`exclude` leave no operation;
            an operation kept has no `operationId`, shares one or its tool name, has an
            unusable schema, a non-JSON request body, an `x-plangate-action` other than
            `read`, `propose` and `execute`, or an `x-plangate-name` that is no name; `auth`
            names a scheme the document does not define, or a variable that is not set, or
            gives a value naming no variable; an operation kept needs a security scheme and
            no credential is given for it; or no base URL can be worked out.

    Example:
        >>> tools = openapi_tools(  # doctest: +SKIP
        ...     "http://127.0.0.1:8000/openapi.json",
        ...     prefix="billing",
        ...     exclude=["tag:admin"],
        ...     auth={"HTTPBearer": "${BILLING_TOKEN}"},
        ... )
        >>> [tool.name for tool in tools]  # doctest: +SKIP
        ['billing.get_invoice', 'billing.create_refund']
    """
    if prefix is not None and (not prefix or "." in prefix):
        raise PlangateUsageError(
            f"invalid OpenAPI tool prefix {prefix!r}",
            hint="use one domain name without dots, such as 'billing'",
        )
    wanted = _patterns("include", include)
    unwanted = _patterns("exclude", exclude)
    given = _Credential.from_headers(headers or {}, source=str(document))
    extra = {credential.field_name: credential.value for credential in given}
    spec, source, document_url = _load(document, headers=extra, timeout=timeout, client=client)
    root = _base_url(spec, base_url, document_url, source)
    reader = _Reader(spec, source)
    entries = _named(_operations(spec, source))
    chosen = _choose(entries, wanted, unwanted, source)
    clients = tuple(c for c in (client, async_client) if c is not None)
    security = _Security(reader, auth or {}, prefix=prefix, headers=extra, clients=clients)
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    tools: list[BaseTool] = []
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
                f"{_one_line(repr(entry.operation[_NAME_EXTENSION]))}, not a tool name",
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
        where = f"{where} ({entry.operation_id})"
        call = _Operation.build(
            reader,
            where,
            entry.operation,
            entry.shared,
            tool=name,
            method=entry.method.upper(),
            base_url=root,
            path=entry.path,
            credentials=(*security.credentials(entry.operation, where, tool=name), *given),
        )
        tools.append(
            _tool(call, headers=extra, timeout=timeout, client=client, aclient=async_client)
        )
    if not tools and entries:
        raise AdapterError(
            f"include/exclude leave none of the document's {len(entries)} operations",
            source=source,
            hint="check the patterns against the document's operationIds and tags",
        )
    if not tools:
        raise AdapterError(
            "the OpenAPI document defines no operations",
            source=source,
            hint="check that this is the service's document and that it has `paths`",
        )
    return tools


# --- reading the document ---------------------------------------------------------------------


def _one_line(text: str, limit: int = _EXCERPT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _load(
    document: Mapping[str, Any] | str | Path,
    *,
    headers: dict[str, str],
    timeout: float | None,
    client: httpx.Client | None,
) -> tuple[dict[str, Any], str, str | None]:
    """The parsed document, a name for it in errors, and the URL it came from (if any)."""
    url: str | None = None
    if isinstance(document, Mapping):
        title = (document.get("info") or {}).get("title")
        source = f"OpenAPI document {title!r}" if title else "OpenAPI document"
        spec: Any = dict(document)
    elif isinstance(document, str) and document.startswith(("http://", "https://")):
        source = url = document
        spec = _fetch(document, headers=headers, timeout=timeout, client=client)
    else:
        source = str(document)
        try:
            spec = read_document(document, what="OpenAPI document")
        except ValueError as exc:
            raise AdapterError(
                str(exc), source=source, hint="pass a dict, a JSON/YAML file or an http(s) URL"
            ) from exc
    if not isinstance(spec, Mapping):
        raise AdapterError(
            "the OpenAPI document is not a JSON/YAML mapping",
            source=source,
            hint="pass the service's OpenAPI 3 document",
        )
    version = str(spec.get("openapi", ""))
    if not version.startswith("3."):
        found = f"Swagger {spec['swagger']}" if "swagger" in spec else "no `openapi: 3.x` field"
        raise AdapterError(
            f"not an OpenAPI 3 document ({found})",
            source=source,
            hint="convert it to OpenAPI 3 (e.g. with swagger2openapi)",
        )
    return dict(spec), source, url


def _fetch(
    url: str, *, headers: dict[str, str], timeout: float | None, client: httpx.Client | None
) -> Any:
    try:
        if client is not None:
            response = client.get(url, headers=headers)
        else:
            response = httpx.get(
                url, headers=headers, timeout=timeout, follow_redirects=True, verify=_tls()
            )
    except httpx.HTTPError as exc:
        raise AdapterError(
            f"cannot fetch the OpenAPI document: {_one_line(str(exc)) or type(exc).__name__}",
            source=url,
            hint="is the service up, and is this its document's URL (FastAPI: /openapi.json)?",
        ) from exc
    if response.is_error:
        raise AdapterError(
            f"fetching the OpenAPI document answered {response.status_code}",
            source=url,
            hint="is this the service's document URL (FastAPI: /openapi.json)?",
        )
    try:
        return yaml.safe_load(response.text)  # JSON or YAML alike
    except yaml.YAMLError as exc:
        raise AdapterError(
            "the OpenAPI document is not valid JSON/YAML",
            source=url,
            hint="is this the service's document URL (FastAPI: /openapi.json)?",
        ) from exc


def _base_url(
    spec: Mapping[str, Any], explicit: str | None, document_url: str | None, source: str
) -> str:
    if explicit is not None:
        url = explicit
    else:
        # OpenAPI: no `servers` means one server at "/", i.e. where the document is served.
        servers = spec.get("servers")
        first = servers[0] if isinstance(servers, list) and servers else None
        server = first if isinstance(first, Mapping) else {}
        url = str(server.get("url", "/"))
        for name, variable in (server.get("variables") or {}).items():
            url = url.replace(f"{{{name}}}", str(variable.get("default", "")))
        if document_url is not None:
            url = urljoin(document_url, url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AdapterError(
            f"cannot tell where the service is: {url!r} is not an absolute http(s) URL",
            source=source,
            hint="pass base_url='https://api.example.com'",
        )
    return url.rstrip("/")


def _operations(
    spec: Mapping[str, Any], source: str
) -> Iterator[tuple[str, str, Mapping[str, Any], list[Any]]]:
    """(path, method, operation, the path's own parameters) for each operation, in order."""
    paths = spec.get("paths") or {}
    if not isinstance(paths, Mapping):
        raise AdapterError("`paths` is not a mapping", source=source, hint="fix the document")
    for path, item in paths.items():
        if not isinstance(item, Mapping):
            continue
        shared = list(item.get("parameters") or [])
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, Mapping):
                yield str(path), method, operation, shared


class _Reader:
    """Follows a document's local `$ref`s, and copies its schemas with them inlined."""

    def __init__(self, spec: Mapping[str, Any], source: str) -> None:
        self.spec = spec
        self.source = source
        # The document as a whole is no JSON Schema: as an opaque resource, a `$ref` into it
        # is a JSON Pointer and nothing else. A registry without `retrieve` never fetches.
        resource = referencing.Resource.opaque(spec)
        self._resolver = referencing.Registry().with_resource("", resource).resolver()

    def fail(self, where: str, message: str, hint: str) -> AdapterError:
        return AdapterError(f"{where}: {message}", source=self.source, hint=hint)

    def resolve(self, ref: str, where: str) -> Any:
        try:
            return self._resolver.lookup(ref).contents
        except referencing.exceptions.PointerToNowhere:
            raise self.fail(where, f"$ref {ref!r} points to nothing", "fix the reference") from None
        except referencing.exceptions.Unresolvable:
            raise self.fail(
                where,
                f"cannot follow $ref {ref!r}",
                "only references within the document ('#/components/...') are supported",
            ) from None

    def follow(self, node: Any, where: str) -> Any:
        """A parameter or request body object, through any `$ref`s to it."""
        seen: set[str] = set()
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            if node["$ref"] in seen:
                raise self.fail(where, f"$ref {node['$ref']!r} refers to itself", "fix it")
            seen.add(node["$ref"])
            node = self.resolve(node["$ref"], where)
        return node

    def inline(self, node: Any, where: str, expanding: tuple[str, ...] = ()) -> Any:
        """A copy of a schema with `$ref`s replaced by what they point to: tool argument schemas
        must stand alone (plangate nests them in approval requests, where a `#/...` pointer
        would point elsewhere)."""
        if isinstance(node, list):
            return [self.inline(item, where, expanding) for item in node]
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in expanding:
                # A recursive schema (a tree) cannot be inlined: its inner levels accept
                # anything, and the service checks them.
                return {}
            target = self.inline(self.resolve(ref, where), where, (*expanding, ref))
            siblings = {k: self.inline(v, where, expanding) for k, v in node.items() if k != "$ref"}
            return {"allOf": [target], **siblings} if siblings else target
        out = {key: self.inline(value, where, expanding) for key, value in node.items()}
        if out.get("nullable") is True:
            # OpenAPI 3.0's `nullable` is no JSON Schema keyword: say it the JSON Schema way.
            del out["nullable"]
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        return out


def _is_json(media_type: str) -> bool:
    kind = media_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _text(value: Any) -> str:
    """A parameter value as it goes into a path, header or cookie."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Signature:
    """The arguments of one operation, worked out from its parameters and request body."""

    def __init__(self, reader: _Reader, where: str) -> None:
        self.reader = reader
        self.where = where
        self.properties: dict[str, Any] = {}
        self.required: list[str] = []
        self.parameters: dict[str, Location] = {}
        self.body: Literal["none", "fields", "whole"] = "none"
        # Unknown arguments are refused: a misspelt one would otherwise be ignored unseen.
        self.additional: Any = False

    def add_parameters(
        self, raw_parameters: list[Any], credentials: tuple[_Credential, ...] = ()
    ) -> None:
        """`credentials` fill some parameters (an `Authorization` header): those are no
        arguments, as the plan must not choose or see them."""
        filled = {
            (c.location, c.field_name.lower() if c.location == "header" else c.field_name)
            for c in credentials
        }
        declared: dict[tuple[str, Location], Mapping[str, Any]] = {}
        for raw in raw_parameters:
            parameter = self.reader.follow(raw, self.where)
            name, location = parameter.get("name"), parameter.get("in")
            if not isinstance(name, str) or location not in ("path", "query", "header", "cookie"):
                raise self.reader.fail(
                    self.where,
                    f"a parameter has no valid name and `in`: {_one_line(str(parameter))}",
                    "each parameter needs a `name` and `in: path|query|header|cookie`",
                )
            declared[(name, location)] = parameter  # a later one (the operation's) wins
        for (name, location), parameter in declared.items():
            if location == "header" and name.lower() == "idempotency-key":
                continue  # plangate fills it in: the plan does not choose it
            if (location, name.lower() if location == "header" else name) in filled:
                continue
            if name in self.parameters:
                raise self.reader.fail(
                    self.where,
                    f"two parameters are named {name!r} ({self.parameters[name]}, {location})",
                    "plangate cannot tell them apart as tool arguments; rename one",
                )
            schema = parameter.get("schema")
            content = parameter.get("content")
            if schema is None and isinstance(content, Mapping) and content:
                schema = (next(iter(content.values())) or {}).get("schema")
            prop = self.reader.inline(schema or {}, self.where)
            if parameter.get("description") and "description" not in prop:
                prop = {**prop, "description": parameter["description"]}
            self.properties[name] = prop
            self.parameters[name] = location
            if location == "path" or parameter.get("required") is True:
                self.required.append(name)

    def add_body(self, request_body: Any) -> None:
        if not isinstance(request_body, Mapping):
            return
        content = request_body.get("content") or {}
        media = next((m for m in content if _is_json(m)), None)
        if media is None:
            raise self.reader.fail(
                self.where,
                f"its request body is {', '.join(content) or 'of no media type'}, not JSON",
                "plangate's OpenAPI tools send JSON bodies; leave this operation out",
            )
        schema = self.reader.inline((content[media] or {}).get("schema") or {}, self.where)
        required = request_body.get("required") is True
        fields = schema.get("properties")
        if (
            isinstance(fields, Mapping)
            and schema.get("type", "object") == "object"
            and not {"allOf", "anyOf", "oneOf", "not"} & set(schema)
            and not set(fields) & set(self.properties)
        ):
            self.body = "fields"
            self.properties.update(fields)
            if required:
                self.required.extend(schema.get("required") or [])
            if schema.get("additionalProperties") not in (None, False):
                self.additional = schema["additionalProperties"]
        elif "body" in self.properties:
            raise self.reader.fail(
                self.where,
                "a parameter is named 'body', as is the argument for its request body",
                "rename the parameter",
            )
        else:
            self.body = "whole"
            self.properties["body"] = schema
            if required:
                self.required.append("body")

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": self.properties,
            "additionalProperties": self.additional,
        }
        if self.required:
            schema["required"] = list(dict.fromkeys(self.required))
        return schema


# --- naming and choosing operations -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
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


def _named(found: Iterator[tuple[str, str, Mapping[str, Any], list[Any]]]) -> list[_Entry]:
    """Every operation with its tool's name: `x-plangate-name`, else the function name of a
    FastAPI operationId, else the operationId; cut-back names that clash with another
    operation's name fall back to their operationIds."""
    entries: list[_Entry] = []
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
            _Entry(
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


def _patterns(option: str, patterns: Sequence[str] | None) -> tuple[str, ...] | None:
    if patterns is None:
        return None
    if isinstance(patterns, str) or not all(isinstance(p, str) and p for p in patterns):
        raise PlangateUsageError(
            f"{option} must be a list of non-empty patterns, not {_one_line(repr(patterns))}",
            hint=f"e.g. {option}=['get_*', 'tag:billing']",
        )
    return tuple(patterns)


def _matches(pattern: str, entry: _Entry) -> bool:
    if pattern.startswith(_TAG):
        return any(fnmatchcase(tag, pattern[len(_TAG) :]) for tag in entry.tags)
    return any(fnmatchcase(n, pattern) for n in (entry.operation_id, entry.name) if n)


def _choose(
    entries: list[_Entry],
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
    source: str,
) -> list[_Entry]:
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


# --- credentials ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scheme:
    """A security scheme of the document, as plangate sends it."""

    name: str
    kind: Literal["bearer", "basic", "apiKey"] | None
    """How plangate sends its credential; `None` when it cannot (`http` `digest`, mTLS)."""
    location: Literal["header", "query", "cookie"] | None
    field_name: str | None
    """The header, query or cookie field the credential goes in."""
    described: str
    """What it is, for errors: `http bearer`, `apiKey in header X-API-Key`."""

    @classmethod
    def read(cls, reader: _Reader, name: str, node: Any, where: str) -> _Scheme:
        node = reader.follow(node, where)
        node = node if isinstance(node, Mapping) else {}
        kind = node.get("type")
        scheme = str(node.get("scheme", "")).lower()
        described = f"http {scheme}" if kind == "http" else str(kind)
        if kind in ("oauth2", "openIdConnect") or (
            kind == "http" and scheme in ("bearer", "basic")
        ):
            # An OAuth 2 / OpenID Connect access token is a bearer token once obtained.
            return cls(
                name=name,
                kind="basic" if scheme == "basic" and kind == "http" else "bearer",
                location="header",
                field_name="Authorization",
                described=described,
            )
        if kind == "apiKey":
            location, key = node.get("in"), node.get("name")
            if location not in ("header", "query", "cookie") or not isinstance(key, str) or not key:
                raise reader.fail(
                    where,
                    f"security scheme {name!r} is an apiKey without a valid `name` and `in`",
                    "give it `name` and `in: header|query|cookie`",
                )
            return cls(
                name=name,
                kind="apiKey",
                location=location,
                field_name=key,
                described=f"apiKey in {location} {key}",
            )
        return cls(name=name, kind=None, location=None, field_name=None, described=described)

    def example(self, prefix: str | None) -> str:
        """An `auth` value for this scheme, for hints: `${BILLING_TOKEN}`."""
        stem = (prefix or "api").upper()
        if self.kind == "basic":
            return f"${{{stem}_USER}}:${{{stem}_PASSWORD}}"
        return f"${{{stem}_{'KEY' if self.kind == 'apiKey' else 'TOKEN'}}}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Credential:
    """What one scheme adds to each request. Its value is the secret: no repr shows it."""

    scheme: str
    location: Literal["header", "query", "cookie"]
    field_name: str
    value: str = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    """Every text of the credential an answer might quote: the value sent, the token in it."""

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *, source: str) -> tuple[_Credential, ...]:
        """The headers sent with every request, their `${VAR}`s read from the environment; what
        a variable gives is hidden as a credential's secret is."""
        found = []
        for name, template in headers.items():
            variables = _VARIABLE.findall(template)
            unset = [variable for variable in variables if variable not in os.environ]
            if unset:
                raise AdapterError(
                    f"header {name!r} reads ${{{unset[0]}}}, which is not set",
                    source=source,
                    hint=f"set {', '.join(unset)} in the environment",
                )
            value = _VARIABLE.sub(lambda match: os.environ[match[1]], template)
            quoted = {os.environ[variable] for variable in variables} - {""}
            found.append(
                cls(
                    scheme=f"header {name}",
                    location="header",
                    field_name=name,
                    value=value,
                    secrets=tuple(
                        sorted(quoted | ({value} if quoted else set()), key=len, reverse=True)
                    ),
                )
            )
        return tuple(found)

    @classmethod
    def read(
        cls, scheme: _Scheme, template: str, *, source: str, prefix: str | None
    ) -> _Credential:
        """The credential `auth` gives `scheme`, from the environment. No error quotes
        `template`: it may be the secret itself, written where a variable was meant."""
        fail = functools.partial(AdapterError, source=source)
        if scheme.kind is None or scheme.location is None or scheme.field_name is None:
            raise fail(
                f"auth names security scheme {scheme.name!r} ({scheme.described}), whose "
                "credentials plangate cannot send",
                hint="pass client= and async_client= with an httpx auth that sends them, and "
                f"leave {scheme.name!r} out of auth",
            )
        example = f"auth={{{scheme.name!r}: {scheme.example(prefix)!r}}}"
        variables = _VARIABLE.findall(template) if isinstance(template, str) else []
        if not variables:
            raise fail(
                f"auth gives security scheme {scheme.name!r} a value that names no "
                "environment variable",
                hint=f"write {example}: credentials are read from the environment, so that "
                "none is written in code",
            )
        unset = [name for name in variables if not os.environ.get(name)]
        if unset:
            raise fail(
                f"security scheme {scheme.name!r} reads its credential from ${{{unset[0]}}}, "
                "which is not set",
                hint=f"set {', '.join(unset)} in the environment",
            )
        secret = _VARIABLE.sub(lambda match: os.environ[match[1]], template)
        quoted = {os.environ[name] for name in variables}
        if scheme.kind == "basic":
            user, colon, password = secret.partition(":")
            if not colon:
                raise fail(
                    f"security scheme {scheme.name!r} is http basic: its credential is "
                    "user:password, and the one given has no ':'",
                    hint=f"write {example}",
                )
            encoded = base64.b64encode(secret.encode()).decode("ascii")
            value = f"Basic {encoded}"
            quoted = (quoted - {user}) | {password, encoded}  # a user name is no secret
        else:
            value = f"Bearer {secret}" if scheme.kind == "bearer" else secret
        return cls(
            scheme=scheme.name,
            location=scheme.location,
            field_name=scheme.field_name,
            value=value,
            # Longest first, so that `Bearer <token>` is hidden whole, not as `Bearer ***`.
            secrets=tuple(sorted({value, secret, *quoted} - {""}, key=len, reverse=True)),
        )


class _Security:
    """The document's security schemes, the credentials `auth` gives for them, and what the
    caller's own headers and clients carry."""

    def __init__(
        self,
        reader: _Reader,
        auth: Mapping[str, str],
        *,
        prefix: str | None,
        headers: Mapping[str, str],
        clients: tuple[httpx.Client | httpx.AsyncClient, ...],
    ) -> None:
        self.reader = reader
        components = reader.spec.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, Mapping) else None
        self.raw: Mapping[str, Any] = schemes if isinstance(schemes, Mapping) else {}
        self.prefix = prefix
        self.headers = {name.lower() for name in headers}
        self.clients = clients
        self.schemes: dict[str, _Scheme] = {}
        unknown = [name for name in auth if name not in self.raw]
        if unknown:
            raise AdapterError(
                f"auth names security scheme {unknown[0]!r}, which the document does not define",
                source=reader.source,
                hint=f"its schemes are {', '.join(map(repr, self.raw))}"
                if self.raw
                else "the document defines no components.securitySchemes",
            )
        self.given = {
            name: _Credential.read(
                self.scheme(name, "auth"), value, source=reader.source, prefix=prefix
            )
            for name, value in auth.items()
        }

    def scheme(self, name: str, where: str) -> _Scheme:
        """The scheme `name`, read when first asked for: one no operation kept uses may be
        one plangate cannot read."""
        if name not in self.schemes:
            if name not in self.raw:
                raise self.reader.fail(
                    where,
                    f"it requires security scheme {name!r}, which the document does not define",
                    "define it in components.securitySchemes",
                )
            self.schemes[name] = _Scheme.read(self.reader, name, self.raw[name], where)
        return self.schemes[name]

    def carried(self, scheme: _Scheme) -> bool:
        """Whether the caller's `headers` or clients already send this scheme's credential."""
        if scheme.location == "header" and (scheme.field_name or "").lower() in self.headers:
            return True
        for client in self.clients:
            if scheme.kind is None or (scheme.field_name == "Authorization" and client.auth):
                return True  # an httpx auth flow (or TLS) plangate cannot look into
            carried = {"header": client.headers, "query": client.params, "cookie": client.cookies}
            if scheme.location is not None and scheme.field_name in carried[scheme.location]:
                return True
        return False

    def credentials(
        self, operation: Mapping[str, Any], where: str, *, tool: str
    ) -> tuple[_Credential, ...]:
        """What to send for one of the operation's `security` alternatives (any one will do;
        each needs all of its schemes)."""
        requirements = operation.get("security", self.reader.spec.get("security"))
        if not requirements:
            return ()
        if not isinstance(requirements, list) or not all(
            isinstance(r, Mapping) for r in requirements
        ):
            raise self.reader.fail(
                where, "its `security` is not a list of mappings", "fix the document"
            )
        # Anonymous access (`{}`) last: a credential the caller gave is sent.
        for requirement in sorted(requirements, key=lambda r: not r):
            schemes = [self.scheme(str(name), where) for name in requirement]
            if all(s.name in self.given or self.carried(s) for s in schemes):
                return tuple(self.given[s.name] for s in schemes if s.name in self.given)
        # Every alternative lacks something: name what the first one lacks.
        missing = next(
            scheme
            for scheme in (self.scheme(str(name), where) for name in requirements[0])
            if scheme.name not in self.given and not self.carried(scheme)
        )
        if missing.kind is None:
            hint = (
                f"plangate cannot send {missing.described} credentials: pass client= and "
                "async_client= with an httpx auth that does"
            )
        else:
            hint = (
                f"pass auth={{{missing.name!r}: {missing.example(self.prefix)!r}}} and set "
                "that variable"
            )
        raise AdapterError(
            f"{where} requires security scheme {missing.name!r} ({missing.described}), and "
            "no credential is given for it",
            source=self.reader.source,
            tool=tool,
            hint=f"{hint}, or leave the operation out with exclude=",
        )


# --- one operation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Operation:
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
    credentials: tuple[_Credential, ...]
    """What its `security` asks for, from `auth`; added to every request."""

    @classmethod
    def build(
        cls,
        reader: _Reader,
        where: str,
        operation: Mapping[str, Any],
        shared: list[Any],
        *,
        tool: str,
        method: str,
        base_url: str,
        path: str,
        credentials: tuple[_Credential, ...],
    ) -> _Operation:
        """The operation `where` (`POST /refunds (create_refund)`); `shared` are its path's
        parameters."""
        signature = _Signature(reader, where)
        # Path-level parameters apply to each operation, which may override them.
        signature.add_parameters([*shared, *(operation.get("parameters") or [])], credentials)
        signature.add_body(reader.follow(operation.get("requestBody"), where))
        schema = signature.schema()
        # OpenAPI 3.0 schemas are JSON Schema draft 4 with extras; 3.1 ones are 2020-12.
        openapi = str(reader.spec.get("openapi"))
        checker = (
            jsonschema.Draft4Validator
            if openapi.startswith("3.0")
            else jsonschema.Draft202012Validator
        )
        try:
            checker.check_schema(schema)
        except jsonschema.SchemaError as exc:
            at = ".".join(str(part) for part in exc.absolute_path)
            raise reader.fail(
                where,
                f"its schema is invalid at {at or 'the top'}: {_one_line(exc.message)}",
                "fix the document's schema",
            ) from None
        action: Action = "read" if method in _READS else "execute"
        if _ACTION_EXTENSION in operation:
            declared = operation[_ACTION_EXTENSION]
            if declared not in ACTIONS:
                raise reader.fail(
                    where,
                    f"{_ACTION_EXTENSION} is {_one_line(repr(declared))}, "
                    f"not one of {', '.join(ACTIONS)}",
                    f"set {_ACTION_EXTENSION} to one of them, or leave it out to take the "
                    "action from the HTTP method",
                )
            action = declared
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
            validator=checker(schema),
            action=action,
            irreversible=method == "DELETE",
            credentials=credentials,
        )

    def hide(self, found: Any) -> Any:
        """`found` (text, or JSON from an answer) with each credential sent replaced by `***`:
        a service may quote the request it got, and what a tool returns or raises is traced."""
        secrets = [secret for credential in self.credentials for secret in credential.secrets]
        if not secrets:
            return found
        if isinstance(found, str):
            for secret in sorted(secrets, key=len, reverse=True):
                found = found.replace(secret, _HIDDEN)
            return found
        if isinstance(found, list):
            return [self.hide(item) for item in found]
        if isinstance(found, dict):
            return {self.hide(key): self.hide(value) for key, value in found.items()}
        return found

    def problem(self, arguments: Any) -> tuple[str, str] | None:
        """(dotted field, what is wrong with it) for arguments the schema refuses."""
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(arguments))
        if error is None:
            return None
        return ".".join(str(part) for part in error.absolute_path), _one_line(error.message)

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
            reason = _one_line(self.hide(str(exc))) or type(exc).__name__
            raise ToolConnectionError(
                f"{self.tool}: cannot reach {url}: {reason}", tool=self.tool, url=url
            ) from exc

    def output(self, response: httpx.Response) -> Any:
        if response.is_error:
            url = str(response.request.url.copy_with(query=None))
            text = self.hide(response.text)
            excerpt = _one_line(text)
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
                return self.hide(response.json())
            except json.JSONDecodeError:
                pass  # mislabelled: its text is still the answer
        return self.hide(response.text)


# --- the tool ---------------------------------------------------------------------------------


class _OpenAPITool(StructuredTool):
    """A StructuredTool whose arguments travel as one dict, with a real arguments model."""

    arguments_model: type[BaseModel]

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        # LangChain's own model for a JSON Schema `args_schema` accepts anything.
        return self.arguments_model

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        # A service's argument names may be anything, `config` and `run_manager` included,
        # which LangChain would mix up with the keyword arguments it passes itself.
        args, kwargs = super()._to_args_and_kwargs(tool_input, tool_call_id)
        return args, {"arguments": kwargs}


@functools.cache
def _tls() -> ssl.SSLContext:
    # Each new client would load the CA bundle again (some 40 ms); one context serves them all.
    return httpx.create_ssl_context()


def _tool(
    operation: _Operation,
    *,
    headers: Mapping[str, str],
    timeout: float | None,
    client: httpx.Client | None,
    aclient: httpx.AsyncClient | None,
) -> BaseTool:
    def prepare(arguments: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        operation.check(arguments)
        return operation.request(arguments, config, headers)

    def call(arguments: dict[str, Any], config: RunnableConfig) -> Any:
        request = prepare(arguments, config)
        with operation.reaching(request["url"]):
            if client is not None:
                response = client.request(**request)
            else:
                with httpx.Client(timeout=timeout, verify=_tls()) as own:
                    response = own.request(**request)
        return operation.output(response)

    async def acall(arguments: dict[str, Any], config: RunnableConfig) -> Any:
        request = prepare(arguments, config)
        with operation.reaching(request["url"]):
            if aclient is not None:
                response = await aclient.request(**request)
            else:
                # A client per call: an AsyncClient's connections belong to the event loop
                # that opened them, and each `asyncio.run` brings a new one.
                async with httpx.AsyncClient(timeout=timeout, verify=_tls()) as own:
                    response = await own.request(**request)
        return operation.output(response)

    arguments_model = type(
        f"{operation.tool}_arguments",
        (_Arguments,),
        {"operation": operation, "__module__": __name__},
    )
    return _OpenAPITool(
        name=operation.tool,
        description=operation.description,
        args_schema=operation.schema,
        func=call,
        coroutine=acall,
        arguments_model=arguments_model,
        metadata={
            METADATA_KEY: {
                "action": operation.action,
                "irreversible": operation.irreversible,
                "source": "openapi",
            }
        },
    )
