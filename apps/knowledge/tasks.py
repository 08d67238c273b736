"""Celery entry points. Thin: call one function, safe to run twice."""

from celery import shared_task

from apps.knowledge import search


@shared_task(name="apps.knowledge.tasks.refresh_term_stats")
def refresh_term_stats() -> int:
    """Recount the published articles' lexemes for query-term pruning (PostgreSQL; a no-op on SQLite)."""
    return search.refresh_term_stats()
