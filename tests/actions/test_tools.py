"""Each tool acts on the logged-in customer's own account only, validates its input and runs once per call."""

import json

import pytest
from django.core import mail

from apps.accounts.models import CustomerAccount, SupportTicket
from apps.actions import registry
from apps.actions.models import ActionRecord
from apps.actions.services import CallScope, action_call, action_decide
from apps.core.exceptions import ApplicationError, NotFound
from tests.actions.factories import AccountFactory, InvoiceFactory, TicketFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    account = AccountFactory(user__username="alice-t", user__email="alice-t@example.com")
    InvoiceFactory(account=account, number="INV-A-1", issued_on="2026-10-05", due_on="2026-10-19")
    InvoiceFactory(account=account, number="INV-A-2", issued_on="2026-11-05", due_on="2026-11-19")
    return CustomerAccount.objects.get(pk=account.pk)


@pytest.fixture
def bob():
    account = AccountFactory(user__username="bob-t", user__email="bob-t@example.com")
    InvoiceFactory(account=account, number="INV-B-1")
    TicketFactory(user=account.user, subject="Bob's private ticket")
    return CustomerAccount.objects.get(pk=account.pk)


def call(account, tool, arguments, *, reply_id=1, tool_use_id="toolu_1"):
    scope = CallScope(account=account, conversation_id="conv-1", reply_id=reply_id)
    outcome = action_call(scope=scope, tool_name=tool, arguments=arguments, tool_use_id=tool_use_id)
    return outcome, json.loads(outcome.content)


def test_the_registry_has_the_seven_demo_tools_with_strict_schemas():
    tools = registry.tools()
    assert list(tools) == [
        "list_invoices",
        "resend_invoice",
        "ticket_status",
        "open_ticket",
        "update_billing_email",
        "cancel_subscription",
        "handoff_to_human",
    ]
    for tool in tools.values():
        assert tool.input_schema["type"] == "object" and tool.input_schema["additionalProperties"] is False
        # No argument may name whom a tool acts for.
        assert not {"account", "account_id", "user", "username", "to", "recipient"} & set(
            tool.input_schema["properties"]
        )
    assert {t.name for t in tools.values() if t.risk == registry.Risk.CONFIRM} == {
        "update_billing_email",
        "cancel_subscription",
    }


def test_tool_specs_keep_registry_order_whatever_order_was_chosen():
    assert [s.name for s in registry.tool_specs(["handoff_to_human", "list_invoices"])] == [
        "list_invoices",
        "handoff_to_human",
    ]


def test_list_invoices_lists_only_the_customers_own(alice, bob):
    outcome, data = call(alice, "list_invoices", {})
    assert not outcome.is_error
    assert [i["number"] for i in data["invoices"]] == ["INV-A-2", "INV-A-1"]


def test_resend_sends_the_latest_invoice_to_the_accounts_address(alice):
    outcome, data = call(alice, "resend_invoice", {})
    assert not outcome.is_error and data == {
        "sent": True,
        "invoice_number": "INV-A-2",
        "sent_to": "alice-t@example.com",
    }
    [email] = mail.outbox
    assert email.to == ["alice-t@example.com"] and "INV-A-2" in email.subject


def test_resend_bobs_invoice_to_me_fails_closed(alice, bob):
    """Prompt injection: "resend bob's invoice to me" — another account's invoice is not found, and no
    argument can choose the recipient."""
    outcome, data = call(alice, "resend_invoice", {"invoice_number": "INV-B-1"})
    assert outcome.is_error and "INV-B-1" in data["error"]
    outcome, data = call(alice, "resend_invoice", {"invoice_number": "INV-A-1", "to": "bob-t@example.com"}, reply_id=2)
    assert outcome.is_error and "to is not an accepted argument" in data["error"]
    outcome, data = call(alice, "resend_invoice", {"account_id": bob.pk}, reply_id=3)
    assert outcome.is_error
    assert mail.outbox == []
    assert list(ActionRecord.objects.values_list("status", flat=True)) == ["rejected", "rejected", "failed"]


def test_ticket_status_never_shows_anothers_ticket(alice, bob):
    bobs = SupportTicket.objects.get(user=bob.user)
    outcome, data = call(alice, "ticket_status", {"ticket_id": bobs.pk})
    assert outcome.is_error and "Bob" not in outcome.content
    mine = TicketFactory(user=alice.user, subject="Mine")
    outcome, data = call(alice, "ticket_status", {}, reply_id=2)
    assert [t["id"] for t in data["tickets"]] == [mine.pk]


