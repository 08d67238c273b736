"""Business hours and holidays, edited by the team's admins."""

from django.contrib import admin

from apps.staffing.models import Holiday, OpeningHours, SupportSchedule


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


@admin.register(SupportSchedule)
class SupportScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "time_zone", "updated_at")
    inlines = [OpeningHoursInline, HolidayInline]
