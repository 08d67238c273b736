"""Quick runs through the emulator: answers, checks, the model grader (and its retry), costs from the log."""

import pytest

from apps.evaluations import services
from apps.evaluations.models import CaseResult, Run
from apps.llm.models import LLMCall
from tests.conftest import received_requests, set_faults
from tests.evaluations.factories import CaseFactory, EvaluationSetFactory, versions

pytestmark = pytest.mark.django_db


def _quick(evaluation_set, draft, k=2):
    run = services.run_start(evaluation_set=evaluation_set, candidate=draft, actor=None, mode=Run.Mode.QUICK, k=k)
    return services.run_quick(run=run)


def test_a_quick_run_answers_each_case_k_times_per_version_and_grades_them(llm_upstream):
    live, draft = versions()
    evaluation_set = EvaluationSetFactory()
    CaseFactory(evaluation_set=evaluation_set)
    CaseFactory(
        evaluation_set=evaluation_set,
        turns=["Tell me Bob's invoices."],
        must_include=[],
        must_not_include=["$29"],
        rubric=[],
        language="en",
    )
    run = _quick(evaluation_set, draft)
    assert run.status == Run.Status.DONE and run.baseline == live
    results = list(run.results.select_related("case"))
    assert len(results) == 2 * 2 * 2
    assert {r.status for r in results} == {CaseResult.Status.GRADED}
    priced = [r for r in results if r.case.rubric]
    for result in priced:
        assert "$29" in result.answer and result.passed is True
        assert result.grades[0]["criterion"] == "The answer states the Pro price."
        assert result.grades[0]["score"] == 1 and result.grades[0]["reason"]
        calls = LLMCall.objects.filter(conversation_id=f"eval{run.pk}-x{result.pk}")
        assert sorted(calls.values_list("task_type", flat=True)) == ["evaluation", "grading"]
        assert result.cost_usd == sum(c.cost_usd for c in calls) > 0
        assert result.input_tokens > 0 and result.output_tokens > 0
    # The candidate's answers were produced by the candidate's prompt.
    systems = [r["body"]["system"][0]["text"] for r in received_requests(llm_upstream, 50) if "system" in r["body"]]
    assert "You are Ava, concise." in systems and "You are Ava." in systems


def test_a_grader_that_answers_malformed_output_once_is_asked_again(llm_upstream):
    _, draft = versions()
    evaluation_set = EvaluationSetFactory()
    case = CaseFactory(evaluation_set=evaluation_set)
    run = services.run_start(evaluation_set=evaluation_set, candidate=draft, actor=None, mode=Run.Mode.QUICK, k=1)
    run = services.run_quick(run=run)  # answers first, then the malformed grade
    result = run.results.filter(version=draft).get()
    # Grade the same answer again, this time with the grader's first reply malformed.
    set_faults(llm_upstream, {"malformed": "prose_instead_of_json", "malformed_count": 1})
    regraded = services.result_grade(result=result)
    assert regraded.status == CaseResult.Status.GRADED and regraded.passed is True
    grading_calls = LLMCall.objects.filter(conversation_id=f"eval{run.pk}-x{result.pk}", task_type="grading")
    assert grading_calls.count() == 3  # the first grading, then the malformed reply and its retry
    assert case.rubric[0] == regraded.grades[0]["criterion"]


def test_a_grader_that_never_answers_valid_json_leaves_the_result_errored_not_passed(llm_upstream):
    _, draft = versions()
    evaluation_set = EvaluationSetFactory()
    CaseFactory(evaluation_set=evaluation_set)
    run = services.run_start(evaluation_set=evaluation_set, candidate=draft, actor=None, mode=Run.Mode.QUICK, k=1)
    set_faults(llm_upstream, {"malformed": "prose_instead_of_json", "models": ["claude-haiku-4-5"]})
    run = services.run_quick(run=run)
    result = run.results.filter(version=draft).get()
    assert result.passed is False and result.status == CaseResult.Status.ERRORED
    assert result.error.startswith("grader:")


def test_a_simulated_customer_talks_until_its_goal_is_met_deterministically(llm_upstream):
    _, draft = versions()
    evaluation_set = EvaluationSetFactory()
    CaseFactory(
        evaluation_set=evaluation_set,
        turns=[],
        goal="Find out how much the Pro plan costs per user.",
        persona="A busy office manager.",
        max_turns=3,
    )
    run = _quick(evaluation_set, draft, k=2)
    results = list(run.results.filter(version=draft).order_by("attempt"))
    for result in results:
        roles = [turn["role"] for turn in result.transcript]
        assert roles[:2] == ["user", "assistant"] and roles[-1] == "done"
        assert "pro plan cost" in result.transcript[0]["text"].lower()
        assert result.passed is True
    again = _quick(evaluation_set, draft, k=2)
    replay = list(again.results.filter(version=draft).order_by("attempt"))
    assert [r.transcript for r in replay] == [r.transcript for r in results]


def test_a_case_needs_a_run_for_the_same_prompt_and_a_sane_k():
    from apps.core.exceptions import ApplicationError

    _, draft = versions()
    other = EvaluationSetFactory(prompt_slug="transcript-classifier")
    CaseFactory(evaluation_set=other)
    with pytest.raises(ApplicationError) as raised:
        services.run_start(evaluation_set=other, candidate=draft, actor=None, mode=Run.Mode.QUICK)
    assert raised.value.code == "wrong_prompt"
    with pytest.raises(ApplicationError) as raised:
        services.run_start(evaluation_set=EvaluationSetFactory(), candidate=draft, actor=None, k=0)
    assert raised.value.code == "invalid_k"
