"""pass^k arithmetic, the result page's comparison and diffs, the CSV, and "Evaluate…" from the admin."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.evaluations import selectors
from apps.evaluations.models import CaseResult, Run
from tests.evaluations.factories import CaseFactory, EvaluationSetFactory, versions
from tests.prompts.factories import StaffFactory

pytestmark = pytest.mark.django_db


def test_pass_hat_k_is_the_chance_that_k_tries_all_pass():
    assert selectors.pass_hat_k([(3, 3), (3, 2), (3, 0)], 3) == pytest.approx(1 / 3)
    assert selectors.pass_hat_k([(3, 3), (3, 2)], 1) == pytest.approx((1 + 2 / 3) / 2)
    # 4 tries, 3 passes, k = 2: C(3,2)/C(4,2) = 3/6.
    assert selectors.pass_hat_k([(4, 3)], 2) == pytest.approx(0.5)
    assert selectors.pass_hat_k([], 3) is None
    with pytest.raises(ValueError):
        selectors.pass_hat_k([(2, 2)], 3)


def _finished_run(verdicts):
    """A finished run whose results pass as given: {(case index, "candidate"|"live"): [bool per attempt]}."""
    live, draft = versions()
    evaluation_set = EvaluationSetFactory()
    cases = [CaseFactory(evaluation_set=evaluation_set) for _ in range(2)]
    run = Run.objects.create(
        evaluation_set=evaluation_set, candidate=draft, baseline=live, k=3, status=Run.Status.DONE, mode="quick"
    )
    for (index, who), passes in verdicts.items():
        for attempt, passed in enumerate(passes, 1):
            CaseResult.objects.create(
                run=run,
                case=cases[index],
                version=draft if who == "candidate" else live,
                attempt=attempt,
                status=CaseResult.Status.GRADED,
                passed=passed,
                answer=f"{who} answer {attempt}",
                checks=[{"check": "must_include", "ok": passed, "detail": "missing: $29" if not passed else "found"}],
                cost_usd="0.001",
                input_tokens=100,
                output_tokens=10,
            )
    return run


def test_the_report_compares_versions_and_lists_cases_whose_verdict_changed():
    run = _finished_run(
        {
            (0, "candidate"): [True, True, False],
            (0, "live"): [True, True, True],
            (1, "candidate"): [True, True, True],
            (1, "live"): [True, True, True],
        }
    )
    report = selectors.run_report(run=run)
    assert report.candidate.pass_rate == pytest.approx(5 / 6) and report.candidate.pass_k == pytest.approx(0.5)
    assert report.baseline.pass_rate == 1 and report.baseline.pass_k == 1
    assert report.candidate.cost_usd == Decimal("0.006") and report.candidate.input_tokens == 600  # 6 results
    [diff] = report.changed
    assert (diff.candidate_passes, diff.baseline_passes) == ("2/3", "3/3")
    assert diff.candidate_answer == "candidate answer 3" and "missing: $29" in diff.candidate_reasons
    rows = selectors.run_csv_rows(run=run)
    assert rows[0] == selectors.CSV_HEADER and len(rows) == 13


@pytest.fixture
def staff_client(client):
    user = StaffFactory(is_superuser=True)
    client.force_login(user)
    return client


def test_evaluate_quick_from_the_admin_shows_the_comparison_and_csv(staff_client, llm_upstream):
    live, draft = versions()
    evaluation_set = EvaluationSetFactory()
    CaseFactory(evaluation_set=evaluation_set)
    page = staff_client.get(reverse("admin:evaluations_run_evaluate", args=[draft.pk]))
    assert page.status_code == 200 and evaluation_set.name in page.content.decode()
    response = staff_client.post(
        reverse("admin:evaluations_run_evaluate", args=[draft.pk]),
        {"evaluation_set": evaluation_set.pk, "mode": "quick", "k": "2"},
        follow=True,
    )
    body = response.content.decode()
    assert response.status_code == 200 and "Done" in body
    assert f"candidate {draft.version}" in body and f"live {live.version}" in body and "pass^2" in body
    run = Run.objects.get()
    exported = staff_client.get(reverse("admin:evaluations_run_csv", args=[run.pk]))
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert len(rows) == 1 + 4 and rows[1][6] == "yes"


def test_a_bad_k_is_a_clear_error_and_starts_nothing(staff_client):
    _, draft = versions()
    evaluation_set = EvaluationSetFactory()
    CaseFactory(evaluation_set=evaluation_set)
    response = staff_client.post(
        reverse("admin:evaluations_run_evaluate", args=[draft.pk]),
        {"evaluation_set": evaluation_set.pk, "mode": "quick", "k": "50"},
    )
    assert "k must be between 1 and 10" in response.content.decode() and not Run.objects.exists()


def test_evaluating_needs_the_permission(client):
    _, draft = versions()
    client.force_login(StaffFactory())
    assert client.get(reverse("admin:evaluations_run_evaluate", args=[draft.pk])).status_code == 403
