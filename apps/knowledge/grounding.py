"""What an answer is grounded in, as plain values for the LLM gateway (knowledge → llm, never back).

Small base (snapshot ≤ KNOWLEDGE_PREFIX_MAX_TOKENS): the whole snapshot becomes the prompt's reference
documents, in the cached system prefix, byte-stable until the next snapshot — or, with
KNOWLEDGE_PREFIX_CITATIONS, citable `search_result` blocks at the head of the first user turn, still
inside the cached prefix, so answers cite articles in this mode too. Large base: the prompt
carries no documents and each question gets the best-matching published articles as `search_result`
blocks with citations enabled (see docs/knowledge.md).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from django.conf import settings

from apps.knowledge import search, selectors
from apps.knowledge.models import KnowledgeSnapshot
from apps.knowledge.selectors import GroundingMode
from apps.llm.types import KnowledgeSource, PromptParts

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_HEADING_ONLY = re.compile(r"\A#{1,6}\s+[^\n]*\Z")
# Bounds on what one retrieved article adds to a request: its first passages up to this many characters.
MAX_SOURCE_CHARS = 4_000
# Parts with the snapshot folded in, per (prompt version, snapshot): the same object for every answer, so
# the gateway's per-parts caches (assembled and encoded system blocks) keep working.
_PARTS_MAX = 32
_parts_cache: OrderedDict[tuple[object, ...], PromptParts] = OrderedDict()
_parts_lock = threading.Lock()


def prompt_parts_grounded(parts: PromptParts) -> tuple[PromptParts, GroundingMode | None]:
    """`parts` with the current snapshot in place of the version's documents, and the mode it calls for.

    No snapshot yet (nothing published): the version's own documents, mode None.
    """
    ref = selectors.snapshot_current_ref()
    if ref is None:
        return parts, None
    snapshot_id = ref[0]
    mode = selectors.grounding_mode(ref)
    key = (parts, snapshot_id, mode, bool(settings.KNOWLEDGE_PREFIX_CITATIONS))
    with _parts_lock:
        cached = _parts_cache.get(key)
        if cached is not None:
            _parts_cache.move_to_end(key)
            return cached, mode
    documents: tuple[tuple[str, str], ...] = ()
    sources: tuple[KnowledgeSource, ...] = ()
    if mode == "prefix":
        snapshot = KnowledgeSnapshot.objects.get(pk=snapshot_id)
        if settings.KNOWLEDGE_PREFIX_CITATIONS:
            sources = snapshot_sources(snapshot)
        else:
            documents = snapshot_documents(snapshot)
    grounded = replace(
        parts, reference_documents=documents, knowledge_prefix=sources, knowledge_snapshot_id=snapshot_id
    )
    if parts.immutable:
        with _parts_lock:
            _parts_cache[key] = grounded
            while len(_parts_cache) > _PARTS_MAX:
                _parts_cache.popitem(last=False)
    return grounded, mode


def snapshot_documents(snapshot: KnowledgeSnapshot) -> tuple[tuple[str, str], ...]:
    """(title, body) per article in the snapshot's fixed order; the URL leads the body so answers can link it."""
    documents = []
    for article in snapshot.articles:
        body = article["body"].strip()
        if article.get("url"):
            body = f"Source: {article['url']}\n\n{body}"
        documents.append((article["title"], body))
    return tuple(documents)


def snapshot_sources(snapshot: KnowledgeSnapshot) -> tuple[KnowledgeSource, ...]:
    """Every article of the snapshot as a citable source, whole, in the snapshot's fixed order."""
    return tuple(
        KnowledgeSource(
            title=article["title"],
            source=article.get("url") or f"kb:article/{article['id']}",
            passages=passages(article["body"], max_chars=None),
        )
        for article in snapshot.articles
    )


def sources_for_question(
    question: str, *, recent: Sequence[str] = (), language: str = "en"
) -> tuple[KnowledgeSource, ...]:
    """The best-matching published articles for a question (and the recent user turns), as search results."""
    query = " ".join([question, *recent])
    hits = search.search(query, language, settings.KNOWLEDGE_SEARCH_LIMIT)
    return tuple(
        KnowledgeSource(title=hit.title, source=hit.url or f"kb:article/{hit.article_id}", passages=passages(hit.body))
        for hit in hits
    )


def passages(body: str, *, max_chars: int | None = MAX_SOURCE_CHARS) -> tuple[str, ...]:
    """An article's citable units: its paragraphs, a heading kept with the paragraph under it; the first
    ones up to `max_chars` (None: the whole article)."""
    units: list[str] = []
    heading = ""
    length = 0
    for paragraph in _PARAGRAPH_BREAK.split(body.strip()):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if _HEADING_ONLY.match(paragraph):
            heading = f"{heading}\n{paragraph}".strip()
            continue
        unit = f"{heading}\n{paragraph}" if heading else paragraph
        heading = ""
        if units and max_chars is not None and length + len(unit) > max_chars:
            break
        units.append(unit)
        length += len(unit)
    if heading and not units:
        units.append(heading)
    return tuple(units)


def source_url(source: str) -> str:
    """The link to show for a cited source ("" for an article without a public URL)."""
    return source if source.startswith(("http://", "https://")) else ""
