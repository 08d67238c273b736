"""Reads of prompts: which version serves a conversation or a task, diffs, previews and call metrics.

A/B assignment is a pure function of (slug, key, the active versions and their weights): sha256 of
"slug:key" picks a point in [0, total weight) and the version whose weight range contains it wins.
No state is kept here; stickiness comes from the caller storing the chosen version (chat stores it on
`Conversation.prompt_version`), so a conversation never switches version mid-way, even after weights
change or a new version is published.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, DecimalField, F, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from apps.core.exceptions import NotFound
from apps.prompts.models import Prompt, PromptVersion, ReferenceDocument

if TYPE_CHECKING:
    from apps.accounts.selectors import CustomerIdentifiers

Status = PromptVersion.Status


def _versions() -> QuerySet[PromptVersion]:
    ordered_documents = ReferenceDocument.objects.order_by("position", "id")
    return PromptVersion.objects.select_related("prompt").prefetch_related(
        Prefetch("reference_documents", queryset=ordered_documents)
    )


def prompt_get_by_slug(*, slug: str) -> Prompt:
    """Raises NotFound("prompt_not_found")."""
    prompt = Prompt.objects.filter(slug=slug).first()
    if prompt is None:
        raise NotFound(
            f'There is no prompt "{slug}". Run `manage.py seed_demo` or create it in the admin.',
            code="prompt_not_found",
        )
    return prompt


def prompt_version_get(*, version_id: int) -> PromptVersion:
    """A version by id, with its documents prefetched (chat re-reads a conversation's sticky version).

    Returned whatever its status: a retired version still serves the conversations assigned to it.
    Raises NotFound("prompt_version_not_found").
    """
    version = _versions().filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"Prompt version {version_id} does not exist.", code="prompt_version_not_found")
    return version


# Every new conversation picks a version, and versions are published a few times a month: each process
# keeps the active list for PROMPT_ACTIVE_VERSIONS_CACHE_SECONDS instead of querying it before every
# first answer. A save or delete in this process (the admin's publish, retire, weight) drops the copy at
# once; other processes see it within the TTL (the same contract as the routing rules).
_active_lock = threading.Lock()
_active_cache: dict[str, tuple[float, tuple[PromptVersion, ...]]] = {}


def prompt_versions_active(*, slug: str) -> list[PromptVersion]:
    """Active versions with traffic, in assignment order (oldest id first, so ranges stay put).

    Documents are not prefetched: an active version is published, so `to_parts()` is served from the
    per-process cache and reads them only the first time.
    """
    cached = _active_cache.get(slug)
    if cached is not None and time.monotonic() < cached[0]:
        return list(cached[1])
    versions = PromptVersion.objects.select_related("prompt")
    active = tuple(versions.filter(prompt__slug=slug, status=Status.ACTIVE, weight__gt=0).order_by("pk"))
    ttl = float(settings.PROMPT_ACTIVE_VERSIONS_CACHE_SECONDS)
    if ttl > 0:
        with _active_lock:
            _active_cache[slug] = (time.monotonic() + ttl, active)
    return list(active)


def active_versions_cache_clear(**_: object) -> None:
    with _active_lock:
        _active_cache.clear()


post_save.connect(active_versions_cache_clear, sender=PromptVersion, dispatch_uid="prompts.active_cache.save")
post_delete.connect(active_versions_cache_clear, sender=PromptVersion, dispatch_uid="prompts.active_cache.delete")


def bucket_for_key(*, slug: str, key: str, total_weight: int) -> int:
    """A stable point in [0, total_weight) for this slug and key (the same across processes and hosts)."""
    digest = hashlib.sha256(f"{slug}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % total_weight


def pick_weighted(versions: Sequence[PromptVersion], *, slug: str, key: str) -> PromptVersion:
    """The version whose cumulative weight range contains the key's bucket."""
    total = sum(v.weight for v in versions)
    point = bucket_for_key(slug=slug, key=key, total_weight=total)
    upper = 0
    for version in versions:
        upper += version.weight
        if point < upper:
            return version
    return versions[-1]  # unreachable while weights are non-negative; keeps the type checker honest


def _no_active(slug: str) -> NotFound:
    return NotFound(
        f'Prompt "{slug}" has no active version with traffic. Publish a version in the admin '
        f"(Prompts › Prompt versions) or run `manage.py seed_demo`.",
        code="prompt_no_active_version",
    )


def prompt_version_for_conversation(*, slug: str, conversation_key: str) -> PromptVersion:
    """The version a *new* conversation gets: deterministic weighted A/B by sha256(slug:key).

    Call once when the conversation starts and store the result on it; afterwards read it back with
    `prompt_version_get`. Raises NotFound("prompt_no_active_version").
    """
    versions = prompt_versions_active(slug=slug)
    if not versions:
        raise _no_active(slug)
    return pick_weighted(versions, slug=slug, key=conversation_key)


def prompt_version_active(*, slug: str, key: str = "") -> PromptVersion:
    """The version for a non-conversation task (the classifier).

    With a `key` (e.g. the conversation being classified, or the run date) the choice is weighted and
    deterministic exactly like conversations; without one it is the version with the largest weight
    (newest on ties). Raises NotFound("prompt_no_active_version").
    """
    versions = prompt_versions_active(slug=slug)
    if not versions:
        raise _no_active(slug)
    if key:
        return pick_weighted(versions, slug=slug, key=key)
    return max(versions, key=lambda v: (v.weight, v.semver))


def prompt_traffic_shares(*, prompt: Prompt) -> dict[int, float]:
    """version id → share of new traffic (0..1) among the prompt's active versions."""
    weights = dict(PromptVersion.objects.filter(prompt=prompt, status=Status.ACTIVE).values_list("pk", "weight"))
    total = sum(weights.values())
    return {pk: (weight / total if total else 0.0) for pk, weight in weights.items()}


# --- Review: diff, bump suggestion, dynamic-content lint ---------------------------------------------

PART_LABELS: dict[str, str] = {
    "persona": "Persona / role",
    "business_rules": "Business rules",
    "output_format": "Output format",
    "reference_documents": "Reference documents",
    "few_shot_examples": "Few-shot examples",
    "model_tier": "Default model route",
    "max_tokens": "max_tokens",
}


def _part_text(version: PromptVersion, part: str) -> str:
    if part == "reference_documents":
        return "\n\n".join(f"## {title}\n{body}" for title, body in version.reference_document_pairs())
    return str(getattr(version, part))


@dataclass(frozen=True)
class PartDiff:
    part: str
    label: str
    changed: bool
    table_html: str  # difflib.HtmlDiff table (escaped by difflib); "" when unchanged


def prompt_version_diff(*, a: PromptVersion, b: PromptVersion, context_lines: int = 3) -> list[PartDiff]:
    """Side-by-side HTML diff of every part, `a` on the left. Unchanged parts carry no table."""
    differ = difflib.HtmlDiff(tabsize=4, wrapcolumn=80)
    diffs: list[PartDiff] = []
    for part, label in PART_LABELS.items():
        left, right = _part_text(a, part), _part_text(b, part)
        changed = left != right
        table = (
            differ.make_table(
                left.splitlines(),
                right.splitlines(),
                fromdesc=f"{a.version}",
                todesc=f"{b.version}",
                context=True,
                numlines=context_lines,
            )
            if changed
            else ""
        )
        diffs.append(PartDiff(part=part, label=label, changed=changed, table_html=table))
    return diffs


def suggest_bump(*, base: PromptVersion | None, draft: PromptVersion) -> str:
    """major / minor / patch for the change from `base` to `draft`.

    major: the output format changed (parsers downstream, e.g. the classifier's JSON, must adapt);
    minor: persona, rules, documents, examples, route or limits changed in substance;
    patch: only small wording edits (every changed part ≥ 97 % similar).
    """
    if base is None:
        return "major"
    changed = [p for p in PART_LABELS if _part_text(base, p) != _part_text(draft, p)]
    if not changed:
        return "patch"
    if "output_format" in changed:
        return "major"
    if any(p in changed for p in ("model_tier", "max_tokens")):
        return "minor"
    ratios = [difflib.SequenceMatcher(None, _part_text(base, p), _part_text(draft, p)).ratio() for p in changed]
    return "patch" if min(ratios) >= 0.97 else "minor"


# Things that make a prompt differ per request or per day. In the cached prefix they either break
# the cache (the prefix changes, every request pays a cache write) or leak one user's data to another.
DYNAMIC_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("template placeholder", re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{\{")),
    ("ISO date", re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b")),
    ("time of day / timestamp", re.compile(r"\b[0-2]?\d:[0-5]\d(:[0-5]\d)?\b")),
    ("written date", re.compile(r"\b\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* (19|20)\d\d\b")),
    ("relative date", re.compile(r"\b(today is|current date|current time|as of today)\b", re.IGNORECASE)),
    ("email address", re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b")),
    ("account context", re.compile(r"<account_context>|\bcustomer: |\"customer\": \{", re.IGNORECASE)),
    ("invoice number", re.compile(r"\bINV-\d{4}-\d+\b")),
)

# Never legitimate in a cached prefix, even in a first version with nothing to compare against.
ALWAYS_DYNAMIC = frozenset({"template placeholder", "relative date"})


def dynamic_content_findings(version: PromptVersion) -> dict[str, set[str]]:
    """kind → the distinct matches of DYNAMIC_PATTERNS in the version's cached system parts."""
    findings: dict[str, set[str]] = {}
    text = "\n".join(
        _part_text(version, p)
        for p in ("persona", "business_rules", "output_format", "reference_documents", "few_shot_examples")
    )
    for kind, pattern in DYNAMIC_PATTERNS:
        matches = {m.group(0) for m in pattern.finditer(text)}
        if matches:
            findings[kind] = matches
    return findings


def dynamic_content_warnings(*, version: PromptVersion, base: PromptVersion | None) -> list[str]:
    """Warnings for dynamic content this version *adds* to the cached prefix compared with `base`.

    Content already present in the base (e.g. a fixed policy date in the knowledge base) is not new
    and is not repeated on every edit.
    """
    new = dynamic_content_findings(version)
    old = dynamic_content_findings(base) if base is not None else {}
    warnings = []
    for kind, matches in new.items():
        if base is None and kind not in ALWAYS_DYNAMIC:
            continue  # a first version has no edit to blame; sample dates in examples are normal
        added = sorted(matches - old.get(kind, set()))
        if added:
            sample = ", ".join(repr(m) for m in added[:3])
            since = f" since {base.version}" if base is not None else ""
            warnings.append(
                f"Dynamic content ({kind}: {sample}) was added to the cached system prefix{since}. "
                "Per-request or per-user data belongs in the user turn; in the prefix it breaks the "
                "prompt cache or leaks between users."
            )
    return warnings


# --- Customer data in shared prompt parts ----------------------------------------------------------

# Every part that goes into the system prompt, sent (and cached) for every customer alike.
SHARED_PARTS = ("persona", "business_rules", "output_format", "reference_documents", "few_shot_examples")
# Runs of the characters a username, an email or an invoice number is made of.
_IDENTIFIER_TOKEN = re.compile(r"[\w.@+-]+")
# Shorter usernames are ordinary words and letters ("al", "jo"); matching them would only cry wolf.
MIN_USERNAME_CHARS = 3


@dataclass(frozen=True)
class CustomerDataFinding:
    kind: str  # "username" | "email" | "invoice number"
    value: str
    part: str


def customer_data_findings(
    version: PromptVersion, identifiers: CustomerIdentifiers | None = None
) -> list[CustomerDataFinding]:
    """Existing customers' usernames, emails and invoice numbers found (whole, case-insensitive) in the
    version's shared parts. A few-shot example must be fictional: whatever is in these parts reaches
    every customer's request."""
    from apps.accounts.selectors import customer_identifiers  # prompts → accounts, read only

    known = identifiers if identifiers is not None else customer_identifiers()
    kinds = (
        ("username", frozenset(u for u in known.usernames if len(u) >= MIN_USERNAME_CHARS)),
        ("email", known.emails),
        ("invoice number", known.invoice_numbers),
    )
    findings = []
    for part in SHARED_PARTS:
        tokens = _identifier_tokens(_part_text(version, part))
        for kind, values in kinds:
            findings += [CustomerDataFinding(kind, value, part) for value in sorted(tokens & values)]
    return findings


def _identifier_tokens(text: str) -> set[str]:
    """Lower-cased candidate identifiers: each run, without its edge punctuation, and both halves of an
    email (so `bob@example.com` also names the user `bob`)."""
    tokens: set[str] = set()
    for match in _IDENTIFIER_TOKEN.finditer(text.lower()):
        token = match.group(0)
        stripped = token.strip(".+-@")
        tokens.update((token, stripped, *stripped.split("@")))
    return tokens


def customer_data_warnings(version: PromptVersion, identifiers: CustomerIdentifiers | None = None) -> list[str]:
    """One warning per part that names an existing customer, for the preview and the system check."""
    by_part: dict[str, list[CustomerDataFinding]] = {}
    for finding in customer_data_findings(version, identifiers):
        by_part.setdefault(finding.part, []).append(finding)
    return [
        f"{part} names an existing customer ({', '.join(f'{f.kind} {f.value!r}' for f in found[:3])}): "
        "this part is sent with every customer's request, so their data would reach everyone. "
        "Use fictional examples."
        for part, found in by_part.items()
    ]


def published_versions_with_customer_data() -> list[tuple[PromptVersion, list[str]]]:
    """Every published (active or retired) version whose shared parts name an existing customer."""
    from apps.accounts.selectors import customer_identifiers

    identifiers = customer_identifiers()
    published = PromptVersion.objects.filter(published_at__isnull=False).select_related("prompt")
    found = []
    for version in published.prefetch_related("reference_documents"):
        warnings = customer_data_warnings(version, identifiers)
        if warnings:
            found.append((version, warnings))
    return found


@dataclass(frozen=True)
class Preview:
    """What the admin preview shows. `result` is apps.llm's PreviewResult, or None if unavailable."""

    result: Any
    warnings: tuple[str, ...]
    error: str = ""


def prompt_version_preview(
    *, version: PromptVersion, sample_user_text: str, account_context: str, compare_to: PromptVersion | None = None
) -> Preview:
    """The exact request the gateway would send for this version, its token count and cache warnings.

    Assembly and counting belong to `apps.llm.gateway.preview_request`; this adds the
    edit-aware dynamic-content check (against `compare_to`, default the version it was based on).
    Failures of the counting call (upstream down) are reported in `error`, never raised: the admin
    page must still render.
    """
    base = compare_to if compare_to is not None else version.based_on
    warnings = customer_data_warnings(version) + dynamic_content_warnings(version=version, base=base)
    try:
        from apps.llm.gateway import preview_request
    except ImportError as exc:  # apps.llm not deployed with a preview yet
        return Preview(result=None, warnings=tuple(warnings), error=f"apps.llm preview unavailable: {exc}")
    try:
        result = preview_request(version.to_parts(), sample_user_text, account_context)
    except Exception as exc:
        return Preview(result=None, warnings=tuple(warnings), error=f"{type(exc).__name__}: {exc}")
    merged = list(getattr(result, "warnings", ()) or ())
    merged += [w for w in warnings if w not in merged]
    return Preview(result=result, warnings=tuple(merged))


# --- Key metrics for the changelist ----------------------------------------------------------------

CHANGELIST_METRICS_DAYS = 7


def prompt_versions_with_call_summary(queryset: QuerySet[PromptVersion], *, since: datetime) -> QuerySet[PromptVersion]:
    """Annotate versions with the four changelist figures from apps.llm's LLMCall log since `since`.

    Adds `m_calls`, `m_errors`, `m_cost` (sum, USD), `m_input` (all input tokens) and `m_cache_read`
    (None when a version has no calls), plus `m_active_weight` (sum of the prompt's active weights,
    for the traffic share). One correlated subquery per figure keeps it a single SQL statement that
    runs on SQLite and PostgreSQL. This reads llm's table (prompts → llm is the allowed direction);
    the full per-version report lives in apps.insights. Without apps.llm only the weight is added.
    """
    from django.apps import apps

    active_weight = (
        PromptVersion.objects.filter(prompt=OuterRef("prompt"), status=Status.ACTIVE)
        .order_by()
        .values("prompt")
        .annotate(total=Sum("weight"))
        .values("total")
    )
    queryset = queryset.annotate(m_active_weight=Subquery(active_weight, output_field=IntegerField()))
    try:
        llm_call = apps.get_model("llm", "LLMCall")
    except LookupError:
        return queryset
    calls = llm_call.objects.filter(prompt_version_id=OuterRef("pk"), created_at__gte=since).order_by()
    grouped = calls.values("prompt_version_id")

    def figure(expression, output_field):
        return Subquery(grouped.annotate(v=expression).values("v")[:1], output_field=output_field)

    return queryset.annotate(
        m_calls=figure(Count("id"), IntegerField()),
        m_errors=figure(Count("id", filter=llm_call.failed()), IntegerField()),
        m_cost=figure(Sum("cost_usd"), DecimalField(max_digits=20, decimal_places=8)),
        m_input=figure(
            Sum(F("input_tokens") + F("cache_creation_input_tokens") + F("cache_read_input_tokens")), IntegerField()
        ),
        m_cache_read=figure(Sum("cache_read_input_tokens"), IntegerField()),
    )


@dataclass(frozen=True)
class CallSummary:
    """The four figures the version list shows."""

    calls: int
    error_rate: float | None
    cost_per_call: Decimal | None
    cache_hit_rate: float | None

    @classmethod
    def from_annotated(cls, version: PromptVersion) -> CallSummary:
        calls = getattr(version, "m_calls", None) or 0
        total_input = getattr(version, "m_input", None) or 0
        return cls(
            calls=calls,
            error_rate=(version.m_errors or 0) / calls if calls else None,
            cost_per_call=Decimal(version.m_cost or 0) / calls if calls else None,
            cache_hit_rate=(version.m_cache_read or 0) / total_input if total_input else None,
        )


def changelist_since() -> datetime:
    return timezone.now() - timedelta(days=CHANGELIST_METRICS_DAYS)
