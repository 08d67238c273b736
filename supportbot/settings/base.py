"""Settings shared by every environment. Values come from the environment via `env`."""

from django.core.exceptions import ImproperlyConfigured

from supportbot.settings.env import BASE_DIR, env

DEVELOPMENT_SECRET_KEY = "django-insecure-supportbot-development-only"  # noqa: S105 - refused in production

SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PORT = env.int("PORT", default=8000)
# On SIGTERM, streaming answers get this long to finish before they are stored as incomplete.
SHUTDOWN_GRACE_SECONDS = env.float("SHUTDOWN_GRACE_SECONDS", default=25.0)
# Server processes `manage.py serve` runs (one event loop, one GIL each); more than one needs REDIS_URL.
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=1)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "apps.core",
    "apps.accounts",
    "apps.llm",
    "apps.knowledge",
    "apps.actions",
    "apps.prompts",
    "apps.staffing",
    "apps.chat",
    "apps.inbox",
    "apps.triage",
    "apps.insights",
    "apps.widget",
    "apps.evaluations",
    "apps.upstream",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.static.StaticFilesMiddleware",  # WhiteNoise, asynchronous under ASGI
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "supportbot.urls"
ASGI_APPLICATION = "supportbot.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# DATABASE_URL unset → a SQLite file in the project (the embedded default).
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Keep connections for 60 s, paid per ORM call from the chat path otherwise: for PostgreSQL a TCP + auth
# round trip and a backend process (health checks drop one the server closed); for SQLite ~0.4 ms of
# CPU (Django registers its SQL functions and runs the PRAGMAs on every new connection), as much as
# storing a question. The worker threads each hold at most one.
_IS_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = not _IS_SQLITE
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the websocket consumer read while a Celery-eager task writes. synchronous=NORMAL is
    # SQLite's advice for WAL: commits survive an application crash and the file is never corrupted,
    # only an OS crash or power cut can lose the last commits; FULL's fsync per commit made every
    # chat turn's writes I/O-bound (bench/ws_bench.py). Production runs on PostgreSQL.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"]["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")

# The cache backs rate limits, circuit breakers and account contexts: shared across processes through
# Redis when configured, per-process otherwise. The local cache's default of 300 entries is two keys
# (account context, rate limit) for only ~150 active users: beyond that it culls a third of its entries
# at a time and questions rebuild their account context (three queries before the upstream call).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": env.int("LOCAL_CACHE_MAX_ENTRIES", default=20_000)},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 24 * 7)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.exception_handlers.drf_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "supportbot API",
    "DESCRIPTION": "Conversations, messages, feedback and human handoff for Acme's support assistant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Conversation and Message both have a "status" choice field: name their enums apart.
    "ENUM_NAME_OVERRIDES": {
        "ConversationStatusEnum": "apps.chat.models.Conversation.Status",
        "MessageStatusEnum": "apps.chat.models.Message.Status",
        "ArticleStatusEnum": "apps.knowledge.models.Article.Status",
    },
}

# Knowledge base (docs/knowledge.md): a published snapshot up to this many tokens rides whole in the
# cached system prefix; a larger one is searched per question and the best articles sent as search results.
KNOWLEDGE_PREFIX_MAX_TOKENS = env.int("KNOWLEDGE_PREFIX_MAX_TOKENS", default=30_000)
KNOWLEDGE_SEARCH_LIMIT = env.int("KNOWLEDGE_SEARCH_LIMIT", default=4)
# Prefix mode: send the snapshot as citable search results (answers cite articles) instead of documents in
# the system prompt (the default; what customers were served before articles existed, byte for byte).
KNOWLEDGE_PREFIX_CITATIONS = env.bool("KNOWLEDGE_PREFIX_CITATIONS", default=False)

# Chat limits (see docs/protocol.md).
CHAT_MAX_MESSAGE_CHARS = env.int("CHAT_MAX_MESSAGE_CHARS", default=4000)
CHAT_RATE_LIMIT_PER_MINUTE = env.int("CHAT_RATE_LIMIT_PER_MINUTE", default=20)

