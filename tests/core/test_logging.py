"""Log format per settings module, request ids on every line of a request (uvicorn's access line too)."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.logging import ConsoleFormatter, JsonFormatter, RequestContextFilter, request_id_var
from apps.core.management.commands.serve import server_config
from supportbot.settings.base import logging_config


def _settings_value(module: str, expression: str, **env: str) -> str:
    """Evaluate `expression` under a settings module in a fresh interpreter (settings load once per process)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "DJANGO_SETTINGS_MODULE")}
    environment.update(DJANGO_SETTINGS_MODULE=module, SECRET_KEY="x" * 50, **env)
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip()


def test_development_logs_read_as_lines_and_production_logs_are_json() -> None:
    handler = 'settings.LOG_FORMAT, settings.LOGGING["handlers"]["console"]["formatter"]'
    assert _settings_value("supportbot.settings.local", handler) == "console console"
    assert _settings_value("supportbot.settings.production", handler) == "json json"
    assert _settings_value("supportbot.settings.local", handler, LOG_FORMAT="json") == "json json"


def test_an_unknown_log_format_is_refused_with_the_choices() -> None:
    with pytest.raises(ImproperlyConfigured, match="'console' or 'json'"):
        logging_config("xml", "INFO")


def _record(message: str = "answer stored", *, request_id: str = "", conversation_id: str = "") -> logging.LogRecord:
    record = logging.LogRecord("apps.chat", logging.INFO, __file__, 1, message, (), None)
    record.request_id = request_id
    record.conversation_id = conversation_id
    return record


def test_console_lines_carry_the_ids_when_there_are_some() -> None:
    line = ConsoleFormatter().format(_record(request_id="abc123", conversation_id="42"))
    assert line.endswith("INFO  apps.chat [req abc123 conv 42] answer stored")
    assert ConsoleFormatter().format(_record()).endswith("INFO  apps.chat answer stored")


def test_json_lines_parse_and_carry_the_ids() -> None:
    payload = json.loads(JsonFormatter().format(_record(request_id="abc123")))
    assert payload["message"] == "answer stored" and payload["request_id"] == "abc123"
    assert payload["level"] == "INFO" and payload["logger"] == "apps.chat"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def served():
    """The application served by uvicorn exactly as `manage.py serve` configures it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    # An in-process emulator started earlier in this test run configured uvicorn's loggers its own way
    # (handlers, no propagation); `manage.py serve` starts from Django's configuration alone.
    saved = {}
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate)
        logger.handlers.clear()
        logger.propagate = True
    server = uvicorn.Server(server_config(host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", collect.records
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        logging.getLogger().removeHandler(collect)
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate


def test_uvicorn_access_lines_carry_the_request_id(served) -> None:
    url, records = served
    given = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "from-the-proxy-1"})
    made = httpx.get(f"{url}/healthz")

    access = [r for r in records if r.name == "uvicorn.access"]
    assert given.headers["X-Request-ID"] == "from-the-proxy-1"
    assert [r.request_id for r in access] == ["from-the-proxy-1", made.headers["X-Request-ID"]]
    assert len(made.headers["X-Request-ID"]) == 32 and request_id_var.get() == ""
    assert all("GET /healthz" in r.getMessage() for r in access)


def test_serve_leaves_uvicorn_no_logging_configuration_of_its_own() -> None:
    config = server_config(host="127.0.0.1", port=0)
    assert config.log_config is None and config.log_level == settings.LOG_LEVEL.lower()
