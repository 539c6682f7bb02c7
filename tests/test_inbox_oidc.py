"""The inbox where people sign in: `plangate serve` as a real process, over a project whose file
has `identity:` with `oidc:` pointing at a real OpenID provider that nobody here wrote (npm's
`oidc-provider`, a certified implementation, run by `peers/oidc/provider.mjs` on loopback), and
Debian's chromium driven by Playwright signing in through the provider's own login pages.

Its accounts: Ana and Ben in group `payments-leads`, Cy in `support`. The project's profile
wants two approvals from that group at high risk (four eyes), from verified people.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
import yaml
from _support import copy_demo, free_port, npm_package, plangate
from playwright.sync_api import Browser, BrowserContext, Page, expect

from plangate import load_profile

PROVIDER_SCRIPT = Path(__file__).parent / "peers" / "oidc" / "provider.mjs"
OIDC_PROVIDER, OIDC_PROVIDER_VERSION = "oidc-provider", "9.13.3"
CLIENT_ID, CLIENT_SECRET = "plangate-inbox", "inbox-secret-7c1d9e0b2a"
SIGNING_KEY = "test-signing-key-0123456789abcdef"
THREAD = "acme-four-eyes"
# The provider's accounts: their logins are their subjects.
ANA, BEN, CY = "u-ana-7f3e", "u-ben-41c2", "u-cy-9d05"


# -- the OpenID provider --------------------------------------------------------------------


@pytest.fixture(scope="session")
def oidc_provider_package(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A folder with npm's oidc-provider installed, once per session, and the provider script
    beside it."""
    folder = npm_package(
        request, tmp_path_factory, OIDC_PROVIDER, OIDC_PROVIDER_VERSION, node="Node.js 20.19+"
    )
    # Beside its node_modules: an ES module finds its imports from where it lies.
    shutil.copyfile(PROVIDER_SCRIPT, folder / "provider.mjs")
    return folder


