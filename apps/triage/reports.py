"""The daily report: figures from the day's classifications and LLM calls, stored, written to files, emailed."""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Avg, Count, Q, Sum
from django.template.loader import render_to_string
from django.utils import timezone

from apps.triage.models import DailyReport, TranscriptClassification
from apps.triage.selectors import day_bounds, knowledge_gap_groups

logger = logging.getLogger(__name__)

CATEGORIES = [choice.value for choice in TranscriptClassification.Category]
SENTIMENTS = ["positive", "neutral", "negative"]
TOP_UNRESOLVED = 5
EXAMPLES_PER_TOPIC = 3
Status = TranscriptClassification.Status


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.000001")))


def report_data_build(*, for_date: date) -> dict[str, Any]:
    """The report's figures (JSON-ready). Money is a string of USD to 6 decimals; rates are 0..1 or None.

    Classification figures cover the day's conversations; costs cover the chat calls made that day plus the
    batch calls that classified that day's conversations and drafted its knowledge-gap articles (made the
    following night), at batch prices.
    """
    classifications = TranscriptClassification.objects.filter(for_date=for_date)
    by_status = dict(classifications.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    classified = classifications.filter(status=Status.CLASSIFIED)
    n_classified = by_status.get(Status.CLASSIFIED, 0)
    categories = dict(classified.values_list("category").annotate(n=Count("id")).values_list("category", "n"))
    sentiments = dict(classified.values_list("sentiment").annotate(n=Count("id")).values_list("sentiment", "n"))
    languages = Counter(dict(classified.values_list("language").annotate(n=Count("id")).values_list("language", "n")))
    resolved = classified.filter(resolved=True).count()
    escalations = classified.filter(escalation_needed=True).count()
    return {
        "date": for_date.isoformat(),
        "volumes": {
            "conversations": sum(by_status.values()),
            "classified": n_classified,
            "unclassifiable": by_status.get(Status.UNCLASSIFIABLE, 0),
            "pending": by_status.get(Status.PENDING, 0) + by_status.get(Status.SUBMITTED, 0),
        },
        "categories": [
            {"category": name, "count": categories.get(name, 0), "share": _rate(categories.get(name, 0), n_classified)}
            for name in CATEGORIES
        ],
        "resolution": {
            "resolved": resolved,
            "unresolved": n_classified - resolved,
            "rate": _rate(resolved, n_classified),
        },
        "escalations": {"count": escalations, "rate": _rate(escalations, n_classified)},
        "sentiment": [
            {"sentiment": name, "count": sentiments.get(name, 0), "share": _rate(sentiments.get(name, 0), n_classified)}
            for name in SENTIMENTS
        ],
        "languages": [{"language": code, "count": n} for code, n in languages.most_common()],
        "top_unresolved": _top_unresolved(classified),
        "classifier_versions": _classifier_versions(classifications),
        "knowledge_gaps": _knowledge_gaps(classified, for_date=for_date),
        "cx_score": _cx_score(classified),
        "outcomes": _outcomes(for_date=for_date, classified=classified),
        **_costs(for_date=for_date),
    }


def _knowledge_gaps(classified, *, for_date: date) -> dict[str, Any]:
    """Questions the help centre did not answer, grouped by the classifier's topic (largest group first)."""
    asked = classified.exclude(knowledge_gap=None).count()
    count = classified.filter(knowledge_gap=True).count()
    return {
        "count": count,
        "assessed": asked,
        "rate": _rate(count, asked),
        "groups": knowledge_gap_groups(for_date=for_date, examples=EXAMPLES_PER_TOPIC),
    }


def _cx_score(classified) -> dict[str, Any]:
    """The day's customer-experience scores (1–5): how many were scored, their mean and distribution."""
    scored = classified.exclude(cx_score=None)
    counts = dict(scored.values_list("cx_score").annotate(n=Count("id")).values_list("cx_score", "n"))
    total = sum(counts.values())
    mean = sum(score * n for score, n in counts.items()) / total if total else None
    return {
        "scored": total,
        "average": None if mean is None else round(mean, 2),
        "distribution": [{"score": score, "count": counts.get(score, 0)} for score in range(1, 6)],
    }


def _outcomes(*, for_date: date, classified) -> list[dict[str, Any]]:
    """Per prompt version, the conversations started on the day: resolution, handoff and reopen rates (as
    apps.chat.outcomes defines them, judged now), cost per resolved conversation from the call log, and
    the mean CX score of the day's classified conversations of that version.

    A conversation whose last answer is younger than 24 h is still pending and counts in no rate: a report
    regenerated later can move it to resolved or reopened.
    """
    from apps.chat.outcomes import version_outcomes
    from apps.prompts.models import PromptVersion

    start, end = day_bounds(for_date)
    figures = version_outcomes(since=start, until=end, now=timezone.now())
    cx = dict(
        classified.exclude(cx_score=None)
        .exclude(conversation__prompt_version=None)
        .values_list("conversation__prompt_version")
        .annotate(mean=Avg("cx_score"))
        .values_list("conversation__prompt_version", "mean")
    )
    versions = {
        version.pk: version
        for version in PromptVersion.objects.filter(pk__in=set(figures) | set(cx)).select_related("prompt")
    }
    rows = []
    for version_id in sorted(versions, key=lambda pk: (versions[pk].prompt.slug, versions[pk].semver)):
        version = versions[version_id]
        outcome = figures.get(version_id)
        per_resolution = outcome.cost_per_resolved if outcome is not None else None
        rows.append(
            {
                "slug": version.prompt.slug,
                "version": version.version,
                "conversations": outcome.conversations if outcome else 0,
                "resolved": outcome.resolved if outcome else 0,
                "handed_off": outcome.handed_off if outcome else 0,
                "reopened": outcome.reopened if outcome else 0,
                "pending": outcome.pending if outcome else 0,
                "resolution_rate": _rate(outcome.resolved, outcome.decided) if outcome else None,
                "handoff_rate": _rate(outcome.handed_off, outcome.decided) if outcome else None,
                "reopen_rate": _rate(outcome.reopened, outcome.decided) if outcome else None,
                "cost_usd": _money(outcome.cost_usd) if outcome else _money(Decimal(0)),
                "cost_per_resolution_usd": None if per_resolution is None else _money(per_resolution),
                "cx_average": None if version_id not in cx else round(float(cx[version_id]), 2),
            }
        )
    return rows


def _top_unresolved(classified) -> list[dict[str, Any]]:
    """Unresolved conversations grouped by category (largest first), with the most recent examples."""
    unresolved = classified.filter(resolved=False)
    groups = unresolved.values("category").annotate(
        n=Count("id"), escalated=Count("id", filter=Q(escalation_needed=True))
    )
    topics = []
    for group in sorted(groups, key=lambda g: (-g["n"], g["category"]))[:TOP_UNRESOLVED]:
        examples = unresolved.filter(category=group["category"]).order_by("-conversation__updated_at", "-id")
        topics.append(
            {
                "category": group["category"],
                "count": group["n"],
                "escalated": group["escalated"],
                "examples": [
                    {"conversation_id": str(conversation_id), "summary": summary}
                    for conversation_id, summary in examples.values_list("conversation_id", "summary")[
                        :EXAMPLES_PER_TOPIC
                    ]
                ],
            }
        )
    return topics


def _classifier_versions(classifications) -> list[dict[str, Any]]:
    rows = (
        classifications.exclude(prompt_version="")
        .values("prompt_version")
        .annotate(
            total=Count("id"),
            classified=Count("id", filter=Q(status=Status.CLASSIFIED)),
            unclassifiable=Count("id", filter=Q(status=Status.UNCLASSIFIABLE)),
            resolved=Count("id", filter=Q(status=Status.CLASSIFIED, resolved=True)),
        )
        .order_by("prompt_version")
    )
    return [
        {
            "version": row["prompt_version"],
            "conversations": row["total"],
            "classified": row["classified"],
            "unclassifiable": row["unclassifiable"],
            "resolution_rate": _rate(row["resolved"], row["classified"]),
        }
        for row in rows
    ]


def _costs(*, for_date: date) -> dict[str, Any]:
    """Cost and cache savings of the day, in total and per prompt version.

    Cache savings = what the cache-read tokens would have cost as plain input minus what they cost (0.1×),
    halved for batch calls like everything else there.
    """
    from apps.llm.models import LLMCall
    from apps.llm.pricing import BATCH_MULTIPLIER, CACHE_READ_MULTIPLIER, MILLION, prices_for

    start, end = day_bounds(for_date)
    chat_calls = Q(is_batch=False, created_at__gte=start, created_at__lt=end)
    # The nightly batches of the day: its classification and the drafting of its knowledge-gap articles.
    batch_calls = Q(is_batch=True, triage_items__batch__for_date=for_date)
    rows = (
        LLMCall.objects.filter(chat_calls | batch_calls)
        .values("prompt_slug", "prompt_version", "model", "is_batch")
        .annotate(
            calls=Count("id", distinct=True),
            cost=Sum("cost_usd"),
            cache_read=Sum("cache_read_input_tokens"),
            cache_write=Sum("cache_creation_input_tokens"),
            uncached=Sum("input_tokens"),
        )
        .order_by()
    )
    per_version: dict[tuple[str, str], dict[str, Any]] = {}
    totals = {"chat": Decimal(0), "batch": Decimal(0), "savings": Decimal(0), "calls": 0}
    for row in rows:
        cost = row["cost"] or Decimal(0)
        prices = prices_for(row["model"])
        savings = Decimal(0)
        if prices is not None:
            savings = Decimal(row["cache_read"] or 0) * prices[0] * (1 - CACHE_READ_MULTIPLIER) / MILLION
            if row["is_batch"]:
                savings *= BATCH_MULTIPLIER
        totals["batch" if row["is_batch"] else "chat"] += cost
        totals["savings"] += savings
        totals["calls"] += row["calls"]
        key = (row["prompt_slug"], row["prompt_version"])
        entry = per_version.setdefault(
            key,
            {"calls": 0, "cost": Decimal(0), "savings": Decimal(0), "cache_read": 0, "cache_write": 0, "uncached": 0},
        )
        entry["calls"] += row["calls"]
        entry["cost"] += cost
        entry["savings"] += savings
        entry["cache_read"] += row["cache_read"] or 0
        entry["cache_write"] += row["cache_write"] or 0
        entry["uncached"] += row["uncached"] or 0
    return {
        "costs": {
            "calls": totals["calls"],
            "chat_usd": _money(totals["chat"]),
            "batch_usd": _money(totals["batch"]),
            "total_usd": _money(totals["chat"] + totals["batch"]),
            "cache_savings_usd": _money(totals["savings"]),
        },
        "prompt_versions": [
            {
                "slug": slug,
                "version": version,
                "calls": entry["calls"],
                "cost_usd": _money(entry["cost"]),
                "cache_savings_usd": _money(entry["savings"]),
                "cache_read_input_tokens": entry["cache_read"],
                "cache_creation_input_tokens": entry["cache_write"],
                "input_tokens": entry["uncached"],
            }
            for (slug, version), entry in sorted(per_version.items())
        ],
    }


# --- presentation ---------------------------------------------------------------------------------------------


def _bars(rows: list[dict[str, Any]], label_key: str) -> list[dict[str, Any]]:
    """Rows for a horizontal bar chart: widths in percent of the largest value (server-side, no JS)."""
    top = max((row["count"] for row in rows), default=0)
    return [
        {"label": row[label_key], "count": row["count"], "width": round(100 * row["count"] / top, 1) if top else 0}
        for row in rows
    ]


def report_context(data: dict[str, Any]) -> dict[str, Any]:
    """Template context for the report body (admin change view, HTML file, email)."""
    resolution = data["resolution"]
    return {
        "data": data,
        "category_bars": _bars(data["categories"], "category"),
        "sentiment_bars": _bars(data["sentiment"], "sentiment"),
        "resolution_bars": _bars(
            [
                {"label": "resolved", "count": resolution["resolved"]},
                {"label": "unresolved", "count": resolution["unresolved"]},
            ],
            "label",
        ),
        "resolution_pct": None if resolution["rate"] is None else round(100 * resolution["rate"], 1),
        "escalation_pct": None if data["escalations"]["rate"] is None else round(100 * data["escalations"]["rate"], 1),
        "cx_bars": _bars(
            [
                {"label": str(row["score"]), "count": row["count"]}
                for row in data.get("cx_score", {}).get("distribution", [])
            ],
            "label",
        ),
    }


def report_html(data: dict[str, Any]) -> str:
    return render_to_string("triage/report.html", report_context(data))


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _SpreadsheetSafeWriter:
    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow(
            [f"'{cell}" if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS) else cell for cell in row]
        )


