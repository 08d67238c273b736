"""The tool registry: every tool the assistant may call, one module each under apps/actions/tools/.

A tool is a name, a description and an input JSON schema (what the model sees), a risk (read, write,
or write after the customer confirms), a progress line (what the customer sees while it runs) and
`run(account, context, **arguments)`. The account is the logged-in customer's, handed in by the
server; no argument can name another account, so the schemas have no account, user or email-recipient
fields, and every object a tool touches is read through an access selector scoped to that account.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from apps.core.exceptions import ApplicationError
from apps.llm.types import ToolSpec


class Risk(StrEnum):
    READ = "read"
    WRITE = "write"
    CONFIRM = "confirm"  # a write that runs only after the customer confirms it on a card


@dataclass(frozen=True)
class ToolContext:
    """What the server knows about the call besides the account (never from the model's arguments)."""

    conversation_id: str = ""
    # The chat's own "a person is needed" path for this conversation (apps.chat.handoffs), handed in by
    # the chat so that actions never imports chat; None outside a conversation.
    request_human: Callable[[str], object] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any] = field(hash=False)
    risk: Risk
    progress: str  # "Looking up your invoices…"
    run: Callable[..., dict[str, Any]] = field(hash=False)  # run(account, context, **arguments) -> JSON-able
    # For CONFIRM tools: what will happen, in the customer's words, for the card. Raises like `run`.
    describe: Callable[..., str] | None = field(default=None, hash=False)

    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self.name, description=self.description, input_schema=self.input_schema, progress=self.progress
        )


def _all_tools() -> tuple[Tool, ...]:
    from apps.actions.tools import (
        cancel_subscription,
        handoff_to_human,
        list_invoices,
        open_ticket,
        resend_invoice,
        ticket_status,
        update_billing_email,
    )

    modules = (
        list_invoices,
        resend_invoice,
        ticket_status,
        open_ticket,
        update_billing_email,
        cancel_subscription,
        handoff_to_human,
    )
    return tuple(module.TOOL for module in modules)


_REGISTRY: dict[str, Tool] = {}


def tools() -> dict[str, Tool]:
    """Every registered tool by name, in registration order."""
    if not _REGISTRY:
        _REGISTRY.update({tool.name: tool for tool in _all_tools()})
    return _REGISTRY


def tool_get(name: str) -> Tool | None:
    return tools().get(name)


def tool_choices() -> list[tuple[str, str]]:
    """(name, label) pairs for the admin's choice of tools per prompt version."""
    return [(tool.name, f"{tool.name} ({tool.risk})") for tool in tools().values()]


def tool_specs(names: Iterable[str]) -> tuple[ToolSpec, ...]:
    """The specs of `names` in registry order (unknown names skipped), so the same choice gives the same
    bytes on every request whatever order it was stored in."""
    wanted = set(names)
    return tuple(tool.spec() for tool in tools().values() if tool.name in wanted)


# --------------------------------------------------------------------------------------------------
# Argument validation: the JSON Schema subset the tools use, strictly (unknown keys are rejected).


def arguments_check(tool: Tool, arguments: Any) -> dict[str, Any]:
    """The arguments, validated against `tool.input_schema`. Raises ApplicationError(code="invalid_arguments")."""
    problems = list(_problems(tool.input_schema, arguments, "input"))
    if problems:
        raise ApplicationError("; ".join(problems), code="invalid_arguments")
    return dict(arguments)


def _problems(schema: dict[str, Any], value: Any, where: str) -> Iterable[str]:
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            yield f"{where} must be an object"
            return
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                yield f"{where}.{name} is required"
        if schema.get("additionalProperties") is False:
            for name in value:
                if name not in properties:
                    yield f"{where}.{name} is not an accepted argument"
        for name, item in value.items():
            if name in properties:
                yield from _problems(properties[name], item, f"{where}.{name}")
    elif kind == "string":
        if not isinstance(value, str):
            yield f"{where} must be a string"
            return
        if len(value) < schema.get("minLength", 0):
            yield f"{where} is too short"
        if len(value) > schema.get("maxLength", 10_000):
            yield f"{where} is too long"
        if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
            yield f"{where} does not match {schema['pattern']}"
        if schema.get("format") == "email":
            try:
                validate_email(value)
            except ValidationError:
                yield f"{where} is not a valid email address"
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            yield f"{where} must be an integer"
            return
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            yield f"{where} is out of range"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{where} must be one of {', '.join(map(str, schema['enum']))}"


__all__ = ["Risk", "Tool", "ToolContext", "arguments_check", "tool_get", "tool_specs", "tools"]
