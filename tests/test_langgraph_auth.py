"""plangate's auth handler on LangGraph's own server (`langgraph dev` with `"auth"` in
`langgraph.json`), driven through the official `langgraph_sdk` client with `Authorization:
Bearer` tokens: who decides a served run is the person the token belongs to, never a name a
client typed.

The project is what `plangate init --demo --identity` writes (its `identity:` reads the signing
key from `PLANGATE_SIGNING_KEY`, its `langgraph.json` names the handler), under a profile of its
own: the send (high risk) needs two approvers from `group:payments-leads`, a verified identity
from low risk up, and the person who started a run may not approve it. Its people are plangate
tokens in the project's database: `sam` starts runs, `ana` and `bo` lead payments, `eve` does
not.

Each refused decision is seen as the server shows it: its run errors with plangate's one-line
`InvalidDecision`, and the same interrupt still waits, with nothing recorded.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _support import free_port, plangate
from langgraph_sdk import Auth, get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from test_langgraph_server import (
    GRAPH_ID,
    STARTUP_SECONDS,
    _langgraph_dev,
    _pending,
    _server_env,
    _stop,
    _wait_until_ok,
    pytestmark,  # noqa: F401  (the same skip: langgraph dev needs Python 3.11+)
)

from plangate.identity import DecisionSigner, Identity
from plangate.identity._gate import asserted_user
from plangate.identity.tokens import TokenStore
from plangate.profiles import load_profile
from plangate.project import Project

SIGNING_KEY = "lgauth-test-signing-key-0123456789abcdef"
LEADS = "payments-leads"

# The team's profile: smb's, with who may decide the send (high risk) and how many.
TEAM_PROFILE = load_profile("smb").model_copy(
    update={
        "name": "team",
        "approvals_required": {"high": 2},
        "approvers": {"high": [f"group:{LEADS}"]},
        "identity_required": "low",
        "self_approval": "forbidden",
    }
)


@dataclass(frozen=True)
class AuthServer:
    url: str
    folder: Path
    log: Path
    tokens: dict[str, str]

    def client(self, who: str | None = None, **headers: str) -> SyncLangGraphClient:
        """A client sending `who`'s token (none for `None`), and `headers`."""
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return get_sync_client(url=self.url, api_key=None, headers=headers)


