"""The publish gate: checks other apps register, consulted before a draft goes live.

Prompts must not import the apps that evaluate them (evaluations → prompts, never back), so those apps
register a check here from their AppConfig.ready(). A check returns None when the version may ship, or
the reason it may not ("no evaluation run", "scored 72 % vs live 80 %"); publishing it anyway takes a
written override reason, which the audit log keeps next to the blocked reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.prompts.models import PromptVersion

PublishCheck = Callable[["PromptVersion"], str | None]
_checks: dict[str, PublishCheck] = {}


def register_publish_check(name: str, check: PublishCheck) -> None:
    """Add (or replace, by name) a check run before every publish."""
    _checks[name] = check


def publish_blockers(version: PromptVersion) -> list[str]:
    """Why `version` may not be published without an override (empty: it may)."""
    return [reason for check in _checks.values() if (reason := check(version))]
