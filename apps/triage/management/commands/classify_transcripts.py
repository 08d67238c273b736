"""Run the nightly classification on demand: `classify_transcripts [--date YYYY-MM-DD] [--wait]`."""

import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.triage import selectors, services


class Command(BaseCommand):
    help = "Classify a day's finished conversations through the Message Batches API (default: yesterday)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=date.fromisoformat, help="YYYY-MM-DD (default: yesterday, TIME_ZONE).")
        parser.add_argument("--wait", action="store_true", help="Poll until the day is ingested and reported.")
        parser.add_argument("--poll-seconds", type=float, default=5.0, help="Delay between polls with --wait.")
        parser.add_argument("--timeout", type=float, default=24 * 3600, help="Give up waiting after this long.")

    def handle(self, *args, **options) -> None:
        for_date: date = options["date"] or selectors.default_report_date()
        try:
            batches = services.classification_day_submit(for_date=for_date)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        sent = sum(batch.request_count for batch in batches)
        self.stdout.write(f"{for_date}: {len(batches)} batch(es), {sent} conversation(s) submitted")
        if not options["wait"]:
            return
        deadline = time.monotonic() + options["timeout"]
        while not selectors.day_is_complete(for_date=for_date):
            if time.monotonic() > deadline:
                raise CommandError(
                    f"{for_date} is not complete after {options['timeout']:.0f} s; the poll task will finish it"
                )
            time.sleep(options["poll_seconds"])
            summary = services.batches_poll_open()
            if summary.ingested or summary.submitted:
                self.stdout.write(f"ingested {summary.ingested} batch(es), submitted {summary.submitted}")
        if not selectors.daily_report_exists(for_date=for_date):
            from apps.triage.reports import report_generate

            report_generate(for_date=for_date)
        counts = selectors.classification_counts(for_date=for_date)
        self.stdout.write(
            self.style.SUCCESS(
                f"{for_date}: {counts.get('classified', 0)} classified, "
                f"{counts.get('unclassifiable', 0)} unclassifiable; report written"
            )
        )
