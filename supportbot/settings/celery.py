"""Celery: a real broker when REDIS_URL is set, eager in-process tasks otherwise."""

from celery.schedules import crontab

from supportbot.settings.env import env

_REDIS_URL = env.str("REDIS_URL", default="")

CELERY_BROKER_URL = _REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not _REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
# A killed worker must not lose a task: acknowledge after the task ran, re-deliver on worker loss.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# With Redis, a task whose worker died unacknowledged is re-delivered after this many seconds; keep it
# above the longest task (the nightly submit of a large day) so a slow task is not run twice at once.
_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_TIMEOUT,
    # Sweep for abandoned tasks every few seconds (one cheap sorted-set query) rather than kombu's
    # default of ~100 s, so re-delivery follows the visibility timeout closely.
    "unacked_restore_interval": min(10, max(1, _VISIBILITY_TIMEOUT // 3)),
    "unacked_restore_throttle": 1,
}
CELERY_TIMEZONE = env.str("TIME_ZONE", default="UTC")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

_NIGHTLY_HOUR, _NIGHTLY_MINUTE = env.str("NIGHTLY_CLASSIFICATION_TIME", default="02:00").split(":")
CELERY_BEAT_SCHEDULE = {
    "triage-submit-nightly": {
        "task": "apps.triage.tasks.submit_nightly_classification",
        "schedule": crontab(hour=int(_NIGHTLY_HOUR), minute=int(_NIGHTLY_MINUTE)),
    },
    "triage-poll-batches": {
        "task": "apps.triage.tasks.poll_open_batches",
        "schedule": env.float("TRIAGE_POLL_SECONDS", default=60.0),
    },
    "inbox-email-unseen-replies": {
        "task": "apps.inbox.tasks.unseen_replies_email",
        "schedule": env.float("SUPPORT_REPLY_EMAIL_SWEEP_SECONDS", default=60.0),
    },
    "evaluations-advance-runs": {
        "task": "apps.evaluations.tasks.evaluation_runs_poll",
        "schedule": env.float("EVALUATION_POLL_SECONDS", default=60.0),
    },
}

# Run by `manage.py serve` itself when there is no broker (no REDIS_URL: no worker, no beat), at the
# intervals above (apps/core/periodic.py).
EMBEDDED_PERIODIC_TASKS = ["apps.inbox.tasks.unseen_replies_email"]
