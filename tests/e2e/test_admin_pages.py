"""Issue 5: the prompt admin pages render in a real browser without errors.

An admin logs in through the admin login form and opens every prompt page (list, change, diff,
preview, the new-draft page, the confirmations) plus the per-version metrics and the nightly report
list; each must answer 200 and raise no JavaScript error or console error.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from apps.prompts.models import PromptVersion
from apps.prompts.services import prompt_seed_defaults, prompt_version_create_draft
from tests.chat.factories import DEMO_PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_pages(llm_upstream, transactional_db) -> list[str]:
    cache.clear()
    prompt_seed_defaults()
    get_user_model().objects.create_superuser("root", "root@acme.example", DEMO_PASSWORD)
    active = PromptVersion.objects.get(prompt__slug="support-assistant", status="active")
    draft = prompt_version_create_draft(prompt=active.prompt, based_on=active, bump="patch", actor=None)
    base = "/admin/prompts/promptversion"
    return [
        "/admin/",
        f"{base}/",
        f"{base}/{active.pk}/change/",
        f"{base}/{draft.pk}/change/",
        f"{base}/diff/?a={active.pk}&b={draft.pk}",
        f"{base}/{active.pk}/preview/",
        f"{base}/{active.pk}/new-draft/",
        f"{base}/{draft.pk}/publish/",
        f"{base}/{active.pk}/retire/",
        "/admin/insights/",
        "/admin/llm/llmcall/",
        "/admin/llm/routingrule/",
        "/admin/triage/dailyreport/",
        "/admin/chat/conversation/",
    ]


def test_admin_pages_render_without_errors(admin_pages, asgi_server, browser_page) -> None:
    page = browser_page
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: problems.append(f"console: {m.text} {m.location}") if m.type == "error" else None)

    page.goto(f"{asgi_server}/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{asgi_server}/admin/")

    for path in admin_pages:
        response = page.goto(f"{asgi_server}{path}")
        assert response is not None and response.status == 200, (path, response and response.status)
        assert page.locator("#content").count() == 1, path  # the admin layout rendered
    assert problems == []
