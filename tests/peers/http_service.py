"""A small billing service over HTTP: the real peer the OpenAPI adapter tests call.

It records every request it gets (method, path, query, JSON body, `Idempotency-Key` header) and
honours `Idempotency-Key` on `POST /refunds`: a key seen before gets the first response again
and no second refund. `DELETE /refunds/{refund_id}` cancels a refund, and `POST /refund-drafts`
drafts one for a person to review (its document marks it `x-plangate-action: propose`). Its
test-only endpoints (`/_requests`, `/_refunds`, `/_reset`) are left out of the OpenAPI document,
so no tool is generated for them.

Its operations are tagged (`invoices`, `refunds`, `rates`, `customers`). The `customers` ones are
written as most FastAPI services are: no `operation_id`, so FastAPI generates one
(`get_customer_customers__customer_id__get`), and each asks for a bearer token (the `HTTPBearer`
scheme), which must equal the `BILLING_SERVICE_TOKEN` environment variable. Their error details
quote the `Authorization` header they got, as careless services do, so that the tests can show
plangate keeps a token out of the errors it raises.

Run it with `python tests/peers/http_service.py PORT`; it listens on 127.0.0.1:PORT.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

INVOICES: dict[str, dict[str, Any]] = {
    "inv-1": {"invoice_id": "inv-1", "customer": "acme", "amount": 120.0, "currency": "EUR"},
    "inv-2": {"invoice_id": "inv-2", "customer": "globex", "amount": 80.5, "currency": "USD"},
}
LINES = {"inv-1": [{"item": "seats", "amount": 120.0}], "inv-2": [{"item": "api", "amount": 80.5}]}
CUSTOMERS: dict[str, dict[str, Any]] = {
    "acme": {"customer_id": "acme", "name": "Acme Corp", "balance": 120.0},
    "globex": {"customer_id": "globex", "name": "Globex", "balance": 80.5},
}
TOKEN = os.environ.get("BILLING_SERVICE_TOKEN", "local-token")


class RefundRequest(BaseModel):
    invoice_id: str
    amount: float = Field(gt=0)
    reason: str = ""


class Refund(RefundRequest):
    refund_id: str


class _State:
    """Everything the service remembers; `POST /_reset` forgets it between tests."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.refunds: list[dict[str, Any]] = []
        self.made = 0  # refunds ever made: a cancelled one's id is not given out again
        self.by_key: dict[str, dict[str, Any]] = {}
        self.rate_calls: dict[str, int] = {}


state = _State()
app = FastAPI(title="Billing", version="1.0")


@app.middleware("http")
async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
    if not request.url.path.startswith("/_") and request.url.path != "/openapi.json":
        raw = await request.body()
        state.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "body": json.loads(raw) if raw else None,
                "idempotency_key": request.headers.get("idempotency-key"),
                "headers": dict(request.headers),
            }
        )
    return await call_next(request)


@app.get(
    "/invoices/{invoice_id}",
    operation_id="get_invoice",
    tags=["invoices"],
    summary="Get an invoice by id.",
)
def get_invoice(invoice_id: str, include_lines: bool = False) -> dict[str, Any]:
    invoice = INVOICES.get(invoice_id)
    if invoice is None:
        raise HTTPException(status_code=404, detail=f"no invoice {invoice_id}")
    return {**invoice, "lines": LINES[invoice_id]} if include_lines else invoice


@app.get(
    "/invoices",
    operation_id="list_invoices",
    tags=["invoices"],
    summary="List a customer's invoices.",
)
def list_invoices(
    customer: str,
    limit: int = Query(default=10, ge=1),
    tenant: str = Header(alias="X-Tenant"),
) -> list[dict[str, Any]]:
    if tenant != "eu":
        raise HTTPException(status_code=403, detail=f"tenant {tenant} may not list invoices")
    return [i for i in INVOICES.values() if i["customer"] == customer][:limit]


