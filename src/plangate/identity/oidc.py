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
from urllib.parse import urlsplit

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.claims import JWTClaims
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry, extract_compact
from typing_extensions import TypedDict

from plangate.errors import PlangateError, PlangateUsageError
from plangate.identity._identity import Identity, identity_from
from plangate.project._spec import OidcSettings

__all__ = ("OidcSignIn", "PendingSignIn", "SignInRefused")

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
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
        >>> # identity = oidc.finish(pending, code=code, state=state)
    """

    def __init__(self, settings: OidcSettings, *, timeout: float = 10.0) -> None:
        parts = urlsplit(settings.issuer)
        if not (
            parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
        ):
            raise PlangateUsageError(
                f"identity.oidc.issuer: {settings.issuer!r} is not an https:// URL",
                hint="give the provider's issuer as its discovery document says it (plain "
                "http only on loopback, for tests)",
            )
        self.settings = settings
        self.timeout = timeout
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._vouched: dict[str, tuple[float, Identity]] = {}

    def __repr__(self) -> str:  # the client secret never shows in a log
        return f"OidcSignIn(issuer={self.settings.issuer!r}, client_id={self.settings.client_id!r})"

    # -- the provider --------------------------------------------------------------------------

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=self.timeout, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise PlangateError(
                f"cannot reach the OpenID provider for its {what} at {url}: {exc}",
                hint="check identity.oidc.issuer, and that the provider is up",
            ) from None
        if response.status_code != 200:
            raise PlangateError(
                f"the OpenID provider answered {response.status_code} for its {what} at {url}",
                hint="check identity.oidc.issuer",
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PlangateError(f"the OpenID provider's {what} at {url} is not a JSON object")
        return data

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (`{issuer}/.well-known/openid-configuration`),
        fetched once.

        Raises:
            PlangateError: The provider cannot be reached, or its document lacks an endpoint.
            PlangateUsageError: The document names another issuer than `identity.oidc.issuer`.
        """
        with self._lock:
            if self._metadata is None:
                issuer = self.settings.issuer.rstrip("/")
                url = f"{issuer}/.well-known/openid-configuration"
                metadata = self._get_json(url, "discovery document")
                if str(metadata.get("issuer", "")).rstrip("/") != issuer:
                    raise PlangateUsageError(
                        f"identity.oidc.issuer: the provider at {url} says its issuer is "
                        f"{metadata.get('issuer')!r}, not {self.settings.issuer!r}",
                        hint="write the issuer exactly as the provider's discovery document does",
                    )
                for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(metadata.get(endpoint), str):
                        raise PlangateError(f"the OpenID provider's {url} names no {endpoint}")
                self._metadata = metadata
            return self._metadata

    def _key_set(self, *, again: bool = False) -> KeySet:
        metadata = self.metadata()
        with self._lock:
            if self._keys is None or again:
                keys = self._get_json(metadata["jwks_uri"], "signing keys")
                try:
                    self._keys = KeySet.import_key_set(keys)  # type: ignore[arg-type]
                except (JoseError, ValueError, KeyError, TypeError) as exc:
                    raise PlangateError(
                        f"the OpenID provider's signing keys at {metadata['jwks_uri']} do not "
                        f"read as a JWKS: {exc}"
                    ) from None
            return self._keys

    def _decode(self, token: str) -> jwt.Token:
        """`token`'s signature checked against the provider's keys (fetched again once when it
        names a key not seen: the provider has rotated them)."""
        algorithms = self.metadata().get("id_token_signing_alg_values_supported")
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            return jwt.decode(token, self._key_set(), registry=registry)
        except InvalidKeyIdError:
            return jwt.decode(token, self._key_set(again=True), registry=registry)

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
            found = self._userinfo(access)
            if found is not None:
                if found.get("sub") != claims["sub"]:  # OIDC Core 5.3.2
                    raise SignInRefused("the provider's userinfo is about someone else")
                claims = {**found, **claims}
        return self._identity(claims)

    def _id_token_claims(self, id_token: str, nonce: str, token: Mapping[str, Any]) -> CodeIDToken:
        metadata = self.metadata()
        try:
            decoded = self._decode(id_token)
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
            _claim(claims, self.settings.groups_claim) is None
            or not (claims.get("name") or claims.get("preferred_username"))
            or not claims.get("email")
        )

    def _userinfo(self, access_token: str) -> dict[str, Any] | None:
        """The provider's userinfo for `access_token`, `None` if it refuses the token."""
        endpoint = self.metadata().get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return None
        try:
            response = httpx.get(
                endpoint,
                headers={"authorization": f"Bearer {access_token}", "accept": "application/json"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise PlangateError(f"cannot reach the OpenID provider's userinfo: {exc}") from None
        if response.status_code in (400, 401, 403):
            return None
        if response.status_code != 200:
            raise PlangateError(f"the OpenID provider's userinfo answered {response.status_code}")
        try:
            found = response.json()
        except ValueError:  # a signed userinfo (application/jwt) is not asked for
            return None
        return found if isinstance(found, dict) and isinstance(found.get("sub"), str) else None

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        groups = _claim(claims, self.settings.groups_claim)
        if isinstance(groups, str):
            groups = [groups]
        name = claims.get("name") or claims.get("preferred_username")
        email = claims.get("email")
        return identity_from(
            {
                "subject": str(claims["sub"]),
                "name": name if isinstance(name, str) else None,
                "email": email if isinstance(email, str) else None,
                "groups": [g for g in groups if isinstance(g, str)]
                if isinstance(groups, list)
                else [],
                "verified_by": "oidc",
            },
            where="the OpenID provider's claims",
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
        found = self._userinfo(token)
        if found is None:
            return None
        identity = self._identity(found)
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
            decoded = self._decode(token)
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
        return self._identity(claims)


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


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at `path`, dotted for a nested one (`realm_access.roles`); `None` if absent."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
