"""Configuration read from the environment when create_app runs, never at import."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ENVIRONMENTS = ("development", "testing", "production")


def normalise_database_url(url: str) -> str:
    """Accept Heroku's postgres:// form and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _dev_secret_key(instance_path: str) -> str:
    """A per-checkout random key kept under instance/ so dev sessions survive restarts."""
    path = Path(instance_path) / "dev-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def log_format(environ) -> str:
    """HERALD_LOG_FORMAT: `json` (one object per line, the production default) or `plain`."""
    fmt = environ.get("HERALD_LOG_FORMAT", "").lower()
    if not fmt:
        fmt = "json" if environ.get("HERALD_ENV", "production").lower() == "production" else "plain"
    if fmt not in ("json", "plain"):
        raise RuntimeError(f"HERALD_LOG_FORMAT must be json or plain, not {fmt!r}")
    return fmt


def from_environment(instance_path: str, environ: os._Environ | dict | None = None) -> dict:
    env = os.environ if environ is None else environ
    herald_env = env.get("HERALD_ENV", "production").lower()
    if herald_env not in ENVIRONMENTS:
        raise RuntimeError(f"HERALD_ENV must be one of {', '.join(ENVIRONMENTS)}, not {herald_env!r}")
    production = herald_env == "production"

    secret_key = env.get("SECRET_KEY")
    if not secret_key and production:
        raise RuntimeError(
            "SECRET_KEY is required outside development. Set SECRET_KEY, "
            "or HERALD_ENV=development for local use."
        )
    if not secret_key:
        secret_key = _dev_secret_key(instance_path)

    database_url = env.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'herald.db'}"

    return {
        "HERALD_ENV": herald_env,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env.get("REDIS_URL", "redis://localhost:6379/0"),
        "SMTP_URL": env.get("SMTP_URL", ""),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "WTF_CSRF_TIME_LIMIT": None,
        # Uploads are refused before parsing above this size (25 MB CSV + form overhead).
        "MAX_CONTENT_LENGTH": 26 * 1024 * 1024,
        "LOGIN_MAX_FAILURES": int(env.get("HERALD_LOGIN_MAX_FAILURES", "5")),
        "LOGIN_WINDOW_SECONDS": int(env.get("HERALD_LOGIN_WINDOW_SECONDS", "900")),
        "LOGIN_MAX_FAILURES_PER_EMAIL": int(env.get("HERALD_LOGIN_MAX_FAILURES_PER_EMAIL", "20")),
        "LOGIN_MAX_FAILURES_PER_ADDRESS": int(env.get("HERALD_LOGIN_MAX_FAILURES_PER_ADDRESS", "50")),
        "HERALD_SESSION_IDLE_MINUTES": float(env.get("HERALD_SESSION_IDLE_MINUTES", "720")),
        # Proxies in front of the app whose X-Forwarded-For/-Proto are believed (Heroku: 1).
        "HERALD_TRUSTED_PROXIES": int(env.get("HERALD_TRUSTED_PROXIES", "0")),
        # A chunk or a start that has not moved for this long is presumed lost and re-enqueued.
        "HERALD_STALL_SECONDS": int(env.get("HERALD_STALL_SECONDS", "30")),
        "HERALD_BATCH_CHUNK": int(env.get("HERALD_BATCH_CHUNK", "2000")),
        "HERALD_RETRY_BASE_SECONDS": float(env.get("HERALD_RETRY_BASE_SECONDS", "2")),
        # No job sends for longer than this: the rest of its chunk goes back to the queue, so
        # realtime and one-call sends wait at most one slice behind batch work.
        "HERALD_SLICE_SECONDS": float(env.get("HERALD_SLICE_SECONDS", "5")),
        # Webhooks may reach loopback/private/link-local addresses only with this set to 1 (dev, tests).
        "HERALD_WEBHOOK_ALLOW_PRIVATE": env.get("HERALD_WEBHOOK_ALLOW_PRIVATE", "") == "1",
        # Fernet key(s) for channel secrets at rest; empty: a key derived from SECRET_KEY.
        "HERALD_ENCRYPTION_KEY": env.get("HERALD_ENCRYPTION_KEY", ""),
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        # Operations: GET /metrics answers this bearer token (and signed-in admins); empty: admins only.
        "HERALD_METRICS_TOKEN": env.get("HERALD_METRICS_TOKEN", ""),
        "HERALD_LOG_FORMAT": log_format(env),
        # Error reporting (sentry-sdk) only when a DSN is set; no personal data is sent.
        "SENTRY_DSN": env.get("SENTRY_DSN", ""),
        "SENTRY_TRACES_SAMPLE_RATE": float(env.get("SENTRY_TRACES_SAMPLE_RATE", "0")),
        "HERALD_RELEASE": env.get("HERALD_RELEASE") or env.get("HEROKU_SLUG_COMMIT", ""),
        # Where recipients reach this app (email click tracking links): scheme://host[:port], no path.
        "HERALD_PUBLIC_URL": (env.get("HERALD_PUBLIC_URL") or "http://localhost:5000").rstrip("/"),
        # End-user inbox: default lifetime of a user token (seconds), the stream's heartbeat, and how long one
        # stream is held before the client is asked to reconnect (it resumes from its last event id).
        "HERALD_INBOX_TOKEN_TTL": int(env.get("HERALD_INBOX_TOKEN_TTL", "43200")),
        "HERALD_INBOX_HEARTBEAT": float(env.get("HERALD_INBOX_HEARTBEAT", "15")),
        "HERALD_INBOX_STREAM_SECONDS": float(env.get("HERALD_INBOX_STREAM_SECONDS", "3600")),
        # `make run` sets it: the inbox demo host's address, linked from the in-app channel's card.
        "HERALD_INBOX_DEMO_URL": env.get("HERALD_INBOX_DEMO_URL", ""),
    }
