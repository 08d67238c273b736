"""Celery entry points for evaluation runs. Thin: ids in, one service, safe to run twice."""

from celery import shared_task

from apps.evaluations import batching


@shared_task(name="apps.evaluations.tasks.evaluation_run_advance")
def evaluation_run_advance(run_id: int) -> str:
    """Submit, poll or ingest the run's current batch round; returns the run's status."""
    return batching.run_advance(run_id=run_id).status


@shared_task(name="apps.evaluations.tasks.evaluation_runs_poll")
def evaluation_runs_poll() -> list[int]:
    """Advance every open batch run (scheduled every minute); returns the ids advanced."""
    return batching.runs_advance_open()
