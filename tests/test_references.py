"""Data flow between steps: `${steps.<id>.output.<path>}` in a step's args is replaced by an
earlier step's output when the step is about to run, sync and async; it implies the dependency;
a bad reference is refused before anything runs, a missing path fails only its step; the person
approving sees the resolved args and where they came from, and the digest binds them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from _support import MCP_PEER, Runner, plan_of, plangate, thread
from langchain_core.tools import StructuredTool
from langgraph.types import Command

from plangate import PlanValidationError, declare_action, demo_toolkit, load_profile, preflight
from plangate.adapters.mcp import MCPSessions, mcp_tools
from plangate.cli import ExitCode
from plangate.plan import parse_plan
from plangate.references import addressable


def toolkit(seen: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """`crm.find` returns a customer; `crm.count` JSON text; `docs.read` content blocks;
    `mail.send` (an irreversible execute) and `log.write` record what they got."""

    @declare_action(action="read")
    def find(name: str) -> dict[str, Any]:
        seen.append(("crm.find", {"name": name}))
        return {"id": 42, "name": name, "contacts": [{"email": f"{name}@acme.example"}]}

    @declare_action(action="read")
    def count() -> str:
        return json.dumps({"open": 3, "tags": ["a", "b"]})

    @declare_action(action="read")
    def read_doc() -> list[dict[str, str]]:
        return [{"type": "text", "text": '{"title": "Renewal", "pages": 2}'}]

    @declare_action(action="execute", irreversible=True)
    def send(to: str, subject: str, body: str = "") -> dict[str, Any]:
        seen.append(("mail.send", {"to": to, "subject": subject, "body": body}))
        return {"sent": to}

    @declare_action(action="read")
    def write(entry: Any) -> str:
        seen.append(("log.write", {"entry": entry}))
        return "ok"

    return {
        "crm.find": find,
        "crm.count": count,
        "docs.read": read_doc,
        "mail.send": send,
        "log.write": write,
    }


def async_toolkit(seen: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """The same tools, each with an async body too (what `ainvoke` awaits)."""
    tools = []
    for name, func in toolkit(seen).items():

        async def acall(_func: Any = func, **kwargs: Any) -> Any:
            """The tool's body, awaited."""
            return _func(**kwargs)

        tool = StructuredTool.from_function(
            func, coroutine=acall, name=name, description=func.__doc__ or f"Call {name}."
        )
        tools.append(declare_action(tool, **func.__plangate__))
    return tools


def test_references_pass_values_of_any_type_text_and_escapes(runner: Runner) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    tools = toolkit(seen) if runner.mode == "sync" else async_toolkit(seen)
    graph = runner.graph(tools, profile="technical")
    plan = plan_of(
        {"id": "find", "tool": "crm.find", "args": {"name": "acme"}},
        {"id": "count", "tool": "crm.count"},
        {"id": "doc", "tool": "docs.read"},
        {
            "id": "log",
            "tool": "log.write",
            "args": {
                "entry": {
                    "customer": "${steps.find.output}",
                    "id": "${steps.find.output.id}",
                    "open": "${steps.count.output.open}",
                    "tag": "${steps.count.output.tags[1]}",
                    "title": "${steps.doc.output.title}",
                    "line": "id ${steps.find.output.id}: ${steps.find.output.contacts}",
                    "literal": "$${steps.find.output.id} and $${HOME}",
                    "other": "${HOME} stays",
                }
            },
        },
    )
    out = runner.invoke(graph, {"plan": plan}, thread())
    assert out["result"]["status"] == "success"
    (entry,) = [args["entry"] for name, args in seen if name == "log.write"]
    assert entry == {
        "customer": {
            "id": 42,
            "name": "acme",
            "contacts": [{"email": "acme@acme.example"}],
        },
        "id": 42,
        "open": 3,
        "tag": "b",
        "title": "Renewal",
        "line": 'id 42: [{"email": "acme@acme.example"}]',
        "literal": "${steps.find.output.id} and ${HOME}",
        "other": "${HOME} stays",
    }
    # tool_call_start shows what the tool got.
    (start,) = [
        e
        for e in runner.trace(graph, thread())
        if e["type"] == "tool_call_start" and e["step_id"] == "log"
    ]
    assert start["data"]["args"]["entry"]["tag"] == "b"


