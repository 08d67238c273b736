"""Celery entry points of the chat. Thin: parse, call one service, safe twice."""

from celery import shared_task

from apps.chat import notifications


@shared_task(name="apps.chat.tasks.handoff_notify")
def handoff_notify(conversation_id: str) -> bool:
    """Email the support address about a conversation waiting for a person, if no agent is online."""
    return notifications.handoff_email_if_nobody_online(conversation_id=conversation_id)
