"""ticket_status: the customer's support tickets, or one of them (read)."""

from typing import Any

from apps.accounts.models import CustomerAccount, SupportTicket
from apps.accounts.selectors import ticket_get_for_user, tickets_for_user
from apps.actions.registry import Risk, Tool, ToolContext


def _ticket(ticket: SupportTicket) -> dict[str, Any]:
    return {
        "id": ticket.pk,
        "subject": ticket.subject,
        "status": ticket.status,
        "opened_on": ticket.created_at.date().isoformat(),
    }


def run(account: CustomerAccount, context: ToolContext, *, ticket_id: int | None = None) -> dict[str, Any]:
    if ticket_id is not None:
        return {"tickets": [_ticket(ticket_get_for_user(account.user, ticket_id))]}
    return {"tickets": [_ticket(ticket) for ticket in tickets_for_user(account.user)]}


TOOL = Tool(
    name="ticket_status",
    description="Show the status of the customer's support tickets, or of one ticket by its number.",
    input_schema={
        "type": "object",
        "properties": {"ticket_id": {"type": "integer", "minimum": 1, "description": "A ticket number, e.g. 42."}},
        "additionalProperties": False,
    },
    risk=Risk.READ,
    progress="Checking your tickets…",
    run=run,
)
