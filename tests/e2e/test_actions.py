"""A customer in headless Chromium has the assistant act: resend an invoice, then cancel the
subscription through a confirmation card (Cancel first, then Confirm)."""

import pytest
from django.core import mail
from django.core.cache import cache

from apps.accounts.models import CustomerAccount
from apps.actions.registry import tools
from apps.prompts.services import prompt_seed_defaults, prompt_version_seed_tools
from tests.actions.factories import AccountFactory, InvoiceFactory
from tests.chat.factories import DEMO_PASSWORD
from tests.e2e.conftest import off_loop

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ANSWER = ".msg-assistant"


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
    page.wait_for_selector(f'{ANSWER}:nth-of-type({count * 2})[data-status="complete"]')


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
    assert off_loop(CustomerAccount.objects.get, user=alice).cancel_at_period_end is False

    # 3. Asked again, a new card: Confirm cancels at the end of the period.
    ask(page, "Cancel my subscription please", 3)
    card = page.locator(ANSWER).nth(2).locator(".confirm-card")
    card.get_by_role("button", name="Confirm").click()
    page.wait_for_selector('.confirm-card[data-decision="confirmed"]')
    assert card.locator(".confirm-outcome").text_content().startswith("Done: your subscription ends on")
    assert off_loop(CustomerAccount.objects.get, user=alice).cancel_at_period_end is True
