"""The only code that talks to Claude: streamed chat answers, JSON tasks, summaries, token counts, previews.

Every call goes: assemble (apps.llm.prompting) → route (apps.llm.routing) → for each model of the
chain whose circuit is not open, attempts with backoff (apps.llm.retry) → one `LLMCall` row per
attempt (apps.llm.attempts). Callers pass plain values (apps.llm.types) and get dataclasses back.

The work is split by concern; this module keeps the public functions:
- `chat_stream` (here): one streamed chat answer, with retries, fallback, resets and one outcome;
  each attempt is one streamed call (apps.llm.streaming);
- `complete_json`, `parse_json_reply` (apps.llm.structured): JSON validation and the clarifying retry;
- `summarise_history`, `count_request_tokens`, `estimate_tokens` (apps.llm.context): the context window;
- `preview_request` (apps.llm.preview); `UpstreamUnavailable` (apps.llm.resilience).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
from django.conf import settings

from apps.llm import breaker, routing
from apps.llm.attempts import (
    CallMeta,
    Meter,
    breaker_call,
    counts_against_breaker,
    db_async,
    error_type,
    is_prompt_too_long,
    record_abandoned,
    record_attempt,
)
from apps.llm.context import (
    acount_request_tokens,
    count_request_tokens,
    estimate_tokens,
    shrink_to_fit,
    summarise_history,
)
from apps.llm.models import TaskType
from apps.llm.preview import preview_request
from apps.llm.prompting import chat_body, chat_params
from apps.llm.resilience import UpstreamUnavailable
from apps.llm.retry import FirstTokenTimeout, RetryPolicy, StreamCut, status_of
from apps.llm.routing import route
from apps.llm.streaming import stream_once
from apps.llm.structured import complete_json, parse_json_reply
from apps.llm.tools import ToolLoop, ToolRunner
from apps.llm.types import (
    ChatOutcome,
    ChatRequest,
    Finished,
    GatewayEvent,
    HistorySummarised,
    Reset,
    Retrying,
    RouteDecision,
    TextDelta,
)

logger = logging.getLogger(__name__)

# Shown when no model could answer at all; the caller also opens a ticket.
APOLOGIES: dict[str, str] = {
    "en": "Sorry, I can't answer right now because our assistant is temporarily unavailable. "
    "We've passed your question to our support team, who will get back to you.",
    "fr": "Désolé, je ne peux pas répondre pour le moment : notre assistant est temporairement indisponible. "
    "Nous avons transmis votre question à notre équipe d'assistance, qui vous recontactera.",
    "de": "Entschuldigung, ich kann gerade nicht antworten, weil unser Assistent vorübergehend nicht verfügbar ist. "
    "Wir haben Ihre Frage an unser Support-Team weitergeleitet, das sich bei Ihnen melden wird.",
    "es": "Lo sentimos, ahora mismo no puedo responder porque nuestro asistente no está disponible temporalmente. "
    "Hemos enviado tu pregunta a nuestro equipo de soporte, que se pondrá en contacto contigo.",
    "it": "Spiacenti, al momento non posso rispondere perché il nostro assistente è temporaneamente non disponibile. "
    "Abbiamo inoltrato la tua domanda al nostro team di supporto, che ti ricontatterà.",
    "pt": "Desculpe, não consigo responder agora porque o nosso assistente está temporariamente indisponível. "
    "Encaminhámos a sua pergunta à nossa equipa de suporte, que entrará em contacto consigo.",
    "nl": "Sorry, ik kan nu niet antwoorden omdat onze assistent tijdelijk niet beschikbaar is. "
    "We hebben je vraag doorgestuurd naar ons supportteam, dat contact met je opneemt.",
}


def apology(language: str) -> str:
    """The degraded-answer apology in `language` (ISO 639-1, regional variants accepted), else English."""
    return APOLOGIES.get((language or "en").split("-")[0].split("_")[0].lower(), APOLOGIES["en"])


# The background refresh of expired routing rules, if one is running (a strong reference: asyncio keeps
# only weak ones to tasks).
_rules_refresh: asyncio.Task[Any] | None = None


async def _route_chat(route_kwargs: dict[str, Any]) -> tuple[RouteDecision, bool]:
    """(the route, whether it came from an expired copy of the rules that is due a refresh).

    Without making the answer wait for the database whenever a copy of the rules exists. Fresh, routing
    is pure computation. Expired, the copy is used once more, and the caller refreshes it in a worker
    thread once its first token is out (`_refresh_routing_rules`): users think longer than the TTL between
    questions, so otherwise nearly every answer would queue a thread hop (behind other sockets' ORM work)
    before its upstream call, or have the refresh's query compete with it for the GIL.
    """
    if routing.rules_cached():
        return route(**route_kwargs), False
    if routing.rules_expired():
        return route(**route_kwargs, allow_stale=True), True
    return await db_async(route)(**route_kwargs), False


def _refresh_routing_rules() -> asyncio.Task[Any]:
    """Start reading the routing rules again in a worker thread, unless that is already under way."""
    global _rules_refresh
    if _rules_refresh is None or _rules_refresh.done() or _rules_refresh.get_loop() is not asyncio.get_running_loop():
        _rules_refresh = asyncio.ensure_future(db_async(routing.rules_refresh)())
    return _rules_refresh


def _restart(model: str, earlier: str) -> list[GatewayEvent]:
    """Drop the interrupted round's text: a Reset, then the finished rounds' text again."""
    events: list[GatewayEvent] = [Reset(reason=f"restarted on {model} after an interrupted answer")]
    if earlier:
        events.append(TextDelta(text=earlier))
    return events


def _add_usage(totals: Meter, meter: Meter) -> None:
    for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        setattr(totals, name, getattr(totals, name) + getattr(meter, name))


async def chat_stream(
    request: ChatRequest,
    *,
    policy: RetryPolicy | None = None,
    tool_runner: ToolRunner | None = None,
    task_type: str = TaskType.CHAT,
) -> AsyncIterator[GatewayEvent]:
    """Stream one chat answer: TextDelta…, maybe Reset / HistorySummarised, then exactly one Finished.

    With `request.tools` and a `tool_runner`, the answer may take several rounds (apps.llm.tools): each
    round is streamed with the same retries and fallback, and between rounds the called tools run,
    announced by ToolStarted / ConfirmationRequested / ToolFinished.

    `task_type` names what the call is for in the call log (an agent's draft is not a customer's answer).

    Never raises for upstream trouble: a broken answer ends "incomplete" (the partial text), no answer
    at all ends "degraded" (an apology in the user's language, error_code "upstream_unavailable").
    """
    started = time.monotonic()
    deadline = started + settings.LLM_TOTAL_TIMEOUT_SECONDS
    budget_end = min(deadline, started + settings.LLM_RETRY_BUDGET_SECONDS)
    policy = policy or RetryPolicy.from_settings()
    prompt = request.prompt

    route_kwargs = {
        "task_type": task_type,
        "plan_tier": request.plan_tier,
        "prompt_tokens": estimate_tokens(chat_params(request, "")),
        "override": request.model_override,
        "prompt_tier": prompt.model_tier,
    }
    decision, rules_refresh_due = await _route_chat(route_kwargs)
    request, folded = await shrink_to_fit(request, decision.model, force=False)
    if folded:
        yield HistorySummarised(summary=request.summary, turns_covered=folded)

    meta = CallMeta(task_type, prompt, request.conversation_id, request.reply, decision.reason)
    shown = ""  # what the client currently displays
    earlier = ""  # the text of finished rounds: shown again when a later round restarts
    loop = ToolLoop(request.tools, tool_runner, max_rounds=settings.LLM_TOOL_MAX_ROUNDS)
    totals = Meter(started=started)  # token counts summed over the rounds
    first_text_ms: int | None = None  # time to first visible text, retries included (what the user felt)
    final_model = decision.model
    overflow_handled = False
    chain = list(decision.chain)
    step = 0
    granted = False  # the breaker already let this question through (it may hold the probe)
    while step < len(chain):
        model = chain[step]
        attempt = 0
        advance = True
        while granted or await breaker.allow_async(model):
            granted = False
            if time.monotonic() >= deadline:
                break
            attempt += 1
            meter = Meter(started=time.monotonic())
            body = chat_body(request, model, loop.messages, loop.tool_choice)
            reset_pending = len(shown) > len(earlier)
            error: BaseException | None = None
            try:
                # Closed here, not by the garbage collector: an answer abandoned mid-stream (the
                # caller's aclose) must close the SDK stream on this loop, in this task.
                async with contextlib.aclosing(stream_once(body, meter, deadline)) as texts:
                    async for text in texts:
                        if reset_pending:
                            # Never splice two answers: the client drops the partial one first.
                            for event in _restart(model, earlier):
                                yield event
                            shown, reset_pending = earlier, False
                        if first_text_ms is None:
                            first_text_ms = int((time.monotonic() - started) * 1000)
                        shown += text
                        yield TextDelta(text=text)
                        if rules_refresh_due:  # the answer has started: the refresh competes with nothing urgent
                            _refresh_routing_rules()
                            rules_refresh_due = False
            except (
                anthropic.APIError,
                httpx2.HTTPError,
                FirstTokenTimeout,
                TimeoutError,
                StreamCut,
                ValueError,
            ) as exc:
                error = exc
            except (GeneratorExit, asyncio.CancelledError) as exc:
                # The caller went away mid-answer (the user closed the tab): the tokens were still
                # billed, so the attempt is logged before the cancellation goes on.
                await record_abandoned(meta, model=model, attempt=attempt, fallback_step=step, meter=meter, error=exc)
                raise
            await record_attempt(meta, model=model, attempt=attempt, fallback_step=step, meter=meter, error=error)
            if error is None:
                await breaker.record_success_async(model)
                if reset_pending:  # the retry wrote no text: the interrupted attempt's must go all the same
                    for event in _restart(model, earlier):
                        yield event
                    shown = earlier
                _add_usage(totals, meter)
                if loop.wants_tools(meter):
                    async for event in loop.run(meter):
                        yield event
                    earlier, attempt = shown, 0  # the next round starts its own attempts
                    continue
                outcome = ChatOutcome(
                    status="complete",
                    text=shown,
                    model=model,
                    prompt_version=prompt.version,
                    stop_reason=meter.stop_reason,
                    refused=meter.stop_reason == "refusal",
                    ttft_ms=first_text_ms,
                    latency_ms=int((time.monotonic() - started) * 1000),
                    input_tokens=totals.input_tokens,
                    output_tokens=totals.output_tokens,
                    cache_creation_input_tokens=totals.cache_creation_input_tokens,
                    cache_read_input_tokens=totals.cache_read_input_tokens,
                    rounds=loop.round,
                    citations=tuple(meter.citations),
                )
                yield Finished(outcome=outcome)
                return
            final_model = model
            logger.warning("chat attempt failed: model=%s attempt=%d error=%s", model, attempt, error_type(error))
            if counts_against_breaker(error):
                await breaker_call(breaker.record_failure, model)
            else:
                await breaker_call(breaker.record_inconclusive, model)
            if is_prompt_too_long(error) and not overflow_handled and request.history:
                # Our estimate was off: fold history the same way as before sending, then start over.
                overflow_handled = True
                request, folded = await shrink_to_fit(request, model, force=True)
                # Counted from the previous event's state: callers add turns_covered to their counter.
                yield HistorySummarised(summary=request.summary, turns_covered=folded)
                attempt -= 1
                continue
            if status_of(error) in (400, 401, 403) or isinstance(error, TimeoutError):
                # A rejected request fails on every model, and a spent total budget leaves no time.
                advance = False
                break
            if not policy.should_retry(error, attempt):
                break
            wait = policy.delay(error, attempt)
            if time.monotonic() + wait >= deadline:
                break  # waiting would use up the budget: try the next model now
            await policy.async_sleep(wait)
        if not advance:
            break
        step += 1
        if step == len(chain) and not shown and time.monotonic() < budget_end:
            # Every model failed or is skipped: wait for a breaker's verdict instead of failing at once.
            yield Retrying(budget_seconds=round(budget_end - time.monotonic(), 1))
            ready = await _await_a_model(chain, budget_end)
            if ready is not None:
                step, granted = ready, True

    if rules_refresh_due:  # no text was shown: the rules may be what needs to change
        _refresh_routing_rules()
    if shown:
        outcome = ChatOutcome(
            status="incomplete",
            text=shown,
            model=final_model,
            prompt_version=prompt.version,
            error_code="upstream_interrupted",
            ttft_ms=first_text_ms,
            latency_ms=int((time.monotonic() - started) * 1000),
        )
    else:
        outcome = ChatOutcome(
            status="degraded",
            text=apology(request.language),
            model=final_model,
            prompt_version=prompt.version,
            error_code="upstream_unavailable",
            latency_ms=int((time.monotonic() - started) * 1000),
        )
    yield Finished(outcome=outcome)


async def _await_a_model(chain: list[str], until: float) -> int | None:
    """The index of the first model of `chain` the breaker lets through, polled until `until`; None then.

    A half-open breaker lets exactly one caller through (across processes): that question makes the
    probe, the others keep waiting for its verdict, so an outage costs one attempt per probe interval.
    """
    while (left := until - time.monotonic()) > 0:
        await asyncio.sleep(min(settings.LLM_BREAKER_POLL_SECONDS, left))
        for index, model in enumerate(chain):
            if await breaker.allow_async(model):
                return index
    return None


# Re-exported for callers that only import the gateway.
__all__ = [
    "UpstreamUnavailable",
    "acount_request_tokens",
    "apology",
    "chat_stream",
    "complete_json",
    "count_request_tokens",
    "estimate_tokens",
    "parse_json_reply",
    "preview_request",
    "summarise_history",
]
