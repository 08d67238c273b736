"""The evaluation check of the publish gate (registered with apps.prompts.gates in AppConfig.ready)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from apps.evaluations import selectors
from apps.evaluations.models import EvaluationSet

if TYPE_CHECKING:
    from apps.prompts.models import PromptVersion


def evaluation_blocker(version: PromptVersion) -> str | None:
    """Why `version` should not ship on its evaluation record, or None.

    Only prompts that have an evaluation set are gated. Blocked: no finished run; a pass rate below
    settings.EVALUATION_MIN_PASS_RATE; or below the live version's pass rate in the same run.
    """
    if not EvaluationSet.objects.filter(prompt_slug=version.prompt.slug).exists():
        return None
    run = selectors.run_latest_finished(version_id=version.pk)
    if run is None:
        return "it has no finished evaluation run"
    report = selectors.run_report(run=run)
    rate = report.candidate.pass_rate or 0.0
    threshold = settings.EVALUATION_MIN_PASS_RATE
    if rate < threshold:
        return f"its last evaluation run (#{run.pk}) passed {rate:.0%}, below the {threshold:.0%} threshold"
    live = report.baseline
    if live is not None and live.pass_rate is not None and rate < live.pass_rate:
        return f"its last evaluation run (#{run.pk}) passed {rate:.0%}, below live {live.label} at {live.pass_rate:.0%}"
    return None
