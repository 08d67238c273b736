"""open_ticket: open a support ticket for the customer with Acme's team (write)."""

from typing import Any

from apps.accounts.models import CustomerAccount, SupportTicket
from apps.accounts.services import ticket_open
from apps.actions.registry import Risk, Tool, ToolContext


def run(account: CustomerAccount, context: ToolContext, *, subject: str, description: str = "") -> dict[str, Any]:
    ticket = ticket_open(
        user=account.user,
        subject=subject,
        body=description,
        source=SupportTicket.Source.MANUAL,
        conversation_id=context.conversation_id,
    )
    return {"ticket_id": ticket.pk, "subject": ticket.subject, "status": ticket.status}


TOOL = Tool(
    name="open_ticket",
    description=(
        "Open a support ticket for the customer with Acme's support team, for a problem the assistant cannot "
        "solve itself. Give a short subject and what the customer described."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "subject": {"type": "string", "minLength": 3, "maxLength": 200},
            "description": {"type": "string", "maxLength": 4000},
        },
        "required": ["subject"],
        "additionalProperties": False,
    },
    risk=Risk.WRITE,
    progress="Opening a ticket…",
    run=run,
)
