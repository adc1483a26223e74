"""Django settings: every value comes from the environment, with local defaults.

The local defaults point at the project-owned services of infra/local/services.sh
(loopback ports 55432, 56379, 59000/58123, 59092). See .env.example.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

from nova.config import BreakerSettings, CdcConfig, ClickHouseConfig, KafkaConfig
from nova.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    parse_database_url,
)
from pipeline.dedup import mark_ttl_seconds
from ranking.params import RankingParams

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is required when DJANGO_DEBUG is off")
    SECRET_KEY = "insecure-debug-only-key"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS in production (README "Production settings"); off by default for local http runs
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# probes and scrapers talk plain http inside the cluster
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
# behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips a client's own)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False) else None
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from the package, not a CDN
    "monitoring",
    "pipeline",
    "ranking",
    "feed",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "monitoring.middleware.ApiMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "nova.api.RequestTooLargeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "nova.urls"
WSGI_APPLICATION = "nova.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# Local defaults follow the ports of infra/local/services.sh (NOVA_*_PORT), so one
# .env moves both the services and the settings.
_PG_PORT = env_int("NOVA_PG_PORT", 55432)
_REDIS_PORT = env_int("NOVA_REDIS_PORT", 56379)
_CH_TCP_PORT = env_int("NOVA_CH_TCP_PORT", 59000)
_KAFKA_PORT = env_int("NOVA_KAFKA_PORT", 59092)

# --- Postgres: the source of truth
DATABASES = {
    "default": parse_database_url(
        "DATABASE_URL", env_str("DATABASE_URL", f"postgres://postgres@127.0.0.1:{_PG_PORT}/nova")
    )
}
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5))
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "feed.User"

# --- Redis: feed cache, dedup marks, Celery broker
REDIS_URL = env_str("REDIS_URL", f"redis://127.0.0.1:{_REDIS_PORT}/0")
# every Redis key Nova writes (cache, dedup marks) starts with this
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "nova")
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 1.0)
# after a Redis failure, the request path skips Redis this long (nova/redis.py)
REDIS_RETRY_AFTER_SECONDS = env_float("REDIS_RETRY_AFTER_SECONDS", 1.0)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
        },
        "KEY_PREFIX": REDIS_KEY_PREFIX,
    }
}

# --- ClickHouse: replicas, events, ranking
CLICKHOUSE = ClickHouseConfig(
    host=env_str("CLICKHOUSE_HOST", "127.0.0.1"),
    port=env_int("CLICKHOUSE_PORT", _CH_TCP_PORT),
    database=env_str("CLICKHOUSE_DATABASE", "nova"),
    user=env_str("CLICKHOUSE_USER", "default"),
    password=env_secret("CLICKHOUSE_PASSWORD") or "",
    connect_timeout=env_float("CLICKHOUSE_CONNECT_TIMEOUT", 2.0),
    send_receive_timeout=env_float("CLICKHOUSE_SEND_RECEIVE_TIMEOUT", 30.0),
    query_timeout=env_float("CLICKHOUSE_QUERY_TIMEOUT", 0.5),
    # unset: one server, today's tables; set: Replicated tables behind Distributed ones
    # on this cluster (docs/operations/scaling.md)
    cluster=env_str("CLICKHOUSE_CLUSTER", ""),
    replica_path=env_str("CLICKHOUSE_REPLICA_PATH", ClickHouseConfig.replica_path),
)
CLICKHOUSE_SQL_DIR = BASE_DIR / "infra" / "clickhouse"
# the request path's breaker around ClickHouse (nova/breaker.py); each query is
# cancelled after CLICKHOUSE_QUERY_TIMEOUT and counts as a failure
CIRCUIT_BREAKER = BreakerSettings(
    failure_threshold=env_int("CIRCUIT_BREAKER_FAILURE_THRESHOLD", 5),
    cool_down_seconds=env_float("CIRCUIT_BREAKER_COOL_DOWN_SECONDS", 10.0),
    probe_timeout_seconds=env_float("CIRCUIT_BREAKER_PROBE_TIMEOUT_SECONDS", 5.0),
)

# --- feed read path (feed/read.py, feed/cache.py; docs/feed.md)
FEED_CACHE_TTL_SECONDS = env_int("FEED_CACHE_TTL_SECONDS", 300)  # a ranked snapshot serves first pages this long
FEED_CURSOR_TTL_SECONDS = env_int("FEED_CURSOR_TTL_SECONDS", 3600)  # next pages of a snapshot, and cursors, this long
FEED_POST_TTL_SECONDS = env_int("FEED_POST_TTL_SECONDS", 60)  # hydrated posts (explicitly refreshed on API writes)
# a post newer than the snapshot minus this is merged on top (covers the CDC lag)
FEED_FRESH_OVERLAP_SECONDS = env_int("FEED_FRESH_OVERLAP_SECONDS", 60)
FEED_FRESH_MAX = env_int("FEED_FRESH_MAX", 100)
# after a follow or mute change, snapshots live this long (ClickHouse gets the change by CDC)
FEED_CHANGE_GRACE_SECONDS = env_int("FEED_CHANGE_GRACE_SECONDS", 10)
FEED_SINGLE_FLIGHT_LOCK_SECONDS = env_float("FEED_SINGLE_FLIGHT_LOCK_SECONDS", 5.0)
FEED_SINGLE_FLIGHT_WAIT_SECONDS = env_float("FEED_SINGLE_FLIGHT_WAIT_SECONDS", 3.0)
FEED_PAGE_SIZE = env_int("FEED_PAGE_SIZE", 20)
# a hide keeps the post out of every part of the feed (ranked, backfill, fallback) this long
FEED_HIDDEN_TTL_SECONDS = env_int("FEED_HIDDEN_TTL_SECONDS", 30 * 86400)
# warming (feed/warming.py): users active in the last hour whose snapshot is missing
# or expires within the refresh margin (> the task's interval, so none lapses between runs)
FEED_WARM_INTERVAL_SECONDS = env_int("FEED_WARM_INTERVAL_SECONDS", 60)
FEED_WARM_ACTIVE_WINDOW_SECONDS = env_int("FEED_WARM_ACTIVE_WINDOW_SECONDS", 3600)
FEED_WARM_FORGET_DAYS = env_int("FEED_WARM_FORGET_DAYS", 7)
FEED_WARM_REFRESH_BELOW_SECONDS = env_int("FEED_WARM_REFRESH_BELOW_SECONDS", 90)
FEED_WARM_BATCH_SIZE = env_int("FEED_WARM_BATCH_SIZE", 100)
FEED_WARM_MAX_USERS = env_int("FEED_WARM_MAX_USERS", 5000)
FEED_PAGE_MAX = 50

# --- ranking: the profile for users outside every active RankingProfile's traffic share
# (ranking/params.py holds the defaults; docs/ranking.md the formulas)
RANKING_DEFAULT_PROFILE = RankingParams(name=env_str("RANKING_DEFAULT_PROFILE_NAME", "default"))

# --- Kafka
KAFKA = KafkaConfig(
    bootstrap_servers=env_str("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{_KAFKA_PORT}"),
    topic_prefix=env_str("KAFKA_TOPIC_PREFIX", "nova"),
    partitions=env_int("KAFKA_TOPIC_PARTITIONS", 6),
    replication_factor=env_int("KAFKA_REPLICATION_FACTOR", 1),
    session_timeout_ms=env_int("KAFKA_SESSION_TIMEOUT_MS", 6000),
    security_protocol=env_str("KAFKA_SECURITY_PROTOCOL", "plaintext"),
)

# --- CDC: Postgres logical decoding -> Kafka -> ClickHouse replicas (docs/architecture/cdc.md)
CDC = CdcConfig(
    slot_name=env_str("CDC_SLOT_NAME", "nova_cdc"),
    publication_name=env_str("CDC_PUBLICATION_NAME", "nova_cdc"),
    peek_max_rows=env_int("CDC_RELAY_PEEK_MAX_ROWS", 20_000),
    poll_interval=env_float("CDC_RELAY_POLL_SECONDS", 0.05),
    idle_confirm_interval=env_float("CDC_RELAY_IDLE_CONFIRM_SECONDS", 1.0),
    reconnect_max_backoff=env_float("CDC_RECONNECT_MAX_BACKOFF_SECONDS", 30.0),
    relay_metrics_port=env_int("CDC_RELAY_METRICS_PORT", 9103),
)
# the CDC consumer's group; a test namespace gets its own, so runs side by side never
# share (and rebalance) one group
CDC_CONSUMER_GROUP = env_str("CDC_CONSUMER_GROUP", "nova-cdc")

# --- events ingestion (pipeline/)
EVENTS_MAX_BATCH = env_int("EVENTS_MAX_BATCH", 500)
# Client timestamps outside [received_at - max age, received_at + max skew] are
# rejected (not clamped): a clamped ts would count the event in the wrong hour.
EVENTS_MAX_FUTURE_SKEW_SECONDS = env_int("EVENTS_MAX_FUTURE_SKEW_SECONDS", 300)
EVENTS_MAX_AGE_SECONDS = env_int("EVENTS_MAX_AGE_SECONDS", 7 * 24 * 3600)
# 202 only after the broker acknowledged the batch; wait at most this long
EVENTS_PRODUCE_TIMEOUT_SECONDS = env_float("EVENTS_PRODUCE_TIMEOUT_SECONDS", 2.0)
EVENTS_RETRY_AFTER_SECONDS = env_int("EVENTS_RETRY_AFTER_SECONDS", 5)
EVENTS_PRODUCER_QUEUE_MAX_MESSAGES = env_int("EVENTS_PRODUCER_QUEUE_MAX_MESSAGES", 100_000)
# Client retries are dropped by (user_id, event_id) marks (pipeline/dedup.py). A mark
# lives as long as the API accepts a retry (max age + future skew) plus a margin for
# consumer lag. The marks have their own Redis database, so flushing the cache never
# drops them, on a server that must run maxmemory-policy noeviction (checked by the
# consumer): give production a separate server from the LRU cache's.
EVENTS_DEDUP_MARGIN_SECONDS = env_int("EVENTS_DEDUP_MARGIN_SECONDS", 24 * 3600)
EVENTS_DEDUP_TTL_SECONDS = mark_ttl_seconds(
    EVENTS_MAX_AGE_SECONDS, EVENTS_MAX_FUTURE_SKEW_SECONDS, EVENTS_DEDUP_MARGIN_SECONDS
)
EVENTS_DEDUP_REDIS_URL = env_str("EVENTS_DEDUP_REDIS_URL", urlunsplit(urlsplit(REDIS_URL)._replace(path="/1")))
if EVENTS_DEDUP_REDIS_URL == REDIS_URL:
    raise ImproperlyConfigured("EVENTS_DEDUP_REDIS_URL must name another Redis database than REDIS_URL (the cache's)")
EVENTS_CONSUMER_GROUP = env_str("EVENTS_CONSUMER_GROUP", "nova-events")

# --- REST API
# Request bodies above this are refused with 413 (nova.api.RequestTooLargeMiddleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 1_048_576)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "nova.api.exception_handler",
    # every JSON body goes through one parser: orjson, depth and size limits (nova/parsers.py);
    # any other content type is a 415
    "DEFAULT_PARSER_CLASSES": ["nova.parsers.JSONObjectParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Redis-backed, failing open when Redis is down (nova/throttling.py)
    "DEFAULT_THROTTLE_CLASSES": ["nova.throttling.UserThrottle", "nova.throttling.AnonThrottle"],
}
# rates "<count>/[<n>]<unit>" (nova/throttling.py); a window starts with its first request
API_THROTTLE_RATES = {
    "user": env_str("API_THROTTLE_USER", "6000/min"),  # a signed-in user's requests (reads and writes)
    "anon": env_str("API_THROTTLE_ANON", "600/min"),  # anonymous requests per client address
    "events": env_str("API_THROTTLE_EVENTS", "3000/min"),  # events (not requests) per user on POST events/
    # failed sign-ins and registrations, per username and per client address, then 429
    "auth_username": env_str("API_THROTTLE_AUTH_USERNAME", "10/15min"),
    "auth_address": env_str("API_THROTTLE_AUTH_ADDRESS", "100/15min"),
    "register_address": env_str("API_THROTTLE_REGISTER_ADDRESS", "20/hour"),  # accounts created per address
}
# how many reverse proxies in front of gunicorn append to X-Forwarded-For; 0 = the
# client address is REMOTE_ADDR and the header is ignored (a client can write anything in it)
API_NUM_PROXIES = env_int("API_NUM_PROXIES", 0)
SPECTACULAR_SETTINGS = {
    "TITLE": "Nova API",
    "DESCRIPTION": "Social writes, events ingestion and the ranked feed.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # feed.converters.BigIntIdConverter: ids in paths are Postgres bigints
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "format": "int64", "minimum": 1}},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- worker processes' /metrics endpoints (0 = off); web serves /metrics itself
METRICS_BIND_ADDRESS = env_str("METRICS_BIND_ADDRESS", "127.0.0.1")
CONSUMER_METRICS_PORTS = {
    "events": env_int("EVENTS_CONSUMER_METRICS_PORT", 9101),
    "cdc": env_int("CDC_CONSUMER_METRICS_PORT", 9102),
}
CELERY_WORKER_METRICS_PORT = env_int("CELERY_WORKER_METRICS_PORT", 9104)
CELERY_BEAT_METRICS_PORT = env_int("CELERY_BEAT_METRICS_PORT", 9105)

# --- health checks
READINESS_TIMEOUT_SECONDS = env_float("READINESS_TIMEOUT_SECONDS", 2.0)
# /readyz answers from its last run this long: a burst of probes checks once
READINESS_CACHE_SECONDS = min(env_float("READINESS_CACHE_SECONDS", 1.0), 1.0)
# who may read the web's /metrics: client networks (CIDR, comma-separated); empty = everyone
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", [])

# --- periodic tasks (docs/architecture/tasks.md): intervals, sizes, TTLs
# trending posts for the feed's fallback (ranking/trending.py)
TRENDING_REFRESH_SECONDS = env_int("TRENDING_REFRESH_SECONDS", 60)
TRENDING_LIMIT = env_int("TRENDING_LIMIT", 200)
TRENDING_WINDOW_HOURS = env_int("TRENDING_WINDOW_HOURS", 24)
# a few intervals: a missed run or two still leaves a list to serve
TRENDING_TTL_SECONDS = env_int("TRENDING_TTL_SECONDS", 600)
# precomputed author suggestions (ranking/suggestions.py); a user counts as active
# after a login or a write (post, like, comment, follow, mute) within the window
SUGGESTIONS_REFRESH_SECONDS = env_int("SUGGESTIONS_REFRESH_SECONDS", 300)
SUGGESTIONS_ACTIVE_WINDOW_SECONDS = env_int("SUGGESTIONS_ACTIVE_WINDOW_SECONDS", 3600)
SUGGESTIONS_TTL_SECONDS = env_int("SUGGESTIONS_TTL_SECONDS", 1800)
SUGGESTIONS_REFRESH_MAX_USERS = env_int("SUGGESTIONS_REFRESH_MAX_USERS", 5000)
SUGGESTIONS_MAX_LIMIT = 50  # the endpoint's largest `limit`, and how many are cached per user
# consumer-group and replication-slot lag, written to Redis for the web's /metrics
PIPELINE_LAG_REPORT_SECONDS = env_int("PIPELINE_LAG_REPORT_SECONDS", 30)
# an older report is not exported: a stopped worker must not leave a frozen lag behind
PIPELINE_LAG_MAX_AGE_SECONDS = env_int("PIPELINE_LAG_MAX_AGE_SECONDS", 3 * PIPELINE_LAG_REPORT_SECONDS)
# ClickHouse `events` keeps whole months newer than this (18.16 has no TTL)
EVENTS_RETENTION_DAYS = env_int("EVENTS_RETENTION_DAYS", 90)
EVENTS_RETENTION_CHECK_SECONDS = env_int("EVENTS_RETENTION_CHECK_SECONDS", 3600)
if EVENTS_RETENTION_DAYS * 86_400 <= EVENTS_MAX_AGE_SECONDS:
    # the API still accepts events that old: they would land in dropped months
    raise ImproperlyConfigured(
        f"EVENTS_RETENTION_DAYS ({EVENTS_RETENTION_DAYS}) must be longer than EVENTS_MAX_AGE_SECONDS "
        f"({EVENTS_MAX_AGE_SECONDS}s)"
    )
# ClickHouse's limit on one query of a task (the request path's CLICKHOUSE_QUERY_TIMEOUT is far shorter)
TASK_CLICKHOUSE_QUERY_TIMEOUT = env_float("TASK_CLICKHOUSE_QUERY_TIMEOUT", 60.0)

# --- Celery
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND: str | None = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
# workers consume this queue and tasks go to it; separate deployments (or test
# sessions) on one Redis keep their tasks apart by naming their own
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "nova")


def _every(seconds: int, task: str) -> dict[str, object]:
    # a run still queued when the next is due is dropped (expires): after an outage
    # the worker does not replay every missed interval
    return {"task": task, "schedule": float(seconds), "options": {"expires": float(seconds)}}


CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "warm-feed-caches": _every(FEED_WARM_INTERVAL_SECONDS, "feed.tasks.warm_feed_caches"),
    "refresh-trending": _every(TRENDING_REFRESH_SECONDS, "ranking.tasks.refresh_trending"),
    "refresh-suggested-users": _every(SUGGESTIONS_REFRESH_SECONDS, "ranking.tasks.refresh_suggested_users"),
    "report-pipeline-lag": _every(PIPELINE_LAG_REPORT_SECONDS, "pipeline.tasks.report_pipeline_lag"),
    "enforce-events-retention": _every(EVENTS_RETENTION_CHECK_SECONDS, "pipeline.tasks.enforce_events_retention"),
}

# --- auth, i18n, static
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "var" / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
