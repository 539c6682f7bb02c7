"""This project's own tools. Each says what it does (`declare_action`): a plan may raise a
call's action, never lower it, and a tool that declares nothing counts as `execute`."""

from plangate import declare_action


@declare_action(action="read")
def lookup_order(order_id: str) -> dict:
    """Look an order up."""
    return {"order_id": order_id, "status": "shipped", "total_usd": 42.0}


@declare_action(action="execute", irreversible=True)
def refund_order(order_id: str, amount_usd: float) -> dict:
    """Refund an order. Cannot be undone."""
    return {"order_id": order_id, "refunded_usd": amount_usd}


# Plans call them by these names; the part before the dot is their domain.
toolkit = {"orders.lookup": lookup_order, "orders.refund": refund_order}
