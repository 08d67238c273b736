"""Routing: defaults, admin rules (incl. the seeded ones), overrides and fallback chains."""

import pytest

from apps.llm.models import RoutingRule
from apps.llm.routing import default_route, route
from tests.llm.factories import RoutingRuleFactory

pytestmark = pytest.mark.django_db

HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"


@pytest.fixture
def no_rules():
    RoutingRule.objects.all().delete()


@pytest.mark.parametrize(
    ("task_type", "plan_tier", "model", "fallbacks"),
    [
        ("classification", "", HAIKU, ()),
        ("summarisation", "enterprise", HAIKU, ()),
        ("chat", "free", HAIKU, ()),
        ("chat", "pro", SONNET, (HAIKU,)),
        ("chat", "enterprise", OPUS, (SONNET, HAIKU)),
    ],
)
def test_defaults_without_rules(no_rules, task_type, plan_tier, model, fallbacks):
    decision = route(task_type=task_type, plan_tier=plan_tier, prompt_tokens=2_000)
    assert (decision.model, decision.fallbacks) == (model, fallbacks)
    assert decision.reason.startswith("default:")


def test_very_long_prompts_step_up_a_tier(no_rules, settings):
    settings.LLM_LONG_PROMPT_TOKENS = 50_000
    assert route(task_type="chat", plan_tier="free", prompt_tokens=60_000).model == SONNET
    assert route(task_type="chat", plan_tier="pro", prompt_tokens=60_000).model == OPUS
    assert route(task_type="chat", plan_tier="enterprise", prompt_tokens=60_000).model == OPUS


@pytest.mark.parametrize(
    ("task_type", "plan_tier", "tokens", "model", "rule"),
    [
        ("classification", "", 3_000, HAIKU, "Classification on Haiku"),
        ("summarisation", "", 3_000, HAIKU, "History summaries on Haiku"),
        ("chat", "free", 3_000, HAIKU, "Free plan chat"),
        ("chat", "free", 70_000, SONNET, "Free plan, long prompts"),
        ("chat", "pro", 3_000, SONNET, "Pro plan chat"),
        ("chat", "pro", 70_000, OPUS, "Pro plan, long prompts"),
        ("chat", "enterprise", 3_000, OPUS, "Enterprise plan chat"),
    ],
)
def test_seeded_rules_route_like_the_defaults(task_type, plan_tier, tokens, model, rule):
    decision = route(task_type=task_type, plan_tier=plan_tier, prompt_tokens=tokens)
    assert decision.model == model
    assert decision.reason == f"rule:{rule}"


def test_override_wins_over_rules():
    RoutingRuleFactory(name="everything on haiku", priority=0, model_tier="haiku")
    assert route(task_type="chat", plan_tier="free", prompt_tokens=10, override="opus").model == OPUS
    explicit = route(task_type="chat", plan_tier="free", prompt_tokens=10, override="claude-sonnet-5")
    assert explicit.model == "claude-sonnet-5"
    assert explicit.reason == "override:claude-sonnet-5"


def test_lowest_priority_enabled_matching_rule_wins():
    RoutingRuleFactory(name="disabled", priority=0, enabled=False, model_id="claude-opus-5")
    RoutingRuleFactory(name="pro only", priority=1, plan_tier="pro", model_id="claude-sonnet-5")
    RoutingRuleFactory(name="any chat", priority=2, task_type="chat", model_tier="opus")
    assert route(task_type="chat", plan_tier="pro", prompt_tokens=10).model == "claude-sonnet-5"
    assert route(task_type="chat", plan_tier="free", prompt_tokens=10).reason == "rule:any chat"


