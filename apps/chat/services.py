"""Writes of conversations, messages and feedback. Interfaces (consumer, API, admin) call these.

All functions are synchronous ORM code; the websocket consumer calls them through
`database_sync_to_async`, so each one does its work in as few short queries as it can.
"""

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import SupportTicket
from apps.accounts.selectors import account_context_for_user, visitor_context_render
from apps.accounts.services import ticket_open
from apps.actions.registry import tool_specs
from apps.chat.availability import availability_line
from apps.chat.models import Conversation, Feedback, Message
from apps.chat.selectors import (
    conversation_history_turns,
    conversation_transcript,
    message_streaming_is_stale,
)
from apps.core import db
from apps.core.exceptions import ApplicationError
from apps.knowledge.grounding import prompt_parts_grounded, sources_for_question
from apps.knowledge.services import citation_rating_set, citations_record
from apps.llm.types import ChatRequest, KnowledgeSource, PromptParts, ReplyRef, Turn
from apps.prompts.models import PromptVersion

PROMPT_SLUG = "support-assistant"
# Earlier user turns searched with the question: a follow-up ("and in German?") keeps its topic.
RETRIEVAL_RECENT_TURNS = 2
TITLE_CHARS = 80
# Who the customer chose to answer a new conversation (the `answerer` of its first question).
ANSWERER_ASSISTANT = "assistant"
ANSWERER_PERSON = "person"
ANSWERERS = (ANSWERER_ASSISTANT, ANSWERER_PERSON)


@dataclass(frozen=True)
class Submission:
    """A stored question and the assistant row that answers it. `duplicate`: the client_id was seen before.

    `conversation` is the row as read under the submission's lock (with its prompt version), so building
    the gateway request needs no second read of it; `previous_message_id` is the conversation's newest
    message before the question (0: none), read under the same lock.
    """

    question: Message
    reply: Message | None
    duplicate: bool
    conversation: Conversation
    previous_message_id: int = 0


def check_message_text(text: object) -> str:
    """The text of a user message, trimmed.

    Raises `ApplicationError` ("empty_message", "message_too_long", "invalid_text").
    """
    if not isinstance(text, str) or not text.strip():
        raise ApplicationError("The message is empty.", code="empty_message")
    text = text.strip()
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise ApplicationError(
            f"The message is longer than {limit} characters.", code="message_too_long", extra={"limit": limit}
        )
    # JSON can escape what text cannot hold: a lone UTF-16 surrogate ("\ud800") cannot be encoded to be
    # stored or sent upstream, and PostgreSQL refuses NUL characters (Django's forms refuse them too).
    if "\x00" in text or not _is_encodable(text):
        raise ApplicationError("The message contains invalid characters.", code="invalid_text")
    return text


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_client_id(client_id: object) -> uuid.UUID | None:
    """The client's message id (optional). Raises `ApplicationError` ("invalid_client_id") if not a UUID."""
    if client_id is None or client_id == "":
        return None
    try:
        return uuid.UUID(str(client_id))
    except ValueError as exc:
        raise ApplicationError("client_id must be a UUID.", code="invalid_client_id") from exc


def check_answerer(answerer: object) -> str:
    """Who the customer chose to answer a new conversation: "assistant", "person", or "" (no choice).

    Raises `ApplicationError` ("invalid_answerer") for any other value, ("choice_unavailable") for a
    person when `CHAT_OFFER_HUMAN_CHOICE` is off (the operator hides the choice: the question is not
    stored, rather than answered by someone the customer did not choose).
    """
    if answerer is None or answerer == "":
        return ""
    if answerer not in ANSWERERS:
        raise ApplicationError('answerer must be "assistant" or "person".', code="invalid_answerer")
    if answerer == ANSWERER_PERSON and not settings.CHAT_OFFER_HUMAN_CHOICE:
        raise ApplicationError(
            "Choosing a person up front is not offered; send the message without an answerer.",
            code="choice_unavailable",
        )
    return str(answerer)


