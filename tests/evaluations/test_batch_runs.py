"""Batch runs through the emulator's Message Batches API: rounds, custom_ids, requeues, restarts, discount."""

import pytest

from apps.evaluations import batching, services
from apps.evaluations.models import CaseResult, Run
from apps.llm.models import LLMCall
from tests.conftest import set_faults
from tests.evaluations.factories import CaseFactory, EvaluationSetFactory, versions

pytestmark = pytest.mark.django_db


def _advance_until_done(run: Run, limit: int = 40) -> Run:
    for _ in range(limit):
        run = batching.run_advance(run_id=run.pk)
        if run.status == Run.Status.DONE:
            return run
    raise AssertionError(f"run {run.pk} did not finish: {run.status}, round {run.round}")


def _batch_run(k=2, **case_fields):
    _, draft = versions()
    evaluation_set = EvaluationSetFactory()
    CaseFactory(evaluation_set=evaluation_set, **case_fields)
    return services.run_start(evaluation_set=evaluation_set, candidate=draft, actor=None, mode=Run.Mode.BATCH, k=k)


def test_a_batch_run_answers_through_batches_at_half_price_and_grades(llm_upstream):
    set_faults(llm_upstream, {"batch_processing_seconds": 0})
    run = _batch_run()
    run = batching.run_advance(run_id=run.pk)
    assert run.status == Run.Status.SUBMITTED and run.round == 1 and run.batch_id
    run = _advance_until_done(run)
    results = list(run.results.all())
    assert len(results) == 4 and all(r.status == CaseResult.Status.GRADED and r.passed for r in results)
    answers = LLMCall.objects.filter(task_type="evaluation")
    assert answers.count() == 4 and all(call.is_batch for call in answers)
    assert set(answers.values_list("request_id", flat=True)) == {
        batching.custom_id_for(run_id=run.pk, result_id=r.pk, round_number=1) for r in results
    }


def test_errored_items_are_requeued_in_the_next_round(llm_upstream):
    set_faults(llm_upstream, {"batch_processing_seconds": 0, "batch_error_rate": 1.0})
    run = batching.run_advance(run_id=_batch_run(k=1).pk)
    set_faults(llm_upstream, {"batch_processing_seconds": 0})
    run = batching.run_advance(run_id=run.pk)  # ingests the errors, sends round 2
    assert run.round == 2 and run.status == Run.Status.SUBMITTED
    assert set(run.results.values_list("requeues", flat=True)) == {1}
    run = _advance_until_done(run)
    assert all(r.passed for r in run.results.all())
    errors = LLMCall.objects.filter(task_type="evaluation", status="error")
    assert errors.count() == 2 and all(call.model.startswith("claude-") for call in errors)


def test_items_that_keep_failing_end_errored_and_not_passed(llm_upstream):
    set_faults(llm_upstream, {"batch_processing_seconds": 0, "batch_error_rate": 1.0})
    run = _advance_until_done(_batch_run(k=1))
    assert {(r.status, r.passed, r.requeues) for r in run.results.all()} == {
        (CaseResult.Status.ERRORED, False, batching.MAX_REQUEUES + 1)
    }


def test_a_restarted_worker_picks_up_the_stored_batch_and_applies_each_result_once(llm_upstream):
    set_faults(llm_upstream, {"batch_processing_seconds": 0})
    run = batching.run_advance(run_id=_batch_run(k=1).pk)
    batch_id = run.batch_id
    # A new process knows only the database: the same run id advances from the stored batch id.
    fresh = Run.objects.get(pk=run.pk)
    assert fresh.batch_id == batch_id
    done = _advance_until_done(fresh)
    assert done.status == Run.Status.DONE
    assert LLMCall.objects.filter(task_type="evaluation").count() == 2  # one answer per result, not more
    assert batching.run_advance(run_id=run.pk).status == Run.Status.DONE  # safe to call again


def test_a_simulated_customer_takes_one_round_per_turn(llm_upstream):
    set_faults(llm_upstream, {"batch_processing_seconds": 0})
    run = _batch_run(
        k=1, turns=[], goal="Find out how much the Pro plan costs per user.", persona="Short messages.", max_turns=2
    )
    run = _advance_until_done(run)
    result = run.results.filter(version=run.candidate).get()
    assert [t["role"] for t in result.transcript] == ["user", "assistant", "done"]
    assert run.round == 3 and result.passed


def test_custom_ids_of_other_runs_are_not_ours():
    assert batching.custom_id_parse("ev12-x34-n2") == (12, 34, 2)
    assert batching.custom_id_parse("tb1-c2-a1") is None