def test_a_reference_implies_the_dependency_and_orders_the_steps() -> None:
    plan = parse_plan(
        [
            {
                "id": "send",
                "tool": "mail.send",
                "args": {"to": "${steps.find.output.contacts[0].email}", "subject": "hi"},
            },
            {"id": "find", "tool": "crm.find", "args": {"name": "acme"}},
        ]
    )
    assert [step.id for step in plan.steps] == ["find", "send"]
    assert plan.steps[1].depends_on == ["find"]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [{"id": "a", "tool": "t.x", "args": {"q": {"deep": ["${steps.nope.output.k}"]}}}],
            "step 'a': args.q.deep[0] references unknown step 'nope'",
        ),
        (
            [{"id": "a", "tool": "t.x", "args": {"q": "${steps.a.output}"}}],
            "step 'a': args.q references the step's own output",
        ),
        (
            [
                {"id": "a", "tool": "t.x", "args": {"q": "${steps.b.output.id}"}},
                {"id": "b", "tool": "t.y", "depends_on": ["a"]},
            ],
            "dependency cycle 'a' -> 'b' -> 'a' (args.q of 'a' references 'b')",
        ),
    ],
)
def test_a_bad_reference_is_refused_before_anything_runs_naming_step_and_arg(
    steps: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(PlanValidationError, match=None) as refused:
        parse_plan(steps)
    assert message in str(refused.value)
    assert refused.value.step_id == "a"


def test_a_path_the_output_lacks_fails_its_step_and_skips_its_dependents(runner: Runner) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    graph = runner.graph(toolkit(seen), profile="technical")
    plan = plan_of(
        {"id": "find", "tool": "crm.find", "args": {"name": "acme"}},
        {
            "id": "log",
            "tool": "log.write",
            "args": {"entry": "${steps.find.output.contacts[3].email}"},
        },
        {"id": "after", "tool": "log.write", "args": {"entry": "x"}, "depends_on": ["log"]},
        {"id": "free", "tool": "log.write", "args": {"entry": "free"}},
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    steps = {s["step_id"]: s for s in result["steps"]}
    assert steps["log"]["status"] == "error"
    assert steps["log"]["failure_context"]["error_type"] == "unresolved_reference"
    assert steps["log"]["error"] == (
        "log.write: args.entry: steps.find.output.contacts has no item [3]"
    )
    assert steps["after"]["status"] == "skipped"
    assert steps["free"]["status"] == "ok"
    assert [args["entry"] for name, args in seen if name == "log.write"] == ["free"]


def test_a_reference_to_a_step_that_did_not_end_ok_skips_the_step(runner: Runner) -> None:
    graph = runner.graph(toolkit([]), profile="technical")
    plan = plan_of(
        {"id": "find", "tool": "crm.nope", "args": {}},
        {"id": "log", "tool": "log.write", "args": {"entry": "${steps.find.output.id}"}},
    )
    steps = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"]
    assert [(s["step_id"], s["status"]) for s in steps] == [("find", "blocked"), ("log", "skipped")]


def send_plan() -> dict[str, Any]:
    return plan_of(
        {"id": "find", "tool": "crm.find", "args": {"name": "acme"}},
        {
            "id": "send",
            "tool": "mail.send",
            "args": {
                "to": "${steps.find.output.contacts[0].email}",
                "subject": "About ${steps.find.output.name}",
            },
        },
    )


def test_the_approver_sees_resolved_args_and_where_they_came_from(runner: Runner) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    graph = runner.graph(toolkit(seen), profile="smb")
    out = runner.invoke(graph, {"plan": send_plan()}, thread())
    request = out["__interrupt__"][0].value
    assert request["args"] == {"to": "acme@acme.example", "subject": "About acme"}
    assert request["references"] == {
        "to": ["steps.find.output.contacts[0].email"],
        "subject": ["steps.find.output.name"],
    }
    assert "acme@acme.example" in request["consequence"]
    # The trace keeps a redacted copy, with the references.
    (asked,) = [e for e in runner.trace(graph, thread()) if e["type"] == "approval_requested"]
    assert asked["data"]["references"]["to"] == ["steps.find.output.contacts[0].email"]
    assert "acme@acme.example" not in json.dumps(asked)

    done = runner.invoke(
        graph,
        Command(resume={"decision": "approve", "approver": "lee", "digest": request["digest"]}),
        thread(),
    )
    assert done["result"]["status"] == "success"
    assert seen[-1] == (
        "mail.send",
        {"to": "acme@acme.example", "subject": "About acme", "body": ""},
    )


def test_an_edit_replaces_the_resolved_values(runner: Runner) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    graph = runner.graph(toolkit(seen), profile="smb")
    runner.invoke(graph, {"plan": send_plan()}, thread())
    edited = {"to": "ops@acme.example", "subject": "${steps.find.output.name}"}
    done = runner.invoke(
        graph, Command(resume={"decision": "edit", "approver": "lee", "args": edited}), thread()
    )
    assert done["result"]["status"] == "success"
    # What the person wrote is what runs: an edit is not a plan, and is not resolved again.
    assert seen[-1] == ("mail.send", {**edited, "body": ""})


def test_the_schema_check_before_asking_sees_the_resolved_value(runner: Runner) -> None:
    """`to` resolves to a number: refused as invalid arguments, and nobody is asked."""
    graph = runner.graph(toolkit([]), profile="smb")
    plan = plan_of(
        {"id": "find", "tool": "crm.find", "args": {"name": "acme"}},
        {
            "id": "send",
            "tool": "mail.send",
            "args": {"to": "${steps.find.output.contacts}", "subject": "s"},
        },
    )
    out = runner.invoke(graph, {"plan": plan}, thread())
    assert "__interrupt__" not in out
    send = out["result"]["steps"][1]
    assert send["status"] == "error"
    assert send["failure_context"]["error_type"] == "invalid_arguments"
    assert "args.to" in send["error"]


def test_preflight_lists_references_and_leaves_their_args_to_run_time() -> None:
    from plangate import build_graph

    graph = build_graph(toolkit([]), profile="smb")
    report = preflight(graph, send_plan())
    assert report.ok, report.problems
    assert report.steps[1].references == {
        "to": "find",
        "subject": "find",
    }
    bad = send_plan()
    bad["steps"][1]["args"]["cc"] = "nobody"  # mail.send takes no `cc`: still a problem
    assert [p.kind for p in preflight(graph, bad).problems] == ["invalid_arguments"]


def test_addressable_reads_json_text_and_text_blocks_and_leaves_the_rest() -> None:
    assert addressable('{"a": 1}') == {"a": 1}
    assert addressable("plain text") == "plain text"
    assert addressable([{"type": "text", "text": "[1,"}, {"type": "text", "text": "2]"}]) == [1, 2]
    assert addressable([{"type": "image", "url": "u"}]) == [{"type": "image", "url": "u"}]
    assert addressable({"k": "v"}) == {"k": "v"}


def test_the_cli_shows_where_each_resolved_arg_came_from(tmp_path: Path) -> None:
    plan = {
        "goal": "follow up",
        "steps": [
            {"id": "lookup", "tool": "crm.lookup_account", "args": {"account": "acme"}},
            {
                "id": "send",
                "tool": "email.send",
                "args": {
                    "to": "${steps.lookup.output.contact_email}",
                    "subject": "Renewal for ${steps.lookup.output.name}",
                    "body": "Hi ${steps.lookup.output.contact}",
                },
            },
        ],
    }
    (tmp_path / "plan.yaml").write_text(json.dumps(plan))
    run = plangate(tmp_path, "run", "plan.yaml", "--profile", "smb", "--thread", "r1")
    assert run.returncode == ExitCode.PAUSED, run.stderr
    assert '"to": "ana.lopez@acme.example"' in run.stdout
    assert "from:        args.to = ${steps.lookup.output.contact_email}" in run.stdout
    approved = plangate(tmp_path, "approve", "r1", "--approver", "lee")
    assert approved.returncode == ExitCode.SUCCESS, approved.stderr


def test_the_approver_sees_every_reference_of_every_arg(runner: Runner, tmp_path: Path) -> None:
    """An arg written as a text with two references showed only the last of them, so the
    approver could not tell where the rest of the text came from. The request lists each
    reference of each arg once, in order, and `plangate run` prints them all."""
    lookup = {"id": "item", "tool": "crm.lookup_account", "args": {"account": "acme"}}
    body = (
        "Restock ${steps.item.output.name} (qty ${steps.item.output.value_usd}), "
        "ask ${steps.item.output.contact} at ${steps.item.output.name}"
    )
    send = {
        "id": "send",
        "tool": "email.send",
        "args": {"to": "${steps.item.output.contact_email}", "subject": "Stock", "body": body},
    }
    graph = runner.graph(demo_toolkit(tmp_path / "outbox.db"), profile="smb")
    paused = runner.invoke(graph, {"plan": plan_of(lookup, send)}, thread())
    request = paused["__interrupt__"][0].value
    assert request["references"] == {
        "to": ["steps.item.output.contact_email"],
        "body": [
            "steps.item.output.name",
            "steps.item.output.value_usd",
            "steps.item.output.contact",
        ],
    }

    (tmp_path / "plan.json").write_text(json.dumps({"steps": [lookup, send]}))
    run = plangate(tmp_path, "run", "plan.json", "--profile", "smb")
    assert run.returncode == ExitCode.PAUSED, run.stderr
    assert "  from:        args.to = ${steps.item.output.contact_email}\n" in run.stdout
    assert (
        "  from:        args.body from ${steps.item.output.name}, "
        "${steps.item.output.value_usd}, ${steps.item.output.contact}\n"
    ) in run.stdout


def test_a_reference_reads_an_mcp_tools_json_text(runner: Runner, tmp_path: Path) -> None:
    """The peer's `lookup` answers JSON as text content: a path reads into it."""
    log = tmp_path / "mcp.jsonl"
    connection: Any = {
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(MCP_PEER), "stdio", str(log)],
    }
    with MCPSessions() as sessions:
        tools = mcp_tools(connection, prefix="ledger", sessions=sessions)
        # The peer's refund is flagged destructive: exempt, so that it runs unasked.
        unattended = load_profile("technical").model_copy(
            update={"irreversible_exempt": ["ledger.refund"]}
        )
        graph = runner.graph(tools, profile=unattended)
        plan = plan_of(
            {"id": "look", "tool": "ledger.lookup", "args": {"invoice_id": "inv-9"}},
            {
                "id": "refund",
                "tool": "ledger.refund",
                "args": {"invoice_id": "${steps.look.output.invoice_id}", "amount": 1.5},
            },
        )
        result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert result["status"] == "success"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(c["tool"], c["args"]) for c in calls] == [
        ("lookup", {"invoice_id": "inv-9"}),
        ("refund", {"invoice_id": "inv-9", "amount": 1.5}),
    ]


def test_naming_a_large_output_many_times_is_refused_not_multiplied(runner: Runner) -> None:
    """A 200,000-character output named 60 times would be 12 million characters of args: the
    step ends `unresolved_reference` before anything is built past the limit (10 million)."""

    @declare_action(action="read")
    def big() -> str:
        return "x" * 200_000

    seen: list[tuple[str, dict[str, Any]]] = []
    graph = runner.graph({**toolkit(seen), "doc.big": big}, profile="technical")
    plan = plan_of(
        {"id": "big", "tool": "doc.big"},
        {"id": "log", "tool": "log.write", "args": {"entry": ["${steps.big.output}"] * 60}},
    )
    steps = runner.invoke(graph, {"plan": plan}, thread())["result"]["steps"]
    log = steps[1]
    assert log["status"] == "error"
    assert log["failure_context"]["error_type"] == "unresolved_reference"
    assert "over 10,000,000 characters" in log["error"]
    assert not [name for name, _ in seen if name == "log.write"]
