"""cancel_subscription: cancel at the end of the paid period (write, after the customer confirms)."""

from typing import Any

from apps.accounts.models import CustomerAccount
from apps.accounts.services import subscription_cancel_at_period_end
from apps.actions.registry import Risk, Tool, ToolContext
from apps.core.exceptions import ApplicationError


def describe(account: CustomerAccount, context: ToolContext) -> str:
    if account.current_period_end is None:
        raise ApplicationError("The account has no paid period to cancel.", code="no_subscription")
    return (
        f"Cancel your {account.get_plan_display()} subscription at the end of the current period: service "
        f"continues until {account.current_period_end:%B %-d, %Y}, and nothing more is charged after that."
    )


def run(account: CustomerAccount, context: ToolContext) -> dict[str, Any]:
    account = subscription_cancel_at_period_end(account=account)
    return {"cancel_at_period_end": True, "service_until": account.current_period_end.isoformat()}


TOOL = Tool(
    name="cancel_subscription",
    description=(
        "Cancel the customer's subscription at the end of the current billing period (no refund, service "
        "continues until then). The customer is shown a confirmation card; nothing changes until they confirm."
    ),
    input_schema={"type": "object", "properties": {}, "additionalProperties": False},
    risk=Risk.CONFIRM,
    progress="Preparing the cancellation…",
    run=run,
    describe=describe,
)
