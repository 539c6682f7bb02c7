"""The inbox page in a real headless browser: Debian's chromium driven by Playwright, against
`plangate serve` running as a real process on runs paused by `plangate run`.

Set `PLANGATE_SCREENSHOT_DIR=docs/images` to also write the screenshot the README and the docs show
(`docs/images/inbox.png`).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from _support import BILLING_TOKEN, Service, billing_service, plangate, write_team_project
from playwright.sync_api import Browser, Page, Route, expect
from test_inbox import hold_elsewhere, start_serve, stop_mid_way

from plangate import demo_outbox, load_profile

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "demo"
# One of its own: the server a test talks to is known by answering to it (see `start_serve`).
TOKEN = f"browser-test-{secrets.token_hex(8)}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
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
    args:
      opportunity_id: ${steps.lookup.output.opportunity_id}
      stage: proposal
      note: Terms agreed with ${steps.lookup.output.contact} of ${steps.lookup.output.name}
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
        # The pause itself, not the exit status that tells it (tests/test_cli.py pins that).
        assert "Paused: step" in out, (process.returncode, out, err)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Three runs paused by `plangate run` (high, medium and low risk), then `plangate serve`
    on a free port with a known token, as a process of its own (`start_serve`: on another port
    if another process takes the one found free before the server binds it)."""
    (tmp_path / "deal.yaml").write_text(DEAL_PLAN)
    # `enterprise` asking about each step, without its review of the whole plan: the renewal
    # waits at its draft, a low-risk request.
    by_step = {**load_profile("enterprise").model_dump(mode="json"), "plan_review": None}
    (tmp_path / "by-step.yaml").write_text(yaml.safe_dump({**by_step, "name": "by-step"}))
    _plangate_runs(
        tmp_path,
        (str(EXAMPLES / "sales_followup.yaml"), "--profile", "smb", "--thread", "acme-followup"),
        ("deal.yaml", "--profile", "smb", "--thread", "globex-deal"),
        (str(EXAMPLES / "renewal_pipeline.json"), "--profile", "by-step.yaml", "--thread",
         "globex-renewal"),
    )  # fmt: skip
    server = start_serve(tmp_path, token=TOKEN)
    yield Served(url=server.url, folder=tmp_path)
    server.stop()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh context (parametrized indirectly with "no-csp": one that ignores the
    page's Content-Security-Policy); afterwards, no script error, and every API request it made
    carried the token in its header, never in its URL."""
    bypass_csp = getattr(request, "param", "csp") == "no-csp"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp)
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
    deal = page.locator('.card[data-thread="globex-deal"]')
    expect(deal.locator(".risk-badge")).to_have_text("medium risk")
    # Every reference of every arg, the note's two included.
    expect(deal.locator(".references li")).to_have_text(
        [
            "args.opportunity_id = ${steps.lookup.output.opportunity_id}",
            "args.note from ${steps.lookup.output.contact}, ${steps.lookup.output.name}",
        ]
    )
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


# Two reads beside a send that waits: the reads end at once, the send when it is approved.
BESIDE_PLAN = """\
goal: Look twice beside a send
steps:
  - {id: send, tool: email.send, args: {to: a@b.example, subject: s, body: b}}
  - {id: look, tool: crm.lookup_account, args: {account: acme}}
  - {id: again, tool: crm.lookup_account, args: {account: acme}}
"""


def test_the_run_views_trace_lists_events_in_the_order_they_happened(
    served: Served, page: Page
) -> None:
    """Reads that ended beside a send waiting for approval are numbered after the approval
    (in plan order, when the wave is over), yet the trace lists them when they happened:
    before the approval, every `seq` once, none missing."""
    (served.folder / "beside.yaml").write_text("name: beside\norder: dependencies\n")
    (served.folder / "beside-plan.yaml").write_text(BESIDE_PLAN)
    _plangate_runs(served.folder, ("beside-plan.yaml", "--profile", "beside.yaml", "--thread", "B"))
    approved = plangate(served.folder, "approve", "B", "--approver", "lee")
    assert approved.returncode == 0, approved.stderr

    page.goto(f"{served.url}/?token={TOKEN}#/runs/B")
    expect(page.locator('#trace tr[data-type="plan_completed"]')).to_have_count(1)
    rows: list[list[str]] = page.evaluate(
        """() => [...document.querySelectorAll("#trace tr.ev")].map(
          (r) => [r.dataset.seq, r.dataset.type, r.children[3].textContent])"""
    )
    trace = httpx.get(f"{served.url}/api/runs/B/trace", headers=AUTH).json()["events"]
    by_seq = {str(event["seq"]): event for event in trace}
    assert sorted(int(seq) for seq, _, _ in rows) == list(range(len(trace)))
    times = [by_seq[seq]["ts"] for seq, _, _ in rows]
    assert times == sorted(times)
    order = [(kind, step) for _, kind, step in rows]
    received = order.index(("approval_received", "send"))
    assert order.index(("tool_call_complete", "look")) < received
    assert order.index(("tool_call_complete", "again")) < received
    # Numbered after the decision all the same: the order shown is not the order of `seq`.
    seq_of = {(kind, step): int(seq) for seq, kind, step in rows}
    assert seq_of[("approval_received", "send")] < seq_of[("tool_call_complete", "look")]


def test_a_plan_review_shows_each_step_and_approving_it_runs_what_it_covers(
    served: Served, page: Page
) -> None:
    """Under `enterprise` a run waits for a review of its whole plan: the card lists each step,
    what approving covers and what still asks; approved in the dialog, the covered draft runs
    without asking and the send waits for its own decision."""
    plan = str(EXAMPLES / "sales_followup.yaml")
    started = subprocess.run(
        [sys.executable, "-m", "plangate", "run", plan, "--profile", "enterprise", "--thread",
         "reviewed"],
        cwd=served.folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Paused: the plan waits for review" in started.stdout, started.stdout + started.stderr
    page.goto(f"{served.url}/#token={TOKEN}")
    card = page.locator('.card[data-thread="reviewed"]')
    expect(card.locator(".tool")).to_have_text("plan review")
    expect(card).to_contain_text("3 steps, covers risk up to medium")
    expect(card.locator('.review-steps tr[data-step="draft"]')).to_contain_text("covered")
    expect(card.locator('.review-steps tr[data-step="send"]')).to_contain_text("asks on its own")
    expect(card.locator('.review-steps tr[data-step="send"] .risk-badge')).to_have_text("high risk")

    card.get_by_role("button", name="Review & decide").click()
    expect(page.locator("#d-title")).to_have_text("plan review")
    expect(page.locator("#d-steps")).to_contain_text("email.send")
    assert '"tool": "email.send"' in page.input_value("#d-args")  # the plan, as written
    page.fill("#d-approver", "Rev")
    page.click("#d-approve")

    expect(page.locator('#steps tr[data-step="draft"]')).to_contain_text("ok", timeout=30_000)
    assert page.url.endswith("#/runs/reviewed")
    expect(page.locator(".waiting-banner")).to_contain_text("email.send", timeout=30_000)
    assert demo_outbox(served.outbox) == []


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


def test_a_late_refusal_of_a_replaced_token_keeps_the_new_one(served: Served, page: Page) -> None:
    """A request sent with a stale token whose 401 arrives after the right token was entered
    (a slow read of the inbox, say) does not throw that token away nor bring the form back."""
    held: list[Route] = []

    def hold_stale(route: Route) -> None:
        if route.request.headers.get("authorization") == "Bearer stale-token":
            held.append(route)  # answered below, once the right token is in
        else:
            route.continue_()

    page.clock.install()  # no timer fires unless the test says so: the order below is certain
    page.route("**/api/pending", hold_stale)
    page.goto(f"{served.url}/?token={TOKEN}#/runs")
    expect(page.locator("table tr[data-thread]")).to_have_count(3)
    # The inbox reads the pending approvals (held) and the runs (refused: the form comes back).
    page.evaluate("sessionStorage.setItem('plangate-token', 'stale-token'); location.hash = '#/'")
    expect(page.locator("#gate-error")).to_contain_text("The server refused that token")
    assert len(held) == 1
    page.fill("#gate-token", TOKEN)
    page.press("#gate-token", "Enter")
    expect(page.locator(".card")).to_have_count(3)

    held[0].continue_()  # the server refuses the stale token, late
    page.wait_for_timeout(500)
    expect(page.locator("#gate")).to_be_hidden()
    expect(page.locator(".card")).to_have_count(3)
    assert page.evaluate("sessionStorage.getItem('plangate-token')") == TOKEN


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


# Text a plan, an approver or a thread id may carry, meant to run as script if a page rendered
# it as HTML or followed it as a link.
SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
SVG = '"><svg onload=window.__xss=1>'
JS_URL = "javascript:window.__xss=1"
HOSTILE_GOAL = f"Goal {SCRIPT} {IMG}"
HOSTILE_PLAN = {
    "goal": HOSTILE_GOAL,
    "steps": [
        {
            "id": f"look {SVG}",
            "tool": "crm.lookup_account",
            "args": {"account": "acme"},
            "description": f"Look {IMG} {JS_URL}",
        },
        {
            # A key of its own: refused as an argument the tool does not take, or passed on;
            # either way the page shows it, in the error or in the trace.
            "id": "keys",
            "tool": "email.draft",
            "args": {"to": "ana@acme.example", "subject": "s", "body": "b", IMG: SVG},
            "description": "Draft with a key of its own",
        },
        {
            "id": "send",
            "tool": "email.send",
            "action": "execute",
            "args": {"to": f"{SVG}@acme.example", "subject": SCRIPT, "body": JS_URL},
            "description": f"Send {SCRIPT} {SVG}",
        },
    ],
}

# Installed before the page's own script: records every element that could run script (or
# load something) added to the document, every inline event-handler attribute, and every
# Content-Security-Policy violation, however briefly any of them existed.
WATCH = """
window.__added = [];
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
new MutationObserver((records) => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.nodeType !== Node.ELEMENT_NODE) continue;
      for (const el of [node, ...node.querySelectorAll("*")]) {
        const tag = el.tagName.toLowerCase();
        const ours = tag === "script" && el.getAttribute("src") === "/static/app.js";
        if (!ours && ["script", "img", "svg", "iframe", "object", "embed", "image"].includes(tag)) {
          window.__added.push(el.outerHTML.slice(0, 120));
        }
        for (const attr of el.attributes) {
          if (attr.name.startsWith("on")) window.__added.push(`${tag}[${attr.name}]`);
        }
      }
    }
  }
}).observe(document, { childList: true, subtree: true, attributes: false });
"""

INERT = """() => ({
  xss: typeof window.__xss,
  added: window.__added,
  violations: window.__violations,
  scripts: [...document.scripts].map((s) => `${s.type} ${s.getAttribute("src")}`),
  fetched: performance.getEntriesByType("resource").map((r) => new URL(r.name)).map(
    (url) => (url.origin === location.origin ? url.pathname : url.href)),
  live: document.querySelectorAll("img, svg, iframe, object, embed").length,
  handlers: [...document.querySelectorAll("*")].flatMap(
    (el) => [...el.attributes].filter((a) => a.name.startsWith("on")).map((a) => a.name)),
  links: [...document.querySelectorAll("[href], [src], [action], [formaction]")].map(
    (el) => el.getAttribute("href") ?? el.getAttribute("src") ?? el.getAttribute("action")
      ?? el.getAttribute("formaction")),
})"""


# The page's scripts: app.js and the modules it imports, which are all the package ships
# (tests/test_inbox.py holds it to that).
PAGE_SCRIPTS = sorted(
    f"/static/{file.name}"
    for file in resources.files("plangate.server").joinpath("static").iterdir()
    if file.name.endswith(".js")
)


def _thread_is(thread: str) -> str:
    """A CSS attribute selector for the element of `thread`, whatever its characters."""
    quoted = thread.replace("\\", "\\\\").replace('"', '\\"')
    return f'[data-thread="{quoted}"]'


def assert_inert(page: Page) -> None:
    """Nothing of the hostile text ran or became an element, a handler or a link."""
    page.wait_for_timeout(300)  # an <img src=x> would have failed to load by now
    found: dict[str, Any] = page.evaluate(INERT)
    assert found["xss"] == "undefined", found
    assert found["added"] == [], found
    assert found["violations"] == [], found
    # One script element, a module; what it imports is fetched from the page's own folder.
    assert found["scripts"] == ["module /static/app.js"], found
    assert sorted({url for url in found["fetched"] if url.endswith(".js")}) == PAGE_SCRIPTS, found
    for url in found["fetched"]:
        assert url.startswith(("/static/", "/api/")), found
    assert found["live"] == 0, found
    assert found["handlers"] == [], found
    for link in found["links"]:
        assert link.startswith(("#", "/static/", "data:")), found


API_THREAD = "javascript:window.__xss"  # the API takes only letters, digits and . _ : -


def test_a_request_for_two_approvers_shows_who_approved_and_waits_for_a_second(
    served: Served, page: Page
) -> None:
    """Four eyes in the page: the card and the dialog say "0 of 2", then "1 of 2 (Lee)" once
    Lee approved; `LEE`, or `Lee` with a Cyrillic e, is Lee again, refused in the dialog; the
    send goes out only when a second person approves, and the step shows both approvals."""
    rules = {**load_profile("smb").model_dump(mode="json"), "approvals_required": {"high": 2}}
    (served.folder / "four-eyes.yaml").write_text(yaml.safe_dump({**rules, "name": "four-eyes"}))
    _plangate_runs(
        served.folder,
        (str(EXAMPLES / "sales_followup.yaml"), "--profile", "four-eyes.yaml", "--thread", "four"),
    )
    page.goto(f"{served.url}/#token={TOKEN}")
    card = page.locator('.card[data-thread="four"]')
    expect(card.locator(".chip.approvals")).to_have_text("0 of 2 approvals")

    card.get_by_role("button", name="Review & decide").click()
    expect(page.locator("#d-approvals")).to_have_text(
        "0 of 2 approvals; each from a different approver"
    )
    page.fill("#d-approver", "Lee")
    page.click("#d-approve")
    expect(page.locator(".waiting-banner")).to_contain_text("email.send", timeout=30_000)

    page.goto(f"{served.url}/#/")
    card = page.locator('.card[data-thread="four"]')
    expect(card.locator(".chip.approvals")).to_have_text("1 of 2 approvals (Lee)", timeout=30_000)
    assert demo_outbox(served.outbox) == []
    card.get_by_role("button", name="Review & decide").click()
    for again in ("LEE", "L\u0435e"):
        page.fill("#d-approver", again)
        page.click("#d-approve")
        expect(page.locator("#d-error")).to_contain_text(f"{again!r} reads as 'Lee', who has")
    assert demo_outbox(served.outbox) == []
    page.fill("#d-approver", "Kim")
    page.click("#d-approve")

    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    assert [mail["to"] for mail in demo_outbox(served.outbox)] == ["ana.lopez@acme.example"]
    send = page.locator('#steps tr[data-step="send"]')
    expect(send).to_contain_text("approve by Lee (approve), Kim (approve)")


@pytest.mark.parametrize("page", ["csp", "no-csp"], indirect=True)
def test_untrusted_text_is_shown_as_text_and_never_runs(served: Served, page: Page) -> None:
    """Script, event-handler and `javascript:` payloads in a plan's goal, step ids, descriptions,
    arg values and keys, in thread ids, who started a run, the approver's name and a reject
    reason are shown as the text they are, in the inbox, the decision dialog, the run view, the
    runs list and the start form's refusal; none runs or becomes an element, a handler or a
    link. Also with the page's Content-Security-Policy ignored, so that the page's rendering,
    not only the policy, is what keeps them inert."""
    (served.folder / "hostile.json").write_text(json.dumps(HOSTILE_PLAN))
    # `plangate run` takes any thread id.
    _plangate_runs(served.folder, ("hostile.json", "--profile", "smb", "--thread", IMG))
    started = httpx.post(
        f"{served.url}/api/runs",
        json={"plan": HOSTILE_PLAN, "profile": "smb", "thread": API_THREAD,
              "started_by": f"{SCRIPT} {SVG}"},
        headers=AUTH,
        timeout=30,
    )  # fmt: skip
    assert started.status_code == 201, started.text
    page.add_init_script(WATCH)

    page.goto(f"{served.url}/?token={TOKEN}")
    _check_hostile_inbox(page)
    assert_inert(page)
    _check_hostile_decision(page)
    assert_inert(page)
    _check_hostile_run_view(page)
    assert_inert(page)

    # The other run's view, the runs list, and the start form refusing a hostile thread id.
    page.goto(f"{served.url}/#/runs/{quote(API_THREAD, '')}")
    expect(page.locator("#run-status")).to_have_text("waiting")
    expect(page.locator(".meta")).to_contain_text(f"started by {SCRIPT} {SVG}")
    expect(page.locator('#steps tr[data-step="send"]')).to_contain_text(f"Send {SCRIPT} {SVG}")
    assert_inert(page)
    page.click('a[data-nav="runs"]')
    expect(page.locator("table tr[data-thread]")).to_have_count(5)
    expect(page.locator(f"table tr{_thread_is(IMG)} a")).to_have_text(IMG)
    assert_inert(page)
    page.click('a[data-nav="start"]')
    page.fill("#thread", SVG)
    page.click("#start-run")
    expect(page.locator("#view .error-line")).to_contain_text(f"thread id '{SVG}' is not allowed")
    assert_inert(page)


def _check_hostile_inbox(page: Page) -> None:
    """Two cards more, with the goal, thread, requester and args as text, and thread links that
    stay within the page."""
    expect(page.locator(".card")).to_have_count(5)
    cli_card = page.locator(f".card{_thread_is(IMG)}")
    api_card = page.locator(f".card{_thread_is(API_THREAD)}")
    for card in (cli_card, api_card):
        expect(card.locator(".goal")).to_have_text(HOSTILE_GOAL)
        args = card.locator("pre.args")
        for shown in (f'"to": {json.dumps(SVG + "@acme.example")}', SCRIPT, JS_URL):
            expect(args).to_contain_text(shown)
    expect(cli_card.locator(".requester a")).to_have_text(IMG)
    assert cli_card.locator(".requester a").get_attribute("href") == f"#/runs/{quote(IMG, '')}"
    expect(api_card.locator(".requester a")).to_have_text(API_THREAD)
    href = api_card.locator(".requester a").get_attribute("href")
    assert href == "#/runs/javascript%3Awindow.__xss"
    expect(api_card.locator(".requester b")).to_have_text(f"{SCRIPT} {SVG}")
    expect(page.locator(f"tr{_thread_is(API_THREAD)}")).to_contain_text(HOSTILE_GOAL)


def _check_hostile_decision(page: Page) -> None:
    """The dialog shows the run and step as text; an edit adding a key of its own is refused,
    the key in the refusal as text."""
    page.locator(f".card{_thread_is(IMG)}").get_by_role("button", name="Review & decide").click()
    facts = page.locator("#d-facts")
    expect(facts).to_contain_text(f"{HOSTILE_GOAL} ({IMG})")
    expect(facts).to_contain_text(f"send: Send {SCRIPT} {SVG}")
    shown = page.input_value("#d-args")
    assert json.loads(shown) == HOSTILE_PLAN["steps"][2]["args"]
    page.fill("#d-args", json.dumps({**json.loads(shown), IMG: SVG}))
    page.fill("#d-approver", f"{IMG} {JS_URL}")
    page.click("#d-approve")
    expect(page.locator("#d-error")).to_contain_text(IMG)
    assert_inert(page)
    # Rejected, with a hostile approver name and reason.
    page.fill("#d-args", shown)
    page.fill("#d-reason", f"{SCRIPT} {SVG} {JS_URL}")
    page.click("#d-reject")
    expect(page.locator("#flash")).to_contain_text(f"in run {IMG}.")


# The text of the "keys" step's row and of its trace events with their data.
KEYS_STEP_TEXT = """() => [
  ...document.querySelectorAll('#steps tr[data-step="keys"]'),
  ...[...document.querySelectorAll("#trace tr.ev")]
    .filter((row) => row.cells[3].textContent === "keys")
    .flatMap((row) => [row, row.nextElementSibling]),
].map((row) => row.textContent).join("\\n")"""


def _check_hostile_run_view(page: Page) -> None:
    """The rejected run's view: goal, thread, step ids, the arg key, approver and reason as
    text, in the steps, the trace and each event's data."""
    expect(page.locator("#run-status")).not_to_have_text("waiting", timeout=30_000)
    expect(page.locator(".page-head h1")).to_have_text(HOSTILE_GOAL)
    expect(page.locator(".meta code").first).to_have_text(IMG)
    steps = page.locator("#steps tbody tr")
    expect(steps.nth(0)).to_contain_text(f"look {SVG}")
    expect(steps.nth(2)).to_contain_text(f"reject by {IMG} {JS_URL}: {SCRIPT} {SVG} {JS_URL}")
    # The key shows where the step's fate shows it: in the error refusing it, or in the data
    # of the call it was passed on with.
    keys = page.evaluate(KEYS_STEP_TEXT)
    assert IMG in keys or json.dumps(IMG)[1:-1] in keys, keys
    received = page.locator('#trace tr[data-type="approval_received"]')
    expect(received).to_contain_text(f"by {IMG} {JS_URL}: {SCRIPT}")
    received.click()  # its data, as JSON
    expect(page.locator("#trace tr.ev-detail:not([hidden]) pre")).to_contain_text(
        f'"reason": {json.dumps(f"{SCRIPT} {SVG} {JS_URL}")}'
    )
    expect(page.locator('#trace tr[data-type="plan_created"]')).to_contain_text(SCRIPT)


