"""The OpenAPI adapter against a real FastAPI service (`peers/http_service.py`) on a loopback
port: plans call one tool per operation with path, query, header and body arguments, each
call's idempotency key reaches the service (the same after a resume, so one refund is made), and
every way a call can fail (bad arguments, 4xx, 5xx, no service, no answer) becomes a step
outcome with the retries plangate's profile asks for. Each operation's action comes from its
HTTP method or `x-plangate-action`, and the built-in profiles gate it without the plan saying
anything. Tools get readable names (FastAPI's generated operationIds cut back to the function
name), `include`/`exclude` choose operations by operationId, name or tag, and the document's
security schemes get their credentials from the environment, which never show in a trace, an
error or a repr."""

from __future__ import annotations

import base64
import copy
import importlib
import json
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _support import BILLING_TOKEN as TOKEN
from _support import (
    ENTERPRISE_BY_STEP,
    Runner,
    Service,
    billing_service,
    free_port,
    plan_of,
    thread,
)
from langchain_core.tools import BaseTool
from langgraph.types import Command

from plangate import InvalidDecision, PlangateUsageError, Profile, RetryPolicy
from plangate.actions import ToolDeclaration, tool_declaration
from plangate.adapters.openapi import (
    InvalidToolArguments,
    ToolConnectionError,
    ToolHTTPError,
    ToolHTTPTimeout,
    openapi_tools,
)
from plangate.errors import AdapterError
from plangate.nodes.tool_exec import IDEMPOTENCY_KEY, is_transient
from plangate.plan import Action

TECHNICAL = Profile(name="http-test", redact=False)
RETRYING = Profile(name="http-retry", redact=False, retry=RetryPolicy(max_attempts=3))
TOOLS = [
    "billing.get_invoice",
    "billing.list_invoices",
    "billing.create_refund",
    "billing.cancel_refund",
    "billing.draft_refund",
    "billing.get_exchange_rate",
    "billing.list_customers",
    "billing.get_customer",
    "billing.get_customer_balance",
]
AUTH = {"HTTPBearer": "${BILLING_TOKEN}"}


@pytest.fixture(scope="module")
def running_service() -> Iterator[Service]:
    """The service in a process of its own on a free loopback port, for the whole module."""
    with billing_service() as service:
        yield service


@pytest.fixture
def service(running_service: Service) -> Service:
    """The service with nothing recorded, no refunds and no remembered idempotency keys."""
    httpx.post(f"{running_service.url}/_reset").raise_for_status()
    return running_service


@pytest.fixture(autouse=True)
def billing_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's token where `AUTH` says it is, as a deployment would set it."""
    monkeypatch.setenv("BILLING_TOKEN", TOKEN)


@pytest.fixture
def tools(service: Service) -> list[BaseTool]:
    return openapi_tools(f"{service.url}/openapi.json", prefix="billing", auth=AUTH)


def document_of(service: Service) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{service.url}/openapi.json").json()
    return document


def step(id_: str, operation: str, **args: Any) -> dict[str, Any]:
    return {"id": id_, "tool": f"billing.{operation}", "args": args}


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in result["steps"]}


def step_keys(runner: Runner, graph: Any) -> list[tuple[str, str]]:
    """(step id, idempotency key) of every call made, from the trace."""
    return [
        (event["step_id"], event["data"]["idempotency_key"])
        for event in runner.trace(graph, thread())
        if event["type"] == "tool_call_start"
    ]


# --- loading ----------------------------------------------------------------------------------


def test_tools_load_alike_from_the_service_url_a_dict_and_a_yaml_file(
    service: Service, tmp_path: Path
) -> None:
    """One tool per operationId, named under the prefix and described by summary + description;
    from a dict or a file the base URL is given, from the URL it is where the document is."""
    from_url = openapi_tools(f"{service.url}/openapi.json", prefix="billing", auth=AUTH)
    from_dict = openapi_tools(
        document_of(service), base_url=service.url, prefix="billing", auth=AUTH
    )
    file = tmp_path / "billing.yaml"
    file.write_text(yaml.safe_dump(document_of(service), sort_keys=False), encoding="utf-8")
    from_file = openapi_tools(file, base_url=service.url, prefix="billing", auth=AUTH)
    for loaded in (from_url, from_dict, from_file):
        assert [tool.name for tool in loaded] == TOOLS
    refund = from_url[2]
    assert refund.description == (
        "Refund part of an invoice.\n\nMoney goes back to the customer; cannot be undone."
    )
    # The body's properties sit beside the parameters; Idempotency-Key is plangate's to fill.
    assert sorted(refund.args) == ["amount", "invoice_id", "reason"]
    assert refund.tool_call_schema["required"] == ["invoice_id", "amount"]  # type: ignore[index]
    assert sorted(from_url[1].args) == ["X-Tenant", "customer", "limit"]
    unprefixed = openapi_tools(f"{service.url}/openapi.json", auth=AUTH)
    assert [tool.name for tool in unprefixed][:2] == ["get_invoice", "list_invoices"]
    assert service.requests() == []


def test_a_3_0_document_with_refs_and_nullable_becomes_standalone_argument_schemas(
    service: Service,
) -> None:
    """Path-level and `$ref`'d parameters, a `$ref`'d request body and schemas are inlined
    (a recursive one down to `{}`), `nullable` becomes a JSON Schema type, and a body whose
    property names clash with a parameter is one `body` argument."""
    before = copy.deepcopy(LEDGER)
    fetch, refund = openapi_tools(LEDGER, base_url=service.url, prefix="ledger")
    assert before == LEDGER  # the caller's document is left as it was
    assert fetch.args_schema == {
        "type": "object",
        "properties": {
            "invoice_id": {"type": "string", "description": "The invoice."},
            "config": {"type": ["string", "null"]},
        },
        "required": ["invoice_id"],
        "additionalProperties": False,
    }
    body = refund.args["body"]
    assert refund.tool_call_schema["required"] == ["body"]  # type: ignore[index]
    assert refund.args["amount"] == {"type": "number"}
    note = body["properties"]["note"]
    assert note["type"] == ["object", "null"]
    assert note["properties"]["replies"]["items"] == {}


def test_arguments_reach_the_service_where_the_document_says_whatever_their_names(
    service: Service,
) -> None:
    """A query argument named `config` (a name LangChain uses itself) is sent as such; with a
    whole-body argument, `amount` goes in the query and `body` is the JSON body."""
    fetch, refund = openapi_tools(LEDGER, base_url=service.url, prefix="ledger")
    assert fetch.invoke({"invoice_id": "inv-2", "config": "full"})["customer"] == "globex"
    made = refund.invoke({"amount": 3, "body": {"invoice_id": "inv-2", "amount": 80.5}})
    assert made["refund_id"] == "ref-1"
    assert [(r["method"], r["path"], r["query"], r["body"]) for r in service.requests()] == [
        ("GET", "/invoices/inv-2", {"config": "full"}, None),
        ("POST", "/refunds", {"amount": "3"}, {"invoice_id": "inv-2", "amount": 80.5}),
    ]


