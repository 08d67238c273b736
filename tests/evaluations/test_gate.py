"""The publish gate: no run or a worse run blocks a person's publish; an override with a reason is audited."""

import pytest
from django.urls import reverse

from apps.core.exceptions import ApplicationError
from apps.evaluations.models import CaseResult, Run
from apps.prompts import services as prompt_services
from apps.prompts.models import PromptAuditLog, PromptVersion
from tests.evaluations.factories import CaseFactory, EvaluationSetFactory, versions
from tests.prompts.factories import StaffFactory

pytestmark = pytest.mark.django_db


def _run(live, draft, case, *, candidate_passes, live_passes):
    run = Run.objects.create(
        evaluation_set=case.evaluation_set, candidate=draft, baseline=live, k=len(candidate_passes), mode="quick"
    )
    for version, passes in ((draft, candidate_passes), (live, live_passes)):
        for attempt, passed in enumerate(passes, 1):
            CaseResult.objects.create(
                run=run, case=case, version=version, attempt=attempt, status="graded", passed=passed
            )
    from django.utils import timezone

    Run.objects.filter(pk=run.pk).update(status=Run.Status.DONE, finished_at=timezone.now())
    return run


@pytest.fixture
def setup():
    live, draft = versions()
    case = CaseFactory(evaluation_set=EvaluationSetFactory())
    return live, draft, case, StaffFactory(is_superuser=True)


def test_a_draft_without_a_run_is_blocked_and_nothing_changes(setup):
    live, draft, _, staff = setup
    with pytest.raises(ApplicationError) as raised:
        prompt_services.prompt_version_publish(version=draft, actor=staff)
    assert raised.value.code == "publish_blocked" and "no finished evaluation run" in raised.value.message
    draft.refresh_from_db()
    live.refresh_from_db()
    assert draft.status == PromptVersion.Status.DRAFT and live.status == PromptVersion.Status.ACTIVE


def test_a_run_below_live_blocks_and_one_at_least_as_good_passes(setup, settings):
    settings.EVALUATION_MIN_PASS_RATE = 0.5
    live, draft, case, staff = setup
    _run(live, draft, case, candidate_passes=[True, True, False], live_passes=[True, True, True])
    with pytest.raises(ApplicationError) as raised:
        prompt_services.prompt_version_publish(version=draft, actor=staff)
    assert "passed 67%, below live" in raised.value.message
    _run(live, draft, case, candidate_passes=[True, True, True], live_passes=[True, True, True])
    published = prompt_services.prompt_version_publish(version=draft, actor=staff)
    assert published.status == PromptVersion.Status.ACTIVE
    audit = PromptAuditLog.objects.get(version=draft, action="published")
    assert "override_reason" not in audit.detail


def test_a_run_below_the_threshold_blocks_even_when_live_is_worse(setup, settings):
    settings.EVALUATION_MIN_PASS_RATE = 0.9
    live, draft, case, staff = setup
    _run(live, draft, case, candidate_passes=[True, True, False], live_passes=[False, False, False])
    with pytest.raises(ApplicationError) as raised:
        prompt_services.prompt_version_publish(version=draft, actor=staff)
    assert "below the 90% threshold" in raised.value.message


def test_an_override_with_a_reason_publishes_and_is_audited(setup):
    _, draft, _, staff = setup
    with pytest.raises(ApplicationError):
        prompt_services.prompt_version_publish(version=draft, actor=staff, override_reason="   ")
    prompt_services.prompt_version_publish(
        version=draft, actor=staff, override_reason="Hotfix for a wrong price; set re-run tonight."
    )
    audit = PromptAuditLog.objects.get(version=draft, action="published")
    assert audit.actor == staff
    assert audit.detail["override_reason"] == "Hotfix for a wrong price; set re-run tonight."
    assert audit.detail["gate_blockers"] == ["it has no finished evaluation run"]


def test_prompts_without_an_evaluation_set_are_not_gated():
    from tests.prompts.factories import PromptVersionFactory

    draft = PromptVersionFactory()
    published = prompt_services.prompt_version_publish(version=draft, actor=StaffFactory())
    assert published.status == PromptVersion.Status.ACTIVE


def test_the_publish_page_shows_the_blockers_and_takes_an_override(client, setup):
    _, draft, _, staff = setup
    client.force_login(staff)
    url = reverse("admin:prompts_promptversion_publish", args=[draft.pk])
    page = client.get(url).content.decode()
    assert "no finished evaluation run" in page and 'name="override_reason"' in page and 'id="ab-verdict"' in page
    refused = client.post(url, {"mode": "exclusive", "weight": "100"}).content.decode()
    assert "cannot be published yet" in refused
    assert PromptVersion.objects.get(pk=draft.pk).status == PromptVersion.Status.DRAFT
    client.post(url, {"mode": "exclusive", "weight": "100", "override_reason": "Reviewed by hand."})
    assert PromptVersion.objects.get(pk=draft.pk).status == PromptVersion.Status.ACTIVE
    assert PromptAuditLog.objects.get(version=draft, action="published").detail["override_reason"] == (
        "Reviewed by hand."
    )


def test_the_weight_page_shows_the_z_test_and_going_to_100_percent_without_significance_warns(client, setup):
    from apps.llm.models import LLMCall

    live, draft, _, staff = setup
    PromptVersion.objects.filter(pk=draft.pk).update(status=PromptVersion.Status.ACTIVE, weight=50)
    for version, errors in ((live, 30), (draft, 2)):
        LLMCall.objects.bulk_create(
            LLMCall(
                task_type="chat",
                model="claude-haiku-4-5",
                prompt_slug="support-assistant",
                prompt_version=version.version,
                status="error" if n < errors else "ok",
            )
            for n in range(100)
        )
    client.force_login(staff)
    url = reverse("admin:prompts_promptversion_weight", args=[draft.pk])
    page = client.get(url).content.decode()
    assert f"against {live.version}" in page and "significant at 95 %" in page
    response = client.post(url, {"weight": "100"}, follow=True)
    assert "not statistically significant" not in response.content.decode()  # weight 100 of 150: not all traffic
    PromptVersion.objects.filter(pk=live.pk).update(weight=0)
    LLMCall.objects.all().delete()
    response = client.post(url, {"weight": "100"}, follow=True)
    assert "now serves 100 % of new conversations" in response.content.decode()
