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

from django.db import connection, transaction

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


# Ranking cost grows with the rows that match: every match is scored before the best few are kept. The
# question's terms are therefore taken rarest first while the rows they match (document frequency)
# stay within this budget; the rarest term is always kept. A word in most articles ("account", a
# product name) adds almost nothing to a score (its IDF is near 0) but would make every article a
# candidate.
CANDIDATE_BUDGET = 1_000


def pick_terms(frequencies: list[tuple[str, int | None]]) -> list[str]:
    """Rarest first within CANDIDATE_BUDGET. `None`: frequency unknown (new since the statistics), kept."""
    ranked = sorted(frequencies, key=lambda item: (item[1] or 0, item[0]))
    picked: list[str] = []
    spent = 0
    for term, frequency in ranked:
        if frequency == 0:
            continue  # in no article at all
        cost = frequency or 0
        if picked and spent + cost > CANDIDATE_BUDGET:
            break
        picked.append(term)
        spent += cost
    return picked


# --- PostgreSQL ---------------------------------------------------------------------------------------

TERM_STATS_TABLE = "knowledge_term_stats"
_TS_STAT_SOURCE = "SELECT search_vector FROM knowledge_article WHERE status = 'published'"


def _search_postgresql(query: str, language: str, limit: int, *, same_language: bool) -> list[tuple[int, float]]:
    words = " ".join(query.split()[: MAX_QUERY_TERMS * 2])
    with connection.cursor() as cursor:
        # The question's lexemes (stemmed like the articles) and how many articles hold each one.
        cursor.execute(
            f"""SELECT t.lexeme, s.ndoc FROM unnest(tsvector_to_array(to_tsvector(%s::regconfig, %s))) AS t(lexeme)
                LEFT JOIN {TERM_STATS_TABLE} s ON s.lexeme = t.lexeme""",  # noqa: S608 - constants only
            [text.pg_config(language), words],
        )
        terms = pick_terms(list(cursor.fetchall())[:MAX_QUERY_TERMS])
        if not terms:
            return []
        # Lexemes quoted for tsquery input: a quote inside is doubled, a backslash escaped.
        tsquery = " | ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)
        cursor.execute(
            f"""SELECT a.id, ts_rank(a.search_vector, q.tsq) AS score
                FROM knowledge_article a, (SELECT %s::tsquery AS tsq) q
                WHERE a.status = 'published' AND a.language {"=" if same_language else "<>"} %s
                  AND a.search_vector @@ q.tsq
                ORDER BY score DESC, a.id LIMIT %s""",  # noqa: S608 - the only interpolation is a fixed operator
            [tsquery, language, limit],
        )
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def refresh_term_stats() -> int:
    """Recount how many published articles hold each lexeme (PostgreSQL); returns the lexemes counted.

    A full pass over the index (~2 s at 10,000 articles), so it runs in a task after publishing. Until
    it has run, new lexemes count as rare: stale statistics change which terms are searched, not
    whether an article can be found.
    """
    if connection.vendor != "postgresql":
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TERM_STATS_TABLE}")  # noqa: S608
        cursor.execute(
            f"INSERT INTO {TERM_STATS_TABLE} (lexeme, ndoc) SELECT word, ndoc FROM ts_stat(%s)",  # noqa: S608
            [_TS_STAT_SOURCE],
        )
        return cursor.rowcount


# --- SQLite FTS5 --------------------------------------------------------------------------------------

FTS_VOCAB = "knowledge_article_fts_vocab"


def _lang_token(language: str) -> str:
    return f"lang{language}"


def _sqlite_terms(query: str, language: str) -> list[str]:
    unique = list(dict.fromkeys(text.terms(query, language)))[:MAX_QUERY_TERMS]
    if not unique:
        return []
    placeholders = ", ".join(["%s"] * len(unique))
    with connection.cursor() as cursor:
        # fts5vocab reads document counts straight from the index, always current.
        cursor.execute(f"SELECT term, doc FROM {FTS_VOCAB} WHERE term IN ({placeholders})", unique)  # noqa: S608
        counts = dict(cursor.fetchall())
    return pick_terms([(term, counts.get(term, 0)) for term in unique])


def _search_sqlite(query: str, language: str, limit: int, *, same_language: bool) -> list[tuple[int, float]]:
    terms = _sqlite_terms(query, language)
    if not terms:
        return []
    match = " OR ".join(f'"{term}"' for term in terms)
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
