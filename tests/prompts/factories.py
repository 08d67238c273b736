"""Factories for prompts (used by tests/prompts and tests/insights)."""

import factory
from django.contrib.auth import get_user_model

from apps.prompts.models import Prompt, PromptVersion, ReferenceDocument


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"prompt-user-{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"prompt-staff-{n}")
    is_staff = True


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"prompt-{n}")
    name = factory.LazyAttribute(lambda p: p.slug.replace("-", " ").title())


class PromptVersionFactory(factory.django.DjangoModelFactory):
    """A draft by default; pass status/weight for an active one (bypasses services on purpose)."""

    class Meta:
        model = PromptVersion

    prompt = factory.SubFactory(PromptFactory)
    major = 1
    minor = factory.Sequence(lambda n: n)
    patch = 0
    status = PromptVersion.Status.DRAFT
    weight = 0
    persona = "You are Ava, Acme's support assistant."
    business_rules = "1. Be accurate.\n2. Never invent prices."
    output_format = "Answer in short Markdown paragraphs."
    few_shot_examples = "<example><user>Hi</user><assistant>Hello!</assistant></example>"
    max_tokens = 1024


class ReferenceDocumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReferenceDocument

    version = factory.SubFactory(PromptVersionFactory)
    position = factory.Sequence(lambda n: n)
    title = factory.Sequence(lambda n: f"Document {n}")
    body = "Body text."
