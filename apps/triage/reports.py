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
from django.db.models import Count, Q, Sum
from django.template.loader import render_to_string

from apps.triage.models import DailyReport, TranscriptClassification
from apps.triage.selectors import day_bounds

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
    batch calls that classified that day's conversations (made the following night), at batch prices.
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
        **_costs(for_date=for_date),
    }


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
    batch_calls = Q(is_batch=True, triage_items__classification__for_date=for_date)
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
    return out.getvalue()


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


def _report_email(*, data: dict[str, Any], html: str, csv_text: str, recipients: list[str]) -> None:
    volumes, costs = data["volumes"], data["costs"]
    rate = data["resolution"]["rate"]
    body = (
        f"Transcript report for {data['date']}\n\n"
        f"Conversations: {volumes['conversations']} (classified {volumes['classified']}, "
        f"unclassifiable {volumes['unclassifiable']})\n"
        f"Resolution rate: {'n/a' if rate is None else f'{rate:.0%}'}\n"
        f"Escalations: {data['escalations']['count']}\n"
        f"Cost: ${costs['total_usd']} (chat ${costs['chat_usd']}, batch ${costs['batch_usd']}); "
        f"cache saved ${costs['cache_savings_usd']}\n"
    )
    message = EmailMultiAlternatives(subject=f"[supportbot] Transcript report {data['date']}", body=body, to=recipients)
    message.attach_alternative(html, "text/html")
    message.attach(f"transcript-report-{data['date']}.csv", csv_text, "text/csv")
    message.send()
