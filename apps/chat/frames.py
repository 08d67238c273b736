"""Client frames of the chat websocket (docs/protocol.md), parsed and checked in one place.

Whatever a client sends, `frame_parse` returns a typed frame or raises `ApplicationError` with a
documented client code (`malformed`, `unknown_type`, or a field's own code): no input reaches the
consumer's catch-all `server_error`, which means "we failed, send it again".
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from apps.chat.services import check_answerer, check_client_id, check_message_text
from apps.core.exceptions import ApplicationError

# How much of an unknown `type` string is quoted back in the error.
TYPE_ECHO_CHARS = 40
# No frame of ours nests deeper than a few levels; deeper is refused before it is parsed.
MAX_FRAME_DEPTH = 32
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


@dataclass(frozen=True)
class MessageFrame:
    """A question. `client_id_sent` is the id exactly as sent, echoed on errors so the client can match them.
    `answerer`: who the customer chose to answer a new conversation ("assistant", "person"; "" none)."""

    text: str
    client_id: uuid.UUID | None
    client_id_sent: str | None
    answerer: str = ""


@dataclass(frozen=True)
class StopFrame:
    """Stop the answer being written in this conversation (a no-op when none is)."""


@dataclass(frozen=True)
class DecisionFrame:
    """The customer's answer to a confirmation card: run the action (`confirm`) or not."""

    action_id: int
    confirm: bool


Frame = MessageFrame | StopFrame | DecisionFrame


def frame_parse(text_data: str | None) -> Frame:
    """The frame in `text_data`.

    Raises `ApplicationError`: "malformed" (not text, not standard JSON — NaN, Infinity, numbers out
    of range, duplicate keys, nesting too deep for the parser — or not an object), "unknown_type"
    (`type` missing, not a string, or not one we know), "invalid_decision" (a decision without a
    positive integer `action_id` or a boolean `confirm`), and for a message what
    `services.check_message_text`, `services.check_client_id` and `services.check_answerer` raise.
    A string `client_id` is echoed in the error's `client_id`.
    """
    raw = frame_object(text_data)
    sent_id = raw.get("client_id")
    echo = sent_id if isinstance(sent_id, str) else None
    try:
        kind = raw.get("type")
        if kind == "message":
            return MessageFrame(
                text=check_message_text(raw.get("text")),
                client_id=check_client_id(sent_id),
                client_id_sent=echo,
                answerer=check_answerer(raw.get("answerer")),
            )
        if kind == "stop":
            return StopFrame()
        if kind == "decision":
            return _decision(raw)
        raise ApplicationError(f"Unknown frame type {_describe(kind)}.", code="unknown_type")
    except ApplicationError as exc:
        if echo is not None:
            exc.extra.setdefault("client_id", echo)
        raise


def _decision(raw: dict[str, Any]) -> DecisionFrame:
    action_id, confirm = raw.get("action_id"), raw.get("confirm")
    if not isinstance(action_id, int) or isinstance(action_id, bool) or not 0 < action_id < 2**63:
        raise ApplicationError("action_id must be a positive integer.", code="invalid_decision")
    if not isinstance(confirm, bool):
        raise ApplicationError("confirm must be true or false.", code="invalid_decision")
    return DecisionFrame(action_id=action_id, confirm=confirm)


def frame_object(text_data: str | None) -> dict[str, Any]:
    """`text_data` as a JSON object, with the same refusals as `frame_parse` ("malformed"), for
    consumers that speak a few frame types of their own on top of the chat's (the widget)."""
    if not isinstance(text_data, str):
        raise ApplicationError("Frames must be JSON text.", code="malformed")
    if _nesting_exceeds(text_data, MAX_FRAME_DEPTH):
        raise ApplicationError("The frame is nested too deeply.", code="malformed")
    try:
        value = json.loads(
            text_data, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except ApplicationError:
        raise
    except RecursionError as exc:  # nested deeper than the parser's stack allows: no frame of ours is
        raise ApplicationError("The frame is nested too deeply.", code="malformed") from exc
    except ValueError as exc:  # invalid JSON, or an integer too long to convert
        raise ApplicationError("The frame is not valid JSON.", code="malformed") from exc
    if not isinstance(value, dict):
        raise ApplicationError("A frame must be a JSON object.", code="malformed")
    return value


def _nesting_exceeds(text: str, limit: int) -> bool:
    """Whether `text`'s arrays and objects nest deeper than `limit` (brackets inside strings do not count).

    Checked before parsing: the parser refuses deep nesting only once it has recursed to the
    interpreter's limit, and anything that runs at that depth — a finaliser the garbage collector calls
    there — fails for want of stack.
    """
    depth = 0
    for match in _BRACKETS.finditer(_STRINGS.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _refuse_constant(name: str) -> NoReturn:
    raise ApplicationError(f"{name} is not standard JSON.", code="malformed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise ApplicationError("A number in the frame is out of range.", code="malformed")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Which of two `type`s or `client_id`s counts would be a guess; a standard parser may take either.
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ApplicationError("A key appears twice in the frame.", code="malformed")
    return value


def _describe(kind: object) -> str:
    if isinstance(kind, str):
        return repr(kind[:TYPE_ECHO_CHARS] + ("…" if len(kind) > TYPE_ECHO_CHARS else ""))
    if kind is None:
        return "(missing)"
    json_type = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}[type(kind)]
    return f"(a JSON {json_type}, not a string)"
