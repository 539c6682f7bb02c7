"""The project: `init` one, list its `tools`, `check` a plan against them, `serve` its inbox."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from plangate._files import read_document
from plangate.cli.commands import needs_extra
from plangate.cli.describe import print_report, undone
from plangate.cli.options import (
    DEFAULT_SWEEP_EVERY,
    DbOption,
    FixturesOption,
    ProfileOption,
    ProjectOption,
    duration_option,
    shown_duration,
)
from plangate.cli.output import ExitCode, json_line, plural, print_rows, say
from plangate.cli.where import new_run_project
from plangate.errors import PlangateUsageError
from plangate.project import write_template
from plangate.runs.checkpoint import shown_url

__all__ = ("check", "init", "serve", "tools")


def init(
    folder: Annotated[
        Path, typer.Argument(help="Where to write the project (default: this folder).")
    ] = Path("."),
    demo: Annotated[
        bool, typer.Option("--demo", help="Write the demo project (a sales workflow) instead.")
    ] = False,
    identity: Annotated[
        bool,
        typer.Option(
            "--identity",
            help="Know who decides: add identity: (its signing key from $PLANGATE_SIGNING_KEY) "
            "to plangate.yaml, and plangate's auth handler to langgraph.json.",
        ),
    ] = False,
) -> None:
    """Write a starter project: plangate.yaml, a toolkit of your own (tools.py), a plan, and
    the langgraph.json that serves it with `langgraph dev`.

    With --identity, the project knows who decides: plangate.yaml gets `identity:` (its
    signing key read from $PLANGATE_SIGNING_KEY), and langgraph.json gets `auth`, plangate's
    handler for LangGraph's server (`plangate.integrations.langgraph_auth:auth`), so that a
    request to the server shows a plangate token or an OpenID Connect access token, and a
    decision there is that person's. Without --identity, langgraph.json has no `auth`: the
    handler refuses to start in a project without `identity:`.

    Refuses to overwrite a file that is there.
    """
    written = write_template("demo" if demo else "starter", folder)
    if identity:
        _know_who_decides(folder)
    say(*(f"wrote {path}" for path in written))
    if identity:
        say(
            'identity: set PLANGATE_SIGNING_KEY to 32 random bytes (python -c "import secrets; '
            'print(secrets.token_urlsafe(32))"), then make tokens: plangate tokens create NAME'
        )
    plan = next(
        path.name for path in written if path.suffix == ".yaml" and path.name != "plangate.yaml"
    )
    where = "" if folder.resolve() == Path.cwd() else f"cd {folder} && "
    say(f"Next: {where}plangate tools && plangate check {plan} && plangate run {plan}")


# What `plangate init --identity` adds to the template's files.
_IDENTITY_YAML = """
# Who decides is known: plangate's tokens (plangate tokens create), and OpenID Connect sign-in.
identity:
  signing_key: ${PLANGATE_SIGNING_KEY}   # signs decisions; keep it out of the database
  # oidc: {issuer: https://id.example.com, client_id: plangate, client_secret: ${OIDC_SECRET}}
"""
# `disable_studio_auth`: `langgraph dev` would otherwise let LangGraph Studio's requests in
# without a token.
_LANGGRAPH_AUTH = {
    "path": "plangate.integrations.langgraph_auth:auth",
    "disable_studio_auth": True,
}


def _know_who_decides(folder: Path) -> None:
    """Give the project `init` just wrote `identity:`, and its langgraph.json the auth handler."""
    project_file = folder / "plangate.yaml"
    project_file.write_text(
        project_file.read_text(encoding="utf-8") + _IDENTITY_YAML, encoding="utf-8"
    )
    langgraph = folder / "langgraph.json"
    config = json.loads(langgraph.read_text(encoding="utf-8"))
    config["auth"] = _LANGGRAPH_AUTH
    langgraph.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def check(
    plan: Annotated[Path, typer.Argument(help="Plan file (YAML or JSON).")],
    *,
    profile: ProfileOption = None,
    project: ProjectOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check against the mocks, as --offline runs.")
    ] = False,
    fixtures: FixturesOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (PreflightReport).")
    ] = False,
) -> None:
    """Check a plan against the project's tools and a profile before anything runs: unknown or
    blocked tools, args against each tool's schema, each step's effective action, risk and
    whether it will ask, and the budget tier it would run out of. Exits 1 on a problem."""
    from plangate.preflight import preflight

    try:
        document = read_document(plan, what="plan")
    except ValueError as exc:
        raise PlangateUsageError(str(exc)) from None
    where, _ = new_run_project(project, None)
    graph = where.graph(
        profile=profile, offline=offline, fixtures=[str(path) for path in fixtures or ()]
    )
    report = preflight(graph, document)
    if as_json:
        say(json_line(report.model_dump(mode="json")))
    else:
        print_report(report)
    raise typer.Exit(ExitCode.SUCCESS if report.ok else ExitCode.USER_ERROR)


def tools(
    profile: ProfileOption = None,
    project: ProjectOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Also list the tools only a mock stands for.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the project's tools: source, domain, effective action and where it comes from,
    risk, and whether the profile lets it run and makes it ask.

    Reaches every MCP server and OpenAPI document of the project.
    """
    from plangate.preflight import tool_rows

    where, _ = new_run_project(project, None)
    graph = where.graph(profile=profile, offline=offline)
    rows = tool_rows(graph, source_of=where.tools.source_of, offline=offline)
    if as_json:
        for row in rows:
            say(json_line(row))
        return
    say(
        f"{plural(len(rows), 'tool')} of project {where.name}, "
        f"profile {graph.governance.profile.name}:"
    )
    print_rows(
        [("tool", "source", "domain", "action", "risk", "runs")]
        + [
            (
                str(row["tool"]),
                str(row["source"]),
                str(row["domain"]),
                f"{row['action']} ({row['action_source']}){undone(row)}",
                str(row["risk"]),
                ("asks" if row["asks"] else "yes") if row["allowed"] else "blocked",
            )
            for row in rows
        ]
    )