def conversation_start(*, user: AbstractBaseUser) -> Conversation:
    """A conversation to chat in: the user's latest one that has no message yet, else a new one.

    Reusing the empty one keeps page reloads from piling up empty conversations.
    """
    empty = (
        Conversation.objects.filter(user=user, messages__isnull=True, status=Conversation.Status.OPEN)
        .order_by("-created_at")
        .first()
    )
    return empty or Conversation.objects.create(user=user)


def conversation_owner_change(*, conversation: Conversation, owner: AbstractBaseUser) -> Conversation:
    """Give `conversation` to `owner`: an anonymous widget visitor signed in, and the chat they began as a
    guest goes on as theirs. The caller has authorised both sides. Later questions carry the new owner's
    account context; the transcript is unchanged."""
    Conversation.objects.filter(pk=conversation.pk).update(user=owner)
    conversation.user = owner
    return conversation


def message_submit(
    *, conversation: Conversation, text: str, client_id: uuid.UUID | None, answerer: str = ""
) -> Submission:
    """Store the user's question and the "streaming" assistant row that will answer it, before any model call.

    A `client_id` already stored in this conversation returns the original pair (`duplicate=True`),
    so a resend after a reconnect never creates a second question or a second answer.
    `answerer` "person" (checked by `check_answerer`) on a conversation's first question hands it to
    the support team in the same transaction, as "Talk to a human" does: no assistant row, `reply` None.
    On a later question it changes nothing (the choice is made up front).
    Raises `ApplicationError` ("busy") while another answer in this conversation is still streaming,
    ("client_id_reused") when the stored question under `client_id` has other text.
    """
    try:
        return _message_submit_locked(conversation=conversation, text=text, client_id=client_id, answerer=answerer)
    except IntegrityError:  # the same client_id committed by another process in between
        existing = _submission_for_client_id(conversation, client_id)
        if existing is None:
            raise
        check_resend(existing.question, text)
        return existing


def check_resend(question: Message, text: str) -> None:
    """A resend carries the text of the question stored under its client_id. Otherwise the client reused
    an id for a new question: acknowledging it as a duplicate would drop that question silently.

    Raises `ApplicationError` ("client_id_reused").
    """
    if question.text != text:
        raise ApplicationError(
            "This client_id was already used for another message; send a new message with a new client_id.",
            code="client_id_reused",
            extra={"message_id": question.pk},
        )


def _message_submit_locked(
    *, conversation: Conversation, text: str, client_id: uuid.UUID | None, answerer: str
) -> Submission:
    # Statements written out (apps.core.db): this transaction is the work left between a question and
    # its first token, and compiling it through the ORM doubled its CPU time (held under the GIL).
    with transaction.atomic():
        # The row lock serialises submissions per conversation (two tabs, a resend racing the original).
        locked = db.row_for_update(Conversation, conversation.pk)
        if locked is None:
            raise Conversation.DoesNotExist(conversation.pk)
        # One read answers: was this client_id stored before, is an answer still streaming, which is the
        # newest message (it tells whether a history read earlier is still current)?
        pending, previous_message_id = _pending_messages(locked, client_id)
        for message in pending:
            if message.role == Message.Role.USER:
                check_resend(message, text)
                return _submission_for_question(message, locked)
            if not message_streaming_is_stale(message):  # an assistant row still streaming
                raise ApplicationError("An answer is still being written; wait for it or stop it.", code="busy")
            _message_close(message, status=Message.Status.FAILED)
        question = Message(conversation=locked, role=Message.Role.USER, text=text, client_id=client_id)
        db.insert(question)
        if answerer == ANSWERER_PERSON and previous_message_id == 0 and not locked.humans_answer:
            locked = _person_chosen(locked, question)
        if locked.humans_answer:  # a person answers: no assistant row, the question goes to the team
            if not locked.title:
                locked.title = text[:TITLE_CHARS]
            db.update(locked, ["title", "updated_at"])
            _publish_to_team(locked, question)
            return Submission(question=question, reply=None, duplicate=False, conversation=locked)
        if locked.status == Conversation.Status.CLOSED:  # resolved, then asked again: the assistant answers
            locked.status = Conversation.Status.OPEN
            db.update(locked, ["status"])
        reply = Message(
            conversation=locked, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, reply_to=question
        )
        db.insert(reply)
        if not locked.title:
            locked.title = text[:TITLE_CHARS]
        if locked.prompt_version_id is None:
            # Assigned in this transaction, under the row lock: one write fewer before the upstream call.
            # Without an active version the question is still stored; building its request reports it.
            with contextlib.suppress(ApplicationError):
                locked.prompt_version = _prompt_version_pick(locked)
        db.update(locked, ["title", "prompt_version", "updated_at"])
    conversation.title = locked.title
    return Submission(
        question=question,
        reply=reply,
        duplicate=False,
        conversation=locked,
        previous_message_id=previous_message_id,
    )


