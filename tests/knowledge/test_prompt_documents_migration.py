"""Migration 0005: the live version's reference documents become published articles and the first snapshot,
and the system prefix customers are served does not change by a byte."""

import importlib
from dataclasses import replace

import pytest
from django.apps import apps as django_apps

from apps.knowledge import grounding, search
from apps.knowledge.models import Article, KnowledgeSnapshot
from apps.llm.prompting import system_blocks_json
from apps.prompts.models import PromptVersion
from apps.prompts.services import prompt_seed_defaults

from .factories import make_article

pytestmark = pytest.mark.django_db(transaction=True)

migration = importlib.import_module("apps.knowledge.migrations.0005_articles_from_prompt_documents")


def live_parts():
    version = PromptVersion.objects.get(prompt__slug="support-assistant", status="active")
    return version, version.to_parts()


def test_documents_become_articles_and_the_served_prefix_is_byte_identical(settings):
    settings.KNOWLEDGE_PREFIX_MAX_TOKENS = 1_000_000  # the seeded base is served whole, as before
    prompt_seed_defaults()
    version, parts = live_parts()
    before = system_blocks_json(parts)
    assert grounding.prompt_parts_grounded(parts) == (parts, None)  # no snapshot: the version's documents

    migration.articles_from_live_documents(django_apps, None)

    documents = list(version.reference_documents.order_by("position"))
    articles = list(Article.objects.order_by("id"))
    assert [(a.title, a.status, a.tags) for a in articles] == [
        (d.title, "published", ["from-prompt"]) for d in documents
    ]
    snapshot = KnowledgeSnapshot.objects.get()
    assert snapshot.article_count == len(documents)
    grounded, mode = grounding.prompt_parts_grounded(parts)
    assert (mode, grounded.knowledge_snapshot_id) == ("prefix", snapshot.pk)
    assert system_blocks_json(replace(grounded, knowledge_snapshot_id=None)) == before
    # …and the articles are searchable at once.
    assert search.search("invoice", "en", 3)


def test_a_team_that_already_has_articles_is_left_alone():
    prompt_seed_defaults()
    make_article(title="Ours", body="Our own article.")
    migration.articles_from_live_documents(django_apps, None)
    assert list(Article.objects.values_list("title", flat=True)) == ["Ours"]


def test_no_live_version_does_nothing():
    migration.articles_from_live_documents(django_apps, None)
    assert not Article.objects.exists() and not KnowledgeSnapshot.objects.exists()
