"""The inbox's API as a command-line client: `approve`, `reject` and `pending` with
`--server URL` decide and read as the person whose token `PLANGATE_TOKEN` holds.

Through the server, the token says who decides (a plangate token or an OpenID Connect access
token), and the server signs the decision for the graph to check; straight on the database,
the command records the operating-system user, `unverified`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from plangate.cli.output import say
from plangate.errors import PlangateError, PlangateUsageError

__all__ = ("TOKEN_VARIABLE", "Inbox", "decide_through")

TOKEN_VARIABLE = "PLANGATE_TOKEN"
_TIMEOUT = 30.0


class Inbox:
    """An inbox at `url`, reached with the token of `PLANGATE_TOKEN`.

    Raises:
        PlangateUsageError: `PLANGATE_TOKEN` is not set.
    """

    def __init__(self, url: str) -> None:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        if not token:
            raise PlangateUsageError(
                f"--server needs your token in {TOKEN_VARIABLE}",
                hint=f"export {TOKEN_VARIABLE}=<the token `plangate tokens create` printed>",
            )
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        try:
            response = httpx.request(
                method, self.url + path, json=body, headers=self._headers, timeout=_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise PlangateUsageError(
                f"cannot reach the inbox at {self.url}: {exc}",
                hint="is `plangate serve` running there?",
            ) from None
        if response.is_success:
            return response.json()
        try:
            said = response.json()
        except ValueError:
            said = {}
        detail = said.get("detail") if isinstance(said, dict) else None
        if response.status_code == 401:
            raise PlangateError(
                f"the inbox refused the token in {TOKEN_VARIABLE}: {detail or 'unauthorized'}",
                hint="a revoked or expired token decides nothing: ask for a new one",
            )
        raise PlangateError(
            f"the inbox answered {response.status_code}: {detail or response.reason_phrase}",
            hint=said.get("hint") if isinstance(said, dict) else None,
        )

    def run(self, thread: str) -> dict[str, Any]:
        """The run view (`GET /api/runs/{thread}`): what it waits for, among the rest."""
        found: dict[str, Any] = self._call("GET", f"/api/runs/{quote(thread, safe='')}")
        return found

    def pending(self) -> list[dict[str, Any]]:
        """Every request waiting, each saying whether this token's person may decide it."""
        found: list[dict[str, Any]] = self._call("GET", "/api/pending")["approvals"]
        return found

    def decide(self, thread: str, decision: Mapping[str, Any]) -> dict[str, Any]:
        """Send a decision bound to one request (its `interrupt_id` and `digest`)."""
        taken: dict[str, Any] = self._call(
            "POST", f"/api/runs/{quote(thread, safe='')}/decision", decision
        )
        return taken


_FINISHED_CODES = {"success": 0, "partial": 4, "failed": 5}
# How long `approve --server` follows the run it let go on, before leaving it to the server.
_FOLLOW_SECONDS = 60.0


def decide_through(server: str, thread: str, decision: Mapping[str, Any], step: str | None) -> int:
    """Send `decision` to the inbox at `server` for the request `step` names (or the only one
    waiting), bound by its interrupt id and digest, then follow the run until it pauses or
    ends: the exit code `approve` gives for how it stands (0 when it still runs there)."""
    inbox = Inbox(server)
    waiting = inbox.run(thread).get("waiting") or []
    if step is not None:
        chosen = [view for view in waiting if view.get("step_id") == step]
    else:
        chosen = waiting
    steps = ", ".join(repr(view.get("step_id") or "the plan") for view in waiting) or "nothing"
    if len(chosen) != 1:
        raise PlangateUsageError(
            f"run {thread!r} waits for {steps}"
            + ("" if step is None else f", not for step {step!r}"),
            hint="name the one decided with --step STEP_ID",
        )
    (view,) = chosen
    bound = {**decision, "interrupt_id": view["interrupt_id"], "digest": view["digest"]}
    inbox.decide(thread, bound)
    what = "the plan review" if view.get("step_id") is None else f"step {view['step_id']!r}"
    say(f"Decided {what} of run {thread} ({decision['decision']}) through {inbox.url}.")
    deadline = time.monotonic() + _FOLLOW_SECONDS
    while time.monotonic() < deadline:
        status = inbox.run(thread).get("status")
        if status == "waiting":
            say(f"Run {thread} waits for another decision: plangate pending --server {server}")
            return 3
        if status in _FINISHED_CODES:
            say(f"Run {thread} finished: {status}.")
            return _FINISHED_CODES[status]
        time.sleep(0.25)
    say(f"Run {thread} goes on in the inbox's server.")
    return 0