def _person_chosen(conversation: Conversation, question: Message) -> Conversation:
    """The customer chose a person before their first question: the handoff "Talk to a human" makes
    (a ticket with the transcript, the agents' queue, an email when nobody is online), with the
    question in it. Expects the caller's transaction and row lock."""
    conversation.title = question.text[:TITLE_CHARS]
    db.update(conversation, ["title"])  # the ticket's subject and the queue show it
    user = get_user_model().objects.get(pk=conversation.user_id)
    escalated, _ = _conversation_escalate(
        user=user,
        conversation_id=conversation.pk,
        subject="Customer chose a person",
        source=SupportTicket.Source.HANDOFF,
    )
    return escalated


def _publish_to_team(conversation: Conversation, question: Message) -> None:
    from apps.chat import events, payloads

    events.publish_after_commit(
        events.conversation_group(conversation.pk), events.MESSAGE_ADDED, message=payloads.message_payload(question)
    )
    events.publish_after_commit(events.HANDOFFS_GROUP, events.QUEUE_CHANGED, conversation_id=str(conversation.pk))


def _pending_messages(conversation: Conversation, client_id: uuid.UUID | None) -> tuple[list[Message], int]:
    """(the question already stored under `client_id` (first) and the answers still streaming, the id
    of the conversation's newest message or 0), in one query."""
    table, pk = db.table(Message), db.column(Message, "id")
    conversation_column, role, status = (db.column(Message, name) for name in ("conversation", "role", "status"))
    conversation_value = db.value(Message, "conversation", conversation.pk)
    # Names come from the model, every value is a bound parameter.
    sql = (
        f"SELECT * FROM {table} WHERE {conversation_column} = %s AND ("  # noqa: S608
        f"{pk} = (SELECT MAX({pk}) FROM {table} WHERE {conversation_column} = %s)"
        f" OR ({role} = %s AND {status} = %s)"
    )
    params = [conversation_value, conversation_value, Message.Role.ASSISTANT, Message.Status.STREAMING]
    if client_id is not None:
        sql += f" OR ({role} = %s AND {db.column(Message, 'client_id')} = %s)"
        params += [Message.Role.USER, db.value(Message, "client_id", client_id)]
    found = list(Message.objects.raw(sql + ")", params))
    newest = max((message.pk for message in found), default=0)
    pending = [
        message
        for message in found
        if (message.role, message.status) == (Message.Role.ASSISTANT, Message.Status.STREAMING)
        or (client_id is not None and message.role == Message.Role.USER and message.client_id == client_id)
    ]
    return sorted(pending, key=lambda message: message.role != Message.Role.USER), newest


def _submission_for_client_id(conversation: Conversation, client_id: uuid.UUID | None) -> Submission | None:
    question = conversation.messages.filter(role=Message.Role.USER, client_id=client_id).first()
    return None if question is None else _submission_for_question(question, conversation)


def _submission_for_question(question: Message, conversation: Conversation) -> Submission:
    reply = question.replies.order_by("-id").first()
    return Submission(question=question, reply=reply, duplicate=True, conversation=conversation)


