"""Business hours, holidays and agents online decide whether a person can answer now."""

import datetime as dt
import zoneinfo

import pytest
from django.contrib.auth import get_user_model

from apps.chat.notifications import email_connection
from apps.staffing.models import Holiday, OpeningHours, SupportSchedule
from apps.staffing.selectors import availability
from apps.staffing.services import presence_clear, presence_mark

pytestmark = pytest.mark.django_db

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def weekdays_nine_to_five() -> SupportSchedule:
    schedule = SupportSchedule.objects.create(time_zone="Europe/Paris")
    for day in range(5):
        OpeningHours.objects.create(schedule=schedule, weekday=day, opens=dt.time(9), closes=dt.time(17))
    return schedule


def test_without_a_schedule_people_count_as_available_when_an_agent_is_online():
    agent = get_user_model().objects.create_user(username="dana")
    assert not availability().human_now  # nobody online
    presence_mark(agent=agent, channel_name="inbox.1")
    assert availability().human_now
    presence_clear(channel_name="inbox.1")
    assert availability().agents_online == 0


def test_outside_hours_says_when_the_team_is_back_in_its_time_zone():
    weekdays_nine_to_five()
    friday_evening = dt.datetime(2026, 12, 4, 18, 30, tzinfo=PARIS)  # a Friday
    now = availability(now=friday_evening)
    assert not now.within_hours
    assert now.back_at == dt.datetime(2026, 12, 7, 9, 0, tzinfo=PARIS)  # Monday 09:00 Paris
    assert availability(now=dt.datetime(2026, 12, 7, 10, 0, tzinfo=PARIS)).within_hours


def test_a_holiday_is_closed_and_skipped_for_back_at():
    schedule = weekdays_nine_to_five()
    Holiday.objects.create(schedule=schedule, date=dt.date(2026, 12, 7), name="Team day")
    monday_noon = dt.datetime(2026, 12, 7, 12, 0, tzinfo=PARIS)
    now = availability(now=monday_noon)
    assert not now.within_hours and now.back_at == dt.datetime(2026, 12, 8, 9, 0, tzinfo=PARIS)


def test_the_email_url_builds_an_smtp_connection_and_refuses_unknown_schemes():
    connection = email_connection("smtp://bob:p%40ss@mail.example.com:587?tls=true")
    assert (connection.host, connection.port, connection.username, connection.password, connection.use_tls) == (
        "mail.example.com",
        587,
        "bob",
        "p@ss",
        True,
    )
    assert type(email_connection("console://")).__module__.endswith("console")
    with pytest.raises(ValueError):
        email_connection("ftp://example.com")
