"""Storing questions (apps/chat/services.py): duplicates, busy conversations, and the question-to-request path."""

import uuid

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from apps.chat import services
from apps.chat.models import Message
from apps.core import db
from apps.core.exceptions import ApplicationError
from apps.prompts.services import prompt_seed_defaults
from tests.chat.factories import ConversationFactory, CustomerAccountFactory, exchange

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation():
    account = CustomerAccountFactory()
    return ConversationFactory(user=account.user)


def test_a_resent_client_id_returns_the_stored_pair(conversation) -> None:
    client_id = uuid.uuid4()
    first = services.message_submit(conversation=conversation, text="Hello?", client_id=client_id)
    again = services.message_submit(conversation=conversation, text="Hello?", client_id=client_id)

    assert not first.duplicate and again.duplicate
    assert (again.question.pk, again.reply.pk) == (first.question.pk, first.reply.pk)
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_a_client_id_reused_for_other_text_is_refused_and_nothing_is_stored(conversation, monkeypatch) -> None:
    client_id = uuid.uuid4()
    first = services.message_submit(conversation=conversation, text="Hello?", client_id=client_id)
    Message.objects.filter(pk=first.reply.pk).update(status=Message.Status.COMPLETE)

    with pytest.raises(ApplicationError) as caught:
        services.message_submit(conversation=conversation, text="Another question", client_id=client_id)
    assert caught.value.code == "client_id_reused" and caught.value.extra == {"message_id": first.question.pk}

    def lost_the_race(**kwargs):  # the same check when another process stored the id in between
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(services, "_message_submit_locked", lost_the_race)
    with pytest.raises(ApplicationError, match="already used"):
        services.message_submit(conversation=conversation, text="Another question", client_id=client_id)
    assert list(Message.objects.filter(conversation=conversation).values_list("text", flat=True)) == ["Hello?", ""]


def test_a_second_question_while_an_answer_streams_is_busy(conversation) -> None:
    services.message_submit(conversation=conversation, text="First", client_id=uuid.uuid4())

    with pytest.raises(ApplicationError) as raised:
        services.message_submit(conversation=conversation, text="Second", client_id=uuid.uuid4())

    assert raised.value.code == "busy"
    assert list(conversation.messages.values_list("text", flat=True).order_by("id")) == ["First", ""]


def test_a_client_id_committed_by_another_process_in_between_is_a_duplicate(conversation, monkeypatch) -> None:
    """The unique constraint catches what the lock could not: the insert fails, the winner's pair is returned."""
    client_id = uuid.uuid4()
    winner = services.message_submit(conversation=conversation, text="Hello?", client_id=client_id)

    def lost_the_race(**kwargs):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(services, "_message_submit_locked", lost_the_race)
    again = services.message_submit(conversation=conversation, text="Hello?", client_id=client_id)

    assert again.duplicate and (again.question.pk, again.reply.pk) == (winner.question.pk, winner.reply.pk)


def test_storing_a_question_and_building_its_request_is_a_bounded_number_of_queries(conversation) -> None:
    prompt_seed_defaults()

    context = services.chat_context_load(user=conversation.user, conversation=conversation)

    with CaptureQueriesContext(connection) as queries:
        submission = services.message_submit(conversation=conversation, text="Where is my invoice?", client_id=None)
        request = services.message_reply_request(user=conversation.user, submission=submission, known=context)

    assert request.user_text == "Where is my invoice?" and request.reply.message_id == submission.reply.pk
    # lock + pending check (which also reads the newest message id: was anything written since the
    # context was read?) + 2 inserts + title and version (+ the version pick: its per-process cache is
    # off in tests); the account context is cached. The question's first token waits for these, so a
    # new one here should be a deliberate choice.
    statements = [q["sql"] for q in queries.captured_queries]
    bookkeeping = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")
    assert len([sql for sql in statements if not sql.startswith(bookkeeping)]) <= 6, statements


def test_integrity_errors_other_than_a_duplicate_are_not_swallowed(conversation, monkeypatch) -> None:
    def broken(instance):
        raise IntegrityError("some other constraint")

    monkeypatch.setattr(db, "insert", broken)

    with pytest.raises(IntegrityError):
        services.message_submit(conversation=conversation, text="Hello?", client_id=uuid.uuid4())


# -- the context a socket drafts its next question's request from (docs/architecture.md) -------------


def test_a_draft_from_the_loaded_context_is_the_request_built_after_the_commit(conversation) -> None:
    prompt_seed_defaults()
    user = conversation.user
    for text in ("Where is my invoice?", "And the one before?"):  # a new conversation, then a follow-up
        context = services.chat_context_load(user=user, conversation=conversation)
        draft = context.request(text)

        submission = services.message_submit(conversation=conversation, text=text, client_id=uuid.uuid4())
        request = services.message_reply_request(user=user, submission=submission, known=context)

        assert draft.same_call(request) and draft.reply.message_id is None
        assert request.reply.message_id == submission.reply.pk
        services.message_reply_finish(reply=submission.reply, text=f"Answer to {text}", status="complete")
    assert [turn.text for turn in request.history] == ["Where is my invoice?", "Answer to Where is my invoice?"]


def test_a_context_read_before_another_tab_wrote_is_not_reused(conversation) -> None:
    prompt_seed_defaults()
    user = conversation.user
    context = services.chat_context_load(user=user, conversation=conversation)
    exchange(conversation, "Asked in another tab", "Answered there")  # after the context was read

    submission = services.message_submit(conversation=conversation, text="Hello?", client_id=uuid.uuid4())
    request = services.message_reply_request(user=user, submission=submission, known=context)

    assert [turn.text for turn in request.history] == ["Asked in another tab", "Answered there"]
    assert not context.request("Hello?").same_call(request)


def test_an_account_change_after_the_context_was_read_makes_the_draft_differ(conversation) -> None:
    prompt_seed_defaults()
    user = conversation.user
    context = services.chat_context_load(user=user, conversation=conversation)
    account = user.customer_account
    account.plan = "enterprise"
    account.save()

    submission = services.message_submit(conversation=conversation, text="Hello?", client_id=uuid.uuid4())
    request = services.message_reply_request(user=user, submission=submission, known=context)

    assert '"plan": "enterprise"' in request.account_context and request.plan_tier == "enterprise"
    assert not context.request("Hello?").same_call(request)


def test_no_context_while_an_answer_is_being_written(conversation) -> None:
    prompt_seed_defaults()
    services.message_submit(conversation=conversation, text="First", client_id=uuid.uuid4())

    assert services.chat_context_load(user=conversation.user, conversation=conversation) is None


def test_the_prompt_version_is_assigned_with_the_first_question(conversation) -> None:
    prompt_seed_defaults()
    context = services.chat_context_load(user=conversation.user, conversation=conversation)
    conversation.refresh_from_db()
    assert conversation.prompt_version_id is None  # loading a context writes nothing

    services.message_submit(conversation=conversation, text="Hello?", client_id=uuid.uuid4())

    conversation.refresh_from_db()
    assert conversation.prompt_version_id == context.prompt.version_id
