"""Writes: articles (create, edit, publish, unpublish, delete, import) and the snapshots they produce.

Every change to the published set ends in `snapshot_refresh`, inside the same transaction, so a
published article is never visible to search without being in a snapshot or the other way round.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.knowledge import search
from apps.knowledge.models import Article, ArticleCitation, KnowledgeSnapshot, Language
from apps.knowledge.selectors import SNAPSHOT_CACHE_KEY

# The gateway's starting calibration (apps.llm): ~3.5 characters per token of mixed prose.
CHARS_PER_TOKEN = 3.5
EDITABLE_FIELDS: tuple[str, ...] = ("title", "body", "url", "language", "tags", "status", "external_id")
MAX_TAGS = 20


# --- validation -----------------------------------------------------------------------------------------


def check_article_fields(fields: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate and normalise article fields from any interface. Raises ApplicationError (code invalid_article)."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    errors: dict[str, str] = {name: "Unknown field." for name in sorted(unknown)}
    clean: dict[str, Any] = {}
    for name in EDITABLE_FIELDS:
        if name not in fields:
            if not partial and name in ("title", "body"):
                errors[name] = "This field is required."
            continue
        value = fields[name]
        try:
            clean[name] = _CHECKS[name](value)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise ApplicationError("Invalid article.", code="invalid_article", extra={"errors": errors})
    return clean


def _check_title(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("A non-empty title is required.")
    if len(value.strip()) > 200:
        raise ValueError("At most 200 characters.")
    return value.strip()


def _check_body(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("A non-empty Markdown body is required.")
    return value.strip() + "\n"


def _check_url(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 500:
        raise ValueError("An http(s) URL of at most 500 characters.")
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise ValueError("Enter a valid http(s) URL.") from None
    return value


def _check_language(value: Any) -> str:
    if value not in Language.values:
        raise ValueError(f"One of: {', '.join(Language.values)}.")
    return value


def _check_tags(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValueError("A list of strings.")
    tags = list(dict.fromkeys(tag.strip().lower() for tag in value if tag.strip()))
    if len(tags) > MAX_TAGS or any(len(tag) > 50 or '"' in tag for tag in tags):
        raise ValueError(f"At most {MAX_TAGS} tags of at most 50 characters, without quotes.")
    return tags


def _check_status(value: Any) -> str:
    if value not in Article.Status.values:
        raise ValueError(f"One of: {', '.join(Article.Status.values)}.")
    return value


def _check_external_id(value: Any) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 200:
        raise ValueError("A string of at most 200 characters.")
    return value.strip()


_CHECKS = {
    "title": _check_title,
    "body": _check_body,
    "url": _check_url,
    "language": _check_language,
    "tags": _check_tags,
    "status": _check_status,
    "external_id": _check_external_id,
}


# --- articles -------------------------------------------------------------------------------------------


@transaction.atomic
def article_create(*, actor=None, **fields: Any) -> Article:
    """Create an article (a draft unless `status="published"`). Raises ApplicationError on bad input."""
    clean = check_article_fields(fields)
    _check_external_id_free(clean.get("external_id", ""), exclude=None)
    article = Article(**clean)
    if article.status == Article.Status.PUBLISHED:
        article.published_at = timezone.now()
    article.save()
    _after_change([article], actor=actor, published_changed=article.status == Article.Status.PUBLISHED)
    return article


@transaction.atomic
def article_update(*, article: Article, actor=None, **fields: Any) -> Article:
    """Change some fields. Editing a published article makes a new snapshot. Raises ApplicationError."""
    clean = check_article_fields(fields, partial=True)
    locked = Article.objects.select_for_update().get(pk=article.pk)
    if "external_id" in clean:
        _check_external_id_free(clean["external_id"], exclude=locked.pk)
    was_published = locked.status == Article.Status.PUBLISHED
    changed = [name for name, value in clean.items() if getattr(locked, name) != value]
    for name in changed:
        setattr(locked, name, clean[name])
    if not changed:
        return locked
    if locked.status == Article.Status.PUBLISHED and not was_published:
        locked.published_at = timezone.now()
    locked.save()
    _after_change([locked], actor=actor, published_changed=was_published or locked.status == Article.Status.PUBLISHED)
    return locked


def article_publish(*, article: Article, actor=None) -> Article:
    return article_update(article=article, actor=actor, status=Article.Status.PUBLISHED)


def article_unpublish(*, article: Article, actor=None) -> Article:
    return article_update(article=article, actor=actor, status=Article.Status.DRAFT)


@transaction.atomic
def article_delete(*, article: Article, actor=None) -> None:
    was_published = article.status == Article.Status.PUBLISHED
    article_id = article.pk
    article.delete()
    search.unindex_article(article_id)
    if was_published:
        snapshot_refresh(actor=actor)


def _check_external_id_free(external_id: str, *, exclude: int | None) -> None:
    if external_id and Article.objects.filter(external_id=external_id).exclude(pk=exclude).exists():
        raise ApplicationError(
            "Invalid article.",
            code="invalid_article",
            extra={"errors": {"external_id": "Another article has this external id."}},
        )


def _after_change(articles: list[Article], *, actor, published_changed: bool) -> None:
    search.index_articles(articles)
    if published_changed:
        snapshot_refresh(actor=actor)


# --- snapshots ------------------------------------------------------------------------------------------


def snapshot_content() -> list[dict[str, Any]]:
    """The published articles as snapshot entries, in a fixed order (id) so equal sets give equal bytes."""
    fields = ("id", "title", "url", "language", "body")
    return list(Article.objects.filter(status=Article.Status.PUBLISHED).order_by("id").values(*fields))


def snapshot_refresh(*, actor=None) -> KnowledgeSnapshot:
    """The snapshot of the published articles: the latest one when nothing changed, else a new one."""
    articles = snapshot_content()
    figures = snapshot_figures(articles)
    latest = KnowledgeSnapshot.objects.order_by("-created_at", "-id").first()
    if latest is not None and latest.digest == figures["digest"]:
        return latest
    # Answers read the current snapshot from the cache: drop it once this one is visible to them. The
    # search's term statistics follow the published set too (a full pass: in a task).
    transaction.on_commit(forget_current_snapshot)
    transaction.on_commit(_refresh_term_stats_later)
    return KnowledgeSnapshot.objects.create(
        created_by=actor if getattr(actor, "pk", None) else None, articles=articles, **figures
    )


def snapshot_figures(articles: list[dict[str, Any]]) -> dict[str, Any]:
    """A snapshot's digest, article count and token estimate from its entries (also used by migration 0005)."""
    encoded = json.dumps(articles, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    characters = sum(len(a["title"]) + len(a["body"]) + len(a["url"]) for a in articles)
    return {
        "digest": hashlib.sha256(encoded.encode()).hexdigest(),
        "article_count": len(articles),
        "token_estimate": math.ceil(characters / CHARS_PER_TOKEN),
    }


def forget_current_snapshot() -> None:
    try:
        cache.delete(SNAPSHOT_CACHE_KEY)
    except Exception:  # the cache is down: its entry expires within SNAPSHOT_CACHE_SECONDS anyway
        logging.getLogger(__name__).warning("knowledge: could not drop the cached snapshot id")


def _refresh_term_stats_later() -> None:
    from apps.knowledge.tasks import refresh_term_stats

    refresh_term_stats.delay()


# --- import ---------------------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.DOTALL)
_FIRST_HEADING = re.compile(r"\A\s*#\s+(.+?)\s*\n(.*)\Z", re.DOTALL)


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # file name → what was wrong with it


def parse_markdown_article(source: str, *, default_language: str = "en") -> dict[str, Any]:
    """Article fields from Markdown with optional YAML front matter (title, url, language, tags, status).

    Without a `title` in the front matter the first `# Heading` is the title and is left out of the body.
    Raises ValueError on malformed front matter.
    """
    meta: dict[str, Any] = {}
    body = source
    match = _FRONT_MATTER.match(source)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"front matter is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError("front matter must be a mapping of fields")
        meta, body = loaded, match.group(2)
    fields: dict[str, Any] = {key: meta[key] for key in ("title", "url", "language", "tags", "status") if key in meta}
    if "title" not in fields:
        heading = _FIRST_HEADING.match(body)
        if heading:
            fields["title"], body = heading.group(1), heading.group(2)
    fields.setdefault("language", default_language)
    fields["body"] = body
    return fields


def articles_import(
    *, directory: Path, publish: bool = False, default_language: str = "en", actor=None
) -> ImportResult:
    """Create or update one article per `*.md` file under `directory` (matched by file path as external id).

    A bad file is reported in the result and skipped; the others are imported. `publish` publishes files
    whose front matter names no status. One snapshot at the end for the whole import.
    """
    if not directory.is_dir():
        raise ApplicationError(f"{directory} is not a directory.", code="import_not_a_directory")
    result = ImportResult()
    with transaction.atomic():
        for path in sorted(directory.rglob("*.md")):
            name = str(path.relative_to(directory))
            try:
                fields = parse_markdown_article(path.read_text(encoding="utf-8"), default_language=default_language)
                fields.setdefault("status", Article.Status.PUBLISHED if publish else Article.Status.DRAFT)
                fields["external_id"] = f"file:{name}"
                clean = check_article_fields(fields)
            except (ValueError, UnicodeDecodeError) as exc:
                result.errors[name] = str(exc)
                continue
            except ApplicationError as exc:
                result.errors[name] = "; ".join(f"{k}: {v}" for k, v in exc.extra.get("errors", {}).items())
                continue
            _import_one(clean, result)
        snapshot_refresh(actor=actor)
    return result


def _import_one(clean: dict[str, Any], result: ImportResult) -> None:
    existing = Article.objects.filter(external_id=clean["external_id"]).first()
    if existing is None:
        article = Article(**clean)
        if article.status == Article.Status.PUBLISHED:
            article.published_at = timezone.now()
        article.save()
        result.created += 1
    else:
        changed = [name for name, value in clean.items() if getattr(existing, name) != value]
        if not changed:
            result.unchanged += 1
            return
        if clean["status"] == Article.Status.PUBLISHED and existing.status != Article.Status.PUBLISHED:
            existing.published_at = timezone.now()
        for name in changed:
            setattr(existing, name, clean[name])
        existing.save()
        article = existing
        result.updated += 1
    search.index_articles([article])


# --- citations ------------------------------------------------------------------------------------------

_KB_SOURCE = re.compile(r"\Akb:article/(\d+)\Z")


def citations_record(*, message_id: int, citations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record which articles an answer cited; returns the citations as stored with the message.

    Each stored citation: {title, url, cited_text, article_id} (article_id None when the source is not a
    known article). Safe to run twice for one message.
    """
    stored: list[dict[str, Any]] = []
    article_ids: set[int] = set()
    for citation in citations:
        source = str(citation.get("source") or "")
        title = str(citation.get("title") or citation.get("document_title") or "")
        article_id = _article_id_for_source(source)
        url = source if source.startswith(("http://", "https://")) else ""
        stored.append(
            {"title": title, "url": url, "cited_text": str(citation.get("cited_text", "")), "article_id": article_id}
        )
        if article_id is not None:
            article_ids.add(article_id)
    existing = set(ArticleCitation.objects.filter(message_id=message_id).values_list("article_id", flat=True))
    ArticleCitation.objects.bulk_create(
        [ArticleCitation(article_id=a, message_id=message_id) for a in sorted(article_ids - existing)],
        ignore_conflicts=True,
    )
    return stored


def _article_id_for_source(source: str) -> int | None:
    match = _KB_SOURCE.match(source)
    if match:
        article_id = int(match.group(1))
        return article_id if Article.objects.filter(pk=article_id).exists() else None
    if source:
        return Article.objects.filter(url=source).order_by("-status", "id").values_list("id", flat=True).first()
    return None


def citation_rating_set(*, message_id: int, rating: str) -> None:
    """Copy an answer's thumbs onto the citations it made ("" clears it)."""
    ArticleCitation.objects.filter(message_id=message_id).update(rating=rating)


DEMO_ARTICLES_DIR = Path(__file__).resolve().parent / "demo_articles"


def demo_articles_seed() -> int:
    """Publish the demo help centre: the demo knowledge base (English) and the EN/DE/FR card articles.

    Idempotent (matched by file path). Returns the articles created by this call.
    """
    from apps.accounts import demo_content

    created = articles_import(directory=DEMO_ARTICLES_DIR, publish=True).created
    return created + articles_import(directory=Path(demo_content.KNOWLEDGE_BASE_DIR), publish=True).created
