"""The classifier's answer: validated strictly, so a malformed verdict never reaches the report."""

import json
import re
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
ModelT = TypeVar("ModelT", bound=BaseModel)

# Appended to the transcript when the previous answer failed validation.
CLARIFYING_INSTRUCTION = (
    "Your previous answer to this request could not be parsed. Reply with ONLY one JSON object, nothing else "
    "(no prose, markdown or code fences), with exactly these keys:\n"
    '"category": one of "billing", "account", "technical", "other"\n'
    '"resolved": a JSON boolean, true or false\n'
    '"sentiment": one of "positive", "neutral", "negative"\n'
    '"escalation_needed": a JSON boolean, true or false\n'
    '"language": two-letter lowercase ISO 639-1 code\n'
    '"summary": one line, at most 200 characters, in English\n'
    '"knowledge_gap": a JSON boolean, true when the customer asked something the help centre did not answer\n'
    '"gap_topic": when knowledge_gap is true, the missing topic in at most 6 English words, else ""\n'
    '"cx_score": an integer from 1 (very poor) to 5 (excellent), the customer\'s experience'
)


class ClassificationOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    category: Literal["billing", "account", "technical", "other"]
    resolved: bool
    sentiment: Literal["positive", "neutral", "negative"]
    escalation_needed: bool
    language: str = Field(pattern=r"^[a-z]{2}$")
    summary: str = Field(min_length=1, max_length=300)
    # Optional so that classifier versions written before these keys existed still validate: their
    # conversations simply carry no gap verdict and no CX score.
    knowledge_gap: bool | None = None
    gap_topic: str = Field(default="", max_length=80)
    cx_score: int | None = Field(default=None, ge=1, le=5)

    @field_validator("summary")
    @classmethod
    def _one_line(cls, value: str) -> str:
        value = value.strip()
        if "\n" in value or not value:
            raise ValueError("summary must be one non-empty line")
        return value

    @field_validator("gap_topic")
    @classmethod
    def _topic_line(cls, value: str) -> str:
        value = " ".join(value.split())
        return value

    @model_validator(mode="after")
    def _topic_only_for_gaps(self) -> "ClassificationOutput":
        # A topic without a gap would be grouped as one; a gap without a topic still counts (as "unspecified").
        if not self.knowledge_gap:
            self.gap_topic = ""
        return self


class InvalidClassification(ValueError):
    """The model's answer is not a valid classification."""


def classification_parse(text: str) -> ClassificationOutput:
    """Parse the model's answer. Tolerates surrounding whitespace and a code fence, nothing else.

    Raises InvalidClassification.
    """
    return json_model_parse(text, ClassificationOutput, InvalidClassification)


def json_model_parse(text: str, model: type[ModelT], error: type[Exception]) -> ModelT:
    """`text` (whitespace and a code fence around it tolerated, nothing else) as one JSON object validated
    by `model`. Raises `error` with a short reason (the first validation error's path and message) — the
    reason the clarifying retry and the admin show."""
    candidate = text.strip()
    fenced = _FENCE.match(candidate)
    if fenced:
        candidate = fenced.group(1)
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise error(f"not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise error("not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise error(f"{'.'.join(str(p) for p in first['loc']) or 'object'}: {first['msg']}") from exc
