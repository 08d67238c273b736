"""Version lifecycle: numbering, immutability, publish / roll back / retire / weights, audit, seeding."""

import pytest

from apps.accounts import demo_content
from apps.core.exceptions import ApplicationError
from apps.prompts import services
from apps.prompts.models import PromptAuditLog, PromptVersion, ReferenceDocument
from tests.prompts.factories import PromptFactory, PromptVersionFactory, StaffFactory

pytestmark = pytest.mark.django_db

Status = PromptVersion.Status
Action = PromptAuditLog.Action


@pytest.fixture
def actor():
    return StaffFactory()


@pytest.fixture
def published(actor):
    """support-like prompt with 1.2.3 active, with two reference documents."""
    prompt = PromptFactory(slug="support-assistant")
    first = services.prompt_version_create_draft(
        prompt=prompt,
        actor=actor,
        persona="Ava",
        business_rules="rules",
        output_format="markdown",
        few_shot_examples="",
        reference_documents=[("Plans", "Free, Pro"), ("Refunds", "30 days")],
        max_tokens=900,
    )
    first.major, first.minor, first.patch = 1, 2, 3
    first.save()
    return services.prompt_version_publish(version=first, actor=actor)


def test_first_version_of_a_prompt_is_1_0_0(actor):
    draft = services.prompt_version_create_draft(prompt=PromptFactory(), actor=actor, persona="p")
    assert (draft.version, draft.status, draft.weight) == ("1.0.0", Status.DRAFT, 0)


@pytest.mark.parametrize(("bump", "expected"), [("major", "2.0.0"), ("minor", "1.3.0"), ("patch", "1.2.4")])
def test_new_draft_bumps_the_base_version(published, actor, bump, expected):
    draft = services.prompt_version_create_draft(prompt=published.prompt, based_on=published, bump=bump, actor=actor)
    assert draft.version == expected
    assert draft.based_on == published


def test_bump_skips_numbers_already_taken(published, actor):
    services.prompt_version_create_draft(prompt=published.prompt, based_on=published, bump="minor", actor=actor)
    second = services.prompt_version_create_draft(
        prompt=published.prompt, based_on=published, bump="minor", actor=actor
    )
    assert second.version == "1.4.0"


def test_unknown_bump_is_refused(published, actor):
    with pytest.raises(ApplicationError) as err:
        services.prompt_version_create_draft(prompt=published.prompt, based_on=published, bump="huge", actor=actor)
    assert err.value.code == "invalid_bump"


def test_new_draft_copies_every_part_and_document_and_applies_overrides(published, actor):
    draft = services.prompt_version_create_draft(
        prompt=published.prompt, based_on=published, actor=actor, business_rules="new rules"
    )
    assert (draft.persona, draft.output_format, draft.max_tokens) == ("Ava", "markdown", 900)
    assert draft.business_rules == "new rules"
    assert draft.reference_document_pairs() == (("Plans", "Free, Pro"), ("Refunds", "30 days"))
    # The published version is untouched.
    published.refresh_from_db()
    assert published.business_rules == "rules"
    assert published.reference_documents.count() == 2


def test_published_version_content_cannot_be_changed(published, actor):
    with pytest.raises(ApplicationError) as err:
        services.prompt_version_update_draft(version=published, actor=actor, persona="changed")
    assert err.value.code == "prompt_version_immutable"

    # Even code that bypasses the services cannot change a published version or its documents.
    published.persona = "sneaky"
    with pytest.raises(ApplicationError):
        published.save()
    document = ReferenceDocument.objects.filter(version=published).first()
    document.body = "sneaky"
    with pytest.raises(ApplicationError):
        document.save()
    with pytest.raises(ApplicationError):
        ReferenceDocument.objects.create(version=published, title="new", body="x")
    assert PromptVersion.objects.get(pk=published.pk).persona == "Ava"


def test_drafts_can_be_edited_and_the_edit_is_audited(published, actor):
    draft = services.prompt_version_create_draft(prompt=published.prompt, based_on=published, actor=actor)
    services.prompt_version_update_draft(
        version=draft, actor=actor, persona="Ava 2", reference_documents=[("Plans", "Free, Pro, Enterprise")]
    )
    draft.refresh_from_db()
    assert draft.persona == "Ava 2"
    assert draft.reference_document_pairs() == (("Plans", "Free, Pro, Enterprise"),)
    entry = PromptAuditLog.objects.filter(version=draft, action=Action.DRAFT_EDITED).get()
    assert entry.actor == actor
    assert entry.detail["changed"] == ["persona", "reference_documents"]


def test_exclusive_publish_retires_the_other_active_versions(published, actor):
    draft = services.prompt_version_create_draft(prompt=published.prompt, based_on=published, actor=actor)
    services.prompt_version_publish(version=draft, actor=actor)
    published.refresh_from_db()
    draft.refresh_from_db()
    assert (draft.status, draft.weight, draft.published_by) == (Status.ACTIVE, 100, actor)
    assert (published.status, published.weight) == (Status.RETIRED, 0)
    entry = PromptAuditLog.objects.get(version=draft, action=Action.PUBLISHED)
    assert (entry.from_status, entry.to_status, entry.actor) == ("draft", "active", actor)
    assert entry.detail == {"weight": 100, "exclusive": True, "retired": ["1.2.3"]}
    retired_entry = PromptAuditLog.objects.get(version=published, action=Action.RETIRED)
    assert retired_entry.detail["replaced_by"] == "1.3.0"


