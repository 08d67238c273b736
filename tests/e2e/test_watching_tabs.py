"""An answer is not a property of the tab that asked: a page reloaded mid-answer shows the text so far
and then the tokens as they come, and Stop in another tab of the customer stops it."""

import pytest

from apps.chat.models import Message
from tests.conftest import set_faults
from tests.e2e.conftest import off_loop
from tests.e2e.test_chat_page import ANSWER, bob, log_in  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STREAMING_TEXT = f"{ANSWER}.is-streaming .msg-text"


def streaming_length(page) -> int:
    """Characters shown so far in the answer being written (-1: none is being written)."""
    return page.evaluate(
        f"() => {{ const m = document.querySelector('{STREAMING_TEXT}'); return m ? m.textContent.length : -1; }}"
    )


def wait_streaming_longer_than(page, chars: int) -> None:
    page.wait_for_function(
        f"() => {{ const m = document.querySelector('{STREAMING_TEXT}'); return m && m.textContent.length > {chars}; }}"
    )


def latest_answer(user) -> Message:
    return Message.objects.filter(conversation__user=user, role="assistant").order_by("-id").first()


def test_a_reload_during_an_answer_shows_the_tokens_continuing(bob, llm_upstream, asgi_server, browser_page):  # noqa: F811
    page = browser_page
    page.goto(f"{asgi_server}/")
    log_in(page)
    set_faults(llm_upstream, {"token_ms": 40})
    page.get_by_label("Your message").fill("How do refunds work for annual plans?")
    page.keyboard.press("Enter")
    wait_streaming_longer_than(page, 10)
    before_reload = streaming_length(page)

    page.reload()
    page.wait_for_selector('#conn-state[data-state="open"]')
    # The text so far arrives at once (not an empty bubble) and the answer is still being written ...
    wait_streaming_longer_than(page, before_reload - 1)
    caught_up = streaming_length(page)
    # ... then grows token by token, before the answer ends.
    wait_streaming_longer_than(page, caught_up)
    assert page.locator(f"{ANSWER}.is-streaming").count() == 1
    page.get_by_role("button", name="Stop").wait_for()  # the reloaded tab can stop it

    page.wait_for_selector(f'{ANSWER}[data-status="complete"]')
    stored = off_loop(latest_answer, bob)
    assert stored.status == "complete"
    assert page.locator(f"{ANSWER} .msg-text").last.text_content() == stored.text  # shown = stored
    assert page.locator(ANSWER).count() == 1 and page.locator(".msg-user").count() == 1


def test_stop_in_a_second_tab_stops_the_answer_in_both(bob, llm_upstream, asgi_server, browser_page):  # noqa: F811
    first = browser_page
    first.goto(f"{asgi_server}/")
    log_in(first)
    first.wait_for_url("**/?c=*")
    second = first.context.new_page()  # the same login, the same conversation
    second.goto(first.url)
    second.wait_for_selector('#conn-state[data-state="open"]')

    set_faults(llm_upstream, {"token_ms": 40})
    first.get_by_label("Your message").fill("And how do refunds work for monthly plans?")
    first.keyboard.press("Enter")
    # The second tab sees the question and the answer being written, live.
    second.wait_for_selector(".msg-user:has-text('refunds work for monthly plans')")
    wait_streaming_longer_than(second, 10)
    second.get_by_role("button", name="Stop").click()

    for page in (first, second):
        page.wait_for_selector(f'{ANSWER}[data-status="stopped"]')
        assert page.get_by_role("button", name="Stop").is_hidden()
    stopped = off_loop(latest_answer, bob)
    assert stopped.status == "incomplete"
    for page in (first, second):
        assert page.locator(f"{ANSWER} .msg-text").last.text_content() == stopped.text
    # The answer did not run on after the stop.
    first.wait_for_timeout(500)
    later = off_loop(latest_answer, bob)
    assert (later.status, later.text) == ("incomplete", stopped.text)
