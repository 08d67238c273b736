"""Tool use: when "the model" calls one of the request's tools, and what it says after the results.

The real model decides from the conversation; the emulator decides from the user's own words with a
few fixed rules, so a test (or a demo) knows which call a sentence produces: "resend invoice INV-…"
calls `resend_invoice` with that number, "cancel my subscription" calls `cancel_subscription`, and so
on. A rule only fires for a tool the request offers (and never under `tool_choice: none`); its input
keeps only the properties the offered schema declares. After a turn of `tool_result` blocks the
answer is words built from those results, never another call, so a loop always ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .errors import invalid_request
from .prompt import content_blocks

_INVOICE_NUMBER = re.compile(r"\b(INV-[A-Za-z0-9-]{1,36})\b", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Applications wrap what the customer typed (`<user_message>`) next to context of their own (account,
# availability); only the customer's words can ask for an action.
_USER_MESSAGE = re.compile(r"<user_message>(.*?)</user_message>", re.DOTALL | re.IGNORECASE)
_ANY_TAGGED_BLOCK = re.compile(r"<([a-z_]+)\b[^>]*>.*?</\1>", re.DOTALL | re.IGNORECASE)
_TICKET_NUMBER = re.compile(r"(?:ticket\s*(?:#|no\.?|number)?\s*)(\d{1,9})\b", re.IGNORECASE)


def _resend_invoice(words: str) -> dict[str, Any] | None:
    if not re.search(r"\binvoices?\b", words, re.I) or not re.search(r"\b(re-?send|send|email|mail)\b", words, re.I):
        return None
    number = _INVOICE_NUMBER.search(words)
    return {"invoice_number": number.group(1).upper()} if number else {}


def _list_invoices(words: str) -> dict[str, Any] | None:
    if re.search(r"\binvoices\b", words, re.I) and re.search(r"\b(list|show|see|what|which|my)\b", words, re.I):
        return {}
    return None


def _update_billing_email(words: str) -> dict[str, Any] | None:
    email = _EMAIL.search(words)
    if (
        email
        and re.search(r"\b(billing|invoice)\b", words, re.I)
        and re.search(r"\b(change|update|set|use)\b", words, re.I)
    ):
        return {"email": email.group(0)}
    return None


def _cancel_subscription(words: str) -> dict[str, Any] | None:
    if re.search(r"\bcancel\b", words, re.I) and re.search(r"\b(subscription|plan|account)\b", words, re.I):
        return {}
    return None


def _handoff_to_human(words: str) -> dict[str, Any] | None:
    if re.search(r"\b(human|person|real agent|an agent|representative|someone from)\b", words, re.I):
        return {"reason": " ".join(words.split())[:200] or "The customer asked for a person."}
    return None


def _open_ticket(words: str) -> dict[str, Any] | None:
    if re.search(r"\b(open|create|file|raise)\b.{0,20}\bticket\b", words, re.I):
        return {"subject": " ".join(words.split())[:120], "description": words.strip()[:2000]}
    return None


def _ticket_status(words: str) -> dict[str, Any] | None:
    if not re.search(r"\btickets?\b", words, re.I) or not re.search(
        r"\b(status|where|update on|progress)\b", words, re.I
    ):
        return None
    number = _TICKET_NUMBER.search(words)
    return {"ticket_id": int(number.group(1))} if number else {}


# In order: the first rule that matches a tool the request offers makes the call.
RULES: tuple[tuple[str, Callable[[str], dict[str, Any] | None]], ...] = (
    ("handoff_to_human", _handoff_to_human),
    ("update_billing_email", _update_billing_email),
    ("cancel_subscription", _cancel_subscription),
    ("resend_invoice", _resend_invoice),
    ("list_invoices", _list_invoices),
    ("open_ticket", _open_ticket),
    ("ticket_status", _ticket_status),
)


def chosen_tool(body: dict[str, Any], own_words: str) -> dict[str, Any] | None:
    """The call ({"name", "input"}) the user's words ask for among the request's tools, if any."""
    if (body.get("tool_choice") or {}).get("type") == "none" or last_turn_has_results(body["messages"]):
        return None
    wrapped = _USER_MESSAGE.findall(own_words)
    own_words = wrapped[-1] if wrapped else _ANY_TAGGED_BLOCK.sub(" ", own_words)
    offered = {tool["name"]: tool for tool in body.get("tools") or [] if "input_schema" in tool}
    for name, rule in RULES:
        if name not in offered:
            continue
        found = rule(own_words)
        if found is None:
            continue
        properties = (offered[name].get("input_schema") or {}).get("properties") or {}
        return {"name": name, "input": {key: value for key, value in found.items() if key in properties}}
    return None


def last_turn_has_results(messages: list[dict[str, Any]]) -> bool:
    last = messages[-1]
    return last["role"] == "user" and any(
        block.get("type") == "tool_result" for block in content_blocks(last["content"])
    )


def answer_from_results(messages: list[dict[str, Any]]) -> str | None:
    """Words for the customer from the last turn's tool results; None when it has none."""
    if not last_turn_has_results(messages):
        return None
    lines = [
        _result_line(block) for block in content_blocks(messages[-1]["content"]) if block.get("type") == "tool_result"
    ]
    return "\n\n".join(line for line in lines if line)


