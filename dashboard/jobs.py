"""RQ entry points: ids in, an app context, a service call; nothing else.

The app is built lazily, once per worker process (HeraldWorker builds it before
forking so each job's work horse inherits it), never at import time."""

from __future__ import annotations

import functools

from flask import Flask, has_app_context

_app: Flask | None = None


def get_app() -> Flask:
    global _app
    if _app is None:
        from dashboard import create_app

        _app = create_app()
    return _app


def in_app_context(func):
    """Run the job inside its own app context; exceptions propagate so RQ records failures."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            return func(*args, **kwargs)
        with get_app().app_context():
            return func(*args, **kwargs)

    return wrapper
