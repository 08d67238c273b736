"""Celery entry points of the inbox. Thin: call one service, safe twice."""

from celery import shared_task

from apps.inbox import notifications


@shared_task(name="apps.inbox.tasks.unseen_replies_email")
def unseen_replies_email() -> int:
    """Email customers the agents' messages they have not seen (every minute, from beat)."""
    return notifications.unseen_replies_email()
