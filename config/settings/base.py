"""Settings shared by every environment, read from environment variables only.

Each environment module (`local`, `test`, `production`) imports this one and overrides
what differs. Defaults here are the safe embedded defaults: SQLite under `var/`, no external
service, nothing sent over the network.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
GUARDIAN_MODEL_PATH = BASE_DIR / "guardian" / "models" / "warden-guardian.gguf"  # trained here: make train-guardian
VAR_DIR = Path(environ.Env().str("WARDEN_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
# A `.env` file in the project root is read when present; real environment variables win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "audit",
    "registry",
    "policy",
    "approvals",
    "guardian",
    "telemetry",
    "simulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
                "approvals.context_processors.pending_approvals",
            ],
        },
    },
]


def database_from_env(default_url: str) -> dict[str, object]:
    """Build the default database from `DATABASE_URL`, tuned for the engine it names.

    SQLite gets WAL, a busy timeout and IMMEDIATE transactions so that concurrent writers
    queue instead of failing with "database is locked"; PostgreSQL keeps connections open
    between requests and checks them before reuse.
    """
    database = env.db_url("DATABASE_URL", default=default_url)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        database["CONN_HEALTH_CHECKS"] = True
    return database


DATABASES = {"default": database_from_env(f"sqlite:///{VAR_DIR / 'warden.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "admin:login"

# Session and CSRF cookies: never readable from JavaScript; secure flags in production.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Django's own cap on form bodies; the API applies WARDEN["API_MAX_REQUEST_BYTES"] too.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.StaffModelPermissions"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.WardenAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Warden API",
    "DESCRIPTION": (
        'Governance control plane for fleets of AI agents. Every error is JSON `{"code", "message", "detail"}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AgentStatusEnum": "registry.choices.AgentStatus",
        "RiskTierEnum": "registry.choices.RiskTier",
        "ModelKindEnum": "registry.choices.ModelKind",
        "ContractStatusEnum": "policy.choices.ContractStatus",
        "DecisionEnum": "policy.choices.DecisionOutcome",
        "ResultStatusEnum": "policy.choices.ResultStatus",
    },
}

# Celery. Embedded default: kombu's filesystem transport under var/, so `make run` needs no
# broker service; set CELERY_BROKER_URL (redis://...) in production.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND",
    default=(
        CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else f"file://{VAR_DIR / 'celery' / 'results'}"
    ),
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    {
        "data_folder_in": str(VAR_DIR / "celery" / "queue"),
        "data_folder_out": str(VAR_DIR / "celery" / "queue"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        # Broadcast (control) messages; kombu's default is ./control in the working directory.
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    # Redis: a task whose worker died unacknowledged (acks late) is delivered again after this many seconds.
    else {"visibility_timeout": env.int("WARDEN_CELERY_VISIBILITY_TIMEOUT", default=3600)}
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Warden's own settings: one dict, read through core.conf.warden_settings, which rejects
# unknown keys. Every key can be set from the environment as WARDEN_<KEY>.
WARDEN = {
    "ORGANIZATION_NAME": env.str("WARDEN_ORGANIZATION_NAME", default="Warden"),
    "ORGANIZATION_URL": env.str("WARDEN_ORGANIZATION_URL", default="http://127.0.0.1:8000/"),
    "API_MAX_REQUEST_BYTES": env.int("WARDEN_API_MAX_REQUEST_BYTES", default=256 * 1024),
    "CREDENTIAL_DEFAULT_TTL_DAYS": env.int("WARDEN_CREDENTIAL_DEFAULT_TTL_DAYS", default=90),
    "POLICY_RECHECK_SECONDS": env.float("WARDEN_POLICY_RECHECK_SECONDS", default=0.5),
    "LOOP_MAX_REPEATS": env.int("WARDEN_LOOP_MAX_REPEATS", default=5),
    "LOOP_WINDOW_SECONDS": env.int("WARDEN_LOOP_WINDOW_SECONDS", default=60),
    "DECISION_TOKEN_TTL_SECONDS": env.int("WARDEN_DECISION_TOKEN_TTL_SECONDS", default=300),
    "SIGNING_KEY": env.str("WARDEN_SIGNING_KEY", default=""),
    "SIGNING_KEY_FILE": env.str("WARDEN_SIGNING_KEY_FILE", default=str(VAR_DIR / "signing_key.pem")),
    "AUDIT_SEAL_SECONDS": env.float("WARDEN_AUDIT_SEAL_SECONDS", default=5.0),
    "AUDIT_SEAL_BATCH": env.int("WARDEN_AUDIT_SEAL_BATCH", default=5000),
    "AUDIT_LATE_SECONDS": env.int("WARDEN_AUDIT_LATE_SECONDS", default=300),
    "PUBLIC_URL": env.str("WARDEN_PUBLIC_URL", default="http://127.0.0.1:8000"),
    "APPROVAL_TIMEOUT_SECONDS": env.int("WARDEN_APPROVAL_TIMEOUT_SECONDS", default=3600),
    "APPROVAL_REMINDER_SECONDS": env.int("WARDEN_APPROVAL_REMINDER_SECONDS", default=600),
    "APPROVAL_CRITICAL_QUORUM": env.int("WARDEN_APPROVAL_CRITICAL_QUORUM", default=2),
    "APPROVAL_EXPIRY_CHECK_SECONDS": env.float("WARDEN_APPROVAL_EXPIRY_CHECK_SECONDS", default=10.0),
    "WEBHOOK_ALLOWED_HOSTS": env.list("WARDEN_WEBHOOK_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "::1"]),
    "WEBHOOK_MAX_ATTEMPTS": env.int("WARDEN_WEBHOOK_MAX_ATTEMPTS", default=8),
    "WEBHOOK_BACKOFF_SECONDS": env.float("WARDEN_WEBHOOK_BACKOFF_SECONDS", default=2.0),
    "WEBHOOK_BACKOFF_MAX_SECONDS": env.float("WARDEN_WEBHOOK_BACKOFF_MAX_SECONDS", default=600.0),
    "WEBHOOK_TIMEOUT_SECONDS": env.float("WARDEN_WEBHOOK_TIMEOUT_SECONDS", default=5.0),
    # The guardian SLM trained in this repository (guardian/models/README.md); empty: the SLM scorer is off.
    "GUARDIAN_MODEL": env.str(
        "WARDEN_GUARDIAN_MODEL", default=str(BASE_DIR / "guardian" / "models" / "warden-guardian.gguf")
    ),
    "GUARDIAN_MODEL_TYPE": env.str("WARDEN_GUARDIAN_MODEL_TYPE", default="llama"),
    "GUARDIAN_CONTEXT_LENGTH": env.int("WARDEN_GUARDIAN_CONTEXT_LENGTH", default=2048),
    "GUARDIAN_THREADS": env.int("WARDEN_GUARDIAN_THREADS", default=1),
    # Unset: the model's own calibrated thresholds (0.5 for a model that brings none).
    "GUARDIAN_SLM_THRESHOLD": env.float("WARDEN_GUARDIAN_SLM_THRESHOLD", default=None),
    "GUARDIAN_PRECHECK_BUDGET_MS": env.float("WARDEN_GUARDIAN_PRECHECK_BUDGET_MS", default=50.0),
    "GUARDIAN_DISAGREEMENT_MARGIN": env.float("WARDEN_GUARDIAN_DISAGREEMENT_MARGIN", default=0.5),
    "ROLLUP_SECONDS": env.float("WARDEN_ROLLUP_SECONDS", default=15.0),
    "DASHBOARD_REFRESH_SECONDS": env.int("WARDEN_DASHBOARD_REFRESH_SECONDS", default=5),
    "METRICS_TOKEN": env.str("WARDEN_METRICS_TOKEN", default=""),
    "TRACE_ARGUMENTS": env.bool("WARDEN_TRACE_ARGUMENTS", default=False),
}

# Periodic tasks (`celery beat`, or a worker started with -B as `make run` does).
CELERY_BEAT_SCHEDULE = {
    "audit-seal": {"task": "audit.seal", "schedule": WARDEN["AUDIT_SEAL_SECONDS"], "options": {"expires": 60}},
    "approvals-expire": {
        "task": "approvals.expire",
        "schedule": WARDEN["APPROVAL_EXPIRY_CHECK_SECONDS"],
        "options": {"expires": 60},
    },
    # Results reported while the broker was unreachable still get scored.
    "guardian-catch-up": {"task": "guardian.catch_up", "schedule": 60.0, "options": {"expires": 60}},
    # The dashboards' per-minute and per-hour rollups.
    "telemetry-rollup": {"task": "telemetry.rollup", "schedule": WARDEN["ROLLUP_SECONDS"], "options": {"expires": 60}},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")

# Where e-mail to approvers comes from (the backend is set per environment).
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Warden <warden@localhost>")

# Rate-limit and loop-guard counters: shared through Redis when set, in-process otherwise.
REDIS_URL = env.str("REDIS_URL", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Request bodies never reach the logs; only method, path and status do.
        "django.request": {"level": "ERROR"},
        # The SDK's HTTP client logs every request at INFO (the simulator would print each twice).
        "httpx": {"level": "WARNING"},
    },
}
