"""handoff_to_human: pass the conversation to Acme's human team with the reason (write).

In a chat it is the chat's own handoff (docs/inbox.md): the conversation waits for an agent, as when the
customer asks for a person.
"""

from typing import Any

from apps.accounts.models import CustomerAccount, SupportTicket
from apps.accounts.services import ticket_open
from apps.actions.registry import Risk, Tool, ToolContext


def run(account: CustomerAccount, context: ToolContext, *, reason: str) -> dict[str, Any]:
    if context.request_human is not None:  # in a chat: the conversation joins the agents' queue
        context.request_human(reason)
        return {"handed_off": True}
    # Outside a chat, one handoff ticket per conversation (ticket_open reuses an open one).
    ticket = ticket_open(
        user=account.user,
        subject=f"Handoff: {reason}",
        body=reason,
        source=SupportTicket.Source.HANDOFF,
        conversation_id=context.conversation_id,
    )
    return {"handed_off": True, "ticket_id": ticket.pk}


TOOL = Tool(
    name="handoff_to_human",
    description=(
        "Hand the conversation to a human support agent, with the reason. Use it when the customer asks for a "
        "person, or for something no tool can do."
    ),
    input_schema={
        "type": "object",
        "properties": {"reason": {"type": "string", "minLength": 3, "maxLength": 500}},
        "required": ["reason"],
        "additionalProperties": False,
    },
    risk=Risk.WRITE,
    progress="Passing you to our support team…",
    run=run,
)
