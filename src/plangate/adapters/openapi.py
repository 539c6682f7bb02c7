"""Tools generated from an OpenAPI 3 document: one per `operationId`, called over HTTP.

An operation's arguments are its path, query, header and cookie parameters and its JSON request
body: the body's properties sit beside the parameters when the body is an object whose property
names are free, else the whole body is one `body` argument. Arguments are checked against the
document's schemas (with `jsonschema`) before any request is sent. Every tool runs natively in
`invoke` (`httpx.Client`) and `ainvoke` (`httpx.AsyncClient`), and sends the call's plangate
idempotency key as an `Idempotency-Key` header, so that a service honouring it acts once however
often a step is resumed.

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

import functools
import json
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
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
from plangate.errors import AdapterError, PlangateError, PlangateUsageError
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY, InvalidArguments, ToolTimeout
from plangate.plan import Action

try:
    import httpx
    import jsonschema  # type: ignore[import-untyped]
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
        body: The response's text, whole.
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
    headers: Mapping[str, str] | None = None,
    timeout: float | None = 30.0,
    client: httpx.Client | None = None,
    async_client: httpx.AsyncClient | None = None,
) -> list[BaseTool]:
    """One tool per operation of an OpenAPI 3 document, named after its `operationId`.

    Args:
        document: The document: a dict, a JSON/YAML file, or its http(s) URL (a FastAPI
            service's `/openapi.json`).
        base_url: Where the service is; defaults to the document's first `servers` URL,
            resolved against the document's URL (FastAPI documents have none: the service
            is then where its document is).
        prefix: The domain the tools are registered under: `billing` names them
            `billing.<operationId>` (plans count budgets by the part before the first dot);
            without one, a tool is named by its operationId alone.
        headers: Sent with every request (and when fetching the document), e.g. credentials.
        timeout: Seconds each request may take, for the clients plangate makes.
        client: Used for `invoke` (and to fetch the document) instead of a client per call;
            pass one to reuse connections, or to set authentication, proxies or hooks.
        async_client: The same for `ainvoke`.

    Returns:
        The tools, in the document's order. Each takes the operation's arguments and returns
        the response's JSON body (or its text when it is not JSON; `None` when empty). Each
        declares its action in `metadata["plangate"]` (source `openapi`): `read` for `GET`,
        `HEAD`, `OPTIONS` and `TRACE`, `execute` for the other methods, and irreversible for
        `DELETE`; an operation's `x-plangate-action` (`read`, `propose` or `execute`) replaces
        the method's action, and a `DELETE` stays irreversible.

    Raises:
        PlangateUsageError: `prefix` is empty or has a dot.
        AdapterError: The document cannot be read or is no OpenAPI 3 document; an operation has
            no `operationId`, shares one, has an unusable schema, a non-JSON request body or an
            `x-plangate-action` other than `read`, `propose` and `execute`; or no base URL can
            be worked out.

    Example:
        >>> tools = openapi_tools("http://127.0.0.1:8000/openapi.json",  # doctest: +SKIP
        ...                       prefix="billing")
        >>> [tool.name for tool in tools]  # doctest: +SKIP
        ['billing.get_invoice', 'billing.create_refund']
    """
    if prefix is not None and (not prefix or "." in prefix):
        raise PlangateUsageError(
            f"invalid OpenAPI tool prefix {prefix!r}",
            hint="use one domain name without dots, such as 'billing'",
        )
    extra = dict(headers or {})
    spec, source, document_url = _load(document, headers=extra, timeout=timeout, client=client)
    root = _base_url(spec, base_url, document_url, source)
    reader = _Reader(spec, source)
    seen: dict[str, str] = {}
    tools: list[BaseTool] = []
    for path, method, operation, shared in _operations(spec, source):
        where = f"{method.upper()} {path}"
        operation_id = operation.get("operationId")
        if not isinstance(operation_id, str) or not operation_id:
            raise AdapterError(
                f"{where} has no operationId",
                source=source,
                hint="give every operation a unique operationId: plangate names tools after them",
            )
        name = f"{prefix}.{operation_id}" if prefix else operation_id
        if operation_id in seen:
            raise AdapterError(
                f"operationId {operation_id!r} is used by both {seen[operation_id]} and {where}",
                source=source,
                tool=name,
                hint="operationIds must be unique within a document",
            )
        seen[operation_id] = where
        call = _Operation.build(
            reader, where, operation, shared, tool=name, base_url=root, path=path
        )
        tools.append(
            _tool(call, headers=extra, timeout=timeout, client=client, aclient=async_client)
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

    def fail(self, where: str, message: str, hint: str) -> AdapterError:
        return AdapterError(f"{where}: {message}", source=self.source, hint=hint)

    def resolve(self, ref: str, where: str) -> Any:
        if not ref.startswith("#/"):
            raise self.fail(
                where,
                f"cannot follow $ref {ref!r}",
                "only references within the document ('#/components/...') are supported",
            )
        node: Any = self.spec
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.fail(where, f"$ref {ref!r} points to nothing", "fix the reference")
        return node

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

    def add_parameters(self, raw_parameters: list[Any]) -> None:
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

    @classmethod
    def build(
        cls,
        reader: _Reader,
        where: str,
        operation: Mapping[str, Any],
        shared: list[Any],
        *,
        tool: str,
        base_url: str,
        path: str,
    ) -> _Operation:
        """The operation `where` (`POST /refunds`); `shared` are its path's parameters."""
        method = where.split(" ", 1)[0]
        where = f"{where} ({operation['operationId']})"
        signature = _Signature(reader, where)
        # Path-level parameters apply to each operation, which may override them.
        signature.add_parameters([*shared, *(operation.get("parameters") or [])])
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
        )

    def problem(self, arguments: Any) -> tuple[str, str] | None:
        """(dotted field, what is wrong with it) for arguments the schema refuses."""
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(arguments))
        if error is None:
            return None
        return ".".join(str(part) for part in error.absolute_path), _one_line(error.message)

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
        sent = dict(headers)
        cookies: list[str] = []
        body: dict[str, Any] = {}
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
            reason = _one_line(str(exc)) or type(exc).__name__
            raise ToolConnectionError(
                f"{self.tool}: cannot reach {url}: {reason}", tool=self.tool, url=url
            ) from exc

    def output(self, response: httpx.Response) -> Any:
        if response.is_error:
            url = str(response.request.url.copy_with(query=None))
            excerpt = _one_line(response.text)
            raise ToolHTTPError(
                f"{self.tool}: {self.method} {response.request.url.path} answered "
                f"{response.status_code} {response.reason_phrase}"
                + (f": {excerpt}" if excerpt else ""),
                tool=self.tool,
                status_code=response.status_code,
                method=self.method,
                url=url,
                body=response.text,
            )
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            try:
                return response.json()
            except json.JSONDecodeError:
                pass  # mislabelled: its text is still the answer
        return response.text


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