LEDGER: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Ledger", "version": "1"},
    "paths": {
        "/invoices/{invoice_id}": {
            "parameters": [{"$ref": "#/components/parameters/InvoiceId"}],
            "get": {
                "operationId": "fetch_invoice",
                "parameters": [
                    {
                        "name": "config",
                        "in": "query",
                        "schema": {"type": "string", "nullable": True},
                    }
                ],
                "responses": {"200": {"description": "The invoice."}},
            },
        },
        "/refunds": {
            "post": {
                "operationId": "refund",
                "parameters": [{"name": "amount", "in": "query", "schema": {"type": "number"}}],
                "requestBody": {"$ref": "#/components/requestBodies/Refund"},
                "responses": {"201": {"description": "The refund."}},
            }
        },
    },
    "components": {
        "parameters": {
            "InvoiceId": {
                "name": "invoice_id",
                "in": "path",
                "required": True,
                "description": "The invoice.",
                "schema": {"type": "string"},
            }
        },
        "requestBodies": {
            "Refund": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Refund"}}
                },
            }
        },
        "schemas": {
            "Refund": {
                "type": "object",
                "required": ["invoice_id", "amount"],
                "properties": {
                    "invoice_id": {"type": "string"},
                    "amount": {"type": "number"},
                    "note": {"$ref": "#/components/schemas/Note"},
                },
            },
            "Note": {
                "type": "object",
                "nullable": True,
                "properties": {
                    "text": {"type": "string"},
                    "replies": {"type": "array", "items": {"$ref": "#/components/schemas/Note"}},
                },
            },
        },
    },
}


def broken(change: str) -> dict[str, Any]:
    """A small valid document, then broken in the way `change` names."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Billing", "version": "1"},
        "servers": [{"url": "https://billing.example"}],
        "paths": {
            "/refunds": {
                "post": {
                    "operationId": "create_refund",
                    "requestBody": {
                        "content": {"application/json": {"schema": {"type": "object"}}}
                    },
                },
                "get": {"operationId": "list_refunds"},
            }
        },
    }
    operations = document["paths"]["/refunds"]
    if change == "no operationId":
        del operations["post"]["operationId"]
    elif change == "duplicate operationId":
        operations["get"]["operationId"] = "create_refund"
    elif change == "swagger":
        del document["openapi"]
        document["swagger"] = "2.0"
    elif change == "form body":
        operations["post"]["requestBody"] = {
            "content": {"multipart/form-data": {"schema": {"type": "object"}}}
        }
    elif change == "no servers":
        del document["servers"]
    elif change == "dangling ref":
        operations["get"]["parameters"] = [{"$ref": "#/components/parameters/Missing"}]
    elif change == "invalid schema":
        operations["get"]["parameters"] = [
            {"name": "limit", "in": "query", "schema": {"type": "integr"}}
        ]
    elif change == "no paths":
        document["paths"] = {}
    elif change == "unknown action":
        operations["post"]["x-plangate-action"] = "delete"
    return document


@pytest.mark.parametrize(
    ("change", "message", "tool"),
    [
        ("no operationId", "POST /refunds has no operationId", None),
        (
            "duplicate operationId",
            "operationId 'create_refund' is used by both GET /refunds and POST /refunds",
            "billing.create_refund",
        ),
        ("swagger", r"not an OpenAPI 3 document \(Swagger 2.0\)", None),
        ("form body", r"POST /refunds \(create_refund\): its request body is multipart", None),
        ("no servers", "cannot tell where the service is: '/' is not an absolute", None),
        ("dangling ref", r"'#/components/parameters/Missing' points to nothing", None),
        ("invalid schema", r"GET /refunds \(list_refunds\): its schema is invalid at", None),
        ("no paths", "defines no operations", None),
        (
            "unknown action",
            r"POST /refunds \(create_refund\): x-plangate-action is 'delete', "
            "not one of read, propose, execute",
            None,
        ),
    ],
)
def test_a_document_plangate_cannot_use_raises_an_adapter_error_naming_the_fix(
    change: str, message: str, tool: str | None
) -> None:
    """Each fault is an `AdapterError` (a usage error, before any run) with a one-line message
    naming the document and operation, and a hint."""
    with pytest.raises(AdapterError, match=message) as caught:
        openapi_tools(broken(change), prefix="billing")
    error = caught.value
    assert error.source == "OpenAPI document 'Billing'"
    assert error.tool == tool
    assert error.hint
    assert "\n" not in str(error)
    assert isinstance(error, PlangateUsageError)


def test_an_unreachable_or_missing_document_raises_an_adapter_error(
    service: Service, tmp_path: Path
) -> None:
    """No service at the URL, a 404 for the document, a missing file: each names its source."""
    nowhere = f"http://127.0.0.1:{free_port()}/openapi.json"
    with pytest.raises(AdapterError, match="cannot fetch the OpenAPI document") as caught:
        openapi_tools(nowhere)
    assert caught.value.source == nowhere
    with pytest.raises(AdapterError, match="answered 404"):
        openapi_tools(f"{service.url}/nope.json")
    with pytest.raises(AdapterError, match="does not exist") as caught:
        openapi_tools(tmp_path / "missing.yaml")
    assert caught.value.source == str(tmp_path / "missing.yaml")
    with pytest.raises(PlangateUsageError, match=r"invalid OpenAPI tool prefix 'acme\.billing'"):
        openapi_tools(broken("none"), prefix="acme.billing")


def test_without_the_extra_the_import_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Importing the adapter without jsonschema (or httpx) names the extra to install."""
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    monkeypatch.delitem(sys.modules, "plangate.adapters.openapi")
    expected = "install plangate's `http` extra (from a checkout: pip install '.[http]')"
    with pytest.raises(ImportError, match=re.escape(expected)):
        importlib.import_module("plangate.adapters.openapi")


# --- plans ------------------------------------------------------------------------------------


