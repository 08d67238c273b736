"""The tool turns of a chat answer: who the model's tool calls act for, the frames the customer sees of
them, and the customer's decision on a confirmation card (docs/protocol.md, "Tools"; docs/actions.md).

Every call acts for the logged-in customer's own account, read here from the authenticated user and
never from the model's arguments: a call naming another customer's invoice finds nothing on this
account and ends as an error the assistant explains.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import CustomerAccount
from apps.actions.models import ActionRecord
from apps.actions.registry import tool_get
from apps.actions.runner import AccountToolRunner
from apps.actions.services import CallScope, action_decide
from apps.chat.models import Conversation, Message
from apps.chat.payloads import message_payload
from apps.llm.tools import ToolRunner
from apps.llm.types import ChatRequest, ConfirmationRequested, GatewayEvent, ToolFinished, ToolStarted

ToolEvent = ToolStarted | ConfirmationRequested | ToolFinished


def tools_scoped(user: AbstractBaseUser, request: ChatRequest) -> tuple[ChatRequest, ToolRunner | None]:
    """The request as it may be sent for `user`, and the runner of its tool calls.

    Without a customer account (staff, a website visitor) there is nobody a tool could act for: the
    request goes without tools. Runs ORM code (a worker thread).
    """
    if not request.tools:
        return request, None
    account = CustomerAccount.objects.select_related("user").filter(user=user).first()
    if account is None:
        return replace(request, tools=()), None
    conversation_id = request.conversation_id or ""

    def request_human(reason: str) -> object:
        from apps.chat.handoffs import conversation_human_request

        return conversation_human_request(
            conversation_id=conversation_id, source=Conversation.HandoffSource.ASSISTANT, reason=reason
        )

    scope = CallScope(
        account=account,
        conversation_id=conversation_id,
        reply_id=request.reply.message_id,
        request_human=request_human if conversation_id else None,
    )
    return request, AccountToolRunner(scope)


def actions_attach(*, user: AbstractBaseUser, conversation: Conversation, messages: list[Message]) -> None:
    """Give each assistant message of the transcript the tool calls its answer made (one query), so a
    reload shows the same progress lines and cards as the live answer did."""
    by_reply: dict[int, list[dict[str, Any]]] = {}
    records = ActionRecord.objects.filter(user=user, conversation_id=str(conversation.pk), reply_id__isnull=False)
    for record in records.order_by("id"):
        by_reply.setdefault(record.reply_id, []).append(action_payload(record))
    for message in messages:
        message.shown_actions = by_reply.get(message.pk, [])


def payload_with_actions(message: Message) -> dict[str, Any]:
    """`message_payload`, with `actions` for an assistant message whose answer called tools."""
    payload = message_payload(message)
    actions = getattr(message, "shown_actions", None)
    if actions:
        payload["actions"] = actions
    return payload


def action_payload(record: ActionRecord) -> dict[str, Any]:
    """A stored call as the transcript shows it: its progress line's outcome, or its card."""
    tool = tool_get(record.tool)
    return {
        "action_id": record.pk,
        "call_id": record.tool_use_id,
        "tool": record.tool,
        "progress": tool.progress if tool is not None else record.tool,
        "status": record.status,
        "summary": record.summary,
        "decision": record.decision,
        "message": decision_message(record) if record.decision else "",
    }


def is_tool_event(event: GatewayEvent) -> bool:
    return isinstance(event, ToolStarted | ConfirmationRequested | ToolFinished)


def tool_frame(event: ToolEvent, *, reply_id: int) -> dict[str, Any]:
    """The websocket frame of one tool event of the answer `reply_id`."""
    if isinstance(event, ToolStarted):
        return {
            "type": "tool_started",
            "message_id": reply_id,
            "call_id": event.call_id,
            "tool": event.name,
            "progress": event.progress,
        }
    if isinstance(event, ConfirmationRequested):
        return {
            "type": "confirmation_requested",
            "message_id": reply_id,
            "action_id": event.action_id,
            "tool": event.tool,
            "summary": event.summary,
        }
    return {
        "type": "tool_finished",
        "message_id": reply_id,
        "call_id": event.call_id,
        "tool": event.name,
        "is_error": event.is_error,
    }


