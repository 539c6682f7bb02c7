"""Reading an OpenAPI 3 document: from a dict, a file or a URL, with its base URL, its
operations in order, and its local `$ref`s followed (by `referencing`, the resolver
`jsonschema` uses) or inlined into standalone schemas."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import referencing
import referencing.exceptions
import yaml

from plangate._files import read_document
from plangate.errors import AdapterError

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_EXCERPT = 200


def one_line(text: str, limit: int = _EXCERPT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def load(
    document: Mapping[str, Any] | str | Path,
    *,
    headers: dict[str, str],
    timeout: float | None,
    client: httpx.Client | None,
) -> tuple[dict[str, Any], str, str | None]:
    """The parsed document, a name for it in errors, and the URL it came from (if any)."""
    url: str | None = None
    if isinstance(document, Mapping):
        title = (document.get("info") or {}).get("title")
        source = f"OpenAPI document {title!r}" if title else "OpenAPI document"
        spec: Any = dict(document)
    elif isinstance(document, str) and document.startswith(("http://", "https://")):
        source = url = document
        spec = _fetch(document, headers=headers, timeout=timeout, client=client)
    else:
        source = str(document)
        try:
            spec = read_document(document, what="OpenAPI document")
        except ValueError as exc:
            raise AdapterError(
                str(exc), source=source, hint="pass a dict, a JSON/YAML file or an http(s) URL"
            ) from exc
    if not isinstance(spec, Mapping):
        raise AdapterError(
            "the OpenAPI document is not a JSON/YAML mapping",
            source=source,
            hint="pass the service's OpenAPI 3 document",
        )
    version = str(spec.get("openapi", ""))
    if not version.startswith("3."):
        found = f"Swagger {spec['swagger']}" if "swagger" in spec else "no `openapi: 3.x` field"
        raise AdapterError(
            f"not an OpenAPI 3 document ({found})",
            source=source,
            hint="convert it to OpenAPI 3 (e.g. with swagger2openapi)",
        )
    return dict(spec), source, url


def _fetch(
    url: str, *, headers: dict[str, str], timeout: float | None, client: httpx.Client | None
) -> Any:
    try:
        if client is not None:
            response = client.get(url, headers=headers)
        else:
            response = httpx.get(
                url, headers=headers, timeout=timeout, follow_redirects=True, verify=tls()
            )
    except httpx.HTTPError as exc:
        raise AdapterError(
            f"cannot fetch the OpenAPI document: {one_line(str(exc)) or type(exc).__name__}",
            source=url,
            hint="is the service up, and is this its document's URL (FastAPI: /openapi.json)?",
        ) from exc
    if response.is_error:
        raise AdapterError(
            f"fetching the OpenAPI document answered {response.status_code}",
            source=url,
            hint="is this the service's document URL (FastAPI: /openapi.json)?",
        )
    try:
        return yaml.safe_load(response.text)  # JSON or YAML alike
    except yaml.YAMLError as exc:
        raise AdapterError(
            "the OpenAPI document is not valid JSON/YAML",
            source=url,
            hint="is this the service's document URL (FastAPI: /openapi.json)?",
        ) from exc


def service_url(
    spec: Mapping[str, Any], explicit: str | None, document_url: str | None, source: str
) -> str:
    """Where the service is, without a trailing `/`: `explicit`, else the document's first
    server."""
    if explicit is not None:
        url = explicit
    else:
        # OpenAPI: no `servers` means one server at "/", i.e. where the document is served.
        servers = spec.get("servers")
        first = servers[0] if isinstance(servers, list) and servers else None
        server = first if isinstance(first, Mapping) else {}
        url = str(server.get("url", "/"))
        for name, variable in (server.get("variables") or {}).items():
            url = url.replace(f"{{{name}}}", str(variable.get("default", "")))
        if document_url is not None:
            url = urljoin(document_url, url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AdapterError(
            f"cannot tell where the service is: {url!r} is not an absolute http(s) URL",
            source=source,
            hint="pass base_url='https://api.example.com'",
        )
    return url.rstrip("/")


def operations(
    spec: Mapping[str, Any], source: str
) -> Iterator[tuple[str, str, Mapping[str, Any], list[Any]]]:
    """(path, method, operation, the path's own parameters) for each operation, in order."""
    paths = spec.get("paths") or {}
    if not isinstance(paths, Mapping):
        raise AdapterError("`paths` is not a mapping", source=source, hint="fix the document")
    for path, item in paths.items():
        if not isinstance(item, Mapping):
            continue
        shared = list(item.get("parameters") or [])
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, Mapping):
                yield str(path), method, operation, shared


class Reader:
    """Follows a document's local `$ref`s, and copies its schemas with them inlined."""

    def __init__(self, spec: Mapping[str, Any], source: str) -> None:
        self.spec = spec
        self.source = source
        # The document as a whole is no JSON Schema: as an opaque resource, a `$ref` into it
        # is a JSON Pointer and nothing else. A registry without `retrieve` never fetches.
        resource = referencing.Resource.opaque(spec)
        self._resolver = referencing.Registry().with_resource("", resource).resolver()

    def fail(self, where: str, message: str, hint: str) -> AdapterError:
        return AdapterError(f"{where}: {message}", source=self.source, hint=hint)

    def resolve(self, ref: str, where: str) -> Any:
        try:
            return self._resolver.lookup(ref).contents
        except referencing.exceptions.PointerToNowhere:
            raise self.fail(where, f"$ref {ref!r} points to nothing", "fix the reference") from None
        except referencing.exceptions.Unresolvable:
            raise self.fail(
                where,
                f"cannot follow $ref {ref!r}",
                "only references within the document ('#/components/...') are supported",
            ) from None

    def follow(self, node: Any, where: str) -> Any:
        """A parameter or request body object, through any `$ref`s to it."""
        seen: set[str] = set()
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            if node["$ref"] in seen:
                raise self.fail(where, f"$ref {node['$ref']!r} refers to itself", "fix it")
            seen.add(node["$ref"])
            node = self.resolve(node["$ref"], where)
        return node

    def inline(self, node: Any, where: str, expanding: tuple[str, ...] = ()) -> Any:
        """A copy of a schema with `$ref`s replaced by what they point to: tool argument schemas
        must stand alone (plangate nests them in approval requests, where a `#/...` pointer
        would point elsewhere)."""
        if isinstance(node, list):
            return [self.inline(item, where, expanding) for item in node]
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in expanding:
                # A recursive schema (a tree) cannot be inlined: its inner levels accept
                # anything, and the service checks them.
                return {}
            target = self.inline(self.resolve(ref, where), where, (*expanding, ref))
            siblings = {k: self.inline(v, where, expanding) for k, v in node.items() if k != "$ref"}
            return {"allOf": [target], **siblings} if siblings else target
        out = {key: self.inline(value, where, expanding) for key, value in node.items()}
        if out.get("nullable") is True:
            # OpenAPI 3.0's `nullable` is no JSON Schema keyword: say it the JSON Schema way.
            del out["nullable"]
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        return out


@functools.cache
def tls() -> ssl.SSLContext:
    # Each new client would load the CA bundle again (some 40 ms); one context serves them all.
    return httpx.create_ssl_context()