def test_a_stopped_run_shows_stopped_and_resumes_from_the_page(served: Served, page: Page) -> None:
    """A run another process holds shows `running`; when that process is killed, the open run
    view turns `stopped` by itself and offers Resume, which finishes it in the server: one
    email. Another run, killed mid-way, is `stopped` in the runs list, whose Resume button
    finishes it too. Neither is an approval waiting."""
    db = served.folder / "plangate.db"
    stop_mid_way(db, "cut")
    stop_mid_way(db, "cut-2")
    holder = hold_elsewhere(db, "cut")
    try:
        page.goto(f"{served.url}/?token={TOKEN}#/runs/cut")
        expect(page.locator("#run-status")).to_have_text("running")
        expect(page.locator("#live")).to_have_text("live")
        expect(page.locator("#resume-run")).to_have_count(0)
    finally:
        holder.kill()
        holder.wait(15)
    expect(page.locator("#run-status")).to_have_text("stopped", timeout=15_000)
    expect(page.locator("#stopped")).to_contain_text("Stopped mid-way")
    assert demo_outbox(served.outbox) == []
    page.click("#resume-run")
    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    expect(page.locator("#stopped")).to_have_count(0)
    expect(page.locator('#steps tr[data-step="send"]')).to_contain_text("ok")
    expect(page.locator("#live")).to_have_text("finished")
    assert len(demo_outbox(served.outbox)) == 1

    page.click('a[data-nav="inbox"]')
    expect(page.locator(".card")).to_have_count(3)  # the three paused runs only
    row = page.locator('tr[data-thread="cut-2"]')
    expect(row.locator(".status")).to_have_text("stopped")
    row.get_by_role("button", name="Resume").click()
    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    assert page.url.endswith("#/runs/cut-2")
    assert [mail["to"] for mail in demo_outbox(served.outbox)] == ["ana.lopez@acme.example"] * 2
    assert served.status("cut") == served.status("cut-2") == "success"


