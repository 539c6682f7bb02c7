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
            if httpx.get(f"{url}/api/info", timeout=2).status_code == 200:
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
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors


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
    assert [mail["to"] for mail in demo_outbox(served.outbox)] == ["ana.lopez@acme.example"]

    page.goto(f"{served.url}/#/")
    expect(page.locator(".card")).to_have_count(2)


def test_reject_with_a_reason_from_the_inbox(served: Served, page: Page) -> None:
    """Reject needs a reason; the reason is recorded and shown in the finished run."""
    page.goto(f"{served.url}/?token={TOKEN}")
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


def test_without_a_token_nothing_changes_until_one_is_entered(served: Served, page: Page) -> None:
    """The dialog says the token is missing; the run still waits; with the token pasted in the
    header the same approval goes through."""
    page.goto(f"{served.url}/")
    page.locator('.card[data-thread="globex-deal"]').get_by_role(
        "button", name="Review & decide"
    ).click()
    page.fill("#d-approver", "Lee")
    page.click("#d-approve")
    expect(page.locator("#d-error")).to_contain_text("Missing or wrong token")
    page.click("#d-cancel")
    assert httpx.get(f"{served.url}/api/runs/globex-deal").json()["status"] == "waiting"

    page.fill("#token-input", TOKEN)
    page.press("#token-input", "Enter")
    expect(page.locator("#token-state")).to_contain_text("token set")
    page.locator('.card[data-thread="globex-deal"]').get_by_role(
        "button", name="Review & decide"
    ).click()
    page.click("#d-approve")  # the name is remembered
    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    expect(page.locator('#steps tr[data-step="advance"]')).to_contain_text("approve by Lee")


def test_start_a_run_from_the_page_then_approve_it(served: Served, page: Page) -> None:
    """The start form's example plan under smb pauses at the send; the run view offers the
    decision and follows the run to its end."""
    page.goto(f"{served.url}/?token={TOKEN}#/start")
    page.select_option("#profile", "smb")
    page.fill("#thread", "from-the-page")
    page.click("#start-run")

    expect(page.locator("#run-status")).to_have_text("waiting", timeout=30_000)
    expect(page.locator('#budget [data-tier="total"]')).to_contain_text("2 / 50")
    page.locator(".waiting-banner").get_by_role("button", name="Review & decide").click()
    page.fill("#d-approver", "Zoe")
    page.click("#d-approve")
    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    expect(page.locator('#budget [data-tier="total"]')).to_contain_text("3 / 50")
    expect(page.locator("#signals")).to_contain_text("100 %")
