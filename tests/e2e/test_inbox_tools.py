"""An agent watching a conversation in the inbox sees the assistant's progress lines and confirmation
cards, live and once the answer is stored, read-only; the customer's decision shows on the card."""

import pytest
from django.core.cache import cache

from apps.actions.registry import tools
from apps.chat.models import Conversation
from apps.inbox.services import agent_make
from apps.prompts.services import prompt_seed_defaults, prompt_version_seed_tools
from tests.actions.factories import AccountFactory
from tests.chat.factories import DEMO_PASSWORD, UserFactory
from tests.conftest import set_faults
from tests.e2e.conftest import off_loop

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(llm_upstream, transactional_db):
    cache.clear()
    prompt_seed_defaults()
    prompt_version_seed_tools(slug="support-assistant", tool_names=list(tools()))
    alice = AccountFactory(user__username="alice", user__email="alice@example.com").user
    dana = agent_make(user=UserFactory(username="dana", first_name="Dana", is_staff=True))
    return alice, dana


def log_in(page, base: str, path: str, username: str) -> None:
    page.goto(f"{base}{path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_an_agent_sees_the_progress_line_and_the_card_read_only(people, asgi_server, browser_page, llm_upstream):
    alice_page = browser_page
    log_in(alice_page, asgi_server, "/", "alice")
    alice_page.wait_for_selector('#conn-state[data-state="open"]')
    # The socket opens before the server sends the conversation frame (which puts its id in the URL).
    alice_page.wait_for_function("new URLSearchParams(location.search).get('c')")
    conversation = alice_page.evaluate("new URLSearchParams(location.search).get('c')")
    assert off_loop(lambda: Conversation.objects.filter(pk=conversation, user__username="alice").exists())

    agent_context = alice_page.context.browser.new_context()
    agent_context.set_default_timeout(15_000)
    dana_page = agent_context.new_page()
    log_in(dana_page, asgi_server, f"/inbox/c/{conversation}/", "dana")
    dana_page.wait_for_selector('#inbox-conn[data-state="open"]')

    set_faults(llm_upstream, {"token_ms": 150})  # the card is shown while the answer is still written
    alice_page.get_by_label("Your message").fill("I want to cancel my subscription")
    alice_page.keyboard.press("Enter")

    live = dana_page.locator("#live-answer")
    live.locator(".confirm-card").wait_for()
    assert live.is_visible()
    assert live.locator(".tool-step").count() == 1
    assert live.locator(".confirm-summary").text_content()
    assert "Waiting for the customer" in live.locator(".confirm-outcome").text_content()
    assert live.locator("button").count() == 0  # the agent does not decide the customer's card

    # Stored: the answer's entry in the transcript carries the same line and card; the live one is gone.
    stored = dana_page.locator('#timeline li[data-kind="message"] .confirm-card')
    stored.wait_for()
    assert live.is_hidden()
    answer = dana_page.locator('#timeline li[data-kind="message"]', has=dana_page.locator(".confirm-card"))
    assert answer.locator(".tool-step").text_content().endswith(": done")
    assert answer.locator("button").count() == 0

    set_faults(llm_upstream, {})
    alice_page.locator(".confirm-card").get_by_role("button", name="Cancel").click()
    dana_page.wait_for_selector('#timeline .confirm-card[data-decision="cancelled"]')
    assert "nothing was changed" in dana_page.locator("#timeline .confirm-card .confirm-outcome").text_content()
    agent_context.close()
