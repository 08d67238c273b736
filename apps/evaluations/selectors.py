"""Reads for evaluations: a run's figures per version (pass rate, pass^k, cost, tokens, latency), the
cases whose verdict changed, CSV rows, and the latest finished run of a version (for the publish gate)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from math import comb
from statistics import median

from django.shortcuts import get_object_or_404

from apps.evaluations.models import CaseResult, Run


def pass_hat_k(outcomes: list[tuple[int, int]], k: int) -> float | None:
    """pass^k: the chance that k independent tries of a case all pass, averaged over cases.

    `outcomes` is (tries n, passes c) per case; each case contributes C(c, k) / C(n, k), the unbiased
    estimate from n ≥ k tries (with n == k: 1 when every try passed, else 0). None with no cases.
    Raises ValueError when a case has fewer than k tries.
    """
    if not outcomes:
        return None
    total = 0.0
    for n, c in outcomes:
        if n < k:
            raise ValueError(f"pass^{k} needs at least {k} tries per case, got {n}")
        total += comb(c, k) / comb(n, k)
    return total / len(outcomes)


@dataclass
class VersionFigures:
    label: str
    results: int = 0
    finished: int = 0
    passed: int = 0
    pass_rate: float | None = None
    pass_k: float | None = None
    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    latency_p50_ms: float | None = None
    by_case: dict[int, list[CaseResult]] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseDiff:
    case: str
    candidate_passes: str  # "2/3"
    baseline_passes: str
    candidate_answer: str
    baseline_answer: str
    candidate_reasons: str


@dataclass
class RunReport:
    run: Run
    candidate: VersionFigures
    baseline: VersionFigures | None
    changed: list[CaseDiff]
    progress: dict[str, int]

    @property
    def done(self) -> bool:
        return self.run.status == Run.Status.DONE


def run_get(run_id: int) -> Run:
    """The run (404 when there is none); runs are staff-only objects, checked by the admin."""
    return get_object_or_404(Run.objects.select_related("evaluation_set", "candidate__prompt", "baseline"), pk=run_id)


def _figures(run: Run, version_id: int, label: str, results: list[CaseResult]) -> VersionFigures:
    mine = [r for r in results if r.version_id == version_id]
    figures = VersionFigures(label=label, results=len(mine))
    for result in mine:
        figures.by_case.setdefault(result.case_id, []).append(result)
    finished = [r for r in mine if r.passed is not None]
    figures.finished = len(finished)
    figures.passed = sum(1 for r in finished if r.passed)
    figures.pass_rate = figures.passed / len(finished) if finished else None
    complete = [rows for rows in figures.by_case.values() if all(r.passed is not None for r in rows)]
    if complete and len(complete) == len(figures.by_case):
        figures.pass_k = pass_hat_k([(len(rows), sum(1 for r in rows if r.passed)) for rows in complete], run.k)
    figures.cost_usd = sum((r.cost_usd for r in mine), Decimal(0))
    figures.input_tokens = sum(r.input_tokens for r in mine)
    figures.output_tokens = sum(r.output_tokens for r in mine)
    latencies = [r.latency_ms for r in mine if r.latency_ms]
    figures.latency_p50_ms = median(latencies) if latencies else None
    return figures


def _passes(rows: list[CaseResult]) -> str:
    return f"{sum(1 for r in rows if r.passed)}/{len(rows)}"


def _shown(rows: list[CaseResult]) -> CaseResult:
    """The answer to show for a case: the first failing one, else the first."""
    return next((r for r in rows if not r.passed), rows[0])


def _reasons(result: CaseResult) -> str:
    failed = [c["detail"] for c in result.checks if not c["ok"]]
    failed += [f"{g['criterion']}: {g['reason']}" for g in result.grades if g["score"] < 0.5]
    return "; ".join(failed) or result.error


def run_report(*, run: Run) -> RunReport:
    results = list(run.results.select_related("case").order_by("case_id", "attempt"))
    candidate = _figures(run, run.candidate_id, run.candidate.version, results)
    baseline = _figures(run, run.baseline_id, run.baseline.version, results) if run.baseline_id else None
    changed: list[CaseDiff] = []
    if baseline is not None:
        for case_id, rows in candidate.by_case.items():
            other = baseline.by_case.get(case_id, [])
            if not other or any(r.passed is None for r in rows + other):
                continue
            if all(r.passed for r in rows) != all(r.passed for r in other):
                mine, theirs = _shown(rows), _shown(other)
                changed.append(
                    CaseDiff(
                        case=rows[0].case.name,
                        candidate_passes=_passes(rows),
                        baseline_passes=_passes(other),
                        candidate_answer=mine.answer,
                        baseline_answer=theirs.answer,
                        candidate_reasons=_reasons(mine),
                    )
                )
    progress = {status: 0 for status in CaseResult.Status.values}
    for result in results:
        progress[result.status] += 1
    return RunReport(run=run, candidate=candidate, baseline=baseline, changed=changed, progress=progress)


CSV_HEADER = [
    "run",
    "case",
    "tags",
    "version",
    "attempt",
    "status",
    "passed",
    "failed_checks",
    "grades",
    "answer",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
]


def run_csv_rows(*, run: Run) -> list[list[str]]:
    rows = [CSV_HEADER]
    for r in run.results.select_related("case", "version").order_by("case_id", "version_id", "attempt"):
        rows.append(
            [
                str(run.pk),
                r.case.name,
                r.case.tags,
                r.version.version,
                str(r.attempt),
                r.status,
                "" if r.passed is None else ("yes" if r.passed else "no"),
                "; ".join(c["detail"] for c in r.checks if not c["ok"]),
                "; ".join(f"{g['score']:g} {g['criterion']}: {g['reason']}" for g in r.grades),
                r.answer,
                str(r.input_tokens),
                str(r.output_tokens),
                f"{r.cost_usd:.6f}",
                str(r.latency_ms),
            ]
        )
    return rows


def run_latest_finished(*, version_id: int) -> Run | None:
    """The version's last finished run (as the candidate), for the publish gate."""
    return Run.objects.filter(candidate_id=version_id, status=Run.Status.DONE).order_by("-finished_at", "-pk").first()
