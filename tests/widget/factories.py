"""Test data for the widget: sites and visitors."""

import factory

from apps.widget.models import Site


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    name = factory.Sequence(lambda n: f"Help centre {n}")
    origin = factory.Sequence(lambda n: f"https://help{n}.example.com")
    colour = "#0a7d4f"