def test_ab_publish_keeps_the_other_versions_serving(published, actor):
    draft = services.prompt_version_create_draft(prompt=published.prompt, based_on=published, actor=actor)
    services.prompt_version_publish(version=draft, actor=actor, weight=30, exclusive=False)
    published.refresh_from_db()
    assert (published.status, published.weight) == (Status.ACTIVE, 100)
    assert PromptVersion.objects.get(pk=draft.pk).weight == 30


def test_only_drafts_can_be_published(published, actor):
    with pytest.raises(ApplicationError) as err:
        services.prompt_version_publish(version=published, actor=actor)
    assert err.value.code == "invalid_transition"
    draft = services.prompt_version_create_draft(prompt=published.prompt, based_on=published, actor=actor)
    with pytest.raises(ApplicationError) as err:
        services.prompt_version_publish(version=draft, actor=actor, weight=0)
    assert err.value.code == "invalid_weight"


def test_rollback_restores_an_old_version_as_the_only_active_one(published, actor):
    draft = services.prompt_version_create_draft(prompt=published.prompt, based_on=published, actor=actor)
    services.prompt_version_publish(version=draft, actor=actor)
    services.prompt_version_rollback(to_version=published, actor=actor)
    published.refresh_from_db()
    draft.refresh_from_db()
    assert (published.status, published.weight) == (Status.ACTIVE, 100)
    assert draft.status == Status.RETIRED
    entry = PromptAuditLog.objects.get(action=Action.ROLLED_BACK)
    assert (entry.version, entry.from_status, entry.to_status, entry.actor) == (published, "retired", "active", actor)
    assert entry.detail["retired"] == ["1.3.0"]


def test_rollback_to_a_draft_is_refused(published, actor):
    draft = services.prompt_version_create_draft(prompt=published.prompt, based_on=published, actor=actor)
    with pytest.raises(ApplicationError) as err:
        services.prompt_version_rollback(to_version=draft, actor=actor)
    assert err.value.code == "invalid_transition"


def test_the_last_serving_version_cannot_be_retired_or_zeroed(published, actor):
    with pytest.raises(ApplicationError) as err:
        services.prompt_version_retire(version=published, actor=actor)
    assert err.value.code == "last_active_version"
    with pytest.raises(ApplicationError) as err:
        services.prompt_version_set_weight(version=published, weight=0, actor=actor)
    assert err.value.code == "last_active_version"
    assert PromptVersion.objects.get(pk=published.pk).status == Status.ACTIVE


def test_retire_and_reweight_in_an_ab_rollout(published, actor):
    draft = services.prompt_version_create_draft(prompt=published.prompt, based_on=published, actor=actor)
    services.prompt_version_publish(version=draft, actor=actor, weight=50, exclusive=False)
    services.prompt_version_set_weight(version=published, weight=70, actor=actor)
    weight_entry = PromptAuditLog.objects.get(action=Action.WEIGHT_CHANGED)
    assert weight_entry.detail == {"from": 100, "to": 70}

    services.prompt_version_retire(version=draft, actor=actor)
    draft.refresh_from_db()
    assert (draft.status, draft.weight) == (Status.RETIRED, 0)
    assert draft.retired_at is not None
    entry = PromptAuditLog.objects.get(version=draft, action=Action.RETIRED)
    assert (entry.from_status, entry.to_status, entry.detail) == ("active", "retired", {"weight": 50})
    with pytest.raises(ApplicationError) as err:
        services.prompt_version_retire(version=draft, actor=actor)
    assert err.value.code == "invalid_transition"


def test_to_parts_returns_documents_in_position_order():
    version = PromptVersionFactory(model_tier="haiku", max_tokens=400)
    ReferenceDocument.objects.create(version=version, position=2, title="B", body="b")
    ReferenceDocument.objects.create(version=version, position=1, title="A", body="a")
    parts = version.to_parts()
    assert parts.reference_documents == (("A", "a"), ("B", "b"))
    assert (parts.slug, parts.version, parts.version_id) == (version.prompt.slug, version.version, version.pk)
    assert (parts.model_tier, parts.max_tokens) == ("haiku", 400)


def test_seed_defaults_is_idempotent_and_uses_the_demo_content():
    created = services.prompt_seed_defaults()
    assert sorted(v.prompt.slug for v in created) == ["support-assistant", "transcript-classifier"]
    assert services.prompt_seed_defaults() == []
    assert PromptVersion.objects.count() == 2

    support = PromptVersion.objects.get(prompt__slug="support-assistant")
    assert (support.version, support.status, support.weight) == ("1.0.0", Status.ACTIVE, 100)
    parts = support.to_parts()
    assert parts.persona == demo_content.load_text("persona.txt")
    assert parts.reference_documents == tuple(demo_content.knowledge_base_documents())
    assert (parts.model_tier, parts.max_tokens) == ("", 1024)

    classifier = PromptVersion.objects.get(prompt__slug="transcript-classifier").to_parts()
    assert classifier.output_format == demo_content.load_text("classifier_output_format.txt")
    assert classifier.reference_documents == ()
    assert (classifier.model_tier, classifier.max_tokens) == ("haiku", 400)
    assert PromptAuditLog.objects.filter(action=Action.PUBLISHED, actor=None).count() == 2


def test_an_invalid_model_route_is_refused(actor):
    with pytest.raises(Exception, match="model_tier"):
        services.prompt_version_create_draft(prompt=PromptFactory(), actor=actor, model_tier="gpt-4")
