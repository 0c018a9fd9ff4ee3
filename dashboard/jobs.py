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
        if has_app_context():  # e.g. a SimpleWorker inside a test: start from fresh state
            from dashboard.extensions import db

            db.session.expire_all()
            return func(*args, **kwargs)
        with get_app().app_context():
            return func(*args, **kwargs)

    return wrapper


@in_app_context
def start_campaign(campaign_id: int) -> int:
    from dashboard.services import sending

    return sending.plan(campaign_id)


@in_app_context
def deliver_chunk(chunk_id: int) -> dict:
    from dashboard.services import sending

    return sending.deliver_chunk(chunk_id)


@in_app_context
def fire_scheduled(campaign_id: int, scheduled_for: str) -> bool:
    from dashboard.services import recovery

    return recovery.fire_scheduled(campaign_id, scheduled_for)


@in_app_context
def sweep() -> dict | None:
    from dashboard.services import recovery

    return recovery.sweep_with_lock()