def stored_tool_frames(reply_id: int) -> list[dict[str, Any]]:
    """The tool frames of an answer being written, rebuilt from its stored calls in the order a
    watcher got them live — progress line, card, end, decision if taken — for a socket that joins
    it without a transcript or the writing run (an agent opening the conversation on another
    process). A call still running has no record yet: its frames come live. Runs ORM code."""
    frames: list[dict[str, Any]] = []
    failed = (ActionRecord.Status.FAILED, ActionRecord.Status.REJECTED)
    for record in ActionRecord.objects.filter(reply_id=reply_id).order_by("id"):
        tool = tool_get(record.tool)
        call = {"message_id": reply_id, "call_id": record.tool_use_id, "tool": record.tool}
        frames.append({"type": "tool_started", **call, "progress": tool.progress if tool is not None else record.tool})
        if record.summary:
            frames.append(
                {
                    "type": "confirmation_requested",
                    "message_id": reply_id,
                    "action_id": record.pk,
                    "tool": record.tool,
                    "summary": record.summary,
                }
            )
        frames.append({"type": "tool_finished", **call, "is_error": record.status in failed})
        if record.decision:
            frames.append(action_decided_frame(record))
    return frames


def decision_take(*, user: AbstractBaseUser, conversation_id: object, action_id: int, confirm: bool) -> dict[str, Any]:
    """Store the customer's decision on a card of this conversation (running the action if confirmed)
    and the assistant's line saying what came of it, and return the `action_decided` frame, with that
    line as `outcome`. Raises what `actions.services.action_decide` raises: NotFound for a card of
    another customer or conversation, "already_decided" (nothing runs or is stored again).

    Why a stored line and not a model round continuing the answer: the server knows exactly what
    happened (the tool's result), so the words cannot misstate it; the decision may come while
    another answer is streaming, or long after, and must never be refused as `busy` nor wait for an
    answer slot; and a model round could fail or degrade after the action ran, leaving an apology
    for something that was done. The line is part of the history, so the next answer knows it.
    """
    with transaction.atomic():  # the decision and its line are stored together, or neither
        record = action_decide(user=user, action_id=action_id, confirm=confirm, conversation_id=conversation_id)
        outcome = action_outcome_store(conversation_id=conversation_id, record=record)
    return {**action_decided_frame(record), "outcome": message_payload(outcome)}


def action_outcome_store(*, conversation_id: object, record: ActionRecord) -> Message:
    """The assistant's line in the conversation saying what came of a decided card: exactly the text
    the card shows (`decision_message`). One per action (the field is unique)."""
    now = timezone.now()
    message = Message.objects.create(
        conversation_id=conversation_id,
        role=Message.Role.ASSISTANT,
        status=Message.Status.COMPLETE,
        text=decision_message(record),
        action=record,
        completed_at=now,
    )
    Conversation.objects.filter(pk=conversation_id).update(updated_at=now)
    return message


def action_decided_frame(record: ActionRecord) -> dict[str, Any]:
    """The card's decided state (without `outcome`: a socket catching up has the line in its transcript)."""
    return {
        "type": "action_decided",
        "action_id": record.pk,
        "tool": record.tool,
        "decision": record.decision,
        "status": record.status,
        "result": record.result,
        "message": decision_message(record),
    }


def decided_frames(action_ids: list[int]) -> list[dict[str, Any]]:
    """`action_decided` of those of `action_ids` already decided, for a socket that joins an answer
    after its cards were shown (and perhaps decided). Runs ORM code (a worker thread)."""
    records = ActionRecord.objects.filter(pk__in=action_ids).exclude(decision=ActionRecord.Decision.NONE)
    return [action_decided_frame(record) for record in records.order_by("id")]


def decision_message(record: ActionRecord) -> str:
    """One line for the card once decided: what happened, in the customer's words."""
    if record.status == ActionRecord.Status.DECLINED:
        return "Cancelled: nothing was changed."
    if record.status == ActionRecord.Status.SUCCEEDED:
        result = record.result or {}
        if result.get("cancel_at_period_end"):
            return f"Done: your subscription ends on {result.get('service_until', 'the end of the period')}."
        if result.get("billing_email"):
            return f"Done: invoices now go to {result['billing_email']}."
        return "Done."
    return f"That did not work: {record.error or 'the action failed'}. Nothing was changed."
