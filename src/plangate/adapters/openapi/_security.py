"""Credentials: the document's security schemes, what `auth` gives for them from the
environment, which of an operation's `security` alternatives to send, and hiding every
credential sent wherever an answer quotes it."""

from __future__ import annotations

import base64
import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from plangate.adapters.openapi._document import Reader
from plangate.errors import AdapterError

# `${NAME}` in an `auth` value: the environment variable NAME.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HIDDEN = "***"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Scheme:
    """A security scheme of the document, as plangate sends it."""

    name: str
    kind: Literal["bearer", "basic", "apiKey"] | None
    """How plangate sends its credential; `None` when it cannot (`http` `digest`, mTLS)."""
    location: Literal["header", "query", "cookie"] | None
    field_name: str | None
    """The header, query or cookie field the credential goes in."""
    described: str
    """What it is, for errors: `http bearer`, `apiKey in header X-API-Key`."""

    @classmethod
    def read(cls, reader: Reader, name: str, node: Any, where: str) -> _Scheme:
        node = reader.follow(node, where)
        node = node if isinstance(node, Mapping) else {}
        kind = node.get("type")
        scheme = str(node.get("scheme", "")).lower()
        described = f"http {scheme}" if kind == "http" else str(kind)
        if kind in ("oauth2", "openIdConnect") or (
            kind == "http" and scheme in ("bearer", "basic")
        ):
            # An OAuth 2 / OpenID Connect access token is a bearer token once obtained.
            return cls(
                name=name,
                kind="basic" if scheme == "basic" and kind == "http" else "bearer",
                location="header",
                field_name="Authorization",
                described=described,
            )
        if kind == "apiKey":
            location, key = node.get("in"), node.get("name")
            if location not in ("header", "query", "cookie") or not isinstance(key, str) or not key:
                raise reader.fail(
                    where,
                    f"security scheme {name!r} is an apiKey without a valid `name` and `in`",
                    "give it `name` and `in: header|query|cookie`",
                )
            return cls(
                name=name,
                kind="apiKey",
                location=location,
                field_name=key,
                described=f"apiKey in {location} {key}",
            )
        return cls(name=name, kind=None, location=None, field_name=None, described=described)

    def example(self, prefix: str | None) -> str:
        """An `auth` value for this scheme, for hints: `${BILLING_TOKEN}`."""
        stem = (prefix or "api").upper()
        if self.kind == "basic":
            return f"${{{stem}_USER}}:${{{stem}_PASSWORD}}"
        return f"${{{stem}_{'KEY' if self.kind == 'apiKey' else 'TOKEN'}}}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    """What one scheme adds to each request. Its value is the secret: no repr shows it."""

    scheme: str
    location: Literal["header", "query", "cookie"]
    field_name: str
    value: str = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    """Every text of the credential an answer might quote: the value sent, the token in it."""

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *, source: str) -> tuple[Credential, ...]:
        """The headers sent with every request, their `${VAR}`s read from the environment; what
        a variable gives is hidden as a credential's secret is."""
        found = []
        for name, template in headers.items():
            variables = _VARIABLE.findall(template)
            unset = [variable for variable in variables if variable not in os.environ]
            if unset:
                raise AdapterError(
                    f"header {name!r} reads ${{{unset[0]}}}, which is not set",
                    source=source,
                    hint=f"set {', '.join(unset)} in the environment",
                )
            value = _VARIABLE.sub(lambda match: os.environ[match[1]], template)
            quoted = {os.environ[variable] for variable in variables} - {""}
            found.append(
                cls(
                    scheme=f"header {name}",
                    location="header",
                    field_name=name,
                    value=value,
                    secrets=tuple(quoted | ({value} if quoted else set())),
                )
            )
        return tuple(found)

    @classmethod
    def read(cls, scheme: _Scheme, template: str, *, source: str, prefix: str | None) -> Credential:
        """The credential `auth` gives `scheme`, from the environment. No error quotes
        `template`: it may be the secret itself, written where a variable was meant."""
        fail = functools.partial(AdapterError, source=source)
        if scheme.kind is None or scheme.location is None or scheme.field_name is None:
            raise fail(
                f"auth names security scheme {scheme.name!r} ({scheme.described}), whose "
                "credentials plangate cannot send",
                hint="pass client= and async_client= with an httpx auth that sends them, and "
                f"leave {scheme.name!r} out of auth",
            )
        example = f"auth={{{scheme.name!r}: {scheme.example(prefix)!r}}}"
        variables = _VARIABLE.findall(template) if isinstance(template, str) else []
        if not variables:
            raise fail(
                f"auth gives security scheme {scheme.name!r} a value that names no "
                "environment variable",
                hint=f"write {example}: credentials are read from the environment, so that "
                "none is written in code",
            )
        unset = [name for name in variables if not os.environ.get(name)]
        if unset:
            raise fail(
                f"security scheme {scheme.name!r} reads its credential from ${{{unset[0]}}}, "
                "which is not set",
                hint=f"set {', '.join(unset)} in the environment",
            )
        secret = _VARIABLE.sub(lambda match: os.environ[match[1]], template)
        quoted = {os.environ[name] for name in variables}
        if scheme.kind == "basic":
            user, colon, password = secret.partition(":")
            if not colon:
                raise fail(
                    f"security scheme {scheme.name!r} is http basic: its credential is "
                    "user:password, and the one given has no ':'",
                    hint=f"write {example}",
                )
            encoded = base64.b64encode(secret.encode()).decode("ascii")
            value = f"Basic {encoded}"
            quoted = (quoted - {user}) | {password, encoded}  # a user name is no secret
        else:
            value = f"Bearer {secret}" if scheme.kind == "bearer" else secret
        return cls(
            scheme=scheme.name,
            location=scheme.location,
            field_name=scheme.field_name,
            value=value,
            secrets=tuple({value, secret, *quoted} - {""}),
        )


