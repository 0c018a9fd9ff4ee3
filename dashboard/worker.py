"""The RQ worker class named in the Procfile: builds the app before forking work horses, and
runs Herald's sweep (lost chunks, missed schedules) with RQ's periodic maintenance."""

from __future__ import annotations

import os
import time

import redis
from rq import Worker
from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_MAINTENANCE_TASK_INTERVAL, DEFAULT_WORKER_TTL

from dashboard import jobs


class HeraldWorker(Worker):
    def __init__(self, *args, **kwargs):
        # Short TTLs so a killed worker is noticed quickly and an idle one sweeps often.
        # (rq's command line passes its own defaults, so replace those, keep explicit choices)
        kwargs["default_worker_ttl"] = None
        if kwargs.get("worker_ttl") in (None, DEFAULT_WORKER_TTL):
            kwargs["worker_ttl"] = int(os.environ.get("HERALD_WORKER_TTL", "40"))
        if kwargs.get("job_monitoring_interval") in (None, DEFAULT_JOB_MONITORING_INTERVAL):
            kwargs["job_monitoring_interval"] = 10
        if kwargs.get("maintenance_interval") in (None, DEFAULT_MAINTENANCE_TASK_INTERVAL):
            kwargs["maintenance_interval"] = int(os.environ.get("HERALD_SWEEP_SECONDS", "10"))
        super().__init__(*args, **kwargs)
        jobs.get_app()

    def work(self, *args, **kwargs):
        """Survive a Redis outage: RQ's loop gives up when Redis vanishes mid-job; wait for it to
        answer again and start over (the sweep re-enqueues whatever Redis forgot)."""
        while True:
            try:
                return super().work(*args, **kwargs)
            except redis.exceptions.ConnectionError as err:
                if self._stop_requested:
                    return False  # shutting down anyway (e.g. Ctrl-C stopped Redis first)
                self.log.warning("Redis is unavailable (%s); waiting for it to come back", err)
                if not self._wait_for_redis():
                    return False

    def _wait_for_redis(self) -> bool:
        """True once Redis answers; False if asked to stop while waiting."""
        delay = 0.5
        while not self._stop_requested:
            time.sleep(delay)
            try:
                self.connection.ping()
                return True
            except redis.exceptions.ConnectionError:
                delay = min(delay * 2, 10.0)
        return False

    @property
    def dequeue_timeout(self) -> int:
        return max(1, min(self.worker_ttl - 15, self.maintenance_interval))

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            jobs.sweep()
        except Exception:  # a failed sweep must never stop the worker; the next one retries
            self.log.exception("Herald sweep failed")

    def main_work_horse(self, job, queue):
        # The horse is a fork: never reuse the parent's pooled DB sockets.
        from dashboard.extensions import db

        with jobs.get_app().app_context():
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)
