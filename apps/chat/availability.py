"""What the customer is told about reaching a person, from the team's hours and who is online."""

from __future__ import annotations

from apps.staffing.selectors import availability


def waiting_notice() -> str:
    now = availability()
    if now.human_now:
        return "A person from our team will join shortly. Your messages now go to them."
    if not now.within_hours and now.back_at is not None:
        back = now.back_at.strftime("%A %H:%M") + f" ({now.back_at.tzname()})"
        return f"Our team is away; they are back {back}. We keep your request and will answer here and by email."
    return "No one from our team is online right now. We keep your request and will answer here and by email."
