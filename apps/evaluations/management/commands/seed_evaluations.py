"""`python manage.py seed_evaluations`: the demo evaluation set (idempotent)."""

from django.core.management.base import BaseCommand

from apps.evaluations.services import evaluation_set_seed_demo


class Command(BaseCommand):
    help = "Create the demo evaluation set for the support assistant (adds only missing cases)."

    def handle(self, *args, **options) -> None:
        evaluation_set = evaluation_set_seed_demo()
        self.stdout.write(f"Evaluation set '{evaluation_set}' ready with {evaluation_set.cases.count()} cases.")
