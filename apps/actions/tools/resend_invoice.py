"""resend_invoice: email one of the customer's invoices to the account's own invoice address (write)."""

from typing import Any

from apps.accounts.models import CustomerAccount
from apps.accounts.selectors import invoice_get_for_account, invoice_latest_for_account
from apps.accounts.services import invoice_email_send
from apps.actions.registry import Risk, Tool, ToolContext


def run(account: CustomerAccount, context: ToolContext, *, invoice_number: str = "") -> dict[str, Any]:
    # The recipient is the account's address: no argument can send an invoice anywhere else.
    invoice = (
        invoice_get_for_account(account, invoice_number) if invoice_number else invoice_latest_for_account(account)
    )
    recipient = invoice_email_send(invoice=invoice)
    return {"sent": True, "invoice_number": invoice.number, "sent_to": recipient}


TOOL = Tool(
    name="resend_invoice",
    description=(
        "Email one of the customer's invoices again, to the billing address on their account (the address "
        "cannot be chosen). Without invoice_number, the latest invoice is sent."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "invoice_number": {
                "type": "string",
                "pattern": "^[A-Za-z0-9-]{1,40}$",
                "description": "An invoice number from list_invoices, e.g. INV-2026-01741.",
            }
        },
        "additionalProperties": False,
    },
    risk=Risk.WRITE,
    progress="Sending your invoice…",
    run=run,
)
