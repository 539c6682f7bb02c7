"""Who decides: `tokens create`, `tokens list` and `tokens revoke`, plangate's own tokens for
scripts and agents (`plangate.identity.tokens`), kept in the project's database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plangate._time import utc_now
from plangate.cli.options import DbOption, ProjectOption, duration
from plangate.cli.output import json_line, plural, print_rows, say, warn
from plangate.cli.where import find_project
from plangate.errors import PlangateUsageError
from plangate.identity.tokens import check_expires, check_groups, check_token_name, token_status
from plangate.runs.checkpoint import is_postgres_url, sqlite_path

if TYPE_CHECKING:
    from plangate.identity.tokens import TokenStore

__all__ = ("tokens",)

tokens = typer.Typer(
    help="Tokens for scripts and agents: whoever shows one is its name, in its groups "
    "(`Authorization: Bearer TOKEN` to the inbox, PLANGATE_TOKEN to `plangate approve "
    "--server`). Kept in the project's database, as a hash only. Commands: create NAME, list, "
    "revoke NAME_OR_ID.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _name(text: str) -> str:
    try:
        return check_token_name(text)
    except PlangateUsageError as exc:
        raise typer.BadParameter(str(exc)) from None


def _lifetime(text: str) -> timedelta:
    lifetime = duration(text)
    try:
        check_expires(lifetime)
    except PlangateUsageError as exc:
        raise typer.BadParameter(f"{text!r}: {exc}") from None
    return lifetime


def _open(db: str) -> TokenStore:
    from plangate.identity.tokens import TokenStore

    return TokenStore(db)


def _open_existing(db: str) -> TokenStore | None:
    """The store in `db`, or `None` for a SQLite file that is not there: listing or revoking
    must not leave an empty database behind a mistyped --db."""
    if not is_postgres_url(db):
        path = sqlite_path(db)
        if path != ":memory:" and not Path(path).exists():
            return None
    return _open(db)


@tokens.command()
def create(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            parser=_name,
            metavar="NAME",
            help="Who uses it: a person's email (so they are one person with their sign-in), "
            "or a script's or an agent's name.",
        ),
    ],
    *,
    groups: Annotated[
        str | None,
        typer.Option(
            "--groups",
            metavar="GROUP,...",
            help="The groups it is in, comma-separated (what `group:NAME` approvers match).",
        ),
    ] = None,
    expires: Annotated[
        timedelta | None,
        typer.Option(
            "--expires",
            metavar="AGE",
            parser=_lifetime,
            help="It ends AGE from now: 30d, 12h, 90m, 3600s (default: when revoked).",
        ),
    ] = None,
    db: DbOption = None,
    project: ProjectOption = None,
) -> None:
    """Make a token and print it on stdout, once: only its hash is kept, so it cannot be
    shown again. What it is (name, groups, expiry) goes to stderr."""
    try:
        group_names = check_groups(groups.split(",")) if groups is not None else []
    except PlangateUsageError as exc:
        raise typer.BadParameter(str(exc), ctx=ctx, param_hint="'--groups'") from None
    _, db = find_project(project, db)
    with _open(db) as store:
        token, info = store.create(name, groups=group_names, expires=expires)
    say(token)
    in_groups = f"in {', '.join(info['groups'])}" if info["groups"] else "in no group"
    ends = f"expires {info['expires_at']}" if info["expires_at"] else "never expires"
    warn(
        f"Token {info['id']} for {info['name']}, {in_groups}, {ends}: it is shown this once; "
        f"`plangate tokens revoke {info['id']}` ends it."
    )


@tokens.command("list")
def list_tokens(
    db: DbOption = None,
    project: ProjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the tokens, live or not, oldest first: id, name, groups, when made, when they
    expire, and whether each is live, revoked or expired. No secret is kept to show."""
    _, db = find_project(project, db)
    store = _open_existing(db)
    if store is None:
        found = []
    else:
        with store:
            found = store.list()
    now = utc_now()
    if as_json:
        for info in found:
            say(json_line({**info, "status": token_status(info, now)}))
        return
    if not found:
        say("No token.")
        return
    print_rows(
        [("id", "name", "groups", "created", "expires", "status")]
        + [
            (
                info["id"],
                info["name"],
                ",".join(info["groups"]) or "-",
                info["created_at"],
                info["expires_at"] or "never",
                token_status(info, now),
            )
            for info in found
        ]
    )


@tokens.command()
def revoke(
    name_or_id: Annotated[
        str,
        typer.Argument(
            metavar="NAME_OR_ID",
            help="A token's id, or a name: every live token of that name ends.",
        ),
    ],
    db: DbOption = None,
    project: ProjectOption = None,
) -> None:
    """End a token, or every live token of a name, at once: it signs nobody in from then on."""
    _, db = find_project(project, db)
    store = _open_existing(db)
    if store is None:
        raise PlangateUsageError(
            f"no token is named {name_or_id!r} or has that id: there is no database at "
            f"{sqlite_path(db)}",
            hint="pass the project's --db",
        )
    with store:
        ended = store.revoke(name_or_id)
    if ended:
        say(f"Revoked {plural(ended, 'token')}: {name_or_id}.")
    else:
        say(f"No live token for {name_or_id}: it was revoked or had expired already.")