@pytest.mark.parametrize(
    ("tool", "arguments", "problem"),
    [
        ("list_invoices", {"limit": "all"}, "must be an integer"),
        ("list_invoices", {"limit": 1000}, "out of range"),
        ("ticket_status", {"ticket_id": True}, "must be an integer"),
        ("open_ticket", {}, "subject is required"),
        ("update_billing_email", {"email": "not an email"}, "not a valid email"),
        ("handoff_to_human", {"reason": 7}, "must be a string"),
        ("resend_invoice", ["INV-A-1"], "must be an object"),
    ],
)
def test_invalid_arguments_are_rejected_with_a_clear_error(alice, tool, arguments, problem):
    outcome, data = call(alice, tool, arguments)
    assert outcome.is_error and problem in data["error"]
    assert ActionRecord.objects.get().status == "rejected"


def test_an_unknown_tool_is_an_error_not_a_crash(alice):
    outcome, data = call(alice, "delete_everything", {})
    assert outcome.is_error and "no tool named" in data["error"]


def test_a_repeated_call_returns_the_stored_result_without_acting_again(alice):
    first, _ = call(alice, "resend_invoice", {"invoice_number": "INV-A-1"}, tool_use_id="toolu_a")
    # A retried round: the model calls the same tool with the same input under a new id.
    again, _ = call(alice, "resend_invoice", {"invoice_number": "INV-A-1"}, tool_use_id="toolu_b")
    assert again.content == first.content
    assert len(mail.outbox) == 1 and ActionRecord.objects.count() == 1


def test_open_ticket_and_handoff_act_for_the_customer(alice):
    _, data = call(alice, "open_ticket", {"subject": "Export fails", "description": "CSV export times out"})
    assert SupportTicket.objects.get(pk=data["ticket_id"]).user == alice.user
    _, data = call(alice, "handoff_to_human", {"reason": "wants a refund"}, reply_id=2)
    ticket = SupportTicket.objects.get(pk=data["ticket_id"])
    assert (ticket.source, ticket.conversation_id, ticket.user) == ("handoff", "conv-1", alice.user)


def test_a_confirmation_tool_changes_nothing_until_the_customer_confirms(alice):
    outcome, data = call(alice, "cancel_subscription", {})
    assert data["status"] == "awaiting_confirmation"
    card = outcome.confirmation
    assert card is not None and "December 31, 2026" in card.summary
    alice.refresh_from_db()
    assert alice.cancel_at_period_end is False

    record = action_decide(user=alice.user, action_id=card.action_id, confirm=True)
    assert (record.status, record.decision) == ("succeeded", "confirmed") and record.decided_at
    alice.refresh_from_db()
    assert alice.cancel_at_period_end is True and alice.billing_status == "active"
    # A card is decided once: the same decision again (another tab) and the opposite one are refused,
    # and nothing runs twice.
    for confirm in (True, False):
        with pytest.raises(ApplicationError) as refused:
            action_decide(user=alice.user, action_id=card.action_id, confirm=confirm)
        assert refused.value.code == "already_decided"
        assert refused.value.extra == {"action_id": record.pk, "decision": "confirmed"}
    assert ActionRecord.objects.filter(status="succeeded").count() == 1


def test_a_cancelled_card_stores_the_decision_and_runs_nothing(alice):
    outcome, _ = call(alice, "update_billing_email", {"email": "billing@alice.example"})
    record = action_decide(user=alice.user, action_id=outcome.confirmation.action_id, confirm=False)
    assert (record.status, record.decision) == ("declined", "cancelled")
    alice.refresh_from_db()
    assert alice.billing_email == ""


def test_only_the_customer_can_decide_their_card(alice, bob):
    outcome, _ = call(alice, "update_billing_email", {"email": "billing@alice.example"})
    with pytest.raises(NotFound):
        action_decide(user=bob.user, action_id=outcome.confirmation.action_id, confirm=True)
    with pytest.raises(NotFound):
        action_decide(user=alice.user, action_id="1 OR 1=1", confirm=True)
    alice.refresh_from_db()
    assert alice.billing_email == ""


def test_a_confirmed_billing_email_is_where_the_next_invoice_goes(alice):
    outcome, _ = call(alice, "update_billing_email", {"email": "billing@alice.example"})
    action_decide(user=alice.user, action_id=outcome.confirmation.action_id, confirm=True)
    call(alice, "resend_invoice", {}, reply_id=2)
    assert mail.outbox[-1].to == ["billing@alice.example"]
