"""The documentation's complete examples run as written: the Python blocks and shell commands of
the README and of the pages under `docs/`, each in a fresh process and folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from _support import copy_demo, plangate, run_in

from plangate import demo_outbox

ROOT = Path(__file__).resolve().parents[1]


def doc_section(page: str, heading: str) -> str:
    """The part of `page` (a path from the repository's root: `README.md`, `docs/...`) under the
    heading line `heading`, up to the next heading of any level; a `#` line inside a code block
    is a comment, not a heading."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    start = lines.index(heading) + 1
    fenced = False
    for end in range(start, len(lines)):
        if lines[end].startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", lines[end]):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def doc_blocks(page: str, heading: str, language: str) -> list[str]:
    """The `language` code blocks of the section of `page` under `heading`."""
    return re.findall(rf"```{language}\n(.*?)```", doc_section(page, heading), re.S)


def doc_example(page: str, heading: str, index: int = 0) -> str:
    """The `index`-th Python block of the section of `page` under `heading`."""
    return doc_blocks(page, heading, "python")[index]


def run_example(code: str, cwd: Path) -> str:
    done = run_in(cwd, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_example_pauses_and_an_approval_finishes_the_run(tmp_path: Path) -> None:
    out = run_example(doc_example("README.md", "## A plan, a pause, an approval"), tmp_path)
    assert out.splitlines() == ["email.send high", "success ['ok', 'ok']"]
    (sent,) = demo_outbox(tmp_path / "outbox.db")
    assert sent["to"] == "ana.lopez@acme.example"


def test_the_in_python_example_pauses_approves_and_reads_the_trace(tmp_path: Path) -> None:
    out = run_example(
        doc_example("docs/getting-started/python.md", "# From Python"), tmp_path
    ).splitlines()
    assert out[0].startswith("high If approved, plangate will call email.send")
    assert "to ana.lopez@acme.example (high risk)" in out[0]  # the approver sees who
    assert out[1].startswith("success ['ok', 'ok'] {'p50': ")
    assert re.fullmatch(r"\d+ trace events", out[2])
    assert (tmp_path / "runs.db").exists()
    (sent,) = demo_outbox(tmp_path / "outbox.db")
    assert (sent["to"], sent["subject"]) == ("ana.lopez@acme.example", "Renewal")


def test_the_async_example_runs_and_reads_the_trace(tmp_path: Path) -> None:
    status, events = run_example(
        doc_example("docs/getting-started/python.md", "# From Python", 1), tmp_path
    ).split()
    assert status == "success"
    assert int(events) >= 5  # plan start, the step's events, plan end


def test_declaring_what_a_tool_does_keeps_a_plan_from_calling_a_refund_a_read(
    tmp_path: Path,
) -> None:
    out = run_example(
        doc_example("docs/concepts/actions.md", "## What a tool does"), tmp_path
    ).splitlines()
    assert out == [
        "{'plangate': {'action': 'execute', 'irreversible': True}}",
        "execute tool True high",
    ]


def test_the_in_process_tools_example_registers_by_name_and_by_key(tmp_path: Path) -> None:
    out = run_example(doc_example("docs/how-to/python-tools.md", "## In-process tools"), tmp_path)
    assert out.strip() == "['billing.lookup', 'billing.refund']"


def test_the_offline_example_answers_from_the_demo_mocks(tmp_path: Path) -> None:
    assert (
        run_example(
            doc_example("docs/how-to/mocks.md", "# Mocks and offline runs"), tmp_path
        ).strip()
        == "True"
    )


def test_the_mcp_example_loads_the_reference_filesystem_server(tmp_path: Path) -> None:
    """As pasted: `npx` fetches the server from npm and runs it over stdio."""
    out = run_example(doc_example("docs/how-to/mcp.md", "## From Python"), tmp_path)
    assert out.strip().startswith("['fs.")


def _on_path() -> dict[str, str]:
    """The environment with this Python's `plangate` first on PATH, and no project named."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PLANGATE_PROJECT", None)
    return env


def doc_commands(page: str, heading: str) -> str:
    """The first bash block of the section of `page` under `heading`."""
    return doc_blocks(page, heading, "bash")[0]


def run_doc_commands(
    page: str, heading: str, cwd: Path, *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The section's first bash block run by `bash -e` in `cwd`, as pasted into a terminal
    where this Python's `plangate` is on PATH."""
    return subprocess.run(
        ["bash", "-ec", doc_commands(page, heading)],
        cwd=cwd,
        env=_on_path(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_test_command_updates_the_package_lists_before_installing_chromium() -> None:
    """On a fresh Debian machine `apt-get install` without `apt-get update` finds no package."""
    section = doc_section("README.md", "## Try it")
    (command,) = [line for line in section.splitlines() if "apt-get install" in line]
    assert "apt-get update && apt-get install -y chromium" in command


def test_the_first_as_tool_example_says_it_needs_the_langchain_extra() -> None:
    """`create_agent` is not installed by plangate alone: the snippet says which extra brings it."""
    code = doc_example("docs/how-to/langchain-agent.md", "# Embed in a LangChain agent")
    assert "as_tool(" in code
    assert code.splitlines()[0].startswith("# Needs plangate[langchain]")


def test_the_project_file_section_runs_as_pasted_and_python_goes_on_with_it(
    tmp_path: Path,
) -> None:
    """`plangate init orders && ...` writes a starter, lists and checks its tools, pauses on the
    refund and approves it; the section's Python then starts a run of the same project that
    `plangate approve` finishes from the CLI."""
    page = "docs/getting-started/first-tool.md"
    done = subprocess.run(
        ["bash", "-c", doc_commands(page, "# Your first own tool")],
        cwd=tmp_path,
        env=_on_path(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "orders.refund  python  orders  execute (tool), irreversible  high  asks" in done.stdout
    assert "No problem found under profile smb." in done.stdout
    assert "Run success" in done.stdout

    out = run_example(doc_example(page, "## From Python"), tmp_path).splitlines()
    assert out == ["True", "orders.refund"]
    approved = plangate(tmp_path, "approve", "py-1", "--project", "orders", "--approver", "lee")
    assert approved.returncode == 0, approved.stderr
    assert "Run success" in approved.stdout


def test_the_audit_trail_commands_verify_and_export_the_try_it_run(tmp_path: Path) -> None:
    """The section's commands verify and export the run of "Try it", in a copy of the demo that
    holds only that run, whatever a run of the README's first command left in the tree."""
    demo = copy_demo(tmp_path / "examples" / "demo")
    started = plangate(demo, "run", "sales_followup.yaml", "--profile", "smb", "--thread", "demo")
    assert started.returncode == 3, started.stderr
    assert plangate(demo, "approve", "demo", "--approver", "you").returncode == 0

    commands = doc_commands("docs/concepts/audit.md", "# The audit trail")
    done = subprocess.run(
        ["bash", "-c", commands],
        cwd=tmp_path,
        env=_on_path(),
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Run demo: the hash chain of its 13 events holds." in done.stdout
    lines = (demo / "audit.jsonl").read_text().splitlines()
    assert '"verified": true' in lines[0]


def test_the_keeping_the_database_small_commands_prune_a_run_and_keep_its_trace(
    tmp_path: Path,
) -> None:
    """The section's commands finish a run, prune it (a dry run first), and print its trace."""
    done = run_doc_commands("docs/how-to/cli.md", "## Keeping the database small", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(dry run: nothing was removed)." in done.stdout
    assert "Pruned 1 run: " in done.stdout
    assert done.stdout.splitlines()[-1].startswith('{"type": "plan_completed", ')


def test_the_passing_outputs_forward_plan_runs_as_written(tmp_path: Path) -> None:
    plan = doc_blocks("docs/concepts/plans.md", "## Passing outputs forward", "yaml")[0]
    (tmp_path / "plan.yaml").write_text("goal: the docs\n" + plan)
    run = plangate(tmp_path, "run", "plan.yaml", "--profile", "smb", "--thread", "r")
    assert run.returncode == 3, run.stdout + run.stderr
    assert (
        '"to": "ana.lopez@acme.example", "subject": "Renewal for Acme Corp", '
        '"body": "Costs ${price} as agreed"'
    ) in run.stdout
    assert "from:        args.to = ${steps.lookup.output.contact_email}" in run.stdout


def test_the_several_requests_example_decides_one_then_the_rest(tmp_path: Path) -> None:
    out = run_example(
        doc_example("docs/concepts/approvals.md", "## Several requests at once"), tmp_path
    ).splitlines()
    assert out == [
        "['ana', 'ben', 'cy']",
        "['ana', 'cy']",
        "success ['sent to ana', 'sent to ben', 'sent to cy']",
    ]


def test_the_plan_review_example_covers_the_draft_and_the_send_still_asks(
    tmp_path: Path,
) -> None:
    out = run_example(
        doc_example("docs/concepts/plan-review.md", "# One review for the whole plan"), tmp_path
    ).splitlines()
    assert out == [
        "plan_review [('lookup', 'low', False), ('draft', 'low', True), ('send', 'high', False)]",
        "send",
    ]


def test_the_hitl_example_shows_the_request_and_takes_an_edit(tmp_path: Path) -> None:
    heading = "## LangChain's HITL format: Agent Chat UI, Agent Inbox"
    out = run_example(doc_example("docs/how-to/langgraph-server.md", heading), tmp_path)
    out = out.splitlines()
    assert out == [
        "email.send ['approve', 'edit', 'reject', 'respond']",
        "success lee bo@acme.example",
    ]


def test_the_opentelemetry_example_prints_the_step_and_run_spans(tmp_path: Path) -> None:
    out = run_example(
        doc_example("docs/how-to/telemetry.md", "# Export telemetry"), tmp_path
    ).splitlines()
    assert out == ["['execute_tool crm.lookup_account', 'plangate.run']"]


def test_the_four_eyes_example_runs_after_two_approvers(tmp_path: Path) -> None:
    out = run_example(
        doc_example("docs/concepts/four-eyes.md", "# Four eyes"), tmp_path
    ).splitlines()
    assert out == [
        "high 2",
        "['lee']",
        "invalid decision: approver: 'Lee ' reads as 'lee', who has approved this request "
        "already; it needs 2 different approvers",
        "success ['lee', 'kim']",
    ]


def test_the_who_decides_example_refuses_a_typed_name_and_takes_a_signed_decision(
    tmp_path: Path,
) -> None:
    out = run_example(
        doc_example("docs/concepts/identity.md", "## Rules in the profile"), tmp_path
    ).splitlines()
    assert out == ["identity", "oidc"]


def test_the_profile_example_loads_with_every_field_it_shows(tmp_path: Path) -> None:
    from plangate import load_profile

    profile_file = doc_blocks("docs/concepts/profiles.md", "# Profiles", "yaml")[0]
    (tmp_path / "finance.yaml").write_text(profile_file)
    profile = load_profile(tmp_path / "finance.yaml")
    assert (profile.name, profile.max_concurrency, profile.on_reject) == ("finance-team", 8, "skip")
    assert profile.approvals_needed("high") == 2
    assert profile.plan_review is not None
    assert profile.plan_review.covers == "medium"
    assert (profile.telemetry, profile.capture_content) == ("otel", False)
    assert (profile.on_expiry, profile.expiry_policy) == ("halt", "halt")
    assert profile.tool_actions == {"crm.get_*": "read", "crm.*": "execute"}


def test_the_cleanup_plan_runs_in_the_order_of_its_list(tmp_path: Path) -> None:
    out = run_example(
        doc_example("docs/concepts/plans.md", "## The order a plan runs in"), tmp_path
    ).splitlines()
    assert out == ["['inv.restock', 'tickets.file', 'reports.write'] inv.delete"]


def test_the_anchors_example_anchors_a_run_outside_its_database(tmp_path: Path) -> None:
    out = run_example(doc_example("docs/concepts/audit.md", "## Anchors"), tmp_path).splitlines()
    assert out == ["True True"]
    anchors = (tmp_path / "anchors.jsonl").read_text().splitlines()
    assert anchors
    assert all('"thread_id": "anchored-1"' in line for line in anchors)
