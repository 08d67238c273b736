"""Writes for evaluations: sets and cases, starting runs, answering (quick or batched), grading.

A run's work is a set of `CaseResult` rows, each a small state machine over its transcript:

    customer turn (a fixed turn, or a simulated customer's call) → assistant answer → … → graded

Quick runs walk every row synchronously. Batch runs send one Message Batch per *round* with the next
model call of every unfinished row, so a three-turn simulated customer takes six rounds; each round's
custom_ids carry the run, row and round (`ev<run>-x<row>-n<round>`), so results of an older or foreign
batch are never applied. All state is in the database: a restarted worker polls the stored batch id and
carries on. Errored or expired items are simply asked again in the next round, up to MAX_REQUEUES.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import anthropic
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.selectors import neutralise_tags
from apps.core.exceptions import ApplicationError
from apps.evaluations import grading
from apps.evaluations.checks import run_checks, tool_call_check
from apps.evaluations.demo import DEMO_CASES, DEMO_SET_NAME
from apps.evaluations.models import Case, CaseResult, EvaluationSet, Run
from apps.llm.models import LLMCall, TaskType
from apps.llm.types import PromptParts, ToolCall, Turn

logger = logging.getLogger(__name__)

DEFAULT_K = 3
MAX_K = 10
QUICK_CASES = 3

Status = CaseResult.Status


# --------------------------------------------------------------------------------------------------
# Sets and cases


def case_create(*, evaluation_set: EvaluationSet, **fields: Any) -> Case:
    """A validated case. Raises django ValidationError with what is wrong (nothing is saved)."""
    case = Case(evaluation_set=evaluation_set, **fields)
    case.full_clean()
    case.save()
    return case


@transaction.atomic
def evaluation_set_seed_demo() -> EvaluationSet:
    """The demo set with every demo case (idempotent: only missing cases are added)."""
    evaluation_set, _ = EvaluationSet.objects.get_or_create(
        name=DEMO_SET_NAME,
        defaults={"description": "Everyday, account, escalation and adversarial questions for the demo prompt."},
    )
    existing = set(evaluation_set.cases.values_list("name", flat=True))
    for fields in DEMO_CASES:
        if fields["name"] not in existing:
            case_create(evaluation_set=evaluation_set, **fields)
    return evaluation_set


# --------------------------------------------------------------------------------------------------
# Starting a run


def _live_version(candidate: Any) -> Any:
    """The active version with the most traffic (the one a publish would replace), other than the candidate."""
    from apps.prompts.models import PromptVersion

    return (
        PromptVersion.objects.filter(prompt_id=candidate.prompt_id, status=PromptVersion.Status.ACTIVE)
        .exclude(pk=candidate.pk)
        .order_by("-weight", "-published_at", "-pk")
        .first()
    )


@transaction.atomic
def run_start(
    *,
    evaluation_set: EvaluationSet,
    candidate: Any,
    actor: AbstractBaseUser | None,
    mode: str = Run.Mode.BATCH,
    k: int = DEFAULT_K,
    case_ids: list[int] | None = None,
) -> Run:
    """Create a run of `candidate` and the live version on the set (quick: the first QUICK_CASES cases).

    The work itself starts after commit (quick: in this request's thread via `run_quick`, batch: a task).
    Raises ApplicationError("invalid_k" | "invalid_mode" | "empty_set" | "wrong_prompt").
    """
    if not 1 <= k <= MAX_K:
        raise ApplicationError(f"k must be between 1 and {MAX_K}.", code="invalid_k")
    if mode not in Run.Mode.values:
        raise ApplicationError(f"Unknown run mode {mode!r}.", code="invalid_mode")
    if candidate.prompt.slug != evaluation_set.prompt_slug:
        raise ApplicationError(
            f"{evaluation_set} evaluates {evaluation_set.prompt_slug}, not {candidate.prompt.slug}.",
            code="wrong_prompt",
        )
    cases = list(evaluation_set.cases.order_by("id"))
    if case_ids:
        cases = [case for case in cases if case.pk in set(case_ids)]
    elif mode == Run.Mode.QUICK:
        cases = cases[:QUICK_CASES]
    if not cases:
        raise ApplicationError("The set has no cases to run.", code="empty_set")
    baseline = _live_version(candidate)
    run = Run.objects.create(
        evaluation_set=evaluation_set,
        candidate=candidate,
        baseline=baseline,
        mode=mode,
        k=k,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    versions = [candidate] + ([baseline] if baseline is not None else [])
    CaseResult.objects.bulk_create(
        CaseResult(run=run, case=case, version=version, attempt=attempt)
        for case in cases
        for version in versions
        for attempt in range(1, k + 1)
    )
    if mode == Run.Mode.BATCH:
        from apps.evaluations import tasks

        transaction.on_commit(lambda: tasks.evaluation_run_advance.delay(run.pk))
    return run


# --------------------------------------------------------------------------------------------------
# The state machine of one result


def result_call_key(result: CaseResult) -> str:
    """Names every call-log row of one result (its conversation_id), so its cost is exact from the log."""
    return f"eval{result.run_id}-x{result.pk}"


def _user_turns(transcript: list[dict[str, str]]) -> int:
    return sum(1 for turn in transcript if turn["role"] == "user")


def result_next_step(result: CaseResult) -> str | None:
    """ "answer", "customer" (a simulated customer's call), or None when the conversation is over.

    Fixed turns are appended locally (`_advance_local`), so they never show up here.
    """
    transcript = result.transcript
    last = transcript[-1]["role"] if transcript else ""
    if last == "user":
        return "answer"
    if last == "done":
        return None
    case = result.case
    if case.simulated and _user_turns(transcript) < case.max_turns:
        return "customer"
    return None


def result_advance_local(result: CaseResult) -> None:
    """Append the next fixed customer turn when one is due (no model call needed)."""
    case = result.case
    if case.simulated:
        return
    transcript = result.transcript
    if transcript and transcript[-1]["role"] == "user":
        return
    said = _user_turns(transcript)
    if said < len(case.turns):
        result.transcript = [*transcript, {"role": "user", "text": case.turns[said]}]


def account_context_text(case: Case) -> str:
    """The case's customer fixture as the application renders an account for the assistant."""
    lines = [f"plan: {case.plan_tier}"]
    lines += [f"{neutralise_tags(str(key))}: {neutralise_tags(str(value))}" for key, value in case.account_data.items()]
    return "<account_context>\n" + "\n".join(lines) + "\n</account_context>"


def _answer_params(result: CaseResult, parts: PromptParts) -> dict[str, Any]:
    from apps.llm.gateway import estimate_tokens
    from apps.llm.prompting import conversation_messages, system_blocks, user_message_text
    from apps.llm.routing import route

    transcript = [turn for turn in result.transcript if turn["role"] in ("user", "assistant")]
    history = tuple(Turn(role=turn["role"], text=_turn_text(turn)) for turn in transcript[:-1])
    new_turn = f"{account_context_text(result.case)}\n\n{user_message_text(transcript[-1]['text'])}"
    params: dict[str, Any] = {
        "max_tokens": parts.max_tokens,
        "system": system_blocks(parts),
        "messages": conversation_messages(
            summary="", history=history, new_user_blocks=[{"type": "text", "text": new_turn}]
        ),
    }
    if parts.tool_names:
        from apps.actions.registry import tool_specs

        # The version's tools, as the chat sends them, so the model can choose one; evaluations record the
        # call and never run it (a case's customer is a fixture, not an account to act on).
        params["tools"] = [spec.definition() for spec in tool_specs(parts.tool_names)]
    params["model"] = route(
        task_type=TaskType.CHAT,
        plan_tier=result.case.plan_tier,
        prompt_tokens=estimate_tokens(params),
        prompt_tier=parts.model_tier,
    ).model
    return params


def _customer_params(result: CaseResult) -> dict[str, Any]:
    from apps.llm.prompting import single_turn_messages, system_blocks
    from apps.llm.routing import route

    parts = grading.CUSTOMER_PROMPT
    case = result.case
    user_text = grading.customer_user_text(
        goal=case.goal, persona=case.persona, seed=result.attempt, transcript=result.transcript
    )
    model = route(task_type=TaskType.CLASSIFICATION, plan_tier="", prompt_tokens=0, prompt_tier=parts.model_tier)
    return {
        "model": model.model,
        "max_tokens": parts.max_tokens,
        "system": system_blocks(parts),
        "messages": single_turn_messages(user_text),
    }


def result_step_params(result: CaseResult, step: str, parts: PromptParts) -> tuple[dict[str, Any], PromptParts]:
    if step == "answer":
        return _answer_params(result, parts), parts
    return _customer_params(result), grading.CUSTOMER_PROMPT


def _turn_text(turn: dict[str, Any]) -> str:
    """An earlier assistant turn as history: its words, or what it called when it only called a tool."""
    if turn["text"] or not turn.get("tool_uses"):
        return turn["text"]
    return " ".join(f"(called {call['name']})" for call in turn["tool_uses"])


def message_tool_uses(message: Any) -> list[dict[str, Any]]:
    """The reply's complete `tool_use` blocks as plain data (what the tool loop would run)."""
    return [
        {"id": block.id, "name": block.name, "input": dict(block.input or {})}
        for block in message.content
        if block.type == "tool_use"
    ]


def transcript_tool_calls(transcript: list[dict[str, Any]]) -> list[ToolCall]:
    """Every tool call the assistant made in a result's transcript, as the tool loop's ToolCall (round = the
    assistant turn it was made in)."""
    calls: list[ToolCall] = []
    assistant_turns = (turn for turn in transcript if turn["role"] == "assistant")
    for number, turn in enumerate(assistant_turns, 1):
        calls += [
            ToolCall(id=use.get("id", ""), name=use["name"], input=dict(use.get("input") or {}), round=number)
            for use in turn.get("tool_uses", ())
        ]
    return calls


def result_apply_reply(result: CaseResult, step: str, text: str, tool_uses: list[dict[str, Any]] | None = None) -> None:
    text = text.strip()
    if step == "answer":
        turn: dict[str, Any] = {"role": "assistant", "text": text}
        if tool_uses:
            turn["tool_uses"] = tool_uses
        result.transcript = [*result.transcript, turn]
        result.answer = text
    elif text == grading.CUSTOMER_DONE or not text:
        result.transcript = [*result.transcript, {"role": "done", "text": ""}]
    else:
        result.transcript = [*result.transcript, {"role": "user", "text": text}]


def result_usage_add(result: CaseResult, message: anthropic.types.Message) -> None:
    usage = message.usage
    result.input_tokens += (
        usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    )
    result.output_tokens += usage.output_tokens


# --------------------------------------------------------------------------------------------------
# Quick runs


def run_quick(*, run: Run) -> Run:
    """Answer and grade every result of `run` now, one call at a time (a few cases: seconds, not hours).

    An upstream failure marks that result errored and moves on. Raises nothing for upstream trouble.
    """
    from apps.llm.clients import get_client
    from apps.llm.services import llm_call_record

    client = get_client()
    parts_by_version: dict[int, PromptParts] = {}
    for result in run.results.select_related("case", "version__prompt").filter(status=Status.PENDING):
        parts = parts_by_version.setdefault(result.version_id, result.version.to_parts())
        result_advance_local(result)
        while (step := result_next_step(result)) is not None:
            params, logged_parts = result_step_params(result, step, parts)
            started = time.monotonic()
            try:
                message = client.messages.create(**params)
            except (anthropic.APIError, ValueError) as exc:
                latency = int((time.monotonic() - started) * 1000)
                llm_call_record(
                    task_type=TaskType.EVALUATION,
                    model=params["model"],
                    prompt_slug=logged_parts.slug,
                    prompt_version=logged_parts.version,
                    prompt_version_id=logged_parts.version_id,
                    conversation_id=result_call_key(result),
                    route_reason="evaluation",
                    latency_ms=latency,
                    status=LLMCall.Status.ERROR,
                    error_type=type(exc).__name__,
                )
                result.status, result.error = Status.ERRORED, f"{step}: {type(exc).__name__}"
                break
            latency = int((time.monotonic() - started) * 1000)
            text = "".join(block.text for block in message.content if block.type == "text")
            usage = message.usage
            llm_call_record(
                task_type=TaskType.EVALUATION,
                model=message.model or params["model"],
                prompt_slug=logged_parts.slug,
                prompt_version=logged_parts.version,
                prompt_version_id=logged_parts.version_id,
                conversation_id=result_call_key(result),
                route_reason="evaluation",
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
                cache_read_input_tokens=usage.cache_read_input_tokens or 0,
                cache_creation_1h_input_tokens=getattr(usage.cache_creation, "ephemeral_1h_input_tokens", 0) or 0,
                latency_ms=latency,
                stop_reason=message.stop_reason or "",
                output_chars=len(text),
                request_id=getattr(message, "_request_id", None) or "",
            )
            if step == "answer":
                result.latency_ms += latency
            result_usage_add(result, message)
            result_apply_reply(result, step, text, message_tool_uses(message))
            result_advance_local(result)
        if result.status != Status.ERRORED:
            result.status = Status.ANSWERED
        result.save()
    return run_grade(run=run)


# --------------------------------------------------------------------------------------------------
# Grading


def result_grade(*, result: CaseResult) -> CaseResult:
    """Deterministic checks, then (when the case has a rubric) the model grader; sets `passed` and cost.

    The grader's reply is validated against `GradeReply` and must grade every criterion; an invalid reply
    is asked again once with the error (as every structured call is). A grader that still fails leaves
    the result errored (it counts as not passed).
    """
    from apps.llm.gateway import complete_json

    case = result.case
    answers = [turn["text"] for turn in result.transcript if turn["role"] == "assistant"]
    checks = run_checks(
        answers=answers,
        must_include=case.must_include,
        must_not_include=case.must_not_include,
        language=case.language,
        expect_handoff=case.expect_handoff,
    )
    if case.expect_tool:
        calls = transcript_tool_calls(result.transcript)
        checks.append(tool_call_check(calls=calls, name=case.expect_tool, arguments=case.expect_tool_arguments))
    # A turn that only called a tool has no words, but it is an answer.
    answered = any(turn["role"] == "assistant" for turn in result.transcript)
    result.checks = [check.as_dict() for check in checks]
    result.grades = []
    grader_ok = True
    if case.rubric and answered:
        reply = complete_json(
            prompt=grading.GRADER_PROMPT,
            user_text=grading.grader_user_text(rubric=case.rubric, transcript=result.transcript, answer=answers[-1]),
            schema=grading.GradeReply,
            task_type=TaskType.GRADING,
            conversation_id=result_call_key(result),
        )
        problem = reply.error if not reply.ok else grading.grades_match(case.rubric, reply.data)
        if problem:
            grader_ok = False
            result.error = f"grader: {problem}"[:200]
        else:
            by_id = {grade.criterion: grade for grade in reply.data.grades}
            result.grades = [
                {"criterion": item, "score": by_id[str(n)].score, "reason": by_id[str(n)].reason}
                for n, item in enumerate(case.rubric, 1)
            ]
    result.passed = (
        answered
        and grader_ok
        and all(check.ok for check in checks)
        and all(grade["score"] >= grading.PASS_SCORE for grade in result.grades)
    )
    result.status = Status.GRADED if grader_ok and answered else Status.ERRORED
    if not answered and not result.error:
        result.error = "no answer"
    cost = LLMCall.objects.filter(conversation_id=result_call_key(result)).aggregate(total=Sum("cost_usd"))["total"]
    result.cost_usd = cost or Decimal(0)
    result.save()
    return result


def run_grade(*, run: Run) -> Run:
    """Grade every answered result and close the run."""
    for result in run.results.select_related("case").filter(status__in=[Status.ANSWERED, Status.ERRORED]):
        if result.status == Status.ERRORED and not result.answer:
            cost = LLMCall.objects.filter(conversation_id=result_call_key(result)).aggregate(total=Sum("cost_usd"))[
                "total"
            ]
            result.passed, result.cost_usd = False, cost or Decimal(0)
            result.save(update_fields=["passed", "cost_usd"])
            continue
        result_grade(result=result)
    run.status = Run.Status.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    return run
