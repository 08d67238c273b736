"""Injectable wall clock, so tests can expire cache entries and finish batches without sleeping."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to. Thread-safe: the server reads it from its own thread."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def rfc3339(epoch_seconds: float) -> str:
    """Format like the real API: `2024-08-20T18:37:24.100435Z`."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
