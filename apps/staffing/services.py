"""Writes of agent presence (the inbox's socket calls these)."""

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from apps.staffing.models import AgentPresence


def presence_mark(*, agent: AbstractBaseUser, channel_name: str) -> None:
    """The agent's inbox socket is open (or still open: a heartbeat)."""
    AgentPresence.objects.update_or_create(
        channel_name=channel_name, defaults={"agent": agent, "seen_at": timezone.now()}
    )


def presence_clear(*, channel_name: str) -> None:
    AgentPresence.objects.filter(channel_name=channel_name).delete()
