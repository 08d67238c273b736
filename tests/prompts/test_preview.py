"""The admin preview: the exact request (through apps.llm, counted by the emulator over real HTTP)."""

import pytest
from django.urls import reverse

from apps.prompts import selectors, services
from apps.prompts.models import PromptVersion
from tests.conftest import received_requests
from tests.prompts.factories import PromptVersionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_preview_of_the_seeded_assistant_shows_the_cached_request(admin_client_, llm_upstream):
    services.prompt_seed_defaults()
    version = PromptVersion.objects.get(prompt__slug="support-assistant")
    response = admin_client_.get(
        reverse("admin:prompts_promptversion_preview", args=[version.pk]), {"user_text": "Where is my invoice?"}
    )
    assert response.status_code == 200
    result = response.context["result"]
    system = result.params["system"]
    assert any("cache_control" in block for block in system)  # breakpoints are visible to the admin
    assert "Where is my invoice?" in str(result.params["messages"])
    assert "<account_context>" in str(result.params["messages"])  # the sample user turn carries context
    assert not result.estimated  # counted by the emulator's count_tokens, not guessed
    assert result.cached_prefix_tokens >= result.min_cacheable_tokens > 0
    body = response.content.decode()
    assert "Cached prefix tokens" in body and str(result.input_tokens) in body
    counted = [r for r in received_requests(llm_upstream) if r["path"] == "/v1/messages/count_tokens"]
    assert counted and all("temperature" not in (r["body"] or {}) for r in counted)


def test_preview_warns_about_a_short_prefix_and_moved_dynamic_content(admin_client_, llm_upstream):
    base = PromptVersionFactory(persona="You are Ava.", business_rules="Be brief.")
    edited = PromptVersionFactory(
        prompt=base.prompt, based_on=base, persona="You are Ava. Today is {{ date }}.", business_rules="Be brief."
    )
    preview = selectors.prompt_version_preview(version=edited, sample_user_text="hi", account_context="")
    text = " ".join(preview.warnings)
    assert "below the" in text and "minimum" in text  # a few tokens cannot be cached
    assert "template placeholder" in text and "since " + base.version in text

    response = admin_client_.get(reverse("admin:prompts_promptversion_preview", args=[edited.pk]))
    assert response.status_code == 200
    assert "template placeholder" in response.content.decode()


def test_preview_shows_the_ttl_and_its_break_even(admin_client_, llm_upstream):
    services.prompt_seed_defaults()
    version = PromptVersion.objects.get(prompt__slug="support-assistant")
    PromptVersion.objects.filter(pk=version.pk).update(cache_ttl="1h")  # bypasses the published lock on purpose
    version.refresh_from_db()
    response = admin_client_.get(
        reverse("admin:prompts_promptversion_preview", args=[version.pk]), {"user_text": "Where is my invoice?"}
    )
    body = response.content.decode()
    result = response.context["result"]
    assert result.cache.ttl == "1h" and '<td id="cache-ttl">1h</td>' in body
    assert "from 1.65 requests an hour" in body
    assert all(
        block["cache_control"].get("ttl") == "1h" for block in result.params["system"] if "cache_control" in block
    )