def report_csv(data: dict[str, Any]) -> str:
    """One `section,key,value` row per figure: easy to load into a spreadsheet. Text cells that a
    spreadsheet would run as a formula (a summary of what a customer wrote starting with `=`) are
    quoted with a leading apostrophe."""
    out = io.StringIO()
    writer = _SpreadsheetSafeWriter(csv.writer(out))
    writer.writerow(["section", "key", "value"])
    writer.writerow(["report", "date", data["date"]])
    # Keys sorted: PostgreSQL's jsonb does not keep a stored dict's key order, and the file written on the
    # night and the one downloaded later from the stored row must be the same bytes.
    for key, value in sorted(data["volumes"].items()):
        writer.writerow(["volumes", key, value])
    for row in data["categories"]:
        writer.writerow(["category", row["category"], row["count"]])
    writer.writerow(["resolution", "resolved", data["resolution"]["resolved"]])
    writer.writerow(["resolution", "unresolved", data["resolution"]["unresolved"]])
    writer.writerow(["resolution", "rate", data["resolution"]["rate"]])
    writer.writerow(["escalations", "count", data["escalations"]["count"]])
    writer.writerow(["escalations", "rate", data["escalations"]["rate"]])
    for row in data["sentiment"]:
        writer.writerow(["sentiment", row["sentiment"], row["count"]])
    for row in data["languages"]:
        writer.writerow(["language", row["language"], row["count"]])
    for topic in data["top_unresolved"]:
        writer.writerow(["unresolved", topic["category"], topic["count"]])
        for example in topic["examples"]:
            writer.writerow(["unresolved_example", example["conversation_id"], example["summary"]])
    for key, value in sorted(data["costs"].items()):
        writer.writerow(["costs", key, value])
    for row in data["prompt_versions"]:
        label = f"{row['slug'] or '-'}@{row['version'] or '-'}"
        writer.writerow(["prompt_version_cost_usd", label, row["cost_usd"]])
        writer.writerow(["prompt_version_cache_savings_usd", label, row["cache_savings_usd"]])
        writer.writerow(["prompt_version_calls", label, row["calls"]])
    for row in data["classifier_versions"]:
        writer.writerow(["classifier_version_classified", row["version"], row["classified"]])
        writer.writerow(["classifier_version_resolution_rate", row["version"], row["resolution_rate"]])
    # Sections added later are read with defaults: a report stored before they existed still downloads.
    cx = data.get("cx_score")
    if cx is not None:
        writer.writerow(["cx_score", "scored", cx["scored"]])
        writer.writerow(["cx_score", "average", cx["average"]])
        for row in cx["distribution"]:
            writer.writerow(["cx_score_count", row["score"], row["count"]])
    gaps = data.get("knowledge_gaps")
    if gaps is not None:
        writer.writerow(["knowledge_gaps", "count", gaps["count"]])
        writer.writerow(["knowledge_gaps", "rate", gaps["rate"]])
        for group in gaps["groups"]:
            writer.writerow(["knowledge_gap", group["topic"], group["count"]])
            if group.get("article_id"):
                writer.writerow(["knowledge_gap_article", group["topic"], group["article_id"]])
                writer.writerow(["knowledge_gap_article_status", group["topic"], group.get("article_status", "")])
            for example in group["examples"]:
                writer.writerow(["knowledge_gap_example", example["conversation_id"], example["summary"]])
    for row in data.get("outcomes", []):
        label = f"{row['slug']}@{row['version']}"
        for key in OUTCOME_CSV_KEYS:
            writer.writerow([f"outcome_{key}", label, row[key]])
    return out.getvalue()


