"""Drive Agent Chat UI in headless Chromium against `langgraph dev` serving a plangate project:
three runs, each started from the chat box with the demo plan and paused at `email.send`, are
answered with Approve, with an edit of `to`, and with Reject and a reason. Each outcome is read
back through LangGraph's SDK and checked; a screenshot is taken at each stage.

    python check.py --api URL --ui URL --plan sales_followup.yaml --out FOLDER

`check.sh` beside it builds and starts everything this needs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from langgraph_sdk import get_sync_client
from playwright.sync_api import Page, sync_playwright

STARTUP_SECONDS = 300  # `next dev` compiles the page on its first request
NEW_ADDRESS = "bo.chen@acme.example"
REASON = "Not this week: wait for the renewal quote"


def wait_for(url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    sys.exit(f"{url} did not answer in {STARTUP_SECONDS} s (see the logs in the output folder)")


def start_run(page: Page, ui: str, plan: dict[str, Any]) -> str:
    """Send the plan as a chat message; wait for the request to render; the thread id."""
    page.goto(ui, wait_until="load", timeout=STARTUP_SECONDS * 1000)
    page.get_by_placeholder("Type your message...").fill(json.dumps(plan))
    page.keyboard.press("Enter")
    page.get_by_text("email.send").first.wait_for(timeout=120_000)
    page.wait_for_url("**threadId=*", timeout=60_000)
    time.sleep(2)  # let the request's form settle before it is used
    return page.url.split("threadId=")[1].split("&")[0]


def approve(page: Page, out: Path) -> None:
    page.get_by_role("button", name="Approve").first.click()


def edit(page: Page, out: Path) -> None:
    boxes = page.locator("textarea")
    to = next(
        boxes.nth(n)
        for n in range(boxes.count())
        if boxes.nth(n).input_value() == "ana.lopez@acme.example"
    )
    to.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(NEW_ADDRESS, delay=20)
    page.screenshot(path=out / "edit-2-edited.png", full_page=True)
    page.get_by_role("button", name="Submit", exact=True).click()


def reject(page: Page, out: Path) -> None:
    page.get_by_text("Description", exact=True).click()
    time.sleep(1)
    page.screenshot(path=out / "reject-2-description.png")
    page.reload(wait_until="load")
    page.get_by_role("button", name="Submit rejection").wait_for(timeout=120_000)
    time.sleep(2)
    page.get_by_placeholder("Share feedback with the agent...").fill(REASON)
    page.get_by_role("button", name="Submit rejection").click()


def outcome(client: Any, thread: str) -> dict[str, Any]:
    """The run's result once it has one."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        values = client.threads.get_state(thread)["values"] or {}
        if values.get("result"):
            return dict(values["result"])
        time.sleep(0.5)
    sys.exit(f"thread {thread}: no result 60 s after the answer")


def check(name: str, result: dict[str, Any]) -> list[str]:
    """What is wrong with the outcome of the run answered by `name`."""
    send = next(s for s in result["steps"] if s["tool"] == "email.send")
    (approval,) = [a for a in result["approvals"] if a["step_id"] == send["step_id"]]
    expected = {
        "approve": ("success", "ok", "approve"),
        "edit": ("success", "ok", "edit"),
        "reject": ("partial", "rejected", "reject"),
    }[name]
    problems = []
    if (result["status"], send["status"], approval["decision"]) != expected:
        got = (result["status"], send["status"], approval["decision"])
        problems.append(f"{name}: expected {expected}, got {got}")
    if name == "edit" and (approval.get("args") or {}).get("to") != NEW_ADDRESS:
        problems.append(f"edit: the send went with {approval.get('args')}")
    if name == "reject" and approval.get("reason") != REASON:
        problems.append(f"reject: the reason recorded is {approval.get('reason')!r}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--ui", required=True)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    plan = yaml.safe_load(args.plan.read_text())
    wait_for(f"{args.api}/ok")
    wait_for(args.ui)
    client = get_sync_client(url=args.api, api_key=None)
    answers: dict[str, Callable[[Page, Path], None]] = {
        "approve": approve,
        "edit": edit,
        "reject": reject,
    }
    problems: list[str] = []
    summary: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium")
        )
        for name, answer in answers.items():
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            thread = start_run(page, args.ui, plan)
            page.screenshot(path=args.out / f"{name}-1-request.png")
            answer(page, args.out)
            result = outcome(client, thread)
            time.sleep(3)  # the closing message renders after the result is stored
            page.screenshot(path=args.out / f"{name}-3-after.png", full_page=True)
            problems += check(name, result)
            summary[name] = {
                "thread": thread,
                "status": result["status"],
                "approvals": [
                    {k: a.get(k) for k in ("step_id", "decision", "approver", "reason", "args")}
                    for a in result["approvals"]
                ],
            }
            page.close()
        browser.close()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if problems:
        sys.exit("\n".join(problems))
    print(f"Agent Chat UI answered all three requests; screenshots in {args.out}")


if __name__ == "__main__":
    main()
