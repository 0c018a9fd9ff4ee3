"""RQ entry points (ids in, an app context, a service call) and the enqueueing helpers the
services call after their transaction has committed.

The app is built lazily, once per worker process (HeraldWorker builds it before forking so
each job's work horse inherits it), never at import time. Enqueueing never raises for a
Redis outage: the database already holds the work and the sweep enqueues it once Redis is back."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

import redis
from flask import Flask, has_app_context

from dashboard.extensions import get_queue, get_redis
from dashboard.models import Campaign, DeliveryMode
from dashboard.models.campaign import job_id_for

log = logging.getLogger(__name__)
_app: Flask | None = None
CHUNK_JOB_TIMEOUT = 120  # seconds; a slice sends for a few seconds, this only catches a stuck job


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


# -- enqueueing ------------------------------------------------------------------------------

def is_urgent(campaign: Campaign) -> bool:
    """Realtime sends, one-call notifications and test sends go to the high-priority queue."""
    return campaign.delivery_mode == DeliveryMode.REALTIME or campaign.kind in ("notification", "test")


def _safely(what: str, enqueue) -> bool:
    try:
        enqueue()
        return True
    except redis.exceptions.RedisError as err:
        log.warning("could not enqueue %s (%s); the sweep will pick it up when Redis answers", what, err)
        return False


def enqueue_start(campaign_id: int, queue: str = "batch") -> bool:
    return _safely(f"the start of campaign {campaign_id}", lambda: get_queue(queue).enqueue(
        "dashboard.jobs.start_campaign", campaign_id, job_id=f"herald-start-{campaign_id}", result_ttl=600))


def enqueue_scheduled(campaign_id: int, when: datetime) -> bool:
    return _safely(f"the schedule of campaign {campaign_id}", lambda: get_queue("default").enqueue_at(
        when, "dashboard.jobs.fire_scheduled", campaign_id, when.isoformat(), result_ttl=600))


def enqueue_canary_timer(campaign_id: int, held_at: datetime, hold: timedelta) -> bool:
    """Continue a canary send once its hold has elapsed (unless someone acted meanwhile)."""
    return _safely(f"the canary timer of campaign {campaign_id}", lambda: get_queue("default").enqueue_in(
        hold, "dashboard.jobs.continue_canary", campaign_id, held_at.isoformat(), result_ttl=600))


def enqueue_chunks(chunks: list[tuple[int, int]], *, urgent: bool, delay: float = 0.0,
                   campaign_id: int | None = None) -> bool:
    """(chunk id, run) pairs; a delay uses RQ's scheduler (backoff, a throttled remainder). The
    campaign id rides in the job's meta, so the worker can label its log lines without a query."""

    def enqueue():
        queue = get_queue("realtime" if urgent else "batch")
        pipe = get_redis().pipeline()
        for chunk_id, run in chunks:
            options = dict(job_id=job_id_for(chunk_id, run), result_ttl=300, failure_ttl=3600,
                           job_timeout=CHUNK_JOB_TIMEOUT, pipeline=pipe)
            if campaign_id is not None:
                options["meta"] = {"campaign_id": campaign_id}
            if delay > 0.05:
                queue.enqueue_in(timedelta(seconds=delay), "dashboard.jobs.deliver_chunk", chunk_id, **options)
            else:
                queue.enqueue("dashboard.jobs.deliver_chunk", chunk_id, **options)
        pipe.execute()

    return _safely(f"{len(chunks)} chunk(s)", enqueue) if chunks else True


# -- entry points ----------------------------------------------------------------------------

@in_app_context
def start_campaign(campaign_id: int) -> int:
    from dashboard.services.delivery import plan

    return plan.plan(campaign_id)


@in_app_context
def deliver_chunk(chunk_id: int) -> dict:
    """One time-boxed slice of a chunk; a failure is recorded on the chunk (bounded retries)."""
    from dashboard.services.delivery import chunks

    try:
        return chunks.deliver(chunk_id)
    except Exception as err:
        chunks.job_failed(chunk_id, err)
        raise


@in_app_context
def fire_scheduled(campaign_id: int, scheduled_for: str) -> bool:
    from dashboard.services import recovery

    return recovery.fire_scheduled(campaign_id, scheduled_for)


@in_app_context
def continue_canary(campaign_id: int, held_at: str) -> bool:
    from dashboard.services import control

    return control.continue_after_hold(campaign_id, held_at)


@in_app_context
def sweep() -> dict | None:
    from dashboard.services import recovery

    return recovery.sweep_with_lock()
