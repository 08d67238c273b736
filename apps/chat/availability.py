"""What the customer is told about reaching a person, and what the assistant is told about it, from the
team's hours and who is online."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from apps.staffing.selectors import Availability, availability

# The assistant's line is read for every question; presence changes at most every few seconds and a
# line a few seconds old says the same, so it is kept briefly per process instead of three queries
# before every upstream call.
LINE_TTL_SECONDS = 15.0
AVAILABILITY_TAG = "support_team_availability"

_line_lock = threading.Lock()
_line: tuple[float, str] | None = None


def _back(now: Availability) -> str:
    back = now.back_at
    return back.strftime("%A %H:%M") + f" ({back.tzname()})" if back is not None else ""


# How a request for a person will be answered (`reach` of a waiting `conversation_state`): a person joins
# shortly; nobody is online (answered later, here and by email); the team is away until `back_at`.
REACH_NOW = "now"
REACH_OFFLINE = "offline"
REACH_AWAY = "away"


@dataclass(frozen=True)
class Waiting:
    """What the customer is told while their request waits for a person: the line in the company's
    language (`notice`), and the same as values a client shows in its own language (the widget)."""

    notice: str
    reach: str
    back_at: str | None  # ISO 8601 with the schedule's offset, when the team is away


def waiting() -> Waiting:
    now = availability()
    if now.human_now:
        return Waiting("A person from our team will join shortly. Your messages now go to them.", REACH_NOW, None)
    if not now.within_hours and now.back_at is not None:
        return Waiting(
            f"Our team is away; they are back {_back(now)}. We keep your request and will answer here and by email.",
            REACH_AWAY,
            now.back_at.isoformat(),
        )
    return Waiting(
        "No one from our team is online right now. We keep your request and will answer here and by email.",
        REACH_OFFLINE,
        None,
    )


def assistant_line(now: Availability) -> str:
    """Whether a person can take over right now, as the assistant is told in the user turn (it changes
    from one question to the next, so it never goes in the cached system blocks)."""
    if now.human_now:
        text = "A person from the support team is available right now if the customer needs one."
    elif not now.within_hours and now.back_at is not None:
        text = (
            f"No person from the support team is available right now (outside business hours; back {_back(now)}). "
            "A request for a person is kept and answered then, in this chat and by email."
        )
    else:
        text = (
            "No person from the support team is online right now. "
            "A request for a person is kept and answered in this chat and by email."
        )
    return f"<{AVAILABILITY_TAG}>{text}</{AVAILABILITY_TAG}>"


def availability_line() -> str:
    """`assistant_line` for now, at most `LINE_TTL_SECONDS` old."""
    global _line
    with _line_lock:
        cached = _line
    if cached is not None and time.monotonic() - cached[0] < LINE_TTL_SECONDS:
        return cached[1]
    line = assistant_line(availability())
    with _line_lock:
        _line = (time.monotonic(), line)
    return line


def availability_line_forget() -> None:
    """Read it again next time (tests; a change of hours in admin shows within the TTL anyway)."""
    global _line
    with _line_lock:
        _line = None
