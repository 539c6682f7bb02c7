"""Opening the transport of one MCP session (part of the adapters: MCP servers).

langchain-mcp-adapters opens every transport, except that it always leaves a stdio server's
stderr on this process's stderr, where a server's own messages mix with a command's output; a
stdio server is started here instead when its stderr has a log file to go to.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from langchain_mcp_adapters.sessions import Connection, create_session
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

__all__ = ("SERVER_LOG_VARIABLE", "open_session")

SERVER_LOG_VARIABLE = "PLANGATE_MCP_LOG"
"""The environment variable naming the file stdio MCP servers write their stderr to (appended;
a relative path is taken from the server's working folder, in a project the project's folder).
Unset, they write to this process's stderr. The `plangate` command sets it to
`plangate-mcp.log` unless it is given `-v`, so that a server's own messages do not mix with
the command's output."""

_BRACED_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@contextlib.asynccontextmanager
async def open_session(connection: Connection) -> AsyncIterator[ClientSession]:
    """A session to the server of `connection`, a stdio server's stderr going to the server log
    when one is set (langchain-mcp-adapters always leaves it on this process's stderr)."""
    log = os.environ.get(SERVER_LOG_VARIABLE)
    if connection.get("transport") != "stdio" or not log:
        async with create_session(connection) as client:
            yield client
        return
    stdio = cast("dict[str, Any]", connection)
    env = stdio.get("env")
    params = StdioServerParameters(
        command=stdio["command"],
        args=stdio["args"],
        # As langchain-mcp-adapters does: `${VAR}` in a value is read from this environment,
        # an unset one left as written.
        env={k: _BRACED_VARIABLE.sub(_from_environment, v) for k, v in env.items()}
        if env is not None
        else None,
        cwd=stdio.get("cwd"),
        **{k: stdio[k] for k in ("encoding", "encoding_error_handler") if k in stdio},
    )
    path = Path(params.cwd or ".") / log
    with path.open("a", encoding="utf-8") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, **(stdio.get("session_kwargs") or {})) as client,
        ):
            yield client


def _from_environment(found: re.Match[str]) -> str:
    return os.environ.get(found.group(1), found.group(0))
