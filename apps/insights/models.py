"""Insights owns no data: it reads llm, chat, triage and prompts.

`Metrics` is an unmanaged, table-less model that exists only so the admin can list the per-version
metrics page under "Insights" (at /admin/insights/metrics/) and so access can be granted with an
ordinary permission (`insights.view_metrics`).
"""

from django.db import models


class Metrics(models.Model):
    """Placeholder for the admin metrics page; never queried."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = "prompt version metrics"
        verbose_name_plural = "prompt version metrics"

    def __str__(self) -> str:
        return str(self._meta.verbose_name)
