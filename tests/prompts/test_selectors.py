"""A/B assignment, stickiness across publishes, diffs, bump suggestions and dynamic-content warnings."""

import hashlib
from collections import Counter

import pytest

from apps.core.exceptions import NotFound
from apps.prompts import selectors, services
from apps.prompts.models import PromptVersion
from tests.prompts.factories import PromptFactory, PromptVersionFactory, StaffFactory

pytestmark = pytest.mark.django_db

Status = PromptVersion.Status


@pytest.fixture
def ab_rollout():
    prompt = PromptFactory(slug="support-assistant")
    a = PromptVersionFactory(prompt=prompt, major=1, minor=0, status=Status.ACTIVE, weight=70)
    b = PromptVersionFactory(prompt=prompt, major=1, minor=1, status=Status.ACTIVE, weight=30)
    PromptVersionFactory(prompt=prompt, major=1, minor=2)  # a draft never serves
    PromptVersionFactory(prompt=prompt, major=0, minor=9, status=Status.RETIRED)
    return a, b


def test_70_30_split_over_10000_conversations(ab_rollout):
    a, b = ab_rollout
    versions = selectors.prompt_versions_active(slug="support-assistant")
    counts = Counter(
        selectors.pick_weighted(versions, slug="support-assistant", key=f"conversation-{i}").pk for i in range(10_000)
    )
    assert set(counts) == {a.pk, b.pk}
    # Binomial sd ≈ 46 for n=10,000, p=0.7: ±2 % is > 4 sd.
    assert 6800 <= counts[a.pk] <= 7200
    # And the public selector agrees with the in-memory pick.
    assert (
        selectors.prompt_version_for_conversation(slug="support-assistant", conversation_key="conversation-7").pk
        == selectors.pick_weighted(versions, slug="support-assistant", key="conversation-7").pk
    )


def test_assignment_is_a_stable_sha256_of_slug_and_key(ab_rollout):
    a, b = ab_rollout
    key = "8d0f7a52-0000-4000-8000-000000000001"
    first = selectors.prompt_version_for_conversation(slug="support-assistant", conversation_key=key)
    again = [
        selectors.prompt_version_for_conversation(slug="support-assistant", conversation_key=key) for _ in range(5)
    ]
    assert {v.pk for v in again} == {first.pk}
    point = int.from_bytes(hashlib.sha256(f"support-assistant:{key}".encode()).digest()[:8], "big") % 100
    assert first == (a if point < 70 else b)


def test_no_active_version_raises_a_clear_not_found():
    prompt = PromptFactory(slug="transcript-classifier")
    PromptVersionFactory(prompt=prompt)  # only a draft
    with pytest.raises(NotFound) as err:
        selectors.prompt_version_active(slug="transcript-classifier")
    assert err.value.code == "prompt_no_active_version"
    assert "transcript-classifier" in err.value.message
    with pytest.raises(NotFound):
        selectors.prompt_version_for_conversation(slug="nope", conversation_key="x")


def test_active_without_key_is_the_heaviest_version_and_with_key_is_weighted(ab_rollout):
    a, b = ab_rollout
    assert selectors.prompt_version_active(slug="support-assistant") == a
    picks = {selectors.prompt_version_active(slug="support-assistant", key=f"day-{i}").pk for i in range(200)}
    assert picks == {a.pk, b.pk}


def test_publish_and_rollback_change_new_conversations_only():
    actor = StaffFactory()
    services.prompt_seed_defaults()
    v1 = PromptVersion.objects.get(prompt__slug="support-assistant")
    # A conversation starts on 1.0.0; the chat app stores the version id on it.
    stored_id = selectors.prompt_version_for_conversation(slug="support-assistant", conversation_key="old").pk

    v2 = services.prompt_version_create_draft(prompt=v1.prompt, based_on=v1, actor=actor, persona="Ava v2")
    services.prompt_version_publish(version=v2, actor=actor)
    new = selectors.prompt_version_for_conversation(slug="support-assistant", conversation_key="new")
    assert new == v2
    running = selectors.prompt_version_get(version_id=stored_id)
    assert (running, running.status) == (v1, Status.RETIRED)  # still serves the old conversation
    assert running.to_parts().persona != "Ava v2"

    services.prompt_version_rollback(to_version=v1, actor=actor)
    assert selectors.prompt_version_for_conversation(slug="support-assistant", conversation_key="newer") == v1
    assert selectors.prompt_version_get(version_id=v2.pk).to_parts().persona == "Ava v2"


def test_traffic_shares(ab_rollout):
    a, b = ab_rollout
    assert selectors.prompt_traffic_shares(prompt=a.prompt) == {a.pk: 0.7, b.pk: 0.3}


def test_diff_marks_changed_parts_only():
    base = PromptVersionFactory(business_rules="1. Be accurate.\n2. Be kind.")
    other = PromptVersionFactory(prompt=base.prompt, business_rules="1. Be accurate.\n2. Be very kind.\n<script>")
    diffs = {d.part: d for d in selectors.prompt_version_diff(a=base, b=other)}
    assert diffs["business_rules"].changed
    assert '<span class="diff_add">&nbsp;very</span>' in diffs["business_rules"].table_html
    assert "<script>" not in diffs["business_rules"].table_html  # prompt text is escaped
    assert 'class="diff"' in diffs["business_rules"].table_html
    assert not diffs["persona"].changed and diffs["persona"].table_html == ""


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"output_format": "Return JSON only."}, "major"),
        ({"business_rules": "Completely different rules about refunds and invoices."}, "minor"),
        ({"max_tokens": 2048}, "minor"),
        ({"persona": "You are Ava, Acme's support assistent."}, "patch"),
        ({}, "patch"),
    ],
)
def test_bump_suggestion(change, expected):
    base = PromptVersionFactory(persona="You are Ava, Acme's support assistant.")
    fields = {"persona": base.persona, "business_rules": base.business_rules, **change}
    draft = PromptVersionFactory(prompt=base.prompt, **fields)
    assert selectors.suggest_bump(base=base, draft=draft) == expected


def test_dynamic_content_added_to_the_cached_prefix_is_flagged():
    base = PromptVersionFactory(persona="You are Ava.", few_shot_examples="Invoice issued 2026-09-15.")
    edited = PromptVersionFactory(
        prompt=base.prompt,
        persona="You are Ava. Today is {{ today }}. Last sync at 14:05.",
        few_shot_examples="Invoice issued 2026-09-15.",
    )
    warnings = selectors.dynamic_content_warnings(version=edited, base=base)
    text = " ".join(warnings)
    assert "template placeholder" in text and "time of day" in text
    assert "2026-09-15" not in text  # already in the base: not something this edit moved in
    assert selectors.dynamic_content_warnings(version=base, base=base) == []


def test_first_version_is_only_warned_about_always_dynamic_content():
    clean = PromptVersionFactory(few_shot_examples="Invoice issued 2026-09-15.")
    assert selectors.dynamic_content_warnings(version=clean, base=None) == []
    templated = PromptVersionFactory(persona="Hello {{ user.name }}")
    assert len(selectors.dynamic_content_warnings(version=templated, base=None)) == 1
