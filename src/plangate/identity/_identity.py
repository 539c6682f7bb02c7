"""Who a person is to plangate: an identity, and when two identities are one person."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypedDict, get_args

from plangate._names import same_person_key

__all__ = (
    "Identity",
    "VerifiedBy",
    "identity_from",
    "is_verified",
    "person_keys",
    "same_person",
    "shown_name",
    "unverified",
)

VerifiedBy = Literal["oidc", "token", "langgraph_auth", "unverified"]
"""How a door knew its person: signed in with OpenID Connect, a plangate token, LangGraph's
server auth, or not at all (a name as typed, or the operating-system user)."""

_VERIFIED_BY: tuple[str, ...] = get_args(VerifiedBy)


class Identity(TypedDict):
    """A person who starts or decides: what goes into approval records, trace events and the
    audit. `subject` is the identity provider's (or the token's) stable id, `None` when
    unverified; `name` and `email` are what a person reads; `groups` are the provider's (or the
    token's), empty when unverified."""

    subject: str | None
    name: str | None
    email: str | None
    groups: list[str]
    verified_by: VerifiedBy


def unverified(name: str | None) -> Identity:
    """A name nobody checked: the typed approver, the operating-system user."""
    return {
        "subject": None,
        "name": name,
        "email": None,
        "groups": [],
        "verified_by": "unverified",
    }


def is_verified(identity: Mapping[str, Any] | None) -> bool:
    return identity is not None and identity.get("verified_by", "unverified") != "unverified"


def identity_from(value: Any, *, where: str = "identity") -> Identity:
    """`value` (a mapping, from JSON or a checkpoint) as an `Identity`, its fields checked.

    Raises:
        ValueError: A field is missing or of the wrong type; the message names it.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    for field in ("subject", "name", "email"):
        if not isinstance(value.get(field), (str, type(None))):
            raise ValueError(f"{where}.{field}: expected text or null")
    groups = value.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
        raise ValueError(f"{where}.groups: expected a list of group names")
    verified_by = value.get("verified_by", "unverified")
    if verified_by not in _VERIFIED_BY:
        raise ValueError(f"{where}.verified_by: expected one of {', '.join(_VERIFIED_BY)}")
    return {
        "subject": value.get("subject"),
        "name": value.get("name"),
        "email": value.get("email"),
        "groups": sorted(set(groups)),
        "verified_by": verified_by,
    }


def shown_name(identity: Mapping[str, Any]) -> str | None:
    """The name a person reads for `identity`: its name, else its email, else its subject."""
    return identity.get("name") or identity.get("email") or identity.get("subject")


def person_keys(identity: Mapping[str, Any]) -> frozenset[str]:
    """Every key under which `identity` is a person (`same_person_key` of its subject, name and
    email): two identities sharing any key are one person. So the same person signed in with
    OpenID Connect (subject, email) and holding a token named by their email counts once, and a
    typed `Lee` is `lee` again."""
    keys = (same_person_key(identity.get(field)) for field in ("subject", "name", "email"))
    return frozenset(key for key in keys if key is not None)


def same_person(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    return bool(person_keys(first) & person_keys(second))


def matches_any(identity: Mapping[str, Any], entries: Iterable[str]) -> bool:
    """Whether a verified `identity` is one of `entries`: `group:NAME` (one of its groups) or a
    subject, name or email (compared as a person reads them). An unverified identity matches
    nothing: a typed name is no proof of being anyone."""
    if not is_verified(identity):
        return False
    groups = {same_person_key(group) for group in identity.get("groups") or ()}
    keys = person_keys(identity)
    for entry in entries:
        kind, _, rest = entry.partition(":")
        if kind == "group" and rest:
            if same_person_key(rest) in groups:
                return True
        elif same_person_key(entry.removeprefix("subject:")) in keys:
            return True
    return False
