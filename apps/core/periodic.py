"""Periodic tasks without Celery beat, for the embedded set-up.

Without REDIS_URL there is no broker, no worker and no beat (`make run`): tasks run eagerly in the
process that sends them, and nothing would run what beat runs every minute in production. `manage.py
serve` runs the tasks named in `EMBEDDED_PERIODIC_TASKS` from a thread of its own instead, at the
intervals `CELERY_BEAT_SCHEDULE` gives them. One server process only: that set-up has one.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def embedded_intervals() -> dict[str, float]:
    """Task name → seconds between runs, for the embedded tasks that beat runs at a fixed interval."""
    wanted = set(settings.EMBEDDED_PERIODIC_TASKS)
    return {
        entry["task"]: float(entry["schedule"])
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] in wanted and isinstance(entry["schedule"], int | float)
    }


class EmbeddedScheduler:
    """Runs each task every its interval on a daemon thread until `stop()`; a failing run is logged and
    the next one goes ahead."""

    def __init__(self, intervals: dict[str, float]) -> None:
        self.intervals = intervals
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="embedded-periodic-tasks", daemon=True)

    def start(self) -> None:
        if self.intervals:
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        due = {name: time.monotonic() + interval for name, interval in self.intervals.items()}
        while not self._stopped.wait(max(0.0, min(due.values()) - time.monotonic())):
            now = time.monotonic()
            for name, at in due.items():
                if at <= now:
                    self.run_once(name)
                    due[name] = time.monotonic() + self.intervals[name]

    @staticmethod
    def run_once(name: str) -> None:
        close_old_connections()
        try:
            import_string(name).apply(throw=True)  # the project's tasks are named by their dotted path
        except Exception:
            logger.exception("periodic task %s failed; it runs again at its next interval", name)
        finally:
            close_old_connections()
