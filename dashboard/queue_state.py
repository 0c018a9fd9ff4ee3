"""What RQ holds, read through RQ's own API (Queue, the job registries, Worker.all), for the
admin Queues & workers page and for /metrics; and the two things an admin may do to a failed
job (requeue it, delete it).

Jobs are described in Herald's words ("Deliver chunk 12 of campaign #3"): the entry points in
dashboard/jobs.py take ids, so the ids are in each job's arguments (a chunk's campaign is one
indexed query for the whole page)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from sqlalchemy import select

from dashboard.extensions import QUEUE_NAMES, db, get_redis
from dashboard.models import Campaign, CampaignChunk

SWEEP_KEY = "herald:ops:sweep"
LIST_LIMIT = 50  # failed or scheduled jobs shown per page (the counts are exact)
STALE_HEARTBEAT_SECONDS = 60  # a worker silent this long is shown as "not answering"
_VERBS = {"deliver_chunk": "Deliver chunk", "start_campaign": "Start campaign", "fire_scheduled": "Start scheduled",
          "continue_canary": "Continue after the canary", "sweep": "Sweep"}


def utc(moment: datetime | None) -> datetime | None:
    """RQ's datetimes are naive UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def job_function(job: Job) -> str:
    """'deliver_chunk' for dashboard.jobs.deliver_chunk: a short, bounded label."""
    try:
        name = job.func_name or "unknown"
    except Exception:  # noqa: BLE001 (a job whose function cannot be read still gets a label)
        return "unknown"
    return name.rsplit(".", 1)[-1]


def job_ids(job: Job, lookup: bool = True) -> dict:
    """The ids a job's log lines carry: job id, and the campaign (and chunk) it works on. A chunk
    job carries its campaign in its meta; `lookup` asks the database for older jobs without it."""
    ids: dict = {"job_id": job.id}
    function = job_function(job)
    first = job.args[0] if job.args else None
    if not isinstance(first, int):
        return ids
    if function == "deliver_chunk":
        ids["chunk_id"] = first
        ids["campaign_id"] = (job.meta or {}).get("campaign_id")
        if ids["campaign_id"] is None and lookup:
            ids["campaign_id"] = db.session.scalar(select(CampaignChunk.campaign_id)
                                                   .where(CampaignChunk.id == first))
    elif function in ("start_campaign", "fire_scheduled", "continue_canary"):
        ids["campaign_id"] = first
    return ids


@dataclass
class JobView:
    id: str
    queue: str
    function: str
    what: str
    campaign_id: int | None = None
    campaign_name: str | None = None
    enqueued_at: datetime | None = None
    scheduled_for: datetime | None = None
    ended_at: datetime | None = None
    error: str = ""
    traceback: str = ""


@dataclass
class QueueView:
    name: str
    queued: int
    started: int
    scheduled: int
    deferred: int
    failed: int
    oldest_at: datetime | None = None

    @property
    def oldest_age(self) -> float:
        if self.oldest_at is None:
            return 0.0
        return max((datetime.now(UTC) - self.oldest_at).total_seconds(), 0.0)


@dataclass
class WorkerView:
    name: str
    hostname: str
    pid: int | None
    state: str
    queues: list[str]
    current_job: str | None
    current_what: str | None
    last_heartbeat: datetime | None
    birth: datetime | None
    successful: int
    failed: int

    @property
    def answering(self) -> bool:
        if self.last_heartbeat is None:
            return False
        return (datetime.now(UTC) - self.last_heartbeat).total_seconds() < STALE_HEARTBEAT_SECONDS


@dataclass
class Snapshot:
    queues: list[QueueView]
    workers: list[WorkerView]
    scheduled: list[JobView] = field(default_factory=list)
    failed: list[JobView] = field(default_factory=list)
    sweep: dict | None = None


# -- reading ---------------------------------------------------------------------------------

def queues(redis: Redis | None = None) -> list[QueueView]:
    """Depth per queue and state, and when the oldest waiting job was enqueued."""
    redis = redis or get_redis()
    views = []
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=redis)
        oldest = None
        first = queue.get_job_ids(0, 1)
        if first:
            job = Job.fetch_many(first, connection=redis)[0]
            oldest = utc(job.enqueued_at) if job is not None else None
        # Started jobs counted as they stand: RQ's cleanup (abandoned jobs -> failed) is the workers' job.
        started = queue.started_job_registry.get_job_count(cleanup=False)
        views.append(QueueView(name, queue.count, started, queue.scheduled_job_registry.count,
                               queue.deferred_job_registry.count, queue.failed_job_registry.count, oldest))
    return views


def workers(redis: Redis | None = None) -> list[WorkerView]:
    redis = redis or get_redis()
    views = []
    for worker in sorted(Worker.all(connection=redis), key=lambda w: w.name):
        views.append(WorkerView(worker.name, worker.hostname or "", worker.pid, str(worker.get_state()),
                                worker.queue_names(), worker.get_current_job_id(), None, utc(worker.last_heartbeat),
                                utc(worker.birth_date), worker.successful_job_count, worker.failed_job_count))
    return views


