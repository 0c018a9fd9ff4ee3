"""Recovery: start scheduled campaigns, and the sweep every worker runs to find work that
stopped moving (worker killed, Redis restarted, scheduler down) and restart it from the
database's record of what is left. Each kind of problem costs one database query (and one
Redis round trip), whatever the number of chunks."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.exceptions import LockError
from rq.job import Job, JobStatus
from sqlalchemy import or_, select

from dashboard.errors import LifecycleError
from dashboard.extensions import QUEUE_NAMES, db, get_queue, get_redis
from dashboard.models import Campaign, CampaignChunk, CampaignStatus, utcnow
from dashboard.models.campaign import job_id_for
from dashboard.services import lifecycle
from dashboard.services.actor import Actor
from dashboard.services.delivery import chunks, plan

log = logging.getLogger(__name__)
SCHEDULER = Actor.system("scheduler")


def fire_scheduled(campaign_id: int, scheduled_for: str | None) -> bool:
    """The scheduled time arrived: start, unless unscheduled, cancelled or rescheduled meanwhile."""
    extra = (lifecycle.APPROVED_OR_NOT_NEEDED,)
    if scheduled_for:
        extra += (Campaign.scheduled_at == datetime.fromisoformat(scheduled_for),)
    try:
        lifecycle.transition(campaign_id, "fire", SCHEDULER, extra_where=extra, started_at=utcnow())
    except LifecycleError:
        return False
    db.session.commit()
    plan.plan(campaign_id)
    return True


def _waiting(job_ids: list[str]) -> set[str]:
    waiting = set()
    for name in QUEUE_NAMES:
        waiting.update(get_queue(name).get_job_ids())
    return waiting.intersection(job_ids)


def _alive(job_ids: list[str], stall: timedelta) -> set[str]:
    """Which of these jobs are still waiting or running, in one pipelined read (plus one LRANGE
    per queue when some are 'queued': a worker killed right after taking a job leaves it queued
    but gone from the queue; a live worker leaves that state within milliseconds, so such a job
    is looked at twice before it is called lost)."""
    redis = get_redis()
    alive, queued = set(), []
    for job in Job.fetch_many(job_ids, connection=redis):
        if job is None:
            continue
        status = job.get_status(refresh=False)
        if status in (JobStatus.SCHEDULED, JobStatus.DEFERRED):
            alive.add(job.id)
        elif status == JobStatus.QUEUED:
            queued.append(job.id)
        elif status == JobStatus.STARTED:
            started = job.started_at
            if started is not None and started.tzinfo is None:
                started = started.replace(tzinfo=UTC)
            if started is not None and utcnow() - started < stall:
                alive.add(job.id)
    if queued:
        waiting = _waiting(queued)
        alive.update(waiting)
        suspects = [j for j in queued if j not in waiting]
        if suspects:
            time.sleep(0.2)
            again = Job.fetch_many(suspects, connection=redis)
            moved = {job.id for job in again if job is not None and job.get_status(refresh=False) != JobStatus.QUEUED}
            alive.update(moved | _waiting(suspects))
    return alive


def _lost_chunks(now: datetime, stall: timedelta) -> int:
    """Open chunks of sending campaigns whose job is neither waiting nor running: count the loss
    as a job failure (bounded retries) and enqueue a new run."""
    rows = db.session.execute(
        select(CampaignChunk.id, CampaignChunk.run, CampaignChunk.attempts)
        .join(Campaign, Campaign.id == CampaignChunk.campaign_id)
        .where(Campaign.status == CampaignStatus.SENDING, CampaignChunk.done.is_(False),
               CampaignChunk.enqueued_at <= now - stall,
               or_(CampaignChunk.leased_until.is_(None), CampaignChunk.leased_until < now))).all()
    if not rows:
        return 0
    alive = _alive([job_id_for(r.id, r.run) for r in rows], stall)
    lost = [r for r in rows if job_id_for(r.id, r.run) not in alive]
    for r in lost:
        # Lost (not raised): Redis forgot it or its worker died; run it again at once.
        chunks.count_failure(r.id, "the delivery job was lost (worker stopped or killed)", run=r.run, delay=0)
    return len(lost)


def sweep() -> dict:
    """Find work that stopped moving and restart it; safe to run from any number of workers."""
    stall = timedelta(seconds=current_app.config.get("HERALD_STALL_SECONDS", 30))
    now = utcnow()
    report = {"fired": 0, "planned": 0, "requeued": 0, "finished": 0}
    due = db.session.scalars(select(Campaign.id).where(Campaign.status == CampaignStatus.SCHEDULED,
                                                       Campaign.scheduled_at <= now - timedelta(seconds=5),
                                                       lifecycle.APPROVED_OR_NOT_NEEDED)).all()
    for campaign_id in due:
        report["fired"] += fire_scheduled(campaign_id, None)
    report["canary"] = _canary(now, stall)
    unplanned = db.session.scalars(select(Campaign.id).where(
        Campaign.status == CampaignStatus.SENDING, Campaign.planned_at.is_(None),
        Campaign.started_at <= now - stall)).all()
    for campaign_id in unplanned:
        report["planned"] += bool(plan.plan(campaign_id))
    report["requeued"] = _lost_chunks(now, stall)
    idle = db.session.scalars(select(Campaign.id).where(  # all processed, but nobody finished it
        Campaign.status == CampaignStatus.SENDING, Campaign.planned_at <= now - stall, Campaign.pending == 0)).all()
    for campaign_id in idle:
        lifecycle.finish_if_done(campaign_id)
        report["finished"] += 1
    return report


def _canary(now: datetime, stall: timedelta) -> int:
    """Canary sends whose wave finished unnoticed (hold them), and holds whose time elapsed
    while their timer job was lost (continue them). Other paused campaigns are left alone."""
    from dashboard.services import control

    acted = 0
    finished = db.session.scalars(select(Campaign.id).where(
        Campaign.status == CampaignStatus.SENDING, Campaign.canary_state == "sending",
        Campaign.planned_at <= now - stall,
        ~select(CampaignChunk.id).where(CampaignChunk.campaign_id == Campaign.id, CampaignChunk.wave == 1,
                                        CampaignChunk.done.is_(False)).exists())).all()
    for campaign_id in finished:
        lifecycle.finish_if_done(campaign_id)
        acted += 1
    held = db.session.execute(select(Campaign.id, Campaign.paused_at, Campaign.canary_hold_minutes).where(
        Campaign.status == CampaignStatus.PAUSED, Campaign.canary_state == "held",
        Campaign.canary_hold_minutes.is_not(None))).all()
    for row in held:
        if row.paused_at + timedelta(minutes=row.canary_hold_minutes, seconds=5) <= now:
            acted += control.continue_after_hold(row.id, row.paused_at.isoformat())
    return acted


def sweep_with_lock() -> dict | None:
    """One sweep at a time across workers; the lock is released only by the sweep that holds it."""
    lock = get_redis().lock("herald:sweep-lock", timeout=60, blocking=False)
    if not lock.acquire(blocking=False):
        return None
    try:
        return sweep()
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("the sweep outlived its lock")
