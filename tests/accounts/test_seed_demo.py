from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from apps.accounts.demo_content import load_transcripts
from apps.accounts.models import CustomerAccount, Invoice, SupportTicket
from apps.chat.models import Conversation, Message
from apps.llm.gateway import count_request_tokens
from apps.llm.prompting import system_blocks
from apps.prompts.models import PromptVersion

pytestmark = pytest.mark.django_db


def snapshot() -> dict[str, int]:
    return {
        "accounts": CustomerAccount.objects.count(),
        "invoices": Invoice.objects.count(),
        "tickets": SupportTicket.objects.count(),
        "versions": PromptVersion.objects.count(),
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
    }


def test_seed_demo_creates_the_demo_and_is_idempotent() -> None:
    call_command("seed_demo", stdout=StringIO())
    first = snapshot()
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert snapshot() == first
    assert "0 new prompt versions, 0 new articles, 0 new sample conversations" in out.getvalue()

    plans = dict(CustomerAccount.objects.values_list("user__username", "plan"))
    assert plans == {"alice": "free", "bob": "pro", "carol": "enterprise"}
    for username in ("alice", "bob", "carol", "admin"):
        assert authenticate(username=username, password="demo-password") is not None
    assert authenticate(username="admin", password="demo-password").is_staff
    assert first["conversations"] == len(load_transcripts())
    assert Invoice.objects.filter(account__user__username="bob").count() >= 1
    assert SupportTicket.objects.filter(user__username="carol").exists()
    assert set(PromptVersion.objects.filter(status="active").values_list("prompt__slug", flat=True)) == {
        "support-assistant",
        "transcript-classifier",
    }
    # The demo assistant acts: its one active version may call every demo tool.
    assistant = PromptVersion.objects.get(prompt__slug="support-assistant", status="active")
    assert "resend_invoice" in assistant.tools and "cancel_subscription" in assistant.tools


def test_demo_system_prompt_is_long_enough_to_cache_on_every_tier(llm_upstream) -> None:
    """Haiku 4.5 and Opus 4.6 cache nothing below 4,096 tokens: the demo prompt must exceed it."""
    call_command("seed_demo", stdout=StringIO())
    parts = PromptVersion.objects.get(prompt__slug="support-assistant", status="active").to_parts()
    params = {
        "model": "claude-haiku-4-5",
        "system": system_blocks(parts),
        "messages": [{"role": "user", "content": "hi"}],
    }
    tokens, _estimated = count_request_tokens(params)
    assert tokens > 4_096 * 2