def _describe(jobs: list[tuple[Job, str]]) -> list[JobView]:
    """Jobs in Herald's words, with the campaign each one works on (one query for all)."""
    views = []
    chunk_ids = [job.args[0] for job, _ in jobs if job_function(job) == "deliver_chunk" and job.args
                 and isinstance(job.args[0], int)]
    chunk_campaign = dict(db.session.execute(select(CampaignChunk.id, CampaignChunk.campaign_id)
                                             .where(CampaignChunk.id.in_(chunk_ids))).all()) if chunk_ids else {}
    for job, queue in jobs:
        function = job_function(job)
        first = job.args[0] if job.args else None
        campaign_id = None
        if isinstance(first, int):
            campaign_id = chunk_campaign.get(first) if function == "deliver_chunk" else (
                first if function in ("start_campaign", "fire_scheduled", "continue_canary") else None)
        verb = _VERBS.get(function, function.replace("_", " ").capitalize())
        what = f"{verb} {first}" if function == "deliver_chunk" and first is not None else verb
        views.append(JobView(job.id, queue, function, what, campaign_id, enqueued_at=utc(job.enqueued_at),
                             ended_at=utc(job.ended_at)))
    campaign_ids = {v.campaign_id for v in views if v.campaign_id}
    if campaign_ids:
        names = dict(db.session.execute(select(Campaign.id, Campaign.name).where(Campaign.id.in_(campaign_ids))).all())
        for view in views:
            view.campaign_name = names.get(view.campaign_id)
    return views


def _error(job: Job) -> tuple[str, str]:
    """(the exception's last line, the whole traceback) of a failed job's latest run."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else "") or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1].strip() if lines else "no error recorded"), text


def failed_jobs(redis: Redis | None = None, limit: int = LIST_LIMIT) -> list[JobView]:
    redis = redis or get_redis()
    found: list[tuple[Job, str]] = []
    for name in QUEUE_NAMES:
        registry = Queue(name, connection=redis).failed_job_registry
        ids = registry.get_job_ids(0, limit - 1, desc=True)  # most recent failure first
        found += [(job, name) for job in Job.fetch_many(ids, connection=redis) if job is not None]
    views = _describe(found)
    for view, (job, _) in zip(views, found, strict=True):
        view.error, view.traceback = _error(job)
    views.sort(key=lambda v: v.ended_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return views[:limit]


def scheduled_jobs(redis: Redis | None = None, limit: int = LIST_LIMIT) -> list[JobView]:
    """The next scheduled jobs (delayed retries, throttled remainders, campaign schedules)."""
    redis = redis or get_redis()
    found: list[tuple[Job, str]] = []
    times: dict[str, datetime] = {}
    for name in QUEUE_NAMES:
        registry = Queue(name, connection=redis).scheduled_job_registry
        ids = registry.get_job_ids(0, limit - 1)  # soonest first
        for job in Job.fetch_many(ids, connection=redis):
            if job is not None:
                found.append((job, name))
                times[job.id] = utc(registry.get_scheduled_time(job))
    views = _describe(found)
    for view in views:
        view.scheduled_for = times.get(view.id)
    views.sort(key=lambda v: v.scheduled_for or datetime.max.replace(tzinfo=UTC))
    return views[:limit]


def last_sweep(redis: Redis | None = None) -> dict | None:
    """The sweep's last run (written by the worker that ran it, see dashboard.metrics)."""
    raw = (redis or get_redis()).hgetall(SWEEP_KEY)
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    sweep: dict = {"worker": data.get("worker", ""), "seconds": float(data.get("seconds", 0) or 0),
                   "report": json.loads(data.get("report") or "{}"), "error": data.get("error", "")}
    for key in ("at", "error_at"):
        sweep[key] = datetime.fromtimestamp(float(data[key]), UTC) if data.get(key) else None
    return sweep


def snapshot() -> Snapshot:
    redis = get_redis()
    found = Snapshot(queues(redis), workers(redis), scheduled_jobs(redis), failed_jobs(redis), last_sweep(redis))
    ids = {w.current_job for w in found.workers if w.current_job}
    if ids:
        current = {j.id: j for j in Job.fetch_many(sorted(ids), connection=redis) if j is not None}
        described = {v.id: v for v in _describe([(j, j.origin) for j in current.values()])}
        for worker in found.workers:
            view = described.get(worker.current_job)
            if view is not None:
                worker.current_what = view.what + (f" · campaign #{view.campaign_id}" if view.campaign_id else "")
    return found


# -- acting on a failed job ------------------------------------------------------------------

def _failed(job_id: str) -> tuple[Job, Queue] | None:
    redis = get_redis()
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None
    if job.origin not in QUEUE_NAMES:
        return None
    queue = Queue(job.origin, connection=redis)
    if job.id not in queue.failed_job_registry:
        return None
    return job, queue


def requeue_failed(job_id: str) -> Job | None:
    """Put a failed job back at the end of its queue; None if it is no longer failed."""
    found = _failed(job_id)
    if found is None:
        return None
    job, queue = found
    try:
        return queue.failed_job_registry.requeue(job)
    except InvalidJobOperation:  # requeued or deleted by someone else meanwhile
        return None


def delete_failed(job_id: str) -> bool:
    """Remove a failed job and its record; False if it is no longer failed."""
    found = _failed(job_id)
    if found is None:
        return False
    job, queue = found
    queue.failed_job_registry.remove(job, delete_job=True)
    return True
