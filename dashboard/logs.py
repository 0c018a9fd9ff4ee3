"""Logs: one line per event, JSON in production (python-json-logger), plain text in development,
each carrying the ids of what it is about: the request (X-Request-ID, taken from the router or
made here, and returned in the response), and in workers the job, chunk and campaign.

The ids live in a context variable, copied onto every record by a filter on the handlers, so
RQ's and gunicorn's own lines carry them too. Gunicorn (gunicorn.conf.py) and the RQ worker
(dashboard/worker.py) configure logging from `dict_config` before the app exists; `init_app`
configures it only for a process nobody configured (`flask run`), and never under tests.
Error reporting to Sentry starts only when SENTRY_DSN is set."""

from __future__ import annotations

import logging
import logging.config
import os
import re
import time
import uuid
from contextvars import ContextVar, Token

from flask import Flask, g, request

from dashboard.config import log_format

CONTEXT_KEYS = ("request_id", "campaign_id", "chunk_id", "job_id")
_context: ContextVar[dict] = ContextVar("herald_log_context", default={})  # noqa: B039 (never mutated)
# What a router may send as X-Request-ID (Heroku: a UUID); anything else gets an id made here.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,199}")
request_log = logging.getLogger("herald.request")


# -- the context ---------------------------------------------------------------------------

def bind(**fields) -> Token:
    """Add ids to every log line of this thread until `reset(token)`; None values are left out."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def reset(token: Token) -> None:
    _context.reset(token)


def current() -> dict:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (a handler filter: records of every logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class PlainFormatter(logging.Formatter):
    """Development: `time level logger: message [campaign_id=3 chunk_id=7]`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_KEYS if getattr(record, k, None) is not None)
        if not ids:
            return line
        first, sep, rest = line.partition("\n")  # a traceback stays below the line
        return f"{first} [{ids}]{sep}{rest}"


def dict_config(environ: dict | os._Environ | None = None) -> dict:
    """The logging configuration for gunicorn (logconfig_dict), the worker and `flask run`:
    one stdout handler on the root logger; gunicorn's and RQ's loggers go through it."""
    env = os.environ if environ is None else environ
    fmt = log_format(env)
    level = env.get("HERALD_LOG_LEVEL", "INFO").upper()
    formatters = {
        "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                 "fmt": "%(levelname)s %(name)s %(message)s",
                 "rename_fields": {"levelname": "level", "name": "logger"},
                 "timestamp": "time"},
        "plain": {"()": "dashboard.logs.PlainFormatter",
                  "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    }
    through_root = {"handlers": [], "propagate": True}
    # JSON: the app writes each request's line itself, with its request id; gunicorn's is dropped.
    access = {"handlers": [], "propagate": False, "level": "WARNING"} if fmt == "json" else through_root
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "dashboard.logs.ContextFilter"}},
        "formatters": {fmt: formatters[fmt]},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                                "formatter": fmt, "filters": ["context"]}},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {"gunicorn.error": {**through_root, "level": "INFO"},
                    "gunicorn.access": {"level": "INFO", **access},
                    "rq.worker": {**through_root}, "rq.scheduler": {**through_root}},
    }


def configure(environ: dict | None = None) -> None:
    """Apply dict_config, and take RQ's own handlers away (its command line adds them to
    `rq.worker` before the worker class is built), so every line goes out once, formatted."""
    logging.config.dictConfig(dict_config(environ))
    for name in ("rq.worker", "rq.scheduler"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


# -- requests --------------------------------------------------------------------------------

def _before_request() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()
    campaign_id = (request.view_args or {}).get("campaign_id")
    g.log_token = bind(request_id=g.request_id, campaign_id=campaign_id)


def _after_request(response):
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    started = g.get("request_started")
    if started is not None and g.get("log_requests"):
        request_log.info("%s %s %s", request.method, request.path, response.status_code, extra={
            "method": request.method, "path": request.path, "status": response.status_code,
            "endpoint": request.endpoint, "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "remote_addr": request.remote_addr})
    return response


def _teardown_request(_exc) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        try:
            reset(token)
        except ValueError:  # created in another context (a streamed body): nothing to undo here
            pass


def init_app(app: Flask) -> None:
    # A process that nobody configured (flask run): configure it. Gunicorn and the worker did
    # already; the tests leave logging to pytest.
    if not logging.getLogger().handlers and not app.testing and app.config["HERALD_ENV"] != "testing":
        configure()
    json_lines = app.config["HERALD_LOG_FORMAT"] == "json"  # plain: gunicorn/werkzeug log requests

    def before():
        _before_request()
        g.log_requests = json_lines

    app.before_request_funcs.setdefault(None, []).insert(0, before)  # first: even a refused request has an id
    app.after_request(_after_request)
    app.teardown_request(_teardown_request)
    init_sentry(app)


# -- error reporting -----------------------------------------------------------------------

_sentry_started = False


def init_sentry(app: Flask) -> bool:
    """sentry-sdk with its Flask and RQ integrations, once per process, only with SENTRY_DSN."""
    global _sentry_started
    dsn = app.config.get("SENTRY_DSN")
    if not dsn or _sentry_started:
        return _sentry_started
    import sentry_sdk

    sentry_sdk.init(dsn=dsn, environment=app.config["HERALD_ENV"], release=app.config.get("HERALD_RELEASE") or None,
                    traces_sample_rate=app.config.get("SENTRY_TRACES_SAMPLE_RATE", 0.0), send_default_pii=False)
    _sentry_started = True
    return True
