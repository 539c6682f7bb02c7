"""The gate's check of who decided: the graph's, whatever door a decision came through.

A decision is verified when it carries a proof this project's key made for exactly it
(`DecisionSigner`), or when it came through LangGraph's server and plangate's auth handler
vouched for the user there (`LANGGRAPH_AUTH_USER`, with an assertion under the same key); the
graph then signs it itself, so that the approval record proves itself to `plangate verify`.
Anything else is the name it gives, `unverified`. The profile's rules (`identity_required`,
`approvers`, `self_approval`) and four eyes are then judged on that identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plangate._time import parse_iso, utc_now
from plangate.errors import InvalidDecision
from plangate.hitl import approver_of
from plangate.identity._identity import (
    Identity,
    identity_from,
    is_verified,
    matches_any,
    same_person,
    shown_name,
    unverified,
)
from plangate.identity._proof import DecisionSigner

if TYPE_CHECKING:
    from plangate.approval import Decision
    from plangate.profiles import Profile

__all__ = (
    "LANGGRAPH_AUTH_USER",
    "PLANGATE_USER_KEY",
    "STARTED_BY",
    "STARTER",
    "DecisionGate",
    "asserted_user",
    "starter_of",
)

STARTED_BY = "plangate_started_by"
"""The name of who started a run, in its config's `metadata` (and so in every checkpoint's):
what a face says, unverified (the operating-system user, a typed name)."""

STARTER = "plangate_starter"
"""A door's word for who started a run, in its config's `metadata`: `{"identity", "assertion"}`,
the assertion made with the project's key (`DecisionSigner.assert_identity`)."""

LANGGRAPH_AUTH_USER = "langgraph_auth_user"
"""Where LangGraph's server puts the user its auth handler authenticated: in the run's
`config["configurable"]`; a client cannot set it there (the server overwrites it)."""

PLANGATE_USER_KEY = "plangate"
"""The key of that user under which plangate's auth handler puts the identity it verified and
its assertion (`{"identity": ..., "assertion": ...}`)."""

_DOORS = "the inbox signed in, `--server` with a token, or LangGraph's server with auth"
_CHANGES = ("approve", "edit", "respond")


def asserted_user(
    config: Mapping[str, Any] | None, signer: DecisionSigner | None
) -> Identity | None:
    """The identity plangate's auth handler vouched for in this run's config, or `None`."""
    if signer is None:
        return None
    user = ((config or {}).get("configurable") or {}).get(LANGGRAPH_AUTH_USER)
    vouched = _item(user, PLANGATE_USER_KEY)
    if not isinstance(vouched, Mapping):
        return None
    return signer.asserted(vouched.get("identity"), vouched.get("assertion"))


def starter_of(config: Mapping[str, Any] | None, signer: DecisionSigner | None) -> Identity | None:
    """Who started a run with `config`: the user LangGraph's server authenticated, or the one a
    door vouched for (`STARTER`), else the name a face gave (`STARTED_BY`), unverified; `None`
    when nobody said."""
    vouched = asserted_user(config, signer)
    if vouched is not None:
        return vouched
    metadata = (config or {}).get("metadata") or {}
    door = metadata.get(STARTER)
    if signer is not None and isinstance(door, Mapping):
        checked = signer.asserted(door.get("identity"), door.get("assertion"))
        if checked is not None:
            return checked
    named = metadata.get(STARTED_BY)
    return unverified(str(named)) if named else None


def _item(user: Any, key: str) -> Any:
    """`user[key]`: LangGraph's server hands the user over as a mapping-like proxy."""
    if user is None:
        return None
    try:
        return user[key]
    except (KeyError, TypeError, AttributeError):
        return getattr(user, key, None)


