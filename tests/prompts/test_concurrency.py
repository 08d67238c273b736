"""Concurrent exclusive publishes of one prompt are serialised by the row lock (PostgreSQL only)."""

import threading

import pytest
from django.db import connection, connections

from apps.prompts import services
from apps.prompts.models import PromptVersion
from tests.prompts.factories import PromptFactory, StaffFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite serialises every write anyway); set DATABASE_URL")


def test_two_exclusive_publishes_at_once_leave_exactly_one_active_version():
    actor = StaffFactory()
    prompt = PromptFactory(slug="support-assistant")
    base = services.prompt_version_create_draft(prompt=prompt, actor=actor, persona="v1")
    services.prompt_version_publish(version=base, actor=actor)
    drafts = [
        services.prompt_version_create_draft(prompt=prompt, based_on=base, bump=b, actor=actor)
        for b in ("minor", "patch")
    ]
    barrier = threading.Barrier(len(drafts))
    errors: list[BaseException] = []

    def publish(draft):
        try:
            barrier.wait(timeout=10)
            services.prompt_version_publish(version=draft, actor=actor)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=publish, args=(d,)) for d in drafts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    active = PromptVersion.objects.filter(prompt=prompt, status=PromptVersion.Status.ACTIVE)
    assert active.count() == 1
    assert PromptVersion.objects.filter(prompt=prompt, status=PromptVersion.Status.RETIRED).count() == 2