# The human side (docs/inbox.md): the name customers see ("Dana from Acme joined"), where handoffs are
# emailed when no agent is online, and how (one URL: smtp://user:password@host:587?tls=true, or
# console:// to print them).
SUPPORT_COMPANY_NAME = env.str("SUPPORT_COMPANY_NAME", default="Acme")
SUPPORT_EMAIL_ADDRESS = env.str("SUPPORT_EMAIL_ADDRESS", default="support@example.com")
SUPPORT_EMAIL_URL = env.str("SUPPORT_EMAIL_URL", default="console://")
# An agent's message the customer has not seen this long after it was sent (they left the chat) is
# emailed to them, with the others unseen then; 0 turns this off. SUPPORT_SITE_URL is where the chat
# page is served, for the email's link back to the conversation.
SUPPORT_REPLY_EMAIL_AFTER_SECONDS = env.int("SUPPORT_REPLY_EMAIL_AFTER_SECONDS", default=120)
SUPPORT_SITE_URL = env.str("SUPPORT_SITE_URL", default=f"http://127.0.0.1:{PORT}").rstrip("/")
# A new conversation offers "Ask the assistant" / "Talk to a person" before its first question; off, the
# assistant answers first and a person is reached through "Talk to a human".
CHAT_OFFER_HUMAN_CHOICE = env.bool("CHAT_OFFER_HUMAN_CHOICE", default=True)
# Upper bound on how long a change to a customer's account that bypasses model signals (a queryset
# update) can stay unseen by the assistant; saves and deletes refresh it at once (apps.accounts.signals).
ACCOUNT_CONTEXT_CACHE_SECONDS = env.int("ACCOUNT_CONTEXT_CACHE_SECONDS", default=300)
# How long another process may keep assigning new conversations by the previous active versions after
# a publish, retire or weight change (the process that made the change sees it at once).
PROMPT_ACTIVE_VERSIONS_CACHE_SECONDS = env.float("PROMPT_ACTIVE_VERSIONS_CACHE_SECONDS", default=5.0)
# Publish gate: a draft whose last evaluation run passed less than this share of answers (or less than
# the live version in that run) needs an override reason to be published.
EVALUATION_MIN_PASS_RATE = env.float("EVALUATION_MIN_PASS_RATE", default=0.8)
LOGIN_RATE_LIMIT_PER_MINUTE = env.int("LOGIN_RATE_LIMIT_PER_MINUTE", default=10)

# The widget on other sites (docs/widget.md). Rate limits are per minute, spend caps per UTC day.
WIDGET_VISITOR_TOKEN_MAX_AGE_SECONDS = env.int("WIDGET_VISITOR_TOKEN_MAX_AGE_SECONDS", default=365 * 24 * 3600)
WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE = env.int("WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE", default=8)
WIDGET_IP_RATE_LIMIT_PER_MINUTE = env.int("WIDGET_IP_RATE_LIMIT_PER_MINUTE", default=30)
WIDGET_NEW_VISITORS_PER_IP_PER_HOUR = env.int("WIDGET_NEW_VISITORS_PER_IP_PER_HOUR", default=30)
WIDGET_CONVERSATION_MAX_QUESTIONS = env.int("WIDGET_CONVERSATION_MAX_QUESTIONS", default=40)
WIDGET_SITE_DAILY_SPEND_CAP_USD = env.float("WIDGET_SITE_DAILY_SPEND_CAP_USD", default=20.0)
WIDGET_ACCOUNT_DAILY_SPEND_CAP_USD = env.float("WIDGET_ACCOUNT_DAILY_SPEND_CAP_USD", default=1.0)

# Nightly transcript classification and report.
REPORTS_DIR = env.path("REPORTS_DIR", default=BASE_DIR / "var" / "reports")
REPORT_EMAIL_TO = env.list("REPORT_EMAIL_TO", default=[])
TRIAGE_MASK_PII = env.bool("TRIAGE_MASK_PII", default=True)
# Batch limits (the API allows 100,000 requests / 256 MB; bytes default lower to bound memory, see docs/triage.md).
TRIAGE_BATCH_MAX_REQUESTS = env.int("TRIAGE_BATCH_MAX_REQUESTS", default=100_000)
TRIAGE_BATCH_MAX_BYTES = env.int("TRIAGE_BATCH_MAX_BYTES", default=4 * 1024 * 1024)
TRIAGE_MAX_ATTEMPTS = env.int("TRIAGE_MAX_ATTEMPTS", default=3)
TRIAGE_SUBMIT_GRACE_SECONDS = env.int("TRIAGE_SUBMIT_GRACE_SECONDS", default=300)
# Knowledge gaps: the nightly batch drafts a candidate article per gap topic (docs/knowledge.md).
TRIAGE_GAP_DRAFTS = env.bool("TRIAGE_GAP_DRAFTS", default=True)
TRIAGE_GAP_DRAFT_MAX_TOPICS = env.int("TRIAGE_GAP_DRAFT_MAX_TOPICS", default=50)
TRIAGE_GAP_DRAFT_MAX_CONVERSATIONS = env.int("TRIAGE_GAP_DRAFT_MAX_CONVERSATIONS", default=20)
TRIAGE_GAP_DRAFT_DAYS = env.int("TRIAGE_GAP_DRAFT_DAYS", default=7)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

METRICS_TOKEN = env.str("METRICS_TOKEN", default="")


def logging_config(log_format: str, level: str) -> dict:
    """One handler on the root logger; uvicorn's loggers (its access lines too) propagate to it, since
    `manage.py serve` gives uvicorn no logging configuration of its own."""
    if log_format not in ("console", "json"):
        raise ImproperlyConfigured(f"LOG_FORMAT must be 'console' or 'json', not {log_format!r}.")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_context": {"()": "apps.core.logging.RequestContextFilter"}},
        "formatters": {
            "json": {"()": "apps.core.logging.JsonFormatter"},
            "console": {"()": "apps.core.logging.ConsoleFormatter"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["request_context"]},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "httpx": {"level": "WARNING"},
            "httpx2": {"level": "WARNING"},
            "anthropic": {"level": "WARNING"},
        },
    }


# JSON lines unless a settings module says otherwise (local: console, for people reading a terminal).
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)

from supportbot.settings.anthropic import *
from supportbot.settings.celery import *
from supportbot.settings.channels import *
