"""The OpenID provider of `identity.oidc` as `plangate.identity.oidc` reads it: its discovery
document and signing keys (fetched when first needed, and kept), a token's signature checked
against them, its userinfo endpoint, and the claims it gives as an `Identity`. Needs
`plangate[oidc]`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from plangate.errors import PlangateError, PlangateUsageError
from plangate.identity._identity import Identity, identity_from
from plangate.project._spec import OidcSettings

__all__ = ("OidcProvider", "claim")

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class OidcProvider:
    """The provider of `settings`, reached with `timeout` seconds a request.

    Raises:
        PlangateUsageError: The issuer is not an `https://` URL (plain HTTP only on loopback).
    """

    def __init__(self, settings: OidcSettings, *, timeout: float) -> None:
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

    def key_set(self, *, again: bool = False) -> KeySet:
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

    def decode(self, token: str) -> jwt.Token:
        """`token`'s signature checked against the provider's keys (fetched again once when it
        names a key not seen: the provider has rotated them)."""
        algorithms = self.metadata().get("id_token_signing_alg_values_supported")
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            return jwt.decode(token, self.key_set(), registry=registry)
        except InvalidKeyIdError:
            return jwt.decode(token, self.key_set(again=True), registry=registry)

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
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

    def identity(self, claims: Mapping[str, Any]) -> Identity:
        """The person `claims` (an ID token's, userinfo's, an access token's) name, with the
        groups of `groups_claim` (dotted for a nested claim), verified by OIDC."""
        groups = claim(claims, self.settings.groups_claim)
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


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at `path`, dotted for a nested one (`realm_access.roles`); `None` if absent."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