def test_token_bounds_are_inclusive_and_optional():
    RoutingRuleFactory(name="mid", priority=0, min_prompt_tokens=1_000, max_prompt_tokens=2_000, model_tier="opus")
    assert route(task_type="chat", plan_tier="free", prompt_tokens=1_000).model == OPUS
    assert route(task_type="chat", plan_tier="free", prompt_tokens=2_000).model == OPUS
    assert route(task_type="chat", plan_tier="free", prompt_tokens=2_001).model != OPUS
    assert route(task_type="chat", plan_tier="free", prompt_tokens=999).model != OPUS


def test_rule_fallback_chain_accepts_tiers_and_ids():
    RoutingRuleFactory(name="custom", priority=0, model_tier="opus", fallback_chain="claude-sonnet-5, haiku")
    assert route(task_type="chat", plan_tier="pro", prompt_tokens=10).fallbacks == ("claude-sonnet-5", HAIKU)


def test_model_ids_come_from_settings(no_rules, settings):
    settings.LLM_MODELS = {"haiku": "claude-haiku-4-5", "sonnet": "claude-sonnet-5", "opus": "claude-opus-5"}
    decision = route(task_type="chat", plan_tier="enterprise", prompt_tokens=10)
    assert decision.chain == ("claude-opus-5", "claude-sonnet-5", "claude-haiku-4-5")


def test_prompt_version_tier_applies_when_no_rule_matches(no_rules):
    assert default_route(task_type="chat", plan_tier="free", prompt_tokens=10, prompt_tier="sonnet").model == SONNET


@pytest.mark.django_db(transaction=True)
async def test_an_expired_copy_of_the_rules_serves_once_more_while_a_thread_refreshes_it(settings, monkeypatch):
    """Users think longer than the TTL between questions: an answer must not wait for the rules query."""
    from channels.db import database_sync_to_async

    from apps.llm import gateway, routing

    settings.LLM_ROUTING_RULES_CACHE_SECONDS = 60
    await database_sync_to_async(RoutingRuleFactory)(name="all chat on opus", priority=0, model_tier="opus")
    await database_sync_to_async(routing.rules_refresh)()
    # Another process moves chat to haiku (no signal reaches this one), and this copy expires.
    await database_sync_to_async(
        lambda: RoutingRule.objects.filter(name="all chat on opus").update(model_tier="haiku")
    )()
    _, rules = routing._rules_cache
    monkeypatch.setattr(routing, "_rules_cache", (0.0, rules))
    kwargs = {"task_type": "chat", "plan_tier": "pro", "prompt_tokens": 100}

    assert routing.rules_expired()
    decision, refresh_due = await gateway._route_chat(kwargs)
    assert decision.model == OPUS and refresh_due  # no query on the way: the expired copy
    await gateway._refresh_routing_rules()
    assert routing.rules_cached() and (await gateway._route_chat(kwargs)) == (gateway.route(**kwargs), False)
    assert gateway.route(**kwargs).model == HAIKU


@pytest.mark.django_db(transaction=True)
async def test_an_answer_routed_by_an_expired_copy_refreshes_it_only_after_its_first_token(
    settings, monkeypatch, llm_upstream
):
    """The refresh's query must not compete with the answer's start (its request, the question's storage)."""
    from channels.db import database_sync_to_async

    from apps.llm import gateway, routing
    from apps.llm.types import Finished, TextDelta
    from tests.llm.factories import ChatRequestFactory

    settings.LLM_ROUTING_RULES_CACHE_SECONDS = 60
    await database_sync_to_async(routing.rules_refresh)()
    _, rules = routing._rules_cache
    monkeypatch.setattr(routing, "_rules_cache", (0.0, rules))
    monkeypatch.setattr(gateway, "_rules_refresh", None)

    events = []
    async for event in gateway.chat_stream(ChatRequestFactory()):
        if not events:
            assert isinstance(event, TextDelta)
            assert gateway._rules_refresh is None and routing.rules_expired()  # not started yet
        events.append(event)
    assert isinstance(events[-1], Finished) and events[-1].outcome.status == "complete"
    await gateway._rules_refresh
    assert routing.rules_cached()
