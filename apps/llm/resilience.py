"""Retries with backoff (honouring retry-after), fallback along the route's chain, and the breaker.

`create_with_fallback` is the non-streamed path (JSON tasks, summaries); the streamed chat answer runs
the same policy in `apps.llm.gateway.chat_stream`. Both log one row per attempt (apps.llm.attempts).
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx2

from apps.core.exceptions import ApplicationError
from apps.llm import breaker
from apps.llm.attempts import CallMeta, Meter, counts_against_breaker, error_type, message_text, record_kwargs
from apps.llm.clients import get_client
from apps.llm.retry import RetryPolicy, status_of
from apps.llm.services import llm_call_record
from apps.llm.types import RouteDecision


class UpstreamUnavailable(ApplicationError):
    """No model of the route could answer."""

    status_code = 503

    def __init__(self, message: str = "The assistant is temporarily unavailable.", *, last_error: str = "") -> None:
        super().__init__(message, code="upstream_unavailable", extra={"last_error": last_error} if last_error else {})


def create_with_fallback(
    *, params: dict[str, Any], decision: RouteDecision, meta: CallMeta, policy: RetryPolicy | None = None
) -> tuple[anthropic.types.Message, str]:
    """One non-streaming answer from the first model that can give it: (message, model).

    Raises UpstreamUnavailable when every model of the chain is open, failing, or refused the request.
    """
    policy = policy or RetryPolicy.from_settings()
    client = get_client()
    last_error = ""
    for step, model in enumerate(decision.chain):
        attempt = 0
        while breaker.allow(model):
            attempt += 1
            meter = Meter(started=time.monotonic())
            try:
                message = client.messages.create(**{**params, "model": model})
            except (anthropic.APIError, httpx2.HTTPError, ValueError) as exc:
                last_error = error_type(exc)
                llm_call_record(
                    **record_kwargs(meta, model=model, attempt=attempt, fallback_step=step, meter=meter, error=exc)
                )
                if counts_against_breaker(exc):
                    breaker.record_failure(model)
                else:
                    breaker.record_inconclusive(model)
                if status_of(exc) in (400, 401, 403):
                    raise UpstreamUnavailable(last_error=last_error) from exc  # no other model would do better
                if not policy.should_retry(exc, attempt):
                    break
                policy.sleep(policy.delay(exc, attempt))
                continue
            meter.absorb_usage(message.usage)
            meter.stop_reason = message.stop_reason or ""
            meter.request_id = getattr(message, "_request_id", None) or ""
            meter.text = message_text(message)
            llm_call_record(
                **record_kwargs(meta, model=model, attempt=attempt, fallback_step=step, meter=meter, error=None)
            )
            breaker.record_success(model)
            return message, model
    raise UpstreamUnavailable(last_error=last_error)