OUTCOME_CSV_KEYS = (
    "conversations",
    "resolved",
    "handed_off",
    "reopened",
    "pending",
    "resolution_rate",
    "handoff_rate",
    "reopen_rate",
    "cost_usd",
    "cost_per_resolution_usd",
    "cx_average",
)


def report_paths(for_date: date) -> tuple[Path, Path]:
    directory = Path(settings.REPORTS_DIR)
    return (
        directory / f"transcript-report-{for_date.isoformat()}.html",
        directory / f"transcript-report-{for_date.isoformat()}.csv",
    )


def report_generate(*, for_date: date, send_email: bool = True) -> DailyReport:
    """Compute the day's report, store it (one row per date, replaced on re-run), write the HTML and CSV files
    to REPORTS_DIR and email it to REPORT_EMAIL_TO when set.

    Raises OSError when REPORTS_DIR cannot be written; email failures are logged, not raised (the report is
    stored and on disk either way).
    """
    data = report_data_build(for_date=for_date)
    report, _ = DailyReport.objects.update_or_create(date=for_date, defaults={"data": data})
    html, text = report_html(data), report_csv(data)
    html_path, csv_path = report_paths(for_date)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(html, encoding="utf-8")
    csv_path.write_text(text, encoding="utf-8")
    recipients = list(getattr(settings, "REPORT_EMAIL_TO", []) or [])
    if send_email and recipients:
        try:
            _report_email(data=data, html=html, csv_text=text, recipients=recipients)
        except Exception:
            logger.exception("triage report email failed", extra={"date": data["date"]})
    return report


