"""update_billing_email: change where the account's invoices go (write, after the customer confirms)."""

from typing import Any

from apps.accounts.models import CustomerAccount
from apps.accounts.services import account_billing_email_update
from apps.actions.registry import Risk, Tool, ToolContext


def describe(account: CustomerAccount, context: ToolContext, *, email: str) -> str:
    return f"Send your invoices to {email} instead of {account.invoice_email}."


def run(account: CustomerAccount, context: ToolContext, *, email: str) -> dict[str, Any]:
    account = account_billing_email_update(account=account, email=email)
    return {"billing_email": account.billing_email}


TOOL = Tool(
    name="update_billing_email",
    description=(
        "Change the email address the customer's invoices are sent to. The customer is shown a confirmation "
        "card; nothing changes until they confirm."
    ),
    input_schema={
        "type": "object",
        "properties": {"email": {"type": "string", "format": "email", "maxLength": 254}},
        "required": ["email"],
        "additionalProperties": False,
    },
    risk=Risk.CONFIRM,
    progress="Preparing the change of billing email…",
    run=run,
    describe=describe,
)
