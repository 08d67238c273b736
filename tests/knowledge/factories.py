"""Factories for knowledge tests. Articles are made through the service, so they are indexed and snapshotted."""

import factory
from django.contrib.auth import get_user_model

from apps.knowledge import services


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"knowledge-user-{n}")
    password = factory.django.Password("pw")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"knowledge-staff-{n}")
    is_staff = True


def make_article(**fields):
    values = {"title": "Untitled", "body": "Some text.", "language": "en", "status": "published", **fields}
    return services.article_create(**values)
