"""Rate limits, the conversation cap and the daily spend caps, on the widget's websocket and in the
spend selectors (from the call log's exact cost)."""

import datetime
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.llm.models import LLMCall
from apps.widget import selectors
from apps.widget.models import Site, SiteConversation, Visitor
from tests.chat.factories import ConversationFactory, CustomerAccountFactory
from tests.conftest import received_requests
from tests.widget.conftest import WidgetSocket
from tests.widget.factories import SiteFactory
from tests.widget.test_consumer import sign

pytestmark = pytest.mark.django_db(transaction=True)


def chat_requests(upstream) -> int:
    return sum(
        1
        for entry in received_requests(upstream)
        if isinstance(entry.get("body"), dict) and entry["body"].get("stream")
    )


@pytest.mark.usefixtures("one_rate_limit_window")
async def test_a_visitor_past_the_rate_limit_waits_and_the_model_is_not_called(widget_env, site, settings):
    settings.WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE = 1
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    first = await socket.ask("Hello?")
    second = await socket.ask("Hello again?")
    await socket.close()
    assert first[-1]["type"] == "done"
    assert second == [second[-1]] and second[-1]["code"] == "rate_limited" and second[-1]["leave_message"] is False
    assert chat_requests(widget_env) == 1


@pytest.mark.usefixtures("one_rate_limit_window")
async def test_the_ip_limit_counts_every_visitor_from_one_address(widget_env, site, settings):
    settings.WIDGET_IP_RATE_LIMIT_PER_MINUTE = 1
    one = await WidgetSocket.open(site.key, client="198.51.100.4")
    await one.hello()
    assert (await one.ask("Hello?"))[-1]["type"] == "done"
    await one.close()
    two = await WidgetSocket.open(site.key, client="198.51.100.4")
    await two.hello()
    assert (await two.ask("Hi?"))[-1]["code"] == "rate_limited"
    await two.close()
    elsewhere = await WidgetSocket.open(site.key, client="198.51.100.5")
    await elsewhere.hello()
    assert (await elsewhere.ask("Hi?"))[-1]["type"] == "done"
    await elsewhere.close()


@pytest.mark.usefixtures("one_rate_limit_window")
async def test_new_visitors_per_address_are_limited(widget_env, site, settings):
    settings.WIDGET_NEW_VISITORS_PER_IP_PER_HOUR = 1
    first = await WidgetSocket.open(site.key, client="192.0.2.1")
    _, visitor = await first.hello()
    await first.close()
    returning = await WidgetSocket.open(site.key, client="192.0.2.1", token=visitor["token"])
    await returning.hello()  # a known visitor is not a new one
    await returning.close()
    refused = await WidgetSocket.open(site.key, client="192.0.2.1")
    assert (await refused.receive())["code"] == "rate_limited"
    assert await refused.receive_close() == 4429
    assert await database_sync_to_async(Visitor.objects.count)() == 1


async def test_past_the_conversation_cap_the_chat_offers_to_leave_a_message(widget_env, site, settings):
    settings.WIDGET_CONVERSATION_MAX_QUESTIONS = 1
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    assert (await socket.ask("Hello?"))[-1]["type"] == "done"
    capped = await socket.ask("And another thing?")
    await socket.send({"type": "leave_message", "text": "And another thing?", "email": "v@example.org"})
    left = await socket.receive()
    await socket.close()
    assert capped[-1]["code"] == "conversation_limit" and capped[-1]["leave_message"] is True
    assert left["type"] == "left"
    assert chat_requests(widget_env) == 1


async def test_past_the_sites_daily_spend_the_chat_offers_to_leave_a_message(widget_env, site, settings):
    settings.WIDGET_SITE_DAILY_SPEND_CAP_USD = 0.000001
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    first = await socket.ask("Hello?")  # spend is 0 before it: answered
    second = await socket.ask("Hello again?")
    await socket.close()
    spent = await database_sync_to_async(selectors.site_spend_today)(site)
    assert first[-1]["type"] == "done" and spent > 0  # the emulator's usage, priced by the call log
    assert second[-1]["code"] == "spend_cap" and second[-1]["leave_message"] is True
    assert chat_requests(widget_env) == 1

    other = await database_sync_to_async(SiteFactory)()  # another site's budget is its own
    elsewhere = await WidgetSocket.open(other.key)
    await elsewhere.hello()
    assert (await elsewhere.ask("Hello?"))[-1]["type"] == "done"
    await elsewhere.close()


async def test_a_sites_own_cap_wins_over_the_default(widget_env, site):
    await database_sync_to_async(Site.objects.filter(pk=site.pk).update)(daily_spend_cap_usd=Decimal("0.00"))
    socket = await WidgetSocket.open(site.key)
    await socket.hello()
    assert (await socket.ask("Hello?"))[-1]["code"] == "spend_cap"
    await socket.close()
    assert chat_requests(widget_env) == 0


async def test_past_an_accounts_daily_spend_only_that_customer_is_capped(widget_env, site, settings):
    settings.WIDGET_ACCOUNT_DAILY_SPEND_CAP_USD = 0.5

    @database_sync_to_async
    def spent_elsewhere_today():
        dave = CustomerAccountFactory(user__username="dave").user
        conversation = ConversationFactory(user=dave)
        LLMCall.objects.create(
            task_type="chat", model="m", conversation_id=str(conversation.pk), cost_usd=Decimal("0.6")
        )

    await spent_elsewhere_today()
    dave = await WidgetSocket.open(site.key, user_id="dave", user_hash=sign("dave"))
    await dave.hello()
    assert (await dave.ask("Hello?"))[-1]["code"] == "spend_cap"
    await dave.close()
    anonymous = await WidgetSocket.open(site.key)
    await anonymous.hello()
    assert (await anonymous.ask("Hello?"))[-1]["type"] == "done"
    await anonymous.close()


def test_a_sites_spend_is_todays_calls_of_its_conversations_only():
    site, other = SiteFactory(), SiteFactory()
    mine, theirs, old = ConversationFactory(), ConversationFactory(), ConversationFactory()
    for conversation, where in ((mine, site), (theirs, other), (old, site)):
        visitor = Visitor.objects.create(site=where, user=conversation.user)
        SiteConversation.objects.create(
            conversation=conversation, conversation_key=str(conversation.pk), site=where, visitor=visitor
        )
    call = dict(task_type="chat", model="m")
    LLMCall.objects.create(conversation_id=str(mine.pk), cost_usd=Decimal("0.25"), **call)
    LLMCall.objects.create(conversation_id=str(mine.pk), cost_usd=Decimal("0.00000125"), **call)
    LLMCall.objects.create(conversation_id=str(theirs.pk), cost_usd=Decimal("9"), **call)
    yesterday = LLMCall.objects.create(conversation_id=str(old.pk), cost_usd=Decimal("5"), **call)
    LLMCall.objects.filter(pk=yesterday.pk).update(created_at=timezone.now() - datetime.timedelta(days=1, hours=1))
    assert selectors.site_spend_today(site) == Decimal("0.25000125")
    assert selectors.user_spend_today(mine.user) == Decimal("0.25000125")
