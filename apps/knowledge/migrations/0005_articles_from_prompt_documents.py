"""Move the knowledge base out of the prompt: the live support-assistant version's reference documents
become published articles, and the first knowledge snapshot is taken from them.

What customers are served stays byte-identical: articles are created in the documents' order (so the
snapshot's id order is their position order), with the same titles and bodies and no URL, and the system
prefix renders a snapshot exactly as it rendered the version's documents (`documents_text` strips each
body). It differs only when live versions under A/B carry different documents: the version with the
largest weight (then the newest) wins, and the others are served that version's articles.

Nothing happens on a database that already has articles (the team manages them already) or no live
version with documents (a new install: seed_demo publishes the demo help centre). The version's own
documents stay in place, unused while a snapshot exists; reverse does nothing.
"""

from django.db import migrations, transaction
from django.utils import timezone

SLUG = "support-assistant"


def articles_from_live_documents(apps, schema_editor) -> None:
    from apps.knowledge import search
    from apps.knowledge.services import forget_current_snapshot, snapshot_figures

    article_model = apps.get_model("knowledge", "Article")
    snapshot_model = apps.get_model("knowledge", "KnowledgeSnapshot")
    version_model = apps.get_model("prompts", "PromptVersion")
    document_model = apps.get_model("prompts", "ReferenceDocument")
    if article_model.objects.exists():
        return
    version = (
        version_model.objects.filter(prompt__slug=SLUG, status="active")
        .order_by("-weight", "-major", "-minor", "-patch", "-id")
        .first()
    )
    if version is None:
        return
    documents = list(document_model.objects.filter(version=version).order_by("position", "id"))
    if not documents:
        return
    now = timezone.now()
    for document in documents:
        article_model.objects.create(
            title=document.title,
            body=document.body.strip() + "\n",
            language="en",
            tags=["from-prompt"],
            status="published",
            external_id=f"prompt-document:{version.pk}:{document.position}",
            published_at=now,
        )
    fields = ("id", "title", "url", "language", "body")
    articles = list(article_model.objects.filter(status="published").order_by("id").values(*fields))
    snapshot_model.objects.create(articles=articles, **snapshot_figures(articles))
    # The search index (SQLite's FTS table; PostgreSQL's column is generated) and its term statistics.
    search.rebuild_index()
    search.refresh_term_stats()
    # Running servers read "no snapshot yet" from the cache for up to 30 s otherwise.
    transaction.on_commit(forget_current_snapshot)


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0004_term_statistics"),
        ("prompts", "0003_version_tools"),
    ]

    operations = [migrations.RunPython(articles_from_live_documents, migrations.RunPython.noop)]