def _result_line(block: dict[str, Any]) -> str:
    raw = block.get("content")
    if isinstance(raw, list):
        raw = "".join(part.get("text", "") for part in raw if isinstance(part, dict))
    try:
        result = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        result = {"text": raw}
    if not isinstance(result, dict):
        result = {"result": result}
    if block.get("is_error"):
        return f"I'm sorry, I couldn't do that: {result.get('error') or 'the action failed'}. Nothing was changed."
    if result.get("status") == "awaiting_confirmation":
        return "Please check the card above: nothing changes until you press Confirm."
    if result.get("status") == "cancelled_by_customer":
        return "Understood, I've left everything as it was."
    if result.get("sent"):
        recipient = result.get("sent_to", "your billing address")
        return f"Done: I've emailed invoice {result.get('invoice_number', '')} to {recipient}."
    if result.get("handed_off"):
        return "I've asked our support team to take over; a person will reply here."
    if "invoices" in result:
        items = result["invoices"] or []
        if not items:
            return "You have no invoices yet."
        rows = [f"- {item.get('number')}: {item.get('amount', '')} ({item.get('status', '')})" for item in items]
        return "Here are your latest invoices:\n" + "\n".join(rows)
    if "tickets" in result:
        items = result["tickets"] or []
        if not items:
            return "You have no support tickets."
        return "Your tickets:\n" + "\n".join(
            f"- #{t.get('id')} {t.get('subject', '')}: {t.get('status', '')}" for t in items
        )
    if "ticket_id" in result:
        return f"I've opened ticket #{result['ticket_id']} for you."
    if "billing_email" in result:
        return f"Your billing email is now {result['billing_email']}."
    if result.get("cancel_at_period_end"):
        until = result.get("service_until", "the period ends")
        return f"Your subscription is cancelled; you keep the service until {until}."
    return "Done."


def validate_tool_turns(messages: list[dict[str, Any]], path: str = "") -> None:
    """The API's pairing rule: a turn's `tool_result` blocks answer the previous assistant turn's
    `tool_use` blocks, by id."""
    for index, message in enumerate(messages):
        if message["role"] != "user":
            continue
        result_ids = [
            block.get("tool_use_id")
            for block in content_blocks(message["content"])
            if block.get("type") == "tool_result"
        ]
        if not result_ids:
            continue
        previous = messages[index - 1] if index > 0 and messages[index - 1]["role"] == "assistant" else None
        use_ids = {
            block.get("id")
            for block in (content_blocks(previous["content"]) if previous is not None else [])
            if block.get("type") == "tool_use"
        }
        unexpected = [str(tool_use_id) for tool_use_id in result_ids if tool_use_id not in use_ids]
        if unexpected:
            raise invalid_request(
                f"{path}messages.{index}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding `tool_use` block "
                "in the previous message."
            )