@pytest.fixture(scope="module")
def provider(
    oidc_provider_package: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The provider running as a process of its own on a loopback port; yields its issuer once
    its discovery document answers, and kills it after."""
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    for _ in range(5):
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["node", "provider.mjs", str(port), CLIENT_ID, CLIENT_SECRET],
                cwd=oidc_provider_package,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                found = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
                if found.is_success and found.json()["issuer"] == issuer:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            process.kill()
            process.wait()
            if "EADDRINUSE" in log.read_text():
                continue
            pytest.fail(f"the OpenID provider did not start: {log.read_text()}")
        try:
            yield issuer
        finally:
            process.kill()
            process.wait()
        return
    pytest.fail("the OpenID provider found no free port in 5 tries")


def through_provider(
    client: httpx.Client, start: str, login: str, *, back_to: str
) -> httpx.Response:
    """Follow `start` (with `client`'s cookies: a browser) through the provider's own login
    and consent pages as `login`, until the provider sends it back to a URL beginning with
    `back_to`; that redirect."""
    response = client.get(start)
    for _ in range(20):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(back_to):
                return response
            response = client.get(location)
            continue
        assert response.status_code == 200, (response.status_code, response.text[:2000])
        action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
        prompt = re.search(r'name="prompt" value="(\w+)"', response.text)
        assert action, response.text[:2000]
        assert prompt, response.text[:2000]
        form = {"prompt": prompt[1]}
        if prompt[1] == "login":
            form |= {"login": login, "password": "any password"}
        response = client.post(urljoin(str(response.url), html.unescape(action[1])), data=form)
    pytest.fail("the provider never sent the browser back")


# -- the inbox ------------------------------------------------------------------------------


@dataclass
class Inbox:
    url: str
    folder: Path
    process: subprocess.Popen[bytes]

    def run(self, client: httpx.Client | None = None, **headers: str) -> dict[str, Any]:
        getter = client.get if client is not None else httpx.get
        found: dict[str, Any] = getter(f"{self.url}/api/runs/{THREAD}", headers=headers).json()
        return found

    def outbox_sends(self) -> int:
        import sqlite3

        path = self.folder / "plangate-outbox.db"
        if not path.exists():
            return 0
        with sqlite3.connect(path) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            return sum(db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables)


def write_project(folder: Path, provider: str, **oidc: Any) -> None:
    """The demo project, with `identity:` (the provider; `oidc` changes its settings, and
    `issuer=None` takes it away) and a four-eyes profile of its own."""
    copy_demo(folder)
    (folder / "profiles").mkdir()
    four_eyes = {
        **load_profile("smb").model_dump(mode="json"),
        "name": "four-eyes",
        "approvals_required": {"high": 2},
        "identity_required": "high",
        "approvers": {"high": ["group:payments-leads"]},
    }
    (folder / "profiles" / "four-eyes.yaml").write_text(yaml.safe_dump(four_eyes))
    spec = yaml.safe_load((folder / "plangate.yaml").read_text())
    spec |= {
        "profile": "four-eyes",
        "profiles": "profiles",
        "identity": {
            "signing_key": "${PLANGATE_TEST_SIGNING_KEY}",
            "oidc": {
                "issuer": provider,
                "client_id": CLIENT_ID,
                "client_secret": "${PLANGATE_TEST_OIDC_SECRET}",
                "scopes": ["openid", "profile", "email", "groups"],
                "session_hours": 1,
                **oidc,
            },
        },
    }
    if oidc.get("issuer") is None and "issuer" in oidc:  # people come with tokens only
        del spec["identity"]["oidc"]
    (folder / "plangate.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


ENV = {"PLANGATE_TEST_SIGNING_KEY": SIGNING_KEY, "PLANGATE_TEST_OIDC_SECRET": CLIENT_SECRET}


@pytest.fixture
def inbox(provider: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Inbox]:
    """A run of the demo's follow-up paused by `plangate run` at its send (high risk: two
    approvals), then `plangate serve` on a free loopback port, as processes of their own
    (parametrized indirectly: changes to `identity.oidc`)."""
    tmp_path = tmp_path / "project"
    write_project(tmp_path, provider, **getattr(request, "param", {}))
    paused = plangate(
        tmp_path, "run", "sales_followup.yaml", "--profile", "four-eyes", "--thread", THREAD,
        env=ENV,
    )  # fmt: skip
    assert "Paused: step" in paused.stdout, (paused.stdout, paused.stderr)
    env = {**{k: v for k, v in os.environ.items() if k != "PLANGATE_TOKEN"}, **ENV}
    for _ in range(5):
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "plangate", "serve", "--port", str(port)],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                # Nobody signed in: the API refuses, and so tells it is serving.
                if httpx.get(f"{url}/api/info", timeout=2).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            process.kill()
            process.wait()
            if "address already in use" in log.read_text().lower():
                continue
            pytest.fail(f"plangate serve did not start: {log.read_text()}")
        try:
            yield Inbox(url=url, folder=tmp_path, process=process)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return
    pytest.fail("plangate serve found no free port in 5 tries")


def signed_in(inbox: Inbox, login: str) -> tuple[httpx.Client, httpx.Response]:
    """A client (a browser, as far as cookies go) signed in to the inbox as `login` through the
    provider's pages, and the inbox's answer at its callback (which sets the cookie)."""
    client = httpx.Client(base_url=inbox.url, timeout=30)
    back = through_provider(
        client, f"{inbox.url}/auth/login", login, back_to=f"{inbox.url}/auth/callback"
    )
    callback = client.get(urljoin(str(back.url), back.headers["location"]))
    assert callback.status_code == 303, callback.text
    assert callback.headers["location"] == "/"
    return client, callback


def csrf(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}


def waiting(inbox: Inbox, client: httpx.Client) -> dict[str, Any]:
    """The approval request the run waits on, as `client`'s person sees it."""
    run = client.get(f"/api/runs/{THREAD}").json()
    assert run["status"] == "waiting", run
    (request,) = [
        a for a in client.get("/api/pending").json()["approvals"] if a["thread"] == THREAD
    ]
    return dict(request)


def access_token(provider: str, login: str, **extra: str) -> str:
    """An access token of `login`'s, got from the provider by plangate's client with the code
    flow (PKCE), as a program of theirs would get one; `extra` goes to both requests (a
    `resource`, for a JWT one)."""
    return str(tokens_of(provider, login, **extra)["access_token"])


def tokens_of(provider: str, login: str, **extra: str) -> dict[str, Any]:
    """The provider's answer at its token endpoint to a sign-in of `login`'s (see
    `access_token`)."""
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import OAuth2Client

    metadata = httpx.get(f"{provider}/.well-known/openid-configuration").json()
    back_to = "http://127.0.0.1:9/auth/callback"  # never called: the code is read off the URL
    verifier = generate_token(48)
    with OAuth2Client(
        CLIENT_ID, CLIENT_SECRET, scope="openid profile email groups", redirect_uri=back_to,
        code_challenge_method="S256",
    ) as oauth, httpx.Client(timeout=30) as browser:  # fmt: skip
        url, _state = oauth.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, **extra
        )
        back = through_provider(browser, url, login, back_to=back_to)
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        token = oauth.fetch_token(
            metadata["token_endpoint"], code=code, code_verifier=verifier, **extra
        )
    return dict(token)


