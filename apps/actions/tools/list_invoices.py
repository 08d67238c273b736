"""list_invoices: the customer's own invoices (read)."""

from typing import Any

from apps.accounts.models import CustomerAccount
from apps.accounts.selectors import invoices_for_account
from apps.actions.registry import Risk, Tool, ToolContext


def run(account: CustomerAccount, context: ToolContext, *, limit: int = 6) -> dict[str, Any]:
    invoices = invoices_for_account(account, limit=limit)
    return {
        "invoices": [
            {
                "number": invoice.number,
                "amount": f"{invoice.amount_cents / 100:.2f}",
                "currency": invoice.currency,
                "status": invoice.status,
                "issued_on": invoice.issued_on.isoformat(),
                "due_on": invoice.due_on.isoformat(),
            }
            for invoice in invoices
        ]
    }


TOOL = Tool(
    name="list_invoices",
    description=(
        "List the logged-in customer's invoices, newest first: number, amount, currency, status, issue and "
        "due dates. Use it before answering questions about invoices or before resending one."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": 24, "description": "How many (default 6)."}
        },
        "additionalProperties": False,
    },
    risk=Risk.READ,
    progress="Looking up your invoices…",
    run=run,
)
