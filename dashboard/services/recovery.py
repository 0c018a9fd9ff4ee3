"""Recovery: start scheduled campaigns, and the sweep every worker runs to find work that
stopped moving (worker killed, Redis restarted, scheduler down) and restart it from the
database's record of what is left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from dashboard.access import Actor
from dashboard.errors import LifecycleError
from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, CampaignChunk, CampaignStatus, utcnow
from dashboard.services.sending import enqueue_chunks, finish_if_done, plan

SCHEDULER = Actor.system("scheduler")


def fire_scheduled(campaign_id: int, scheduled_for: str | None) -> bool:
    """The scheduled time arrived: start, unless unscheduled, cancelled or rescheduled meanwhile."""
    from dashboard.services import lifecycle

    extra = ()
    if scheduled_for:
        extra = (Campaign.scheduled_at == datetime.fromisoformat(scheduled_for),)
    try:
        lifecycle.transition(campaign_id, "fire", SCHEDULER, extra_where=extra, started_at=utcnow())
    except LifecycleError:
        return False
    db.session.commit()
    plan(campaign_id)
    return True


def _job_is_alive(job_id: str, stall: timedelta) -> bool:
    from rq import Queue
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    try:
        job = Job.fetch(job_id, connection=get_redis())
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status in (JobStatus.SCHEDULED, JobStatus.DEFERRED):
        return True
    if status == JobStatus.QUEUED:
        # Still waiting in line? A worker killed right after taking it leaves it "queued" but gone
        # from the queue (RQ parks it in an intermediate list): that job is lost.
        return Queue(job.origin, connection=get_redis()).get_job_position(job.id) is not None
    if status == JobStatus.STARTED:
        started = job.started_at
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        return started is not None and utcnow() - started < stall
    return False


def sweep() -> dict:
    """Find work that stopped moving and restart it; safe to run from any number of workers."""
    stall = timedelta(seconds=current_app.config.get("HERALD_STALL_SECONDS", 30))
    now = utcnow()
    report = {"fired": 0, "planned": 0, "requeued": 0, "finished": 0}
    due = db.session.scalars(select(Campaign.id).where(Campaign.status == CampaignStatus.SCHEDULED,
                                                       Campaign.scheduled_at <= now - timedelta(seconds=5))).all()
    for campaign_id in due:
        report["fired"] += fire_scheduled(campaign_id, None)
    sending = db.session.scalars(select(Campaign).where(Campaign.status == CampaignStatus.SENDING)).all()
    for campaign in sending:
        last = campaign.progress_at or campaign.started_at or campaign.updated_at
        chunks = db.session.scalars(select(CampaignChunk).where(CampaignChunk.campaign_id == campaign.id,
                                                                CampaignChunk.done.is_(False))).all()
        total_chunks = db.session.scalar(select(func.count()).select_from(CampaignChunk)
                                         .where(CampaignChunk.campaign_id == campaign.id))
        if total_chunks == 0:
            if last is None or now - last >= stall:
                report["planned"] += bool(plan(campaign.id))
            continue
        lost = [c for c in chunks if now - c.enqueued_at >= stall
                and not (c.leased_until and c.leased_until > now)  # an external chunk still being sent
                and not _job_is_alive(c.job_id, stall)]
        for chunk in lost:
            chunk.attempts += 1
            chunk.enqueued_at = now
        if lost:
            db.session.commit()
            enqueue_chunks(lost, campaign)
            report["requeued"] += len(lost)
        if not chunks:
            from dashboard.services.recipients import recount

            recount(campaign)
            db.session.commit()
            finish_if_done(campaign.id)
            report["finished"] += 1
    return report


def sweep_with_lock() -> dict | None:
    redis = get_redis()
    if not redis.set("herald:sweep-lock", "1", nx=True, ex=20):
        return None
    try:
        return sweep()
    finally:
        redis.delete("herald:sweep-lock")


