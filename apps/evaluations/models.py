"""Evaluation sets: known cases a prompt version is run against before it ships.

A `Case` is a customer fixture (plan tier, account data), what the customer says (fixed turns, or a goal
and persona for a simulated customer) and what a good answer looks like (facts that must / must not
appear, the answer's language, an expected handoff, a rubric for the model grader). A `Run` answers every
case of a set `k` times with a candidate version and the live version; each answer is a `CaseResult`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

PLAN_TIERS = ("free", "pro", "enterprise")
MAX_SIMULATED_TURNS = 8


def _strings(value: object, field: str, *, required: bool = False) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValidationError({field: "Give a list of non-empty strings."})
    if required and not value:
        raise ValidationError({field: "Give at least one."})
    return value


class EvaluationSet(models.Model):
    """A named collection of cases for one prompt (by slug)."""

    name = models.CharField(max_length=200, unique=True, help_text="Shown in the admin and on run pages.")
    prompt_slug = models.SlugField(
        max_length=80, default="support-assistant", help_text="The prompt whose versions this set evaluates."
    )
    description = models.TextField(blank=True, help_text="What the set covers.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Case(models.Model):
    """One scenario: who the customer is, what they say, and what a good answer does."""

    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.CASCADE, related_name="cases")
    name = models.CharField(max_length=200, help_text="Short label, unique within the set.")
    tags = models.CharField(max_length=200, blank=True, help_text='Comma-separated, e.g. "adversarial, billing".')
    plan_tier = models.CharField(
        max_length=20, default="pro", choices=[(t, t) for t in PLAN_TIERS], help_text="The customer's plan."
    )
    account_data = models.JSONField(
        default=dict, blank=True, help_text='The customer\'s account as key → value, e.g. {"invoice": "INV-1 paid"}.'
    )
    turns = models.JSONField(
        default=list, blank=True, help_text="What the customer says, one string per turn (empty for a simulated one)."
    )
    goal = models.TextField(blank=True, help_text="Simulated customer: what they want to achieve.")
    persona = models.TextField(blank=True, help_text="Simulated customer: how they behave and write.")
    max_turns = models.PositiveSmallIntegerField(default=3, help_text="Simulated customer: at most this many turns.")
    must_include = models.JSONField(default=list, blank=True, help_text="Facts the answer must contain (any case).")
    must_not_include = models.JSONField(
        default=list, blank=True, help_text="Facts the answer must never contain (another customer's data…)."
    )
    language = models.CharField(max_length=8, blank=True, help_text="ISO 639-1 language the answer must be in.")
    expect_handoff = models.BooleanField(
        null=True, blank=True, help_text="True: the answer must hand over to a human; False: it must not; blank: any."
    )
    expect_tool = models.CharField(
        max_length=80,
        blank=True,
        help_text="A tool the assistant must call in this case (e.g. resend_invoice); blank: no expectation.",
    )
    expect_tool_arguments = models.JSONField(
        default=dict,
        blank=True,
        help_text='Arguments that call must carry, e.g. {"invoice_number": "INV-2041"}; others may be present too.',
    )
    rubric = models.JSONField(default=list, blank=True, help_text="Criteria for the model grader, one per string.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["evaluation_set", "id"]
        constraints = [models.UniqueConstraint(fields=["evaluation_set", "name"], name="evaluations_case_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def simulated(self) -> bool:
        return bool(self.goal.strip())

    def clean(self) -> None:
        _strings(self.turns, "turns")
        _strings(self.must_include, "must_include")
        _strings(self.must_not_include, "must_not_include")
        _strings(self.rubric, "rubric")
        if not isinstance(self.account_data, dict) or not all(isinstance(k, str) for k in self.account_data):
            raise ValidationError({"account_data": "Give an object of field → value."})
        if self.simulated == bool(self.turns):
            raise ValidationError("Give either customer turns or a simulated customer's goal, not both or neither.")
        if self.simulated and not 1 <= self.max_turns <= MAX_SIMULATED_TURNS:
            raise ValidationError({"max_turns": f"A simulated customer speaks 1 to {MAX_SIMULATED_TURNS} times."})
        if self.language and (len(self.language) != 2 or not self.language.isalpha()):
            raise ValidationError({"language": "Use a two-letter ISO 639-1 code, e.g. en, fr."})
        overlap = {f.lower() for f in self.must_include} & {f.lower() for f in self.must_not_include}
        if overlap:
            raise ValidationError(f"A fact cannot be both required and forbidden: {', '.join(sorted(overlap))}.")
        self._clean_tool_expectation()
        if not (self.must_include or self.must_not_include or self.language or self.rubric or self.expect_tool) and (
            self.expect_handoff is None
        ):
            raise ValidationError("A case needs at least one expectation.")

    def _clean_tool_expectation(self) -> None:
        from apps.actions.registry import tool_get

        arguments = self.expect_tool_arguments
        if not isinstance(arguments, dict) or not all(isinstance(key, str) for key in arguments):
            raise ValidationError({"expect_tool_arguments": "Give an object of argument → value."})
        if not self.expect_tool:
            if arguments:
                raise ValidationError({"expect_tool_arguments": "Arguments need an expected tool."})
            return
        tool = tool_get(self.expect_tool)
        if tool is None:
            raise ValidationError({"expect_tool": f"No tool named {self.expect_tool!r}."})
        unknown = sorted(set(arguments) - set(tool.input_schema.get("properties") or {}))
        if unknown:
            raise ValidationError({"expect_tool_arguments": f"{tool.name} takes no argument {', '.join(unknown)}."})


class Run(models.Model):
    """One evaluation of a candidate version against a baseline (the live version) on a set."""

    class Mode(models.TextChoices):
        QUICK = "quick", "Quick (synchronous, a few cases)"
        BATCH = "batch", "Batch (Message Batches API, half price)"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUBMITTED = "submitted", "Submitted"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.PROTECT, related_name="runs")
    candidate = models.ForeignKey(
        "prompts.PromptVersion", on_delete=models.PROTECT, related_name="evaluation_runs", help_text="Version tested."
    )
    baseline = models.ForeignKey(
        "prompts.PromptVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="baseline_runs",
        help_text="The live version it is compared with (blank when nothing is live).",
    )
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.BATCH)
    k = models.PositiveSmallIntegerField(default=3, help_text="Each case is answered k times per version.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    batch_id = models.CharField(max_length=100, blank=True, help_text="Upstream message batch id (batch mode).")
    round = models.PositiveSmallIntegerField(
        default=0, help_text="Batch round: simulated customers and requeued errors need further rounds."
    )
    error = models.TextField(blank=True, help_text="Why the run failed.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["candidate", "-created_at"], name="evaluations_run_candidate_idx")]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.candidate}"


class CaseResult(models.Model):
    """One answer to one case by one version (attempt 1..k), its checks and grades."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for an answer"
        ANSWERED = "answered", "Answered, not graded"
        GRADED = "graded", "Graded"
        ERRORED = "errored", "Failed after retries"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="results")
    version = models.ForeignKey("prompts.PromptVersion", on_delete=models.CASCADE, related_name="+")
    attempt = models.PositiveSmallIntegerField(help_text="1..k")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    transcript = models.JSONField(
        default=list, blank=True, help_text='[{"role": "user"|"assistant", "text": …}] so far.'
    )
    answer = models.TextField(blank=True, help_text="The last assistant answer (what is checked and graded).")
    checks = models.JSONField(default=list, blank=True, help_text='[{"check": …, "ok": bool, "detail": …}]')
    grades = models.JSONField(default=list, blank=True, help_text='[{"criterion": …, "score": 0..1, "reason": …}]')
    passed = models.BooleanField(null=True, blank=True, help_text="Checks and grades all passed.")
    custom_id = models.CharField(max_length=64, blank=True, help_text="Batch request custom_id of the last round.")
    requeues = models.PositiveSmallIntegerField(default=0, help_text="Errored batch items sent again.")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, default=0, help_text="Answer and grading.")
    latency_ms = models.PositiveIntegerField(default=0, help_text="Answer latency (quick runs; 0 in batches).")
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["run", "case", "version", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["run", "case", "version", "attempt"], name="evaluations_result_unique")
        ]
        indexes = [models.Index(fields=["run", "status"], name="evaluations_result_status_idx")]

    def __str__(self) -> str:
        return f"{self.case} #{self.attempt} ({self.version})"
