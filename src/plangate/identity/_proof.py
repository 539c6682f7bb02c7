"""Decision proofs: what a door that authenticated its person gives the decision, and what the
graph and `plangate verify` check.

A proof is an HMAC-SHA256, under the project's signing key (`identity.signing_key`), over the
canonical JSON of the request answered (its id and digest), the decision (kind, args, message,
reason) and the identity. So a proof made for one request answers no other, a decision changed
after it was signed (other args, another person) no longer matches, and an approval record
edited in the database fails `plangate verify`. Whoever holds the key can make proofs: it
stays with the doors and the graph, never in the database they write.

The same key signs identity assertions: LangGraph's server authenticates a request before the
graph runs (`plangate.integrations.langgraph_auth`), and hands the graph the user it found; the
assertion is what tells the graph that user came from plangate's handler and not from a
client's `configurable`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plangate.identity._identity import Identity, identity_from, is_verified

__all__ = ("DecisionSigner",)

_VERSION = "v1"
_MIN_KEY_BYTES = 16


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
    ).encode()


def _decision_body(
    decision: Mapping[str, Any], request_id: Any, digest: Any, identity: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "digest": digest,
        "decision": decision.get("decision"),
        "args": decision.get("args"),
        "message": decision.get("message"),
        "reason": decision.get("reason"),
        "identity": identity_from(identity),
    }


@dataclass(frozen=True, slots=True, repr=False)
class DecisionSigner:
    """Signs and checks decision proofs and identity assertions with one key.

    Args:
        key: The project's signing key (at least 16 bytes; `identity.signing_key`).
    """

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) < _MIN_KEY_BYTES:
            raise ValueError(
                f"identity.signing_key: at least {_MIN_KEY_BYTES} bytes, better 32 random ones "
                '(python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )

    def __repr__(self) -> str:  # the key never shows in a log or a traceback
        return "DecisionSigner(key=<hidden>)"

    def _mac(self, purpose: str, body: Any) -> str:
        digest = hmac.new(self.key, purpose.encode() + b"\0" + _canonical(body), hashlib.sha256)
        return f"{_VERSION}:{digest.hexdigest()}"

    def sign_decision(
        self,
        decision: Mapping[str, Any],
        *,
        request_id: Any,
        digest: Any,
        identity: Identity,
    ) -> str:
        """The proof that `identity` (verified by a door) made `decision` on the request
        `request_id` whose digest is `digest`."""
        if not is_verified(identity):
            raise ValueError("only a verified identity's decision gets a proof")
        return self._mac("decision", _decision_body(decision, request_id, digest, identity))

    def decision_holds(
        self,
        decision: Mapping[str, Any],
        *,
        request_id: Any,
        digest: Any,
        identity: Mapping[str, Any] | None,
        proof: Any,
    ) -> bool:
        """Whether `proof` is this key's for exactly this decision, request and identity."""
        if not isinstance(proof, str) or not is_verified(identity):
            return False
        assert identity is not None
        try:
            body = _decision_body(decision, request_id, digest, identity)
        except ValueError:
            return False
        return hmac.compare_digest(proof, self._mac("decision", body))

    def assert_identity(self, identity: Identity, *, ttl: float = 3600.0) -> str:
        """An assertion, good for `ttl` seconds, that a door verified `identity`."""
        expires = int(time.time() + ttl)
        return f"{expires}.{self._mac('identity', [expires, identity_from(identity)])}"

    def asserted(self, identity: Any, assertion: Any) -> Identity | None:
        """`identity` if `assertion` is this key's for it and has not expired, else `None`."""
        if not isinstance(assertion, str) or "." not in assertion or not is_verified(identity):
            return None
        expires, _, mac = assertion.partition(".")
        try:
            checked = identity_from(identity)
            when = int(expires)
        except ValueError:
            return None
        if when < time.time():
            return None
        if not hmac.compare_digest(mac, self._mac("identity", [when, checked])):
            return None
        return checked
