"""Document frequencies for query-term pruning (apps/knowledge/search.py, `pick_terms`).

SQLite: an fts5vocab table over the FTS5 index (always current). PostgreSQL: a table of lexeme counts
refreshed by the `refresh_term_stats` task after publishing.
"""

from django.db import migrations


def create(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("CREATE TABLE knowledge_term_stats (lexeme text PRIMARY KEY, ndoc integer NOT NULL)")
    elif vendor == "sqlite":
        schema_editor.execute(
            "CREATE VIRTUAL TABLE knowledge_article_fts_vocab USING fts5vocab(knowledge_article_fts, 'row')"
        )


def drop(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("DROP TABLE IF EXISTS knowledge_term_stats")
    elif vendor == "sqlite":
        schema_editor.execute("DROP TABLE IF EXISTS knowledge_article_fts_vocab")


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0003_articlecitation")]

    operations = [migrations.RunPython(create, drop)]
