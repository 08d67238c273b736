"""A quick evaluation started from the admin in a real browser: Evaluate… on a draft, then the comparison."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from apps.evaluations.services import evaluation_set_seed_demo
from apps.prompts.models import PromptVersion
from apps.prompts.services import prompt_seed_defaults, prompt_version_create_draft
from tests.chat.factories import DEMO_PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def draft(llm_upstream, transactional_db) -> PromptVersion:
    cache.clear()
    prompt_seed_defaults()
    evaluation_set_seed_demo()
    get_user_model().objects.create_superuser("root", "root@acme.example", DEMO_PASSWORD)
    active = PromptVersion.objects.get(prompt__slug="support-assistant", status="active")
    return prompt_version_create_draft(prompt=active.prompt, based_on=active, bump="patch", actor=None)


def test_a_quick_evaluation_from_the_admin_shows_the_comparison(draft, asgi_server, browser_page) -> None:
    page = browser_page
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.goto(f"{asgi_server}/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{asgi_server}/admin/")

    page.goto(f"{asgi_server}/admin/prompts/promptversion/{draft.pk}/change/")
    page.click("text=Evaluate…")
    page.check("input[name=mode][value=quick]")
    page.fill("#id_k", "1")
    page.click("input[type=submit][value=Evaluate]")
    page.wait_for_selector("#comparison", timeout=60_000)

    assert page.inner_text("#run-status") == "Done"
    header = page.locator("#comparison thead").text_content()
    assert f"candidate {draft.version}" in header and "live 1." in header
    rows = page.inner_text("#comparison tbody")
    assert "pass rate" in rows and "pass^1" in rows and "%" in rows
    assert problems == []