# -- the tests ------------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_samesite_and_expires_and_sign_out_ends_it(
    inbox: Inbox,
) -> None:
    """Signed in through the provider, the inbox knows the person (verified by OIDC, with the
    provider's groups); its cookie is HttpOnly, SameSite=Lax and lasts `session_hours`; signing
    out needs the CSRF token, and after it the API refuses the browser."""
    (log,) = inbox.folder.glob("serve-*.log")
    assert "People sign in with http://127.0.0.1:" in log.read_text()
    assert "Token:" not in log.read_text()  # no shared token made up
    client, callback = signed_in(inbox, ANA)

    cookie = callback.headers["set-cookie"]
    assert cookie.startswith("plangate_session="), cookie
    attributes = {
        name.strip().lower(): value.strip()
        for name, _, value in (part.partition("=") for part in cookie.split(";")[1:])
    }
    assert "httponly" in attributes, cookie
    assert attributes["samesite"] == "lax", cookie
    assert attributes["max-age"] == "3600", cookie  # session_hours: 1
    me = client.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.json()["identity"] == {
        "subject": ANA,
        "name": "Ana Lopez",
        "email": "ana@example.com",
        "groups": ["payments-leads"],
        "verified_by": "oidc",
    }
    assert me.json()["via"] == "session"
    assert me.json()["csrf_token"]
    assert client.get("/api/pending").status_code == 200

    refused = client.post("/auth/logout")
    assert refused.status_code == 403, refused.text
    assert client.get("/api/me").status_code == 200  # still signed in

    copy = client.cookies["plangate_session"]  # kept from before the sign-out
    assert client.post("/auth/logout", headers=csrf(client)).status_code == 204

    after = client.get("/api/pending")
    assert after.status_code == 401, after.text
    assert after.json()["error"] == "Unauthorized"
    assert client.get("/api/me").status_code == 401
    assert httpx.get(f"{inbox.url}/api/pending").status_code == 401  # nobody at all
    kept = httpx.get(f"{inbox.url}/api/pending", cookies={"plangate_session": copy})
    assert kept.status_code == 401, kept.text  # signed out is signed out, whoever kept a copy
    assert httpx.get(f"{inbox.url}/").status_code == 200  # the page stays public


@pytest.mark.parametrize("inbox", [{"session_hours": 0.001}], indirect=True)
def test_a_sign_in_ends_after_session_hours_though_its_cookie_is_signed_again(
    inbox: Inbox,
) -> None:
    """`session_hours` (here 3.6 s): the cookie's Max-Age says so, and the server holds to it
    though the cookie was signed again since (a sign-in started again changes the session, and
    a changed session is a new cookie, its own Max-Age counting from then): the person is asked
    to sign in again once the hours are over, not before."""
    signed_at = time.monotonic()
    client, callback = signed_in(inbox, ANA)
    assert "Max-Age=4;" in callback.headers["set-cookie"], callback.headers["set-cookie"]

    answers: list[tuple[float, int]] = []
    while time.monotonic() - signed_at < 8:
        renewed = client.get("/auth/login")  # goes no further than the provider's door
        assert "plangate_session=" in renewed.headers.get("set-cookie", ""), renewed.headers
        answer = client.get("/api/me")
        answers.append((time.monotonic() - signed_at, answer.status_code))
        if answer.status_code != 200:
            break
        time.sleep(0.2)

    (ended_at, status) = answers[-1]
    assert status == 401, answers
    assert ended_at > 3.0, answers


