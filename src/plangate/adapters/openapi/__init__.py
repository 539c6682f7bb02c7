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

The package: `_document` reads the document and its `$ref`s, `_naming` names and chooses
operations, `_security` reads credentials and hides them, `_arguments` makes an operation's
arguments, `_operation` checks them and makes the request and the answer, `_tool` is the
LangChain tool.

Needs the `http` extra (from a checkout: `pip install '.[http]'`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool

from plangate.errors import AdapterError, PlangateUsageError

# Checked before the modules that use them are imported, so that the error names the extra.
try:
    import httpx
    import jsonschema  # type: ignore[import-untyped]  # noqa: F401
    import referencing  # noqa: F401
except ImportError as exc:
    raise ImportError(
        "plangate's OpenAPI adapter needs httpx and jsonschema: install plangate's `http` "
        "extra (from a checkout: pip install '.[http]')"
    ) from exc

from plangate.adapters.openapi._document import Reader, load, operations, service_url
from plangate.adapters.openapi._errors import (
    InvalidToolArguments,
    OpenAPIToolError,
    ToolConnectionError,
    ToolHTTPError,
    ToolHTTPTimeout,
)
from plangate.adapters.openapi._naming import choose, named, pattern_list, tool_names
from plangate.adapters.openapi._operation import Operation
from plangate.adapters.openapi._security import Credential, Security
from plangate.adapters.openapi._tool import operation_tool

__all__ = (
    "InvalidToolArguments",
    "OpenAPIToolError",
    "ToolConnectionError",
    "ToolHTTPError",
    "ToolHTTPTimeout",
    "openapi_tools",
)


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

    Examples:
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
    wanted = pattern_list("include", include)
    unwanted = pattern_list("exclude", exclude)
    given = Credential.from_headers(headers or {}, source=str(document))
    extra = {credential.field_name: credential.value for credential in given}
    spec, source, document_url = load(document, headers=extra, timeout=timeout, client=client)
    root = service_url(spec, base_url, document_url, source)
    reader = Reader(spec, source)
    entries = named(operations(spec, source))
    chosen = choose(entries, wanted, unwanted, source)
    clients = tuple(c for c in (client, async_client) if c is not None)
    security = Security(reader, auth or {}, prefix=prefix, headers=extra, clients=clients)
    tools: list[BaseTool] = []
    for entry, name, where in tool_names(chosen, prefix, source):
        call = Operation.build(
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
            operation_tool(
                call, headers=extra, timeout=timeout, client=client, aclient=async_client
            )
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
