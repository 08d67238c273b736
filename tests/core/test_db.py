"""apps.core.db: single-row statements written out, with the model's own value handling."""

import uuid
from datetime import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from apps.chat.models import Conversation, Message
from apps.core import db
from tests.chat.factories import ConversationFactory

pytestmark = pytest.mark.django_db


def test_insert_applies_defaults_and_auto_now_add_and_sets_the_key() -> None:
    conversation = ConversationFactory()
    client_id = uuid.uuid4()
    question = Message(conversation=conversation, role=Message.Role.USER, text="Hi", client_id=client_id)

    db.insert(question)

    stored = Message.objects.get(pk=question.pk)
    assert (stored.text, stored.client_id, stored.status, stored.model) == ("Hi", client_id, "complete", "")
    assert stored.created_at == question.created_at and isinstance(stored.created_at, datetime)
    assert not question._state.adding


def test_update_writes_only_the_named_fields_and_refreshes_auto_now() -> None:
    conversation = ConversationFactory(title="Old")
    Conversation.objects.filter(pk=conversation.pk).update(summary="kept")
    before = conversation.updated_at
    conversation.title, conversation.summary = "New", "not written"

    db.update(conversation, ["title", "updated_at"])

    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.title, stored.summary) == ("New", "kept")
    assert stored.updated_at > before


def test_row_for_update_returns_the_row_with_python_values() -> None:
    conversation = ConversationFactory(title="Mine")

    with transaction.atomic():
        row = db.row_for_update(Conversation, conversation.pk)

    assert row is not None and (row.pk, row.title, row.user_id) == (conversation.pk, "Mine", conversation.user_id)
    assert isinstance(row.pk, uuid.UUID) and timezone.is_aware(row.created_at)
    assert db.row_for_update(Conversation, uuid.uuid4()) is None