@dataclass(frozen=True, slots=True)
class DecisionGate:
    """Who may decide a request, under a profile, for a graph that holds `signer` (the
    project's key; `None` when the project knows no identities).

    `auth_user` is the identity LangGraph's server vouched for in the run's config, if any.
    """

    profile: Profile
    signer: DecisionSigner | None = None
    auth_user: Identity | None = None
    clock: Callable[[], datetime] = utc_now
    # The approver a run's config names (`configurable`, else `metadata`, `approver`): a
    # verified person's decision must not name another there either.
    named: str | None = None

    @classmethod
    def of(
        cls,
        profile: Profile,
        signer: DecisionSigner | None,
        config: Mapping[str, Any] | None,
        clock: Callable[[], datetime] = utc_now,
    ) -> DecisionGate:
        return cls(profile, signer, asserted_user(config, signer), clock, approver_of(config))

    def settle(self, decision: Decision, request: Mapping[str, Any]) -> Decision:
        """`decision` with who made it settled (`identity`, and `proof` when verified), judged
        by the profile's rules.

        Raises:
            InvalidDecision: The rules refuse this person this decision; one line, naming why.
        """
        identity, proof = self._who(decision, request)
        # A request past its deadline is closed `expired` whatever answers it: nobody's
        # decision is applied, so nobody's is judged (`plangate expire` closes it so).
        if "expires_at" not in request or self.clock() <= parse_iso(request["expires_at"]):
            self._judge(identity, decision, request)
        return decision.model_copy(
            update={
                "identity": identity,
                "proof": proof,
                "approver": shown_name(identity),
                # What the proof is bound to, whether or not the decision named it.
                "request_id": request.get("request_id"),
                "digest": request.get("digest"),
            }
        )

    def _who(self, decision: Decision, request: Mapping[str, Any]) -> tuple[Identity, str | None]:
        fields = decision.model_dump()
        bound = {"request_id": request.get("request_id"), "digest": request.get("digest")}
        signer = self.signer
        proof = decision.proof
        if signer is not None and signer.decision_holds(
            fields, identity=decision.identity, proof=proof, **bound
        ):
            identity = identity_from(decision.identity)
            self._same_as_named(identity, decision)
            return identity, proof
        if signer is not None and self.auth_user is not None:
            identity = self.auth_user
            self._same_as_named(identity, decision)
            return identity, signer.sign_decision(fields, identity=identity, **bound)
        return unverified(decision.approver), None

    def _same_as_named(self, identity: Identity, decision: Decision) -> None:
        """A verified person decides as themselves: an approver named beside them (typed in a
        body or a HITL decision, set in the run's `configurable` or metadata) must be them."""
        for named in (decision.approver, self.named):
            if named is not None and not same_person(identity, unverified(named)):
                raise InvalidDecision(
                    f"invalid decision: approver: you are {shown_name(identity)!r} "
                    f"({identity['verified_by']}); a decision cannot name {named!r} as its "
                    "approver",
                    field="approver",
                    hint="leave the approver out: the verified identity is recorded",
                )

    def why_not(self, identity: Identity, request: Mapping[str, Any]) -> str | None:
        """Why `identity` may not approve `request` now (the profile's rules, four eyes), or
        `None`: what a face shows a person beside a request they cannot decide."""
        from plangate.approval import Decision, approvals_problem  # it imports this module

        approving = Decision(
            decision="approve", approver=shown_name(identity), identity=dict(identity)
        )
        try:
            self._judge(identity, approving, request)
        except InvalidDecision as exc:
            return exc.message.removeprefix("invalid decision: ")
        return approvals_problem(request, approving, verified_only=self.signer is not None)

    def _judge(self, identity: Identity, decision: Decision, request: Mapping[str, Any]) -> None:
        profile = self.profile
        name = shown_name(identity)
        who = repr(name) if name else "an anonymous decision"
        risk = request.get("risk", "high")
        if not is_verified(identity) and profile.needs_identity(risk):
            raise InvalidDecision(
                f"invalid decision: identity: this request is {risk} risk and the profile wants "
                f"a verified identity from {profile.identity_required} up; {who} is unverified",
                field="identity",
                hint=f"decide through a door that knows you: {_DOORS}",
            )
        for key, names in self._rules(request):
            if not matches_any(identity, names):
                verified = "" if is_verified(identity) else " (unverified, so no rule names it)"
                raise InvalidDecision(
                    f"invalid decision: approver: {who}{verified} may not decide this request: "
                    f"the profile's approvers.{key} names {', '.join(names)}",
                    field="approver",
                    hint="someone the rule names decides it",
                )
        starter = request.get("started_by")
        if (
            profile.self_approval == "forbidden"
            and decision.decision in _CHANGES
            and starter is not None
            and same_person(identity, starter)
        ):
            raise InvalidDecision(
                f"invalid decision: approver: {who} started this run, and the profile forbids "
                f"approving one's own run (self_approval: forbidden)",
                field="approver",
                hint="another person decides it; you may still reject it",
            )

    def _rules(self, request: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
        """The `approvers` rules of a request: its own tool's and risk's, and for a plan review
        those of every row it shows."""
        rows = request.get("steps") if request.get("type") == "plan_review" else None
        pairs = [(request.get("tool"), request.get("risk", "high"))]
        pairs += [(row.get("tool"), row.get("risk", "high")) for row in rows or ()]
        found: dict[str, list[str]] = {}
        for tool, risk in pairs:
            found.update(self.profile.approver_rules(tool, risk))
        return list(found.items())