def conversation_prompt_version_assign(*, conversation: Conversation) -> PromptVersion:
    """The conversation's prompt version, chosen once (A/B) and then kept for every later answer.

    Raises whatever `prompts.selectors.prompt_version_for_conversation` raises when no version is active.
    """
    if conversation.prompt_version_id is not None:
        return conversation.prompt_version
    version = _prompt_version_pick(conversation)
    # Conditional update: a concurrent first answer cannot overwrite an assignment already made.
    if Conversation.objects.filter(pk=conversation.pk, prompt_version__isnull=True).update(prompt_version=version):
        conversation.prompt_version = version
    else:
        conversation.refresh_from_db(fields=["prompt_version"])
    return conversation.prompt_version


def _prompt_version_pick(conversation: Conversation) -> PromptVersion:
    """The version a conversation without one gets: deterministic per conversation id, so a pick made
    before the assignment (`chat_context_load`) equals the assignment."""
    from apps.prompts.selectors import prompt_version_for_conversation

    return prompt_version_for_conversation(slug=PROMPT_SLUG, conversation_key=str(conversation.id))


@dataclass(frozen=True)
class ChatContext:
    """Everything a question's gateway request is built from, except the question itself.

    The websocket consumer loads one per socket before the question arrives (`chat_context_load`) and
    drafts the question's request from it, so the upstream call can start while the question is being
    stored; the request built after the commit (`message_reply_request`, from the same function) is the
    authoritative one, and a draft that differs from it is discarded (docs/architecture.md).
    """

    conversation_id: str
    prompt: PromptParts
    history: tuple[Turn, ...]  # usable turns after those the summary covers
    summary: str
    summary_turns: int
    account_context: str  # rendered and delimited by accounts
    plan_tier: str
    language: str
    last_message_id: int  # the newest message the history was read from (0: none)
    # "retrieval": each question needs a search (`knowledge` below); "prefix"/None: nothing per question.
    knowledge_mode: str | None = None
    turn_context: str = ""  # per-request facts for the new user turn: whether a person is available now

    def request(
        self, text: str, *, reply: ReplyRef | None = None, knowledge: tuple[KnowledgeSource, ...] = ()
    ) -> ChatRequest:
        return ChatRequest(
            knowledge=knowledge,
            prompt=self.prompt,
            history=self.history,
            summary=self.summary,
            user_text=text,
            account_context=self.account_context,
            plan_tier=self.plan_tier,
            language=self.language,
            conversation_id=self.conversation_id,
            reply=reply or ReplyRef(),
            turn_context=self.turn_context,
            # Registry order whatever order they were chosen in: the same bytes in the cached prefix.
            tools=tool_specs(self.prompt.tool_names),
        )


def _chat_context(
    *,
    user: AbstractBaseUser,
    conversation: Conversation,
    prompt: PromptParts,
    before: Message | None,
    history: tuple[Turn, ...] | None = None,
    last_message_id: int = 0,
    language: str = "",
) -> ChatContext:
    account = account_context_for_user(user)  # cached
    rendered, chosen_language = account.render(), account.language
    if account.anonymous and language:
        # An anonymous visitor has no account language: their browser's, sent with each question (never
        # in the cached system blocks, which stay the same bytes for every visitor).
        rendered, chosen_language = visitor_context_render(language=language), language
    prompt, knowledge_mode = prompt_parts_grounded(prompt)  # the current knowledge snapshot, same object per pair
    if history is None:
        history = conversation_history_turns(conversation, before=before)[conversation.summary_turns :]
    return ChatContext(
        conversation_id=str(conversation.id),
        prompt=prompt,
        history=history,
        summary=conversation.summary,
        summary_turns=conversation.summary_turns,
        account_context=rendered,
        plan_tier=str(account.plan_tier),
        language=chosen_language,
        last_message_id=last_message_id,
        knowledge_mode=knowledge_mode,
        turn_context=availability_line(),
    )


