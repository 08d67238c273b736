"""Running tool calls for a customer, and the customer's decisions on confirmation cards.

Check, then do: `action_call` validates the model's arguments and records the call before anything
runs; `_do_run` trusts them. Every call is one `ActionRecord`, keyed by an idempotency key, so a call
that comes again (a retried round, the model repeating itself) returns the stored result instead of
acting twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import CustomerAccount
from apps.actions.models import ActionRecord
from apps.actions.registry import Risk, Tool, ToolContext, arguments_check, tool_get
from apps.actions.selectors import action_get_for_user
from apps.core.exceptions import ApplicationError, NotFound
from apps.llm.types import ConfirmationRequested, ToolOutcome

logger = logging.getLogger(__name__)
Status = ActionRecord.Status


@dataclass(frozen=True)
class CallScope:
    """Who a tool call acts for, as the server knows it (never read from the model's arguments)."""

    account: CustomerAccount
    conversation_id: str = ""
    reply_id: int | None = None  # the assistant message being answered, when there is one
    # Hands the conversation to a person with a reason (the chat's handoff path); see ToolContext.
    request_human: Callable[[str], object] | None = field(default=None, compare=False)


def idempotency_key(scope: CallScope, *, tool: str, arguments: Any, tool_use_id: str) -> str:
    """One key per tool call of an answer: the same tool with the same arguments in the same reply is
    the same call, whatever id a retried round gave it; without a reply, the model's tool_use id."""
    if scope.reply_id is None:
        return f"{scope.account.pk}:{scope.conversation_id}:{tool_use_id}"[:128]
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{tool}\n{canonical}".encode()).hexdigest()[:32]
    return f"{scope.account.pk}:{scope.reply_id}:{digest}"


def action_call(*, scope: CallScope, tool_name: str, arguments: Any, tool_use_id: str = "") -> ToolOutcome:
    """Run (or, for a confirmation tool, propose) one tool call for `scope.account`. Never raises for
    bad input: unknown tools, invalid arguments and objects outside the account come back as errors."""
    tool = tool_get(tool_name)
    if tool is None:
        return _error(f"There is no tool named {tool_name!r}.")
    key = idempotency_key(scope, tool=tool_name, arguments=arguments, tool_use_id=tool_use_id)
    existing = ActionRecord.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return outcome_of(existing)
    record = ActionRecord(
        account=scope.account,
        user=scope.account.user,
        conversation_id=scope.conversation_id,
        reply_id=scope.reply_id,
        tool=tool.name,
        risk=tool.risk,
        arguments=arguments if isinstance(arguments, dict) else {"_invalid": repr(arguments)[:500]},
        idempotency_key=key,
        tool_use_id=tool_use_id[:64],
    )
    context = ToolContext(conversation_id=scope.conversation_id, request_human=scope.request_human)
    try:
        clean = arguments_check(tool, arguments)
        if tool.risk == Risk.CONFIRM:
            record.summary = tool.describe(scope.account, context, **clean) if tool.describe else tool.description
            record.status = Status.AWAITING_CONFIRMATION
    except ApplicationError as exc:
        record.status, record.error = Status.REJECTED, exc.message
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError:  # the same call, recorded meanwhile by a concurrent attempt
        return outcome_of(ActionRecord.objects.get(idempotency_key=key))
    if record.status:
        return outcome_of(record)
    return outcome_of(_do_run(record, tool, clean, context))


def _do_run(
    record: ActionRecord, tool: Tool, arguments: dict[str, Any], context: ToolContext | None = None
) -> ActionRecord:
    """Run the tool for the record's own account and store what happened. Expects validated arguments."""
    context = context or ToolContext(conversation_id=record.conversation_id)
    # Read afresh: the caller's copy may predate a change made since (a confirmed new billing email).
    account = CustomerAccount.objects.select_related("user").get(pk=record.account_id)
    try:
        with transaction.atomic():
            record.result = tool.run(account, context, **arguments)
            record.status = Status.SUCCEEDED
    except NotFound as exc:
        record.status, record.error = Status.FAILED, exc.message
    except ApplicationError as exc:
        record.status, record.error = Status.FAILED, exc.message
    except Exception:
        logger.exception("tool %s failed", record.tool)
        record.status, record.error = Status.FAILED, "The action failed unexpectedly; nothing was changed."
    record.save(update_fields=["result", "status", "error", "updated_at"])
    return record


def action_decide(
    *, user: AbstractBaseUser, action_id: object, confirm: bool, conversation_id: object = None
) -> ActionRecord:
    """Store the customer's decision on a confirmation card and, if confirmed, run the action.

    For `user`'s own actions only, and with `conversation_id` only for a card of that conversation
    (NotFound otherwise). A card is decided once: a second decision — from another tab, a double
    click, the other choice — raises ApplicationError(code="already_decided") with the decision taken
    in `extra` (`action_id`, `decision`) and runs nothing. The row lock orders two decisions racing
    from two tabs or processes.
    """
    with transaction.atomic():
        record = action_get_for_user(user, action_id, for_update=True)
        if conversation_id is not None and record.conversation_id != str(conversation_id):
            raise NotFound()
        decision = ActionRecord.Decision.CONFIRMED if confirm else ActionRecord.Decision.CANCELLED
        if record.decision:
            taken = "confirmed" if record.decision == ActionRecord.Decision.CONFIRMED else "cancelled"
            raise ApplicationError(
                f"This was already {taken} (perhaps in another window); nothing was done again.",
                code="already_decided",
                extra={"action_id": record.pk, "decision": record.decision},
            )
        if record.status != Status.AWAITING_CONFIRMATION:
            raise ApplicationError("This action does not wait for a decision.", code="not_awaiting_confirmation")
        record.decision, record.decided_at = decision, timezone.now()
        if not confirm:
            record.status = Status.DECLINED
            record.save(update_fields=["decision", "decided_at", "status", "updated_at"])
            return record
        record.save(update_fields=["decision", "decided_at", "updated_at"])
        tool = tool_get(record.tool)
        if tool is None:
            record.status, record.error = Status.FAILED, "This action no longer exists."
            record.save(update_fields=["status", "error", "updated_at"])
            return record
        return _do_run(record, tool, arguments_check(tool, record.arguments))


def outcome_of(record: ActionRecord) -> ToolOutcome:
    """The tool_result the model gets for a record."""
    if record.status == Status.SUCCEEDED:
        return ToolOutcome(content=json.dumps(record.result, sort_keys=True))
    if record.status == Status.AWAITING_CONFIRMATION:
        message = (
            f"The customer now sees a confirmation card: {record.summary} Nothing has changed yet; it happens "
            "only if they press Confirm on the card. Tell them so, briefly."
        )
        return ToolOutcome(
            content=json.dumps({"status": "awaiting_confirmation", "message": message}),
            confirmation=ConfirmationRequested(action_id=record.pk, tool=record.tool, summary=record.summary),
        )
    if record.status == Status.DECLINED:
        return ToolOutcome(content=json.dumps({"status": "cancelled_by_customer"}))
    return _error(record.error or "The action failed.")


def _error(message: str) -> ToolOutcome:
    return ToolOutcome(content=json.dumps({"error": message}), is_error=True)
