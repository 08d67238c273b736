"""The model's history around a person's part: questions to a person and agents' messages are kept,
a failed answer's exchange is still left out, and the result is the same on every read."""

import pytest
from django.contrib.auth import get_user_model

from apps.chat.models import Message
from apps.chat.selectors import conversation_history_turns
from apps.llm.prompting import conversation_messages
from tests.chat.factories import ConversationFactory, MessageFactory, exchange

pytestmark = pytest.mark.django_db


def test_questions_to_a_person_and_agent_messages_are_history_failed_answers_are_not():
    conversation = ConversationFactory()
    dana = get_user_model().objects.create_user(username="dana", first_name="Dana")
    exchange(conversation, "Hi", "Hello! How can I help?")
    exchange(conversation, "Broken one", "partial", status=Message.Status.FAILED)
    MessageFactory(conversation=conversation, role="user", text="I want a person")  # no reply: to the person
    MessageFactory(conversation=conversation, role="agent", text="Dana here, refunded.", author=dana)

    turns = conversation_history_turns(conversation)
    assert [(t.role, t.text, t.author) for t in turns] == [
        ("user", "Hi", ""),
        ("assistant", "Hello! How can I help?", ""),
        ("user", "I want a person", ""),
        ("agent", "Dana here, refunded.", "Dana"),
    ]
    assert conversation_history_turns(conversation) == turns  # deterministic: summary_turns stays valid

    messages = conversation_messages(summary="", history=turns, new_user_blocks=[{"type": "text", "text": "next"}])
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[3]["content"][0]["text"].startswith('<human_agent_message agent="Dana">')
