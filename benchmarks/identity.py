"""What knowing who decides costs: a decision's proof, a token's check, and a decision taken
through the graph with and without identities.

    python -m benchmarks.identity [--decisions 200] [--checks 20000]

Prints, in one table:
- making and checking one decision proof (`DecisionSigner`: an HMAC over the canonical JSON of
  the request, the decision and the identity), median over `--checks`;
- checking a plangate token: the first check of a token (one scrypt) and a later one within a
  minute (a read of its row), on a SQLite file;
- a decision through the graph (a resume of a one-step run paused for approval, on a SQLite
  file): an unverified one in a graph without a key, and a signed one in a graph with a key
  under `identity_required: low`, median over `--decisions` runs of each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langgraph.types import Command

from plangate import (
    DecisionSigner,
    Identity,
    build_graph,
    declare_action,
    load_profile,
    open_checkpointer,
)
from plangate.identity.tokens import TokenStore

LEE: Identity = {
    "subject": "u-lee",
    "name": "Lee",
    "email": "lee@example.com",
    "groups": ["payments-leads"],
    "verified_by": "oidc",
}
PLAN = {"goal": "pay", "steps": [{"tool": "bank.wire", "args": {"amount": 900}}]}


@declare_action(action="execute", irreversible=True)
def wire(amount: int) -> str:
    """Wire money."""
    return f"wired {amount}"


def median_us(timed: Callable[[], Any], times: int) -> float:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        timed()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1e6


def proof_costs(checks: int) -> tuple[float, float]:
    signer = DecisionSigner(b"the project's signing key, 32 b")
    decision = {"decision": "edit", "args": {"to": "ana@example.com", "body": "x" * 500}}
    bound = {"request_id": "3f2a", "digest": "9c" * 32}
    proof = signer.sign_decision(decision, identity=LEE, **bound)

    def sign() -> None:
        signer.sign_decision(decision, identity=LEE, **bound)

    def check() -> None:
        assert signer.decision_holds(decision, identity=LEE, proof=proof, **bound)

    return median_us(sign, checks), median_us(check, checks)


def token_costs(folder: Path) -> tuple[float, float]:
    with TokenStore(f"sqlite:///{folder / 'tokens.db'}") as store:
        token, _ = store.create("lee@example.com", groups=["payments-leads"])
        started = time.perf_counter()
        assert store.authenticate(token) is not None
        first = (time.perf_counter() - started) * 1e6
        later = median_us(lambda: store.authenticate(token), 200)
    return first, later


def decision_ms(folder: Path, decisions: int, *, signed: bool) -> float:
    """The median time of a resume that approves a paused one-step run."""
    signer = DecisionSigner(b"the project's signing key, 32 b") if signed else None
    profile = load_profile("smb")
    if signed:
        profile = profile.model_copy(update={"identity_required": "low"})
    name = "signed" if signed else "typed"
    graph = build_graph(
        {"bank.wire": wire},
        profile=profile,
        signer=signer,
        checkpointer=open_checkpointer(f"sqlite:///{folder / f'{name}.db'}"),
    )
    seconds = []
    for n in range(decisions):
        config = {"configurable": {"thread_id": f"{name}-{n}"}}
        request = graph.invoke({"plan": PLAN}, config)["__interrupt__"][0].value
        resume: dict[str, Any] = {"decision": "approve", "approver": "lee"}
        started = time.perf_counter()
        if signer is not None:
            bound = {"request_id": request["request_id"], "digest": request["digest"]}
            proof = signer.sign_decision({"decision": "approve"}, identity=LEE, **bound)
            resume = {"decision": "approve", "identity": LEE, "proof": proof}
        result = graph.invoke(Command(resume=resume), config)["result"]
        seconds.append(time.perf_counter() - started)
        assert result["status"] == "success"
    return statistics.median(seconds) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.identity")
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--checks", type=int, default=20000)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sign, check = proof_costs(options.checks)
        first, later = token_costs(folder)
        typed = decision_ms(folder, options.decisions, signed=False)
        signed = decision_ms(folder, options.decisions, signed=True)
    print("| what | median |")
    print("|---|---:|")
    print(f"| make a decision proof | {sign:,.1f} µs |")
    print(f"| check a decision proof | {check:,.1f} µs |")
    print(f"| check a plangate token, first time (scrypt) | {first / 1000:,.1f} ms |")
    print(f"| check it again within a minute | {later:,.1f} µs |")
    print(f"| a decision through the graph, name typed, no key | {typed:,.2f} ms |")
    print(f"| a signed decision, identity_required: low | {signed:,.2f} ms |")


if __name__ == "__main__":
    main()