def serve(
    *,
    db: DbOption = None,
    project: ProjectOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: one the system picks).", min=0, max=65535)
    ] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token every API request needs, reads included: approval requests "
            "carry real args (default: $PLANGATE_TOKEN, else a new one, printed). Not where "
            "the project has identity: (people sign in or send their own token)."
        ),
    ] = None,
    expire: Annotated[
        bool,
        typer.Option(
            "--expire/--no-expire",
            help="Close approvals that expire unanswered as they expire, as plangate expire "
            "--watch does, while it serves.",
        ),
    ] = True,
    expire_every: Annotated[
        float | None,
        duration_option(
            "--expire-every",
            help="The longest wait between two looks at the database for requests made "
            "elsewhere (30s, 5m, 1h; default 30s).",
        ),
    ] = None,
) -> None:
    """Serve the approvals inbox: a page and a JSON API over the database (plangate[server]).

    While it serves, it closes each approval that expires unanswered a moment after it expires
    (--no-expire leaves them to `plangate expire`). With `workers:` in the project file, it
    runs no run itself: it checks, then queues for `plangate worker`, whose sweep closes
    expired approvals.
    """
    try:
        import uvicorn  # noqa: F401  (missing, it is the one-line "needs the server extra")

        from plangate.server import create_app, listen
        from plangate.server import serve as serve_inbox
    except ImportError as exc:
        raise needs_extra("serve", exc, extra="server", missing="fastapi and uvicorn") from None
    where, db = new_run_project(project, db)
    knows_people = where.spec.identity is not None
    if knows_people and token:
        raise PlangateUsageError(
            "the project knows people (identity: in its file): a shared --token is no way "
            "into its inbox",
            hint="drop --token; people sign in, programs send their own token",
        )
    given = None if knows_people else token or os.environ.get("PLANGATE_TOKEN")
    secret = None if knows_people else given or secrets.token_urlsafe(24)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    # On loopback, only requests addressed to loopback names: a second wall behind the token,
    # against a web page reaching the inbox through a DNS-rebound host name.
    hosts = ["127.0.0.1", "localhost", "[::1]"] if loopback else None
    if expire_every is not None and not expire:
        raise PlangateUsageError(
            "--expire-every and --no-expire exclude each other", hint="give one of them"
        )
    sweep = (expire_every or DEFAULT_SWEEP_EVERY) if expire else None
    inbox = create_app(db, token=secret, allowed_hosts=hosts, project=where, expire_every=sweep)
    sock = listen(host, port)  # bound before the URL is printed, so that it names the real port
    port = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    say(f"plangate inbox on {url} (project {where.name}, database {shown_url(db)})")
    if knows_people:
        oidc = where.identity.oidc if where.identity else None
        say(
            f"People sign in with {oidc.issuer}; open {url}"
            if oidc
            else f"People send their own token (plangate token); open {url}"
        )
        if os.environ.get("PLANGATE_TOKEN"):
            say(
                "Note: PLANGATE_TOKEN is ignored: a shared token is no way in where people sign in."
            )
    elif given:
        say(f"Token: the one given (--token or PLANGATE_TOKEN); open {url}#token=...")
    else:
        # A fragment never reaches a server or a proxy's log.
        say(f"Token: {secret}", f"Open: {url}#token={secret}")
    if not loopback:
        say(
            "Note: plain HTTP carries sign-ins and tokens in clear; serve beyond loopback only "
            "behind a TLS proxy (the session cookie is sent over HTTPS only)."
        )
    if inbox.state.service.queues:  # `workers:` on: the inbox runs nothing, sweeps nothing
        say(
            "Workers on: starts, decisions and resumes are queued for `plangate worker`; "
            "it closes expired approvals at their deadline, not this inbox."
        )
    elif sweep is not None:
        say(
            "Approvals that expire unanswered are closed as they expire (the database looked "
            f"at every {shown_duration(sweep)} at least; --no-expire leaves them waiting)."
        )
    sys.stdout.flush()  # the token must reach a pipe (a log, a test) before serving blocks
    serve_inbox(inbox, sock)
