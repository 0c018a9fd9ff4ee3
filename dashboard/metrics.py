"""Prometheus metrics for GET /metrics (prometheus_client), from three sources:

* **Web processes** record HTTP latency and failed sign-ins with prometheus_client. Under
  gunicorn that is its multi-process mode (gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR,
  empties it at start, marks dead workers), so any web worker answers for all of them; without
  the variable (`make run`, the test client) it is the ordinary in-process registry.
* **Workers** record job durations, queue waits, job outcomes and the sweep's actions in one
  Redis hash (a handful of HINCRBYFLOATs per job, pipelined). Not prometheus_client files:
  on Heroku or compose the workers run on other machines than the web process that is
  scraped, and RQ forks a new work horse per job, which in multi-process mode leaves a set of
  files per job for every scrape to read.
* **At scrape time** from the database and Redis: deliveries by channel and outcome (the sums
  of the campaigns' own counters, so they always equal what the campaign pages show, with no
  code on the sending path), pending recipients, active campaigns, send durations, chunk
  retries, queue depths, the oldest waiting job, workers by state. A few aggregate queries
  over `campaigns` and `campaign_chunks` (never `recipients`) and a few Redis reads.

Metric names are listed in the README (Operations → Metrics)."""

from __future__ import annotations

import hmac
import json
import logging
import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import case, func, select

from dashboard import queue_state
from dashboard.extensions import db, get_redis
from dashboard.models import Campaign, CampaignChunk, CampaignStatus

log = logging.getLogger(__name__)

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 120.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
SEND_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
REDIS_KEY = "herald:metrics"  # worker-recorded series: field = JSON [name, [[label, value], ...]]
FINAL = (CampaignStatus.SENT, CampaignStatus.FAILED, CampaignStatus.CANCELLED)
ACTIVE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)
SWEEP_ACTIONS = ("fired", "planned", "requeued", "finished", "canary")

# -- web processes (prometheus_client) -------------------------------------------------------

HTTP_SECONDS = Histogram("herald_http_request_duration_seconds", "Time to answer a request, by Flask endpoint.",
                         ["endpoint", "method"], buckets=HTTP_BUCKETS)
HTTP_REQUESTS = Counter("herald_http_requests", "Requests answered, by Flask endpoint and status code.",
                        ["endpoint", "method", "status"])
LOGIN_FAILURES = Counter("herald_login_failures", "Refused dashboard sign-ins: bad_credentials or throttled.",
                         ["reason"])


def _observe_request(response):
    started = g.get("request_started")
    if started is None:
        return response
    endpoint = request.endpoint or "unmatched"  # a 404 has no endpoint: one label for all of them
    HTTP_SECONDS.labels(endpoint, request.method).observe(time.perf_counter() - started)
    HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
    if endpoint == "auth.login" and request.method == "POST" and response.status_code in (401, 429):
        LOGIN_FAILURES.labels("throttled" if response.status_code == 429 else "bad_credentials").inc()
    return response


def init_app(app: Flask) -> None:
    """Time every request (logs.init_app stamps its start first)."""
    app.after_request(_observe_request)


# -- workers (Redis) ---------------------------------------------------------------------------

HISTOGRAMS = {"herald_job_duration_seconds": JOB_BUCKETS, "herald_job_wait_seconds": WAIT_BUCKETS}
HELP = {
    "herald_jobs_total": "RQ jobs run by Herald's workers, by function, queue and outcome (finished/failed).",
    "herald_job_duration_seconds": "Time a job ran (deliver_chunk: one time-boxed slice of a chunk).",
    "herald_job_wait_seconds": "Time from a job being enqueued to a worker starting it, by queue.",
    "herald_sweep_runs_total": "Sweeps completed (every worker runs one each HERALD_SWEEP_SECONDS; one at a time).",
    "herald_sweep_actions_total": "What the sweep did: fired schedules, planned starts, requeued lost chunks, "
                                  "finished idle sends, canary holds/continues.",
    "herald_sweep_failures_total": "Sweeps that raised (logged by the worker; the next one retries).",
}


def _field(name: str, labels: dict) -> str:
    return json.dumps([name, sorted(labels.items())])


def _observe(pipe, name: str, labels: dict, value: float) -> None:
    le = next((b for b in HISTOGRAMS[name] if value <= b), float("inf"))
    pipe.hincrbyfloat(REDIS_KEY, _field(name + "_bucket", {**labels, "le": floatToGoString(le)}), 1)
    pipe.hincrbyfloat(REDIS_KEY, _field(name + "_sum", labels), value)


