"""Issue 14, part 2: shared prompt parts (sent with every customer's request) never name a real customer."""

from datetime import date

import pytest
from django.core.checks import run_checks
from django.urls import reverse
from django.utils import timezone

from apps.accounts.demo import demo_accounts_seed
from apps.accounts.models import CustomerAccount, Invoice
from apps.prompts import selectors, services
from apps.prompts.models import PromptVersion
from tests.prompts.factories import PromptVersionFactory, UserFactory

pytestmark = pytest.mark.django_db


def w001(messages) -> list[str]:
    return [m.msg for m in messages if m.id == "prompts.W001"]


@pytest.fixture
def bob():
    user = UserFactory(username="bob", email="bob@example.com")
    account = CustomerAccount.objects.create(user=user, plan="pro")
    Invoice.objects.create(
        account=account,
        number="INV-2026-01766",
        amount_cents=14500,
        status="open",
        issued_on=date(2026, 11, 15),
        due_on=date(2026, 11, 29),
    )
    return user


def test_the_seeded_prompts_name_no_demo_customer() -> None:
    demo_accounts_seed()
    services.prompt_seed_defaults()

    assert PromptVersion.objects.filter(published_at__isnull=False).count() == 2
    assert selectors.published_versions_with_customer_data() == []
    assert w001(run_checks(databases=["default"])) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("<example><user>username: bob\nplan: pro</user><assistant>Hi Bob!</assistant></example>", "'bob'"),
        ("Write to us from BOB@example.com any time.", "email 'bob@example.com'"),
        ("Your November invoice, INV-2026-01766, is open.", "invoice number 'inv-2026-01766'"),
    ],
)
def test_a_published_version_naming_a_customer_fails_the_system_check(bob, text: str, kind: str) -> None:
    PromptVersionFactory(
        few_shot_examples=text, status=PromptVersion.Status.ACTIVE, weight=1, published_at=timezone.now()
    )

    (message,) = w001(run_checks(databases=["default"]))
    assert kind in message and "few_shot_examples" in message


def test_words_that_merely_contain_a_username_and_staff_names_are_not_customers(bob) -> None:
    UserFactory(username="admin", is_staff=True)
    PromptVersionFactory(
        persona="Ask an admin. Our bobcat mascot says INV-2026-017660 is not a number we issue.",
        status=PromptVersion.Status.ACTIVE,
        weight=1,
        published_at=timezone.now(),
    )
    assert w001(run_checks(databases=["default"])) == []


def test_drafts_are_not_published_but_their_preview_warns(bob, client, llm_upstream) -> None:
    draft = PromptVersionFactory(business_rules="Example: bob asked about INV-2026-01766.")
    assert w001(run_checks(databases=["default"])) == []

    preview = selectors.prompt_version_preview(version=draft, sample_user_text="hi", account_context="")
    (warning,) = [w for w in preview.warnings if "existing customer" in w]
    assert "business_rules" in warning and "'bob'" in warning and "'inv-2026-01766'" in warning

    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get(reverse("admin:prompts_promptversion_preview", args=[draft.pk]))
    assert response.status_code == 200 and "names an existing customer" in response.content.decode()
