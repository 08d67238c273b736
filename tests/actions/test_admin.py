"""Staff see every action in the admin, and choose per prompt version which tools it may use."""

import pytest
from django.urls import reverse

from apps.actions.services import CallScope, action_call
from apps.prompts import services
from apps.prompts.models import PromptVersion
from tests.actions.factories import AccountFactory, InvoiceFactory
from tests.prompts.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_the_audit_lists_who_called_which_tool_with_what_result(staff_client):
    account = AccountFactory(user__username="dora")
    InvoiceFactory(account=account, number="INV-D-1")
    action_call(
        scope=CallScope(account=account, conversation_id="c-9", reply_id=5), tool_name="list_invoices", arguments={}
    )
    page = staff_client.get(reverse("admin:actions_actionrecord_changelist"))
    assert page.status_code == 200
    assert b"dora" in page.content and b"list_invoices" in page.content and b"c-9" in page.content
    record_page = staff_client.get(reverse("admin:actions_actionrecord_change", args=[account.action_records.get().pk]))
    assert record_page.status_code == 200 and b"INV-D-1" in record_page.content


def test_a_draft_chooses_its_tools_and_parts_carry_them_in_registry_order(staff_client):
    services.prompt_seed_defaults()
    active = PromptVersion.objects.get(prompt__slug="support-assistant")
    draft = services.prompt_version_create_draft(
        prompt=active.prompt, based_on=active, actor=None, tools=["handoff_to_human", "list_invoices"]
    )
    page = staff_client.get(reverse("admin:prompts_promptversion_change", args=[draft.pk]))
    assert page.status_code == 200 and b"cancel_subscription" in page.content
    draft.refresh_from_db()
    from apps.actions.registry import tool_specs

    assert [s.name for s in tool_specs(draft.to_parts().tool_names)] == ["list_invoices", "handoff_to_human"]