def record_job(redis: Redis, job, queue: str, ok: bool, seconds: float) -> None:
    """Called by the work horse after each job; a Redis error loses the figure, never the job."""
    function = queue_state.job_function(job)
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hincrbyfloat(REDIS_KEY, _field("herald_jobs_total", {
            "function": function, "queue": queue, "outcome": "finished" if ok else "failed"}), 1)
        _observe(pipe, "herald_job_duration_seconds", {"function": function}, seconds)
        enqueued, started = queue_state.utc(job.enqueued_at), queue_state.utc(job.started_at)
        if enqueued and started:
            _observe(pipe, "herald_job_wait_seconds", {"queue": queue}, max((started - enqueued).total_seconds(), 0.0))
        pipe.execute()
    except RedisError as err:
        log.warning("could not record the metrics of job %s: %s", job.id, err)


def record_sweep(redis: Redis, report: dict, seconds: float, worker: str) -> None:
    """The sweep's report: kept as its last run (Queues & workers page) and added to the totals."""
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hset(queue_state.SWEEP_KEY, mapping={"at": time.time(), "seconds": round(seconds, 3), "worker": worker,
                                                  "report": json.dumps(report)})
        pipe.hincrbyfloat(REDIS_KEY, _field("herald_sweep_runs_total", {}), 1)
        for action in sorted(set(SWEEP_ACTIONS) | set(report)):
            pipe.hincrbyfloat(REDIS_KEY, _field("herald_sweep_actions_total", {"action": action}),
                              float(report.get(action) or 0))
        pipe.execute()
    except RedisError as err:
        log.warning("could not record the sweep: %s", err)


def record_sweep_failure(redis: Redis, error: str, worker: str) -> None:
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hset(queue_state.SWEEP_KEY, mapping={"error": error[:500], "error_at": time.time(), "worker": worker})
        pipe.hincrbyfloat(REDIS_KEY, _field("herald_sweep_failures_total", {}), 1)
        pipe.execute()
    except RedisError as err:
        log.warning("could not record the sweep failure: %s", err)


def _recorded(raw: dict) -> list:
    """The worker-recorded series, rebuilt as Prometheus families (buckets made cumulative)."""
    counters: dict[str, list] = {}
    buckets: dict[tuple, dict[float, float]] = {}
    sums: dict[tuple, float] = {}
    for key, value in raw.items():
        name, labels = json.loads(key)
        labels, value = dict(labels), float(value)
        if name.endswith("_bucket"):
            le = float(labels.pop("le"))
            series = (name[:-len("_bucket")], tuple(sorted(labels.items())))
            buckets.setdefault(series, {})[le] = buckets.get(series, {}).get(le, 0.0) + value
        elif name.endswith("_sum"):
            sums[(name[:-len("_sum")], tuple(sorted(labels.items())))] = value
        else:
            counters.setdefault(name, []).append((labels, value))
    families = []
    for name, series in sorted(counters.items()):
        names = sorted({k for labels, _ in series for k in labels})
        family = CounterMetricFamily(name, HELP.get(name, name), labels=names)
        for labels, value in series:
            family.add_metric([labels.get(k, "") for k in names], value)
        families.append(family)
    by_name: dict[str, list] = {}
    for (name, labels), counts in buckets.items():
        by_name.setdefault(name, []).append((labels, counts))
    for name, series in sorted(by_name.items()):
        names = [k for k, _ in series[0][0]]
        family = HistogramMetricFamily(name, HELP.get(name, name), labels=names)
        for labels, counts in series:
            total, cumulative = 0.0, []
            for bound in (*HISTOGRAMS.get(name, ()), float("inf")):
                total += counts.get(bound, 0.0)
                cumulative.append((floatToGoString(bound), total))
            family.add_metric([v for _, v in labels], cumulative, sum_value=sums.get((name, labels), 0.0))
        families.append(family)
    return families


# -- at scrape time ------------------------------------------------------------------------------

