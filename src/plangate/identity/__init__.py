"""Who decided: identities, decision proofs, and the profile's rules for who may decide.

A door that authenticated its person (the inbox's OpenID Connect sign-in, a plangate token,
LangGraph's server auth) gives the decision a proof made with the project's signing key
(`identity.signing_key`); the graph checks it before LangGraph stores anything, and
`plangate verify` checks it again. Everything else is the name it gives, `unverified`.
"""

from plangate.identity._gate import LANGGRAPH_AUTH_USER, DecisionGate
from plangate.identity._identity import (
    Identity,
    VerifiedBy,
    identity_from,
    is_verified,
    person_keys,
    same_person,
    shown_name,
    unverified,
)
from plangate.identity._proof import DecisionSigner

__all__ = (
    "LANGGRAPH_AUTH_USER",
    "DecisionGate",
    "DecisionSigner",
    "Identity",
    "VerifiedBy",
    "identity_from",
    "is_verified",
    "person_keys",
    "same_person",
    "shown_name",
    "unverified",
)
