"""Write a day's transcript report: `transcript_report [--date YYYY-MM-DD] [--no-email]`."""

from datetime import date

from django.core.management.base import BaseCommand, CommandParser

from apps.triage import selectors
from apps.triage.reports import report_generate, report_paths


class Command(BaseCommand):
    help = "Build the daily transcript report (stored, written as HTML and CSV to REPORTS_DIR, optionally emailed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=date.fromisoformat, help="YYYY-MM-DD (default: yesterday, TIME_ZONE).")
        parser.add_argument("--no-email", action="store_true", help="Do not email REPORT_EMAIL_TO.")

    def handle(self, *args, **options) -> None:
        for_date: date = options["date"] or selectors.default_report_date()
        if not selectors.day_is_complete(for_date=for_date):
            self.stderr.write(f"warning: {for_date} still has conversations waiting for classification")
        report = report_generate(for_date=for_date, send_email=not options["no_email"])
        html_path, csv_path = report_paths(for_date)
        volumes = report.data["volumes"]
        self.stdout.write(
            f"{for_date}: {volumes['conversations']} conversation(s), {volumes['classified']} classified, "
            f"cost ${report.data['costs']['total_usd']}"
        )
        self.stdout.write(f"wrote {html_path}")
        self.stdout.write(f"wrote {csv_path}")
