"""Integrations: plangate's auth handler for LangGraph's own server (`langgraph dev`,
`langgraph.json`), so that who decides a served run is the person who signed the request, not a
name a client typed.

`langgraph.json` names it under `"auth"` (`plangate init --identity` writes it):

```json
"auth": {"path": "plangate.integrations.langgraph_auth:auth", "disable_studio_auth": true}
```

(A module path: langgraph-api imports it from the installed package, so no file of the
project's is needed beside `langgraph.json`.) Every request to the server then shows
`Authorization: Bearer TOKEN`, where TOKEN is one of plangate's tokens (`plangate tokens
create`, kept in the project's database), or else, when the project names an OpenID Connect
provider (`identity.oidc`), an access token of that provider's. Anything else (no header,
another scheme, an unknown, revoked or expired token) is answered 401, and nothing runs.
(`disable_studio_auth` keeps `langgraph dev` from letting LangGraph Studio's requests in without
a token; the log says so at startup when it is missing.)

The user the handler returns carries, under `plangate`, the identity it verified (its `verified_by`
is `langgraph_auth`) and an assertion of it made with the project's signing key
(`DecisionSigner.assert_identity`). The server puts that user in each run's
`config["configurable"]["langgraph_auth_user"]`, where no client can write; the graph checks the
assertion, and a decision made in that run is that person's, signed by the graph: an approver named
in the decision (for a LangChain HITL decision, in `configurable.approver` or `metadata.approver`)
must be them, and the profile's `identity_required`, `approvers` and `self_approval` judge them. The
run's starter is that person too.

The project is found as the served graph finds it (`PLANGATE_PROJECT`, else the `plangate.yaml`
of the server's folder or its parents), when the server loads this module. It must have
`identity:` (the signing key, usually `${PLANGATE_SIGNING_KEY}`): without it, or with the key's
variable unset, the server stops at startup with one line naming the file and the key. The
project's token store (and OpenID provider) are opened once per process: a token is checked on
every request, in a worker thread, so the server's event loop never waits on the database.

Only the server imports this module (it needs `langgraph_sdk`, from `plangate[langgraph-server]`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph_sdk import Auth

from plangate.identity import Identity, shown_name
from plangate.identity._gate import PLANGATE_USER_KEY
from plangate.identity._proof import DecisionSigner
from plangate.identity.tokens import TokenStore, bearer_identity
from plangate.integrations.langgraph_server import project_from_env
from plangate.project import PROJECT_FILE, Project, ProjectError

__all__ = ("ASSERTION_TTL", "LangGraphDoor", "auth", "studio_gets_in")

ASSERTION_TTL = 600.0
"""Seconds an assertion made for a request holds: the run that request starts or resumes may
wait in the server's queue behind another run of its thread, but not for ever."""

log = logging.getLogger("plangate.langgraph_auth")

Verifier = Callable[[str], Identity | None]


