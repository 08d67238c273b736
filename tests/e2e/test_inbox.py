"""Two browser contexts: bob asks for a human, Dana sees it appear in her inbox live, claims it and
replies, bob sees the reply live, Dana hands back and the assistant answers bob's next question."""

import pytest
from django.core.cache import cache

from apps.chat.models import Message
from apps.inbox.services import agent_make
from apps.prompts.services import prompt_seed_defaults
from tests.chat.factories import DEMO_PASSWORD, CustomerAccountFactory, UserFactory
from tests.e2e.conftest import off_loop

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(llm_upstream, transactional_db):
    cache.clear()
    prompt_seed_defaults()
    bob = CustomerAccountFactory(user__username="bob").user
    dana = agent_make(user=UserFactory(username="dana", first_name="Dana", is_staff=True))
    return bob, dana


def log_in(page, base: str, path: str, username: str) -> None:
    page.goto(f"{base}{path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_an_agent_takes_over_and_hands_back(people, asgi_server, browser_page):
    bob_page = browser_page
    agent_context = bob_page.context.browser.new_context()
    agent_context.set_default_timeout(15_000)
    dana_page = agent_context.new_page()

    log_in(dana_page, asgi_server, "/inbox/", "dana")
    dana_page.wait_for_selector('#inbox-conn[data-state="open"]')
    assert dana_page.locator(".queue-empty").is_visible()

    log_in(bob_page, asgi_server, "/", "bob")
    bob_page.wait_for_selector('#conn-state[data-state="open"]')
    bob_page.get_by_label("Your message").fill("My card was charged twice")
    bob_page.keyboard.press("Enter")
    bob_page.wait_for_selector('.msg-assistant[data-status="complete"]')
    bob_page.get_by_role("button", name="Talk to a human").click()

    # The request appears in Dana's queue without a reload.
    item = dana_page.locator(".queue-item", has_text="My card was charged twice")
    item.wait_for()
    assert "Waiting" in item.text_content() and "bob" in item.text_content()
    item.locator("a").click()
    dana_page.get_by_role("button", name="Claim").click()
    bob_page.wait_for_selector("#notice:has-text('Dana from Acme joined.')")

    dana_page.get_by_placeholder("Reply to the customer").fill("I have refunded the second charge.")
    dana_page.get_by_role("button", name="Send to customer").click()
    bob_page.wait_for_selector(".msg-agent:has-text('I have refunded the second charge.')")
    # Bob had it live: Dana's pane says so under her message, without a reload.
    dana_page.wait_for_selector(".msg-agent:has-text('I have refunded') .msg-delivery:has-text('Seen by the customer')")
    # Sent: the box is empty again, whichever came first — the reply's answer or the pane's reload.
    dana_page.wait_for_function("() => document.querySelector('#reply-text').value === ''")
    stored = off_loop(lambda: Message.objects.select_related("author", "conversation__user").get(role="agent"))
    assert (stored.author.username, stored.conversation.user.username) == ("dana", "bob")

    # Bob writes to Dana while she types: the message appears in her open conversation live, and her
    # typing goes on in the reply box.
    dana_page.get_by_placeholder("Reply to the customer").press_sequentially("About ")
    bob_page.get_by_label("Your message").fill("Thank you, how long will it take?")
    bob_page.keyboard.press("Enter")
    dana_page.wait_for_selector("#timeline .msg-user:has-text('how long will it take?')")
    dana_page.keyboard.type("three days.")
    assert dana_page.get_by_placeholder("Reply to the customer").input_value() == "About three days."

    dana_page.get_by_role("button", name="Hand back to the assistant").click()
    bob_page.wait_for_selector('#notice:has-text("You\'re back with the assistant.")')
    bob_page.get_by_label("Your message").fill("And where do I see my invoices?")
    bob_page.keyboard.press("Enter")
    bob_page.wait_for_function(
        "() => document.querySelectorAll('.msg-assistant[data-status=\"complete\"]').length === 2"
    )
    agent_context.close()


def test_the_open_conversation_catches_up_after_the_inbox_socket_drops(people, asgi_server, browser_page):
    """A customer's message stored while the agent's inbox socket was away (announced to nobody) shows in
    the open conversation once the socket is back."""
    from apps.chat.models import Conversation
    from apps.inbox.services import conversation_claim

    bob_page = browser_page
    _, dana = people
    log_in(bob_page, asgi_server, "/", "bob")
    bob_page.wait_for_selector('#conn-state[data-state="open"]')
    bob_page.get_by_label("Your message").fill("My card was charged twice")
    bob_page.keyboard.press("Enter")
    bob_page.wait_for_selector('.msg-assistant[data-status="complete"]')
    conversation = off_loop(Conversation.objects.get)
    off_loop(lambda: conversation_claim(agent=dana, conversation_id=conversation.pk))
    bob_page.wait_for_selector("#notice:has-text('Dana from Acme joined.')")

    sockets = []  # the inbox page's sockets, through Playwright (connected to the server on demand)
    agent_context = bob_page.context.browser.new_context()
    agent_context.set_default_timeout(15_000)
    dana_page = agent_context.new_page()
    dana_page.route_web_socket("**/ws/inbox/", lambda socket: sockets.append(socket))
    log_in(dana_page, asgi_server, f"/inbox/c/{conversation.pk}/", "dana")
    dana_page.wait_for_function("() => document.querySelector('#inbox-conn').dataset.state === 'open'")
    sockets[0].connect_to_server()
    dana_page.wait_for_selector("#timeline .msg-assistant")

    sockets[0].close()  # the connection drops; the page reconnects, held until bob has written
    dana_page.wait_for_function("() => document.querySelector('#inbox-conn').dataset.state === 'closed'")
    bob_page.get_by_label("Your message").fill("Is it refunded yet?")
    bob_page.keyboard.press("Enter")
    bob_page.wait_for_function("() => !document.querySelector('.msg-user.is-pending')")  # stored (acknowledged)
    dana_page.wait_for_function("() => document.querySelector('#inbox-conn').dataset.state === 'open'")
    assert dana_page.locator("#timeline .msg-user", has_text="Is it refunded yet?").count() == 0
    sockets[1].connect_to_server()
    dana_page.wait_for_selector("#timeline .msg-user:has-text('Is it refunded yet?')")
    agent_context.close()
