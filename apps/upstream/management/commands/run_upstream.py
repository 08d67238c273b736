"""`python manage.py run_upstream --port 8100`: the emulator, for when Django's CLI is the entry point."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from apps.upstream.__main__ import add_arguments, serve


class Command(BaseCommand):
    help = "Run the offline Anthropic-compatible upstream emulator (see docs/upstream.md)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        serve(argparse.Namespace(**options))
