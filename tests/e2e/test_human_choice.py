"""Two browser contexts: bob chooses "Talk to a person" before his first question; it appears in Dana's
queue live, the assistant never answers, and Dana's reply reaches him."""

import pytest

from apps.chat.models import Conversation, Message
from tests.e2e.conftest import off_loop
from tests.e2e.test_inbox import log_in, people  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_customer_chooses_a_person_and_an_agent_sees_it_live(people, asgi_server, browser_page):  # noqa: F811
    bob_page = browser_page
    agent_context = bob_page.context.browser.new_context()
    agent_context.set_default_timeout(15_000)
    dana_page = agent_context.new_page()
    log_in(dana_page, asgi_server, "/inbox/", "dana")
    dana_page.wait_for_selector('#inbox-conn[data-state="open"]')

    log_in(bob_page, asgi_server, "/", "bob")
    bob_page.wait_for_selector('#conn-state[data-state="open"]')
    choice = bob_page.get_by_role("group", name="Who would you like to answer you?")
    choice.wait_for()
    choice.get_by_role("button", name="Talk to a person").click()
    assert choice.is_hidden()
    bob_page.get_by_label("Your message").fill("I need to change the owner of our account")
    bob_page.keyboard.press("Enter")
    # Dana is online: bob is told a person joins shortly; nothing from the assistant.
    bob_page.wait_for_selector("#notice:has-text('A person from our team will join shortly.')")
    assert bob_page.get_by_role("button", name="Talk to a human").is_hidden()  # people answer already
    bob_page.locator("#conversation-list button", has_text="I need to change the owner").wait_for()

    item = dana_page.locator(".queue-item", has_text="I need to change the owner of our account")
    item.wait_for()
    assert "Waiting" in item.text_content() and "bob" in item.text_content()
    assert "Customer chose a person" in item.text_content()  # the reason agents see
    item.locator("a").click()
    dana_page.get_by_role("button", name="Claim").click()
    bob_page.wait_for_selector("#notice:has-text('Dana from Acme joined.')")
    dana_page.get_by_placeholder("Reply to the customer").fill("Happy to help: who is the new owner?")
    dana_page.get_by_role("button", name="Send to customer").click()
    bob_page.wait_for_selector(".msg-agent:has-text('who is the new owner?')")

    assert bob_page.locator(".msg-assistant").count() == 0
    roles = off_loop(lambda: list(Message.objects.order_by("id").values_list("role", flat=True)))
    assert roles == ["user", "agent"]
    reason = off_loop(lambda: Conversation.objects.get().handoff_reason)
    assert reason == "Customer chose a person"
    agent_context.close()


def test_the_choice_is_hidden_when_the_setting_is_off(people, asgi_server, browser_page, settings):  # noqa: F811
    settings.CHAT_OFFER_HUMAN_CHOICE = False
    log_in(browser_page, asgi_server, "/", "bob")
    browser_page.wait_for_url("**/?c=*")  # the conversation frame was handled
    assert browser_page.locator("#choice").is_hidden()
    browser_page.get_by_label("Your message").fill("How do refunds work?")
    browser_page.keyboard.press("Enter")
    browser_page.wait_for_selector('.msg-assistant[data-status="complete"]')
