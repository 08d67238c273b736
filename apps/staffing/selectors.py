"""Whether people can answer now, and when they are back (plain values; no other app's models)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.utils import timezone

from apps.staffing.models import AgentPresence, Holiday, OpeningHours, SupportSchedule

PRESENCE_TTL_SECONDS = 150  # an inbox socket beats every 60 s
SEARCH_DAYS = 21  # how far ahead "back at" is looked for (holidays included)


@dataclass(frozen=True)
class Availability:
    within_hours: bool
    agents_online: int
    back_at: dt.datetime | None  # next opening, when outside hours (in the schedule's time zone)

    @property
    def human_now(self) -> bool:
        return self.within_hours and self.agents_online > 0


def agents_online_count(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    since = now - dt.timedelta(seconds=PRESENCE_TTL_SECONDS)
    return AgentPresence.objects.filter(seen_at__gte=since).values("agent").distinct().count()


def _within(schedule: SupportSchedule, local: dt.datetime, hours: list[OpeningHours], holidays: set[dt.date]) -> bool:
    if local.date() in holidays:
        return False
    moment = local.time()
    return any(h.weekday == local.weekday() and h.opens <= moment < h.closes for h in hours)


def _next_opening(local: dt.datetime, hours: list[OpeningHours], holidays: set[dt.date]) -> dt.datetime | None:
    for offset in range(SEARCH_DAYS):
        day = local.date() + dt.timedelta(days=offset)
        if day in holidays:
            continue
        for period in hours:
            if period.weekday != day.weekday():
                continue
            start = dt.datetime.combine(day, period.opens, tzinfo=local.tzinfo)
            if start > local:
                return start
    return None


def availability(*, now: dt.datetime | None = None) -> Availability:
    """Whether it is within business hours (always, without a schedule), agents online, next opening."""
    now = now or timezone.now()
    online = agents_online_count(now=now)
    schedule = SupportSchedule.objects.first()
    if schedule is None:
        return Availability(within_hours=True, agents_online=online, back_at=None)
    local = now.astimezone(zoneinfo.ZoneInfo(schedule.time_zone))
    hours = list(OpeningHours.objects.filter(schedule=schedule))
    holidays = set(Holiday.objects.filter(schedule=schedule, date__gte=local.date()).values_list("date", flat=True))
    within = _within(schedule, local, hours, holidays)
    return Availability(
        within_hours=within, agents_online=online, back_at=None if within else _next_opening(local, hours, holidays)
    )
