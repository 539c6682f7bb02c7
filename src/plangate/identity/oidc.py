"""Signing people in with OpenID Connect, and knowing them by an OIDC access token.

Part of `identity/` (who a person is). The inbox signs people in with the authorization code
flow and PKCE (`OidcSignIn.begin`, then `OidcSignIn.finish` at its callback); any door that is
handed an OIDC access token as `Authorization: Bearer` (the inbox's API, LangGraph's server auth)
asks `OidcSignIn.verify_access_token` who it belongs to. Both give an `Identity` with
`verified_by="oidc"`.

Nothing here checks a token by hand: Authlib makes the authorization request and exchanges the
code, and its claims classes (on joserfc, Authlib's JOSE) check the ID token's signature against
the provider's JWKS, its issuer, audience, nonce and expiry. The provider's discovery document
and keys are fetched when first needed and kept; keys again when a token names one not seen.
Needs `plangate[oidc]`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.claims import JWTClaims
from authlib.oidc.core import CodeIDToken
from joserfc.errors import JoseError
from joserfc.jws import extract_compact
from typing_extensions import TypedDict

from plangate.errors import PlangateError
from plangate.identity._identity import Identity
from plangate.identity._oidc_provider import OidcProvider, claim
from plangate.project._spec import OidcSettings

__all__ = ("OidcSignIn", "PendingSignIn", "SignInRefused")

# Clocks of the provider and of this host may differ a little.
_LEEWAY_SECONDS = 60
# Access tokens the provider vouched for (at its userinfo endpoint) are not asked about again
# for a minute: a page polls the API every few seconds.
_USERINFO_KEPT_SECONDS = 60.0
_USERINFO_KEPT_MAX = 1024
# Media types of a JWT access token (RFC 9068): an ID token, also a JWT from the same issuer,
# is not one, and is never taken as a bearer token.
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


class SignInRefused(PlangateError):
    """A sign-in could not be completed: the provider refused it, or its answer did not come
    from the sign-in this browser started, or its ID token did not check out. Nobody is signed
    in; the person may sign in again."""


class PendingSignIn(TypedDict):
    """What a sign-in started with `OidcSignIn.begin` must keep (in the browser's session)
    until its callback: all of it is checked there."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str


class OidcSignIn:
    """The OpenID Connect provider of `identity.oidc`: sign-in and access tokens.

    Args:
        settings: The project's `identity.oidc`.
        timeout: Seconds each request to the provider may take.

    Raises:
        PlangateUsageError: The issuer is not an `https://` URL (plain HTTP only on loopback).

    Examples:
        >>> from plangate.project._spec import OidcSettings
        >>> oidc = OidcSignIn(OidcSettings(issuer="https://id.example", client_id="plangate"))
        >>> # url, pending = oidc.begin("https://inbox.example/auth/callback")
        >>> # ... the browser goes to url, signs in, comes back with ?code=...&state=...
        >>> # identity = oidc.finish(pending, {"code": code, "state": state})
    """

    def __init__(self, settings: OidcSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.provider = OidcProvider(settings, timeout=timeout)
        self._lock = threading.Lock()
        self._vouched: dict[str, tuple[float, Identity]] = {}

    def __repr__(self) -> str:  # the client secret never shows in a log
        return f"OidcSignIn(issuer={self.settings.issuer!r}, client_id={self.settings.client_id!r})"

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (`{issuer}/.well-known/openid-configuration`),
        fetched once.

        Raises:
            PlangateError: The provider cannot be reached, or its document lacks an endpoint.
            PlangateUsageError: The document names another issuer than `identity.oidc.issuer`.
        """
        return self.provider.metadata()

    def _client(self, redirect_uri: str | None = None) -> OAuth2Client:
        secret = self.settings.client_secret
        return OAuth2Client(
            client_id=self.settings.client_id,
            client_secret=secret,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=" ".join(self.settings.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self.timeout,
        )

    # -- signing in ----------------------------------------------------------------------------

    def begin(self, redirect_uri: str) -> tuple[str, PendingSignIn]:
        """Start a sign-in: the provider's authorization URL to send the browser to (code flow,
        PKCE S256, a fresh state and nonce), and what to keep until `redirect_uri` is called.

        Raises:
            PlangateError: The provider cannot be reached.
        """
        endpoint = self.metadata()["authorization_endpoint"]
        verifier, nonce = generate_token(64), generate_token(32)
        with self._client(redirect_uri) as client:
            url, state = client.create_authorization_url(
                endpoint, code_verifier=verifier, nonce=nonce
            )
        pending: PendingSignIn = {
            "state": state,
            "nonce": nonce,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
        }
        return url, pending

    def finish(self, pending: Mapping[str, Any] | None, query: Mapping[str, str]) -> Identity:
        """End the sign-in `pending` with the query its callback was called with: check its
        state, exchange the code (with the PKCE verifier), check the ID token (signature,
        issuer, audience, nonce, expiry), and ask the provider's userinfo endpoint for what the
        ID token does not say (the groups, say).

        Raises:
            SignInRefused: The provider refused, or the callback does not answer `pending`, or
                the ID token does not check out.
            PlangateError: The provider cannot be reached.
        """
        if query.get("error"):
            why = query.get("error_description") or query["error"]
            raise SignInRefused(f"the OpenID provider refused the sign-in: {why}")
        state = query.get("state") or ""
        if not pending or not secrets.compare_digest(state, str(pending.get("state", ""))):
            raise SignInRefused(
                "this sign-in was not started in this browser, or was started again since",
                hint="sign in again",
            )
        metadata = self.metadata()
        if "iss" in query and query["iss"] != metadata["issuer"]:  # RFC 9207: a mix-up
            raise SignInRefused(f"the sign-in was answered by another issuer, {query['iss']!r}")
        if not query.get("code"):
            raise SignInRefused("the OpenID provider sent no code back")
        with self._client(pending["redirect_uri"]) as client:
            try:
                token = client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=query["code"],
                    code_verifier=pending["code_verifier"],
                )
            except AuthlibBaseError as exc:
                raise SignInRefused(
                    f"the OpenID provider refused the code: {exc.description or exc.error}",
                    hint="check identity.oidc.client_id and client_secret",
                ) from None
            except httpx.HTTPError as exc:
                raise PlangateError(
                    f"cannot reach the OpenID provider's token endpoint: {exc}"
                ) from None
        if not isinstance(token.get("id_token"), str):
            raise SignInRefused("the OpenID provider sent no ID token: is `openid` a scope?")
        claims = dict(self._id_token_claims(token["id_token"], pending["nonce"], token))
        access = token.get("access_token")
        if self._wants_userinfo(claims) and isinstance(access, str):
            found = self.provider.userinfo(access)
            if found is not None:
                if found.get("sub") != claims["sub"]:  # OIDC Core 5.3.2
                    raise SignInRefused("the provider's userinfo is about someone else")
                claims = {**found, **claims}
        return self.provider.identity(claims)

    def _id_token_claims(self, id_token: str, nonce: str, token: Mapping[str, Any]) -> CodeIDToken:
        metadata = self.metadata()
        try:
            decoded = self.provider.decode(id_token)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self.settings.client_id},
                    "exp": {"essential": True},
                    "nonce": {"essential": True, "value": nonce},
                },
                {
                    "nonce": nonce,
                    "client_id": self.settings.client_id,
                    "access_token": token.get("access_token"),
                },
            )
            claims.validate(leeway=_LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise SignInRefused(f"the ID token does not check out: {exc}") from None
        return claims

    def _wants_userinfo(self, claims: Mapping[str, Any]) -> bool:
        return "userinfo_endpoint" in self.metadata() and (
            claim(claims, self.settings.groups_claim) is None
            or not (claims.get("name") or claims.get("preferred_username"))
            or not claims.get("email")
        )

    # -- access tokens -------------------------------------------------------------------------

    def verify_access_token(self, token: str) -> Identity | None:
        """Who the OIDC access token `token` (from `Authorization: Bearer`) belongs to, or
        `None` if it is none of this provider's, has expired, or was refused.

        A JWT access token (RFC 9068, `typ: at+jwt`) is checked here: its signature against
        the provider's keys, its issuer and expiry, and that it is for plangate (its `aud` or
        `client_id` is `identity.oidc.client_id`). Any other token is shown to the provider's
        userinfo endpoint, which says whose it is or refuses it; its answer is kept a minute.

        Raises:
            PlangateError: The provider cannot be reached.
        """
        token = token.strip()
        if not token:
            return None
        if _is_jwt_access_token(token):
            return self._jwt_access_token(token)
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            kept = self._vouched.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        found = self.provider.userinfo(token)
        if found is None:
            return None
        identity = self.provider.identity(found)
        with self._lock:
            if len(self._vouched) >= _USERINFO_KEPT_MAX:
                self._vouched = {k: v for k, v in self._vouched.items() if v[0] > now}
                if len(self._vouched) >= _USERINFO_KEPT_MAX:
                    self._vouched.clear()
            self._vouched[key] = (now + _USERINFO_KEPT_SECONDS, identity)
        return identity

    async def averify_access_token(self, token: str) -> Identity | None:
        """`verify_access_token` in a worker thread, for async callers."""
        return await asyncio.to_thread(self.verify_access_token, token)

    def _jwt_access_token(self, token: str) -> Identity | None:
        """A JWT access token's identity; `None` if it does not check out."""
        client_id = self.settings.client_id
        try:
            decoded = self.provider.decode(token)
            claims = JWTClaims(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "value": self.metadata()["issuer"]},
                    "exp": {"essential": True},
                    "sub": {"essential": True},
                },
            )
            claims.validate(leeway=_LEEWAY_SECONDS)
        except (JoseError, ValueError):
            return None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if client_id not in audiences and claims.get("client_id") != client_id:
            return None  # a token the provider issued for another API
        return self.provider.identity(claims)


def _is_jwt_access_token(token: str) -> bool:
    """Whether `token` says it is a JWT access token (its header, unverified: only to tell
    which check it goes to). Any other token, an ID token included, goes to the provider."""
    if token.count(".") != 2:
        return False
    try:
        header = extract_compact(token.encode()).protected
    except (JoseError, ValueError):
        return False
    return str(header.get("typ", "")).lower() in _ACCESS_TOKEN_TYPES
