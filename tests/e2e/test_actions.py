"""A customer in headless Chromium has the assistant act: resend an invoice, then cancel the
subscription through a confirmation card (Cancel first, then Confirm, the card decided in her second
tab too); what came of each card is the assistant's next line, the same after a reload."""

import pytest
from django.core import mail
from django.core.cache import cache

from apps.accounts.models import CustomerAccount
from apps.actions.registry import tools
from apps.prompts.services import prompt_seed_defaults, prompt_version_seed_tools
from tests.actions.factories import AccountFactory, InvoiceFactory
from tests.chat.factories import DEMO_PASSWORD
from tests.conftest import set_faults
from tests.e2e.conftest import off_loop

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ANSWER = ".msg-assistant:not(.msg-action-outcome)"  # the model's answers, not the lines after a card
OUTCOME = ".msg-action-outcome"


@pytest.fixture
def alice(llm_upstream, transactional_db):
    cache.clear()
    prompt_seed_defaults()
    prompt_version_seed_tools(slug="support-assistant", tool_names=list(tools()))
    account = AccountFactory(user__username="alice", user__email="alice@example.com")
    InvoiceFactory(account=account, number="INV-A-7", issued_on="2026-11-05", due_on="2026-11-19")
    return account.user


def ask(page, text: str, count: int) -> None:
    page.get_by_label("Your message").fill(text)
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelectorAll('{ANSWER}[data-status=\"complete\"]').length === {count}")


def test_alice_resends_her_invoice_and_cancels_after_confirming(alice, asgi_server, browser_page):
    page = browser_page
    page.goto(f"{asgi_server}/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector('#conn-state[data-state="open"]')

    # 1. A write without a card: the progress line ends done and the email is in the outbox.
    ask(page, "Please resend my last invoice", 1)
    first = page.locator(ANSWER).nth(0)
    assert first.locator('.tool-step[data-state="done"]').text_content().startswith("Sending your invoice")
    assert "INV-A-7" in first.locator(".msg-text").text_content()
    assert [message.to for message in mail.outbox] == [["alice@example.com"]]

    # 2. A card: Cancel changes nothing.
    ask(page, "I want to cancel my subscription", 2)
    card = page.locator(ANSWER).nth(1).locator(".confirm-card")
    assert card.locator(".confirm-summary").text_content()
    card.get_by_role("button", name="Cancel").click()
    page.wait_for_selector('.confirm-card[data-decision="cancelled"]')
    assert "nothing was changed" in card.locator(".confirm-outcome").text_content()
    page.wait_for_selector(f"{OUTCOME}:has-text('Cancelled: nothing was changed.')")
    assert off_loop(CustomerAccount.objects.get, user=alice).cancel_at_period_end is False

    # 3. Asked again, a new card, open in a second tab too: Confirm in one cancels at the end of the
    # period, and the other tab's card shows it decided (no buttons left to press twice).
    ask(page, "Cancel my subscription please", 3)
    second = page.context.new_page()
    second.goto(page.url)
    second.wait_for_selector('#conn-state[data-state="open"]')
    second.wait_for_selector(".confirm-card:not([data-decision]) .confirm-yes")
    card = page.locator(ANSWER).nth(2).locator(".confirm-card")
    card.get_by_role("button", name="Confirm").click()
    page.wait_for_selector('.confirm-card[data-decision="confirmed"]')
    assert card.locator(".confirm-outcome").text_content().startswith("Done: your subscription ends on")
    assert off_loop(CustomerAccount.objects.get, user=alice).cancel_at_period_end is True
    second.wait_for_selector('.confirm-card[data-decision="confirmed"]')
    assert second.locator('.confirm-card[data-decision="confirmed"] button').count() == 0
    second.wait_for_selector(f"{OUTCOME}:has-text('Done: your subscription ends on')")

    # The lines after the cards are stored as shown: a reload shows the same transcript.
    lines = [text.strip() for text in page.locator(".msg").all_text_contents()]
    page.reload()
    page.wait_for_selector('#conn-state[data-state="open"]')
    page.wait_for_function(f"() => document.querySelectorAll('{OUTCOME}').length === 2")
    assert [text.strip() for text in page.locator(".msg").all_text_contents()] == lines


def test_a_card_shown_before_a_reload_is_on_the_reloaded_page_once_and_can_be_confirmed(
    alice, llm_upstream, asgi_server, browser_page
):
    page = browser_page
    page.goto(f"{asgi_server}/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector('#conn-state[data-state="open"]')
    set_faults(llm_upstream, {"token_ms": 120})  # the answer is still being written after the card

    page.get_by_label("Your message").fill("I want to cancel my subscription")
    page.keyboard.press("Enter")
    page.wait_for_selector(".confirm-card .confirm-yes")
    page.reload()  # mid-answer: the transcript has the card, and the answer's frames are caught up
    page.wait_for_selector('#conn-state[data-state="open"]')
    page.wait_for_selector(f"{ANSWER}.is-streaming .confirm-card")  # reloaded while it was being written
    page.wait_for_selector(f'{ANSWER}[data-status="complete"]')
    assert page.locator(".confirm-card").count() == 1
    assert page.locator(".tool-step").count() == 1
    page.locator(".confirm-card").get_by_role("button", name="Confirm").click()
    page.wait_for_selector('.confirm-card[data-decision="confirmed"]')
    page.wait_for_selector(f"{OUTCOME}:has-text('Done: your subscription ends on')")
    assert off_loop(CustomerAccount.objects.get, user=alice).cancel_at_period_end is True
