"""Per-prompt-version metrics: reliability, cost, caching, latency and quality, and A-vs-B significance.

Sources (all read-only):
- `llm.LLMCall` — one row per upstream attempt, labelled with prompt slug and version: calls, errors,
  fallbacks, refusals, tokens, cost, latency, time to first token.
- `chat.Feedback` — thumbs up/down on assistant messages, attributed to the message's
  `prompt_version` label within conversations assigned a version of this prompt.
- `triage.TranscriptClassification` — the nightly classifier's `resolved` label per conversation,
  attributed to the conversation's (sticky) prompt version; for the classifier's own versions,
  its agreement with the users' thumbs.

Models of other apps are looked up with `apps.get_model` so insights keeps working (with empty
figures) if one of them is absent. Percentiles are computed in Python over the newest
`PERCENTILE_SAMPLE_LIMIT` rows of the window, which is exact below that many calls per version
and portable across SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.apps import apps
from django.db.models import Avg, Count, Q, Sum
from django.db.models.functions import TruncDate

from apps.prompts.models import TRANSCRIPT_CLASSIFIER, Prompt, PromptVersion

PERCENTILE_SAMPLE_LIMIT = 20_000
SIGNIFICANCE_LEVEL = 0.05


def _model(app_label: str, name: str):
    try:
        return apps.get_model(app_label, name)
    except LookupError:
        return None


@dataclass(frozen=True)
class Rate:
    """A proportion with its counts (the z-test needs the counts, not just the ratio)."""

    hits: int = 0
    total: int = 0

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None


@dataclass(frozen=True)
class VersionMetrics:
    """Everything the metrics page shows for one version of one prompt in one time window."""

    version_id: int | None
    version: str
    status: str
    weight: int
    calls: int = 0  # upstream attempts (LLMCall rows), retries and fallbacks included
    conversations: int = 0  # distinct conversation ids among the calls
    errors: Rate = field(default_factory=Rate)  # status == "error" / calls
    fallbacks: Rate = field(default_factory=Rate)  # fallback_step > 0 / calls
    refusals: Rate = field(default_factory=Rate)  # refused / calls
    output_tokens_avg: float | None = None  # over successful calls
    output_tokens_p95: int | None = None
    latency_p50_ms: int | None = None  # over successful calls
    latency_p95_ms: int | None = None
    ttft_p50_ms: int | None = None  # over calls that streamed a first token
    ttft_p95_ms: int | None = None
    cost_usd: Decimal = Decimal(0)
    cost_per_call: Decimal | None = None
    cost_per_conversation: Decimal | None = None  # cost of conversation calls / conversations
    input_tokens: int = 0  # uncached + cache write + cache read
    cache_read_tokens: int = 0
    cache_hit_rate: float | None = None  # cache-read share of all input tokens (a token share, not a Rate)
    thumbs_up: Rate = field(default_factory=Rate)  # "up" / all feedback
    resolved: Rate = field(default_factory=Rate)  # classifier says resolved / classified conversations
    accuracy: Rate = field(default_factory=Rate)  # classifier versions: resolved label agrees with thumbs
    # Outcomes of the version's conversations (apps.chat.outcomes), over conversations no longer pending.
    outcome_resolved: Rate = field(default_factory=Rate)  # thumbs up, or 24 h quiet, not reopened/handed off
    handoffs: Rate = field(default_factory=Rate)
    reopens: Rate = field(default_factory=Rate)
    cost_per_resolved: Decimal | None = None  # call-log cost of its conversations / resolved conversations
    cx_score: float | None = None  # mean nightly CX score (1–5) of its classified conversations
    cx_scored: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.errors.value

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks.value

    @property
    def refusal_rate(self) -> float | None:
        return self.refusals.value

    @property
    def thumbs_up_rate(self) -> float | None:
        return self.thumbs_up.value


def percentile(values: Sequence[int | float], pct: float) -> int | float | None:
    """Nearest-rank percentile: the smallest value with at least `pct` % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _bounded(queryset, field_name: str) -> list:
    return list(queryset.order_by("-created_at").values_list(field_name, flat=True)[:PERCENTILE_SAMPLE_LIMIT])