def _history_unchanged(context: ChatContext, submission: Submission) -> bool:
    """Whether `context.history` is still the history before the submitted question: same summary, and
    its newest message is still the newest before the question (read under the submission's lock).

    No query: the transcript is not read again. (A reply that was still streaming when the context was
    read would change it silently: `chat_context_load` returns no context then.)
    """
    conversation = submission.conversation
    return (
        context.conversation_id == str(conversation.id)
        and (context.summary, context.summary_turns) == (conversation.summary, conversation.summary_turns)
        and context.last_message_id == submission.previous_message_id
    )


def chat_context_load(*, user: AbstractBaseUser, conversation: Conversation, language: str = "") -> ChatContext | None:
    """The context the next question in `conversation` would be answered with, as of now (writes nothing).

    For the authenticated `user` only. `language`: an anonymous visitor's browser language, checked by
    the caller (a customer's comes from their account). None when no prompt version is active: the
    question then takes the ordinary path, which reports that error.
    """
    current = Conversation.objects.select_related("prompt_version__prompt").get(pk=conversation.pk)
    if current.messages.filter(status=Message.Status.STREAMING).exists():
        return None  # an answer in progress will change the history
    try:
        version = current.prompt_version if current.prompt_version_id is not None else _prompt_version_pick(current)
    except ApplicationError:
        return None
    last_message_id = current.messages.order_by("-pk").values_list("pk", flat=True).first() or 0
    context = _chat_context(
        user=user,
        conversation=current,
        prompt=version.to_parts(),  # cached per process for published versions
        before=None,
        last_message_id=last_message_id,
        language=language,
    )
    # Retrieval searches per question, a database query the event loop cannot run: such questions take
    # the ordinary path, which builds the request (search included) after the question is stored.
    return None if context.knowledge_mode == "retrieval" else context


def message_reply_request(
    *, user: AbstractBaseUser, submission: Submission, known: ChatContext | None = None, language: str = ""
) -> ChatRequest:
    """The gateway request for `submission.reply`, for the authenticated `user` only (their account context;
    `language` as for `chat_context_load`).

    `known`: a context read earlier (`chat_context_load`); its history is reused when no message was
    written since. Raises `ApplicationError` if no prompt version is available.
    """
    question, reply = submission.question, submission.reply
    conversation = submission.conversation
    if (
        known is not None
        and known.prompt.immutable
        and known.prompt.version_id == conversation.prompt_version_id
        and known.knowledge_mode != "retrieval"
    ):
        prompt = known.prompt  # the same published version: its parts never change
    else:
        prompt = conversation_prompt_version_assign(conversation=conversation).to_parts()
    history = known.history if known is not None and _history_unchanged(known, submission) else None
    context = _chat_context(
        user=user, conversation=conversation, prompt=prompt, before=question, history=history, language=language
    )
    knowledge: tuple[KnowledgeSource, ...] = ()
    if context.knowledge_mode == "retrieval":
        recent = [turn.text for turn in context.history if turn.role == "user"][-RETRIEVAL_RECENT_TURNS:]
        knowledge = sources_for_question(question.text, recent=recent, language=context.language)
    return context.request(question.text, reply=ReplyRef(reply.pk if reply else None), knowledge=knowledge)


