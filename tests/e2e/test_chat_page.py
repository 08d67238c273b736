"""A customer in headless Chromium: log in, watch an answer stream, stop another, rate the first."""

import pytest
from django.core.cache import cache

from apps.chat.models import Feedback, Message
from apps.prompts.services import prompt_seed_defaults
from tests.chat.factories import DEMO_PASSWORD, CustomerAccountFactory
from tests.conftest import set_faults
from tests.e2e.conftest import off_loop

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ANSWER = ".msg-assistant"


@pytest.fixture
def bob(llm_upstream, transactional_db):
    """A customer with the demo prompts published (created before the browser's event loop starts)."""
    cache.clear()
    prompt_seed_defaults()
    return CustomerAccountFactory(user__username="bob").user


def log_in(page) -> None:
    """Fill the login form the chat page redirected to; wait until the chat's socket is open."""
    assert "/accounts/login/" in page.url  # the chat page needs a login
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector('#conn-state[data-state="open"]')


def test_customer_chats_stops_an_answer_and_leaves_feedback(bob, llm_upstream, asgi_server, browser_page):
    page = browser_page

    page.goto(f"{asgi_server}/")
    log_in(page)

    # 1. A question; the answer appears while it streams, then completes.
    set_faults(llm_upstream, {"token_ms": 25})
    page.get_by_label("Your message").fill("How do I download my last invoice?")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => { const m = document.querySelector('.msg-assistant.is-streaming .msg-text');"
        " return m && m.textContent.length > 0; }"
    )
    first = page.locator(ANSWER).nth(0)
    page.wait_for_selector(f'{ANSWER}[data-status="complete"]')
    answer = off_loop(Message.objects.get, conversation__user=bob, role="assistant")
    assert first.locator(".msg-text").text_content() == answer.text and answer.status == "complete"

    # 2. A slow second answer, stopped part-way: the page and the database keep the same partial text.
    set_faults(llm_upstream, {"token_ms": 120})
    page.get_by_label("Your message").fill("And how do refunds work for annual plans?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(
        "() => { const m = document.querySelector('.msg-assistant.is-streaming .msg-text');"
        " return m && m.textContent.length > 10; }"
    )
    page.get_by_role("button", name="Stop").click()
    page.wait_for_selector(f'{ANSWER}[data-status="stopped"]')
    second = page.locator(ANSWER).nth(1)
    stopped = off_loop(lambda: Message.objects.filter(conversation__user=bob, role="assistant").order_by("-id").first())
    assert stopped.status == "incomplete"
    assert second.locator(".msg-text").text_content() == stopped.text
    assert page.get_by_role("button", name="Stop").is_hidden()

    # 3. Thumbs up on the first answer.
    first.get_by_role("button", name="Helpful", exact=True).click()
    page.wait_for_selector(f"{ANSWER} .fb-comment:not([hidden])")
    assert first.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed") == "true"
    feedback = off_loop(Feedback.objects.get, message=answer)
    assert (feedback.rating, feedback.user_id) == ("up", bob.pk)

    # The sidebar lists the conversation (from the API).
    assert page.locator("#conversation-list button").first.text_content() == "How do I download my last invoice?"


def test_a_logout_in_another_tab_sends_this_one_to_the_login_and_keeps_what_was_typed(bob, asgi_server, browser_page):
    page = browser_page
    page.goto(f"{asgi_server}/")
    log_in(page)
    page.get_by_label("Your message").fill("A question typed before the logout")

    other_tab = page.context.new_page()  # same browser, same login session
    other_tab.goto(f"{asgi_server}/")
    other_tab.get_by_role("button", name="Log out").click()

    page.wait_for_url("**/accounts/login/**")  # the open chat was ended at once, not at its next frame
    log_in(page)
    assert page.get_by_label("Your message").input_value() == "A question typed before the logout"
    assert "back in the box" in page.locator("#notice").text_content()