class Security:
    """The document's security schemes, the credentials `auth` gives for them, and what the
    caller's own headers and clients carry."""

    def __init__(
        self,
        reader: Reader,
        auth: Mapping[str, str],
        *,
        prefix: str | None,
        headers: Mapping[str, str],
        clients: tuple[httpx.Client | httpx.AsyncClient, ...],
    ) -> None:
        self.reader = reader
        components = reader.spec.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, Mapping) else None
        self.raw: Mapping[str, Any] = schemes if isinstance(schemes, Mapping) else {}
        self.prefix = prefix
        self.headers = {name.lower() for name in headers}
        self.clients = clients
        self.schemes: dict[str, _Scheme] = {}
        unknown = [name for name in auth if name not in self.raw]
        if unknown:
            raise AdapterError(
                f"auth names security scheme {unknown[0]!r}, which the document does not define",
                source=reader.source,
                hint=f"its schemes are {', '.join(map(repr, self.raw))}"
                if self.raw
                else "the document defines no components.securitySchemes",
            )
        self.given = {
            name: Credential.read(
                self.scheme(name, "auth"), value, source=reader.source, prefix=prefix
            )
            for name, value in auth.items()
        }

    def scheme(self, name: str, where: str) -> _Scheme:
        """The scheme `name`, read when first asked for: one no operation kept uses may be
        one plangate cannot read."""
        if name not in self.schemes:
            if name not in self.raw:
                raise self.reader.fail(
                    where,
                    f"it requires security scheme {name!r}, which the document does not define",
                    "define it in components.securitySchemes",
                )
            self.schemes[name] = _Scheme.read(self.reader, name, self.raw[name], where)
        return self.schemes[name]

    def carried(self, scheme: _Scheme) -> bool:
        """Whether the caller's `headers` or clients already send this scheme's credential."""
        if scheme.location == "header" and (scheme.field_name or "").lower() in self.headers:
            return True
        for client in self.clients:
            if scheme.kind is None or (scheme.field_name == "Authorization" and client.auth):
                return True  # an httpx auth flow (or TLS) plangate cannot look into
            carried = {"header": client.headers, "query": client.params, "cookie": client.cookies}
            if scheme.location is not None and scheme.field_name in carried[scheme.location]:
                return True
        return False

    def credentials(
        self, operation: Mapping[str, Any], where: str, *, tool: str
    ) -> tuple[Credential, ...]:
        """What to send for one of the operation's `security` alternatives (any one will do;
        each needs all of its schemes)."""
        requirements = operation.get("security", self.reader.spec.get("security"))
        if not requirements:
            return ()
        if not isinstance(requirements, list) or not all(
            isinstance(r, Mapping) for r in requirements
        ):
            raise self.reader.fail(
                where, "its `security` is not a list of mappings", "fix the document"
            )
        # Anonymous access (`{}`) last: a credential the caller gave is sent.
        for requirement in sorted(requirements, key=lambda r: not r):
            schemes = [self.scheme(str(name), where) for name in requirement]
            if all(s.name in self.given or self.carried(s) for s in schemes):
                return tuple(self.given[s.name] for s in schemes if s.name in self.given)
        # Every alternative lacks something: name what the first one lacks.
        missing = next(
            scheme
            for scheme in (self.scheme(str(name), where) for name in requirements[0])
            if scheme.name not in self.given and not self.carried(scheme)
        )
        if missing.kind is None:
            hint = (
                f"plangate cannot send {missing.described} credentials: pass client= and "
                "async_client= with an httpx auth that does"
            )
        else:
            hint = (
                f"pass auth={{{missing.name!r}: {missing.example(self.prefix)!r}}} and set "
                "that variable"
            )
        raise AdapterError(
            f"{where} requires security scheme {missing.name!r} ({missing.described}), and "
            "no credential is given for it",
            source=self.reader.source,
            tool=tool,
            hint=f"{hint}, or leave the operation out with exclude=",
        )


def hide(found: Any, credentials: Sequence[Credential]) -> Any:
    """`found` (text, or JSON from an answer) with each of `credentials` replaced by `***`: a
    service may quote the request it got, and what a tool returns or raises is traced."""
    # Longest first, so that `Bearer <token>` is hidden whole, not as `Bearer ***`.
    secrets = sorted((s for c in credentials for s in c.secrets), key=len, reverse=True)
    return _hidden(found, secrets) if secrets else found


def _hidden(found: Any, secrets: list[str]) -> Any:
    if isinstance(found, str):
        for secret in secrets:
            found = found.replace(secret, _HIDDEN)
        return found
    if isinstance(found, list):
        return [_hidden(item, secrets) for item in found]
    if isinstance(found, dict):
        return {_hidden(key, secrets): _hidden(value, secrets) for key, value in found.items()}
    return found
