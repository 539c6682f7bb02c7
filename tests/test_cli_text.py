"""What the `plangate` command says, as a first-time user reads it: a problem named once, in
words rather than a pattern, the closest tool name for a mistyped one, its version, and MCP
servers' own stderr kept out of the command's output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from _support import plangate, run_in

from plangate import __version__
from plangate.cli import ExitCode

PEER = Path(__file__).resolve().parent / "peers" / "mcp_server.py"
MARKER = "the server's own stderr line"


def one_line_error(result: object) -> str:
    stderr: str = getattr(result, "stderr")  # noqa: B009  (CompletedProcess, untyped here)
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def write_plan(folder: Path, *steps: dict[str, object]) -> str:
    (folder / "plan.yaml").write_text(yaml.safe_dump({"goal": "g", "steps": list(steps)}))
    return "plan.yaml"


def test_a_bad_plan_is_named_plan_once_by_check(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {"id": "r", "tool": "crm.lookup_account", "args": {}, "x": 1})
    checked = plangate(tmp_path, "check", plan)
    assert checked.returncode == ExitCode.USER_ERROR, checked.stderr
    assert "  plan: step 'r', field 'x': Extra inputs are not permitted" in checked.stdout
    assert "plan: plan:" not in checked.stdout

    as_json = json.loads(plangate(tmp_path, "check", plan, "--json").stdout)
    (problem,) = as_json["problems"]
    assert problem["message"] == "step 'r', field 'x': Extra inputs are not permitted"


def test_a_mistyped_tool_gets_the_closest_registered_name(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, {"id": "r", "tool": "crm.lookup_acount", "args": {}})
    checked = plangate(tmp_path, "check", plan)
    assert checked.returncode == ExitCode.USER_ERROR
    assert (
        "unknown_tool: step 'r': no tool named 'crm.lookup_acount' is registered "
        "(did you mean 'crm.lookup_account'?)" in checked.stdout
    )

    ran = plangate(tmp_path, "run", plan, "--profile", "technical")
    assert ran.returncode == ExitCode.FAILED, ran.stderr
    assert "(did you mean 'crm.lookup_account'?)" in ran.stdout

    # Nothing close: no guess.
    write_plan(tmp_path, {"id": "r", "tool": "weather.forecast", "args": {}})
    assert "did you mean" not in plangate(tmp_path, "check", plan).stdout


def test_the_guess_does_not_start_the_sources_a_plan_does_not_name(tmp_path: Path) -> None:
    """The closest name is looked for among the tools loaded for the lookup: an MCP server that
    cannot start, and that the plan does not call, does not turn the refusal into an error."""
    (tmp_path / "tools.py").write_text(
        'def note(text: str) -> str:\n    """Keep a note."""\n    return text\n\n'
        'toolkit = {"team.note": note}\n'
    )
    (tmp_path / "plangate.yaml").write_text(
        "tools:\n  - python: tools:toolkit\n  - mcp: {down: {command: no-such-command-here}}\n"
    )
    plan = write_plan(tmp_path, {"id": "a", "tool": "team.nots", "args": {"text": "x"}})
    checked = plangate(tmp_path, "check", plan)
    assert checked.returncode == ExitCode.USER_ERROR, checked.stderr
    assert "no tool named 'team.nots' is registered (did you mean 'team.note'?)" in checked.stdout


def test_a_python_entry_that_is_not_module_colon_attribute_is_said_in_words(
    tmp_path: Path,
) -> None:
    (tmp_path / "plangate.yaml").write_text("tools:\n  - python: mytools.toolkit\n")
    line = one_line_error(plangate(tmp_path, "tools"))
    assert line == (
        f"plangate: error: {tmp_path / 'plangate.yaml'}: tools.0.python: 'mytools.toolkit' is "
        "not module:attribute; write the module, a colon, then the name in it "
        "(`mytools:toolkit` for `toolkit` in mytools.py)"
    )


def test_an_mcp_entry_names_its_project_file_once(tmp_path: Path) -> None:
    (tmp_path / "servers.json").write_text(json.dumps({"mcpServers": {"fs": {"args": ["x"]}}}))
    (tmp_path / "plangate.yaml").write_text("tools:\n  - mcp: servers.json\n")
    line = one_line_error(plangate(tmp_path, "tools"))
    assert line.count(str(tmp_path / "plangate.yaml")) == 1, line
    assert line.endswith("tools.0: an MCP server needs `command` (stdio) or `url`")


def test_version_prints_the_version(tmp_path: Path) -> None:
    shown = plangate(tmp_path, "--version")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"plangate {__version__}\n"


@pytest.fixture
def noisy_mcp_project(tmp_path: Path) -> Path:
    """A project whose stdio MCP server writes a line of its own to stderr as it starts."""
    start = (
        "import runpy, sys; "
        f"print({MARKER!r}, file=sys.stderr, flush=True); "
        f"sys.argv = [{str(PEER)!r}, 'stdio', {str(tmp_path / 'calls.jsonl')!r}]; "
        f"runpy.run_path({str(PEER)!r}, run_name='__main__')"
    )
    server = {"command": sys.executable, "args": ["-c", start]}
    (tmp_path / "plangate.yaml").write_text(yaml.safe_dump({"tools": [{"mcp": {"peer": server}}]}))
    return tmp_path


def test_mcp_servers_stderr_goes_to_a_log_file_unless_verbose(noisy_mcp_project: Path) -> None:
    listed = plangate(noisy_mcp_project, "tools")
    assert listed.returncode == 0, listed.stderr
    assert "peer.lookup" in listed.stdout
    assert MARKER not in listed.stderr + listed.stdout
    assert MARKER in (noisy_mcp_project / "plangate-mcp.log").read_text()

    shown = plangate(noisy_mcp_project, "-v", "tools")
    assert shown.returncode == 0, shown.stderr
    assert MARKER in shown.stderr


LOADED_AFTER = """
import sys
{code}
print(" ".join(sorted(name for name in sys.modules if name.startswith(("langgraph", "langchain")))))
"""


def modules_loaded_by(code: str, cwd: Path) -> set[str]:
    """The LangGraph and LangChain modules a fresh Python has loaded after running `code`."""
    done = run_in(cwd, sys.executable, "-c", LOADED_AFTER.format(code=code))
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_import_plangate_loads_no_langgraph_until_a_name_is_used(tmp_path: Path) -> None:
    """`import plangate` took about a second, importing every module; now a name's module is
    imported when the name is first used, and the public names are what they were."""
    assert modules_loaded_by("import plangate", tmp_path) == set()
    assert modules_loaded_by("from plangate import PlanValidationError", tmp_path) == set()
    assert "langgraph.graph" in modules_loaded_by("from plangate import build_graph", tmp_path)

    # `plangate.preflight` is a module and a function: the package's name stays the function,
    # whichever is imported first.
    check = (
        "import plangate.preflight, plangate; "
        "assert callable(plangate.preflight) and plangate.preflight.__module__ == "
        "'plangate.preflight'; "
        "assert all(hasattr(plangate, name) for name in plangate.__all__)"
    )
    modules_loaded_by(check, tmp_path)


def test_with_the_server_log_set_env_values_expand_as_langchain_mcp_adapters_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the server log plangate opens the stdio session itself; `${VAR}` in the
    connection's `env` values is still read from this environment, as langchain-mcp-adapters
    reads it: the server finds its calls log where the variable says."""
    from plangate.adapters.mcp import SERVER_LOG_VARIABLE, MCPSessions, mcp_tools

    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv(SERVER_LOG_VARIABLE, "server.log")
    monkeypatch.setenv("PEER_CALLS", str(calls))
    start = (
        "import os, runpy, sys; "
        f"sys.argv = [{str(PEER)!r}, 'stdio', os.environ['CALLS']]; "
        f"runpy.run_path({str(PEER)!r}, run_name='__main__')"
    )
    connection = {
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-c", start],
        "env": {"CALLS": "${PEER_CALLS}"},
        "cwd": str(tmp_path),
    }
    try:
        (lookup,) = [t for t in mcp_tools(connection, prefix="peer") if t.name == "peer.lookup"]
        lookup.invoke({"invoice_id": "inv-1"})
    finally:
        MCPSessions.shared().close()
    assert json.loads(calls.read_text().splitlines()[0])["tool"] == "lookup"
    assert (tmp_path / "server.log").exists()