# --- a project of a team's own, served with --project ----------------------------------------

# The project's own profile, and its default: smb's rules, and every ledger call waits too.
CAREFUL_PROFILE = """\
name: careful
description: Approvals for execute, and for every call to the ledger.
require_approval: [execute]
approval_required_tools: ["ledger.*"]
sensitive_domains: [billing]
redact: true
"""
# A tool of each source: Python, the stdio MCP server, the OpenAPI service (one operation that
# needs the bearer token `${BILLING_TOKEN}` gives, then the refund, a POST that waits under smb).
REFUND_PLAN = """\
goal: Refund the duplicate API charge on inv-2
steps:
  - id: note
    tool: team.note
    args: {text: refund requested by Globex}
  - id: look
    tool: ledger.lookup
    args: {invoice_id: inv-2}
  - id: customer
    tool: billing.get_customer
    args: {customer_id: globex}
  - id: refund
    tool: billing.create_refund
    depends_on: [look, customer]
    args: {invoice_id: inv-2, amount: 12.5, reason: duplicate API charge}
    description: Refund the duplicate charge
"""


@dataclass
class ServedProject:
    url: str
    project: Path
    elsewhere: Path
    service: Service
    mcp_log: Path

    def mcp_calls(self) -> list[dict[str, Any]]:
        if not self.mcp_log.exists():
            return []
        return [json.loads(line) for line in self.mcp_log.read_text().splitlines()]


