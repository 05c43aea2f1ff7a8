"""Settings, driven entirely by environment variables (every one is listed in README.md).

Why env-only: the same code runs the embedded demo (SQLite + embedded Redis), CI
(PostgreSQL + Redis on loopback) and production; nothing secret lives in the repo.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_choice, env_float, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# A missing SECRET_KEY is only tolerated in DEBUG/dev runs; production must set one.
# The "django-insecure-" prefix makes `check --deploy` (security.W009) flag this
# public fallback if a production environment forgets SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY") or (
    "django-insecure-dev-key-do-not-use-in-production-0123456789abcdefghijklmnop"
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served by us: /api/docs/ works offline
    "axes",  # brute-force login throttle
    "channels",
    "django_celery_beat",
    "signals",
    "pipeline",
    "dashboard",
    "integrations",
]

MIDDLEWARE = [
    # First: every log line of the request carries its id (signals_project.logs).
    "signals_project.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A database outage answers 503 + Retry-After instead of a 500 page.
    "signals_project.database_outage.DatabaseOutageMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
    # Innermost and sync-only, so the chain runs on one thread per request instead of
    # hopping between threads at each middleware (signals_project.http_concurrency).
    "signals_project.http_concurrency.RequestOnOneThread",
]

ROOT_URLCONF = "signals_project.urls"
ASGI_APPLICATION = "signals_project.asgi.application"
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

# --- Database -------------------------------------------------------------------
# DATABASE_URL unset -> SQLite in WAL mode with a busy timeout, so the web process,
# the worker, beat and the feed can write side by side without "database is locked".
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
# A PostgreSQL connection pool per process (psycopg_pool, Django's "pool" option).
# Why a pool and not persistent connections: Django's ASGI handler runs each HTTP
# request's sync code on a fresh thread, and a persistent connection belongs to its
# thread, so every request opened a new PostgreSQL connection (~10 ms of a 14 ms
# POST, bench/fanout.py --e2e) and the old one lingered until garbage collection. A
# pooled connection is handed back at the end of each request and reused by the next.
# The pool's size bounds one process's share of PostgreSQL's max_connections; a
# request that waits DB_POOL_TIMEOUT for a free connection gets the outage 503.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 20, minimum=0)  # 0: no pool
DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 2, minimum=0)
DB_POOL_TIMEOUT = env_float("DB_POOL_TIMEOUT", 5.0, minimum=0.1)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_health_checks=True)}
    if DB_POOL_MAX_SIZE and "postgresql" in DATABASES["default"]["ENGINE"]:
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT,
            # Idle connections above min_size are closed after 5 minutes, so a burst
            # does not hold PostgreSQL's connection slots for the rest of the day.
            "max_idle": 300,
        }
    else:
        # Without a pool: persistent connections for the long-lived threads of async
        # consumers and workers (a new PostgreSQL connection costs a handshake).
        DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                # IMMEDIATE takes the write lock at BEGIN: writers queue on the busy
                # timeout instead of failing on lock upgrade mid-transaction.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # Tests on SQLite use a file as bin/run does: an in-memory database has
            # table locks without the busy timeout, unlike the real thing.
            "TEST": {"NAME": str(VAR_DIR / "test_db.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, latest-price cache --------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").strip()
CHANNEL_LAYER_PREFIX = os.environ.get("CHANNEL_LAYER_PREFIX", "signals")
# Pub/sub layer chosen by measurement (README "Channel layer choice", bench/fanout.py):
# one Redis message per process per doorbell instead of one list push per client,
# and no connection-pool exhaustion under reconnect storms. CHANNEL_LAYER_BACKEND=core
# selects channels-redis' list-based RedisChannelLayer (kept for comparison).
CHANNEL_LAYER_BACKEND = env_choice("CHANNEL_LAYER_BACKEND", "pubsub", ("pubsub", "core"))
if CHANNEL_LAYER_BACKEND == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_LAYER_PREFIX, "capacity": 1000},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_LAYER_PREFIX},
        }
    }
# How often each web process checks for signals whose doorbell was lost (signals.hub).
WS_WATCHDOG_SECONDS = env_float("WS_WATCHDOG_SECONDS", 5.0, minimum=0.05)
# Reconnect storms (signals.admission): connections still on their way in (handshake,
# auth, replay) per web process before new ones are told 4503 retry_after=<s>, and
# replays reading the database at once.
WS_MAX_PENDING = env_int("WS_MAX_PENDING", 256, minimum=1)
WS_REPLAY_CONCURRENCY = env_int("WS_REPLAY_CONCURRENCY", 8, minimum=1)
# Client `ack` frames are written at most once per this many seconds per connection.
WS_ACK_INTERVAL_SECONDS = env_float("WS_ACK_INTERVAL_SECONDS", 2.0, minimum=0.0)
# A client that stops reading is cut off once this much is queued for it (it resumes
# from its own last id), so it cannot cost the web process unbounded memory.
WS_MAX_BUFFER_BYTES = env_int("WS_MAX_BUFFER_BYTES", 1024 * 1024, minimum=4096)
# Kernel send buffer per WebSocket (bytes; 0 keeps the kernel's autotuning).
WS_SOCKET_SNDBUF = env_int("WS_SOCKET_SNDBUF", 0, minimum=0)
# HTTP requests one web process works on at once (each holds a thread and a database
# connection); more wait for a slot instead of exhausting PostgreSQL's connections.
WEB_MAX_CONCURRENT_REQUESTS = env_int("WEB_MAX_CONCURRENT_REQUESTS", 16, minimum=1)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "signals"),
    }
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Auth / DRF -----------------------------------------------------------------
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Brute-force login throttle (django-axes, signals_project.login_throttle): after
# LOGIN_FAILURE_LIMIT failed logins for one username from one address, that pair is
# refused with 429 for LOGIN_COOLOFF_MINUTES. Records live in the database.
AUTHENTICATION_BACKENDS = [
    "signals_project.login_throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_float("LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HTTP_RESPONSE_CODE = 429
AXES_RESET_ON_SUCCESS = True
# The client address is REMOTE_ADDR: behind a proxy run daphne with --proxy-headers.

REST_FRAMEWORK = {
    # Token first: DRF takes the WWW-Authenticate challenge from the first class, so an
    # anonymous call answers 401 + `WWW-Authenticate: Token` rather than a bare 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "signal_create": env_rate("SIGNAL_CREATE_RATE", "120/min"),
    },
    "EXCEPTION_HANDLER": "signals.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading signals API",
    "DESCRIPTION": "Permanent trading signals: create, list, catch up, stream.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "signals_project.schema_errors.document_error_responses",  # 401/403/404/405/429/503 on DRF operations
        "signals.api.schema.add_signal_stream",  # the SSE view is a plain async view
        "integrations.api.schema.add_inbound_alert",  # a plain view: the token in the path is its credential
    ],
    # Two choice sets share the field name "type": name each after its enumeration.
    "ENUM_NAME_OVERRIDES": {
        "StopRuleTypeEnum": "signals.models.StopRuleType",
        "SignalEventTypeEnum": "signals.models.EventType",
    },
}

# --- i18n / static ----------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the app dirs directly when collectstatic has not run (dev, tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Production hardening (active when DEBUG is off) ---------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
)
X_FRAME_OPTIONS = "DENY"

# --- Market data ---------------------------------------------------------------------
BINANCE_WS_URL = os.environ.get("BINANCE_WS_URL", "wss://stream.binance.com:9443")
BINANCE_REST_URL = os.environ.get("BINANCE_REST_URL", "https://api.binance.com")
BINANCE_API_KEYS = env_list("BINANCE_API_KEYS", "")
BINANCE_KEY_RATE_PER_MIN = env_int("BINANCE_KEY_RATE_PER_MIN", 1200, minimum=1)
FEED_SYMBOLS = env_list("FEED_SYMBOLS", "")
FEED_STALE_SECONDS = env_float("FEED_STALE_SECONDS", 15.0, minimum=0.1)
READINESS_MAX_CANDLE_AGE_SECONDS = env_int("READINESS_MAX_CANDLE_AGE_SECONDS", 180, minimum=1)
READINESS_WINDOW_MINUTES = env_int("READINESS_WINDOW_MINUTES", 60, minimum=1)
READINESS_MIN_COMPLETENESS = env_float("READINESS_MIN_COMPLETENESS", 0.95, minimum=0.0)

# --- Operations: stalls, the single active feed, health history, /metrics, logs ----------
# A stream silent for FEED_STALL_FACTOR x its own learned gap between messages (never
# less than FEED_STALL_MIN_SECONDS, never more than FEED_STALE_SECONDS) is stalled:
# the feed reconnects it and /health/ counts it as not flowing.
FEED_STALL_MIN_SECONDS = env_float("FEED_STALL_MIN_SECONDS", 2.0, minimum=0.05)
FEED_STALL_FACTOR = env_float("FEED_STALL_FACTOR", 10.0, minimum=1.0)
# One active run_feed per database; a standby takes over once the active one's
# heartbeat is older than this (it renews every third of it).
FEED_LEASE_SECONDS = env_float("FEED_LEASE_SECONDS", 20.0, minimum=1.0)
HEALTH_HISTORY_HOURS = env_float("HEALTH_HISTORY_HOURS", 24.0, minimum=0.1)
# /health/ and /metrics compute their answer at most this often per web process.
OPS_COALESCE_SECONDS = env_float("OPS_COALESCE_SECONDS", 1.0, minimum=0.0)
# /metrics answers staff sessions, `Authorization: Bearer <METRICS_TOKEN>` (when set)
# and clients from these networks (default: this host only).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOW_CIDRS = env_list("METRICS_ALLOW_CIDRS", "127.0.0.0/8,::1/128")
for _cidr in METRICS_ALLOW_CIDRS:
    try:
        ipaddress.ip_network(_cidr, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOW_CIDRS: {_cidr!r} is not a network (e.g. 10.0.0.0/8).") from None
# LOG_FORMAT=json writes one JSON object per line (for log shippers); text otherwise.
LOG_FORMAT = env_choice("LOG_FORMAT", "text", ("text", "json"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # LOG_FORMAT=json: one object per line with request_id and connection_id.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(connection_id)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # Request/connection ids on every record, and secrets redacted (signals_project.logs).
    "filters": {"context": {"()": "signals_project.logs.ContextFilter"},
                "redact": {"()": "signals_project.logs.RedactingFilter"},
                "health_polls": {"()": "signals_project.logs.HealthPollFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["context", "redact"],
                             "formatter": "json" if LOG_FORMAT == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Configuring "django" drops the console handler Django's own defaults give it
        # under DEBUG, which printed every request warning twice (once via root).
        "django": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        "django.request": {"filters": ["health_polls"]},
        "django.channels.server": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # its start-up banner on every manage.py run
    },
}

# Periodic jobs (fallback polling, gap backfill, health score). Kept in a plain module
# with no Django imports so settings can load it; django-celery-beat syncs it into
# its database tables when beat starts.
from pipeline.schedule import BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE = {
    **BEAT_SCHEDULE,
    # Attempts whose Celery task was lost (worker killed mid-countdown) are picked up.
    "integrations-deliveries-sweep": {"task": "integrations.deliveries_sweep", "schedule": 60.0},
}

# --- Integrations: webhooks, Telegram/Discord channels, inbound alerts (integrations/) ---
# Base of the links in chat messages ("open signal #N").
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# Webhooks may only target https on public addresses; 1 allows http and private,
# loopback and link-local targets (internal receivers, tests).
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
TELEGRAM_API_URL = env_str("TELEGRAM_API_URL", "https://api.telegram.org")
# Discord channel URLs must live under {DISCORD_API_URL}/webhooks/.
DISCORD_API_URL = env_str("DISCORD_API_URL", "https://discord.com/api")
DELIVERY_TIMEOUT_SECONDS = env_float("DELIVERY_TIMEOUT_SECONDS", 10.0, minimum=0.1)
DELIVERY_RETRY_BASE_SECONDS = env_float("DELIVERY_RETRY_BASE_SECONDS", 5.0, minimum=0.01)
DELIVERY_RETRY_MAX_SECONDS = env_float("DELIVERY_RETRY_MAX_SECONDS", 6 * 3600.0, minimum=0.01)
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", 15, minimum=1)
# A channel whose deliveries all failed for this long is paused (reason shown to its owner).
DELIVERY_PAUSE_AFTER_SECONDS = env_float("DELIVERY_PAUSE_AFTER_SECONDS", 86400.0, minimum=1)
# A repeated inbound alert (same alert_id, or same body) within this window returns the first signal.
INBOUND_DEDUP_SECONDS = env_int("INBOUND_DEDUP_SECONDS", 300, minimum=0)
INBOUND_RATE = env_rate("INBOUND_RATE", "60/min")