def _call_figures(slug: str, since: datetime, until: datetime) -> dict[str, dict]:
    """version label → call-log figures."""
    llm_call = _model("llm", "LLMCall")
    if llm_call is None:
        return {}
    # Evaluation runs answer with drafts and live versions offline: they are not live traffic.
    calls = llm_call.objects.filter(prompt_slug=slug, created_at__gte=since, created_at__lt=until).exclude(
        task_type__in=("evaluation", "grading")
    )
    rows = calls.values("prompt_version").annotate(
        calls=Count("id"),
        conversations=Count("conversation_id", distinct=True, filter=~Q(conversation_id="")),
        errors=Count("id", filter=llm_call.failed()),
        fallbacks=Count("id", filter=Q(fallback_step__gt=0)),
        refusals=Count("id", filter=Q(refused=True)),
        cost=Sum("cost_usd"),
        conversation_cost=Sum("cost_usd", filter=~Q(conversation_id="")),
        fresh=Sum("input_tokens"),
        written=Sum("cache_creation_input_tokens"),
        read=Sum("cache_read_input_tokens"),
    )
    figures: dict[str, dict] = {}
    for row in rows:
        label = row["prompt_version"]
        mine = calls.filter(prompt_version=label)
        ok = mine.filter(status="ok")
        output_tokens = _bounded(ok, "output_tokens")
        latencies = _bounded(ok, "latency_ms")
        ttfts = _bounded(mine.filter(ttft_ms__isnull=False), "ttft_ms")
        cost = Decimal(row["cost"] or 0)
        n, conversations = row["calls"], row["conversations"]
        input_tokens = (row["fresh"] or 0) + (row["written"] or 0) + (row["read"] or 0)
        figures[label] = {
            "calls": n,
            "conversations": conversations,
            "errors": Rate(row["errors"], n),
            "fallbacks": Rate(row["fallbacks"], n),
            "refusals": Rate(row["refusals"], n),
            "output_tokens_avg": sum(output_tokens) / len(output_tokens) if output_tokens else None,
            "output_tokens_p95": percentile(output_tokens, 95),
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
            "ttft_p50_ms": percentile(ttfts, 50),
            "ttft_p95_ms": percentile(ttfts, 95),
            "cost_usd": cost,
            "cost_per_call": cost / n if n else None,
            "cost_per_conversation": Decimal(row["conversation_cost"] or 0) / conversations if conversations else None,
            "input_tokens": input_tokens,
            "cache_read_tokens": row["read"] or 0,
            "cache_hit_rate": (row["read"] or 0) / input_tokens if input_tokens else None,
        }
    return figures


def _thumbs(slug: str, since: datetime, until: datetime) -> dict[str, Rate]:
    """version label → thumbs-up rate, from feedback on messages answered in the window."""
    feedback = _model("chat", "Feedback")
    if feedback is None:
        return {}
    rows = (
        feedback.objects.filter(
            message__conversation__prompt_version__prompt__slug=slug,
            message__created_at__gte=since,
            message__created_at__lt=until,
        )
        .values("message__prompt_version")
        .annotate(total=Count("id"), up=Count("id", filter=Q(rating="up")))
    )
    return {row["message__prompt_version"]: Rate(row["up"], row["total"]) for row in rows}


def _resolved(slug: str, since: datetime, until: datetime) -> dict[int, Rate]:
    """version id → share of classified conversations (started in the window) the classifier marked resolved."""
    classification = _model("triage", "TranscriptClassification")
    if classification is None:
        return {}
    rows = (
        classification.objects.filter(
            status="classified",
            resolved__isnull=False,
            conversation__prompt_version__prompt__slug=slug,
            conversation__created_at__gte=since,
            conversation__created_at__lt=until,
        )
        .values("conversation__prompt_version_id")
        .annotate(total=Count("id"), resolved_count=Count("id", filter=Q(resolved=True)))
    )
    return {row["conversation__prompt_version_id"]: Rate(row["resolved_count"], row["total"]) for row in rows}


