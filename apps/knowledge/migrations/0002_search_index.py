"""The full-text index, in each engine's own form (see apps/knowledge/search.py).

PostgreSQL: a stored generated `search_vector` (title weighted A, body B) stemmed with the article's
language configuration, and a GIN index on it. SQLite: an FTS5 table of pre-stemmed terms whose rowid is
the article id, holding published articles only (kept in line by the services).
"""

from django.db import migrations

from apps.knowledge.text import PG_CONFIGS


def _pg_config_case() -> str:
    branches = " ".join(f"WHEN '{code}' THEN '{name}'::regconfig" for code, name in PG_CONFIGS.items())
    return f"CASE language {branches} ELSE 'simple'::regconfig END"


def create_index(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        config = _pg_config_case()
        schema_editor.execute(
            "ALTER TABLE knowledge_article ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
            f"setweight(to_tsvector({config}, coalesce(title, '')), 'A') || "
            f"setweight(to_tsvector({config}, coalesce(body, '')), 'B')) STORED"
        )
        schema_editor.execute(
            "CREATE INDEX knowledge_article_search_idx ON knowledge_article USING gin (search_vector)"
        )
    elif vendor == "sqlite":
        schema_editor.execute(
            "CREATE VIRTUAL TABLE knowledge_article_fts USING fts5("
            "title, body, lang, tokenize = 'unicode61 remove_diacritics 2')"
        )


def drop_index(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS knowledge_article_search_idx")
        schema_editor.execute("ALTER TABLE knowledge_article DROP COLUMN IF EXISTS search_vector")
    elif vendor == "sqlite":
        schema_editor.execute("DROP TABLE IF EXISTS knowledge_article_fts")


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [migrations.RunPython(create_index, drop_index)]