def _seconds_between(start, end):
    """completed_at - started_at in seconds, in SQL, on either backend."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _database() -> list:
    deliveries = CounterMetricFamily("herald_deliveries", "Recipients by outcome (sent, failed, skipped): the sums of "
                                     "every campaign's counters.", labels=["channel", "kind", "outcome"])
    for row in db.session.execute(select(Campaign.channel, Campaign.kind, func.sum(Campaign.sent),
                                         func.sum(Campaign.failed), func.sum(Campaign.skipped))
                                  .group_by(Campaign.channel, Campaign.kind)).all():
        for outcome, value in zip(("sent", "failed", "skipped"), row[2:], strict=True):
            deliveries.add_metric([row[0], row[1], outcome], value or 0)
    pending = GaugeMetricFamily("herald_recipients_pending", "Recipients still to send in sending or paused "
                                "campaigns.", labels=["channel"])
    for channel, value in db.session.execute(select(Campaign.channel, func.sum(Campaign.pending))
                                             .where(Campaign.status.in_(ACTIVE)).group_by(Campaign.channel)).all():
        pending.add_metric([channel], value or 0)
    campaigns = GaugeMetricFamily("herald_campaigns", "Campaigns (and one-call notifications) scheduled, sending "
                                  "or paused.", labels=["status"])
    counts = dict(db.session.execute(select(Campaign.status, func.count()).where(Campaign.status.in_(ACTIVE))
                                     .group_by(Campaign.status)).all())
    for status in ACTIVE:
        campaigns.add_metric([str(status)], counts.get(status, 0))
    seconds = _seconds_between(Campaign.started_at, Campaign.completed_at)
    durations = HistogramMetricFamily("herald_send_duration_seconds", "From a send's start to its final status (for "
                                      "one-call notifications: accepted to delivered).", labels=["channel", "kind"])
    rows = db.session.execute(
        select(Campaign.channel, Campaign.kind, func.count(), func.sum(seconds),
               *[func.sum(case((seconds <= bound, 1), else_=0)) for bound in SEND_BUCKETS])
        .where(Campaign.status.in_(FINAL), Campaign.started_at.is_not(None), Campaign.completed_at.is_not(None))
        .group_by(Campaign.channel, Campaign.kind)).all()
    for row in rows:
        cumulative = [(floatToGoString(b), float(n or 0)) for b, n in zip(SEND_BUCKETS, row[4:], strict=True)]
        durations.add_metric([row[0], row[1]], [*cumulative, ("+Inf", float(row[2]))], sum_value=float(row[3] or 0))
    retries = CounterMetricFamily("herald_chunk_retries", "Chunk jobs that failed and were retried (or lost and "
                                  "re-enqueued by the sweep), by channel.", labels=["channel"])
    for channel, value in db.session.execute(
            select(Campaign.channel, func.sum(CampaignChunk.attempts))
            .join(Campaign, Campaign.id == CampaignChunk.campaign_id).group_by(Campaign.channel)).all():
        retries.add_metric([channel], value or 0)
    return [deliveries, pending, campaigns, durations, retries]


def _redis(redis: Redis) -> list:
    jobs = GaugeMetricFamily("herald_queue_jobs", "RQ jobs by queue and state (queued, started, scheduled, deferred, "
                             "failed).", labels=["queue", "state"])
    oldest = GaugeMetricFamily("herald_queue_oldest_job_age_seconds", "Age of the oldest job waiting in each queue "
                               "(0 when empty).", labels=["queue"])
    for q in queue_state.queues(redis):
        for state in ("queued", "started", "scheduled", "deferred", "failed"):
            jobs.add_metric([q.name, state], getattr(q, state))
        oldest.add_metric([q.name], q.oldest_age)
    workers = GaugeMetricFamily("herald_workers", "RQ workers registered in Redis, by state.", labels=["state"])
    states: dict[str, int] = {"busy": 0, "idle": 0}
    for worker in queue_state.workers(redis):
        states[worker.state] = states.get(worker.state, 0) + 1
    for state, n in sorted(states.items()):
        workers.add_metric([state], n)
    families = [jobs, oldest, workers]
    sweep = queue_state.last_sweep(redis)
    last = GaugeMetricFamily("herald_sweep_last_run_timestamp_seconds", "When the last sweep finished (Unix time; "
                             "0: none yet).")
    last.add_metric([], sweep["at"].timestamp() if sweep and sweep["at"] else 0)
    families.append(last)
    return families + _recorded(redis.hgetall(REDIS_KEY))


class FleetCollector:
    """Whole-fleet figures read at scrape time; a source that is down is reported, not fatal."""

    def collect(self):
        up = GaugeMetricFamily("herald_metrics_source_up", "Whether /metrics could read each source (1) or not (0).",
                               labels=["source"])
        try:
            yield from _database()
            up.add_metric(["database"], 1)
        except Exception as err:  # noqa: BLE001 (a scrape still answers with what it has)
            db.session.rollback()
            log.warning("metrics: the database did not answer: %s", err)
            up.add_metric(["database"], 0)
        finally:
            db.session.rollback()  # read-only: end the transaction
        try:
            yield from _redis(get_redis())
            up.add_metric(["redis"], 1)
        except RedisError as err:
            log.warning("metrics: Redis did not answer: %s", err)
            up.add_metric(["redis"], 0)
        yield up


class _Scrape:
    """One scrape's registry: the web processes' series plus the fleet's."""

    def __init__(self, *sources):
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()


def exposition() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import CollectorRegistry, multiprocess

        web = CollectorRegistry()
        multiprocess.MultiProcessCollector(web)
    else:
        web = REGISTRY
    return Response(generate_latest(_Scrape(web, FleetCollector())), content_type=CONTENT_TYPE_LATEST)


def token_matches(header: str, token: str) -> bool:
    """`Authorization: Bearer <token>` compared in constant time; never true for an empty token."""
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
