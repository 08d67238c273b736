"""When people can answer customers: business hours, holidays, and which agents are online now."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def _validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as Europe/Paris.")


class SupportSchedule(models.Model):
    """The support team's week. One row is used (the first); without one, people are always available."""

    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[_validate_time_zone], help_text="IANA name, e.g. Europe/Paris."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Support hours ({self.time_zone})"


class OpeningHours(models.Model):
    """One opening period on one weekday, in the schedule's time zone (several per day allowed)."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    schedule = models.ForeignKey(SupportSchedule, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField(help_text="Local time the team starts answering.")
    closes = models.TimeField(help_text="Local time the team stops answering (after `opens`).")

    class Meta:
        ordering = ["weekday", "opens"]
        indexes = [models.Index(fields=["schedule", "weekday"])]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}–{self.closes:%H:%M}"

    def clean(self) -> None:
        if self.opens >= self.closes:
            raise ValidationError("An opening period must close after it opens.")


class Holiday(models.Model):
    """A day the team does not answer, whatever the weekly hours say."""

    schedule = models.ForeignKey(SupportSchedule, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["schedule", "date"], name="staffing_holiday_unique_date")]

    def __str__(self) -> str:
        return f"{self.date} {self.name}".strip()


class AgentPresence(models.Model):
    """An open inbox socket. Rows of a process that died stop counting after `PRESENCE_TTL_SECONDS`."""

    channel_name = models.CharField(max_length=200, unique=True, help_text="The socket's channel-layer name.")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inbox_presence")
    seen_at = models.DateTimeField(help_text="Connected, or last heartbeat.")

    class Meta:
        ordering = ["-seen_at"]
        indexes = [models.Index(fields=["seen_at"])]

    def __str__(self) -> str:
        return f"{self.agent} online"
