"""No auto-send: an irreversible call waits for a person under every profile, `technical`
included, unless the profile names its tool in `irreversible_exempt`. Nothing in a plan can make
an irreversible call run unasked, and the exemption shows wherever the call is described."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _support import CallLog, Runner, counting_tools, plan_of, plangate, thread
from langgraph.types import Command

from plangate import Profile, ProfileError, load_profile, preflight
from plangate.actions import declare_action
from plangate.cli import ExitCode
from plangate.profiles import BUILTIN_PROFILES


def exempting(base: str, *tools: str) -> Profile:
    return Profile.model_validate({**load_profile(base).model_dump(), "irreversible_exempt": tools})


@pytest.mark.parametrize("profile", BUILTIN_PROFILES)
def test_an_irreversible_call_asks_under_every_built_in_profile(
    runner: Runner, log: CallLog, profile: str
) -> None:
    """A tool that declares itself irreversible, and one the profile's `irreversible_tools`
    names (`email.send`), each wait for a person, even when the plan calls them reads."""
    wipe = declare_action(
        counting_tools(log, "disk.wipe", action=None)[0], action="execute", irreversible=True
    )
    graph = runner.graph([wipe, *counting_tools(log, "email.send")], profile=profile)
    plan = plan_of(
        {"id": "wipe", "tool": "disk.wipe", "action": "read"},
        {"id": "send", "tool": "email.send", "action": "read"},
    )
    out = runner.invoke(graph, {"plan": plan}, thread())
    if profile == "enterprise":  # the plan review comes first
        out = runner.invoke(graph, Command(resume={"decision": "approve"}), thread())

    asked = out["__interrupt__"][0].value
    assert (asked["step_id"], asked["irreversible"]) == ("wipe", True)
    assert log.calls == []
    assert [s.asks for s in preflight(graph, plan).steps] == [True, True]


def test_a_profile_exempts_a_tool_only_by_naming_it(runner: Runner, log: CallLog) -> None:
    """`irreversible_exempt: [email.send]` lets that tool run unasked under `technical`; another
    irreversible tool still asks, and the pre-flight report marks the exemption."""
    graph = runner.graph(
        counting_tools(log, "email.send", "email.delete"),
        profile=exempting("technical", "email.send"),
    )
    plan = plan_of({"id": "send", "tool": "email.send"}, {"id": "drop", "tool": "email.delete"})

    out = runner.invoke(graph, {"plan": plan}, thread())

    assert [name for name, _ in log.calls] == ["email.send"]
    assert out["__interrupt__"][0].value["step_id"] == "drop"
    send, drop = preflight(graph, plan).steps
    assert (send.irreversible, send.exempt, send.asks) == (True, True, False)
    assert (drop.irreversible, drop.exempt, drop.asks) == (True, False, True)


def test_an_exemption_does_not_undo_what_the_profile_asks_for_otherwise(
    runner: Runner, log: CallLog
) -> None:
    """Under `smb` an `execute` asks anyway: exempting its tool from the irreversible rule
    leaves that as it is."""
    graph = runner.graph(counting_tools(log, "email.send"), profile=exempting("smb", "email.send"))
    plan = plan_of({"id": "send", "tool": "email.send", "action": "execute"})
    out = runner.invoke(graph, {"plan": plan}, thread())
    assert out["__interrupt__"][0].value["step_id"] == "send"


@pytest.mark.parametrize("pattern", ["*", "email.*", "email.sen?", "[e]mail.send"])
def test_an_exemption_by_pattern_is_refused_naming_the_field(tmp_path: Path, pattern: str) -> None:
    """A pattern would exempt tools nobody has seen yet."""
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"irreversible_exempt": [pattern]}))
    with pytest.raises(ProfileError, match="irreversible_exempt") as refused:
        load_profile(path)
    assert "name each exempt tool exactly" in refused.value.message
    assert "\n" not in refused.value.message


def test_the_cli_shows_the_exemption_in_tools_and_check(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text(
        "from plangate import declare_action\n"
        "@declare_action(action='execute', irreversible=True)\n"
        "def send(text: str = '') -> str:\n    return text\n"
        "@declare_action(action='execute', irreversible=True)\n"
        "def wipe(text: str = '') -> str:\n    return text\n"
        "toolkit = {'mail.send': send, 'disk.wipe': wipe}\n"
    )
    profile = {
        **load_profile("technical").model_dump(mode="json"),
        "irreversible_exempt": ["mail.send"],
    }
    (tmp_path / "team.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "plangate.yaml").write_text(
        yaml.safe_dump({"profile": "team.yaml", "tools": [{"python": "tools:toolkit"}]})
    )
    (tmp_path / "plan.yaml").write_text(
        yaml.safe_dump({"steps": [{"tool": "mail.send"}, {"tool": "disk.wipe"}]})
    )

    tools = plangate(tmp_path, "tools")
    assert tools.returncode == ExitCode.SUCCESS, tools.stdout + tools.stderr
    (send_row,) = [line for line in tools.stdout.splitlines() if "mail.send" in line]
    (wipe_row,) = [line for line in tools.stdout.splitlines() if "disk.wipe" in line]
    assert "irreversible (exempt: runs unasked)" in send_row
    assert "exempt" not in wipe_row
    assert wipe_row.rstrip().endswith("asks")
    rows = [json.loads(line) for line in plangate(tmp_path, "tools", "--json").stdout.splitlines()]
    assert {r["tool"]: r["exempt"] for r in rows} == {"mail.send": True, "disk.wipe": False}

    checked = plangate(tmp_path, "check", "plan.yaml")
    assert checked.returncode == ExitCode.SUCCESS, checked.stdout + checked.stderr
    (send_line,) = [line for line in checked.stdout.splitlines() if "mail.send" in line]
    assert "irreversible (exempt: runs unasked)" in send_line
