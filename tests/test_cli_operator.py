"""The `plangate` command as an operator meets it: what it shows of plan-supplied text, its exit
codes, runs stopped by Ctrl-C or a closed pipe, long runs, commands that only read, and the one
that keeps closing expired approvals until Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _support import plangate, unattended_profile

from plangate import InvalidDecision, RunNotFinished, demo_outbox
from plangate.cli import (
    EXIT_MEANINGS,
    ExitCode,
    cli_message,
    describe,
    human_duration,
    json_line,
    step_positions,
    visible,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "demo"
DEMO = str(EXAMPLES / "sales_followup.yaml")
COMMAND = [sys.executable, "-m", "plangate"]
# What a terminal acts on or hides: C0, DEL, C1, a bidi override, a zero-width space, a line
# separator.
INVISIBLE = ("\x1b", "\x07", "\x7f", "\x9b", "\u202e", "\u200b", "\u2028")


# `python -m plangate` with Python's own Ctrl-C handling, which a process inherits no more once
# SIGINT is ignored (a test run started in the background of a shell script).
WITH_CTRL_C = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv = ["plangate", *sys.argv[1:]]
runpy.run_module("plangate", run_name="__main__")
"""


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """`plangate` in a process of its own, its output read as it comes."""
    return subprocess.Popen(
        [sys.executable, "-c", WITH_CTRL_C, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lookups(path: Path, count: int, *, failing_every: int = 0) -> str:
    """A plan of `count` account lookups; with `failing_every`, every such step looks up an
    account the demo's mocks do not know, and ends `error`."""
    steps = [
        {
            "id": f"s{n}",
            "tool": "crm.lookup_account",
            "args": {"account": "nobody" if failing_every and n % failing_every == 0 else "acme"},
        }
        for n in range(count)
    ]
    path.write_text(json.dumps({"goal": f"{count} lookups", "steps": steps}))
    return str(path)


def words(text: str) -> str:
    """`text` with its line breaks and runs of spaces as one space: help text is rewrapped."""
    return " ".join(text.split())


def assert_one_line(stderr: str, *parts: str) -> None:
    assert "Traceback" not in stderr
    (line,) = stderr.strip().splitlines()
    for part in parts:
        assert part in line, line


# --- control characters -----------------------------------------------------------------------


def test_visible_escapes_what_a_terminal_would_act_on_and_keeps_the_rest() -> None:
    assert visible("plain text, Zoë, 東京, emoji 🙂") == "plain text, Zoë, 東京, emoji 🙂"
    assert visible("a\x1b[8mb") == "a\\x1b[8mb"
    assert visible("tab\tnew\nline\rend") == "tab\\tnew\\nline\\rend"
    assert visible("del\x7f c1\x9b nul\x00") == "del\\x7f c1\\x9b nul\\x00"
    assert visible("\u202egnp.exe \u2066x\u2069 zero\u200bwidth \u2028") == (
        "\\u202egnp.exe \\u2066x\\u2069 zero\\u200bwidth \\u2028"
    )
    for char in INVISIBLE:
        assert char not in visible(f"x{char}y")


def test_json_lines_escape_c1_and_bidi_characters_and_parse_to_the_same_value() -> None:
    value = {"text": "a\x1b\x7f\x9b\u202e\u2028b \U000e0001 Zoë", "n": 1}
    line = json_line(value)
    assert all(char not in line for char in (*INVISIBLE, "\U000e0001"))
    assert "Zoë" in line  # readable text stays as it is
    assert json.loads(line) == value


EVIL_DESCRIPTION = "Send the mail\x1b[8m will only read data (low risk)\x1b[0m\nrisk: low"


def test_plan_and_tool_text_reaches_the_terminal_escaped(tmp_path: Path) -> None:
    """A step's id and description, the plan's goal, the args, an approver's name and a tool's
    error message are all shown with their control and bidi characters escaped: a plan cannot
    hide the rest of the consequence line or fake a line of its own."""
    plan = tmp_path / "evil.json"
    plan.write_text(
        json.dumps(
            {
                "goal": "Renew \u202egnp.exe",
                "steps": [
                    {"id": "look\x9b", "tool": "crm.lookup_account", "args": {"account": "acme"}},
                    {
                        "id": "send\x1b[2K",
                        "tool": "email.send",
                        "args": {"to": "a@b.example", "subject": "s\x7f", "body": "b\u202e"},
                        "description": EVIL_DESCRIPTION,
                    },
                ],
            }
        )
    )
    fixtures = tmp_path / "tools.yaml"
    fixtures.write_text(
        'tools:\n  crm.lookup_account:\n    - raise: {message: "down\\e[8m hidden\\u202e"}\n'
    )
    run = plangate(
        tmp_path, "run", str(plan), "--profile", "smb", "--thread", "evil",
        "--offline", "--fixtures", str(fixtures),
    )  # fmt: skip
    assert run.returncode == ExitCode.PAUSED, run.stderr
    pending = plangate(tmp_path, "pending")
    show = plangate(tmp_path, "show", "evil")
    approve = plangate(tmp_path, "approve", "evil", "--approver", "lee\x1b[2J\u202e")
    unknown = plangate(tmp_path, "show", "ghost\x1b[31m")
    for done in (run, pending, show, approve, unknown):
        for char in INVISIBLE:
            assert char not in done.stdout + done.stderr, (char, done.args)

    consequence = "send the mail\\x1b[8m will only read data (low risk)\\x1b[0m\\nrisk: low"
    (shown,) = [line for line in run.stdout.splitlines() if line.startswith("  consequence:")]
    assert consequence in shown
    assert shown.endswith("It changes the world and cannot be undone.")
    assert "goal: 'Renew \\u202egnp.exe'" in run.stdout
    assert "Paused: step 'send\\x1b[2K' (email.send)" in run.stdout
    assert '"subject": "s\\x7f", "body": "b\\u202e"' in run.stdout
    # The tool's error, in the step table (the lookup ran beside the send that waited).
    assert "down\\x1b[8m hidden\\u202e" in approve.stdout
    assert consequence in pending.stdout
    assert "look\\x9b" in approve.stdout  # recorded when the send beside it is decided
    assert "approve by lee\\x1b[2J\\u202e" in approve.stdout
    assert_one_line(unknown.stderr, "no run with thread id 'ghost\\x1b[31m'")

    trace = plangate(tmp_path, "trace", "evil")
    assert trace.returncode == 0, trace.stderr
    for char in INVISIBLE:
        assert char not in trace.stdout
    events = [json.loads(line) for line in trace.stdout.splitlines()]
    assert events[0]["data"]["goal"] == "Renew \u202egnp.exe"  # the same JSON, escaped
    asked = next(e for e in events if e["type"] == "approval_requested")
    assert asked["step_id"] == "send\x1b[2K"
    assert "\x1b[8m will only read data" in asked["data"]["consequence"]


# --- exit codes -------------------------------------------------------------------------------


def test_exit_codes_are_fixed_and_in_the_help(tmp_path: Path) -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "SUCCESS": 0,
        "USER_ERROR": 1,
        "COMMAND_LINE": 2,
        "PAUSED": 3,
        "PARTIAL": 4,
        "FAILED": 5,
        "EXPIRED": 6,
        "CHAIN_BROKEN": 7,
        "INTERRUPTED": 130,
        "OUTPUT_CLOSED": 141,
    }
    assert set(EXIT_MEANINGS) == set(ExitCode)
    shown = plangate(tmp_path, "--help")
    assert shown.returncode == 0
    for code, meaning in EXIT_MEANINGS.items():
        assert re.search(rf"^ +{int(code)}  {re.escape(meaning)}$", shown.stdout, re.M), meaning
    assert "(`plangate expire` exits 0 whatever the runs it closed did next;" in words(shown.stdout)
    for command in ("run", "approve", "reject", "resume"):
        help_text = words(plangate(tmp_path, command, "--help").stdout)
        assert "Exit status: 0 success, 3 paused for approval, 4 partial, 5 failed" in help_text


def test_each_outcome_of_a_run_has_its_exit_code(tmp_path: Path) -> None:
    """Real runs of the demo: success, paused, partial, failed, a decision that came too late,
    and `expire`, which exits 0 whatever the runs it closed did."""
    ok = plangate(tmp_path, "run", DEMO, "--profile", unattended_profile(tmp_path), "--offline")
    assert ok.returncode == ExitCode.SUCCESS, ok.stderr

    paused = plangate(tmp_path, "run", DEMO, "--profile", "smb", "--thread", "p")
    assert paused.returncode == ExitCode.PAUSED, paused.stderr
    approved = plangate(tmp_path, "approve", "p", "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stderr

    enterprise = plangate(tmp_path, "run", DEMO, "--profile", "enterprise", "--thread", "e")
    assert enterprise.returncode == ExitCode.PAUSED  # at the draft
    again = plangate(tmp_path, "approve", "e", "--approver", "lee")
    assert again.returncode == ExitCode.PAUSED, again.stderr  # at the send
    rejected = plangate(tmp_path, "reject", "e", "--reason", "no", "--approver", "lee")
    assert rejected.returncode == ExitCode.PARTIAL, rejected.stderr

    down = tmp_path / "down.yaml"
    down.write_text("tools:\n  email.send:\n    - raise: {error: connection}\n")
    offline = ("--profile", unattended_profile(tmp_path), "--offline", "--fixtures", str(down))
    partial = plangate(tmp_path, "run", DEMO, *offline)
    assert partial.returncode == ExitCode.PARTIAL, partial.stderr
    down.write_text(
        "tools:\n  crm.lookup_account:\n    - raise: {error: connection}\n"
        "  email.draft:\n    - raise: {error: connection}\n"
        "  email.send:\n    - raise: {error: connection}\n"
    )
    failed = plangate(tmp_path, "run", DEMO, *offline)
    assert failed.returncode == ExitCode.FAILED, failed.stderr
    assert "Run failed" in failed.stdout

    short = tmp_path / "short.yaml"
    short.write_text("name: short\nrequire_approval: [execute]\napproval_timeout_seconds: 0.001\n")
    for thread in ("late", "cron"):
        started = plangate(tmp_path, "run", DEMO, "--profile", str(short), "--thread", thread)
        assert started.returncode == ExitCode.PAUSED, started.stderr
    late = plangate(tmp_path, "approve", "late", "--approver", "kim")
    assert late.returncode == ExitCode.EXPIRED, late.stderr
    assert "expired: no decision in time (decided late by kim)" in late.stdout
    assert "the decision was recorded as expired, not as given" in late.stdout
    sent = demo_outbox(tmp_path / "plangate-outbox.db")
    assert [mail["to"] for mail in sent] == ["ana.lopez@acme.example"]  # approved in time: "p"

    expire = plangate(tmp_path, "expire")
    assert expire.returncode == ExitCode.SUCCESS, expire.stderr
    assert "cron: approval expired" in expire.stdout
    assert "Run partial" in expire.stdout


def test_pending_marks_expired_requests_and_show_lists_the_steps_done(tmp_path: Path) -> None:
    short = tmp_path / "short.yaml"
    short.write_text("name: short\nrequire_approval: [execute]\napproval_timeout_seconds: 0.001\n")
    plangate(tmp_path, "run", DEMO, "--profile", str(short), "--thread", "old")
    plangate(tmp_path, "run", DEMO, "--profile", "smb", "--thread", "new")

    pending = plangate(tmp_path, "pending")
    assert pending.returncode == 0, pending.stderr
    lines = pending.stdout.splitlines()
    (old,) = [line for line in lines if line.startswith("old  ")]
    (new,) = [line for line in lines if line.startswith("new  ")]
    assert re.search(r"  EXPIRED at \S+ \(run plangate expire\)$", old), old
    assert "EXPIRED" not in new
    assert " expires " in new

    show = plangate(tmp_path, "show", "new")
    assert show.returncode == 0, show.stderr
    table = show.stdout.split("Paused:")[0]
    assert "Steps done: 2 of 3" in table
    rows = [line.split()[:5] for line in table.splitlines()[2:] if line.strip()]
    assert rows == [
        ["lookup", "crm.lookup_account", "read", "(tool)", "ok"],
        ["draft", "email.draft", "propose", "(tool)", "ok"],
    ]
    assert "Paused: step 'send' (email.send) needs approval." in show.stdout
    assert "EXPIRED" not in show.stdout
    assert "This request has EXPIRED" in plangate(tmp_path, "show", "old").stdout


# --- stopped runs -----------------------------------------------------------------------------


def read_until(process: subprocess.Popen[str], text: str) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return lines
    pytest.fail(f"the run ended before printing {text!r}: {''.join(lines)[-2000:]}")


def test_ctrl_c_leaves_a_run_that_runs_lists_and_resume_finishes_and_show_summarises(
    tmp_path: Path,
) -> None:
    """SIGINT mid-run: one line naming the thread and `plangate resume`, exit 130. Meanwhile
    `runs` said `running`; after, `stopped`; a new plan on the thread is refused in CLI words;
    `resume` finishes every step once; `show` summarises the 1,500 steps (`--full`: all)."""
    plan = lookups(tmp_path / "long.json", 1500, failing_every=100)
    running = start(tmp_path, "run", plan, "--profile", "technical", "--offline", "--thread", "L")
    read_until(running, "tool_call_start")
    running.send_signal(signal.SIGSTOP)  # it holds its thread's lock, and cannot finish
    try:
        listed = plangate(tmp_path, "runs")
        shown = plangate(tmp_path, "show", "L")
    finally:
        running.send_signal(signal.SIGCONT)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=120)
    assert listed.stdout.splitlines() == ["L  running: another process runs it now"]
    assert "Run L has not finished: another process runs it now" in shown.stdout

    assert running.returncode == ExitCode.INTERRUPTED, err
    said, _, stopped_at = err.partition("\n")
    assert said == WAITS
    assert_one_line(
        stopped_at, "plangate: interrupted: run L stopped before it finished; `plangate resume L`"
    )
    assert "Run " not in out  # stopped before its end

    stopped = plangate(tmp_path, "runs")
    assert stopped.stdout.splitlines() == ["L  stopped: plangate resume L"]
    assert plangate(tmp_path, "pending").stdout.strip() == "No run is waiting for approval."
    shown = plangate(tmp_path, "show", "L")
    assert "Run L has not finished: it stopped" in shown.stdout
    assert "`plangate resume L` goes on" in shown.stdout
    refused = plangate(tmp_path, "run", plan, "--profile", "technical", "--thread", "L")
    assert refused.returncode == ExitCode.USER_ERROR
    assert_one_line(refused.stderr, "finish it first with `plangate resume L`")
    assert "invoke(" not in refused.stderr

    resumed = plangate(tmp_path, "resume", "L")
    assert resumed.returncode == ExitCode.PARTIAL, resumed.stderr
    assert "Run partial" in resumed.stdout
    assert plangate(tmp_path, "runs").stdout.strip() == "No unfinished run."
    assert plangate(tmp_path, "runs", "--all").stdout.splitlines() == [
        "L  finished partial: plangate show L"
    ]

    summary = plangate(tmp_path, "show", "L")
    assert summary.returncode == 0, summary.stderr
    assert "  1,500 steps: 1,485 ok, 15 error" in summary.stdout
    assert "The first 5 of 15 not ok:" in summary.stdout
    failures = [line.split()[0] for line in summary.stdout.splitlines() if "error (mock)" in line]
    assert failures == ["s0", "s100", "s200", "s300", "s400"]
    assert "`plangate show L --full` prints every step" in summary.stdout
    assert len(summary.stdout.splitlines()) < 20

    full = plangate(tmp_path, "show", "L", "--full")
    rows = [line.split()[0] for line in full.stdout.splitlines() if "(mock)" in line]
    assert rows == [f"s{n}" for n in range(1500)]  # every step, each once
    assert full.stdout.count("error (mock)") == 15


# Two reads that each note that they started, then wait until the test lets them go: a Ctrl-C
# lands while both calls are in flight, whatever the speed of the machine.
WAITING_TOOLS = """
import pathlib, time
from plangate import declare_action

HERE = pathlib.Path(__file__).parent


@declare_action(action="read")
def hold(name: str) -> str:
    \"\"\"Wait until the file `release` exists.\"\"\"
    with open(HERE / "calls.txt", "a") as calls:
        calls.write(name + "\\n")
    while not (HERE / "release").exists():
        time.sleep(0.01)
    return name


toolkit = {"slow.hold": hold}
"""
WAITS = (
    "plangate: interrupted: waiting for the tool calls in flight to end, then the run stops; "
    "their results are kept"
)
STILL_WAITS = "plangate: still waiting for the tool calls in flight; they are not cut short"


def next_line(stream: Any) -> str:
    """The next line on `stream` with something on it, within a minute ("" if none came): what
    a process says, whatever blank line came before it."""
    deadline = time.monotonic() + 60
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([stream], [], [], left)
        line = stream.readline() if ready else ""
        if not line:  # nothing in time, or the end of the stream
            return ""
        if line.strip():
            return str(line).rstrip("\n")
    return ""


@pytest.mark.parametrize(("presses", "attempt"), [(p, a) for p in (1, 2) for a in range(3)])
def test_ctrl_c_during_a_slow_sync_tool_waits_for_the_calls_in_flight_with_no_traceback(
    tmp_path: Path, presses: int, attempt: int
) -> None:
    """One or two Ctrl-C while two sync calls are in flight: stderr says at once that it waits
    for them (and again at the second press), then the one line with `plangate resume`, exit 130
    and never a traceback; the calls' results were kept, so `resume` makes no call again."""
    (tmp_path / "plangate.yaml").write_text("profile: technical\ntools: [{python: slow:toolkit}]\n")
    (tmp_path / "slow.py").write_text(WAITING_TOOLS)
    plan = tmp_path / "plan.json"
    steps = [{"id": name, "tool": "slow.hold", "args": {"name": name}} for name in ("a", "b")]
    plan.write_text(json.dumps({"goal": "two slow reads", "steps": steps}))
    calls = tmp_path / "calls.txt"
    running = start(tmp_path, "run", str(plan), "--thread", "C")
    read_until(running, "plan_created")
    while not calls.exists() or len(calls.read_text().splitlines()) < 2:
        assert running.poll() is None, running.communicate()
    assert running.stdout is not None
    assert running.stderr is not None
    said = []
    try:
        for _ in range(presses):
            running.send_signal(signal.SIGINT)
            # Said while the calls are still held: nothing else lets them end.
            said.append(next_line(running.stderr))
    finally:
        (tmp_path / "release").touch()
    running.wait(120)
    out, err = running.stdout.read(), running.stderr.read()

    assert running.returncode == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err, err
    assert "Error" not in err, err
    assert said == [WAITS] + [STILL_WAITS] * (presses - 1)
    assert err.splitlines() == [
        "plangate: interrupted: run C stopped before it finished; `plangate resume C` goes on"
    ]
    assert "Run " not in out

    resumed = plangate(tmp_path, "resume", "C")
    assert resumed.returncode == ExitCode.SUCCESS, resumed.stderr
    assert "  2 steps: 2 ok" in resumed.stdout or "Run success" in resumed.stdout
    assert sorted(calls.read_text().splitlines()) == ["a", "b"]  # each call made once


def test_a_closed_pipe_stops_quietly_and_the_run_can_be_resumed(tmp_path: Path) -> None:
    """`plangate run ... | head` and `plangate trace ... | head`: no traceback; a run cut short
    says how to go on, on stderr; a listing cut short says nothing."""
    plan = lookups(tmp_path / "plan.json", 300)
    cut = start(tmp_path, "run", plan, "--profile", "technical", "--offline", "--thread", "P")
    read_until(cut, "tool_call_start")
    assert cut.stdout is not None
    cut.stdout.close()
    assert cut.wait(120) == ExitCode.OUTPUT_CLOSED
    assert cut.stderr is not None
    assert_one_line(
        cut.stderr.read(),
        "plangate: output closed: run P stopped before it finished; `plangate resume P` goes on",
    )
    assert plangate(tmp_path, "runs").stdout.splitlines() == ["P  stopped: plangate resume P"]

    resumed = plangate(tmp_path, "resume", "P")
    assert resumed.returncode == ExitCode.SUCCESS, resumed.stderr
    assert "  300 steps: 300 ok" in resumed.stdout

    head = start(tmp_path, "trace", "P")
    assert head.stdout is not None
    json.loads(head.stdout.readline())
    head.stdout.close()
    assert head.wait(120) == ExitCode.OUTPUT_CLOSED
    assert head.stderr is not None
    assert head.stderr.read() == ""


def test_a_run_paused_for_approval_prints_the_steps_that_ended_beside_it(tmp_path: Path) -> None:
    """Two reads run beside a send that waits for approval: `plangate run` prints each read's
    events as its task ends, marked as not numbered yet (whichever ends first first); `approve`
    numbers them with the rest of the wave, and the trace's `seq` stays gap-free."""
    profile = tmp_path / "beside.yaml"
    profile.write_text("name: beside\norder: dependencies\n")
    plan = tmp_path / "plan.json"
    mail = {"to": "a@b.example", "subject": "s", "body": "b"}
    send = {"id": "send", "tool": "email.send", "args": mail}
    reads = [
        {"id": name, "tool": "crm.lookup_account", "args": {"account": "acme"}}
        for name in ("look", "again")
    ]
    plan.write_text(json.dumps({"goal": "reads beside a send", "steps": [send, *reads]}))
    run = plangate(
        tmp_path, "run", str(plan), "--profile", str(profile), "--offline", "--thread", "B"
    )
    assert run.returncode == ExitCode.PAUSED, run.stderr
    before_pause = run.stdout.split("Paused:")[0]
    shown = [line.split()[2:4] for line in before_pause.splitlines() if line.startswith("[  -]")]
    kinds = ("adapter_fallback", "tool_call_start", "tool_call_complete")
    ended_first = shown[0][1]
    ended_next = "again" if ended_first == "look" else "look"
    assert shown == [[kind, name] for name in (ended_first, ended_next) for kind in kinds]
    assert "numbered when the wave is over" in before_pause

    approve = plangate(tmp_path, "approve", "B", "--approver", "lee")
    assert approve.returncode == ExitCode.SUCCESS, approve.stderr
    trace = [json.loads(line) for line in plangate(tmp_path, "trace", "B").stdout.splitlines()]
    assert [event["seq"] for event in trace] == list(range(len(trace)))
    numbered = [e["type"] for e in trace if e["step_id"] == "look"]
    assert numbered == [*kinds, "step_completed"]


QUICK_TOOL = """

@declare_action(action="read")
def quick(name: str) -> str:
    \"\"\"Answer at once.\"\"\"
    return name


toolkit["slow.quick"] = quick
"""


def test_a_step_that_ends_beside_a_slower_one_is_printed_when_it_ends(tmp_path: Path) -> None:
    """A quick read and a read that waits until the test lets it go, in one wave, nothing
    waiting for a person: the quick one's call is printed while the other still runs,
    unnumbered, and not again when the wave ends; the other's come numbered."""
    (tmp_path / "plangate.yaml").write_text("profile: technical\ntools: [{python: slow:toolkit}]\n")
    (tmp_path / "slow.py").write_text(WAITING_TOOLS + QUICK_TOOL)
    plan = tmp_path / "plan.json"
    steps = [
        {"id": "held", "tool": "slow.hold", "args": {"name": "held"}},
        {"id": "quick", "tool": "slow.quick", "args": {"name": "quick"}},
    ]
    plan.write_text(json.dumps({"goal": "a quick read beside a held one", "steps": steps}))
    running = start(tmp_path, "run", str(plan), "--thread", "Q")
    early = read_until(running, "tool_call_complete")
    assert early[-1].startswith("[  -]")
    assert "quick" in early[-1]
    assert running.poll() is None  # the held read still runs
    (tmp_path / "release").touch()
    assert running.stdout is not None
    rest = running.stdout.read()
    assert running.wait(60) == ExitCode.SUCCESS
    assert any("numbered when the wave is over" in line for line in early)
    later = [line for line in rest.splitlines() if line.startswith("[")]
    # Not printed twice: what the wave's end adds of it is the step's own end.
    assert [line.split()[2] for line in later if "quick" in line] == ["step_completed"]
    held = [line for line in later if "held" in line]
    assert held
    assert not any(line.startswith("[  -]") for line in held)
    trace = [json.loads(line) for line in plangate(tmp_path, "trace", "Q").stdout.splitlines()]
    assert [event["seq"] for event in trace] == list(range(len(trace)))


# --- progress, human numbers, help ------------------------------------------------------------


def event(type_: str, step: str | None, **data: Any) -> dict[str, Any]:
    tool = "crm.lookup_account" if step else None
    return {"type": type_, "seq": 7, "step_id": step, "tool": tool, "data": data}


def test_a_step_line_says_step_k_of_n_when_given_positions() -> None:
    positions = step_positions([f"s{n}" for n in range(1500)])
    line = describe(event("tool_call_start", "s41", args={"account": "acme"}), positions)
    assert line == (
        '[  7] tool_call_start     s41 (crm.lookup_account), step 42 of 1,500: args {"account": '
        '"acme"}'
    )
    assert describe(event("tool_call_start", "s41", args={}), None) == (
        "[  7] tool_call_start     s41 (crm.lookup_account): args {}"
    )
    plan_line = describe(event("plan_completed", None, status="success"), positions)
    assert plan_line == "[  7] plan_completed      plan: status success"
    one = describe(event("plan_created", None, goal="g", steps=1, profile="smb"))
    assert one.endswith("plan: goal: 'g', 1 step, profile smb")
    assert "2 steps" in describe(event("plan_created", None, goal="g", steps=2, profile="smb"))


def test_a_run_on_a_terminal_shows_progress_and_one_in_a_pipe_does_not(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    args = ("run", DEMO, "--profile", unattended_profile(tmp_path), "--offline")
    process = subprocess.Popen(
        [*COMMAND, *args], cwd=tmp_path, stdout=terminal, stderr=subprocess.PIPE
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(120) == ExitCode.SUCCESS
    shown = output.decode()
    assert "lookup (crm.lookup_account), step 1 of 3: args" in shown
    assert "send (email.send), step 3 of 3: ok" in shown

    piped = plangate(tmp_path, *args)
    assert "step 1 of 3" not in piped.stdout
    assert "lookup (crm.lookup_account): args" in piped.stdout


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (0.4, "0.4 ms"),
        (250, "250 ms"),
        (2750.8, "2.8 s"),
        (59_000, "59 s"),
        (90_000, "1.5 min"),
        (7_200_000, "2 h"),
        (86_400_000, "24 h"),
    ],
)
def test_waits_read_in_the_unit_a_person_uses(ms: float, shown: str) -> None:
    assert human_duration(ms) == shown


def test_the_signals_line_shows_the_wait_in_human_units(tmp_path: Path) -> None:
    plangate(tmp_path, "run", DEMO, "--profile", "smb", "--thread", "w")
    approved = plangate(tmp_path, "approve", "w", "--approver", "lee")
    (signals,) = [line for line in approved.stdout.splitlines() if line.startswith("Signals:")]
    assert re.search(r"approvals 1 \(max wait \d+(\.\d)? (s|ms)\)", signals), signals
    assert "budget 3/50 calls (8% of the fullest tier)" in signals  # email: 2 of 25


def test_help_shows_flags_as_flags_and_command_line_errors_are_one_line(tmp_path: Path) -> None:
    shown = plangate(tmp_path, "run", "--help").stdout
    assert re.search(r"^  --offline +Call every tool's mock; nothing is sent\.$", shown, re.M)
    assert "<bool>" not in shown
    assert "(plangate[server])" in plangate(tmp_path, "serve", "--help").stdout
    for args, message in [
        (["run"], "Missing argument 'plan'"),
        (["run", DEMO, "--bogus"], "No such option: --bogus"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ]:
        wrong = plangate(tmp_path, *args)
        assert wrong.returncode == ExitCode.COMMAND_LINE
        assert_one_line(wrong.stderr, f"plangate: error: {message}", "--help`)")


def test_a_run_waiting_for_approval_is_refused_a_new_plan_in_cli_words(tmp_path: Path) -> None:
    plangate(tmp_path, "run", DEMO, "--profile", "smb", "--thread", "busy")
    refused = plangate(tmp_path, "run", DEMO, "--thread", "busy")
    assert refused.returncode == ExitCode.USER_ERROR
    assert_one_line(
        refused.stderr,
        "run 'busy' is waiting for an approval; a new plan would abandon it (decide it first "
        "with `plangate approve busy` or `plangate reject busy`, or start the plan with another "
        "--thread)",
    )
    assert "Command(" not in refused.stderr


def test_hints_that_name_python_calls_are_said_in_cli_words_or_left_out() -> None:
    stopped = cli_message(RunNotFinished("t", waiting=False))
    assert stopped == (
        "run 't' has not finished; a new plan would abandon it (finish it first with "
        "`plangate resume t`, or start the plan with another --thread)"
    )
    python_only = InvalidDecision("bad", hint="resume with Command(resume={...})")
    assert cli_message(python_only) == "bad"
    assert cli_message(InvalidDecision("bad", hint="say why")) == "bad (say why)"


# --- commands that only read ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["pending"],
        ["runs"],
        ["expire"],
        ["show", "t"],
        ["trace", "t"],
        ["resume", "t"],
        ["pending", "--db", "sub/dir/runs.db"],
        ["show", "t", "--db", "sqlite:///other/runs.db"],
    ],
)
def test_commands_that_read_a_missing_database_create_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    done = plangate(tmp_path, *args)
    assert done.returncode == ExitCode.USER_ERROR
    db = args[-1].removeprefix("sqlite:///") if "--db" in args else "plangate.db"
    assert_one_line(
        done.stderr,
        f"plangate: error: no database at {db}; pass --db PATH or start a run with plangate run",
    )
    assert list(tmp_path.iterdir()) == []


