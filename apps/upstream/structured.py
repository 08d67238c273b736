"""JSON answers: work out which keys a prompt (or schema) asks for and fill them from heuristics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .transcript import TranscriptSignals

# `"key": <hint>` as written in prose instructions or example objects.
_KEY_WITH_HINT = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:\s*([^,\n}]*)')
_NEGATED_JSON = re.compile(r"\b(no|not|never|don't|do not|without)\b[^.\n]{0,30}\bjson\b", re.IGNORECASE)
_JSON_REQUEST = re.compile(r"\b(schema|keys?|fields?|object|only|valid|format|respond|return|output)\b", re.IGNORECASE)
# A customer's own message asks for JSON only with an imperative ("Reply with only the JSON object"):
# "Can I export my projects in JSON format?" or "Does the API return JSON?" are questions about JSON.
_IMPERATIVE_JSON = re.compile(
    r"^\W*(please\s+)?(respond|reply|answer|return|output|give me|provide|produce|format|write|convert|"
    r"extract|classify|generate|create|use)\b.*\bjson\b",
    re.IGNORECASE,
)
_MESSAGE_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n")
_TAG = re.compile(r"</?[A-Za-z_][\w:-]*(\s[^<>]*)?/?>")

_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")
_KEYS_SENTENCE = re.compile(r"\b(keys?|fields?|propert(y|ies))\b", re.IGNORECASE)
_QUOTED_NAME = re.compile(r"[\"'`]([A-Za-z_][A-Za-z0-9_]*)[\"'`]")
# Types of the classification keys when the prompt names them without saying their type.
_KNOWN_KEY_HINTS: dict[str, str] = {
    "resolved": "boolean",
    "escalation_needed": "boolean",
    "category": "billing|account|technical|other",
    "sentiment": "positive|neutral|negative",
}

CLASSIFICATION_KEYS: tuple[str, ...] = (
    "category",
    "resolved",
    "sentiment",
    "escalation_needed",
    "language",
    "summary",
)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str = "string"  # string | boolean | number | integer | array | object
    options: tuple[str, ...] = ()


def prompt_asks_for_json(text: str) -> bool:
    """Instructions (system text without reference documents or examples) that ask for JSON output."""
    if "json" not in text.lower() or _NEGATED_JSON.search(text):
        return False
    return bool(_JSON_REQUEST.search(text))


def message_asks_for_json(text: str) -> bool:
    """A user's own words that tell the model to answer in JSON (not merely mention it)."""
    if "json" not in text.lower() or _NEGATED_JSON.search(text):
        return False
    sentences = _MESSAGE_SENTENCE.split(_TAG.sub("\n", text))
    return any(_IMPERATIVE_JSON.search(sentence) for sentence in sentences)


def fields_from_prompt(text: str) -> list[FieldSpec]:
    """Keys named in the instructions: `"category": "billing|account|…"` pairs, else quoted names in a
    sentence about keys/fields (`with keys "category" and "resolved"`)."""
    fields: dict[str, FieldSpec] = {}
    for name, hint in _KEY_WITH_HINT.findall(text):
        if name not in fields:
            uninformative = hint.strip().strip('"').strip() in ("", "...", "…")
            fields[name] = _spec_from_hint(name, _KNOWN_KEY_HINTS.get(name, "") if uninformative else hint)
    if fields:
        return list(fields.values())
    for sentence in _SENTENCE.split(text):
        if _KEYS_SENTENCE.search(sentence):
            for name in _QUOTED_NAME.findall(sentence):
                fields.setdefault(name, _spec_from_hint(name, _KNOWN_KEY_HINTS.get(name, "")))
    return list(fields.values())


def _spec_from_hint(name: str, hint: str) -> FieldSpec:
    hint = hint.strip().strip('"').strip()
    lowered = hint.lower()
    if "bool" in lowered or lowered in {"true", "false"} or "true|false" in lowered or "true or false" in lowered:
        return FieldSpec(name, "boolean")
    if re.fullmatch(r"-?\d+", lowered) or "integer" in lowered or lowered == "int":
        return FieldSpec(name, "integer")
    if re.fullmatch(r"-?\d*\.\d+", lowered) or "number" in lowered or "float" in lowered:
        return FieldSpec(name, "number")
    if lowered.startswith("["):
        return FieldSpec(name, "array")
    if lowered.startswith("{"):
        return FieldSpec(name, "object")
    if "|" in hint:
        return FieldSpec(name, "string", tuple(option.strip() for option in hint.split("|") if option.strip()))
    return FieldSpec(name, "string")


def fields_from_schema(schema: dict[str, Any]) -> list[FieldSpec]:
    properties = schema.get("properties") or {}
    fields: list[FieldSpec] = []
    for name, spec in properties.items():
        kind = spec.get("type", "string")
        if isinstance(kind, list):
            kind = next((item for item in kind if item != "null"), "string")
        options = tuple(str(option) for option in spec.get("enum") or ())
        fields.append(FieldSpec(name, kind, options))
    return fields


def classification_fields() -> list[FieldSpec]:
    return [
        FieldSpec("category", "string", ("billing", "account", "technical", "other")),
        FieldSpec("resolved", "boolean"),
        FieldSpec("sentiment", "string", ("positive", "neutral", "negative")),
        FieldSpec("escalation_needed", "boolean"),
        FieldSpec("language", "string"),
        FieldSpec("summary", "string"),
    ]


def fill_fields(fields: list[FieldSpec], signals: TranscriptSignals) -> dict[str, Any]:
    return {field.name: _value_for(field, signals) for field in fields}


def _value_for(field: FieldSpec, signals: TranscriptSignals) -> Any:
    name = field.name.lower()
    if field.kind == "boolean":
        if "resolved" in name:
            return signals.resolved
        if "gap" in name or "unanswered" in name:
            return signals.knowledge_gap
        if "escalat" in name or "human" in name or "follow" in name:
            return signals.escalation_needed
        return False
    if field.kind in ("number", "integer"):
        if "cx" in name or "experience" in name or "satisfaction" in name or "csat" in name:
            return signals.cx_score
        if "confidence" in name or "score" in name:
            return 0.8 if field.kind == "number" else 1
        return 0
    if field.kind == "array":
        return signals.keywords
    if field.kind == "object":
        return {}
    return _string_value(name, field.options, signals)


def _string_value(name: str, options: tuple[str, ...], signals: TranscriptSignals) -> str:
    if "gap" in name:
        preferred = signals.gap_topic
    elif "sentiment" in name or "mood" in name:
        preferred = signals.sentiment
    elif "category" in name or "topic" in name or "intent" in name:
        preferred = signals.category
    elif "language" in name or name == "lang":
        preferred = signals.language
    elif "priority" in name or "urgency" in name:
        preferred = "high" if signals.escalation_needed else "normal"
    else:
        preferred = signals.summary
    if not options:
        return preferred
    return preferred if preferred in options else _closest_option(preferred, options)


def _closest_option(preferred: str, options: tuple[str, ...]) -> str:
    fallbacks = {"normal": ("medium", "low"), "other": ("general",)}
    for candidate in fallbacks.get(preferred, ()):
        if candidate in options:
            return candidate
    return "other" if "other" in options else options[0]