def test_a_plan_reads_and_writes_through_the_service(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """Path, query, header and body arguments arrive as the document says; outputs are the
    JSON bodies (text when not JSON); each request carries its step's idempotency key."""
    graph = runner.graph(tools, profile=TECHNICAL)
    plan = plan_of(
        step("invoice", "get_invoice", invoice_id="inv-1", include_lines=True),
        step("list", "list_invoices", customer="acme", limit=1, **{"X-Tenant": "eu"}),
        step("refund", "create_refund", invoice_id="inv-1", amount=20, reason="late"),
        step("rate", "get_exchange_rate", currency="USD"),
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    assert result["status"] == "success"
    steps = by_id(result)
    assert steps["invoice"]["output"]["lines"] == [{"item": "seats", "amount": 120.0}]
    assert [i["invoice_id"] for i in steps["list"]["output"]] == ["inv-1"]
    assert steps["refund"]["output"] == {
        "invoice_id": "inv-1",
        "amount": 20.0,
        "reason": "late",
        "refund_id": "ref-1",
    }
    assert steps["rate"]["output"] == "1.08"

    # The four steps are independent: they run at once, and reach the service in any order.
    seen = {r["path"]: r for r in service.requests()}
    assert len(service.requests()) == 4
    assert sorted((r["method"], r["path"], r["query"], r["body"]) for r in seen.values()) == [
        ("GET", "/invoices", {"customer": "acme", "limit": "1"}, None),
        ("GET", "/invoices/inv-1", {"include_lines": "true"}, None),
        ("GET", "/rates/USD", {}, None),
        ("POST", "/refunds", {}, {"invoice_id": "inv-1", "amount": 20, "reason": "late"}),
    ]
    assert seen["/invoices"]["headers"]["x-tenant"] == "eu"
    paths = {"invoice": "/invoices/inv-1", "list": "/invoices", "refund": "/refunds"}
    paths["rate"] = "/rates/USD"
    keys = [(step, seen[path]["idempotency_key"]) for step, path in paths.items()]
    assert keys == step_keys(runner, graph)


class Crash(BaseException):
    """The process dying: not an exception a tool call can catch."""


def test_the_idempotency_key_is_the_same_after_a_crash_and_resume_so_one_refund_is_made(
    runner: Runner, service: Service
) -> None:
    """Under smb the refund waits for approval; once approved, the call reaches the service,
    which refunds, and the caller dies before the step is recorded. The resumed run calls again
    with the same Idempotency-Key, and the service answers with the first refund."""
    crashes: list[str] = []

    def crash_once(response: httpx.Response) -> None:
        if response.request.method == "POST" and not crashes:
            crashes.append(str(response.request.url))
            raise Crash

    async def acrash_once(response: httpx.Response) -> None:
        crash_once(response)

    client = httpx.Client(event_hooks={"response": [crash_once]})
    aclient = httpx.AsyncClient(event_hooks={"response": [acrash_once]})
    tools = openapi_tools(
        f"{service.url}/openapi.json",
        prefix="billing",
        auth=AUTH,
        client=client,
        async_client=aclient,
    )
    try:
        graph = runner.graph(tools, profile="smb")
        refund = {
            **step("refund", "create_refund", invoice_id="inv-2", amount=30),
            "action": "execute",
        }
        paused = runner.invoke(graph, {"plan": plan_of(refund)}, thread())
        assert paused["__interrupt__"]
        assert service.requests() == []  # nothing before the approval

        approve = Command(resume={"decision": "approve", "approver": "x"})
        with pytest.raises(Crash):
            runner.invoke(graph, approve, thread())
        assert crashes == [f"{service.url}/refunds"]
        assert len(service.refunds()) == 1

        result = runner.invoke(runner.graph(tools, profile="smb"), None, thread())["result"]
    finally:
        client.close()
        runner.loop.run_until_complete(aclient.aclose())
    assert result["status"] == "success"
    assert by_id(result)["refund"]["output"]["refund_id"] == "ref-1"
    assert [r["refund_id"] for r in service.refunds()] == ["ref-1"]
    keys = [r["idempotency_key"] for r in service.requests()]
    assert len(keys) == 2
    assert keys[0] == keys[1] is not None
    assert step_keys(runner, graph)[-1] == ("refund", keys[0])


def test_an_approver_sees_the_operation_arguments_and_a_bad_edit_is_refused(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """The approval request's schema lists the operation's arguments; an edit the schema
    refuses raises `InvalidDecision` naming the field, and the run stays paused."""
    graph = runner.graph(tools, profile="smb")
    refund = {**step("refund", "create_refund", invoice_id="inv-1", amount=5), "action": "execute"}
    paused = runner.invoke(graph, {"plan": plan_of(refund)}, thread())
    request = paused["__interrupt__"][0].value
    args_schema = request["response_schema"]["properties"]["args"]["anyOf"][0]
    assert sorted(args_schema["properties"]) == ["amount", "invoice_id", "reason"]

    bad = {"decision": "edit", "args": {"invoice_id": "inv-1", "amount": "ten"}}
    with pytest.raises(InvalidDecision, match="amount: 'ten' is not of type 'number'"):
        runner.invoke(graph, Command(resume=bad), thread())
    good = {"decision": "edit", "args": {"invoice_id": "inv-1", "amount": 7.5}}
    result = runner.invoke(graph, Command(resume=good), thread())["result"]
    assert by_id(result)["refund"]["output"]["amount"] == 7.5
    assert [r["body"] for r in service.requests()] == [{"invoice_id": "inv-1", "amount": 7.5}]


def test_an_edit_is_refused_naming_every_bad_field_an_unknown_key_first(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """Only the first bad field was named; a key the operation does not take was named only
    where the document forbids extra properties. Every bad field is named now, in one line,
    the unknown key first; nothing reaches the service and the run stays paused."""
    graph = runner.graph(tools, profile="smb")
    refund = {**step("refund", "create_refund", invoice_id="inv-1", amount=5), "action": "execute"}
    runner.invoke(graph, {"plan": plan_of(refund)}, thread())

    bad = {"decision": "edit", "args": {"amount": "ten", "currency": "EUR"}}
    with pytest.raises(InvalidDecision) as caught:
        runner.invoke(graph, Command(resume=bad), thread())

    assert str(caught.value).startswith(
        "invalid edit for tool 'billing.create_refund': args.currency: billing.create_refund "
        "takes no argument 'currency' (invoice_id, amount, reason); args.amount: 'ten' is not "
        "of type 'number'; args.invoice_id: Field required"
    ), str(caught.value)
    assert caught.value.field == "args.currency"
    assert service.requests() == []
    good = {"decision": "edit", "args": {"invoice_id": "inv-1", "amount": 7.5}}
    assert runner.invoke(graph, Command(resume=good), thread())["result"]["status"] == "success"


def test_arguments_the_schema_refuses_fail_the_step_before_any_request(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """A wrong type, a missing and a misspelt argument: each step is an error naming the tool
    and the field; the service sees nothing."""
    graph = runner.graph(tools, profile=RETRYING)
    plan = plan_of(
        step("typed", "create_refund", invoice_id="inv-1", amount="ten"),
        step("missing", "create_refund", amount=10),
        step("misspelt", "get_invoice", invoice_id="inv-1", include_line=True),
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    steps = by_id(result)
    assert {s: steps[s]["error"] for s in steps} == {
        "typed": "billing.create_refund: amount: 'ten' is not of type 'number'",
        "missing": "billing.create_refund: 'invoice_id' is a required property",
        "misspelt": (
            "billing.get_invoice: Additional properties are not allowed "
            "('include_line' was unexpected)"
        ),
    }
    assert {steps[s]["failure_context"]["error_type"] for s in steps} == {"invalid_arguments"}
    assert {steps[s]["attempts"] for s in steps} == {1}
    assert service.requests() == []


def test_a_404_fails_the_step_at_once_with_method_path_status_and_body(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """A 4xx is no transient error: one attempt, even under a retry policy."""
    waits: list[float] = []
    graph = runner.graph(tools, profile=RETRYING, sleep=waits.append)
    plan = plan_of(step("invoice", "get_invoice", invoice_id="inv-404"))
    failed = by_id(runner.invoke(graph, {"plan": plan}, thread())["result"])["invoice"]
    assert failed["status"] == "error"
    assert failed["error"] == (
        "billing.get_invoice: GET /invoices/inv-404 answered 404 Not Found: "
        '{"detail":"no invoice inv-404"}'
    )
    assert failed["failure_context"]["error_type"] == "ToolHTTPError"
    assert (failed["attempts"], waits, len(service.requests())) == (1, [], 1)


def test_a_503_is_retried_with_the_same_key_until_the_service_answers(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """Two 503s then the rate: ok after 3 attempts, two waits (injected, not slept), and every
    attempt carried the step's one idempotency key."""
    waits: list[float] = []
    graph = runner.graph(tools, profile=RETRYING, sleep=waits.append)
    plan = plan_of(step("rate", "get_exchange_rate", currency="GBP", failures=2))
    rate = by_id(runner.invoke(graph, {"plan": plan}, thread())["result"])["rate"]
    assert (rate["status"], rate["attempts"], rate["output"], len(waits)) == ("ok", 3, "1.08", 2)
    retries = [e for e in runner.trace(graph, thread()) if e["type"] == "tool_call_retry"]
    assert [e["data"]["error_type"] for e in retries] == ["ToolHTTPError", "ToolHTTPError"]
    assert (
        "answered 503 Service Unavailable: rates are being recomputed"
        in (retries[0]["data"]["message"])
    )
    keys = {r["idempotency_key"] for r in service.requests()}
    assert keys == {step_keys(runner, graph)[0][1]}
    assert len(service.requests()) == 3


def test_a_service_that_is_down_is_a_transient_connection_error(
    runner: Runner, service: Service
) -> None:
    """Nothing listens at the document's server URL (its variables filled with their
    defaults): each attempt is a `ToolConnectionError` (a `ConnectionError`), retried, and the
    step fails naming the tool and URL."""
    port = free_port()
    document = document_of(service)
    document["servers"] = [
        {"url": "http://127.0.0.1:{port}/v1", "variables": {"port": {"default": str(port)}}}
    ]
    down = f"http://127.0.0.1:{port}/v1"
    tools = openapi_tools(document, prefix="billing", auth=AUTH)
    waits: list[float] = []
    graph = runner.graph(tools, profile=RETRYING, sleep=waits.append)
    plan = plan_of(step("invoice", "get_invoice", invoice_id="inv-1"))
    failed = by_id(runner.invoke(graph, {"plan": plan}, thread())["result"])["invoice"]
    assert (failed["status"], failed["attempts"], len(waits)) == ("error", 3, 2)
    assert failed["failure_context"]["error_type"] == "ToolConnectionError"
    assert failed["error"].startswith(f"billing.get_invoice: cannot reach {down}/invoices/inv-1: ")

    with pytest.raises(ToolConnectionError) as caught:
        tools[0].invoke({"invoice_id": "inv-1"})
    assert isinstance(caught.value, ConnectionError)
    assert is_transient(caught.value)
    assert caught.value.url == f"{down}/invoices/inv-1"


def test_a_service_that_never_answers_times_out_as_a_step_timeout(
    runner: Runner, service: Service
) -> None:
    """A socket that accepts connections and never answers: the request's own timeout ends the
    step with `error_type: "timeout"`, a transient error."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        tools = openapi_tools(
            document_of(service), base_url=base, prefix="billing", auth=AUTH, timeout=0.05
        )
        graph = runner.graph(tools, profile=TECHNICAL)
        plan = plan_of(step("invoice", "get_invoice", invoice_id="inv-1"))
        failed = by_id(runner.invoke(graph, {"plan": plan}, thread())["result"])["invoice"]
        with pytest.raises(ToolHTTPTimeout) as caught:
            tools[0].invoke({"invoice_id": "inv-1"})
    assert failed["failure_context"]["error_type"] == "timeout"
    assert (
        failed["error"] == f"billing.get_invoice: GET {base}/invoices/inv-1 timed out (ReadTimeout)"
    )
    assert is_transient(caught.value)


def test_an_operation_outside_the_allowlist_is_blocked_and_never_sent(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """With `allowed_tools: [billing.get_*]` a refund step is blocked; only the read is sent."""
    profile = Profile(name="reads-only", redact=False, allowed_tools=["billing.get_*"])
    graph = runner.graph(tools, profile=profile)
    plan = plan_of(
        step("invoice", "get_invoice", invoice_id="inv-1"),
        step("refund", "create_refund", invoice_id="inv-1", amount=10),
    )
    steps = by_id(runner.invoke(graph, {"plan": plan}, thread())["result"])
    assert {s: steps[s]["status"] for s in steps} == {"invoice": "ok", "refund": "blocked"}
    assert steps["refund"]["failure_context"]["error_type"] == "tool_not_allowed"
    assert [(r["method"], r["path"]) for r in service.requests()] == [("GET", "/invoices/inv-1")]
    assert service.refunds() == []


# --- actions ----------------------------------------------------------------------------------


def declared(action: Action, *, irreversible: bool = False) -> ToolDeclaration:
    return ToolDeclaration(action=action, irreversible=irreversible, source="openapi")


def test_each_tool_declares_its_action_from_its_method_or_x_plangate_action(
    tools: list[BaseTool],
) -> None:
    """GET reads, POST executes, DELETE executes irreversibly; `x-plangate-action` replaces the
    method's action, and a DELETE it marks stays irreversible."""
    assert {tool.name: tool_declaration(tool) for tool in tools} == {
        "billing.get_invoice": declared("read"),
        "billing.list_invoices": declared("read"),
        "billing.create_refund": declared("execute"),
        "billing.cancel_refund": declared("execute", irreversible=True),
        "billing.draft_refund": declared("propose"),
        "billing.get_exchange_rate": declared("read"),
        "billing.list_customers": declared("read"),
        "billing.get_customer": declared("read"),
        "billing.get_customer_balance": declared("read"),
    }
    document = broken("none")
    document["paths"]["/refunds"]["get"]["x-plangate-action"] = "execute"
    document["paths"]["/refunds/{refund_id}"] = {
        "delete": {
            "operationId": "archive_refund",
            "x-plangate-action": "propose",
            "parameters": [
                {"name": "refund_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        }
    }
    marked = openapi_tools(document, prefix="billing")
    assert [tool_declaration(tool) for tool in marked] == [
        declared("execute"),
        declared("execute"),
        declared("propose", irreversible=True),
    ]


@pytest.mark.parametrize("profile", ["smb", "technical"])
def test_a_get_runs_unasked_and_a_delete_waits_as_irreversible_under_every_profile(
    runner: Runner, service: Service, tools: list[BaseTool], profile: str
) -> None:
    """With no `action` in the plan: the GET runs at once; the DELETE waits, even under
    `technical` (no auto-send): its request says it is an irreversible `execute` from the
    OpenAPI method at high risk, and the service sees no DELETE until it is approved, then
    exactly one."""
    made = tools[2].invoke({"invoice_id": "inv-1", "amount": 10})
    graph = runner.graph(tools, profile=profile)
    plan = plan_of(
        step("invoice", "get_invoice", invoice_id="inv-1"),
        step("cancel", "cancel_refund", refund_id=made["refund_id"]),
    )
    paused = runner.invoke(graph, {"plan": plan}, thread())
    request = paused["__interrupt__"][0].value
    assert (request["step_id"], request["args"]) == ("cancel", {"refund_id": "ref-1"})
    assert {k: request[k] for k in ("action", "action_source", "irreversible", "risk")} == {
        "action": "execute",
        "action_source": "openapi",
        "irreversible": True,
        "risk": "high",
    }
    assert "cannot be undone" in request["consequence"]
    assert [(r["method"], r["path"]) for r in service.requests()] == [
        ("POST", "/refunds"),
        ("GET", "/invoices/inv-1"),
    ]

    approve = Command(resume={"decision": "approve", "approver": "x"})
    result = runner.invoke(graph, approve, thread())["result"]
    assert {s: o["status"] for s, o in by_id(result).items()} == {"invoice": "ok", "cancel": "ok"}
    deletes = [r["path"] for r in service.requests() if r["method"] == "DELETE"]
    assert deletes == ["/refunds/ref-1"]
    assert service.refunds() == []


def test_a_post_waits_under_smb_and_a_propose_operation_only_under_enterprise(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """With no `action` in the plan: under smb the draft (`x-plangate-action: propose`) is sent
    unasked and the refund (a POST) waits; enterprise, which gates propose, holds the draft."""
    draft = step("draft", "draft_refund", invoice_id="inv-2", amount=5)
    refund = step("refund", "create_refund", invoice_id="inv-2", amount=5)
    smb = runner.graph(tools, profile="smb")
    paused = runner.invoke(smb, {"plan": plan_of(draft, refund)}, thread("smb"))
    request = paused["__interrupt__"][0].value
    assert (request["step_id"], request["action"], request["action_source"]) == (
        "refund",
        "execute",
        "openapi",
    )
    assert (request["irreversible"], request["risk"]) == (False, "high")
    assert [(r["method"], r["path"]) for r in service.requests()] == [("POST", "/refund-drafts")]

    enterprise = runner.graph(tools, profile=ENTERPRISE_BY_STEP)
    held = runner.invoke(enterprise, {"plan": plan_of(draft)}, thread("enterprise"))
    request = held["__interrupt__"][0].value
    assert (request["step_id"], request["action"], request["action_source"]) == (
        "draft",
        "propose",
        "openapi",
    )
    assert len(service.requests()) == 1  # the draft under enterprise waits, unsent


def test_a_plan_calling_a_delete_a_read_cannot_lower_it(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """A plan saying `action: read` for the DELETE is overruled: the step still waits as an
    `execute`, nothing is sent, and the trace records the `policy_override`."""
    graph = runner.graph(tools, profile="smb")
    cancel = {**step("cancel", "cancel_refund", refund_id="ref-1"), "action": "read"}
    paused = runner.invoke(graph, {"plan": plan_of(cancel)}, thread())
    request = paused["__interrupt__"][0].value
    assert (request["action"], request["action_source"], request["irreversible"]) == (
        "execute",
        "openapi",
        True,
    )
    overrides = [e for e in runner.trace(graph, thread()) if e["type"] == "policy_override"]
    assert [(e["step_id"], e["data"]) for e in overrides] == [
        ("cancel", {"plan_action": "read", "action": "execute", "action_source": "openapi"})
    ]
    assert service.requests() == []


# --- a tool on its own ------------------------------------------------------------------------


def test_a_tool_called_directly_raises_precise_errors_and_sends_its_key(
    service: Service, tools: list[BaseTool]
) -> None:
    """Outside plangate the same errors carry their attributes; the key in the run config is
    sent as `Idempotency-Key`, and none is sent without one."""
    get_invoice, _, create_refund, *_ = tools
    with pytest.raises(InvalidToolArguments) as bad:
        create_refund.invoke({"invoice_id": "inv-1", "amount": -1})
    assert (bad.value.tool, bad.value.field) == ("billing.create_refund", "amount")
    with pytest.raises(ToolHTTPError) as missing:
        get_invoice.invoke({"invoice_id": "nope"})
    assert (missing.value.status_code, missing.value.method) == (404, "GET")
    assert missing.value.url == f"{service.url}/invoices/nope"
    assert not is_transient(missing.value)

    config = {"metadata": {IDEMPOTENCY_KEY: "key-1"}}
    first = create_refund.invoke({"invoice_id": "inv-1", "amount": 1}, config=config)  # type: ignore[arg-type]
    again = create_refund.invoke({"invoice_id": "inv-1", "amount": 1}, config=config)  # type: ignore[arg-type]
    other = create_refund.invoke({"invoice_id": "inv-1", "amount": 1})
    assert (first["refund_id"], again["refund_id"], other["refund_id"]) == (
        "ref-1",
        "ref-1",
        "ref-2",
    )
    assert [r["idempotency_key"] for r in service.requests()] == [None, "key-1", "key-1", None]


# --- names ------------------------------------------------------------------------------------


def document_with(*operations: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """A document with these (method, path, operation) entries, in this order."""
    paths: dict[str, Any] = {}
    for method, path, operation in operations:
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Threads", "version": "1"},
        "servers": [{"url": "https://threads.example"}],
        "paths": paths,
    }


def test_fastapi_generated_operation_ids_are_cut_back_to_the_function_name(
    service: Service,
) -> None:
    """The service's `customers` routes set no operation_id, so FastAPI generates
    `<function><path>_<method>`; their tools are named after the function, except the one whose
    `x-plangate-name` says otherwise, and they call the service as usual."""
    ids = [
        operation["operationId"]
        for item in document_of(service)["paths"].values()
        for operation in item.values()
    ]
    assert ids[6:] == [
        "list_customers_customers_get",
        "get_customer_customers__customer_id__get",
        "balance_customers__customer_id__balance_get",
    ]
    customers = openapi_tools(
        f"{service.url}/openapi.json", prefix="billing", include=["tag:customers"], auth=AUTH
    )
    assert [tool.name for tool in customers] == TOOLS[6:]
    _, get_customer, get_balance = customers
    assert get_customer.invoke({"customer_id": "acme"})["name"] == "Acme Corp"
    assert get_balance.invoke({"customer_id": "globex"}) == 80.5


def test_names_that_clash_once_cut_back_keep_their_full_operation_ids() -> None:
    """Two functions named alike, a cut-back name that another operation already has (as its
    operationId or its `x-plangate-name`): those keep their full operationIds. An id that does
    not end in its own path and method is no FastAPI one and is kept; `/` leaves `root`. Names
    are the same whichever operations are chosen."""
    document = document_with(
        ("get", "/threads/{thread_id}", {"operationId": "get_thread_threads__thread_id__get"}),
        ("get", "/v2/threads/{id}", {"operationId": "get_thread_v2_threads__id__get"}),
        ("get", "/runs", {"operationId": "list_runs"}),
        ("post", "/runs", {"operationId": "list_runs_runs_post"}),
        ("get", "/runs/{run_id}", {"operationId": "get_run_runs__run_id__get"}),
        ("put", "/runs/{run_id}", {"operationId": "put_run", "x-plangate-name": "get_run"}),
        ("delete", "/runs/{run_id}", {"operationId": "cancel_runs_get"}),
        ("get", "/", {"operationId": "root__get"}),
        ("get", "/health", {"operationId": "health_health_get"}),
    )
    assert [tool.name for tool in openapi_tools(document, prefix="threads")] == [
        "threads.get_thread_threads__thread_id__get",
        "threads.get_thread_v2_threads__id__get",
        "threads.list_runs",
        "threads.list_runs_runs_post",
        "threads.get_run_runs__run_id__get",
        "threads.get_run",
        "threads.cancel_runs_get",
        "threads.root",
        "threads.health",
    ]
    chosen = openapi_tools(document, include=["get_thread_v2_*", "get_run_*"])
    assert [tool.name for tool in chosen] == [
        "get_thread_v2_threads__id__get",
        "get_run_runs__run_id__get",
    ]


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("runs.get", r"GET /runs \(list_runs\): x-plangate-name is 'runs.get', not a tool name"),
        ("", r"GET /runs \(list_runs\): x-plangate-name is '', not a tool name"),
        (
            "cancel_run",
            "tool name 'threads.cancel_run' is given to both GET /runs and DELETE /runs/{run_id}",
        ),
    ],
)
def test_an_x_plangate_name_that_is_no_name_or_taken_is_an_adapter_error(
    declared: str, message: str
) -> None:
    """A dotted or empty name, or one that another operation has: refused when the operation
    is kept, and no matter when it is left out."""
    document = document_with(
        ("get", "/runs", {"operationId": "list_runs", "x-plangate-name": declared}),
        ("delete", "/runs/{run_id}", {"operationId": "cancel_run"}),
    )
    with pytest.raises(AdapterError, match=message) as caught:
        openapi_tools(document, prefix="threads")
    assert caught.value.hint
    kept = openapi_tools(document, prefix="threads", exclude=["list_runs"])
    assert [tool.name for tool in kept] == ["threads.cancel_run"]


# --- choosing operations ----------------------------------------------------------------------


def test_include_and_exclude_choose_operations_by_operation_id_tool_name_or_tag(
    service: Service,
) -> None:
    """Globs of tool names and of FastAPI's generated ids match alike, `tag:` globs match
    tags, and `exclude` wins over `include`. Leaving out the bearer-protected operations
    needs no credential."""
    url = f"{service.url}/openapi.json"
    chosen = openapi_tools(
        url, prefix="billing", include=["get_*", "tag:refunds"], exclude=["cancel_*"], auth=AUTH
    )
    assert [tool.name for tool in chosen] == [
        "billing.get_invoice",
        "billing.create_refund",
        "billing.draft_refund",
        "billing.get_exchange_rate",
        "billing.get_customer",
        "billing.get_customer_balance",
    ]
    by_id = openapi_tools(
        url, prefix="billing", include=["list_customers_customers_get", "tag:inv*"], auth=AUTH
    )
    assert [tool.name for tool in by_id] == [
        "billing.get_invoice",
        "billing.list_invoices",
        "billing.list_customers",
    ]
    public = openapi_tools(url, prefix="billing", exclude=["tag:customers"])
    assert [tool.name for tool in public] == TOOLS[:6]
    assert service.requests() == []


def test_a_pattern_that_matches_no_operation_is_an_adapter_error_naming_it(
    service: Service,
) -> None:
    """A misspelt `include` would give fewer tools, a misspelt `exclude` would keep one meant
    to be left out: both are refused, naming each pattern and the document's tags."""
    url = f"{service.url}/openapi.json"
    with pytest.raises(AdapterError) as caught:
        openapi_tools(url, include=["get_invoce", "tag:biling", "get_*"], auth=AUTH)
    assert caught.value.message == "include patterns 'get_invoce', 'tag:biling' match no operation"
    assert caught.value.hint == (
        "patterns are globs of operationIds or tool names (without the prefix), or "
        "'tag:<tag>'; the document's tags are customers, invoices, rates, refunds"
    )
    with pytest.raises(AdapterError, match="exclude pattern 'cancel_refnd' matches no operation"):
        openapi_tools(url, exclude=["cancel_refnd"], auth=AUTH)
    with pytest.raises(AdapterError, match="include/exclude leave none of the document's 9"):
        openapi_tools(url, include=["tag:rates"], exclude=["get_exchange_rate"])
    with pytest.raises(PlangateUsageError, match="include must be a list of non-empty patterns"):
        openapi_tools(url, include="get_*", auth=AUTH)


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ("form body", {"exclude": ["create_refund"]}),
        ("no operationId", {"include": ["list_refunds"]}),
        ("unknown action", {"exclude": ["create_*"]}),
    ],
)
def test_an_operation_left_out_is_not_read_so_it_may_be_one_plangate_cannot_use(
    change: str, option: dict[str, list[str]]
) -> None:
    """The `POST /refunds` of each broken document would refuse the whole document; left out,
    the rest loads."""
    tools = openapi_tools(broken(change), prefix="billing", **option)  # type: ignore[arg-type]
    assert [tool.name for tool in tools] == ["billing.list_refunds"]


# --- credentials ------------------------------------------------------------------------------


def test_a_bearer_token_reaches_the_service_and_no_trace_error_or_repr_holds_it(
    runner: Runner, service: Service, tools: list[BaseTool]
) -> None:
    """`auth` reads the token from BILLING_TOKEN: each call of a `customers` operation carries
    `Authorization: Bearer <token>`, which is no argument of the tool. The service quotes the
    token in its 404; the step's error, the exception, the run's trace and result and every
    repr hold `***` instead."""
    get_customer = tools[TOOLS.index("billing.get_customer")]
    assert list(get_customer.args) == ["customer_id"]
    graph = runner.graph(tools, profile=TECHNICAL)
    plan = plan_of(
        step("acme", "get_customer", customer_id="acme"),
        step("nobody", "get_customer", customer_id="nobody"),
        step("invoice", "get_invoice", invoice_id="inv-1"),
    )
    result = runner.invoke(graph, {"plan": plan}, thread())["result"]
    steps = by_id(result)
    assert steps["acme"]["output"]["name"] == "Acme Corp"
    assert steps["nobody"]["error"] == (
        'billing.get_customer: GET /customers/nobody answered 404 Not Found: {"detail":'
        '"no customer nobody for ***"}'
    )
    sent = {r["path"]: r["headers"].get("authorization") for r in service.requests()}
    assert sent == {
        "/customers/acme": f"Bearer {TOKEN}",
        "/customers/nobody": f"Bearer {TOKEN}",
        "/invoices/inv-1": None,  # only the operations whose `security` asks for it
    }
    trace = runner.trace(graph, thread())
    assert {e["type"] for e in trace} >= {"tool_call_start", "tool_call_error"}
    assert TOKEN not in json.dumps([trace, result], default=str)

    with pytest.raises(ToolHTTPError) as caught:
        get_customer.invoke({"customer_id": "nobody"})
    assert caught.value.body == '{"detail":"no customer nobody for ***"}'
    operation = get_customer.get_input_schema().operation  # type: ignore[union-attr]
    shown = [str(caught.value), repr(caught.value), repr(tools), repr(operation)]
    assert "HTTPBearer" in repr(operation)
    assert not [text for text in shown if TOKEN in text]


def test_a_token_the_service_refuses_is_a_401_whose_error_hides_it(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable is read when the tools are made; a wrong token is a 4xx like any other,
    and the service's answer quoting it is hidden as well."""
    monkeypatch.setenv("BILLING_TOKEN", "tok-revoked-0042")
    tools = openapi_tools(
        f"{service.url}/openapi.json", prefix="billing", include=["tag:customers"], auth=AUTH
    )
    with pytest.raises(ToolHTTPError) as caught:
        tools[0].invoke({})
    assert caught.value.status_code == 401
    assert str(caught.value) == (
        'billing.list_customers: GET /customers answered 401 Unauthorized: {"detail":'
        '"bad token: got ***"}'
    )


def test_an_answer_quoting_the_credential_comes_back_with_it_hidden(service: Service) -> None:
    """A 200 whose JSON quotes the requests the service got (its own `/_requests`, described
    here as a bearer-protected operation) returns the token as `***`."""
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Recorder", "version": "1"},
        "paths": {"/_requests": {"get": {"operationId": "recorded", "security": [{"bearer": []}]}}},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    (recorded,) = openapi_tools(document, base_url=service.url, auth={"bearer": "${BILLING_TOKEN}"})
    httpx.get(f"{service.url}/customers", headers={"Authorization": f"Bearer {TOKEN}"})
    output = recorded.invoke({})
    assert [r["headers"]["authorization"] for r in output] == ["***"]
    assert TOKEN not in json.dumps(output)


def test_a_required_scheme_without_a_credential_is_an_adapter_error_saying_what_to_set(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `auth`, an unset variable, a literal value (never quoted back), a scheme the
    document does not have: each refused when the tools are made. A header the caller sends
    itself, or a client that carries it, counts as a credential given."""
    url = f"{service.url}/openapi.json"
    with pytest.raises(AdapterError) as caught:
        openapi_tools(url, prefix="billing")
    assert (caught.value.message, caught.value.hint, caught.value.tool) == (
        "GET /customers (list_customers_customers_get) requires security scheme 'HTTPBearer' "
        "(http bearer), and no credential is given for it",
        "pass auth={'HTTPBearer': '${BILLING_TOKEN}'} and set that variable, or leave the "
        "operation out with exclude=",
        "billing.list_customers",
    )
    with pytest.raises(AdapterError) as literal:
        openapi_tools(url, auth={"HTTPBearer": TOKEN})
    assert literal.value.message == (
        "auth gives security scheme 'HTTPBearer' a value that names no environment variable"
    )
    assert TOKEN not in str(literal.value)
    with pytest.raises(AdapterError, match="auth names security scheme 'bearerAuth', which the"):
        openapi_tools(url, auth={"bearerAuth": "${BILLING_TOKEN}"})
    monkeypatch.delenv("BILLING_TOKEN")
    with pytest.raises(AdapterError) as unset:
        openapi_tools(url, auth=AUTH)
    assert (unset.value.message, unset.value.hint) == (
        "security scheme 'HTTPBearer' reads its credential from ${BILLING_TOKEN}, which is not set",
        "set BILLING_TOKEN in the environment",
    )

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    by_header = openapi_tools(url, prefix="billing", headers=bearer, include=["get_customer"])
    assert by_header[0].invoke({"customer_id": "acme"})["customer_id"] == "acme"
    with httpx.Client(headers=bearer) as client:
        by_client = openapi_tools(url, prefix="billing", client=client, include=["get_customer"])
        assert by_client[0].invoke({"customer_id": "globex"})["customer_id"] == "globex"


REFUND_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"invoice_id": {"type": "string"}, "amount": {"type": "number"}},
            }
        }
    }
}


def secured() -> dict[str, Any]:
    """The service's public operations as a document with every kind of scheme plangate
    sends: a global apiKey header, basic or OAuth 2 as alternatives, a query key together with
    a cookie, optional and no security."""

    def parameter(name: str, where: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": where,
            "required": where == "path",
            "schema": {"type": "string"},
        }

    return {
        "openapi": "3.1.0",
        "info": {"title": "Ledger", "version": "1"},
        "security": [{"key": []}],
        "paths": {
            "/invoices/{invoice_id}": {
                "get": {
                    "operationId": "fetch_invoice",
                    # Declared as a parameter too, as some documents do: the scheme fills it.
                    "parameters": [
                        parameter("invoice_id", "path"),
                        parameter("x-api-key", "header"),
                    ],
                }
            },
            "/invoices": {
                "get": {
                    "operationId": "find_invoices",
                    "security": [{"oauth": []}, {"basic": []}],
                    "parameters": [parameter("customer", "query"), parameter("X-Tenant", "header")],
                }
            },
            "/rates/{currency}": {
                "get": {
                    "operationId": "rate",
                    "security": [{"query_key": [], "session": []}],
                    "parameters": [parameter("currency", "path")],
                }
            },
            "/refund-drafts": {
                "post": {
                    "operationId": "draft",
                    "security": [{}, {"key": []}],
                    "requestBody": REFUND_BODY,
                }
            },
            "/refunds": {
                "post": {"operationId": "refund", "security": [], "requestBody": REFUND_BODY}
            },
        },
        "components": {
            "securitySchemes": {
                "key": {"$ref": "#/components/x-shared/key"},
                "basic": {"type": "http", "scheme": "basic"},
                "oauth": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "https://auth.example/token",
                            "scopes": {},
                        }
                    },
                },
                "query_key": {"type": "apiKey", "in": "query", "name": "api_key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "x-shared": {"key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }


LEDGER_AUTH = {
    "key": "${LEDGER_KEY}",
    "basic": "${LEDGER_USER}:${LEDGER_PASSWORD}",
    "query_key": "${LEDGER_KEY}",
    "session": "${LEDGER_SESSION}",
}


def test_api_key_basic_and_oauth2_credentials_go_where_their_schemes_say(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the real service: the global apiKey header (not an argument, though declared),
    basic when OAuth 2 has no credential and the bearer token once it has, a query key with a
    cookie, the optional key sent since it is given, and nothing where `security` is empty."""
    for name, value in {
        "LEDGER_KEY": "key-5e1d",
        "LEDGER_USER": "ops",
        "LEDGER_PASSWORD": "pw-93b0",
        "LEDGER_SESSION": "sess-77c2",
        "LEDGER_TOKEN": "tok-oauth-c4e8",
    }.items():
        monkeypatch.setenv(name, value)
    fetch, find, rate, draft, refund = openapi_tools(
        secured(), base_url=service.url, auth=LEDGER_AUTH
    )
    assert list(fetch.args) == ["invoice_id"]
    fetch.invoke({"invoice_id": "inv-1"})
    find.invoke({"customer": "acme", "X-Tenant": "eu"})
    rate.invoke({"currency": "USD"})
    draft.invoke({"invoice_id": "inv-1", "amount": 1})
    refund.invoke({"invoice_id": "inv-1", "amount": 1})
    _, find = openapi_tools(
        secured(), base_url=service.url, auth={**LEDGER_AUTH, "oauth": "${LEDGER_TOKEN}"}
    )[:2]
    find.invoke({"customer": "acme", "X-Tenant": "eu"})

    basic = base64.b64encode(b"ops:pw-93b0").decode()
    seen = [
        (
            r["path"],
            r["query"],
            {
                k: v
                for k, v in r["headers"].items()
                if k in ("x-api-key", "authorization", "cookie")
            },
        )
        for r in service.requests()
    ]
    assert seen == [
        ("/invoices/inv-1", {}, {"x-api-key": "key-5e1d"}),
        ("/invoices", {"customer": "acme"}, {"authorization": f"Basic {basic}"}),
        ("/rates/USD", {"api_key": "key-5e1d"}, {"cookie": "session=sess-77c2"}),
        ("/refund-drafts", {}, {"x-api-key": "key-5e1d"}),
        ("/refunds", {}, {}),
        ("/invoices", {"customer": "acme"}, {"authorization": "Bearer tok-oauth-c4e8"}),
    ]


@pytest.mark.parametrize(
    ("change", "auth", "message", "hint"),
    [
        (
            "mutual TLS",
            LEDGER_AUTH,
            "GET /rates/{currency} (rate) requires security scheme 'mtls' (mutualTLS), and no "
            "credential is given for it",
            "plangate cannot send mutualTLS credentials: pass client=",
        ),
        (
            "digest",
            {**LEDGER_AUTH, "basic": "${LEDGER_USER}"},
            "auth names security scheme 'basic' (http digest), whose credentials plangate "
            "cannot send",
            "pass client= and async_client= with an httpx auth that sends them",
        ),
        (
            "no colon",
            {**LEDGER_AUTH, "basic": "${LEDGER_USER}"},
            "security scheme 'basic' is http basic: its credential is user:password, and the "
            "one given has no ':'",
            "write auth={'basic': '${API_USER}:${API_PASSWORD}'}",
        ),
        (
            "undefined scheme",
            LEDGER_AUTH,
            "GET /rates/{currency} (rate): it requires security scheme 'partner', which the "
            "document does not define",
            "define it in components.securitySchemes",
        ),
        (
            "bad apiKey",
            LEDGER_AUTH,
            "auth: security scheme 'query_key' is an apiKey without a valid `name` and `in`",
            "give it `name` and `in: header|query|cookie`",
        ),
    ],
)
def test_a_scheme_plangate_cannot_send_or_find_is_an_adapter_error(
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    auth: dict[str, str],
    message: str,
    hint: str,
) -> None:
    """Each names the scheme and what to do, and quotes no credential."""
    for name in ("LEDGER_KEY", "LEDGER_USER", "LEDGER_PASSWORD", "LEDGER_SESSION"):
        monkeypatch.setenv(name, f"secret-{name.lower()}")
    document = secured()
    schemes = document["components"]["securitySchemes"]
    rate = document["paths"]["/rates/{currency}"]["get"]
    if change == "mutual TLS":
        schemes["mtls"] = {"type": "mutualTLS"}
        rate["security"] = [{"mtls": []}]
    elif change == "digest":
        schemes["basic"]["scheme"] = "digest"
    elif change == "undefined scheme":
        rate["security"] = [{"partner": []}]
    elif change == "bad apiKey":
        del schemes["query_key"]["in"]
    with pytest.raises(AdapterError) as caught:
        openapi_tools(document, base_url="https://ledger.example", auth=auth)
    assert caught.value.message == message
    assert caught.value.hint is not None
    assert caught.value.hint.startswith(hint)
    assert "secret-" not in str(caught.value)
