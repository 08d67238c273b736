"""Factories for evaluations: a set on the support prompt, cases, and an active + draft version pair."""

import factory

from apps.evaluations.models import Case, EvaluationSet
from apps.prompts.models import PromptVersion
from tests.prompts.factories import PromptFactory, PromptVersionFactory

KNOWLEDGE = (
    (
        "Plans",
        "The Pro plan costs $29 per user per month when billed monthly. "
        "Refunds can be requested within 30 days of the invoice date.",
    ),
)


class EvaluationSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EvaluationSet

    name = factory.Sequence(lambda n: f"set-{n}")
    prompt_slug = "support-assistant"


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    evaluation_set = factory.SubFactory(EvaluationSetFactory)
    name = factory.Sequence(lambda n: f"case-{n}")
    turns = factory.LazyFunction(lambda: ["How much does the Pro plan cost?"])
    must_include = factory.LazyFunction(lambda: ["$29"])
    rubric = factory.LazyFunction(lambda: ["The answer states the Pro price."])


def versions(*, live_persona: str = "You are Ava.", draft_persona: str = "You are Ava, concise."):
    """(live, draft) versions of support-assistant carrying the test knowledge base."""
    prompt = PromptFactory(slug="support-assistant")
    live = PromptVersionFactory(prompt=prompt, persona=live_persona)
    draft = PromptVersionFactory(prompt=prompt, persona=draft_persona, based_on=live)
    for version in (live, draft):
        version.reference_documents.create(position=0, title=KNOWLEDGE[0][0], body=KNOWLEDGE[0][1])
    PromptVersion.objects.filter(pk=live.pk).update(status=PromptVersion.Status.ACTIVE, weight=100)
    live.refresh_from_db()
    return live, draft
