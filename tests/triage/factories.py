"""Factories for the triage tests: customers, finished conversations on a given day, classifier prompts."""

from datetime import date, datetime, time, timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.accounts import demo_content
from apps.accounts.models import CustomerAccount
from apps.chat.models import Conversation, Message
from apps.prompts.models import Prompt, PromptVersion

CLASSIFIER_SLUG = "transcript-classifier"
# An output format the offline emulator answers with prose, not JSON: the classifier's "invalid output".
PROSE_OUTPUT_FORMAT = "Describe the conversation in one friendly sentence."


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"triage-customer-{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")


class CustomerAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerAccount

    user = factory.SubFactory(UserFactory)
    plan = "pro"


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    user = factory.LazyFunction(lambda: CustomerAccountFactory().user)
    title = "Help"


def noon(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(12, 0)))


def conversation_on(day: date, turns: list[tuple[str, str]], **kwargs) -> Conversation:
    """A conversation whose messages and last activity fall on `day` (noon, TIME_ZONE)."""
    conversation = ConversationFactory(**kwargs)
    for index, (role, text) in enumerate(turns):
        message = Message.objects.create(conversation=conversation, role=role, text=text)
        Message.objects.filter(pk=message.pk).update(created_at=noon(day) + timedelta(seconds=index))
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=noon(day) + timedelta(seconds=len(turns)))
    conversation.refresh_from_db()
    return conversation


BILLING_TURNS = [
    ("user", "Where can I download the PDF for my last invoice?"),
    ("assistant", "Open Settings, then Billing, then Invoices, and choose Download PDF."),
    ("user", "Found it, thanks a lot!"),
]
UNRESOLVED_TURNS = [
    ("user", "The app crashes with error 500 every time I sync. I am so frustrated."),
    ("assistant", "Sorry about that. Please try signing out and in again."),
    ("user", "It still does not work. I want to speak to a human."),
]


def classifier_version(
    *, major: int = 1, minor: int = 0, output_format: str | None = None, weight: int = 100
) -> PromptVersion:
    """An active transcript-classifier version built from the demo content (optionally with another output format)."""
    prompt, _ = Prompt.objects.get_or_create(slug=CLASSIFIER_SLUG, defaults={"name": "Transcript classifier"})
    return PromptVersion.objects.create(
        prompt=prompt,
        major=major,
        minor=minor,
        patch=0,
        status=PromptVersion.Status.ACTIVE,
        weight=weight,
        persona=demo_content.load_text("classifier_persona"),
        business_rules=demo_content.load_text("classifier_rules"),
        output_format=output_format
        if output_format is not None
        else demo_content.load_text("classifier_output_format"),
        few_shot_examples=demo_content.load_text("classifier_few_shot"),
        model_tier="haiku",
        max_tokens=400,
    )
