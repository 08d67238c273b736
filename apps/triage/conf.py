"""Triage settings with their defaults (the env-driven values live in supportbot/settings/base.py)."""

from typing import Any

from django.conf import settings

# The Message Batches API accepts at most 100,000 requests and 256 MB per batch.
API_MAX_REQUESTS = 100_000
API_MAX_BYTES = 256 * 1024 * 1024

DEFAULTS: dict[str, Any] = {
    "TRIAGE_BATCH_MAX_REQUESTS": API_MAX_REQUESTS,
    # Far below the API's 256 MB on purpose: the SDK serialises a whole batch body in memory before sending it,
    # so this figure bounds the submitting process's memory. More, smaller batches cost nothing extra.
    "TRIAGE_BATCH_MAX_BYTES": 4 * 1024 * 1024,
    "TRIAGE_MAX_ATTEMPTS": 3,
    # A batch whose create call started less than this long ago may still be in flight in another process:
    # it is not reconciled (and so never re-sent) before then. Longer than the create call's timeout.
    "TRIAGE_SUBMIT_GRACE_SECONDS": 300,
    "TRIAGE_SUBMIT_TIMEOUT_SECONDS": 120.0,
    "TRIAGE_MASK_PII": True,
    "TRIAGE_CLASSIFIER_SLUG": "transcript-classifier",
    "CHAT_CONVERSATION_IDLE_MINUTES": 30,
    # Knowledge-gap drafts: one request per topic, the largest topics first, up to MAX_TOPICS a day; each
    # request carries at most MAX_CONVERSATIONS conversations' questions. Only days at most DAYS old are drafted
    # for, so switching drafting on does not send the whole history.
    "TRIAGE_GAP_DRAFTS": True,
    "TRIAGE_GAP_DRAFT_MAX_TOPICS": 50,
    "TRIAGE_GAP_DRAFT_MAX_CONVERSATIONS": 20,
    "TRIAGE_GAP_DRAFT_DAYS": 7,
}


def triage_setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


def batch_limits() -> tuple[int, int]:
    """(max requests, max bytes) per batch, never above the API's own limits."""
    return (
        min(int(triage_setting("TRIAGE_BATCH_MAX_REQUESTS")), API_MAX_REQUESTS),
        min(int(triage_setting("TRIAGE_BATCH_MAX_BYTES")), API_MAX_BYTES),
    )


def attempts_spent(attempts: int) -> bool:
    """Whether a request sent `attempts` times (a classification or an article draft) gets no more tries."""
    return attempts >= int(triage_setting("TRIAGE_MAX_ATTEMPTS"))