def test_a_post_with_the_cookie_but_without_the_csrf_token_is_refused(inbox: Inbox) -> None:
    """The session cookie alone (what another site's form would send along) decides nothing:
    403, and the run still waits with no approval."""
    client, _ = signed_in(inbox, ANA)
    request = waiting(inbox, client)
    body = {"decision": "approve", "interrupt_id": request["interrupt_id"]}

    refused = client.post(f"/api/runs/{THREAD}/decision", json=body)
    wrong = client.post(
        f"/api/runs/{THREAD}/decision", json=body, headers={"X-CSRF-Token": "not-it"}
    )

    assert refused.status_code == 403, refused.text
    assert wrong.status_code == 403, wrong.text
    assert "CSRF" in refused.json()["detail"]
    assert waiting(inbox, client)["approvals_so_far"] == []


def test_a_forged_approver_is_refused_while_signed_in_as_someone_else(inbox: Inbox) -> None:
    """Signed in as Ana, a decision whose body names Ben as its approver is refused by the
    service (422): the run still waits, with no approval."""
    client, _ = signed_in(inbox, ANA)
    request = waiting(inbox, client)

    forged = client.post(
        f"/api/runs/{THREAD}/decision",
        json={"decision": "approve", "interrupt_id": request["interrupt_id"], "approver": BEN},
        headers=csrf(client),
    )

    assert forged.status_code == 422, forged.text
    # Refused as Ana naming someone else, not for want of a verified identity.
    assert forged.json()["field"] == "approver"
    assert "Ana Lopez" in forged.json()["detail"]
    assert "\n" not in forged.json()["detail"]
    assert waiting(inbox, client)["approvals_so_far"] == []