def _drafts_awaiting_review(data: dict[str, Any]) -> int:
    groups = data.get("knowledge_gaps", {}).get("groups", [])
    return sum(1 for group in groups if group.get("article_status") == "draft")


def _report_email(*, data: dict[str, Any], html: str, csv_text: str, recipients: list[str]) -> None:
    volumes, costs = data["volumes"], data["costs"]
    rate = data["resolution"]["rate"]
    body = (
        f"Transcript report for {data['date']}\n\n"
        f"Conversations: {volumes['conversations']} (classified {volumes['classified']}, "
        f"unclassifiable {volumes['unclassifiable']})\n"
        f"Resolution rate: {'n/a' if rate is None else f'{rate:.0%}'}\n"
        f"Escalations: {data['escalations']['count']}\n"
        f"Knowledge gaps: {data.get('knowledge_gaps', {}).get('count', 0)} "
        f"({_drafts_awaiting_review(data)} draft article(s) awaiting review)\n"
        f"CX score: {data.get('cx_score', {}).get('average') or 'n/a'}\n"
        f"Cost: ${costs['total_usd']} (chat ${costs['chat_usd']}, batch ${costs['batch_usd']}); "
        f"cache saved ${costs['cache_savings_usd']}\n"
    )
    message = EmailMultiAlternatives(subject=f"[supportbot] Transcript report {data['date']}", body=body, to=recipients)
    message.attach_alternative(html, "text/html")
    message.attach(f"transcript-report-{data['date']}.csv", csv_text, "text/csv")
    message.send()
