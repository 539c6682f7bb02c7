"""The inbox page in a real headless browser: Debian's chromium driven by Playwright, against
`plangate serve` running as a real process on runs paused by `plangate run`.

Set `PLANGATE_SCREENSHOT_DIR=docs` to also write the README's screenshot (`docs/inbox.png`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _support import free_port
from playwright.sync_api import Browser, Page, expect, sync_playwright

from plangate import demo_outbox

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TOKEN = "browser-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEAL_PLAN = """\
goal: Move the Globex deal to proposal
steps:
  - id: lookup
    tool: crm.lookup_account
    args: {account: globex}
  - id: advance
    tool: crm.update_opportunity
    action: execute
    depends_on: [lookup]
    args: {opportunity_id: opp-202, stage: proposal, note: Terms agreed on the call}
    description: Move the Globex opportunity to the proposal stage
"""


@dataclass
class Served:
    url: str
    folder: Path

    @property
    def outbox(self) -> Path:
        return self.folder / "plangate-outbox.db"

    def status(self, thread: str) -> str:
        return str(httpx.get(f"{self.url}/api/runs/{thread}", headers=AUTH).json()["status"])


def _plangate_runs(cwd: Path, *runs: tuple[str, ...]) -> None:
    """`plangate run ...` for each argument list, as processes running side by side."""
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "plangate", "run", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in runs
    ]
    for process in started:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert "Paused: step" in out, out


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Three runs paused by `plangate run` (high, medium and low risk), then `plangate serve`
    on a free port with a known token, as a process of its own."""
    (tmp_path / "deal.yaml").write_text(DEAL_PLAN)
    _plangate_runs(
        tmp_path,
        (str(EXAMPLES / "sales_followup.yaml"), "--profile", "smb", "--thread", "acme-followup"),
        ("deal.yaml", "--profile", "smb", "--thread", "globex-deal"),
        (str(EXAMPLES / "renewal_pipeline.json"), "--profile", "enterprise", "--thread",
         "globex-renewal"),
    )  # fmt: skip
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PLANGATE_TOKEN"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "plangate", "serve", "--port", str(port), "--token", TOKEN],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            if httpx.get(f"{url}/api/info", headers=AUTH, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "plangate serve did not start"
        time.sleep(0.1)
    yield Served(url=url, folder=tmp_path)
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(5)
    log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context; afterwards, no script error, and every API request it made
    carried the token in its header, never in its URL."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    api: list[tuple[str, str | None]] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda request: (
            api.append((request.url, request.headers.get("authorization")))
            if "/api/" in request.url
            else None
        ),
    )
    yield page
    context.close()
    assert errors == [], errors
    assert all(TOKEN not in url for url, _ in api), api
    assert all(auth is not None for _, auth in api), api


def _api_requests(page: Page) -> list[str]:
    """The API paths the page has requested so far (Performance API: every fetch it made)."""
    urls: list[str] = page.evaluate("performance.getEntriesByType('resource').map((e) => e.name)")
    return [url for url in urls if "/api/" in url]


def test_approve_from_the_inbox_and_watch_the_run_finish(
    served: Served, page: Page, tmp_path: Path
) -> None:
    """The inbox lists the three paused runs, colour-coded by risk; approving one in the dialog
    resumes it in the server and its run view turns to success, live."""
    page.goto(f"{served.url}/?token={TOKEN}")
    card = page.locator('.card[data-thread="acme-followup"]')
    expect(card).to_contain_text("email.send")
    expect(card).to_contain_text("If approved, plangate will send the follow-up email")
    expect(card.locator(".risk-badge")).to_have_text("high risk")
    expect(page.locator(".card")).to_have_count(3)
    expect(page.locator('.card[data-thread="globex-deal"] .risk-badge')).to_have_text("medium risk")
    expect(page.locator('.card[data-thread="globex-renewal"] .risk-badge')).to_have_text("low risk")
    expect(card.locator(".countdown")).to_contain_text("left")
    # The real recipient, though smb redacts the trace: the approver sees what they approve.
    expect(card.locator("pre.args")).to_contain_text('"to": "ana.lopez@acme.example"')
    expect(card.locator(".chip.action")).to_have_text("execute · from the tool")
    expect(card.locator(".chip.irreversible")).to_have_text("irreversible")
    renewal = page.locator('.card[data-thread="globex-renewal"]')
    expect(renewal.locator(".chip.action")).to_have_text("propose · from the tool")
    expect(renewal.locator(".chip.irreversible")).to_have_count(0)
    assert "token" not in page.url  # moved to sessionStorage, out of the address bar

    page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    if os.environ.get("PLANGATE_SCREENSHOT_DIR"):
        folder = Path(os.environ["PLANGATE_SCREENSHOT_DIR"])
        folder = folder if folder.is_absolute() else ROOT / folder
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "inbox.png"), full_page=True)

    card.get_by_role("button", name="Review & decide").click()
    dialog = page.locator("dialog#decide")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("email.send")
    expect(page.locator("#d-action")).to_have_text("execute · from the tool")
    expect(dialog).to_contain_text("the call cannot be undone")
    assert '"to": "ana.lopez@acme.example"' in page.input_value("#d-args")
    page.fill("#d-approver", "Lee Chen")
    page.click("#d-approve")

    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    assert page.url.endswith("#/runs/acme-followup")
    send = page.locator('#steps tr[data-step="send"]')
    expect(send).to_contain_text("ok")
    expect(send).to_contain_text("approve by Lee Chen")
    expect(page.locator('#trace tr[data-type="plan_completed"]')).to_have_count(1)
    expect(page.locator('#trace tr[data-type="approval_received"]')).to_contain_text("Lee Chen")
    expect(page.locator("#live")).to_have_text("finished")
    assert any(url.endswith("/api/runs/acme-followup/events") for url in _api_requests(page))
    assert [mail["to"] for mail in demo_outbox(served.outbox)] == ["ana.lopez@acme.example"]

    page.goto(f"{served.url}/#/")
    expect(page.locator(".card")).to_have_count(2)


