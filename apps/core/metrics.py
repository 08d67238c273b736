"""Prometheus metrics, exposed at /metrics.

Counters are per process (one uvicorn worker per container is the supported layout); values that
must agree across processes — circuit state, batch backlog — are read at scrape time from the shared
cache and the database instead of being counted here.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter("supportbot_http_requests", "HTTP requests served.", ["method", "status"], registry=REGISTRY)
WEBSOCKET_CONNECTIONS = Gauge("supportbot_websocket_connections", "Open chat websocket connections.", registry=REGISTRY)
CHAT_MESSAGES = Counter("supportbot_chat_messages", "Chat answers by outcome.", ["outcome"], registry=REGISTRY)
UPSTREAM_CALLS = Counter(
    "supportbot_upstream_calls", "Upstream (Claude) attempts.", ["model", "status"], registry=REGISTRY
)
UPSTREAM_TOKENS = Counter(
    "supportbot_upstream_tokens",
    "Tokens by kind (input, output, cache_creation, cache_read).",
    ["model", "kind"],
    registry=REGISTRY,
)
UPSTREAM_COST_USD = Counter("supportbot_upstream_cost_usd", "Spend in USD.", ["model"], registry=REGISTRY)
UPSTREAM_RETRIES = Counter("supportbot_upstream_retries", "Retried attempts.", ["model"], registry=REGISTRY)
UPSTREAM_FALLBACKS = Counter(
    "supportbot_upstream_fallbacks", "Answers served by a fallback model.", ["model"], registry=REGISTRY
)


def record_upstream_call(
    *,
    model: str,
    status: str,
    attempt: int,
    fallback_step: int,
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: int,
    cache_read_input_tokens: int,
    cost_usd: float,
) -> None:
    """Count one upstream attempt; called from the one place that logs LLM calls."""
    UPSTREAM_CALLS.labels(model, status).inc()
    for kind, value in (
        ("input", input_tokens),
        ("output", output_tokens),
        ("cache_creation", cache_creation_input_tokens),
        ("cache_read", cache_read_input_tokens),
    ):
        if value:
            UPSTREAM_TOKENS.labels(model, kind).inc(value)
    if cost_usd:
        UPSTREAM_COST_USD.labels(model).inc(cost_usd)
    if attempt > 1:
        UPSTREAM_RETRIES.labels(model).inc()
    if fallback_step > 0 and status == "ok":
        UPSTREAM_FALLBACKS.labels(model).inc()


class SharedStateCollector(Collector):
    """Circuit-breaker state per model and the batch backlog, read fresh at every scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.conf import settings

        circuit = GaugeMetricFamily(
            "supportbot_circuit_open", "1 when the model's circuit breaker is open.", labels=["model"]
        )
        try:
            from apps.llm import breaker

            for model in sorted(set(settings.LLM_MODELS.values())):
                circuit.add_metric([model], 1.0 if breaker.is_open(model) else 0.0)
        except (ImportError, AttributeError):
            pass
        yield circuit

        backlog = GaugeMetricFamily("supportbot_batch_backlog", "Transcripts waiting for classification.")
        try:
            from apps.triage.selectors import classification_backlog_count

            backlog.add_metric([], float(classification_backlog_count()))
        except (ImportError, AttributeError):
            pass
        yield backlog


REGISTRY.register(SharedStateCollector())


def render_latest() -> bytes:
    return generate_latest(REGISTRY)
