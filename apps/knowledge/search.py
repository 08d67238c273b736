"""Full-text search over published articles with the database's own engine, behind one function.

`search(query, language, limit)` runs on PostgreSQL (a generated `tsvector` column stemmed with each
article's language configuration, GIN-indexed, ranked with `ts_rank`) or on SQLite (an FTS5 table of
terms from `text.terms`, ranked with `bm25`). Both treat the question's words as alternatives (OR): a
customer's question rarely repeats every word of the article that answers it.

Articles in the customer's language come first; other languages only fill the remaining places, so a
German question finds the German article, and still finds an English one when no German article matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from apps.knowledge import text
from apps.knowledge.models import Article

FTS_TABLE = "knowledge_article_fts"
# bm25 weights for the FTS5 columns (title, body, lang): a match in the title counts ten times.
_BM25_WEIGHTS = "10.0, 1.0, 0.0"
# Longest question (in terms) searched: the rest adds cost, not precision.
MAX_QUERY_TERMS = 24


@dataclass(frozen=True)
class SearchHit:
    """A published article matching a query: plain values the gateway can put in a `search_result`."""

    article_id: int
    title: str
    url: str
    language: str
    body: str
    score: float  # higher is better; comparable only within one search


def search(query: str, language: str = "en", limit: int = 5) -> list[SearchHit]:
    """The best-matching published articles for `query`, preferring `language`; [] when nothing matches."""
    if limit <= 0 or not query.strip():
        return []
    engine = _search_postgresql if connection.vendor == "postgresql" else _search_sqlite
    ranked = engine(query, language, limit, same_language=True)
    if len(ranked) < limit:
        ranked += engine(query, language, limit - len(ranked), same_language=False)
    return _load(ranked)


def _load(ranked: list[tuple[int, float]]) -> list[SearchHit]:
    # Bodies are read for the few winners only: ranking never touches the article text.
    rows = Article.objects.in_bulk([article_id for article_id, _ in ranked])
    return [
        SearchHit(a.id, a.title, a.url, a.language, a.body, score)
        for article_id, score in ranked
        if (a := rows.get(article_id)) is not None
    ]


# --- PostgreSQL ---------------------------------------------------------------------------------------


def _search_postgresql(query: str, language: str, limit: int, *, same_language: bool) -> list[tuple[int, float]]:
    # plainto_tsquery ANDs the words; turning its & into | makes them alternatives, ranked by ts_rank.
    sql = f"""
        WITH q AS (
            SELECT replace(plainto_tsquery(%s::regconfig, %s)::text, ' & ', ' | ')::tsquery AS tsq
        )
        SELECT a.id, ts_rank(a.search_vector, q.tsq) AS score
        FROM knowledge_article a, q
        WHERE a.status = 'published' AND a.language {"=" if same_language else "<>"} %s
          AND q.tsq <> ''::tsquery AND a.search_vector @@ q.tsq
        ORDER BY score DESC, a.id
        LIMIT %s
    """  # noqa: S608 - the only interpolation is a fixed operator
    words = " ".join(query.split()[: MAX_QUERY_TERMS * 2])
    with connection.cursor() as cursor:
        cursor.execute(sql, [text.pg_config(language), words, language, limit])
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


# --- SQLite FTS5 --------------------------------------------------------------------------------------


def _fts_query(query: str, language: str) -> str:
    unique = list(dict.fromkeys(text.terms(query, language)))[:MAX_QUERY_TERMS]
    return " OR ".join(f'"{term}"' for term in unique)


def _lang_token(language: str) -> str:
    return f"lang{language}"


def _search_sqlite(query: str, language: str, limit: int, *, same_language: bool) -> list[tuple[int, float]]:
    match = _fts_query(query, language)
    if not match:
        return []
    lang = f"lang : {_lang_token(language)}"
    expression = f"({match}) AND {lang}" if same_language else f"({match}) NOT {lang}"
    # ORDER BY bm25 … LIMIT lets FTS5 keep only the best `limit` rows while it scans the posting lists;
    # only published articles are in the table, so no join is needed to rank.
    sql = f"""
        SELECT rowid, -bm25({FTS_TABLE}, {_BM25_WEIGHTS}) AS score
        FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s
        ORDER BY bm25({FTS_TABLE}, {_BM25_WEIGHTS}), rowid LIMIT %s
    """  # noqa: S608 - constants only
    with connection.cursor() as cursor:
        cursor.execute(sql, [expression, limit])
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def index_articles(articles: Iterable[Article]) -> None:
    """Bring the SQLite index in line with these articles (published ones in, others out).

    PostgreSQL needs nothing: its `search_vector` is a generated column.
    """
    if connection.vendor != "sqlite":
        return
    rows = list(articles)
    with connection.cursor() as cursor:
        cursor.executemany(f"DELETE FROM {FTS_TABLE} WHERE rowid = %s", [(a.id,) for a in rows])  # noqa: S608
        cursor.executemany(
            f"INSERT INTO {FTS_TABLE} (rowid, title, body, lang) VALUES (%s, %s, %s, %s)",  # noqa: S608
            [
                (
                    a.id,
                    " ".join(text.terms(a.title, a.language)),
                    " ".join(text.terms(a.body, a.language)),
                    _lang_token(a.language),
                )
                for a in rows
                if a.status == Article.Status.PUBLISHED
            ],
        )


def unindex_article(article_id: int) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {FTS_TABLE} WHERE rowid = %s", [article_id])  # noqa: S608


def rebuild_index() -> None:
    """Re-index every article (after a change to `text.terms`, or a database restored without the index)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {FTS_TABLE}")  # noqa: S608
        index_articles(Article.objects.filter(status=Article.Status.PUBLISHED).iterator(chunk_size=500))
