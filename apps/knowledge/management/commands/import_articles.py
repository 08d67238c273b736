"""Import a folder of Markdown articles (YAML front matter optional); see docs/knowledge.md."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.core.exceptions import ApplicationError
from apps.knowledge import services
from apps.knowledge.models import Language


class Command(BaseCommand):
    help = "Create or update one article per *.md file in a folder (matched by path); one snapshot at the end."

    def add_arguments(self, parser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--publish", action="store_true", help="Publish files whose front matter has no status.")
        parser.add_argument("--language", default="en", choices=Language.values, help="For files that name none.")

    def handle(self, *args, directory: Path, publish: bool, language: str, **options) -> None:
        try:
            result = services.articles_import(directory=directory, publish=publish, default_language=language)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        for name, error in result.errors.items():
            self.stderr.write(f"skipped {name}: {error}")
        self.stdout.write(f"created {result.created}, updated {result.updated}, unchanged {result.unchanged}")
        if result.errors:
            raise CommandError(f"{len(result.errors)} file(s) skipped")
