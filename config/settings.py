"""Django settings for steplens: every environment variable is read here, each with a safe default."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from config.csp import content_security_policy

BASE_DIR = Path(__file__).resolve().parent.parent
# The local, git-ignored .env that `make setup` writes (scripts/local_env.py: a generated secret
# key, debug on, the SQLite path), so that a plain `manage.py ...` runs. The process environment
# wins over the file; STEPLENS_ENV_FILE names another file, or none when empty (the tests).
# Production reads no secret from here unless its own .env sets one (it refuses to start without).
ENV_FILE = os.environ.get("STEPLENS_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    load_dotenv(ENV_FILE, override=False)
# Local state of a dev/demo install: SQLite file, generated secret key, embedded broker, uploads.
VAR_DIR = Path(os.environ.get("STEPLENS_VAR_DIR", BASE_DIR / "var"))


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _dev_secret_key() -> str:
    """A per-install key for development, generated once and kept in var/ (never committed)."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = _env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set in the environment when DJANGO_DEBUG is off (production)."
        )
    SECRET_KEY = _dev_secret_key()

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # One app per concern; each may import only the ones above it (import-linter checks it).
    "annotate",
    "scoring",
    "review",
    "snapshots",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.body_limit.BodySizeLimitMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.login_throttle.LoginThrottleMiddleware",
    "config.input_guard.InputGuardMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'steplens.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the worker read while the other writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters bound by PostgreSQL, and a statement this connection has run
    # DATABASE_PREPARE_THRESHOLD times kept prepared (psycopg's prepare_threshold): the save and
    # the page run the same dozen statements on every request, which PostgreSQL then no longer
    # parses and plans each time (docs/benchmarks.md, issue 16). 0 turns both off (psycopg binds
    # on the client, as Django's default): needed behind a pooler in transaction mode
    # (PgBouncer before 1.21), where a prepared statement may meet another server connection.
    _prepare = int(os.environ.get("DATABASE_PREPARE_THRESHOLD", "5"))
    if _prepare > 0:
        DATABASES["default"]["OPTIONS"] = {
            "server_side_binding": True,
            "prepare_threshold": _prepare,
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Failed-login limiter (config/login_throttle.py): this many failures for one username, or from
# one address, within LOGIN_LOCKOUT_SECONDS lock log-in (429) until the window ends.
AUTHENTICATION_BACKENDS = ["config.login_throttle.LoginThrottleBackend"]
LOGIN_FAILURES_PER_USER = int(os.environ.get("LOGIN_FAILURES_PER_USER", "5"))
LOGIN_FAILURES_PER_IP = int(os.environ.get("LOGIN_FAILURES_PER_IP", "100"))
# API tokens (annotate/tokens.py) expire after this many days; a password change revokes them.
STEPLENS_API_TOKEN_DAYS = int(os.environ.get("STEPLENS_API_TOKEN_DAYS", "90"))
# The proxies in front of steplens (comma-separated addresses, e.g. the TLS proxy's): from these
# peers only, the client's address is read from X-Forwarded-For (the login throttle counts it).
STEPLENS_TRUSTED_PROXIES = [
    a.strip() for a in os.environ.get("STEPLENS_TRUSTED_PROXIES", "").split(",") if a.strip()
]
LOGIN_LOCKOUT_SECONDS = int(os.environ.get("LOGIN_LOCKOUT_SECONDS", "900"))

# The cache holds login-failure counts and API throttle counters: Redis in production so that
# every web process shares them (local memory is per process).
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": CACHE_URL}}
    # Sessions read from the shared cache, written through to the database (which keeps them
    # when the cache is flushed): a request reads no session row (issue 16: a query fewer on
    # every page and every label save).
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotate:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# Uploads: imports larger than this are refused with a clear error (see annotate.views).
IMPORT_MAX_BYTES = int(os.environ.get("STEPLENS_IMPORT_MAX_BYTES", str(200 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Any request body larger than this is refused (413) before it is read, except by the import
# endpoints (STEPLENS_IMPORT_MAX_BYTES): config/body_limit.py.
STEPLENS_MAX_BODY_BYTES = int(os.environ.get("STEPLENS_MAX_BODY_BYTES", str(10 * 1024 * 1024)))
# An import larger than this is run by a worker (annotate.import_jobs), with a progress page,
# instead of in the web request.
STEPLENS_IMPORT_SYNC_MAX_BYTES = int(
    os.environ.get("STEPLENS_IMPORT_SYNC_MAX_BYTES", str(8 * 1024 * 1024))
)
# An upload larger than this is streamed to a temporary file, not held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = int(2.5 * 1024 * 1024)

# Longest step text (also a trace's final answer) and problem text (also its reference answer and
# solution) an import accepts, in characters; longer is refused with the line and field. The real
# data's longest step is 1,470 characters and its longest problem 4,415 (see docs/formats.md).
STEPLENS_MAX_STEP_CHARS = int(os.environ.get("STEPLENS_MAX_STEP_CHARS", "20000"))
STEPLENS_MAX_PROBLEM_CHARS = int(os.environ.get("STEPLENS_MAX_PROBLEM_CHARS", "50000"))
# An import reads a record (a line, or an element of a JSON array) of at most this many bytes,
# nested at most this deep, with at most this much metadata per trace, problem or step.
STEPLENS_IMPORT_MAX_RECORD_BYTES = int(
    os.environ.get("STEPLENS_IMPORT_MAX_RECORD_BYTES", str(16 * 1024 * 1024))
)
STEPLENS_IMPORT_MAX_DEPTH = int(os.environ.get("STEPLENS_IMPORT_MAX_DEPTH", "20"))
STEPLENS_IMPORT_MAX_METADATA_BYTES = int(
    os.environ.get("STEPLENS_IMPORT_MAX_METADATA_BYTES", str(64 * 1024))
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "annotate.tokens.HashedTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON too deeply nested is a 400 (config/input_guard.py), not a RecursionError.
    "DEFAULT_PARSER_CLASSES": [
        "config.input_guard.GuardedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Token-auth scripts hit the API in loops; these caps stop a runaway client, not a person.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "config.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "60/min"),
        "user": os.environ.get("API_THROTTLE_USER", "6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "steplens API",
    "DESCRIPTION": "Step-level labels of LLM reasoning traces, PRM scores and exports.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc served from vendored static files: /api/docs/ works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No validator badge: Swagger UI would fetch it from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # One name for the project roles, wherever a serializer uses them.
    "ENUM_NAME_OVERRIDES": {"RoleEnum": "annotate.models.Role"},
}

# Celery: an embedded filesystem broker by default (no server needed), Redis when set.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (pidbox) files; kombu's default is ./control in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    # Redis: an unacknowledged task (its worker died) is delivered again after this many seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
    }
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = _env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_DEFAULT_QUEUE = "bulk"
# Export snapshots go here; docker-compose sends them to the CPU worker's `exports` queue.
STEPLENS_EXPORT_QUEUE = os.environ.get("STEPLENS_EXPORT_QUEUE", "bulk")
# Training runs go here; docker-compose's GPU worker serves it (the demo's worker too, on CPU).
STEPLENS_TRAIN_QUEUE = os.environ.get("STEPLENS_TRAIN_QUEUE", "train")
CELERY_TASK_ROUTES = {"annotate.tasks.export_snapshot_build_task": {"queue": STEPLENS_EXPORT_QUEUE}}

# Scoring workers (see README "Running a real PRM").
STEPLENS_DEVICE = os.environ.get("STEPLENS_DEVICE", "auto")  # auto: cuda when available, else cpu
STEPLENS_DTYPE = os.environ.get("STEPLENS_DTYPE", "auto")  # auto: bf16 on CUDA, fp32 on CPU
STEPLENS_BATCH_TOKENS = int(os.environ.get("STEPLENS_BATCH_TOKENS", "16384"))
# A run queued or running longer than this without finishing is re-enqueued by the sweeper.
STEPLENS_RUN_LEASE_SECONDS = float(os.environ.get("STEPLENS_RUN_LEASE_SECONDS", "600"))
STEPLENS_WORKER_HEARTBEAT_SECONDS = float(os.environ.get("STEPLENS_WORKER_HEARTBEAT_SECONDS", "5"))

if not DEBUG:
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = _env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # No SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from any client.
    # gunicorn decides the scheme (wsgi.url_scheme) from that header only when the peer is in
    # GUNICORN_FORWARDED_ALLOW_IPS, the TLS proxy (config/gunicorn.conf.py, docs/deployment.md).
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Content-Security-Policy (config/csp.py). Problem images show only from steplens itself and these
# hosts (comma-separated host names, served over https); others are not loaded.
STEPLENS_IMAGE_HOSTS = [
    h.strip() for h in os.environ.get("STEPLENS_IMAGE_HOSTS", "").split(",") if h.strip()
]
CONTENT_SECURITY_POLICY = content_security_policy(STEPLENS_IMAGE_HOSTS)
