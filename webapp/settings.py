"""Foreman settings, all from the environment.

With nothing set you get the embedded defaults (SQLite file, in-memory channel layer, Celery
eager) so the demo runs anywhere. DATABASE_URL=postgres://... and REDIS_URL=redis://... switch
to Postgres, channels_redis and Celery with the Redis broker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("FOREMAN_DEBUG", True)
SECRET_KEY = os.environ.get("FOREMAN_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("FOREMAN_SECRET_KEY must be set when FOREMAN_DEBUG is off")
    SECRET_KEY = "foreman-insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = [h for h in os.environ.get("FOREMAN_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("FOREMAN_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "webapp.fleet",
    "webapp.dashboard",
    "webapp.labeling",
    "webapp.learning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webapp.middleware.reject_nul_characters",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
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
WSGI_APPLICATION = None
ASGI_APPLICATION = "webapp.asgi.application"

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A pool, not a connection per event: PostgreSQL forks a backend for each new connection
        # (about 10 ms here), and every consumer handler that touches the ORM would pay it — an
        # alert's path among them. (Persistent connections do not suit ASGI's thread per request.)
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": int(os.environ.get("FOREMAN_DB_POOL_MAX", "20")), "timeout": 10,
        }
else:
    SQLITE_PATH = Path(os.environ.get("FOREMAN_SQLITE_PATH", str(BASE_DIR / "var" / "foreman.sqlite3")))
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/: SQLite would not create it
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            # SQLite serialises writers; wait rather than fail under a burst of events.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # socket_timeout None: redis-py's default 5 s kills idle blocking receives
                # (channels_redis #422); a larger pool for hundreds of robots.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None, "max_connections": 1000}],
                "prefix": os.environ.get("FOREMAN_CHANNEL_PREFIX", "foreman"),
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("FOREMAN_CHANNEL_PREFIX", "foreman"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: eager (in-process) without Redis, the Redis broker with it.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Separate deployments (and concurrent test runs) sharing one Redis must not take each other's tasks.
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": os.environ.get("FOREMAN_CHANNEL_PREFIX", "foreman") + ":celery:"}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": os.environ.get("FOREMAN_CHANNEL_PREFIX", "foreman") + ":celery:"}
CELERY_BEAT_SCHEDULE = {
    # Backstop for leases whose robot connection (and its own lease timer) is gone.
    "expire-leases": {"task": "fleet.expire_stale_leases", "schedule": 2.0},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(os.environ.get("FOREMAN_MEDIA_ROOT", str(BASE_DIR / "var" / "media")))

# Foreman
FOREMAN_LEASE_TTL_S = float(os.environ.get("FOREMAN_LEASE_TTL_S", "5"))
FOREMAN_TELEMETRY_FLUSH_S = float(os.environ.get("FOREMAN_TELEMETRY_FLUSH_S", "0.1"))
FOREMAN_TELEOP_MAX_LATENCY_MS = float(os.environ.get("FOREMAN_TELEOP_MAX_LATENCY_MS", "250"))  # above: supervisory only
FOREMAN_ROBOT_STALE_S = float(os.environ.get("FOREMAN_ROBOT_STALE_S", "3"))
FOREMAN_MAX_UPLOAD_MB = int(os.environ.get("FOREMAN_MAX_UPLOAD_MB", "200"))
# ICE servers handed to both peers, e.g. '[{"urls": ["stun:stun.example.org"]}]'. None by default.
FOREMAN_ICE_SERVERS: list[dict] = json.loads(os.environ.get("FOREMAN_ICE_SERVERS", "[]"))
# coturn's REST API ("use-auth-secret"): short-lived TURN credentials derived from this secret.
FOREMAN_TURN_URLS = [u for u in os.environ.get("FOREMAN_TURN_URLS", "").split(",") if u]
FOREMAN_TURN_SECRET = os.environ.get("FOREMAN_TURN_SECRET", "")
FOREMAN_TURN_TTL_S = int(os.environ.get("FOREMAN_TURN_TTL_S", "3600"))
# The Janus SFU (VideoRoom plugin) for live video: robots publish each watched camera once, pages
# subscribe through it. Unset: peer to peer. The secrets must match Janus's token_auth_secret and the
# VideoRoom's admin_key (`manage.py janus_config` writes a Janus configuration with them).
FOREMAN_SFU_URL = os.environ.get("FOREMAN_SFU_URL", "")  # Janus's WebSocket API as pages and robots reach it
FOREMAN_SFU_TOKEN_SECRET = os.environ.get("FOREMAN_SFU_TOKEN_SECRET", "")
FOREMAN_SFU_ADMIN_KEY = os.environ.get("FOREMAN_SFU_ADMIN_KEY", "")
FOREMAN_SFU_TOKEN_TTL_S = float(os.environ.get("FOREMAN_SFU_TOKEN_TTL_S", "300"))  # a page's grant; renewed while it watches
FOREMAN_SFU_ROBOT_TOKEN_TTL_S = float(os.environ.get("FOREMAN_SFU_ROBOT_TOKEN_TTL_S", "43200"))  # a robot's, renewed at each connect
if FOREMAN_SFU_URL and not (FOREMAN_SFU_TOKEN_SECRET and FOREMAN_SFU_ADMIN_KEY):
    raise ImproperlyConfigured("FOREMAN_SFU_URL needs FOREMAN_SFU_TOKEN_SECRET and FOREMAN_SFU_ADMIN_KEY")
# "relay": both peers use only TURN-relayed candidates (a plant network that allows nothing else; tests of the relay).
FOREMAN_ICE_TRANSPORT_POLICY = os.environ.get("FOREMAN_ICE_TRANSPORT_POLICY", "all")
if FOREMAN_ICE_TRANSPORT_POLICY not in ("all", "relay"):
    raise ImproperlyConfigured(f"FOREMAN_ICE_TRANSPORT_POLICY must be all or relay, not {FOREMAN_ICE_TRANSPORT_POLICY!r}")

DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("FOREMAN_LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

# Tests run concurrently on one Postgres: each run gets its own test database.
if os.environ.get("FOREMAN_TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["FOREMAN_TEST_DB_NAME"]}
