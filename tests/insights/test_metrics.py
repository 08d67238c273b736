"""Per-version metrics on known data (figures worked out by hand), significance tests, admin page and CSV."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from apps.chat.models import Conversation, Feedback, Message
from apps.insights import selectors
from apps.llm.models import LLMCall
from apps.prompts.models import PromptVersion
from apps.prompts.selectors import prompt_versions_with_call_summary
from apps.triage.models import TranscriptClassification
from tests.prompts.factories import PromptFactory, PromptVersionFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

Status = PromptVersion.Status
METRICS_URL = "admin:insights_metrics_changelist"


def call(version, conversation="", **fields):
    defaults = {
        "task_type": "chat",
        "prompt_slug": version.prompt.slug,
        "prompt_version": version.version,
        "prompt_version_id": version.pk,
        "model": "claude-sonnet-4-6",
        "conversation_id": conversation,
    }
    return LLMCall.objects.create(**{**defaults, **fields})


def conversation(user, version):
    return Conversation.objects.create(user=user, prompt_version=version)


def rate(conv, version_label, rating):
    message = Message.objects.create(conversation=conv, role="assistant", text="answer", prompt_version=version_label)
    return Feedback.objects.create(message=message, user=conv.user, rating=rating)


def classify(conv, resolved, *, status="classified", version=None):
    return TranscriptClassification.objects.create(
        conversation=conv,
        for_date=timezone.localdate(),
        status=status,
        resolved=resolved,
        prompt_version=version.version if version else "",
        prompt_version_id=version.pk if version else None,
    )


@pytest.fixture
def data():
    """Two support-assistant versions and a classifier version with hand-checkable figures."""
    user = UserFactory()
    support = PromptFactory(slug="support-assistant")
    v1 = PromptVersionFactory(prompt=support, major=1, minor=0, status=Status.ACTIVE, weight=50)
    v2 = PromptVersionFactory(prompt=support, major=1, minor=1, status=Status.ACTIVE, weight=50)
    classifier = PromptVersionFactory(
        prompt=PromptFactory(slug="transcript-classifier"), major=1, minor=0, status=Status.ACTIVE, weight=100
    )
    c1, c2, c3, c5 = (conversation(user, v1), conversation(user, v1), conversation(user, v1), conversation(user, v2))
    c1_id, c2_id = str(c1.pk), str(c2.pk)

    call(
        v1,
        c1_id,
        input_tokens=100,
        cache_read_input_tokens=900,
        output_tokens=50,
        latency_ms=1000,
        ttft_ms=200,
        cost_usd=Decimal("0.010"),
    )
    call(
        v1,
        c1_id,
        input_tokens=100,
        cache_read_input_tokens=900,
        output_tokens=150,
        latency_ms=3000,
        ttft_ms=400,
        cost_usd=Decimal("0.020"),
    )
    call(v1, c2_id, status="error", error_type="overloaded_error", latency_ms=500, cost_usd=Decimal(0))
    call(
        v1,
        c2_id,
        fallback_step=1,
        refused=True,
        input_tokens=1000,
        output_tokens=100,
        latency_ms=2000,
        ttft_ms=300,
        cost_usd=Decimal("0.030"),
    )
    call(v1, "", input_tokens=200, output_tokens=40, latency_ms=400, cost_usd=Decimal("0.004"))
    old = call(v1, c1_id, input_tokens=10_000, output_tokens=9_999, latency_ms=99_999, cost_usd=Decimal(5))
    LLMCall.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    call(v2, str(c5.pk), input_tokens=500, output_tokens=80, latency_ms=800, ttft_ms=100, cost_usd=Decimal("0.005"))
    call(v2, str(c5.pk), input_tokens=500, output_tokens=120, latency_ms=1200, ttft_ms=150, cost_usd=Decimal("0.007"))

    # Thumbs: v1 2 up / 1 down (c1's last rating is "up"); c2 down; v2 one down.
    rate(c1, "1.0.0", "up")
    rate(c1, "1.0.0", "down")
    rate(c1, "1.0.0", "up")
    rate(c2, "1.0.0", "down")
    rate(c5, "1.1.0", "down")

    # Classifier labels: c1 resolved (agrees with "up"), c2 unresolved (agrees with "down"),
    # c3 resolved (no feedback: no ground truth), c5 resolved (disagrees with "down").
    classify(c1, True, version=classifier)
    classify(c2, False, version=classifier)
    classify(c3, True, version=classifier)
    classify(c5, True, version=classifier)
    return {"v1": v1, "v2": v2, "classifier": classifier}


def metrics_for(slug, days=7):
    until = timezone.now() + timedelta(seconds=1)
    return {m.version: m for m in selectors.version_metrics(slug=slug, since=until - timedelta(days=days), until=until)}


def test_call_log_figures(data):
    v1 = metrics_for("support-assistant")["1.0.0"]
    assert (v1.calls, v1.conversations) == (5, 2)
    assert (v1.errors, v1.fallbacks, v1.refusals) == (selectors.Rate(1, 5),) * 3
    assert v1.error_rate == 0.2
    assert v1.output_tokens_avg == 85  # (50 + 150 + 100 + 40) / 4 successful calls
    assert v1.output_tokens_p95 == 150
    assert (v1.latency_p50_ms, v1.latency_p95_ms) == (1000, 3000)  # of 400, 1000, 2000, 3000
    assert (v1.ttft_p50_ms, v1.ttft_p95_ms) == (300, 400)  # of 200, 300, 400
    assert v1.cost_usd == Decimal("0.064")
    assert v1.cost_per_call == Decimal("0.0128")
    assert v1.cost_per_conversation == Decimal("0.030")  # (0.010 + 0.020 + 0 + 0.030) / 2 conversations
    assert v1.cache_hit_rate == pytest.approx(1800 / 3200)


def test_quality_figures(data):
    figures = metrics_for("support-assistant")
    v1, v2 = figures["1.0.0"], figures["1.1.0"]
    assert v1.thumbs_up == selectors.Rate(2, 4) and v2.thumbs_up == selectors.Rate(0, 1)
    assert v1.resolved == selectors.Rate(2, 3)  # c1, c3 resolved; c2 not
    assert v2.resolved == selectors.Rate(1, 1)
    classifier = metrics_for("transcript-classifier")["1.0.0"]
    assert classifier.accuracy == selectors.Rate(2, 3)  # c1, c2 agree; c5 disagrees; c3 has no ground truth


def test_window_and_unknown_prompt(data):
    assert metrics_for("support-assistant", days=30)["1.0.0"].calls == 6
    assert selectors.version_metrics(slug="nope", since=timezone.now() - timedelta(days=1), until=timezone.now()) == []


def test_percentile_is_nearest_rank():
    assert selectors.percentile([], 95) is None
    assert selectors.percentile([7], 50) == 7
    assert selectors.percentile(list(range(1, 101)), 95) == 95
    assert selectors.percentile([5, 1, 4, 2, 3], 50) == 3


def test_two_proportion_z_test_against_hand_computed_values():
    # pooled p = 75/200 = 0.375; se = sqrt(0.375 · 0.625 · (1/100 + 1/100)) = 0.068465; z = 0.15 / se
    z, p = selectors.two_proportion_z_test(45, 100, 30, 100)
    assert z == pytest.approx(2.19089, abs=1e-4)
    assert p == pytest.approx(0.028459, abs=1e-5)
    assert selectors.two_proportion_z_test(0, 50, 0, 50) is None
    assert selectors.two_proportion_z_test(3, 10, 0, 0) is None


def test_comparison_verdicts():
    def version(errors):
        return selectors.VersionMetrics(version_id=1, version="x", status="active", weight=1, errors=errors)

    significant = {
        c.name: c
        for c in selectors.compare_versions(version(selectors.Rate(45, 100)), version(selectors.Rate(30, 100)))
    }["errors"]
    assert significant.verdict == "significant at 95 %"
    assert significant.difference == pytest.approx(-0.15)
    close = {
        c.name: c
        for c in selectors.compare_versions(version(selectors.Rate(10, 100)), version(selectors.Rate(12, 100)))
    }["errors"]
    # pooled 0.11; se = sqrt(0.11 · 0.89 · 0.02) = 0.044249; z = -0.452; p = 2 · (1 − Φ(0.452)) = 0.6513
    assert close.p_value == pytest.approx(0.6513, abs=1e-3)
    assert close.verdict == "not significant — keep collecting"


def test_metrics_page_renders_table_charts_and_comparison(client, data):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get(
        reverse(METRICS_URL), {"prompt": "support-assistant", "days": 7, "a": data["v1"].pk, "b": data["v2"].pk}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="insights-table"' in body and "<svg" in body and "Calls per day" in body
    assert 'id="insights-comparison"' in body and "keep collecting" in body
    assert "2/4" in body and "0/1" in body  # thumbs-up counts of A and B
    # The prompt-version changelist links here.
    assert reverse(METRICS_URL) in client.get(reverse("admin:prompts_promptversion_changelist")).content.decode()


def test_metrics_page_permissions(client, data):
    client.force_login(StaffFactory())
    assert client.get(reverse(METRICS_URL)).status_code == 403
    viewer = StaffFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_promptversion"))
    client.force_login(viewer)
    assert client.get(reverse(METRICS_URL)).status_code == 200


def test_csv_export(client, data):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get(reverse(METRICS_URL), {"prompt": "support-assistant", "days": 7, "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_version = {row["version"]: row for row in rows}
    assert set(by_version) == {"1.0.0", "1.1.0"}
    v1 = by_version["1.0.0"]
    assert (v1["calls"], v1["error_rate"], v1["cost_per_call"], v1["latency_p95_ms"]) == (
        "5",
        "0.200000",
        "0.0128",
        "3000",
    )
    assert (v1["thumbs_up_rate"], v1["feedback_count"]) == ("0.500000", "4")


def test_attempts_we_cancelled_are_not_upstream_errors(data):
    """A user's stop, a closed tab or a draft replaced after the commit says nothing about the version."""
    v1 = data["v1"]
    before = metrics_for("support-assistant")["1.0.0"]
    call(v1, "", status="error", error_type="cancelled", latency_ms=50)
    call(v1, "", status="error", error_type="overloaded_error", latency_ms=50)

    after = metrics_for("support-assistant")["1.0.0"]
    assert after.calls == before.calls + 2  # both are logged, and priced
    assert after.errors == selectors.Rate(before.errors.hits + 1, before.calls + 2)
    changelist = prompt_versions_with_call_summary(
        PromptVersion.objects.filter(pk=v1.pk), since=timezone.now() - timedelta(days=7)
    )
    assert changelist.get().m_errors == before.errors.hits + 1
