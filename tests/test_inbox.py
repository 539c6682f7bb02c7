"""The inbox's JSON API (`plangate serve`), over a real socket on a real SQLite file, with runs
set up exactly as `plangate run` sets them up (`RunSetup`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _support import (
    BLANK_NAMES,
    KILLED_AT_CHECKPOINT,
    SAME_AS_LEE,
    free_port,
    serving,
    unattended_profile,
)

from plangate import Plan, demo_outbox, load_profile, open_checkpointer
from plangate.errors import PlangateUsageError
from plangate.project import RunSetup
from plangate.runs.locks import run_locks
from plangate.runs.service import FINISHED, STARTED_BY
from plangate.server import create_app, listen

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo"
SALES = EXAMPLES / "sales_followup.yaml"
TOKEN = "test-token-1234"


@dataclass
class Inbox:
    """A running inbox: `api` carries the token, `anon` does not."""

    db: Path
    outbox: Path
    api: httpx.Client
    anon: httpx.Client

    def pause(self, thread: str, *, profile: str = "smb", started_by: str | None = None) -> None:
        """Run the demo plan in `thread` until it waits for approval, as `plangate run` does."""
        setup = RunSetup(profile=profile)
        config = setup.config(thread)
        if started_by:
            config["metadata"][STARTED_BY] = started_by
        graph = setup.graph(setup.project_for(str(self.db)), str(self.db))
        out = graph.invoke({"plan": Plan.from_file(SALES)}, config)
        assert "__interrupt__" in out

    def wait(self, thread: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.api.get(f"/api/runs/{thread}").json()
            if run["status"] in statuses or time.monotonic() > deadline:
                assert run["status"] in statuses, run
                return run
            time.sleep(0.05)

    def pending(self) -> list[dict[str, Any]]:
        return list(self.api.get("/api/pending").json()["approvals"])

    def interrupt_id(self, thread: str) -> str:
        return next(str(a["interrupt_id"]) for a in self.pending() if a["thread"] == thread)


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    """`create_app` served by uvicorn in a thread of this process, on a loopback port bound
    before the server starts (`listen`), so that nothing else can take it meanwhile."""
    db = tmp_path / "runs.db"
    app = create_app(str(db), token=TOKEN, poll_interval=0.05)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        serving(app) as base,
        httpx.Client(base_url=base, headers=auth, timeout=30) as api,
        httpx.Client(base_url=base, timeout=30) as anon,
    ):
        yield Inbox(db=db, outbox=tmp_path / "plangate-outbox.db", api=api, anon=anon)


@dataclass
class ServeProcess:
    """`plangate serve` running as a process of its own, its output in `log`."""

    process: subprocess.Popen[bytes]
    port: int
    token: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


start_serve_port = free_port  # where `start_serve` finds a port (a test replaces it)


def start_serve(cwd: Path, *args: str, token: str | None = None) -> ServeProcess:
    """`plangate serve ARGS --port P` in `cwd` on a free port P, once it answers there to its
    token (`token`, passed as --token, else the one it printed).

    A port found free may be taken by another process before the server binds it: the server
    then exits, saying the address is in use, and meanwhile whatever took the port may answer
    there (refusing this token, which is the server's own). So it starts again on another port.
    """
    env = {k: v for k, v in os.environ.items() if k != "PLANGATE_TOKEN"}
    given = ("--token", token) if token else ()
    for _ in range(5):
        port = start_serve_port()
        log = cwd / f"serve-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "plangate", "serve", *args, "--port", str(port), *given],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        served = ServeProcess(process, port, token or "", log)
        if _answers(served):
            return served
    pytest.fail("plangate serve found no free port in 5 tries")


def _answers(served: ServeProcess) -> bool:
    """Wait until `served` answers to its token (True), or exits because its port was taken
    (False); fail on any other exit, or after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        if served.process.poll() is not None:
            output = served.log.read_text()
            assert "address already in use" in output.lower(), output
            return False
        if not served.token:
            printed = [line for line in served.lines() if line.startswith("Token: ")]
            served.token = printed[0].removeprefix("Token: ").strip() if printed else ""
        if served.token:
            auth = {"Authorization": f"Bearer {served.token}"}
            try:
                if httpx.get(f"{served.url}/api/info", headers=auth, timeout=2).is_success:
                    return True
            except httpx.TransportError:
                pass
        if time.monotonic() > deadline:
            served.stop()
            pytest.fail(f"plangate serve did not start: {served.log.read_text()}")
        time.sleep(0.05)


def _sse(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) of each server-sent event."""
    name = "message"
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


def test_pending_lists_every_paused_run_with_request_and_requester(inbox: Inbox) -> None:
    """Each waiting approval comes with tool, risk, consequence, the real args, the action and
    who said it, irreversibility, digest, expiry, and its run."""
    inbox.pause("demo")
    inbox.pause("deal-7", started_by="zoe")

    pending = inbox.pending()

    assert sorted(a["thread"] for a in pending) == ["deal-7", "demo"]
    request = next(a for a in pending if a["thread"] == "deal-7")
    assert request["tool"] == "email.send"
    assert request["step_id"] == "send"
    assert request["risk"] == "high"
    assert request["consequence"].startswith("If approved, plangate will send the follow-up")
    assert request["args"]["subject"] == "Your renewal"
    assert request["args"]["to"] == "ana.lopez@acme.example"  # the real args, though smb redacts
    assert request["args"]["body"].endswith("Call me at +1 415 555 0199.")
    assert (request["action"], request["action_source"]) == ("execute", "tool")
    assert request["irreversible"] is True
    assert len(request["digest"]) == 64
    assert request["goal"] == "Follow up with Acme about the renewal"
    assert request["started_by"] == "zoe"
    assert request["profile"] == "smb"
    assert 86000 < request["expires_in_seconds"] <= 86400
    assert request["expired"] is False
    assert next(a for a in pending if a["thread"] == "demo")["started_by"] is None


def test_run_view_has_steps_budget_and_signals(inbox: Inbox) -> None:
    """The run view of a paused run: two steps done, one waiting, budget per tier, signals."""
    inbox.pause("demo")

    run = inbox.api.get("/api/runs/demo").json()

    assert run["status"] == "waiting"
    assert run["goal"] == "Follow up with Acme about the renewal"
    assert [(s["step_id"], s["status"]) for s in run["steps"]] == [
        ("lookup", "ok"),
        ("draft", "ok"),
        ("send", "waiting"),
    ]
    assert [w["tool"] for w in run["waiting"]] == ["email.send"]
    tiers = {t["tier"]: t for t in run["budget"]["tiers"]}
    assert tiers["total"] == {
        "tier": "total",
        "kind": "total",
        "name": "total",
        "used": 2,
        "limit": 50,
        "share": 0.04,
        "level": "ok",
    }
    assert (tiers["domain:email"]["used"], tiers["domain:email"]["limit"]) == (1, 25)
    assert (tiers["tool:email.send"]["used"], tiers["tool:email.send"]["limit"]) == (0, 15)
    assert run["budget"]["warning_threshold"] == 0.8
    assert run["signals"]["success_rate"] == 1.0
    assert run["signals"]["approval_wait_ms"]["count"] == 0
    trace = inbox.api.get("/api/runs/demo/trace").json()["events"]
    assert trace[-1]["type"] == "approval_requested"


def test_only_the_waiting_approval_shows_real_args_the_rest_is_redacted(inbox: Inbox) -> None:
    """The approver sees the real recipient; the step table and the trace, which leave the
    decision path, stay redacted as smb says."""
    inbox.pause("demo")

    run = inbox.api.get("/api/runs/demo").json()
    (waiting,) = run["waiting"]
    assert waiting["args"]["to"] == "ana.lopez@acme.example"
    assert (waiting["action_source"], waiting["irreversible"]) == ("tool", True)
    assert waiting["digest"] == inbox.pending()[0]["digest"]
    send = run["steps"][2]
    assert send["args"]["to"] == "[REDACTED_EMAIL]"
    draft = run["steps"][1]
    assert "ana.lopez" not in json.dumps(draft["output"])
    trace = inbox.api.get("/api/runs/demo/trace").json()["events"]
    assert "ana.lopez@acme.example" not in json.dumps(trace)
    assert trace[-1]["data"]["args"]["to"] == "[REDACTED_EMAIL]"
    with inbox.api.stream("GET", "/api/runs/demo/events") as response:
        streamed = []
        for name, data in _sse(response):
            if name == "status":
                break
            streamed.append(data)
    assert streamed == trace


def test_budget_tiers_turn_warn_then_full_at_the_profile_threshold(inbox: Inbox) -> None:
    """Under enterprise (5 calls per tool, warning at 80 %): 4 lookups warn, 5 fill the tier."""

    def budget_after(lookups: int) -> dict[str, Any]:
        steps = [{"tool": "crm.lookup_account", "args": {"account": "acme"}}] * lookups
        plan = {"plan": {"steps": steps}, "profile": "enterprise"}
        started = inbox.api.post("/api/runs", json=plan)
        assert started.status_code == 201, started.text
        return dict(inbox.wait(started.json()["thread"], "success")["budget"])

    def tier(budget: dict[str, Any], name: str) -> tuple[int, int, str]:
        found = next(t for t in budget["tiers"] if t["tier"] == name)
        return found["used"], found["limit"], found["level"]

    four = budget_after(4)
    assert tier(four, "tool:crm.lookup_account") == (4, 5, "warn")
    assert tier(four, "domain:crm") == (4, 10, "ok")
    assert tier(four, "total") == (4, 20, "ok")
    assert four["utilisation"] == 0.8
    five = budget_after(5)
    assert tier(five, "tool:crm.lookup_account") == (5, 5, "full")
    assert five["utilisation"] == 1.0


def test_every_api_read_needs_the_token(inbox: Inbox) -> None:
    """Requests carry real args, so every GET under /api/ without the token, with a wrong one
    or with another scheme is 401 and shows nothing of the run; with the token it is 200. The
    page and its assets stay public: they hold no run data."""
    inbox.pause("demo")
    reads = [
        "/api/info",
        "/api/pending",
        "/api/runs",
        "/api/runs?limit=5",
        "/api/runs/demo",
        "/api/runs/demo/trace",
        "/api/runs/demo/events",
        "/api/runs/nope",
        "/api/no-such-endpoint",
    ]
    wrong: tuple[dict[str, str], ...] = (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
    )
    for path in reads:
        for headers in wrong:
            with inbox.anon.stream("GET", path, headers=headers) as refused:
                text = refused.read().decode()
            assert refused.status_code == 401, (path, headers, text)
            assert json.loads(text)["detail"] == "missing or wrong token"
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "acme" not in text
        head = inbox.anon.head(path)
        assert head.status_code == 401, path

    for path in reads[:6]:
        assert inbox.api.get(path).status_code == 200, path
    with inbox.api.stream("GET", "/api/runs/demo/events") as streaming:
        assert streaming.status_code == 200
        assert streaming.headers["content-type"].startswith("text/event-stream")
    assert inbox.api.get("/api/runs/nope").status_code == 404

    for public in ("/", "/static/app.css", *page_modules(inbox.anon)):
        assert inbox.anon.get(public).status_code == 200, public
    assert inbox.api.get("/api/runs/demo").json()["status"] == "waiting"


def test_state_changes_without_the_token_get_401_and_change_nothing(inbox: Inbox) -> None:
    """No token, a wrong one, or another scheme: 401; the run stays paused and resumable."""
    inbox.pause("demo")
    decision = {"decision": "approve", "approver": "mallory"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        refused = inbox.anon.post("/api/runs/demo/decision", json=decision, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "missing or wrong token"
        assert refused.headers["www-authenticate"] == "Bearer"
    started = inbox.anon.post("/api/runs", json={"plan": SALES.read_text(), "profile": "smb"})
    assert started.status_code == 401
    not_json = inbox.anon.post("/api/runs/demo/decision", content=b"{oops")
    assert not_json.status_code == 401  # the token is checked before the body is read
    assert inbox.anon.post("/api/runs/demo/resume").status_code == 401

    assert [a["thread"] for a in inbox.pending()] == ["demo"]
    assert len(inbox.api.get("/api/runs").json()["runs"]) == 1
    assert demo_outbox(inbox.outbox) == []

    approved = inbox.api.post("/api/runs/demo/decision", json={**decision, "approver": "lee"})
    assert approved.status_code == 202
    inbox.wait("demo", "success")
    assert len(demo_outbox(inbox.outbox)) == 1


def test_a_bad_decision_gets_422_with_one_line_and_the_run_stays_resumable(inbox: Inbox) -> None:
    """InvalidDecision's message comes back as one line; nothing enters the graph."""
    inbox.pause("demo")
    cases = [
        ({"decision": "maybe", "approver": "lee"}, "invalid decision: decision: Input should be"),
        (
            {"decision": "edit", "approver": "lee", "args": {"to": "kim@example.com"}},
            "invalid edit for tool 'email.send': args.subject: Field required",
        ),
        ({"decision": "approve"}, "invalid decision: approver: give the name of who decides"),
        *(
            ({"decision": "approve", "approver": blank}, "invalid decision: approver: give the")
            for blank in BLANK_NAMES
        ),
        ({"decision": "reject", "approver": "lee"}, "invalid decision: reason: a 'reject'"),
        ({"decision": "approve", "approver": "lee", "args": {}}, "invalid decision: args:"),
    ]
    for body, message in cases:
        refused = inbox.api.post("/api/runs/demo/decision", json=body)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert detail.startswith(message), detail
        assert "\n" not in detail
        assert refused.json()["error"] == "InvalidDecision"

    as_json = {"content-type": "application/json"}
    cut = inbox.api.post("/api/runs/demo/decision", content=b'{"decision": ', headers=as_json)
    assert cut.status_code == 422, cut.text
    assert cut.json()["detail"] == "the request body is not valid JSON: Expecting value at char 13"
    untyped = inbox.api.post("/api/runs/demo/decision", content=b'{"decision": "approve"}')
    assert untyped.status_code == 422, untyped.text
    assert untyped.json()["detail"].startswith("the request body must be a JSON object")

    assert inbox.api.get("/api/runs/demo").json()["status"] == "waiting"
    approved = inbox.api.post(
        "/api/runs/demo/decision", json={"decision": "approve", "approver": "lee"}
    )
    assert approved.status_code == 202
    inbox.wait("demo", "success")
    assert len(demo_outbox(inbox.outbox)) == 1


def test_approve_resumes_the_run_in_the_server_and_it_finishes(inbox: Inbox) -> None:
    """202 at once; the run goes on in the server; exactly one email goes out."""
    inbox.pause("demo")
    approved = inbox.api.post(
        "/api/runs/demo/decision",
        json={"decision": "approve", "approver": "lee", "interrupt_id": inbox.interrupt_id("demo")},
    )
    assert approved.status_code == 202, approved.text
    assert approved.json()["decision"] == "approve"

    run = inbox.wait("demo", "success")
    assert [s["status"] for s in run["steps"]] == ["ok", "ok", "ok"]
    approval = run["steps"][2]["approval"]
    assert (approval["decision"], approval["approver"]) == ("approve", "lee")
    assert run["signals"]["approval_wait_ms"]["count"] == 1
    sent = demo_outbox(inbox.outbox)
    assert [mail["to"] for mail in sent] == ["ana.lopez@acme.example"]
    assert inbox.pending() == []


def test_steps_waiting_together_are_each_shown_and_decided_by_their_interrupt(
    inbox: Inbox,
) -> None:
    """Two sends of one wave (in data-flow order) wait together: the run view and the pending
    list show both, a decision naming neither is refused in one line, and each is decided by its
    own interrupt; one email each."""
    sends = [
        {
            "id": f"send-{who}",
            "tool": "email.send",
            "args": {"to": f"{who}@acme.example", "subject": "Renewal", "body": "Hi"},
        }
        for who in ("ana", "ben")
    ]
    setup = RunSetup(profile="smb")
    graph = setup.graph(setup.project_for(str(inbox.db)), str(inbox.db))
    flow = {"goal": "tell both", "steps": sends, "order": "dependencies"}
    graph.invoke({"plan": flow}, setup.config("two"))

    run = inbox.wait("two", "waiting")
    assert [a["step_id"] for a in run["waiting"]] == ["send-ana", "send-ben"]
    assert [s["status"] for s in run["steps"]] == ["waiting", "waiting"]
    pending = [a for a in inbox.pending() if a["thread"] == "two"]
    assert sorted(a["step_id"] for a in pending) == ["send-ana", "send-ben"]

    vague = {"decision": "approve", "approver": "lee"}
    refused = inbox.api.post("/api/runs/two/decision", json=vague)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == (
        "invalid decision: 2 approvals are pending ('send-ana', 'send-ben'); name the one decided"
    )

    ids = {a["step_id"]: a["interrupt_id"] for a in pending}
    first = {"decision": "approve", "approver": "lee", "interrupt_id": ids["send-ben"]}
    assert inbox.api.post("/api/runs/two/decision", json=first).status_code == 202
    deadline = time.monotonic() + 30
    while [a["step_id"] for a in inbox.wait("two", "waiting")["waiting"]] != ["send-ana"]:
        assert time.monotonic() < deadline, "the decided request is still shown"
        time.sleep(0.05)
    second = {"decision": "approve", "approver": "kim", "interrupt_id": ids["send-ana"]}
    assert inbox.api.post("/api/runs/two/decision", json=second).status_code == 202
    run = inbox.wait("two", "success")
    approvers = {s["step_id"]: s["approval"]["approver"] for s in run["steps"]}
    assert approvers == {"send-ana": "kim", "send-ben": "lee"}
    assert sorted(mail["to"] for mail in demo_outbox(inbox.outbox)) == [
        "ana@acme.example",
        "ben@acme.example",
    ]


def test_a_request_for_two_approvers_shows_the_count_and_takes_a_second_person(
    inbox: Inbox, tmp_path: Path
) -> None:
    """Four eyes through the API: who approved so far is in the pending list, the same approver
    again is refused in one line, a second person lets the send go, once."""
    profile = tmp_path / "four-eyes.yaml"
    rules = {**load_profile("smb").model_dump(mode="json"), "approvals_required": {"high": 2}}
    profile.write_text(yaml.safe_dump(rules))
    inbox.pause("four", profile=str(profile))
    (waiting,) = [a for a in inbox.pending() if a["thread"] == "four"]
    assert (waiting["approvals_required"], waiting["approvals_so_far"]) == (2, [])

    lee = {"decision": "approve", "approver": "lee", "interrupt_id": waiting["interrupt_id"]}
    assert inbox.api.post("/api/runs/four/decision", json=lee).status_code == 202
    deadline = time.monotonic() + 30
    while (
        not (shown := [a for a in inbox.pending() if a["thread"] == "four"])
        or not shown[0]["approvals_so_far"]
    ):
        assert time.monotonic() < deadline, "the first approval is not shown"
        time.sleep(0.05)
    assert [a["approver"] for a in shown[0]["approvals_so_far"]] == ["lee"]

    # Asked again, the request is a new interrupt: a decision on the first one is stale.
    assert inbox.api.post("/api/runs/four/decision", json=lee).status_code == 409
    lee["interrupt_id"] = shown[0]["interrupt_id"]
    again = inbox.api.post("/api/runs/four/decision", json=lee)
    assert again.status_code == 422, again.text
    assert "'lee' has approved this request already" in again.json()["detail"]
    for spelled in SAME_AS_LEE:  # what a person reads as `lee` again, or no name
        refused = inbox.api.post("/api/runs/four/decision", json={**lee, "approver": spelled})
        assert refused.status_code == 422, (spelled, refused.text)
        assert refused.json()["detail"].startswith("invalid decision: approver:")
    assert demo_outbox(inbox.outbox) == []

    kim = {**lee, "approver": "kim"}
    assert inbox.api.post("/api/runs/four/decision", json=kim).status_code == 202
    run = inbox.wait("four", "success")
    approvals = run["steps"][2]["approval"]["approvals"]
    assert [a["approver"] for a in approvals] == ["lee", "kim"]
    assert len(demo_outbox(inbox.outbox)) == 1


def test_reject_with_reason_is_recorded(inbox: Inbox) -> None:
    """The reason and the approver are in the approval record and the trace; nothing is sent."""
    inbox.pause("demo")
    rejected = inbox.api.post(
        "/api/runs/demo/decision",
        json={"decision": "reject", "approver": "kim", "reason": "not before the call"},
    )
    assert rejected.status_code == 202, rejected.text

    run = inbox.wait("demo", "partial")
    send = run["steps"][2]
    assert send["status"] == "rejected"
    assert send["approval"]["reason"] == "not before the call"
    assert send["approval"]["approver"] == "kim"
    received = [
        e
        for e in inbox.api.get("/api/runs/demo/trace").json()["events"]
        if e["type"] == "approval_received"
    ]
    assert received[0]["data"]["reason"] == "not before the call"
    assert demo_outbox(inbox.outbox) == []


def test_an_edit_carrying_a_redaction_marker_is_refused_then_a_real_one_runs(
    inbox: Inbox,
) -> None:
    """Args copied from the (redacted) trace into an edit hold `[REDACTED_EMAIL]` where the
    request holds the real address: 422 naming `args.to`, the run stays paused, nothing is
    sent. An edit of the real args, shown in the request, then runs with the real recipient."""
    inbox.pause("demo")
    request = inbox.pending()[0]
    from_trace = inbox.api.get("/api/runs/demo/trace").json()["events"][-1]["data"]["args"]
    assert from_trace["to"] == "[REDACTED_EMAIL]"

    copied = {**from_trace, "subject": "Renewal: Thursday?"}
    refused = inbox.api.post(
        "/api/runs/demo/decision", json={"decision": "edit", "approver": "lee", "args": copied}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "InvalidDecision"
    assert refused.json()["field"] == "args.to"
    assert refused.json()["detail"].startswith("invalid decision: args.to: holds a redaction")
    smuggled = {**request["args"], "to": "cc [REDACTED_EMAIL]"}
    again = inbox.api.post(
        "/api/runs/demo/decision", json={"decision": "edit", "approver": "lee", "args": smuggled}
    )
    assert (again.status_code, again.json()["field"]) == (422, "args.to")
    assert inbox.api.get("/api/runs/demo").json()["status"] == "waiting"
    assert [a["interrupt_id"] for a in inbox.pending()] == [request["interrupt_id"]]
    assert demo_outbox(inbox.outbox) == []

    edited = {**request["args"], "subject": "Renewal: Thursday?"}
    accepted = inbox.api.post(
        "/api/runs/demo/decision",
        json={
            "decision": "edit",
            "approver": "lee",
            "args": edited,
            "interrupt_id": request["interrupt_id"],
            "digest": request["digest"],
        },
    )
    assert accepted.status_code == 202, accepted.text

    run = inbox.wait("demo", "success")
    assert run["steps"][2]["approval"]["decision"] == "edit"
    (mail,) = demo_outbox(inbox.outbox)
    assert mail["to"] == "ana.lopez@acme.example"
    assert mail["subject"] == "Renewal: Thursday?"
    assert mail["body"].endswith("Call me at +1 415 555 0199.")
    assert "REDACTED" not in json.dumps(mail)


def test_a_decision_on_another_digest_is_refused(inbox: Inbox) -> None:
    """A digest that is not the pending request's means the approver saw something else: 422
    naming `digest`, the run stays paused; the request's own digest goes through."""
    inbox.pause("demo")
    request = inbox.pending()[0]
    body = {"decision": "approve", "approver": "lee", "digest": "0" * 64}
    refused = inbox.api.post("/api/runs/demo/decision", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "digest"
    assert inbox.api.get("/api/runs/demo").json()["status"] == "waiting"

    body["digest"] = request["digest"]
    assert inbox.api.post("/api/runs/demo/decision", json=body).status_code == 202
    inbox.wait("demo", "success")
    assert [mail["to"] for mail in demo_outbox(inbox.outbox)] == ["ana.lopez@acme.example"]


def test_start_a_run_from_plan_text(inbox: Inbox) -> None:
    """YAML text under a chosen profile starts a run that pauses like `plangate run`'s."""
    started = inbox.api.post(
        "/api/runs",
        json={"plan": SALES.read_text(), "profile": "smb", "thread": "web-1", "started_by": "zoe"},
    )
    assert started.status_code == 201, started.text
    assert started.json() == {"thread": "web-1", "profile": "smb", "offline": False}

    run = inbox.wait("web-1", "waiting")
    assert run["profile"] == "smb"
    assert run["started_by"] == "zoe"
    (request,) = inbox.pending()
    assert (request["thread"], request["tool"], request["started_by"]) == (
        "web-1",
        "email.send",
        "zoe",
    )

    again = inbox.api.post("/api/runs", json={"plan": SALES.read_text(), "thread": "web-1"})
    assert again.status_code == 409
    approved = inbox.api.post(
        "/api/runs/web-1/decision", json={"decision": "approve", "approver": "lee"}
    )
    assert approved.status_code == 202
    assert inbox.wait("web-1", "success")["started_by"] == "zoe"  # carried across the resume


def test_start_refuses_bad_plans_and_profiles_with_one_line(inbox: Inbox) -> None:
    """A malformed plan, YAML that does not parse, or a profile that is not built in: 422."""
    cases = [
        ({"plan": "goal: x\nsteps:\n  - id: a\n    args: {}\n"}, "plan: step 'a', field 'tool'"),
        ({"plan": "goal: [unclosed"}, "plan is not valid YAML/JSON at line"),
        ({"plan": {"steps": []}}, "plan: field 'steps'"),
        ({"plan": SALES.read_text(), "profile": "/etc/passwd"}, "unknown profile '/etc/passwd'"),
        ({"plan": SALES.read_text(), "thread": "no spaces please"}, "thread id 'no spaces please'"),
    ]
    for body, message in cases:
        refused = inbox.api.post("/api/runs", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith(message), refused.json()
        assert "\n" not in refused.json()["detail"]
    assert inbox.api.get("/api/runs").json()["runs"] == []


def test_a_started_technical_run_waits_only_for_its_irreversible_send(inbox: Inbox) -> None:
    """A JSON plan under `technical` asks nobody about its reads and drafts; the send, which
    cannot be undone, waits for a person (no auto-send) and, approved, the run ends in success."""
    plan = json.loads((EXAMPLES / "renewal_pipeline.json").read_text())
    started = inbox.api.post("/api/runs", json={"plan": plan, "profile": "technical"})
    assert started.status_code == 201
    thread = started.json()["thread"]
    waiting = inbox.wait(thread, "waiting")["waiting"]
    assert [(a["tool"], a["irreversible"]) for a in waiting] == [("email.send", True)]
    assert demo_outbox(inbox.outbox) == []
    approve = {"decision": "approve", "approver": "lee"}
    assert inbox.api.post(f"/api/runs/{thread}/decision", json=approve).status_code == 202
    run = inbox.wait(thread, "success")
    assert [s["status"] for s in run["steps"]] == ["ok"] * 4
    assert run["signals"]["success_rate"] == 1.0
    assert [mail["to"] for mail in demo_outbox(inbox.outbox)] == ["hank@globex.example"]


def test_event_stream_yields_trace_events_as_the_run_goes_on(inbox: Inbox) -> None:
    """SSE: the trace so far, the run's status, then the events of the resumed run as they
    are written, then `end`."""
    inbox.pause("demo")
    seen: list[dict[str, Any]] = []
    statuses: list[str] = []
    with inbox.api.stream("GET", "/api/runs/demo/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for name, data in _sse(response):
            if name == "trace":
                seen.append(data)
            elif name == "status":
                statuses.append(data["status"])
                if data["status"] == "waiting":
                    assert seen[-1]["type"] == "approval_requested"
                    before = len(seen)
                    approved = inbox.api.post(
                        "/api/runs/demo/decision", json={"decision": "approve", "approver": "lee"}
                    )
                    assert approved.status_code == 202
            elif name == "end":
                assert data == {"status": "success"}
                break

    assert statuses[0] == "waiting"
    assert statuses[-1] == "success"
    assert [e["seq"] for e in seen] == list(range(len(seen)))
    after = [e["type"] for e in seen[before:]]
    assert after[0] == "approval_received"
    assert after[-1] == "plan_completed"
    assert {"tool_call_start", "tool_call_complete", "step_completed"} <= set(after)


def test_event_stream_resumes_after_last_event_id(inbox: Inbox) -> None:
    """A reconnecting reader sends Last-Event-ID and gets only what it missed."""
    inbox.pause("demo")
    headers = {"Last-Event-ID": "5"}
    with inbox.api.stream("GET", "/api/runs/demo/events", headers=headers) as response:
        for name, data in _sse(response):
            if name == "status":
                break
            assert data["seq"] > 5
    assert inbox.api.get("/api/runs/nope/events").status_code == 404


def test_two_approvals_at_once_one_wins_the_other_gets_409(inbox: Inbox) -> None:
    """Concurrent decisions on one request: one 202, one 409; a late one 409; one email."""
    inbox.pause("demo")
    interrupt = inbox.interrupt_id("demo")
    gate = threading.Barrier(2)
    codes: list[int] = []

    def decide(name: str) -> None:
        body = {"decision": "approve", "approver": name, "interrupt_id": interrupt}
        gate.wait()
        codes.append(inbox.api.post("/api/runs/demo/decision", json=body).status_code)

    racers = [threading.Thread(target=decide, args=(name,)) for name in ("lee", "kim")]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    assert sorted(codes) == [202, 409]
    inbox.wait("demo", "success")
    late = inbox.api.post("/api/runs/demo/decision", json={"decision": "approve", "approver": "x"})
    assert late.status_code == 409
    assert late.json()["error"] == "NoPendingApproval"
    assert len(demo_outbox(inbox.outbox)) == 1


def test_a_run_held_elsewhere_gets_409_and_stays_resumable(inbox: Inbox) -> None:
    """While another worker holds the run's lock, a decision is refused before it changes
    anything (ResumeConflict -> 409); afterwards the same decision goes through."""
    inbox.pause("demo")
    body = {"decision": "approve", "approver": "lee", "interrupt_id": inbox.interrupt_id("demo")}
    with run_locks(open_checkpointer(str(inbox.db))).hold("demo"):
        held = inbox.api.post("/api/runs/demo/decision", json=body)
    assert held.status_code == 409
    assert held.json()["error"] == "ResumeConflict"
    assert inbox.api.get("/api/runs/demo").json()["status"] == "waiting"

    assert inbox.api.post("/api/runs/demo/decision", json=body).status_code == 202
    inbox.wait("demo", "success")
    stale = inbox.api.post("/api/runs/demo/decision", json=body)
    assert stale.status_code == 409


def stop_mid_way(db: Path, thread: str, *, kill_at: int = 9) -> None:
    """`plangate run` of the demo plan unattended (`technical`, its send exempt) in `thread`,
    killed as it stores its `kill_at`th checkpoint: at 7 it is between the draft's writes and
    the next step, at 9 the draft is done and nothing is sent yet, at 11 the email is out and the
    send never recorded."""
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_CHECKPOINT, "run", str(SALES),
         "--profile", unattended_profile(db.parent), "--db", str(db), "--thread", thread],
        cwd=db.parent,
        env={**os.environ, "KILL_AT": str(kill_at)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr


HOLDER = """
import sys
from plangate import open_checkpointer
from plangate.runs.locks import run_locks

with run_locks(open_checkpointer(sys.argv[1])).hold(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def hold_elsewhere(db: Path, thread: str) -> subprocess.Popen[str]:
    """Another process holding `thread`'s lock, as a process running it does, until its stdin
    closes or it is killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), thread],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.parametrize(("kill_at", "sent_before"), [(7, 0), (9, 0), (11, 1)])
def test_a_run_whose_process_died_is_stopped_and_resume_finishes_it_once(
    inbox: Inbox, kill_at: int, sent_before: int
) -> None:
    """A run whose process was killed between two steps (no interrupt, no result, no process
    holding it) is `stopped`, in the run view and the list, not waiting for anyone. Resume needs
    the token, answers 202 and finishes it in the server: every step once, one email, even when
    the send was cut short after the email went out. A finished run is not resumed again."""
    stop_mid_way(inbox.db, "cut", kill_at=kill_at)
    assert len(demo_outbox(inbox.outbox)) == sent_before

    run = inbox.api.get("/api/runs/cut").json()
    assert run["status"] == "stopped"
    # The step it was in, when its writes were saved, shows `stopped`; none shows `running`.
    assert {s["status"] for s in run["steps"]} <= {"ok", "stopped", "pending"}
    assert run["waiting"] == []
    assert [(r["thread"], r["status"]) for r in inbox.api.get("/api/runs").json()["runs"]] == [
        ("cut", "stopped")
    ]
    assert inbox.pending() == []
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = inbox.anon.post("/api/runs/cut/resume", headers=headers)
        assert refused.status_code == 401
    assert inbox.api.get("/api/runs/cut").json()["status"] == "stopped"

    resumed = inbox.api.post("/api/runs/cut/resume")
    assert resumed.status_code == 202, resumed.text
    assert resumed.json() == {"thread": "cut", "status": "running"}

    run = inbox.wait("cut", "success")
    assert [(s["step_id"], s["status"]) for s in run["steps"]] == [
        ("lookup", "ok"),
        ("draft", "ok"),
        ("send", "ok"),
    ]
    assert [mail["to"] for mail in demo_outbox(inbox.outbox)] == ["ana.lopez@acme.example"]
    again = inbox.api.post("/api/runs/cut/resume")
    assert again.status_code == 409
    assert again.json()["error"] == "NotStopped"
    assert again.json()["detail"] == "run 'cut' has finished"
    assert len(demo_outbox(inbox.outbox)) == 1


def test_resume_is_refused_for_a_run_another_process_holds_or_one_that_waits(
    inbox: Inbox,
) -> None:
    """While another process holds the stopped run's lock it is `running` and Resume is 409
    (ResumeConflict), changing nothing; once that process is gone it is `stopped` again and
    Resume goes through. A run waiting for a decision is not resumed (409, it stays waiting);
    an unknown thread is 404."""
    stop_mid_way(inbox.db, "cut")
    holder = hold_elsewhere(inbox.db, "cut")
    try:
        assert inbox.api.get("/api/runs/cut").json()["status"] == "running"
        held = inbox.api.post("/api/runs/cut/resume")
        assert held.status_code == 409, held.text
        assert held.json()["error"] == "ResumeConflict"
    finally:
        holder.communicate("", timeout=30)
    assert inbox.api.get("/api/runs/cut").json()["status"] == "stopped"
    assert demo_outbox(inbox.outbox) == []
    assert inbox.api.post("/api/runs/cut/resume").status_code == 202
    inbox.wait("cut", "success")
    assert len(demo_outbox(inbox.outbox)) == 1

    inbox.pause("demo")
    waiting = inbox.api.post("/api/runs/demo/resume")
    assert waiting.status_code == 409
    assert (waiting.json()["error"], waiting.json()["detail"]) == (
        "NotStopped",
        "run 'demo' is waiting for an approval, not stopped",
    )
    assert inbox.api.get("/api/runs/demo").json()["status"] == "waiting"
    assert [a["thread"] for a in inbox.pending()] == ["demo"]
    missing = inbox.api.post("/api/runs/nope/resume")
    assert (missing.status_code, missing.json()["error"]) == (404, "UnknownThread")


def test_the_event_stream_tells_when_a_run_stops_and_follows_its_resume(inbox: Inbox) -> None:
    """A run another process holds streams as `running`; when that process is SIGKILLed, which
    writes nothing, the stream says `stopped` all the same; Resume then streams the rest of the
    run and `end`."""
    stop_mid_way(inbox.db, "cut")
    holder = hold_elsewhere(inbox.db, "cut")
    statuses: list[str] = []
    types: list[str] = []
    with inbox.api.stream("GET", "/api/runs/cut/events") as response:
        # Heartbeats keep a silent stream open: end it, failing, if what is awaited never comes.
        watchdog = threading.Timer(60, response.close)
        watchdog.start()
        for name, data in _sse(response):
            if name == "trace":
                types.append(data["type"])
            elif name == "status":
                statuses.append(data["status"])
                if data["status"] == "running" and len(statuses) == 1:
                    holder.kill()
                    holder.wait(15)
                elif data["status"] == "stopped":
                    before = len(types)
                    assert inbox.api.post("/api/runs/cut/resume").status_code == 202
            elif name == "end":
                assert data == {"status": "success"}
                break
        watchdog.cancel()
    assert statuses[:2] == ["running", "stopped"]
    assert statuses[-1] == "success"
    assert types[before:][-1] == "plan_completed"
    assert "tool_call_start" in types[before:]
    assert len(demo_outbox(inbox.outbox)) == 1


def test_a_decision_on_an_approval_decided_meanwhile_is_stale(inbox: Inbox) -> None:
    """An interrupt id the run no longer waits on is refused (409), not applied elsewhere."""
    inbox.pause("demo")
    stale = inbox.api.post(
        "/api/runs/demo/decision",
        json={"decision": "approve", "approver": "lee", "interrupt_id": "0" * 32},
    )
    assert stale.status_code == 409
    assert stale.json()["error"] == "StaleDecision"
    assert inbox.api.get("/api/runs/demo").json()["status"] == "waiting"


def test_unknown_threads_are_404(inbox: Inbox) -> None:
    assert inbox.api.get("/api/runs/nope").status_code == 404
    assert inbox.api.get("/api/runs/nope/trace").status_code == 404
    missing = inbox.api.post("/api/runs/nope/decision", json={"decision": "approve"})
    assert missing.status_code == 404
    assert missing.json()["error"] == "UnknownThread"


# `import ... from "<specifier>"` or `import "<specifier>"`, one to a line as the page writes them.
IMPORT = re.compile(r'^import\s(?:[^"]*\sfrom\s)?"([^"]+)";$', re.MULTILINE)


def page_modules(client: httpx.Client) -> list[str]:
    """The page's script, `/static/app.js`, and every module it imports, directly or not, as a
    browser finds them; each is checked to be served (without the token) as JavaScript, which
    a browser requires of a module script, and to import only modules beside it."""
    found = ["/static/app.js"]
    for path in found:
        served = client.get(path)
        assert served.status_code == 200, path
        assert served.headers["content-type"].startswith("text/javascript"), path
        assert "import(" not in served.text, path  # no module loaded other than by `import`
        for specifier in IMPORT.findall(served.text):
            assert re.fullmatch(r"\./[a-z]+\.js", specifier), (path, specifier)
            if f"/static/{specifier[2:]}" not in found:
                found.append(f"/static/{specifier[2:]}")
    return found


def test_the_page_is_served_with_its_assets_and_a_strict_policy(inbox: Inbox) -> None:
    """One page, its script and style, no other origin allowed; no token needed for them."""
    page = inbox.anon.get("/")
    assert page.status_code == 200
    assert "<title>plangate · approvals</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<script type="module" src="/static/app.js"></script>' in page.text
    assert inbox.anon.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert inbox.anon.get("/static/secrets.txt").status_code == 404
    assert inbox.api.get("/api/info").json()["profiles"] == ["enterprise", "smb", "technical"]


def test_the_page_script_is_every_module_the_package_ships(inbox: Inbox) -> None:
    """The modules app.js leads to are the package's scripts, no fewer (one missing from the
    server's list would stop the page) and no more (one no page loads is dead)."""
    shipped = resources.files("plangate.server").joinpath("static").iterdir()
    scripts = sorted(f"/static/{file.name}" for file in shipped if file.name.endswith(".js"))
    assert sorted(page_modules(inbox.anon)) == scripts


def test_plangate_serve_prints_a_token_that_works(tmp_path: Path) -> None:
    """`plangate serve` without --token or PLANGATE_TOKEN makes a token and prints it with the
    page's URL; that token is accepted for reads and writes, none other is; other host names
    are refused."""
    served = start_serve(tmp_path, "--db", "runs.db")
    try:
        port, token = served.port, served.token
        lines = served.lines()
        assert lines[0].startswith(
            f"plangate inbox on http://127.0.0.1:{port}/ (project built-in demo, database runs.db)"
        )
        assert lines[1] == f"Token: {token}"
        assert len(token) >= 24
        assert lines[2].strip() == f"Open: http://127.0.0.1:{port}/#token={token}"
        url = f"{served.url}/api/runs"
        refused = httpx.post(url, json={"plan": "x"}, timeout=5)
        assert refused.status_code == 401
        assert httpx.get(url, timeout=5).status_code == 401
        listed = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert (listed.status_code, listed.json()) == (200, {"runs": []})
        bad_plan = httpx.post(
            url, json={"plan": "x"}, headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert bad_plan.status_code == 422  # past the gate: the plan itself is refused
        rebound = httpx.get(url, headers={"Host": f"evil.example:{port}"}, timeout=5)
        assert rebound.status_code == 400  # on loopback, only loopback names are served
    finally:
        served.stop()


def test_start_serve_tries_another_port_when_its_port_is_taken(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race that made the test above fail once, made certain: the port found free is taken
    by another inbox (with another token) before `plangate serve` binds it. That one answers
    401 to this server's token until this server exits, saying the address is in use; then the
    helper starts it again on another port, where it answers."""
    taken = inbox.api.base_url.port
    assert taken is not None
    found = iter([taken])

    def free_port_taken_first() -> int:
        return next(found, None) or free_port()

    monkeypatch.setattr(sys.modules[__name__], "start_serve_port", free_port_taken_first)
    served = start_serve(tmp_path, "--db", "other.db", token="another-token")
    try:
        assert served.port != taken
        assert "address already in use" in (tmp_path / f"serve-{taken}.log").read_text().lower()
        auth = {"Authorization": "Bearer another-token"}
        assert httpx.get(f"{served.url}/api/runs", headers=auth, timeout=5).status_code == 200
    finally:
        served.stop()


def test_listen_binds_a_free_port_first_and_serve_serves_on_it(tmp_path: Path) -> None:
    """`listen(host, 0)` binds a port the system picks, known before anything is served, and
    `serve` serves the inbox there; a port already listened on is a one-line error."""
    script = (
        "import sys\n"
        "from plangate.server import create_app, listen, serve\n"
        "sock = listen('127.0.0.1', 0)\n"
        "print(sock.getsockname()[1], flush=True)\n"
        "serve(create_app('runs.db', token=sys.argv[1]), sock)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, TOKEN], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        url = f"http://127.0.0.1:{port}/api/runs"
        deadline = time.monotonic() + 20
        while True:
            try:
                listed = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
                break
            except httpx.TransportError:  # bound and listening, but not yet accepting
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert (listed.status_code, listed.json()) == (200, {"runs": []})
        with pytest.raises(PlangateUsageError) as taken:
            listen("127.0.0.1", port)
        assert str(taken.value).startswith(f"cannot listen on 127.0.0.1:{port}: ")
        assert "or 0 for one the system picks" in str(taken.value)
    finally:
        process.terminate()
        process.wait(15)


def test_plangate_serve_closes_an_approval_that_expires_while_it_serves(tmp_path: Path) -> None:
    """A request made two seconds before it expires, in a run `plangate run` paused, is closed
    by the inbox in the background, though it looks for new requests only once an hour; the
    run goes on as its profile says, and the server stops cleanly."""
    short = tmp_path / "short.yaml"
    short.write_text("name: short\nrequire_approval: [execute]\napproval_timeout_seconds: 2\n")
    paused = subprocess.run(
        [sys.executable, "-m", "plangate", "run", str(SALES), "--db", "runs.db",
         "--profile", str(short), "--thread", "late"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert paused.returncode == 3, paused.stderr

    served = start_serve(tmp_path, "--db", "runs.db", "--expire-every", "1h")
    try:
        auth = {"Authorization": f"Bearer {served.token}"}
        deadline = time.monotonic() + 60
        while True:
            run = httpx.get(f"{served.url}/api/runs/late", headers=auth, timeout=5).json()
            if run["status"] in FINISHED or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        pending = httpx.get(f"{served.url}/api/pending", headers=auth, timeout=5).json()
    finally:
        served.stop()

    assert run["status"] == "partial", run
    assert [s["status"] for s in run["steps"]] == ["ok", "ok", "expired"]
    assert pending["approvals"] == []
    # Ended by its SIGTERM once shut down (uvicorn raises it again), not killed after 15 s.
    assert served.process.returncode in (0, -signal.SIGTERM)
    output = served.log.read_text()
    assert "Traceback" not in output
    assert "closed as they expire (the database looked at every 1h at least;" in output
    assert "plangate run" not in output  # nothing but the server's own lines


def test_serve_refuses_a_sweep_interval_with_no_sweep(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "plangate", "serve", "--no-expire", "--expire-every", "5m"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("plangate: error: --expire-every and --no-expire exclude each other")


def test_create_app_refuses_a_sweep_interval_that_is_not_positive(tmp_path: Path) -> None:
    with pytest.raises(PlangateUsageError) as refused:
        create_app(str(tmp_path / "runs.db"), token=TOKEN, expire_every=0)
    assert "expire_every=0: give a positive number of seconds" in str(refused.value)
