"""Test settings: synchronous infrastructure unless a test is about it.

DATABASE_URL / REDIS_URL still select PostgreSQL / Redis when CI sets them; tests about those
services use `real_redis` fixtures and skip only when REDIS_URL is unset.
"""

from supportbot.settings.base import *

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
# Tests never wait real seconds for backoff; the schedule itself is unit-tested.
LLM_BACKOFF_INITIAL_SECONDS = 0.01
LLM_BACKOFF_MAX_SECONDS = 0.05
LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 2.0
LLM_TOTAL_TIMEOUT_SECONDS = 10.0
LLM_RETRY_BUDGET_SECONDS = 0.0  # degrade at once unless a test is about riding out an outage
LLM_BREAKER_POLL_SECONDS = 0.02
LLM_BREAKER_PROBE_SECONDS = 0.0  # a fixed LLM_BREAKER_RESET_SECONDS unless a test is about the adaptive interval
LLM_BREAKER_FAILING_SECONDS = 0.0  # open on the failure count alone unless a test is about riding out a burst
CHAT_RATE_LIMIT_PER_MINUTE = 1000
LOGIN_RATE_LIMIT_PER_MINUTE = 1000
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING = {"version": 1, "disable_existing_loggers": False}
# Serve static files from the app's finders (no collectstatic in tests): the e2e test loads the page's JS/CSS.
# Autorefresh looks files up per request instead of scanning STATIC_ROOT at start-up, which does not exist
# without collectstatic (WhiteNoise warned "No directory at: …/staticfiles/" for every test client).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not Django's shared-cache in-memory database: that one raises "database table is locked"
    # at once when the websocket tests' concurrent consumers write, instead of waiting like a real
    # SQLite file (WAL, busy timeout) does. One file per process so parallel runs never collide.
    import os

    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-{os.getpid()}.sqlite3")}
    (BASE_DIR / "var").mkdir(exist_ok=True)
# Test transactions roll rule changes back without signals: read the rules on every route.
LLM_ROUTING_RULES_CACHE_SECONDS = 0.0
PROMPT_ACTIVE_VERSIONS_CACHE_SECONDS = 0.0
SUPPORT_EMAIL_URL = "locmem://"
