"""supportbot: Acme Corp's customer-support assistant, built on Django and Claude."""

from supportbot.celery import app as celery_app

__all__ = ("celery_app",)
