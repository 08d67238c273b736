"""Evaluation traffic: a model grader's scores and a simulated customer's next message.

Both are recognised from the request's own text, the way a real model reads its instructions:

- a grader request hands over `<criterion id="…">` items inside `<rubric>` and the `<answer>` to grade,
  and asks for JSON; the reply is `{"grades": [{"criterion": id, "score": 0|1, "reason": …}]}`;
- a simulated-customer request gives a `<goal>`, a `<persona>` and the `<conversation>` so far; the reply
  is the customer's next message, or `DONE` once the assistant's last answer covers the goal.

Deterministic: the same request (including its `<seed>`) always gets the same reply.
"""

from __future__ import annotations

import hashlib
import json
import re

from .language import detect_language, words
from .retrieval import stem_terms

_CRITERION = re.compile(r'<criterion\s+id="(?P<id>[^"]+)"\s*>(?P<text>.*?)</criterion>', re.DOTALL)
_TAG = "<{0}>(.*?)</{0}>"
DONE = "DONE"
# Criteria about handing over: the answer must say so.
_HANDOFF_CRITERION = re.compile(r"\b(hand|human|escalat)", re.IGNORECASE)
_HANDOFF_ANSWER = re.compile(r"\b(human|agent|support team|escalat|équipe|team|equipo)", re.IGNORECASE)
_FOLLOW_UPS = (
    "Sorry, that does not answer my question: {goal}",
    "Hm, I still need to know: {goal}",
    "Could you be more specific? {goal}",
)
_OPENERS = ("Hi, {goal}", "Hello! {goal}", "{goal}")


def _tag(name: str, text: str) -> str | None:
    match = re.search(_TAG.format(name), text, re.DOTALL)
    return match.group(1).strip() if match else None


def _seeded(text: str, options: tuple[str, ...]) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return options[digest[0] % len(options)]


def is_grader_request(user_text: str) -> bool:
    return "<rubric>" in user_text and _CRITERION.search(user_text) is not None and "<answer>" in user_text


def grades_json(user_text: str) -> str:
    """Score each criterion: 1 when the answer is on topic for it (shares its terms, or hands over when the
    criterion asks for a handoff), else 0 — with a reason naming what was found."""
    answer = _tag("answer", user_text) or ""
    answer_terms = set(stem_terms(answer))
    grades = []
    for match in _CRITERION.finditer(user_text):
        criterion = match["text"].strip()
        if not answer.strip():
            score, reason = 0, "The answer is empty."
        elif _HANDOFF_CRITERION.search(criterion):
            found = _HANDOFF_ANSWER.search(answer)
            score = 1 if found else 0
            reason = f"The answer mentions '{found.group(0)}'." if found else "The answer offers no handoff."
        else:
            shared = sorted(set(stem_terms(criterion)) & answer_terms)
            score = 1 if shared or len(answer_terms) >= 8 else 0
            reason = (
                (f"The answer addresses it ({', '.join(shared[:3])})." if shared else "The answer is substantive.")
                if score
                else "The answer does not address it."
            )
        grades.append({"criterion": match["id"], "score": score, "reason": reason})
    return json.dumps({"grades": grades}, ensure_ascii=False)


def is_customer_request(user_text: str) -> bool:
    return "<goal>" in user_text and "<persona>" in user_text and "<conversation>" in user_text


def customer_message(user_text: str) -> str:
    """The simulated customer's next message (the goal, reworded by seed), or DONE."""
    goal = _tag("goal", user_text) or ""
    seed = _tag("seed", user_text) or ""
    conversation = _tag("conversation", user_text) or ""
    assistant_lines = [line[len("Assistant:") :] for line in conversation.splitlines() if line.startswith("Assistant:")]
    wanted = _goal_question(goal)
    if not assistant_lines:
        return _seeded(f"{seed}|{goal}", _OPENERS).format(goal=wanted)
    last = assistant_lines[-1]
    goal_terms = set(stem_terms(goal))
    covered = goal_terms & set(stem_terms(last))
    if goal_terms and len(covered) * 2 >= len(goal_terms):
        return DONE
    turn = len(assistant_lines)
    return _seeded(f"{seed}|{goal}|{turn}", _FOLLOW_UPS).format(goal=wanted)


def _goal_question(goal: str) -> str:
    """'Find out how long you have to request a refund.' → 'How long do I have to request a refund?'"""
    text = goal.strip().rstrip(".")
    lowered = text.lower()
    for lead in ("find out ", "learn ", "know ", "ask "):
        if lowered.startswith(lead):
            text = text[len(lead) :]
            break
    text = re.sub(r"\byou\b", "I", text)
    text = re.sub(r"\byour\b", "my", text)
    if detect_language(text) == "en" and words(text)[:1] and words(text)[0] in ("how", "what", "which", "when"):
        return text[0].upper() + text[1:] + "?"
    return text[0].upper() + text[1:] + "." if text else "I have a question."