def test_reject_with_a_reason_from_the_inbox(served: Served, page: Page) -> None:
    """Reject needs a reason; the reason is recorded and shown in the finished run. The token
    comes in the address's fragment this time, which no server sees."""
    page.goto(f"{served.url}/#token={TOKEN}")
    expect(page.locator(".card")).to_have_count(3)
    assert "token" not in page.url
    card = page.locator('.card[data-thread="globex-renewal"]')
    card.get_by_role("button", name="Review & decide").click()
    page.fill("#d-approver", "Kim")
    page.click("#d-reject")
    expect(page.locator("#d-error")).to_have_text("Give a reason to reject.")
    page.fill("#d-reason", "Terms are not final yet")
    page.click("#d-reject")

    expect(page.locator("#run-status")).to_have_text("partial", timeout=30_000)
    draft = page.locator('#steps tr[data-step="draft"]')
    expect(draft).to_contain_text("rejected")
    expect(draft).to_contain_text("reject by Kim: Terms are not final yet")
    expect(page.locator('#steps tr[data-step="send"]')).to_contain_text("skipped")
    assert demo_outbox(served.outbox) == []


def test_without_a_token_the_page_shows_only_the_token_form(served: Served, page: Page) -> None:
    """No token: only the form, saying where the token comes from, and no request for run
    data. A wrong token is refused and shows nothing; the right one opens the inbox, and the
    approval goes through."""
    page.goto(f"{served.url}/")
    gate = page.locator("#gate")
    expect(gate).to_be_visible()
    expect(gate).to_contain_text("plangate serve")
    expect(gate).to_contain_text("Token:")
    expect(page.locator("#view")).to_be_hidden()
    expect(page.locator("nav")).to_be_hidden()
    assert page.locator("#view").inner_html() == ""
    for shown in ("acme", "globex", "email.send", "Waiting for approval"):
        assert shown not in page.content(), shown
    assert _api_requests(page) == []

    page.fill("#gate-token", "not-the-token")
    page.press("#gate-token", "Enter")
    expect(page.locator("#gate-error")).to_contain_text("The server refused that token")
    expect(gate).to_be_visible()
    assert page.locator("#view").inner_html() == ""
    assert "globex" not in page.content()

    page.fill("#gate-token", TOKEN)
    page.click("#gate-open")
    expect(gate).to_be_hidden()
    expect(page.locator(".card")).to_have_count(3)
    page.locator('.card[data-thread="globex-deal"]').get_by_role(
        "button", name="Review & decide"
    ).click()
    page.fill("#d-approver", "Lee")
    page.click("#d-approve")
    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    expect(page.locator('#steps tr[data-step="advance"]')).to_contain_text("approve by Lee")
    assert served.status("globex-deal") == "success"


def test_a_refused_token_brings_the_form_back(served: Served, page: Page) -> None:
    """A token the server no longer takes (it was started again with another) gets 401 on the
    next request: the page forgets it and everything it showed, and asks again; "forget" does
    the same on demand."""
    page.goto(f"{served.url}/?token={TOKEN}#/runs/acme-followup")
    expect(page.locator("#run-status")).to_have_text("waiting")
    expect(page.locator("#live")).to_have_text("live")
    page.evaluate("sessionStorage.setItem('plangate-token', 'stale-token')")
    page.click('a[data-nav="runs"]')

    expect(page.locator("#gate")).to_be_visible()
    expect(page.locator("#gate-error")).to_contain_text("The server refused that token")
    assert page.locator("#view").inner_html() == ""
    assert page.evaluate("sessionStorage.getItem('plangate-token')") is None
    assert served.status("acme-followup") == "waiting"

    page.fill("#gate-token", TOKEN)
    page.press("#gate-token", "Enter")
    expect(page.locator("table tr[data-thread]")).to_have_count(3)
    page.click("#token-forget")
    expect(page.locator("#gate")).to_be_visible()
    expect(page.locator("#gate-error")).to_be_hidden()
    assert page.locator("#view").inner_html() == ""


def test_start_a_run_from_the_page_then_approve_it(served: Served, page: Page) -> None:
    """The start form's example plan under smb pauses at the send; the run view offers the
    decision and follows the run to its end."""
    page.goto(f"{served.url}/?token={TOKEN}#/start")
    page.select_option("#profile", "smb")
    page.fill("#thread", "from-the-page")
    page.click("#start-run")

    expect(page.locator("#run-status")).to_have_text("waiting", timeout=30_000)
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator('#trace tr[data-type="approval_requested"]')).to_have_count(1)
    expect(page.locator('#budget [data-tier="total"]')).to_contain_text("2 / 50")
    page.locator(".waiting-banner").get_by_role("button", name="Review & decide").click()
    page.fill("#d-approver", "Zoe")
    page.click("#d-approve")
    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    expect(page.locator('#budget [data-tier="total"]')).to_contain_text("3 / 50")
    expect(page.locator("#signals")).to_contain_text("100 %")
    expect(page.locator('#trace tr[data-type="plan_completed"]')).to_have_count(1)
    expect(page.locator("#live")).to_have_text("finished")
