"""Test data for the chat tests: customers (with an account), conversations and messages."""

import factory
from django.contrib.auth import get_user_model

from apps.accounts.models import CustomerAccount
from apps.chat.models import Conversation, Feedback, Message

DEMO_PASSWORD = "demo-password"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"chat-user-{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEMO_PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CustomerAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerAccount
        django_get_or_create = ("user",)

    user = factory.SubFactory(UserFactory)
    plan = "pro"
    company = "Initech"


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    user = factory.SubFactory(UserFactory)
    title = "Where is my invoice?"


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    role = Message.Role.USER
    text = "Where is my invoice?"
    status = Message.Status.COMPLETE


def exchange(conversation: Conversation, question: str, answer: str, **answer_fields) -> tuple[Message, Message]:
    """A stored question and its finished answer."""
    asked = MessageFactory(conversation=conversation, role=Message.Role.USER, text=question)
    answered = MessageFactory(
        conversation=conversation, role=Message.Role.ASSISTANT, text=answer, reply_to=asked, **answer_fields
    )
    return asked, answered


class FeedbackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feedback

    message = factory.SubFactory(MessageFactory, role=Message.Role.ASSISTANT)
    user = factory.LazyAttribute(lambda feedback: feedback.message.conversation.user)
    rating = Feedback.Rating.UP