def write_project(folder: Path, service_url: str, *, mcp_log: Path) -> Path:
    """The team project (`write_team_project`) with a profile of its own, `careful`, its
    default."""
    (folder / "profiles").mkdir(parents=True)
    (folder / "profiles" / "careful.yaml").write_text(CAREFUL_PROFILE)
    write_team_project(folder, service_url, mcp_log, profile="careful", profiles="profiles/")
    return folder


@pytest.fixture
def served_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedProject]:
    """The billing service on loopback, a project using it, and `plangate serve --project`
    started in another folder, with nothing there or above that names a project."""
    monkeypatch.setenv("BILLING_TOKEN", BILLING_TOKEN)
    monkeypatch.delenv("PLANGATE_PROJECT", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert not any((d / "plangate.yaml").exists() for d in (elsewhere, *elsewhere.parents))
    with billing_service() as service:
        mcp_log = tmp_path / "mcp.jsonl"
        project = write_project(tmp_path / "team", service.url, mcp_log=mcp_log)
        server = start_serve(elsewhere, "--project", str(project), token=TOKEN)
        try:
            yield ServedProject(server.url, project, elsewhere, service, mcp_log)
        finally:
            server.stop()


def test_a_project_run_started_from_the_page_pauses_on_its_refund_and_is_approved(
    served_project: ServedProject, page: Page
) -> None:
    """`plangate serve --project` from another folder: a plan started from the page under smb
    runs the project's Python, MCP and OpenAPI tools (the last with the token the environment
    gives), waits at the refund with its real args in the inbox, and once approved in the page
    finishes: one refund in the service, one lookup in the MCP server, all in the project's
    database."""
    served = served_project
    page.goto(f"{served.url}/?token={TOKEN}#/start")
    expect(page.locator("#foot-db")).to_have_text(
        f"project {served.project / 'plangate.yaml'} · "
        f"database sqlite:///{served.project / 'runs' / 'plangate.db'}"
    )
    # Not the demo: no demo plan to start by mistake, and the form names the project.
    expect(page.locator("#plan-text")).to_have_value("")
    expect(page.locator(".page-head .sub")).to_have_text(
        f"with the tools of project {served.project / 'plangate.yaml'} (plangate tools lists them)"
    )
    page.fill("#plan-text", REFUND_PLAN)
    page.select_option("#profile", "smb")
    page.fill("#thread", "globex-refund")
    page.click("#start-run")

    expect(page.locator("#run-status")).to_have_text("waiting", timeout=30_000)
    assert page.url.endswith("#/runs/globex-refund")
    for step in ("note", "look", "customer"):
        expect(page.locator(f'#steps tr[data-step="{step}"]')).to_have_attribute(
            "data-status", "ok"
        )
    assert [(c["tool"], c["args"]) for c in served.mcp_calls()] == [
        ("lookup", {"invoice_id": "inv-2"})
    ]
    assert served.service.refunds() == []

    page.click('a[data-nav="inbox"]')
    expect(page.locator(".card")).to_have_count(1)
    card = page.locator('.card[data-thread="globex-refund"]')
    expect(card.locator(".tool")).to_have_text("billing.create_refund")
    expect(card.locator(".chip.action")).to_have_text("execute · from the OpenAPI method")
    expect(card.locator(".requester")).to_contain_text("profile smb")
    args = card.locator("pre.args")
    for shown in ('"invoice_id": "inv-2"', '"amount": 12.5', '"reason": "duplicate API charge"'):
        expect(args).to_contain_text(shown)

    card.get_by_role("button", name="Review & decide").click()
    assert json.loads(page.input_value("#d-args")) == {
        "invoice_id": "inv-2",
        "amount": 12.5,
        "reason": "duplicate API charge",
    }
    page.fill("#d-approver", "Lee Chen")
    page.click("#d-approve")

    expect(page.locator("#run-status")).to_have_text("success", timeout=30_000)
    assert page.url.endswith("#/runs/globex-refund")
    refund_row = page.locator('#steps tr[data-step="refund"]')
    expect(refund_row).to_have_attribute("data-status", "ok")
    expect(refund_row).to_contain_text("approve by Lee Chen")
    expect(page.locator("#live")).to_have_text("finished")
    (refund,) = served.service.refunds()
    assert (refund["invoice_id"], refund["amount"], refund["reason"]) == (
        "inv-2",
        12.5,
        "duplicate API charge",
    )
    # The customer read carried the token `${BILLING_TOKEN}` gave the server's process.
    (read,) = [r for r in served.service.requests() if r["path"] == "/customers/globex"]
    assert read["headers"]["authorization"] == f"Bearer {BILLING_TOKEN}"
    assert [c["tool"] for c in served.mcp_calls()] == ["lookup"]  # not called again on resume
    assert (served.project / "runs" / "plangate.db").is_file()
    assert not (served.elsewhere / "plangate.db").exists()


def test_the_start_form_offers_the_projects_profiles_and_starts_under_its_default(
    served_project: ServedProject, page: Page
) -> None:
    """The profile select lists the built-ins and the project's own `careful`, with the
    project's default (`careful`, neither the first option nor the page's fallback) selected; a
    run started as the form stands is governed by it: it waits at the ledger read, which smb
    would let through."""
    page.goto(f"{served_project.url}/?token={TOKEN}#/start")
    select = page.locator("#profile")
    expect(select.locator("option")).to_have_text(["enterprise", "smb", "technical", "careful"])
    expect(select).to_have_value("careful")
    expect(select.locator("option:checked")).to_have_text("careful")

    page.fill("#plan-text", REFUND_PLAN)
    page.fill("#thread", "careful-refund")
    page.click("#start-run")
    expect(page.locator("#run-status")).to_have_text("waiting", timeout=30_000)
    expect(page.locator('#steps tr[data-step="note"]')).to_have_attribute("data-status", "ok")
    page.click('a[data-nav="inbox"]')
    card = page.locator('.card[data-thread="careful-refund"]')
    expect(card.locator(".tool")).to_have_text("ledger.lookup")
    expect(card.locator(".requester")).to_contain_text("profile careful")
    assert served_project.mcp_calls() == []
    assert served_project.service.refunds() == []
