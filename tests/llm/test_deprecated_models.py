"""Deprecated models, from the installed SDK's list: start-up check, admin warning on save, one log line
per process on the first call."""

import io
import logging

import pytest
from anthropic._data import DEPRECATED_MODELS
from django.core.checks import run_checks

from apps.core.management.commands.serve import Command as ServeCommand
from apps.llm import deprecations
from apps.llm.gateway import chat_stream
from apps.llm.models import RoutingRule
from apps.llm.types import Finished
from tests.llm.factories import ChatRequestFactory, RoutingRuleFactory

# The emulator knows this id; its end-of-life date is whatever the installed SDK says.
DEPRECATED = "claude-opus-4-5"
END_OF_LIFE = DEPRECATED_MODELS[DEPRECATED]
CURRENT = "claude-sonnet-4-6"


@pytest.fixture(autouse=True)
def fresh_process_memory(monkeypatch):
    """Each test is a new process as far as "warned once" goes."""
    monkeypatch.setattr(deprecations, "_warned_models", set())


def llm_warnings(*, databases: list[str] | None = None) -> list:
    return [m for m in run_checks(tags=["llm"], databases=databases) if m.id.startswith("llm.")]


def test_a_tier_set_to_a_deprecated_model_warns_at_start_up(settings) -> None:
    settings.LLM_MODELS = {**settings.LLM_MODELS, "opus": DEPRECATED}

    [warning] = llm_warnings()

    assert warning.id == "llm.W001" and DEPRECATED in warning.msg and END_OF_LIFE in warning.msg
    assert "LLM_MODEL_OPUS" in warning.hint


def test_current_models_give_no_warning(db) -> None:
    RoutingRule.objects.all().delete()
    RoutingRuleFactory(name="current", model_id=CURRENT, fallback_chain="haiku")
    assert llm_warnings(databases=["default"]) == []


def test_routing_rules_naming_a_deprecated_model_warn_with_the_date(db) -> None:
    RoutingRule.objects.all().delete()
    RoutingRuleFactory(name="enterprise on the old opus", model_id=DEPRECATED)
    RoutingRuleFactory(name="falls back to it", model_id=CURRENT, fallback_chain=f"opus, {DEPRECATED}")

    found = {(w.id, w.obj.name) for w in llm_warnings(databases=["default"])}

    assert found == {("llm.W002", "enterprise on the old opus"), ("llm.W002", "falls back to it")}
    assert all(END_OF_LIFE in w.msg for w in llm_warnings(databases=["default"]))
    assert llm_warnings() == []  # without --database only the settings are checked


def test_serve_runs_the_routing_rule_check_at_start_up(db) -> None:
    RoutingRule.objects.all().delete()
    RoutingRuleFactory(name="old opus", model_id=DEPRECATED)
    stderr = io.StringIO()

    ServeCommand(stdout=io.StringIO(), stderr=stderr).check()

    assert "llm.W002" in stderr.getvalue() and END_OF_LIFE in stderr.getvalue()


def test_saving_a_rule_with_a_deprecated_model_in_the_admin_warns_and_saves(admin_client) -> None:
    response = admin_client.post(
        "/admin/llm/routingrule/add/",
        {"name": "legacy", "enabled": "on", "priority": "5", "model_id": DEPRECATED, "fallback_chain": ""},
        follow=True,
    )

    shown = [(m.level_tag, m.message) for m in response.context["messages"]]
    assert RoutingRule.objects.filter(name="legacy", model_id=DEPRECATED).exists()
    assert any(level == "warning" and DEPRECATED in text and END_OF_LIFE in text for level, text in shown)

    quiet = admin_client.post(
        "/admin/llm/routingrule/add/",
        {"name": "current", "enabled": "on", "priority": "6", "model_id": CURRENT, "fallback_chain": ""},
        follow=True,
    )
    assert [m.level_tag for m in quiet.context["messages"]] == ["success"]


@pytest.mark.django_db(transaction=True)
async def test_calls_to_a_deprecated_model_log_one_warning_per_process(llm_upstream, caplog) -> None:
    await RoutingRule.objects.all().adelete()
    await RoutingRule.objects.acreate(name="old opus", priority=0, model_id=DEPRECATED)

    with caplog.at_level(logging.WARNING, logger="apps.llm.deprecations"):
        for question in ("Where is my invoice?", "And the one before?"):
            events = [event async for event in chat_stream(ChatRequestFactory(user_text=question))]
            assert isinstance(events[-1], Finished) and events[-1].outcome.model == DEPRECATED

    logged = [r.getMessage() for r in caplog.records if r.name == "apps.llm.deprecations"]
    assert len(logged) == 1 and DEPRECATED in logged[0] and END_OF_LIFE in logged[0]
