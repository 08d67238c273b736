"""A customer in headless Chromium sees the help-centre article an answer cited, as a link under it."""

import pytest
from django.core.cache import cache

from apps.knowledge import services as knowledge_services
from apps.prompts.services import prompt_seed_defaults
from tests.chat.factories import CustomerAccountFactory
from tests.e2e.test_chat_page import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bob_with_a_large_base(llm_upstream, transactional_db, settings):
    cache.clear()
    prompt_seed_defaults()
    settings.KNOWLEDGE_PREFIX_MAX_TOKENS = 10  # retrieval mode: articles go as search results with citations
    knowledge_services.article_create(
        title="Update your credit card",
        url="https://help.example.com/en/card",
        body="To update your credit card, open Billing and choose Payment method.",
        status="published",
    )
    knowledge_services.article_create(
        title="Export your data", body="Settings then Data export produces a ZIP archive.", status="published"
    )
    return CustomerAccountFactory(user__username="bob").user


def test_a_cited_article_is_linked_under_the_answer(bob_with_a_large_base, asgi_server, browser_page):
    page = browser_page
    page.goto(f"{asgi_server}/")
    log_in(page)

    page.get_by_label("Your message").fill("How do I update my credit card?")
    page.keyboard.press("Enter")
    page.wait_for_selector('.msg-assistant[data-status="complete"]')
    link = page.locator(".msg-assistant .sources a")
    link.wait_for()
    assert link.text_content() == "Update your credit card"
    assert link.get_attribute("href") == "https://help.example.com/en/card"
    assert "Payment method" in page.locator(".msg-assistant .msg-text").text_content()

    # Stored with the message: a reload shows the same link from the history.
    page.reload()
    page.wait_for_selector('#conn-state[data-state="open"]')
    reloaded = page.locator(".msg-assistant .sources a")
    reloaded.wait_for()
    assert reloaded.get_attribute("href") == "https://help.example.com/en/card"
