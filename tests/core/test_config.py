"""Configuration selection from the environment, checked in fresh interpreters (settings are import-time)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "broker": settings.CELERY_BROKER_URL,
    "cache": settings.CACHES["default"]["BACKEND"],
    "offline": settings.USE_OFFLINE_UPSTREAM,
    "debug": settings.DEBUG,
}))
"""
CONFIG_VARS = ("DATABASE_URL", "REDIS_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "SECRET_KEY", "DEBUG")


def run_settings(module: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    clean.update(DJANGO_SETTINGS_MODULE=module, **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT_DIR, env=clean, capture_output=True, text=True, timeout=60
    )


def settings_for(module: str = "supportbot.settings.local", **env: str) -> dict:
    result = run_settings(module, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_defaults_need_no_services() -> None:
    config = settings_for()
    assert config["engine"] == "django.db.backends.sqlite3"
    assert config["db_name"].endswith("db.sqlite3")
    assert config["layer"] == "channels.layers.InMemoryChannelLayer"
    assert config["eager"] is True
    assert config["cache"].endswith("LocMemCache")
    assert config["offline"] is True


def test_service_urls_select_postgres_and_redis() -> None:
    config = settings_for(DATABASE_URL="postgres://u@db.example:5432/acme", REDIS_URL="redis://cache.example:6379/0")
    assert config["engine"] == "django.db.backends.postgresql"
    assert config["db_name"] == "acme"
    assert config["layer"] == "apps.core.channel_layers.ResilientRedisChannelLayer"
    assert config["eager"] is False
    assert config["broker"] == "redis://cache.example:6379/0"
    assert config["cache"].endswith("RedisCache")


@pytest.mark.parametrize(
    ("env", "offline"),
    [
        ({}, True),
        ({"ANTHROPIC_API_KEY": "sk-test-not-real"}, False),
        ({"ANTHROPIC_BASE_URL": "http://compatible.example:9000"}, False),
    ],
)
def test_anthropic_credentials_select_the_upstream(env: dict, offline: bool) -> None:
    assert settings_for(**env)["offline"] is offline


def test_production_refuses_the_development_secret_key() -> None:
    result = run_settings("supportbot.settings.production")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_starts_with_a_real_secret_key() -> None:
    config = settings_for("supportbot.settings.production", SECRET_KEY="x" * 60)
    assert config["debug"] is False


def test_production_settings_pass_the_deploy_checklist() -> None:
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    clean.update(
        DJANGO_SETTINGS_MODULE="supportbot.settings.production",
        SECRET_KEY="k" * 20 + "-a-long-random-production-secret-" + "z" * 20,
        ALLOWED_HOSTS="support.acme.example",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_make_run_serves_the_chat_assets_without_collectstatic() -> None:
    """`make run` uses the local settings and never runs collectstatic: the page must still get its JS/CSS."""
    probe = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "c = Client()\n"
        "print(c.get('/static/chat/chat.js').status_code, c.get('/static/chat/chat.css').status_code)\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    clean.update(DJANGO_SETTINGS_MODULE="supportbot.settings.local")
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, env=clean, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["200", "200"], result.stderr


def test_the_asgi_process_freezes_what_it_loaded_out_of_the_collector() -> None:
    """Start-up objects (modules, classes, settings) are frozen: full collections skip them."""
    import gc

    import supportbot.asgi  # noqa: F401 - the import freezes

    assert gc.get_freeze_count() > 50_000