def _team_project(folder: Path) -> None:
    """`plangate init --demo --identity`, then the team's profile as the project's default."""
    made = plangate(folder.parent, "init", "--demo", "--identity", str(folder))
    assert made.returncode == 0, made.stdout + made.stderr
    (folder / "profiles").mkdir()
    (folder / "profiles" / "team.yaml").write_text(
        yaml.safe_dump(TEAM_PROFILE.model_dump(mode="json")), encoding="utf-8"
    )
    spec = yaml.safe_load((folder / "plangate.yaml").read_text(encoding="utf-8"))
    spec.update(profile="team", profiles="profiles")
    (folder / "plangate.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    base = tmp_path_factory.mktemp("lgauth")
    folder, log = base / "team", base / "server.log"
    _team_project(folder)
    env = {"PLANGATE_SIGNING_KEY": SIGNING_KEY}
    project = Project.load(folder, environ=env)
    with TokenStore(project.db) as store:
        tokens = {
            "sam": store.create("sam@corp.example", groups=[LEADS])[0],
            "ana": store.create("ana@corp.example", groups=[LEADS])[0],
            "bo": store.create("bo@corp.example", groups=[LEADS, "ops"])[0],
            "eve": store.create("eve@corp.example", groups=["ops"])[0],
            "rex": store.create("rex@corp.example", groups=[LEADS])[0],
        }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _langgraph_dev(port, folder / "langgraph.json"),
            cwd=folder,
            env=_server_env(None, env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ok(url, proc, log)
        yield AuthServer(url=url, folder=folder, log=log, tokens=tokens)
    finally:
        _stop(proc)


@pytest.fixture
def plan(server: AuthServer) -> dict[str, Any]:
    """The demo: look Acme up, draft an email, send it (the send waits)."""
    loaded: dict[str, Any] = yaml.safe_load(
        (server.folder / "sales_followup.yaml").read_text(encoding="utf-8")
    )
    return loaded


def _started(server: AuthServer, plan: dict[str, Any], who: str = "sam") -> tuple[str, str]:
    """A run `who` started, waiting at the send: its thread and the interrupt's id."""
    client = server.client(who)
    thread_id = str(client.threads.create()["thread_id"])
    client.runs.wait(thread_id, GRAPH_ID, input={"plan": plan})
    (pending,) = _pending(client, thread_id)
    assert pending["value"]["tool"] == "email.send"
    return thread_id, str(pending["id"])


def _refused(
    server: AuthServer, who: str, thread_id: str, resume: Any, **kwargs: Any
) -> dict[str, Any]:
    """The error of the run that `who`'s resume with `resume` started (it must fail)."""
    failed = server.client(who).runs.wait(
        thread_id, GRAPH_ID, command={"resume": resume}, raise_error=False, **kwargs
    )
    assert isinstance(failed, dict)
    assert "__error__" in failed, failed
    error: dict[str, Any] = failed["__error__"]
    return error


def _still_waiting(server: AuthServer, thread_id: str, interrupt_id: str) -> dict[str, Any]:
    """The request still waiting at the send, as the interrupt `interrupt_id`: no result yet."""
    client = server.client("sam")
    (pending,) = _pending(client, thread_id)
    assert pending["id"] == interrupt_id
    assert "result" not in client.threads.get_state(thread_id)["values"]
    value: dict[str, Any] = pending["value"]
    return value


def _result(server: AuthServer, thread_id: str) -> dict[str, Any]:
    result: dict[str, Any] = server.client("sam").threads.get_state(thread_id)["values"]["result"]
    return result


def _send_record(result: dict[str, Any]) -> dict[str, Any]:
    (record,) = [a for a in result["approvals"] if a["tool"] == "email.send"]
    return record


def _who(identity: dict[str, Any]) -> tuple[str, str]:
    return identity["subject"], identity["verified_by"]


def _status(call: Any) -> int:
    with pytest.raises(httpx.HTTPStatusError) as refused:
        call()
    return refused.value.response.status_code


# --- who gets in ------------------------------------------------------------------------------


def test_without_a_live_token_the_server_answers_401_and_nothing_is_decided(
    server: AuthServer, plan: dict[str, Any]
) -> None:
    """No token, another scheme, a token nobody made, a revoked one and an expired one are each
    answered 401, to a read and to a resume alike, and the run still waits with nothing
    decided. The revoked and the expired tokens got in before, so the 401 is their end's."""
    thread_id, interrupt_id = _started(server, plan)
    approve = {"resume": {"decision": "approve"}}
    with TokenStore(Project.load(server.folder, environ={}).db) as store:
        brief, _ = store.create("brief@corp.example", groups=[LEADS], expires=timedelta(seconds=2))
        lived = time.monotonic() + 2
        brief_client = server.client(Authorization=f"Bearer {brief}")
        assert brief_client.threads.get(thread_id)["status"] == "interrupted"
        assert server.client("rex").threads.get(thread_id)["status"] == "interrupted"
        assert store.revoke("rex@corp.example") == 1
    time.sleep(max(0.0, lived - time.monotonic()) + 1)

    clients = {
        "no token": server.client(),
        "another scheme": server.client(Authorization=f"Basic {server.tokens['ana']}"),
        "made up": server.client(Authorization="Bearer pgt_0123456789ab_" + "x" * 43),
        "garbage": server.client(Authorization="Bearer hello"),
        "revoked": server.client("rex"),
        "expired": brief_client,
        # `langgraph dev` lets LangGraph Studio's requests in without a token unless the
        # handler's config says `disable_studio_auth` (as `plangate init --identity` writes).
        "studio's scheme": server.client(**{"x-auth-scheme": "langsmith"}),
    }
    for why, client in clients.items():
        assert _status(lambda c=client: c.threads.get(thread_id)) == 401, why
        assert _status(lambda c=client: c.runs.wait(thread_id, GRAPH_ID, command=approve)) == 401, (
            why
        )

    request = _still_waiting(server, thread_id, interrupt_id)
    assert request.get("approvals_so_far", []) == []


def test_the_401_says_in_one_line_what_to_send(server: AuthServer) -> None:
    response = httpx.get(f"{server.url}/threads/search", timeout=10)
    assert response.status_code == 401
    assert "Authorization: Bearer TOKEN" in response.text
    bad = httpx.post(
        f"{server.url}/threads/search", headers={"Authorization": "Bearer hello"}, timeout=10
    )
    assert bad.status_code == 401
    assert "not a live plangate token" in bad.text


# --- the handler, in-process ------------------------------------------------------------------


@pytest.fixture
def door_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project with `identity:`, the one the handler's module finds when first imported."""
    _team_project(tmp_path / "team")
    monkeypatch.setenv("PLANGATE_PROJECT", str(tmp_path / "team"))
    monkeypatch.setenv("PLANGATE_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.delenv("PLANGATE_PROFILE", raising=False)
    importlib.import_module("plangate.integrations.langgraph_auth")
    return Project.load(tmp_path / "team")


async def test_a_plangate_token_is_its_person_vouched_for_with_the_project_key(
    door_project: Project,
) -> None:
    """The user the handler returns is the token's person, `verified_by: langgraph_auth`, their
    groups as permissions, with an assertion the graph takes under this project's key only."""
    from plangate.integrations.langgraph_auth import LangGraphDoor

    door = LangGraphDoor.of(door_project)
    token, _ = door.tokens.create("ana@corp.example", groups=[LEADS])

    user = await door.authenticate(f"Bearer {token}")

    assert (user["identity"], user["display_name"]) == ("ana@corp.example", "ana@corp.example")
    assert user["permissions"] == [f"group:{LEADS}"]
    vouched = user["plangate"]["identity"]
    assert _who(vouched) == ("ana@corp.example", "langgraph_auth")
    config = {"configurable": {"langgraph_auth_user": user}}
    assert asserted_user(config, door.signer) == vouched
    assert asserted_user(config, DecisionSigner(b"another-project-key-0123456789")) is None
    with pytest.raises(Auth.exceptions.HTTPException) as refused:
        await door.authenticate(f"Bearer {token[:-1]}x")
    assert refused.value.status_code == 401


async def test_a_token_that_is_not_plangate_s_goes_to_the_openid_provider_off_the_event_loop(
    door_project: Project,
) -> None:
    """A plangate token is looked up first; any other goes to the provider's check, in a worker
    thread; what the provider knows nobody by is 401."""
    from plangate.integrations.langgraph_auth import LangGraphDoor

    asked: list[tuple[str, bool]] = []

    def provider(token: str) -> Identity | None:
        asked.append((token, threading.current_thread() is threading.main_thread()))
        if token != "oidc-access-token":
            return None
        return {
            "subject": "00u1ana",
            "name": "Ana Lopez",
            "email": "ana@corp.example",
            "groups": [LEADS],
            "verified_by": "oidc",
        }

    plain = LangGraphDoor.of(door_project)
    door = LangGraphDoor(plain.signer, plain.tokens, provider)
    token, _ = door.tokens.create("bo@corp.example")

    assert (await door.authenticate(f"Bearer {token}"))["identity"] == "bo@corp.example"
    user = await door.authenticate("bearer oidc-access-token")
    with pytest.raises(Auth.exceptions.HTTPException) as refused:
        await door.authenticate("Bearer someone-else")

    assert (user["identity"], user["display_name"]) == ("00u1ana", "Ana Lopez")
    assert _who(user["plangate"]["identity"]) == ("00u1ana", "langgraph_auth")
    assert refused.value.status_code == 401
    assert asked == [("oidc-access-token", False), ("someone-else", False)]


def test_a_project_naming_a_provider_checks_its_access_tokens_when_plangate_can(
    door_project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    """With `identity.oidc`, the door asks `plangate.identity.oidc` about access tokens; a
    plangate without that module lets only its own tokens in, and says so in the log."""
    from plangate.integrations.langgraph_auth import LangGraphDoor

    file = door_project.file
    assert file is not None
    spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    spec["identity"]["oidc"] = {"issuer": "https://id.example", "client_id": "plangate"}
    file.write_text(yaml.safe_dump(spec), encoding="utf-8")

    door = LangGraphDoor.of(Project.load(file))

    if importlib.util.find_spec("plangate.identity.oidc") is None:
        assert door.oidc is None
        assert "only plangate's tokens get in" in caplog.text
    else:
        assert door.oidc is not None
        assert door.oidc.__name__ == "verify_access_token"


# --- who decides ------------------------------------------------------------------------------


def test_the_group_rule_and_four_eyes_hold_for_the_authenticated_people(
    server: AuthServer, plan: dict[str, Any]
) -> None:
    """`eve` (not in the group) is refused by the approvers rule; `ana` approves and the request
    waits for a second person; `ana` again does not count twice; `bo` completes it. The record
    says who, as LangGraph's auth knew them, with the graph's proofs."""
    thread_id, interrupt_id = _started(server, plan)

    error = _refused(server, "eve", thread_id, {"decision": "approve"})
    assert error["error"] == "InvalidDecision"
    assert "'eve@corp.example' may not decide this request" in error["message"]
    assert f"approvers.high names group:{LEADS}" in error["message"]
    assert _still_waiting(server, thread_id, interrupt_id).get("approvals_so_far", []) == []

    server.client("ana").runs.wait(thread_id, GRAPH_ID, command={"resume": {"decision": "approve"}})
    (pending,) = _pending(server.client("sam"), thread_id)
    assert "result" not in server.client("sam").threads.get_state(thread_id)["values"]
    so_far = pending["value"]["approvals_so_far"]
    assert [_who(a["identity"]) for a in so_far] == [("ana@corp.example", "langgraph_auth")]

    error = _refused(server, "ana", thread_id, {"decision": "approve"})
    assert error["error"] == "InvalidDecision"
    assert "'ana@corp.example' has approved this request already" in error["message"]
    (pending,) = _pending(server.client("sam"), thread_id)
    assert len(pending["value"]["approvals_so_far"]) == 1

    server.client("bo").runs.wait(thread_id, GRAPH_ID, command={"resume": {"decision": "approve"}})

    result = _result(server, thread_id)
    assert result["status"] == "success"
    record = _send_record(result)
    assert record["decision"] == "approve"
    assert [_who(a["identity"]) for a in record["approvals"]] == [
        ("ana@corp.example", "langgraph_auth"),
        ("bo@corp.example", "langgraph_auth"),
    ]
    assert [a["approver"] for a in record["approvals"]] == ["ana@corp.example", "bo@corp.example"]
    assert _who(record["identity"]) == ("bo@corp.example", "langgraph_auth")
    assert record["identity"]["groups"] == sorted([LEADS, "ops"])
    assert [_who(p["identity"]) for p in record["proofs"]] == [
        ("ana@corp.example", "langgraph_auth"),
        ("bo@corp.example", "langgraph_auth"),
    ]
    assert all(p["proof"].startswith("v1:") for p in record["proofs"])


def test_a_token_pasted_as_the_api_key_is_its_person_as_in_agent_chat_ui(
    server: AuthServer, plan: dict[str, Any]
) -> None:
    """Agent Chat UI and the SDKs' `api_key=` send a key as `X-Api-Key`: a plangate token
    there is its person, a LangChain HITL decision theirs; one nobody knows is a 401."""
    thread_id, _ = _started(server, plan)
    hitl = {"decisions": [{"type": "approve"}]}
    for who in ("ana", "bo"):
        keyed = get_sync_client(url=server.url, api_key=server.tokens[who])
        keyed.runs.wait(thread_id, GRAPH_ID, command={"resume": hitl})

    record = _send_record(_result(server, thread_id))
    assert [_who(a["identity"]) for a in record["approvals"]] == [
        ("ana@corp.example", "langgraph_auth"),
        ("bo@corp.example", "langgraph_auth"),
    ]
    stranger = get_sync_client(url=server.url, api_key="pgt_0123456789ab_" + "y" * 43)
    assert _status(lambda: stranger.threads.get(thread_id)) == 401


def test_an_approver_named_beside_the_token_is_refused_and_the_token_user_is_recorded(
    server: AuthServer, plan: dict[str, Any]
) -> None:
    """`ana` naming `bo` (in the decision, or in `configurable.approver` or `metadata.approver`,
    for a plangate decision as for a HITL one) is refused each time, and nothing counts. `bo`
    then names himself as he writes it. The record has the token's people, never a name the
    config gave."""
    thread_id, interrupt_id = _started(server, plan)
    hitl_approve = {"decisions": [{"type": "approve"}]}
    forged = {
        "in the decision": ({"decision": "approve", "approver": "bo@corp.example"}, {}),
        "configurable": (hitl_approve, {"config": {"configurable": {"approver": "bo"}}}),
        "metadata": (hitl_approve, {"metadata": {"approver": "bo@corp.example"}}),
        "configurable, plangate's form": (
            {"decision": "approve"},
            {"config": {"configurable": {"approver": "bo"}}},
        ),
    }
    for why, (resume, kwargs) in forged.items():
        error = _refused(server, "ana", thread_id, resume, **kwargs)
        assert error["error"] == "InvalidDecision", why
        assert "a decision cannot name 'bo" in error["message"], why
        assert "you are 'ana@corp.example' (langgraph_auth)" in error["message"], why
        assert _still_waiting(server, thread_id, interrupt_id).get("approvals_so_far", []) == [], (
            why
        )

    server.client("ana").runs.wait(thread_id, GRAPH_ID, command={"resume": {"decision": "approve"}})
    (pending,) = _pending(server.client("sam"), thread_id)
    assert [a["approver"] for a in pending["value"]["approvals_so_far"]] == ["ana@corp.example"]
    server.client("bo").runs.wait(
        thread_id,
        GRAPH_ID,
        command={"resume": hitl_approve},
        config={"configurable": {"approver": "BO@corp.example"}},
    )

    record = _send_record(_result(server, thread_id))
    assert [(a["approver"], _who(a["identity"])) for a in record["approvals"]] == [
        ("ana@corp.example", ("ana@corp.example", "langgraph_auth")),
        ("bo@corp.example", ("bo@corp.example", "langgraph_auth")),
    ]


def test_a_client_cannot_hand_the_graph_a_user_of_its_own(
    server: AuthServer, plan: dict[str, Any]
) -> None:
    """`eve` sends, in `configurable` and in `context`, a user for `ana` with a good assertion
    (one made with the project's key, as if copied from a run of ana's): the server puts its own
    user there, so the decision is still eve's, and the approvers rule refuses it."""
    thread_id, interrupt_id = _started(server, plan)
    identity: Identity = {
        "subject": "ana@corp.example",
        "name": "ana@corp.example",
        "email": "ana@corp.example",
        "groups": [LEADS],
        "verified_by": "langgraph_auth",
    }
    assertion = DecisionSigner(SIGNING_KEY.encode()).assert_identity(identity)
    ana = {
        "identity": "ana@corp.example",
        "plangate": {"identity": identity, "assertion": assertion},
    }
    carried: dict[str, dict[str, Any]] = {
        "config": {"config": {"configurable": {"langgraph_auth_user": ana}}},
        "context": {"context": {"langgraph_auth_user": ana}},
    }
    for where, kwargs in carried.items():
        error = _refused(server, "eve", thread_id, {"decision": "approve"}, **kwargs)
        assert error["error"] == "InvalidDecision", where
        assert "'eve@corp.example' may not decide this request" in error["message"], where
    assert _still_waiting(server, thread_id, interrupt_id).get("approvals_so_far", []) == []


def test_the_runs_starter_is_the_token_user_who_may_reject_but_not_approve(
    server: AuthServer, plan: dict[str, Any]
) -> None:
    """`sam` started the run (his token, whatever the metadata says), so his approval is refused
    under `self_approval: forbidden`, and his reject ends the send."""
    client = server.client("sam")
    thread_id = str(client.threads.create()["thread_id"])
    client.runs.wait(
        thread_id, GRAPH_ID, input={"plan": plan}, metadata={"plangate_started_by": "bo"}
    )
    (pending,) = _pending(client, thread_id)
    assert _who(pending["value"]["started_by"]) == ("sam@corp.example", "langgraph_auth")

    error = _refused(server, "sam", thread_id, {"decision": "approve"})
    assert error["error"] == "InvalidDecision"
    assert "'sam@corp.example' started this run" in error["message"]
    assert "self_approval: forbidden" in error["message"]
    assert _still_waiting(server, thread_id, pending["id"]).get("approvals_so_far", []) == []

    client.runs.wait(
        thread_id, GRAPH_ID, command={"resume": {"decision": "reject", "reason": "not now"}}
    )
    result = _result(server, thread_id)
    assert result["status"] == "partial"
    assert [s["status"] for s in result["steps"]] == ["ok", "ok", "rejected"]
    record = _send_record(result)
    assert (record["decision"], record["reason"]) == ("reject", "not now")
    assert _who(record["identity"]) == ("sam@corp.example", "langgraph_auth")
    assert record["approver"] == "sam@corp.example"


def test_the_handler_says_when_studio_gets_in_without_a_token(door_project: Project) -> None:
    from plangate.integrations.langgraph_auth import studio_gets_in

    closed = {"path": "plangate.integrations.langgraph_auth:auth", "disable_studio_auth": True}
    assert not studio_gets_in({"LANGGRAPH_AUTH": json.dumps(closed)})
    assert studio_gets_in({"LANGGRAPH_AUTH": json.dumps({**closed, "disable_studio_auth": False})})
    assert studio_gets_in({"LANGGRAPH_AUTH": json.dumps({"path": closed["path"]})})
    assert studio_gets_in({})


# --- setting it up ----------------------------------------------------------------------------


def test_init_with_identity_writes_the_handler_into_langgraph_json(tmp_path: Path) -> None:
    """Without --identity, langgraph.json has no `auth` (the handler needs `identity:`); with
    it, plangate.yaml reads its key from PLANGATE_SIGNING_KEY and langgraph.json names the
    handler, Studio's tokenless requests shut out."""
    plain = plangate(tmp_path, "init", "plain")
    assert plain.returncode == 0, plain.stderr
    assert "auth" not in json.loads((tmp_path / "plain" / "langgraph.json").read_text())
    assert Project.load(tmp_path / "plain").spec.identity is None

    made = plangate(tmp_path, "init", "--identity", "team")
    assert made.returncode == 0, made.stderr
    assert "PLANGATE_SIGNING_KEY" in made.stdout
    config = json.loads((tmp_path / "team" / "langgraph.json").read_text())
    assert config["auth"] == {
        "path": "plangate.integrations.langgraph_auth:auth",
        "disable_studio_auth": True,
    }
    project = Project.load(tmp_path / "team", environ={"PLANGATE_SIGNING_KEY": SIGNING_KEY})
    assert project.spec.identity is not None
    assert project.spec.identity.signing_key == "${PLANGATE_SIGNING_KEY}"
    assert project.signer is not None


def test_the_handler_stops_the_server_in_a_project_without_identity(tmp_path: Path) -> None:
    """A langgraph.json naming the handler, in a project without `identity:`: the server stops
    at startup with one line naming the file and `identity`."""
    made = plangate(tmp_path, "init", "--demo", "team")
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "team"
    config = json.loads((folder / "langgraph.json").read_text())
    config["auth"] = {"path": "plangate.integrations.langgraph_auth:auth"}
    (folder / "langgraph.json").write_text(json.dumps(config))

    proc = subprocess.run(
        _langgraph_dev(free_port(), folder / "langgraph.json"),
        cwd=folder,
        env=_server_env(None),
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
        check=False,
    )

    assert proc.returncode != 0
    assert (
        f"ProjectError: {folder / 'plangate.yaml'}: identity: LangGraph's server auth "
        "(plangate.integrations.langgraph_auth) needs identity: in plangate.yaml"
    ) in proc.stdout + proc.stderr
