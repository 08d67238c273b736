"""Deterministic checks of an answer against a case's expectations (run before the model grader)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from apps.llm.types import ToolCall

# Enough stopwords to tell the seven languages the assistant serves apart in a support answer.
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and you your is are to of for with can this that have not please".split()),
    "fr": frozenset("le la les et vous votre est sont de des pour avec pas une un je nous".split()),
    "de": frozenset("der die das und sie ihre ist sind zu von für mit nicht ein eine ich wir".split()),
    "es": frozenset("el la los las y usted su es son de para con no una un que por".split()),
    "it": frozenset("il lo la gli e lei suo è sono di per con non una un che".split()),
    "pt": frozenset("o a os as e você seu é são de para com não uma um que".split()),
    "nl": frozenset("de het en u uw is zijn van voor met niet een ik wij".split()),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# How an answer hands a conversation over to people (the business rules ask it to say so clearly).
HANDOFF = re.compile(
    r"\b(human (support )?agent|support team|hand (you|this|the conversation) (over|to)|escalat\w*|"
    r"connect you with|équipe|support-team|equipo)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Check:
    check: str  # "must_include" | "must_not_include" | "language" | "handoff" | "tool_call"
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def answer_language(text: str) -> str:
    """The language whose stopwords occur most often in `text` ("" when there is no evidence)."""
    counts = {language: 0 for language in _STOPWORDS}
    for word in _WORD.findall(text.lower()):
        for language, stopwords in _STOPWORDS.items():
            if word in stopwords:
                counts[language] += 1
    best = max(counts, key=lambda language: counts[language])
    return best if counts[best] else ""


def run_checks(
    *,
    answers: list[str],
    must_include: list[str],
    must_not_include: list[str],
    language: str,
    expect_handoff: bool | None,
) -> list[Check]:
    """Every expectation checked against the assistant's answers (all turns; the language on the last)."""
    everything = "\n".join(answers)
    folded = everything.casefold()
    last = answers[-1] if answers else ""
    checks: list[Check] = []
    for fact in must_include:
        found = fact.casefold() in folded
        checks.append(Check("must_include", found, f"{'found' if found else 'missing'}: {fact}"))
    for fact in must_not_include:
        found = fact.casefold() in folded
        checks.append(Check("must_not_include", not found, f"{'present' if found else 'absent'}: {fact}"))
    if language:
        detected = answer_language(last)
        checks.append(Check("language", detected == language, f"expected {language}, got {detected or 'unknown'}"))
    if expect_handoff is not None:
        handed = HANDOFF.search(everything) is not None
        detail = "offers a human handoff" if handed else "no handoff"
        checks.append(Check("handoff", handed == expect_handoff, detail))
    return checks


def _same_value(expected: Any, actual: Any) -> bool:
    """Strings match without regard to case or surrounding space (INV-2041 = inv-2041); anything else exactly."""
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.strip().casefold() == actual.strip().casefold()
    return expected == actual


def tool_call_check(*, calls: Sequence[ToolCall], name: str, arguments: dict[str, Any]) -> Check:
    """Passes when one of the answer's tool calls (the `tool_use` blocks, as the tool loop reads them) is to
    `name` with every expected argument; arguments the case does not name may be anything."""
    named = [call for call in calls if call.name == name]
    for call in named:
        if all(key in call.input and _same_value(value, call.input[key]) for key, value in arguments.items()):
            return Check("tool_call", True, f"called {name}({_arguments_text(call.input)})")
    if named:
        got = "; ".join(f"{name}({_arguments_text(call.input)})" for call in named)
        return Check("tool_call", False, f"expected {name}({_arguments_text(arguments)}), got {got}")
    others = ", ".join(call.name for call in calls) or "no tool"
    return Check("tool_call", False, f"expected {name}, called {others}")


def _arguments_text(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in sorted(arguments.items()))
