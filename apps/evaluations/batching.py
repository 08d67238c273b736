"""Batch runs: one Message Batch per round, at the batch discount, driven by a periodic task.

`run_advance` is the only entry point and is safe to call any number of times, from any worker:

- no batch open: advance fixed turns locally, send the next model call of every unfinished result as one
  batch (round n+1), or — when nothing is left — grade and close the run;
- a batch open and still processing: record its progress, nothing else;
- a batch ended: apply every result whose custom_id names this run and round (errored, expired or
  canceled items are counted and simply asked again next round, up to MAX_REQUEUES), then go on.

The run row is locked while it advances, so two workers never apply the same results twice. A worker that
dies after creating a batch but before storing its id leaves the run unchanged: the next advance sends the
round again (the orphan's results name the same round but are never read, since only the stored id is).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import anthropic
from django.db import transaction

from apps.evaluations import services
from apps.evaluations.models import CaseResult, Run
from apps.llm.models import TaskType
from apps.llm.types import PromptParts

logger = logging.getLogger(__name__)

MAX_REQUEUES = 3
_CUSTOM_ID = re.compile(r"^ev(?P<run>\d+)-x(?P<result>\d+)-n(?P<round>\d+)$")
Status = CaseResult.Status


def custom_id_for(*, run_id: int, result_id: int, round_number: int) -> str:
    """`ev<run>-x<result>-n<round>`: within the Batches API's 64-character [a-zA-Z0-9_-] custom_id."""
    return f"ev{run_id}-x{result_id}-n{round_number}"


def custom_id_parse(custom_id: str) -> tuple[int, int, int] | None:
    """(run id, result id, round), or None for a custom_id that is not an evaluation's."""
    match = _CUSTOM_ID.match(custom_id)
    return (int(match["run"]), int(match["result"]), int(match["round"])) if match else None


def _client() -> anthropic.Anthropic:
    from apps.llm.clients import get_client

    # No SDK retries on create: a retried create that reached the server would send the round twice.
    return get_client().with_options(max_retries=0)


def run_advance(*, run_id: int) -> Run:
    """Move a batch run one step on (see the module docstring). Raises anthropic.APIError on transport
    failures; the run is unchanged and the next call tries again."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.mode != Run.Mode.BATCH or run.status in (Run.Status.DONE, Run.Status.FAILED):
            return run
        if run.batch_id:
            upstream = _client().messages.batches.retrieve(run.batch_id)
            if upstream.processing_status != "ended":
                return run
            _ingest(run)
        return _submit_next(run)


def runs_advance_open() -> list[int]:
    """Advance every open batch run; a run whose upstream call fails is left for the next poll."""
    advanced = []
    for run_id in Run.objects.filter(
        mode=Run.Mode.BATCH, status__in=[Run.Status.PENDING, Run.Status.SUBMITTED]
    ).values_list("pk", flat=True):
        try:
            run_advance(run_id=run_id)
        except anthropic.APIError:
            logger.warning("evaluation run advance failed; retrying on the next poll", extra={"run": run_id})
            continue
        advanced.append(run_id)
    return advanced


def _open_results(run: Run) -> list[CaseResult]:
    return list(run.results.select_related("case", "version__prompt").filter(status=Status.PENDING))


def _ingest(run: Run) -> None:
    from apps.llm.batch import batch_result_record, message_text

    results = {result.pk: result for result in _open_results(run)}
    parts: dict[int, PromptParts] = {}
    stream = _client().messages.batches.results(run.batch_id)
    try:
        for item in stream:
            parsed = custom_id_parse(item.custom_id)
            if parsed is None or parsed[0] != run.pk or parsed[2] != run.round or parsed[1] not in results:
                continue  # not this run's, or an older round's (already applied)
            result = results[parsed[1]]
            step = services.result_next_step(result)
            if step is None:
                continue
            version_parts = parts.setdefault(result.version_id, result.version.to_parts())
            logged = version_parts if step == "answer" else _customer_parts()
            message = item.result.message if item.result.type == "succeeded" else None
            if item.result.type in ("succeeded", "errored"):
                batch_result_record(
                    custom_id=item.custom_id,
                    model=message.model if message is not None else _step_model(result, step, version_parts),
                    message=message,
                    prompt=logged,
                    conversation_id=services.result_call_key(result),
                    error_type="" if message is not None else _error_type(item.result),
                    task_type=TaskType.EVALUATION,
                )
            if message is None:
                result.requeues += 1
                if result.requeues > MAX_REQUEUES:
                    result.status, result.error = Status.ERRORED, f"{step}: {_error_type(item.result)}"
                result.save(update_fields=["requeues", "status", "error"])
                continue
            services.result_usage_add(result, message)
            services.result_apply_reply(result, step, message_text(message), services.message_tool_uses(message))
            services.result_advance_local(result)
            result.save(update_fields=["transcript", "answer", "input_tokens", "output_tokens"])
    finally:
        stream.close()
    # A result the batch never returned is asked again next round, like an errored one.
    run.batch_id = ""
    run.save(update_fields=["batch_id"])


def _step_model(result: CaseResult, step: str, parts: PromptParts) -> str:
    """The model the failed request was routed to (the result carries no message to read it from)."""
    return services.result_step_params(result, step, parts)[0]["model"]


def _customer_parts() -> PromptParts:
    from apps.evaluations.grading import CUSTOMER_PROMPT

    return CUSTOMER_PROMPT


def _error_type(result: Any) -> str:
    if result.type != "errored":
        return result.type
    inner = getattr(getattr(result, "error", None), "error", None)
    return str(getattr(inner, "type", "") or "errored")


def _submit_next(run: Run) -> Run:
    requests: list[dict[str, Any]] = []
    parts: dict[int, PromptParts] = {}
    next_round = run.round + 1
    for result in _open_results(run):
        services.result_advance_local(result)
        step = services.result_next_step(result)
        if step is None:
            result.status = Status.ANSWERED
            result.save(update_fields=["transcript", "status"])
            continue
        result.save(update_fields=["transcript"])
        version_parts = parts.setdefault(result.version_id, result.version.to_parts())
        params, _ = services.result_step_params(result, step, version_parts)
        requests.append(
            {
                "custom_id": custom_id_for(run_id=run.pk, result_id=result.pk, round_number=next_round),
                "params": params,
            }
        )
    if not requests:
        return services.run_grade(run=run)
    upstream = _client().messages.batches.create(requests=requests)
    run.batch_id, run.round, run.status = upstream.id, next_round, Run.Status.SUBMITTED
    run.save(update_fields=["batch_id", "round", "status"])
    return run