def conversation_summary_store(*, conversation_id: uuid.UUID, summary: str, turns_covered: int) -> None:
    """Persist a summary the gateway produced; it covers `turns_covered` more of the oldest turns."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        conversation.summary = summary
        conversation.summary_turns += turns_covered
        conversation.save(update_fields=["summary", "summary_turns", "updated_at"])


def _message_close(message: Message, *, status: str, **fields: object) -> bool:
    """Finalise a streaming row once: the status guard makes a second call (or a late writer) a no-op."""
    now = timezone.now()
    updated = Message.objects.filter(pk=message.pk, status=Message.Status.STREAMING).update(
        status=status, completed_at=now, **fields
    )
    if updated:
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=now)
        # What we just wrote is the row now; no need to read it back.
        message.status, message.completed_at = status, now
        for name, value in fields.items():
            setattr(message, name, value)
    else:
        message.refresh_from_db()  # someone else closed it first: show their result
    return bool(updated)


def message_reply_finish(
    *,
    reply: Message,
    text: str,
    status: str,
    model: str = "",
    prompt_version: str = "",
    ttft_ms: int | None = None,
    latency_ms: int | None = None,
    citations: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (),
) -> Message:
    """Store the final text of an answer (exactly what the user saw) with its status and citations. Idempotent.

    `citations` are the API's, as the gateway passed them on; the articles they name are counted.
    """
    fields: dict[str, Any] = {
        "text": text,
        "model": model,
        "prompt_version": prompt_version,
        "ttft_ms": ttft_ms,
        "latency_ms": latency_ms,
    }
    if not citations:  # the common case stays one UPDATE, no transaction of its own
        _message_close(reply, status=status, **fields)
        return reply
    with transaction.atomic():
        _message_close(
            reply, status=status, citations=citations_record(message_id=reply.pk, citations=citations), **fields
        )
    return reply


def message_reply_degrade(
    *,
    user: AbstractBaseUser,
    reply: Message,
    text: str,
    model: str = "",
    prompt_version: str = "",
    latency_ms: int | None = None,
) -> SupportTicket:
    """The assistant could not answer: store its apology, open a ticket for a human, flag the conversation."""
    with transaction.atomic():
        message_reply_finish(
            reply=reply,
            text=text,
            status=Message.Status.DEGRADED,
            model=model,
            prompt_version=prompt_version,
            latency_ms=latency_ms,
        )
        _, ticket = _conversation_escalate(
            user=user,
            conversation_id=reply.conversation_id,
            subject="Assistant unavailable",
            source=SupportTicket.Source.DEGRADED,
        )
    return ticket


def _conversation_escalate(
    *, user: AbstractBaseUser, conversation_id: object, subject: str, source: str
) -> tuple[Conversation, SupportTicket]:
    """Lock the conversation, open (or reuse) a ticket carrying its transcript, flag it for a human.

    Expects to run inside the caller's transaction (the row lock lasts until it commits).
    """
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    ticket = ticket_open(
        user=user,
        subject=f"{subject}: {conversation.title or 'chat'}",
        body=conversation_transcript(conversation),
        source=source,
        conversation_id=str(conversation.id),
    )
    conversation.save(update_fields=["updated_at"])
    from apps.chat.handoffs import conversation_human_request

    source = "degraded" if source == SupportTicket.Source.DEGRADED else "user"
    conversation = conversation_human_request(conversation_id=conversation.pk, source=source, reason=subject)
    return conversation, ticket


def message_reply_fail(*, reply: Message, text: str = "", latency_ms: int | None = None) -> Message:
    """The answer broke off with an error; keep whatever text the user saw."""
    _message_close(reply, status=Message.Status.FAILED, text=text, latency_ms=latency_ms)
    return reply


def feedback_leave(*, user: AbstractBaseUser, message: Message, rating: str, comment: str = "") -> Feedback:
    """Record or change the user's rating of an assistant answer (one per message).

    `message` must come from `message_get_for_user`. Raises `ApplicationError` ("invalid_feedback") for a
    user message or an answer still streaming.
    """
    if message.role != Message.Role.ASSISTANT or message.status == Message.Status.STREAMING:
        raise ApplicationError("Only finished assistant answers can be rated.", code="invalid_feedback")
    with transaction.atomic():
        feedback, _ = Feedback.objects.update_or_create(
            message=message, defaults={"user": user, "rating": rating, "comment": comment}
        )
        citation_rating_set(message_id=message.pk, rating=rating)
    return feedback


def conversation_handoff(*, user: AbstractBaseUser, conversation: Conversation) -> SupportTicket:
    """The user asked for a human: open (or reuse) a handoff ticket with the transcript; flag the conversation.

    `conversation` must come from `conversation_get_for_user`.
    """
    with transaction.atomic():
        locked, ticket = _conversation_escalate(
            user=user,
            conversation_id=conversation.pk,
            subject="Customer asked for a human",
            source=SupportTicket.Source.HANDOFF,
        )
    conversation.status = locked.status
    return ticket
