"""Where agents live: `mcp`, the project served to MCP clients (Claude Desktop, Cursor, VS Code,
any agent on the `mcp` SDK)."""

from __future__ import annotations

import os
import secrets
import sys
from typing import Annotated, Literal

import typer

from plangate.cli.commands import needs_extra
from plangate.cli.options import DbOption, ProjectOption
from plangate.cli.output import say
from plangate.cli.where import new_run_project
from plangate.runs.checkpoint import shown_url

__all__ = ("mcp",)


def mcp(
    *,
    project: ProjectOption = None,
    db: DbOption = None,
    profile: Annotated[
        str | None,
        typer.Option(
            help="The profile every run submitted here starts under: one of the project's by "
            "name (default: the project's). An agent cannot choose it."
        ),
    ] = None,
    transport: Annotated[
        Literal["stdio", "http"],
        typer.Option(help="stdio (the client starts this command) or streamable HTTP at /mcp."),
    ] = "stdio",
    host: Annotated[str, typer.Option(help="Interface to listen on (http).")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(help="Port to listen on (http; 0: one the system picks).", min=0, max=65535),
    ] = 8766,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token every HTTP request needs: run views carry run data "
            "(default: $PLANGATE_TOKEN, else a new one, printed)."
        ),
    ] = None,
) -> None:
    """Serve the project to MCP clients (plangate[mcp]): tools to list the project's tools,
    check a plan, submit it, and follow the run (status, trace).

    No tool decides an approval: a submitted plan waits for a person, in the inbox or with
    `plangate approve`. Over stdio, stdout carries the protocol alone.
    """
    try:
        from plangate.runs.service import RunService
        from plangate.server import listen, serve
        from plangate.server.mcp_face import LOOPBACK, create_server, http_app, serve_stdio
    except ImportError as exc:
        raise needs_extra("mcp", exc, extra="mcp", missing="the mcp package") from None
    where, db = new_run_project(project, db)
    service = RunService(db, project=where)
    try:
        server = create_server(service, profile=profile)
        if transport == "stdio":
            serve_stdio(server)
            return
        given = token or os.environ.get("PLANGATE_TOKEN")
        secret = given or secrets.token_urlsafe(24)
        loopback = host in LOOPBACK
        app = http_app(server, token=secret, loopback=loopback)
        sock = listen(host, port)  # bound before the URL is printed: it names the real port
        url = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}/mcp"
        say(f"plangate MCP server on {url} (project {where.name}, database {shown_url(db)})")
        say("Token: the one given (--token or PLANGATE_TOKEN)" if given else f"Token: {secret}")
        if not loopback:
            say(
                "Note: plain HTTP carries the token in clear; serve beyond loopback only behind "
                "a TLS proxy."
            )
        sys.stdout.flush()  # the URL must reach a pipe (a log, a test) before serving blocks
        serve(app, sock)
    finally:
        service.close()