# --- closing approvals as they expire ---------------------------------------------------------


def test_expire_watch_closes_a_run_as_it_expires_and_ctrl_c_ends_it_quietly(
    tmp_path: Path,
) -> None:
    """`plangate expire --watch` closes a request two seconds after it was made, though it looks
    for new requests once an hour, printing the run going on as `plangate expire` does; a
    request still valid stays waiting; Ctrl-C ends the watch with exit 0 and no traceback."""
    short = tmp_path / "short.yaml"
    short.write_text("name: short\nrequire_approval: [execute]\napproval_timeout_seconds: 2\n")
    for thread, profile in (("late", str(short)), ("fresh", "smb")):
        paused = plangate(tmp_path, "run", DEMO, "--profile", profile, "--thread", thread)
        assert paused.returncode == ExitCode.PAUSED, paused.stderr

    watching = start(tmp_path, "expire", "--watch", "--every", "1h")
    try:
        printed = read_until(watching, "Signals:")
        shown = plangate(tmp_path, "show", "late")  # meanwhile the watch has gone back to sleep
    finally:
        watching.send_signal(signal.SIGINT)
    out, err = watching.communicate(timeout=60)

    assert printed[0].startswith("Watching plangate.db for approvals that expire, looking at")
    assert "every 1h" in printed[0]
    assert "late: approval expired\n" in printed
    assert "Run partial" in "".join(printed)
    assert watching.returncode == 0, err
    assert "Traceback" not in err
    assert out.strip() == "Stopped watching."
    assert re.search(
        r"^  send +email\.send +expired +expired: no decision in time", shown.stdout, re.M
    )
    listed = plangate(tmp_path, "pending").stdout
    assert "fresh  step send" in listed
    assert "late" not in listed


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--watch", "--every", "5x"], ExitCode.COMMAND_LINE, "Invalid value for '--every': '5x'"),
        (["--watch", "--every", "0s"], ExitCode.COMMAND_LINE, "--every': '0s' is not a duration"),
        (
            ["--watch", "--every", "25h"],
            ExitCode.COMMAND_LINE,
            "--every': '25h' is not a duration of at most 24h",
        ),
        (["--every", "30s"], ExitCode.USER_ERROR, "--every needs --watch"),
    ],
)
def test_a_bad_expire_every_is_one_line(
    tmp_path: Path, args: list[str], code: ExitCode, message: str
) -> None:
    refused = plangate(tmp_path, "expire", *args)
    assert refused.returncode == code
    assert_one_line(refused.stderr, "plangate: error: ", message)
    assert refused.stdout == ""