@app.post(
    "/refunds",
    operation_id="create_refund",
    tags=["refunds"],
    summary="Refund part of an invoice.",
    description="Money goes back to the customer; cannot be undone.",
    status_code=201,
)
def create_refund(
    refund: RefundRequest,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> Refund:
    if idempotency_key is not None and idempotency_key in state.by_key:
        return Refund.model_validate(state.by_key[idempotency_key])
    if refund.invoice_id not in INVOICES:
        raise HTTPException(status_code=404, detail=f"no invoice {refund.invoice_id}")
    state.made += 1
    created = {**refund.model_dump(), "refund_id": f"ref-{state.made}"}
    state.refunds.append(created)
    if idempotency_key is not None:
        state.by_key[idempotency_key] = created
    return Refund.model_validate(created)


@app.delete(
    "/refunds/{refund_id}",
    operation_id="cancel_refund",
    tags=["refunds"],
    summary="Cancel a refund before it is paid out.",
    status_code=204,
)
def cancel_refund(refund_id: str) -> Response:
    kept = [r for r in state.refunds if r["refund_id"] != refund_id]
    if len(kept) == len(state.refunds):
        raise HTTPException(status_code=404, detail=f"no refund {refund_id}")
    state.refunds = kept
    return Response(status_code=204)


@app.post(
    "/refund-drafts",
    operation_id="draft_refund",
    tags=["refunds"],
    summary="Draft a refund for a person to review; no money moves.",
    status_code=201,
    openapi_extra={"x-plangate-action": "propose"},
)
def draft_refund(refund: RefundRequest) -> dict[str, Any]:
    return {**refund.model_dump(), "status": "draft"}


@app.get(
    "/rates/{currency}",
    operation_id="get_exchange_rate",
    tags=["rates"],
    summary="The EUR exchange rate of a currency.",
)
def get_exchange_rate(currency: str, failures: int = 0) -> Response:
    """Answers 503 to the first `failures` requests for `currency`, then the rate (as text)."""
    calls = state.rate_calls[currency] = state.rate_calls.get(currency, 0) + 1
    if calls <= failures:
        return Response("rates are being recomputed", status_code=503, media_type="text/plain")
    return Response("1.08", media_type="text/plain")


bearer = HTTPBearer(auto_error=False)


def caller(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The bearer token of a request, which must be the service's; else 401."""
    if credentials is None or credentials.credentials != TOKEN:
        got = f"{credentials.scheme} {credentials.credentials}" if credentials else "nothing"
        raise HTTPException(status_code=401, detail=f"bad token: got {got}")
    return credentials.credentials


Caller = Annotated[str, Depends(caller)]


def customer_of(customer_id: str, token: str) -> dict[str, Any]:
    customer = CUSTOMERS.get(customer_id)
    if customer is None:
        # Careless on purpose: the detail quotes the credential the request carried.
        raise HTTPException(status_code=404, detail=f"no customer {customer_id} for Bearer {token}")
    return customer


@app.get("/customers", tags=["customers"], summary="List the customers.")
def list_customers(token: Caller) -> list[dict[str, Any]]:
    return list(CUSTOMERS.values())


@app.get("/customers/{customer_id}", tags=["customers"], summary="Get a customer by id.")
def get_customer(customer_id: str, token: Caller) -> dict[str, Any]:
    return customer_of(customer_id, token)


@app.get(
    "/customers/{customer_id}/balance",
    tags=["customers"],
    summary="What a customer owes.",
    openapi_extra={"x-plangate-name": "get_customer_balance"},
)
def balance(customer_id: str, token: Caller) -> float:
    return float(customer_of(customer_id, token)["balance"])


@app.get("/_requests", include_in_schema=False)
def recorded_requests() -> list[dict[str, Any]]:
    return state.requests


@app.get("/_refunds", include_in_schema=False)
def recorded_refunds() -> list[dict[str, Any]]:
    return state.refunds


@app.post("/_reset", include_in_schema=False)
def reset() -> None:
    state.clear()


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
