"""System checks of what is stored in prompts (run with `manage.py check --database default` and by
`migrate`, as Django runs checks that read the database only when asked to)."""

from collections.abc import Sequence
from typing import Any

from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError


@register(Tags.database)
def published_prompts_name_no_customer(
    app_configs: Sequence[Any] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """prompts.W001: a published version's shared parts hold an existing customer's username, email or
    invoice number (every customer's request would carry it)."""
    if not databases:
        return []
    from apps.prompts.selectors import published_versions_with_customer_data

    try:
        found = published_versions_with_customer_data()
    except DatabaseError:  # tables not migrated yet (this check also runs before `migrate`)
        return []
    return [
        CheckWarning(
            f"Published prompt {version.prompt.slug} {version.version} names an existing customer: {warning}",
            hint="Publish a version with fictional examples and retire this one.",
            obj=version,
            id="prompts.W001",
        )
        for version, warnings in found
        for warning in warnings
    ]