@dataclass(frozen=True, slots=True)
class LangGraphDoor:
    """Who shows a bearer token to LangGraph's server, as plangate knows people: a plangate
    token of the project's, else an access token of its OpenID provider.

    Attributes:
        signer: The project's signing key, which vouches for the identity found.
        tokens: The project's token store.
        oidc: Who an OpenID Connect access token belongs to (`None`: the project names no
            provider, or this plangate cannot ask one).
    """

    signer: DecisionSigner
    tokens: TokenStore
    oidc: Verifier | None = None

    @classmethod
    def of(cls, project: Project) -> LangGraphDoor:
        """The door of `project`.

        Raises:
            ProjectError: The project has no `identity:`, or its signing key cannot be read.
        """
        signer = project.signer
        if signer is None:
            raise ProjectError(
                project.file or project.root / PROJECT_FILE,
                "LangGraph's server auth (plangate.integrations.langgraph_auth) needs identity: "
                "in plangate.yaml, with the signing key that vouches for who decides",
                key="identity",
                hint="add identity: {signing_key: ${PLANGATE_SIGNING_KEY}} to plangate.yaml, or "
                "drop auth from langgraph.json",
            )
        return cls(signer, TokenStore(project.db), _oidc_verifier(project))

    def identity(self, token: str) -> Identity | None:
        """Who shows `token`, or `None`. Blocking: it reads the database, may ask the provider."""
        return bearer_identity(token, self.tokens, self.oidc)

    def user(self, identity: Identity) -> dict[str, Any]:
        """The server's user for `identity`: LangGraph's fields, and plangate's word for it."""
        vouched: Identity = {**identity, "verified_by": "langgraph_auth"}
        return {
            "identity": vouched["subject"],
            "display_name": shown_name(vouched),
            "is_authenticated": True,
            "permissions": [f"group:{group}" for group in vouched["groups"]],
            PLANGATE_USER_KEY: {
                "identity": dict(vouched),
                "assertion": self.signer.assert_identity(vouched, ttl=ASSERTION_TTL),
            },
        }

    async def authenticate(
        self, authorization: str | None, api_key: str | None = None
    ) -> dict[str, Any]:
        """The user of a request whose `Authorization` header is `authorization`, else whose
        `X-Api-Key` header is `api_key`: where LangGraph's SDKs (`api_key=`) and Agent Chat
        UI (its API key field) put a key, so a person pastes their plangate token there.

        Raises:
            Auth.exceptions.HTTPException: 401, one line saying why: no token, or one nobody
                knows (unknown, revoked, expired).
        """
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not token and not authorization:
            token = (api_key or "").strip()
        if not token:
            raise _unauthorized(
                "plangate: send Authorization: Bearer TOKEN, or X-Api-Key: TOKEN (a plangate "
                "token, or an access token of the project's OpenID provider)"
            )
        identity = await asyncio.to_thread(self.identity, token)
        if identity is None or identity["subject"] is None:
            raise _unauthorized(
                "plangate: this token is not a live plangate token (unknown, revoked or "
                "expired) nor an access token of the project's OpenID provider"
            )
        return self.user(identity)


def _unauthorized(detail: str) -> Auth.exceptions.HTTPException:
    # langgraph-api passes the status and the detail on, not headers.
    return Auth.exceptions.HTTPException(status_code=401, detail=detail)


def _oidc_verifier(project: Project) -> Verifier | None:
    """The project's OpenID provider's access-token check, or `None` without `identity.oidc`."""
    settings = project.identity.oidc if project.identity is not None else None
    if settings is None:
        return None
    try:  # Authlib and httpx: `plangate[oidc]`, which a project naming a provider needs
        from plangate.identity.oidc import OidcSignIn
    except ImportError as exc:
        raise ProjectError(
            project.file or project.root / PROJECT_FILE,
            f"checking OpenID Connect access tokens needs {exc.name}",
            key="identity.oidc",
            hint="install plangate's `oidc` extra (from a checkout: pip install '.[oidc]')",
        ) from None
    verify: Verifier = OidcSignIn(settings).verify_access_token
    return verify


def studio_gets_in(environ: Mapping[str, str]) -> bool:
    """Whether the server's auth config (`LANGGRAPH_AUTH`, which `langgraph dev` sets from
    `langgraph.json`) lets LangGraph Studio's requests past this handler: unless it says
    `"disable_studio_auth": true`, `langgraph dev` takes a request saying `x-auth-scheme:
    langsmith` as Studio's, with no token, and its decisions are nobody's (`unverified`)."""
    try:
        config = json.loads(environ.get("LANGGRAPH_AUTH") or "{}")
    except ValueError:
        return True
    return not (isinstance(config, dict) and config.get("disable_studio_auth") is True)


# Found once per process, when the server loads this module: a project without `identity:`
# stops the server there.
_door = LangGraphDoor.of(project_from_env())
if studio_gets_in(os.environ):
    log.warning(
        'plangate: langgraph.json\'s auth lacks "disable_studio_auth": true, so requests '
        "saying x-auth-scheme: langsmith get in without a token, as nobody plangate knows"
    )

auth = Auth()
"""plangate's auth handler for LangGraph's server (`langgraph.json`: `"auth": {"path":
"plangate.integrations.langgraph_auth:auth"}`)."""


@auth.authenticate
async def authenticate(authorization: str | None, headers: Mapping[bytes, bytes]) -> dict[str, Any]:
    """Who sent the request: see `LangGraphDoor.authenticate`."""
    api_key = headers.get(b"x-api-key")
    return await _door.authenticate(authorization, api_key.decode() if api_key else None)
