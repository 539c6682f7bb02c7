"""Tools served by an MCP server, for plans to call: `mcp_tools(connection, prefix="billing")`.

Needs the `mcp` extra (from a checkout: `pip install '.[mcp]'`). `connection` is a
langchain-mcp-adapters `Connection` dict, the same as one server's entry in a
`MultiServerMCPClient` config: stdio
(`{"transport": "stdio", "command": ..., "args": [...]}`), streamable HTTP
(`{"transport": "streamable_http", "url": ...}`), SSE or websocket.

Names:
    The server's tool `refund` loaded with `prefix="billing"` is registered as `billing.refund`,
    so plans call it by that name and budgets count it in domain `billing`.

Sessions:
    Each server has one session, opened when its tools are loaded and kept for every call after
    it, from sync and async runs alike: a stdio server is one process for the whole program,
    and keeps its state from one step to the next. An MCP session belongs to the event loop
    that opened it, so sessions live on a loop of the adapter's own, in a daemon thread started
    on first use; async callers await their calls there, sync callers (a tool's sync side,
    which sync runs use) wait for them. A call that finds its session gone (the server
    restarted, or its process died) opens a new one, once, and sends the call again there with
    the same idempotency key, when the failure shows the first request did not reach the
    server (the session's streams were closed already, the connection was refused, the server
    no longer knew the session); any other lost call fails with `MCPConnectionError`.

    Tools loaded without `sessions=` share the process's sessions (`MCPSessions.shared()`),
    closed when the process exits. Load them with `sessions=MCPSessions()` and close that, or
    use it as a context manager, to end the sessions, and stop stdio servers, sooner.

Cancellation:
    A call whose caller gives up is cancelled on the server too (`notifications/cancelled`), so
    that a step that timed out does not go on there, where a retry could then run a write
    twice. A run gives up on a call by cancelling it when plangate's per-call timeout passes,
    sync runs (`invoke`, `stream`) as well as async ones: under a timeout `tool_exec` runs the
    tool's coroutine, in sync runs too, so the call is cancelled on the server either way.

Actions:
    A tool's MCP annotations (`ToolAnnotations`) are put in its `metadata` as
    langchain-mcp-adapters puts them (`annotations.model_dump()`, and the tool's `_meta` under
    `_meta`), and plangate trusts them over a plan: `readOnlyHint: true` makes the tool a `read`;
    any other annotated tool is an `execute`, irreversible too when `destructiveHint: true`. A
    tool without annotations is an `execute`. A profile's `tool_actions` overrides both; a plan
    may raise a tool's action, never lower it (see `plangate.actions`).

Arguments:
    A tool's `get_input_schema()` is a pydantic model standing for its MCP `inputSchema`: its
    `model_json_schema()` is that schema, and `model_validate` checks arguments against it (a
    `ValidationError` located at the field at fault). Approval requests show it to the approver
    and an `edit` decision's args are checked with it; which keys are allowed is the schema's
    `additionalProperties` to say.

Idempotency:
    The idempotency key plangate passes each call (`config["metadata"]`, see
    `plangate.nodes.tool_exec.IDEMPOTENCY_KEY`) reaches the server in the request's `_meta`
    under `idempotency_key` on every transport, and as an `Idempotency-Key` HTTP header on the
    HTTP transports (streamable HTTP, SSE): the session's HTTP client copies each request's key
    from its `_meta` into the header of that request alone, so calls sharing a session each send
    their own. A step called again (a resume after a crash, a retry) sends the same key, so a
    server that remembers keys can do the work once.

Outputs:
    A step's output is the result's structured content when the server sends one (a JSON
    object; FastMCP wraps a tool's non-object return value as `{"result": value}`). Otherwise
    it is the content: a text block holding a JSON object or array is parsed, other text stays a
    string, any other block is its MCP JSON form; a single block is returned alone, several as a
    list, none as `None`.

Errors:
    A server that cannot be reached or listed at load time raises `AdapterError`. During a run:
    arguments that do not match the tool's input schema fail the step with `InvalidArguments`
    (`error_type: "invalid_arguments"`) before anything is sent; an error result from the
    server (`isError`) fails it with a `ToolException` carrying the server's message; a server
    that cannot be reached fails it with `MCPConnectionError`, a `ConnectionError`, so
    profiles retry it as transient.

Examples:
    >>> from plangate import build_graph, open_checkpointer
    >>> from plangate.adapters.mcp import mcp_tools
    >>> tools = mcp_tools({"transport": "streamable_http", "url": "http://127.0.0.1:8000/mcp"},
    ...                   prefix="billing")  # doctest: +SKIP
    >>> graph = build_graph(tools, profile="smb",
    ...                     checkpointer=open_checkpointer("runs.db"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata


def _why_not_importable() -> str:
    """Why the MCP client stack does not import: missing, or an `mcp` release that
    langchain-mcp-adapters cannot use (an MCP server installed into this environment may have
    brought one: `mcp-server-time` needs mcp>=2.3, the adapters mcp<2)."""
    try:
        installed = importlib.metadata.version("mcp")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    major = (installed or "").split(".", 1)[0]
    if major.isdigit() and int(major) >= 2:
        return (
            f"MCP tools need mcp<2 for langchain-mcp-adapters, but mcp {installed} is installed "
            "(an MCP server installed into this environment brings its own): run stdio servers "
            "from their own environment (uvx, npx, a separate venv), then reinstall plangate's "
            "`mcp` extra (from a checkout: pip install '.[mcp]')"
        )
    return (
        "MCP tools need langchain-mcp-adapters: install plangate's `mcp` extra "
        "(from a checkout: pip install '.[mcp]')"
    )


# One module per concern: `_tools` (loading tools, what a call raises), `_sessions` (one kept
# session per server, a new one when it went away), `_loop` (the thread they live on), `_calls`
# (requests, cancellation), `_connect` (transports, the server log), `_idempotency`,
# `_schemas` (input schemas, annotations), `_results` (outputs), `_errors`.
try:
    from plangate.adapters.mcp._connect import SERVER_LOG_VARIABLE
    from plangate.adapters.mcp._errors import MCPConnectionError
    from plangate.adapters.mcp._idempotency import IDEMPOTENCY_HEADER, IDEMPOTENCY_META_KEY
    from plangate.adapters.mcp._sessions import MCPSessions
    from plangate.adapters.mcp._tools import LOAD_TIMEOUT, amcp_tools, mcp_tools
except ImportError as exc:
    if (exc.name or "").startswith("plangate"):  # not the MCP client stack: a fault of ours
        raise
    raise ImportError(_why_not_importable()) from exc

__all__ = (
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_META_KEY",
    "LOAD_TIMEOUT",
    "SERVER_LOG_VARIABLE",
    "MCPConnectionError",
    "MCPSessions",
    "amcp_tools",
    "mcp_tools",
)