def test_an_oidc_access_token_reaches_the_api_as_its_person(inbox: Inbox, provider: str) -> None:
    """A bearer access token the provider gave Ben's program (opaque: the provider's userinfo
    says whose it is; a JWT one: checked against the provider's keys) is Ben at the API, no
    CSRF token needed; a plangate token is its name; a token nobody issued is refused."""
    opaque = access_token(provider, BEN)
    signed = access_token(provider, BEN, resource="urn:plangate:inbox")
    assert signed.count(".") == 2
    assert opaque.count(".") != 2

    for token in (opaque, signed):
        me = httpx.get(f"{inbox.url}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["via"] == "bearer"
        assert me.json()["identity"]["subject"] == BEN
        assert me.json()["identity"]["groups"] == ["payments-leads"]
        assert me.json()["identity"]["verified_by"] == "oidc"
        assert me.json()["csrf_token"] is None

    # A plangate token (`plangate tokens create`) is its name, verified by the token.
    created = plangate(
        inbox.folder, "tokens", "create", "ops-bot", "--groups", "payments-leads", env=ENV
    )
    assert created.returncode == 0, created.stderr
    bot = {"Authorization": f"Bearer {created.stdout.strip()}"}
    me = httpx.get(f"{inbox.url}/api/me", headers=bot)
    assert me.status_code == 200, me.text
    assert (me.json()["identity"]["name"], me.json()["identity"]["verified_by"]) == (
        "ops-bot",
        "token",
    )

    garbage = httpx.get(
        f"{inbox.url}/api/pending", headers={"Authorization": "Bearer not-a-token-at-all"}
    )
    assert garbage.status_code == 401, garbage.text
    assert garbage.json()["error"] == "Unauthorized"
    tampered = signed[:-4] + ("AAAA" if not signed.endswith("AAAA") else "BBBB")
    refused = httpx.get(f"{inbox.url}/api/pending", headers={"Authorization": f"Bearer {tampered}"})
    assert refused.status_code == 401, refused.text


# -- in the browser -------------------------------------------------------------------------


@contextmanager
def person(browser: Browser) -> Iterator[tuple[BrowserContext, Page]]:
    """A browser of a person's own (cookies of its own); afterwards, no script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield context, page
    finally:
        context.close()
    assert errors == [], errors


def sign_in_in_chromium(page: Page, inbox: Inbox, login: str) -> None:
    """Open the inbox, follow its Sign in link to the provider, fill its login form and go on
    past its consent page, back to the inbox."""
    page.goto(f"{inbox.url}/")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#view")).to_be_hidden()  # nothing shown before a sign-in
    page.locator("#sign-in").click()
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("any password")
    page.locator('button[type="submit"]').click()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#signed-in")).to_be_visible()
    assert page.url.startswith(inbox.url), page.url


def api_of(context: BrowserContext, inbox: Inbox, path: str) -> Any:
    """`GET path` with the browser's cookies (what its page could read)."""
    answer = context.request.get(f"{inbox.url}{path}")
    assert answer.ok, (answer.status, answer.text())
    return answer.json()


def ana_approves_once(context: BrowserContext, page: Page, inbox: Inbox) -> None:
    """Ana approves in the dialog; the request still waits with her approval, and she may not
    approve it again: the page says why and offers no button, and the server refuses."""
    card = page.locator(f'.card[data-thread="{THREAD}"]')
    expect(card.locator(".chip.approvals")).to_have_text("0 of 2 approvals")
    card.get_by_role("button", name="Review & decide").click()
    dialog = page.locator("dialog#decide")
    expect(dialog).to_be_visible()
    expect(page.locator("#d-approver")).to_have_count(0)  # no name to type
    expect(page.locator("#d-why-not")).to_be_hidden()
    page.locator("#d-approve").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#flash")).to_contain_text("It waits for another approver.")

    assert api_of(context, inbox, f"/api/runs/{THREAD}")["status"] == "waiting"
    assert inbox.outbox_sends() == 0
    page.goto(f"{inbox.url}/#/")
    card = page.locator(f'.card[data-thread="{THREAD}"]')
    expect(card.locator(".chip.approvals")).to_have_text("1 of 2 approvals (Ana Lopez)")
    expect(card.locator(".why-not")).to_be_visible()
    why_not = card.locator(".why-not").inner_text()
    assert why_not.startswith("You cannot decide this request: "), why_not
    assert "\n" not in why_not
    card.get_by_role("button", name="Review & decide").click()
    expect(page.locator("#d-why-not")).to_have_text(why_not)
    expect(page.locator("#d-approve")).to_be_disabled()
    page.locator("#d-cancel").click()
    # Not the page's doing only: the server refuses Ana's second approval.
    request = next(
        a for a in api_of(context, inbox, "/api/pending")["approvals"] if a["thread"] == THREAD
    )
    assert request["may_decide"] is False
    again = context.request.post(
        f"{inbox.url}/api/runs/{THREAD}/decision",
        data={"decision": "approve", "interrupt_id": request["interrupt_id"]},
        headers={"X-CSRF-Token": api_of(context, inbox, "/api/me")["csrf_token"]},
    )
    assert again.status == 422, again.text()
    assert "\n" not in again.json()["detail"]
    assert api_of(context, inbox, f"/api/runs/{THREAD}")["status"] == "waiting"


def audit_lists_both(inbox: Inbox) -> None:
    """What an auditor reads: both decisions, each with its verified person and its proof,
    which `plangate verify` checks."""
    audit = plangate(inbox.folder, "audit", THREAD, env=ENV)
    assert audit.returncode == 0, audit.stderr
    records = [json.loads(line) for line in audit.stdout.splitlines() if line.strip()]
    decisions = [r for r in records if r.get("record") == "decision"]
    assert [
        (d["decision"], d["identity"]["subject"], d["identity"]["name"], d["verified_by"])
        for d in decisions
    ] == [("approve", ANA, "Ana Lopez", "oidc"), ("approve", BEN, "Ben Okafor", "oidc")]
    proofs = [r["event"]["data"].get("proof") for r in records if r.get("record") == "event"
              and r["event"]["type"] == "approval_received"]  # fmt: skip
    assert len(proofs) == 2
    assert all(proofs)
    verified = plangate(inbox.folder, "verify", THREAD, env=ENV)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_two_people_sign_in_in_chromium_and_approve_a_four_eyes_request(
    inbox: Inbox, browser: Browser
) -> None:
    """Ana signs in (the page names her and her groups, and has no name box) and approves: the
    request still waits, showing one approval, and Ana may not approve it again (the page says
    why and offers no button; the server refuses it all the same). She signs out; Ben signs in
    and approves: the run goes on, and its approval record lists both, verified by OIDC."""
    with person(browser) as (context, page):
        sign_in_in_chromium(page, inbox, ANA)
        expect(page.locator("#me-name")).to_have_text("Ana Lopez")
        expect(page.locator("#me-groups")).to_have_text("(payments-leads)")
        expect(page.locator("#me")).to_have_count(0)  # no name box
        expect(page.locator("#gate")).to_be_hidden()  # no token form
        ana_approves_once(context, page, inbox)

        page.locator("#sign-out").click()
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#signin-error")).to_have_text("Signed out.")
        expect(page.locator(".card")).to_have_count(0)
        assert context.request.get(f"{inbox.url}/api/me").status == 401
        assert context.request.get(f"{inbox.url}/api/pending").status == 401

    with person(browser) as (context, page):
        sign_in_in_chromium(page, inbox, BEN)
        expect(page.locator("#me-name")).to_have_text("Ben Okafor")
        card = page.locator(f'.card[data-thread="{THREAD}"]')
        expect(card.locator(".chip.approvals")).to_have_text("1 of 2 approvals (Ana Lopez)")
        card.get_by_role("button", name="Review & decide").click()
        page.locator("#d-approve").click()
        expect(page.locator("dialog#decide")).to_be_hidden()
        expect(page.locator("#flash")).to_contain_text("The run goes on.")

        deadline = time.monotonic() + 60
        while (run := api_of(context, inbox, f"/api/runs/{THREAD}"))["status"] != "success":
            assert run["status"] in ("running", "waiting"), run
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
    assert inbox.outbox_sends() == 1
    audit_lists_both(inbox)


# -- bearer decisions, and OidcSignIn itself --------------------------------------------------


def test_a_bearer_request_decides_without_csrf_and_the_rules_judge_its_person(
    inbox: Inbox, provider: str
) -> None:
    """Cy (not in `payments-leads`) sees the request read-only, the profile's rule saying why,
    and is refused; Ben's program, with Ben's access token and no CSRF token, approves as
    Ben: the approval is his, verified by OIDC."""
    cy = {"Authorization": f"Bearer {access_token(provider, CY)}"}
    ben = {"Authorization": f"Bearer {access_token(provider, BEN)}"}
    with httpx.Client(base_url=inbox.url, headers=cy, timeout=30) as as_cy:
        request = waiting(inbox, as_cy)
        assert request["may_decide"] is False
        assert "approvers.high" in request["why_not"], request["why_not"]
        body = {"decision": "approve", "interrupt_id": request["interrupt_id"]}
        refused = as_cy.post(f"/api/runs/{THREAD}/decision", json=body)
        assert refused.status_code == 422, refused.text
        assert waiting(inbox, as_cy)["approvals_so_far"] == []

    with httpx.Client(base_url=inbox.url, headers=ben, timeout=30) as as_ben:
        assert waiting(inbox, as_ben)["may_decide"] is True
        taken = as_ben.post(f"/api/runs/{THREAD}/decision", json=body)
        assert taken.status_code == 202, taken.text
        deadline = time.monotonic() + 30
        while not (given := waiting(inbox, as_ben)["approvals_so_far"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ((approval),) = given
        assert approval["identity"]["subject"] == BEN
        assert approval["identity"]["verified_by"] == "oidc"


def test_oidc_sign_in_checks_access_tokens_and_says_what_is_wrong(provider: str) -> None:
    """`OidcSignIn.verify_access_token` (what LangGraph's auth handler calls): a live token is
    its person, an ID token or a forged one is nobody; a provider that cannot be reached, an
    issuer that is not the provider's, or plain HTTP beyond loopback is one line saying so."""
    from plangate.errors import PlangateError, PlangateUsageError
    from plangate.identity.oidc import OidcSignIn
    from plangate.project._spec import OidcSettings

    settings = OidcSettings(issuer=provider, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    oidc = OidcSignIn(settings)
    signed = access_token(provider, ANA, resource="urn:plangate:inbox")
    found = oidc.verify_access_token(signed)
    assert found is not None
    assert (found["subject"], found["email"], found["verified_by"]) == (
        ANA,
        "ana@example.com",
        "oidc",
    )
    assert oidc.verify_access_token(access_token(provider, BEN))["subject"] == BEN  # type: ignore[index]
    id_token = tokens_of(provider, ANA)["id_token"]
    assert oidc.verify_access_token(id_token) is None  # an ID token is no access token
    assert oidc.verify_access_token("") is None
    assert oidc.verify_access_token("nope") is None
    header, payload, _ = signed.split(".")
    assert oidc.verify_access_token(f"{header}.{payload}.c2lnbmF0dXJl") is None

    down = OidcSignIn(settings.model_copy(update={"issuer": f"http://127.0.0.1:{free_port()}"}))
    with pytest.raises(PlangateError, match="cannot reach the OpenID provider") as unreachable:
        down.verify_access_token("some-token")
    assert "\n" not in str(unreachable.value)
    other = OidcSignIn(settings.model_copy(update={"issuer": f"{provider}/"}))
    other.metadata()  # a trailing slash is the same issuer
    with pytest.raises(PlangateUsageError, match="not an https:// URL"):
        OidcSignIn(settings.model_copy(update={"issuer": "http://id.example"}))
    with pytest.raises(PlangateUsageError, match=r"the provider at \S+ says its issuer is"):
        OidcSignIn(
            settings.model_copy(update={"issuer": provider.replace("127.0.0.1", "localhost")})
        ).metadata()


def test_serve_refuses_a_shared_token_where_people_sign_in(tmp_path: Path) -> None:
    """With `identity:` in the project file, `plangate serve --token` says, in one line, that
    a shared token is no way in, and serves nothing."""
    tmp_path = tmp_path / "project"
    write_project(tmp_path, "http://127.0.0.1:9")

    done = plangate(tmp_path, "serve", "--port", "0", "--token", "shared-secret", env=ENV)

    assert done.returncode != 0
    assert "a shared --token is no way into its inbox" in done.stderr + done.stdout


@pytest.mark.parametrize("inbox", [{"issuer": None}], indirect=True)
def test_without_a_provider_people_paste_a_token_of_their_own(
    inbox: Inbox, browser: Browser
) -> None:
    """`identity:` without `oidc:`: the page asks for a token, and a person's own (`plangate
    tokens create`) names them: no name box, no name to type; their approval is theirs,
    verified by the token. The project's shared token does not exist: a made-up one is
    refused."""
    created = plangate(
        inbox.folder, "tokens", "create", "ana@example.com", "--groups", "payments-leads",
        env=ENV,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    with person(browser) as (_, page):
        page.goto(f"{inbox.url}/")
        expect(page.locator("#gate")).to_be_visible()
        page.locator("#gate-token").fill("made-up-token")
        page.locator("#gate-open").click()
        expect(page.locator("#gate-error")).to_contain_text("refused that token")

        page.locator("#gate-token").fill(created.stdout.strip())
        page.locator("#gate-open").click()
        expect(page.locator("#me-name")).to_have_text("ana@example.com")
        expect(page.locator("#me")).to_have_count(0)
        expect(page.locator("#sign-out")).to_be_hidden()
        card = page.locator(f'.card[data-thread="{THREAD}"]')
        card.get_by_role("button", name="Review & decide").click()
        expect(page.locator("#d-approver")).to_have_count(0)
        page.locator("#d-approve").click()
        expect(page.locator("dialog#decide")).to_be_hidden()
        expect(page.locator("#flash")).to_contain_text("It waits for another approver.")

    auth = {"Authorization": f"Bearer {created.stdout.strip()}"}
    with httpx.Client(base_url=inbox.url, headers=auth, timeout=30) as as_ana:
        deadline = time.monotonic() + 30
        while not (given := waiting(inbox, as_ana)["approvals_so_far"]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    ((approval),) = given
    assert approval["identity"]["name"] == "ana@example.com"
    assert approval["identity"]["verified_by"] == "token"


def test_plangate_approve_through_the_inbox_decides_as_the_token_s_person(
    inbox: Inbox, provider: str
) -> None:
    """`plangate approve --server URL` with a plangate token in PLANGATE_TOKEN is that token's
    person at this inbox, verified by the token; with an OIDC access token of Ana's, Ana."""
    created = plangate(
        inbox.folder, "tokens", "create", "release-bot", "--groups", "payments-leads",
        env=ENV,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    outsider = plangate(inbox.folder, "tokens", "create", "intern", env=ENV).stdout.strip()
    as_bot = {**ENV, "PLANGATE_TOKEN": created.stdout.strip()}
    as_intern = {**ENV, "PLANGATE_TOKEN": outsider}
    mine = ("pending", "--mine", "--server", inbox.url)
    assert THREAD in plangate(inbox.folder, *mine, env=as_bot).stdout
    assert (
        "No run is waiting for your approval."
        in plangate(inbox.folder, *mine, env=as_intern).stdout
    )
    refused = plangate(inbox.folder, "approve", THREAD, "--server", inbox.url, env=as_intern)
    assert refused.returncode == 1
    assert "may not decide this request" in refused.stderr
    assert refused.stderr.count("\n") == 1  # one line, no traceback
    assert plangate(inbox.folder, "tokens", "revoke", "intern", env=ENV).returncode == 0
    revoked = plangate(inbox.folder, "approve", THREAD, "--server", inbox.url, env=as_intern)
    assert revoked.returncode == 1
    assert "the inbox refused the token in PLANGATE_TOKEN" in revoked.stderr

    by_token = plangate(inbox.folder, "approve", THREAD, "--server", inbox.url, env=as_bot)
    # Exit status 3: the run waits (for the second approval).
    assert by_token.returncode == 3, by_token.stdout + by_token.stderr
    assert "waits for another decision" in by_token.stdout
    by_oidc = plangate(
        inbox.folder, "approve", THREAD, "--server", inbox.url,
        env={**ENV, "PLANGATE_TOKEN": access_token(provider, ANA)},
    )  # fmt: skip
    assert by_oidc.returncode == 0, by_oidc.stdout + by_oidc.stderr

    audit = plangate(inbox.folder, "audit", THREAD, env=ENV)
    decisions = [
        (r["identity"]["name"], r["verified_by"])
        for r in map(json.loads, audit.stdout.splitlines())
        if r.get("record") == "decision"
    ]
    assert decisions == [("release-bot", "token"), ("Ana Lopez", "oidc")], audit.stdout


def test_the_docs_identity_block_is_a_project_file_the_inbox_reads() -> None:
    """The `identity:` the inbox's how-to shows is a project file plangate takes as written."""
    from test_docs import doc_blocks

    from plangate.project._spec import ProjectFile

    (block,) = doc_blocks("docs/how-to/inbox.md", "## People sign in (OpenID Connect)", "yaml")
    spec = ProjectFile.model_validate(yaml.safe_load(block))

    assert spec.identity is not None
    assert spec.identity.oidc is not None
    assert spec.identity.oidc.scopes == ["openid", "profile", "email", "groups"]


def test_a_run_started_by_a_person_signed_in_is_theirs(inbox: Inbox) -> None:
    """A run started from the inbox by Ana, signed in, is started by Ana whatever name the
    body gives; without the CSRF token it is not started at all."""
    client, _ = signed_in(inbox, ANA)
    plan = (inbox.folder / "sales_followup.yaml").read_text()
    body = {"plan": plan, "profile": "four-eyes", "thread": "by-ana", "started_by": "Mallory"}

    assert client.post("/api/runs", json=body).status_code == 403
    started = client.post("/api/runs", json=body, headers=csrf(client))

    assert started.status_code == 201, started.text
    deadline = time.monotonic() + 30
    while (run := client.get("/api/runs/by-ana").json())["status"] != "waiting":
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
    assert run["started_by"] == "Ana Lopez", run