def _cx_scores(slug: str, since: datetime, until: datetime) -> dict[int, tuple[float, int]]:
    """version id → (mean CX score, conversations scored) of the classified conversations started in the window."""
    classification = _model("triage", "TranscriptClassification")
    if classification is None or "cx_score" not in {f.name for f in classification._meta.get_fields()}:
        return {}
    rows = (
        classification.objects.filter(
            status="classified",
            cx_score__isnull=False,
            conversation__prompt_version__prompt__slug=slug,
            conversation__created_at__gte=since,
            conversation__created_at__lt=until,
        )
        .values("conversation__prompt_version_id")
        .annotate(mean=Avg("cx_score"), scored=Count("id"))
        .order_by()
    )
    return {row["conversation__prompt_version_id"]: (round(float(row["mean"]), 2), row["scored"]) for row in rows}


def _classifier_accuracy(slug: str, since: datetime, until: datetime, labels: dict[int, str]) -> dict[str, Rate]:
    """Classifier version label → agreement of its `resolved` label with the user's last thumb.

    Ground truth exists only for conversations with feedback: the last rating in the conversation,
    "up" meaning resolved. A classification is attributed by its `prompt_version_id` when triage
    records one (`labels` maps this prompt's version ids to labels); the bare `prompt_version` label
    is used only for the classifier prompt, since labels alone do not name a prompt.
    """
    classification = _model("triage", "TranscriptClassification")
    feedback = _model("chat", "Feedback")
    if classification is None or feedback is None:
        return {}
    field_names = {f.name for f in classification._meta.get_fields()}
    id_field = "prompt_version_id" if "prompt_version_id" in field_names else "prompt_version"
    rows = classification.objects.filter(
        status="classified", resolved__isnull=False, for_date__gte=since.date(), for_date__lte=until.date()
    ).values_list("conversation_id", "prompt_version", id_field, "resolved")[:PERCENTILE_SAMPLE_LIMIT]
    labelled = []
    for conversation_id, label, version_id, resolved in rows:
        if id_field == "prompt_version_id" and version_id is not None:
            label = labels.get(version_id)
        elif slug != TRANSCRIPT_CLASSIFIER:
            label = None
        if label:
            labelled.append((conversation_id, label, resolved))
    if not labelled:
        return {}
    last_rating: dict = {}
    ratings = (
        feedback.objects.filter(message__conversation_id__in={c for c, _, _ in labelled})
        .order_by("created_at", "id")
        .values_list("message__conversation_id", "rating")
    )
    for conversation_id, rating in ratings:
        last_rating[conversation_id] = rating  # ordered oldest first: the last one wins
    hits: dict[str, int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    for conversation_id, label, resolved in labelled:
        if conversation_id not in last_rating:
            continue
        totals[label] += 1
        hits[label] += int(resolved == (last_rating[conversation_id] == "up"))
    return {label: Rate(hits[label], totals[label]) for label in totals}


def version_metrics(*, slug: str, since: datetime, until: datetime) -> list[VersionMetrics]:
    """One `VersionMetrics` per version of `slug` that was active or had any data in [since, until).

    Newest version first. Unknown slugs give an empty list.
    """
    prompt = Prompt.objects.filter(slug=slug).first()
    if prompt is None:
        return []
    versions = list(PromptVersion.objects.filter(prompt=prompt).order_by("-major", "-minor", "-patch"))
    calls = _call_figures(slug, since, until)
    thumbs = _thumbs(slug, since, until)
    resolved = _resolved(slug, since, until)
    accuracy = _classifier_accuracy(slug, since, until, {v.pk: v.version for v in versions})
    outcomes = _outcomes(since, until)
    cx = _cx_scores(slug, since, until)
    result = []
    for version in versions:
        label = version.version
        has_data = label in calls or label in thumbs or version.pk in resolved or label in accuracy
        if not has_data and version.status != PromptVersion.Status.ACTIVE:
            continue
        result.append(
            VersionMetrics(
                version_id=version.pk,
                version=label,
                status=version.status,
                weight=version.weight,
                thumbs_up=thumbs.get(label, Rate()),
                resolved=resolved.get(version.pk, Rate()),
                accuracy=accuracy.get(label, Rate()),
                **_outcome_fields(outcomes.get(version.pk)),
                cx_score=cx[version.pk][0] if version.pk in cx else None,
                cx_scored=cx[version.pk][1] if version.pk in cx else 0,
                **calls.get(label, {}),
            )
        )
    return result


def _outcomes(since: datetime, until: datetime) -> dict:
    from django.utils import timezone

    from apps.chat.outcomes import version_outcomes

    return version_outcomes(since=since, until=until, now=timezone.now())


def _outcome_fields(figures) -> dict:
    if figures is None:
        return {}
    return {
        "outcome_resolved": Rate(figures.resolved, figures.decided),
        "handoffs": Rate(figures.handed_off, figures.decided),
        "reopens": Rate(figures.reopened, figures.decided),
        "cost_per_resolved": figures.cost_per_resolved,
    }


def daily_calls(*, slug: str, since: datetime, until: datetime) -> dict[str, dict[date, tuple[int, int]]]:
    """version label → day → (calls, errors), for the line chart."""
    llm_call = _model("llm", "LLMCall")
    if llm_call is None:
        return {}
    rows = (
        llm_call.objects.filter(prompt_slug=slug, created_at__gte=since, created_at__lt=until)
        .annotate(day=TruncDate("created_at"))
        .values("prompt_version", "day")
        .annotate(calls=Count("id"), errors=Count("id", filter=llm_call.failed()))
        .order_by("day")
    )
    series: dict[str, dict[date, tuple[int, int]]] = defaultdict(dict)
    for row in rows:
        series[row["prompt_version"]][row["day"]] = (row["calls"], row["errors"])
    return dict(series)


# --- A vs B ------------------------------------------------------------------------------------------


def two_proportion_z_test(hits_a: int, total_a: int, hits_b: int, total_b: int) -> tuple[float, float] | None:
    """(z, two-sided p-value) of the pooled two-proportion z-test; None when it is undefined.

    Undefined when either sample is empty or the pooled proportion is 0 or 1 (no variance: both
    versions never / always had the event, so there is nothing to tell apart yet).
    """
    if total_a == 0 or total_b == 0:
        return None
    pooled = (hits_a + hits_b) / (total_a + total_b)
    variance = pooled * (1 - pooled) * (1 / total_a + 1 / total_b)
    if variance <= 0:
        return None
    z = (hits_a / total_a - hits_b / total_b) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


# Rates compared between versions, with whether a higher value is better.
COMPARED_RATES: tuple[tuple[str, str, bool], ...] = (
    ("errors", "error rate", False),
    ("fallbacks", "fallback rate", False),
    ("refusals", "refusal rate", False),
    ("thumbs_up", "thumbs-up rate", True),
    ("resolved", "resolved (classifier)", True),
    ("accuracy", "classifier accuracy vs thumbs", True),
)


@dataclass(frozen=True)
class RateComparison:
    name: str
    label: str
    a: Rate
    b: Rate
    higher_is_better: bool
    z: float | None
    p_value: float | None

    @property
    def difference(self) -> float | None:
        if self.a.value is None or self.b.value is None:
            return None
        return self.b.value - self.a.value

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < SIGNIFICANCE_LEVEL

    @property
    def verdict(self) -> str:
        if self.p_value is None:
            return "no data to compare yet"
        if self.significant:
            return "significant at 95 %"
        return "not significant — keep collecting"


def compare_versions(a: VersionMetrics, b: VersionMetrics) -> list[RateComparison]:
    """A two-proportion z-test per rate between two versions (B − A in `difference`).

    The cache hit rate is a share of tokens, not of independent calls, so it is not tested.
    """
    comparisons = []
    for name, label, higher_is_better in COMPARED_RATES:
        rate_a, rate_b = getattr(a, name), getattr(b, name)
        test = two_proportion_z_test(rate_a.hits, rate_a.total, rate_b.hits, rate_b.total)
        comparisons.append(
            RateComparison(
                name=name,
                label=label,
                a=rate_a,
                b=rate_b,
                higher_is_better=higher_is_better,
                z=test[0] if test else None,
                p_value=test[1] if test else None,
            )
        )
    return comparisons


CSV_COLUMNS: tuple[str, ...] = (
    "version",
    "status",
    "weight",
    "calls",
    "conversations",
    "error_rate",
    "fallback_rate",
    "refusal_rate",
    "output_tokens_avg",
    "output_tokens_p95",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "cost_usd",
    "cost_per_call",
    "cost_per_conversation",
    "cache_hit_rate",
    "thumbs_up_rate",
    "feedback_count",
    "resolved_rate",
    "classified_conversations",
    "accuracy",
    "accuracy_samples",
    "resolution_rate",
    "handoff_rate",
    "reopen_rate",
    "decided_conversations",
    "cost_per_resolved",
    "cx_score",
    "cx_scored",
)


def csv_row(metrics: VersionMetrics) -> list[str]:
    """The CSV export's row for one version (empty cells where there is no data)."""

    def fmt(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.6f}"
        if isinstance(value, Decimal):  # USD to 8 places, without trailing zeros or exponents
            return format(value.quantize(Decimal("0.00000001")).normalize(), "f")
        return str(value)

    values = {
        "version": metrics.version,
        "status": metrics.status,
        "weight": metrics.weight,
        "calls": metrics.calls,
        "conversations": metrics.conversations,
        "error_rate": metrics.error_rate,
        "fallback_rate": metrics.fallback_rate,
        "refusal_rate": metrics.refusal_rate,
        "output_tokens_avg": metrics.output_tokens_avg,
        "output_tokens_p95": metrics.output_tokens_p95,
        "latency_p50_ms": metrics.latency_p50_ms,
        "latency_p95_ms": metrics.latency_p95_ms,
        "ttft_p50_ms": metrics.ttft_p50_ms,
        "ttft_p95_ms": metrics.ttft_p95_ms,
        "cost_usd": metrics.cost_usd,
        "cost_per_call": metrics.cost_per_call,
        "cost_per_conversation": metrics.cost_per_conversation,
        "cache_hit_rate": metrics.cache_hit_rate,
        "thumbs_up_rate": metrics.thumbs_up.value,
        "feedback_count": metrics.thumbs_up.total,
        "resolved_rate": metrics.resolved.value,
        "classified_conversations": metrics.resolved.total,
        "accuracy": metrics.accuracy.value,
        "accuracy_samples": metrics.accuracy.total,
        "resolution_rate": metrics.outcome_resolved.value,
        "handoff_rate": metrics.handoffs.value,
        "reopen_rate": metrics.reopens.value,
        "decided_conversations": metrics.outcome_resolved.total,
        "cost_per_resolved": metrics.cost_per_resolved,
        "cx_score": metrics.cx_score,
        "cx_scored": metrics.cx_scored,
    }
    return [fmt(values[column]) for column in CSV_COLUMNS]


__all__ = [
    "CSV_COLUMNS",
    "Rate",
    "RateComparison",
    "VersionMetrics",
    "compare_versions",
    "csv_row",
    "daily_calls",
    "percentile",
    "two_proportion_z_test",
    "version_metrics",
]
